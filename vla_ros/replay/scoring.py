"""A replay's scores: each lane's commands and chunks against the ground truth, and policy vs hold.

Read by `vla_ros.replay.evaluate` (the metrics of a `BagResult`) and by `vla_ros.replay.report`
(the headline numbers of a summary row); it imports neither of them, nor the plots, so the report
and the scoring can be used (and tested) without running a replay.

    metrics = compute_metrics(result, cfg)      # {"policy": {...}, "hold": {...}, "vs_hold": {...}, ...}
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from vla_ros.core.config import VlaConfig
from vla_ros.replay import metrics as M
from vla_ros.replay.ground_truth import GroundTruth
from vla_ros.replay.lane import HOLD_LANE, POLICY_LANE, ChunkRecord, Lane

if TYPE_CHECKING:
    from vla_ros.core.executor import ExecutorStatusData

HEADLINES = (
    ("chunk_position_error_m", ("chunks", "position_error_m", "mean")),
    ("command_position_error_m", ("commands", "position_error_m", "mean")),
    ("chunk_rotation_error_rad", ("chunks", "rotation_error_rad", "mean")),
    ("command_gripper_accuracy", ("commands", "gripper", "accuracy")),
)


def _command_scores(arr: dict[str, np.ndarray], sel: np.ndarray, first: float, gt: GroundTruth,
                    cfg: VlaConfig) -> dict[str, Any]:
    """The commands from `first` on (`sel`) against the ground-truth poses, gripper and twist."""
    r = cfg.replay
    t = arr["t"][sel]
    commands: dict[str, Any] = {"count": int(sel.sum()), "from": first if math.isfinite(first) else None}
    if gt.poses is not None and len(gt.poses) and t.size:
        gp, gq, valid = gt.poses.sample(t)
        commands.update(M.pose_scores(arr["position"][sel][valid], arr["quat"][sel][valid], gp[valid], gq[valid]))
        commands["scored"] = int(valid.sum())
    else:
        commands.update(M.pose_scores(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3)), np.zeros((0, 4))))
        commands["scored"] = 0
    if gt.gripper is not None and len(gt.gripper) and t.size:
        gv, valid = gt.gripper.sample(t)
        commands["gripper"] = M.gripper_scores(arr["gripper"][sel][valid], gv[valid], r.gripper_threshold)
    else:
        commands["gripper"] = M.gripper_scores([], [], r.gripper_threshold)
    if gt.twist is not None:
        use_twist = cfg.executor.output_mode in ("twist", "both")
        commands["velocity"] = M.twist_scores(
            t, arr["position"][sel], arr["quat"][sel], gt.twist,
            arr["linear"][sel] if use_twist else None, arr["angular"][sel] if use_twist else None,
        )
    return commands


def _smoothness(arr: dict[str, np.ndarray], sel: np.ndarray, gt: GroundTruth) -> dict[str, Any]:
    t = arr["t"][sel]
    jerk = M.jerk(t, arr["position"][sel])
    steps = M.step_sizes(arr["position"][sel])
    gt_jerk = np.zeros(0)
    if gt.poses is not None and len(gt.poses) and t.size:
        gp, _, valid = gt.poses.sample(t)
        if np.all(valid):
            gt_jerk = M.jerk(t, gp)
    return {
        "command_jerk_mps3": M.summary(jerk),
        "ground_truth_jerk_mps3": M.summary(gt_jerk),
        "command_step_m": M.summary(steps),
    }


def _executor_counts(arr: dict[str, np.ndarray], sel: np.ndarray, st: ExecutorStatusData | None) -> dict[str, Any]:
    return {
        "ticks": int(arr["t"].size),
        "hold_ticks": int(arr["hold"][sel].sum()),
        "clamped_ticks": int(arr["clamped"][sel].sum()),
        "holds": int(st.holds) if st else 0,
        "clamps": int(st.clamps) if st else 0,
        "limit_counts": dict(st.limit_counts) if st else {},
        "bridges": int(st.bridges) if st else 0,
        "chunks_received": int(st.chunks_received) if st else 0,
        "chunks_rejected": int(st.chunks_rejected) if st else 0,
        "chunks_stale": int(st.chunks_stale) if st else 0,
        "skipped_steps": int(st.skipped_steps) if st else 0,
        "watchdog_trips": int(st.watchdog_trips) if st else 0,
        "limit_excess": dict(st.limit_excess or {}) if st else {},
    }


def _lane_counts(lane: Lane, recs: list[ChunkRecord]) -> dict[str, Any]:
    """The lane's latencies, inference counts and input counts."""
    bstats = lane.builder.stats
    return {
        "latency": {
            "inference_s": M.latency_summary([x.wall_latency for x in recs]),
            "injected_s": M.latency_summary([x.injected_latency for x in recs]),
            "chunk_delay_s": M.latency_summary([x.arrival - x.chunk.stamp for x in recs]),
            "observation_age_s": M.latency_summary([x.chunk.observation_age for x in recs]),
        },
        "inference": {
            "requests": lane.requests,
            "chunks": len(recs),
            "skipped_busy": lane.skipped_busy,
            "no_observation": lane.worker.stats.no_observation,
            "errors": lane.worker.stats.errors,
            "rtc_guided": lane.guided,
            "refused_by_chunk_check": len(lane.refused),  # never sent (the policy node's check)
            "refused_by_code": dict(lane.runtime.chunk_problems),
        },
        "inputs": {
            "received": bstats.received,
            "rejected": bstats.rejected,
            "synchronized": bstats.synchronized,
            "dropped": bstats.dropped,
            "used": bstats.taken,
            "problems": {f"{t} {c}": n for (t, c), n in sorted(lane.problems.items())},
        },
    }


