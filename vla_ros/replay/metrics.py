"""Scores of one replay run against the ground truth: plain numpy, hand-checkable.

Two views of "what the policy would have done" are scored (docs/replay.md):

- ``commands``: the executor's command at every control tick vs the ground truth at the same
  time - what the arm would have been told to do, after latency, blending and safety.
- ``chunks``: every predicted chunk over its whole horizon vs the recorded future at each
  action's time (``stamp + i * dt``); ``position_error_by_step_m`` shows how the error grows with
  the horizon step.

Position errors are Euclidean distances (m); per-axis errors absolute differences; rotation
errors the geodesic angle between orientations (rad), per axis the components of the relative
rotation vector; the gripper is scored by mean absolute error and accuracy (both sides of
``threshold`` agree). Discontinuity: how far the plan jumps when a new chunk arrives (new vs
previous chunk at the arrival time). Jerk: third finite difference of the commanded positions.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from vla_ros.core.action_modes import absolute_actions
from vla_ros.core.rotations import quat_conj, quat_mul, quat_normalize, quat_slerp, quat_to_rotvec, rotvec_to_quat
from vla_ros.core.types import ActionChunk

AXES = ("x", "y", "z")
ROT_AXES = ("rx", "ry", "rz")


def summary(values: Any) -> dict[str, float]:
    """count, mean, median, p95, max, rmse of the finite values (NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        nan = float("nan")
        return {"count": 0, "mean": nan, "median": nan, "p95": nan, "max": nan, "rmse": nan}
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p95": float(np.percentile(v, 95)),
        "max": float(v.max()),
        "rmse": float(math.sqrt(float(np.mean(v * v)))),
    }


def position_errors(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Euclidean error [N], absolute per-axis error [N, 3]) in metres."""
    d = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return np.linalg.norm(d, axis=-1), np.abs(d)


def rotation_errors(pred_quat: np.ndarray, truth_quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(geodesic angle [N], |relative rotation vector| per axis [N, 3]) in radians."""
    p, t = quat_normalize(np.asarray(pred_quat, np.float64)), quat_normalize(np.asarray(truth_quat, np.float64))
    rel = quat_mul(p, quat_conj(t))
    rv = quat_to_rotvec(rel)
    return np.linalg.norm(rv, axis=-1), np.abs(rv)