def lane_metrics(lane: Lane, gt: GroundTruth, cfg: VlaConfig, *, scored: Callable[[ChunkRecord], bool] | None = None,
                 commands_from: float | None = None) -> dict[str, Any]:
    """One lane's scores. `scored`: which chunks count (default all); `commands_from`: commands are scored
    from this time on (default: the first tick that executes the lane's first accepted chunk) - see
    `fair_samples`."""
    arr = lane.arrays()
    recs = lane.records
    accepted = [x for x in recs if x.accepted]
    first = accepted[0].executes_from(1.0 / cfg.executor.control_rate) if accepted else math.inf
    if commands_from is not None and math.isfinite(first):
        first = max(first, commands_from)
    sel = arr["t"] >= first - 1e-12
    commands = _command_scores(arr, sel, first, gt, cfg)
    scored_recs = [x for x in recs if scored is None or scored(x)]
    chunk_part = M.chunk_scores([x.chunk for x in scored_recs], [x.arrival for x in scored_recs], gt,
                                cfg.replay.gripper_threshold)
    chunk_part["not_scored"] = len(recs) - len(scored_recs)  # no observation in another lane at their trigger
    meta = lane.meta
    return {
        "policy": meta.policy_type,
        "checkpoint": meta.checkpoint_id,
        "horizon": meta.horizon,
        "dt": meta.dt,
        "commands": commands,
        "chunks": chunk_part,
        "smoothness": _smoothness(arr, sel, gt),
        "executor": _executor_counts(arr, sel, lane.status),
        **_lane_counts(lane, recs),
    }


def fair_samples(lanes: dict[str, Lane],
                 cfg: VlaConfig) -> tuple[dict[str, Callable[[ChunkRecord], bool]], float | None]:
    """Score every lane on the samples where every lane had an observation (issue: a baseline that needs
    fewer inputs must not be scored over time the policy never saw).

    Chunks: with the rate trigger the lanes share their trigger times, so a chunk counts when every
    lane produced one at its trigger; otherwise from the latest first chunk stamp of the lanes on.
    Commands: from the latest first executed chunk of the lanes on. One lane: everything counts.
    """
    if len(lanes) < 2 or any(not lane.records for lane in lanes.values()):
        return {}, None
    if cfg.policy.trigger == "rate":
        common = set.intersection(*({round(r.triggered_at, 9) for r in lane.records} for lane in lanes.values()))
        rule = lambda rec: round(rec.triggered_at, 9) in common  # noqa: E731
    else:
        start = max(min(r.chunk.stamp for r in lane.records if r.chunk is not None) for lane in lanes.values())
        rule = lambda rec: rec.chunk is not None and rec.chunk.stamp >= start - 1e-9  # noqa: E731
    ctrl_dt = 1.0 / cfg.executor.control_rate
    firsts = [min((r.executes_from(ctrl_dt) for r in lane.records if r.accepted), default=math.inf)
              for lane in lanes.values()]
    commands_from = max(firsts) if all(math.isfinite(f) for f in firsts) else None
    return {name: rule for name in lanes}, commands_from


def compute_metrics(result: Any, cfg: VlaConfig) -> dict[str, Any]:
    """The metrics of one evaluated bag (a `vla_ros.replay.evaluate.BagResult`): every lane on the fair
    samples, policy vs hold, the timing and the warnings so far."""
    out: dict[str, Any] = {
        "bag": str(result.path),
        "duration_s": result.duration,
        "messages": result.messages,
        "ground_truth": {
            "kind": result.ground_truth.sources.kind,
            "topic": result.ground_truth.sources.topic,
            "description": result.ground_truth.sources.describe(),
            "samples": len(result.ground_truth.poses) if result.ground_truth.poses is not None else 0,
        },
        "latency_mode": cfg.replay.latency,
        "inference_batch": result.lanes[POLICY_LANE].batch_size,
    }
    scored, commands_from = fair_samples(result.lanes, cfg)
    for name, lane in result.lanes.items():
        out[name] = lane_metrics(lane, result.ground_truth, cfg, scored=scored.get(name), commands_from=commands_from)
    if HOLD_LANE in out:
        out["vs_hold"] = comparison(out[POLICY_LANE], out[HOLD_LANE])
    timing = result.timing.as_dict()
    timing["speed_x"] = result.duration / result.timing.total if result.timing.total > 0 else float("nan")
    out["timing_s"] = timing
    out["warnings"] = list(result.warnings)
    return out


def _mean(d: dict, *keys: str) -> float:
    for k in keys:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    return float(d) if isinstance(d, (int, float)) else float("nan")


def comparison(policy: dict, hold: dict) -> dict[str, Any]:
    """Policy vs hold on the headline numbers: both values, the difference and hold / policy."""
    out = {}
    for name, keys in HEADLINES:
        a, b = _mean(policy, *keys), _mean(hold, *keys)
        ratio = b / a if a and math.isfinite(a) and math.isfinite(b) and a > 0 else float("nan")
        out[name] = {"policy": a, "hold": b, "difference": a - b, "hold_over_policy": ratio}
    return out