def gripper_scores(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    ok = np.isfinite(p) & np.isfinite(t)
    if not np.any(ok):
        return {"count": 0, "mae": float("nan"), "accuracy": float("nan")}
    p, t = p[ok], t[ok]
    return {
        "count": int(ok.sum()),
        "mae": float(np.mean(np.abs(p - t))),
        "accuracy": float(np.mean((p > threshold) == (t > threshold))),
    }


def pose_scores(pos: np.ndarray, quat: np.ndarray, gt_pos: np.ndarray, gt_quat: np.ndarray) -> dict[str, Any]:
    """Position / rotation summaries of matched samples (all arrays already restricted to valid ones)."""
    perr, paxis = position_errors(pos, gt_pos)
    rerr, raxis = rotation_errors(quat, gt_quat) if len(pos) else (np.zeros(0), np.zeros((0, 3)))
    return {
        "count": int(len(perr)),
        "position_error_m": summary(perr),
        "position_error_per_axis_m": {a: summary(paxis[:, i]) for i, a in enumerate(AXES)},
        "rotation_error_rad": summary(rerr),
        "rotation_error_per_axis_rad": {a: summary(raxis[:, i]) for i, a in enumerate(ROT_AXES)},
    }


def chunk_at(chunk: ActionChunk, t: float, actions: np.ndarray | None = None) -> np.ndarray:
    """The chunk's target at time t (linear position / gripper, slerp rotation; clamped to its span)."""
    a = absolute_actions(chunk) if actions is None else actions
    if chunk.horizon == 1:
        return a[0].copy()
    x = (t - chunk.stamp) / chunk.dt
    x = min(max(x, 0.0), chunk.horizon - 1.0)
    i = min(int(math.floor(x)), chunk.horizon - 2)
    f = x - i
    out = np.empty(7)
    out[:3] = a[i, :3] + f * (a[i + 1, :3] - a[i, :3])
    q = quat_slerp(rotvec_to_quat(a[i, 3:6]), rotvec_to_quat(a[i + 1, 3:6]), f)
    out[3:6] = quat_to_rotvec(q)
    out[6] = a[i, 6] + f * (a[i + 1, 6] - a[i, 6])
    return out


def discontinuities(chunks: Sequence[ActionChunk], arrivals: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(position jump [K-1] m, rotation jump [K-1] rad): chunk k vs chunk k-1 at chunk k's arrival."""
    pos, rot = [], []
    prev = None
    for ch, t in zip(chunks, arrivals):
        acts = absolute_actions(ch)
        if prev is not None:
            a_new = chunk_at(ch, t, acts)
            a_old = chunk_at(prev[0], t, prev[1])
            pos.append(float(np.linalg.norm(a_new[:3] - a_old[:3])))
            rot.append(float(rotation_errors(rotvec_to_quat(a_new[3:6]), rotvec_to_quat(a_old[3:6]))[0]))
        prev = (ch, acts)
    return np.asarray(pos), np.asarray(rot)


def jerk(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """|d^3 p / dt^3| (m/s^3) by third finite differences; assumes (near-)uniform sampling."""
    t = np.asarray(times, np.float64)
    p = np.asarray(positions, np.float64)
    if t.size < 4:
        return np.zeros(0)
    dt = float(np.median(np.diff(t)))
    if dt <= 0:
        return np.zeros(0)
    return np.linalg.norm(np.diff(p, n=3, axis=0), axis=-1) / dt**3


def step_sizes(positions: np.ndarray) -> np.ndarray:
    p = np.asarray(positions, np.float64)
    return np.linalg.norm(np.diff(p, axis=0), axis=-1) if len(p) > 1 else np.zeros(0)


def chunk_errors(chunks: Sequence[ActionChunk], gt) -> dict[str, np.ndarray]:
    """Per chunk and step: position / rotation / gripper error vs the ground truth (NaN where unscored).

    ``gt`` is a `GroundTruth` (poses and/or gripper series). Returns arrays [K, H_max].
    """
    k = len(chunks)
    h = max((c.horizon for c in chunks), default=0)
    pos_err = np.full((k, h), np.nan)
    rot_err = np.full((k, h), np.nan)
    grip_pred = np.full((k, h), np.nan)
    grip_true = np.full((k, h), np.nan)
    if k == 0:
        return {"position": pos_err, "rotation": rot_err, "gripper_pred": grip_pred, "gripper_true": grip_true}
    # every chunk's steps in one flat list: one ground-truth lookup and one error computation for all
    rows = np.concatenate([np.full(c.horizon, i) for i, c in enumerate(chunks)])
    cols = np.concatenate([np.arange(c.horizon) for c in chunks])
    acts = np.concatenate([absolute_actions(c) for c in chunks])
    times = np.concatenate([c.times for c in chunks])
    if gt.poses is not None and len(gt.poses):
        gp, gq, valid = gt.poses.sample(times)
        if np.any(valid):
            pos_err[rows[valid], cols[valid]] = position_errors(acts[valid, :3], gp[valid])[0]
            rot_err[rows[valid], cols[valid]] = rotation_errors(rotvec_to_quat(acts[valid, 3:6]), gq[valid])[0]
    if gt.gripper is not None and len(gt.gripper):
        gv, valid = gt.gripper.sample(times)
        grip_pred[rows[valid], cols[valid]] = acts[valid, 6]
        grip_true[rows[valid], cols[valid]] = gv[valid]
    return {"position": pos_err, "rotation": rot_err, "gripper_pred": grip_pred, "gripper_true": grip_true}


def chunk_scores(chunks: Sequence[ActionChunk], arrivals: Sequence[float], gt, threshold: float) -> dict[str, Any]:
    errs = chunk_errors(chunks, gt)
    pos, rot = errs["position"], errs["rotation"]
    by_step = [float(np.nanmean(pos[:, j])) if np.any(np.isfinite(pos[:, j])) else float("nan")
               for j in range(pos.shape[1])]
    dpos, drot = discontinuities(chunks, arrivals)
    return {
        "count": len(chunks),
        "scored_actions": int(np.isfinite(pos).sum()),
        "position_error_m": summary(pos),
        "rotation_error_rad": summary(rot),
        "gripper": gripper_scores(errs["gripper_pred"], errs["gripper_true"], threshold),
        "position_error_by_step_m": by_step,
        "discontinuity": {"position_m": summary(dpos), "rotation_rad": summary(drot)},
    }


def twist_scores(cmd_times: np.ndarray, cmd_pos: np.ndarray, cmd_quat: np.ndarray, twist,
                 linear: np.ndarray | None = None,
                 angular: np.ndarray | None = None) -> dict[str, Any]:
    """Command velocity vs a recorded TwistStamped ground truth, at the twist samples' times.

    The command velocity is the executor's twist output when given (``linear``/``angular``),
    else the finite difference of the commanded poses.
    """
    t = np.asarray(cmd_times, np.float64)
    if t.size < 2 or twist is None or len(twist) == 0:
        return {"count": 0, "linear_error_mps": summary([]), "angular_error_radps": summary([])}
    if linear is None or angular is None:
        dt = np.diff(t)
        lin = np.diff(cmd_pos, axis=0) / dt[:, None]
        ang = quat_to_rotvec(quat_mul(cmd_quat[1:], quat_conj(cmd_quat[:-1]))) / dt[:, None]
        mid = t[1:]
    else:
        lin, ang, mid = np.asarray(linear), np.asarray(angular), t
    idx = np.clip(np.searchsorted(mid, twist.times), 0, len(mid) - 1)
    ok = (twist.times >= mid[0]) & (twist.times <= mid[-1])
    le = np.linalg.norm(lin[idx] - twist.linear, axis=-1)[ok]
    ae = np.linalg.norm(ang[idx] - twist.angular, axis=-1)[ok]
    return {"count": int(ok.sum()), "linear_error_mps": summary(le), "angular_error_radps": summary(ae)}


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        nan = float("nan")
        return {"count": 0, "mean": nan, "p50": nan, "p95": nan, "p99": nan, "max": nan}
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "p50": float(np.percentile(v, 50)),
        "p95": float(np.percentile(v, 95)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }
