"""Real-Time Chunking (Black, Galliker & Levine 2025): from the executor's plan to a policy's guidance.

While the policy infers chunk n+1, the executor keeps executing chunk n. The first ``d`` steps of
the new chunk (d = inference delay in steps) will therefore be executed from the *old* plan no
matter what; RTC makes the new chunk agree with them by inpainting: the sampler is guided towards
the old plan with a soft mask W, 1 on the committed steps, decaying exponentially over the rest of
the overlap, 0 where no old plan exists:

    W_i = 1                                for i < d
    W_i = c_i (e^{c_i} - 1) / (e - 1)      for d <= i < i_end,   c_i = (i_end - i) / (i_end - d + 1)
    W_i = 0                                for i >= i_end        (i_end: first step after the plan)

The executor publishes its plan (``ExecutorStatus.plan_*``: samples every ``plan_dt`` from
``plan_start`` and the number of committed samples); `guidance_from_plan` re-samples it onto the
new chunk's timeline ``obs_stamp + i * dt`` (linear position, slerp rotation, linear gripper) and
builds the mask there. The plans are absolute poses in the chunk frame; a policy that predicts
DELTA actions converts them with its reference pose first. The guided sampler itself lives in
the policy.

Nothing here imports ROS: `plan_from_status_msg` is duck-typed on the message fields, so the
replay can read ExecutorStatus from a bag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_ros.core.executor.interpolation import Waypoints
from vla_ros.core.msg_decode import MessageError, stamp_to_sec
from vla_ros.core.rotations import quat_normalize, quat_to_rotvec, rotvec_to_quat
from vla_ros.core.types import ACTION_DIM, ChunkGuidance

SCHEDULES = ("exp", "linear", "hard")
_EPS = 1e-9


@dataclass(frozen=True)
class ExecutionPlan:
    """The executor's remaining plan: ``actions[j]`` is the absolute target at ``start + j * dt``.

    The first ``committed_steps`` of them will be executed whatever the next chunk says.
    Empty (``actions.shape == (0, 7)``) when the executor has no plan (idle, holding, e-stop).
    """

    start: float
    dt: float
    committed_steps: int
    actions: np.ndarray
    frame_id: str = ""

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def times(self) -> np.ndarray:
        return self.start + self.dt * np.arange(self.steps)

    @property
    def end(self) -> float:
        return self.start + self.dt * (self.steps - 1) if self.steps else self.start

    def guidance(
        self, obs_stamp: float, horizon: int, dt: float, max_guidance_weight: float, schedule: str = "exp"
    ) -> ChunkGuidance | None:
        """`guidance_from_plan` for this plan."""
        return guidance_from_plan(
            self.start, self.dt, self.committed_steps, self.actions, obs_stamp, horizon, dt, max_guidance_weight,
            schedule=schedule,
        )

    @classmethod
    def empty(cls, start: float = 0.0, dt: float = 0.0, frame_id: str = "") -> "ExecutionPlan":
        return cls(start, dt, 0, np.zeros((0, ACTION_DIM)), frame_id)


def soft_mask(n_committed: int, i_end: int, horizon: int, schedule: str = "exp") -> np.ndarray:
    """RTC weights for `horizon` steps: 1 before `n_committed`, decaying until `i_end`, then 0."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
    w = np.zeros(horizon)
    d = max(0, min(n_committed, horizon))
    i_end = max(d, min(i_end, horizon))
    w[:d] = 1.0
    if schedule != "hard" and i_end > d:
        i = np.arange(d, i_end)
        c = (i_end - i) / (i_end - d + 1.0)
        w[d:i_end] = c * np.expm1(c) / (math.e - 1.0) if schedule == "exp" else c
    return w


def guidance_from_plan(
    plan_start: float,
    plan_dt: float,
    committed_steps: int,
    plan_actions: np.ndarray,
    obs_stamp: float,
    horizon: int,
    dt: float,
    max_guidance_weight: float,
    *,
    schedule: str = "exp",
) -> ChunkGuidance | None:
    """Guidance for a new chunk at ``obs_stamp + i * dt`` (i < horizon) from the executor's plan.

    ``plan_actions[j]`` (absolute x, y, z, rx, ry, rz, gripper) is the plan at
    ``plan_start + j * plan_dt``; its first ``committed_steps`` samples are committed, i.e. the
    first ``committed_steps * plan_dt`` seconds from ``plan_start``. On the new timeline a step is

    - committed (weight 1) if its time is before ``plan_start + committed_steps * plan_dt`` and
      within the plan; steps before ``plan_start`` are in the past - already executed - and also
      get weight 1, with the plan's first action as target;
    - in the soft overlap (exponential decay, ``schedule``: "exp" as in the paper, "linear", or
      "hard" = 0) if later but still within the plan;
    - unguided (weight 0) after the plan's last sample. Its action is then the plan's last one,
      only so that the array is finite; the weight makes it irrelevant.

    Returns None when nothing overlaps (empty plan, or the plan ends before the new chunk starts).
    Raises ValueError naming the argument for malformed input.
    """
    acts = np.asarray(plan_actions, dtype=np.float64)
    if acts.ndim != 2 or acts.shape[1] != ACTION_DIM:
        raise ValueError(f"plan_actions: expected shape (N, {ACTION_DIM}), got {acts.shape}")
    if not np.all(np.isfinite(acts)):
        raise ValueError("plan_actions: contains NaN or inf")
    for name, v in (("plan_start", plan_start), ("obs_stamp", obs_stamp), ("max_guidance_weight", max_guidance_weight)):
        if not math.isfinite(v):
            raise ValueError(f"{name}: expected a finite number, got {v!r}")
    if int(horizon) < 1:
        raise ValueError(f"horizon: expected >= 1, got {horizon}")
    if not (math.isfinite(dt) and dt > 0.0):
        raise ValueError(f"dt: expected a positive number of seconds, got {dt!r}")
    if committed_steps < 0:
        raise ValueError(f"committed_steps: expected >= 0, got {committed_steps}")
    n = acts.shape[0]
    if n == 0:
        return None
    if n > 1 and not (math.isfinite(plan_dt) and plan_dt > 0.0):
        raise ValueError(f"plan_dt: expected a positive number of seconds for a plan of {n} samples, got {plan_dt!r}")
    horizon = int(horizon)
    step = float(plan_dt) if n > 1 else 0.0
    plan_end = plan_start + step * (n - 1)
    if step > 0.0:
        commit_end = plan_start + step * min(committed_steps, n)
    else:  # a single sample: committed or not
        commit_end = plan_start + (2 * _EPS if committed_steps else 0.0)

    taus = obs_stamp + dt * np.arange(horizon)
    covered = taus <= plan_end + _EPS  # a prefix: times increase
    committed = covered & (taus < commit_end - _EPS)  # also a prefix; includes the past
    i_end = int(np.count_nonzero(covered))
    if i_end == 0:
        return None
    weights = soft_mask(int(np.count_nonzero(committed)), i_end, horizon, schedule)

    plan_times = plan_start + step * np.arange(n) if step > 0.0 else np.array([plan_start])
    wp = Waypoints(plan_times, acts[:, :3], rotvec_to_quat(acts[:, 3:6]), acts[:, 6])
    out = np.empty((horizon, ACTION_DIM))
    for i, tau in enumerate(taus):
        out[i] = wp.sample(float(tau)).as_action()
    if not np.any(weights > 0.0):
        return None
    return ChunkGuidance(actions=out, weights=weights, max_guidance_weight=float(max_guidance_weight))


def plan_from_status_msg(msg: Any, topic: str = "executor_status") -> ExecutionPlan:
    """ExecutorStatus message (rclpy or rosbags) -> ExecutionPlan; MessageError names the field."""
    poses, grip = list(msg.plan_poses), list(msg.plan_gripper)
    if len(grip) != len(poses):
        raise MessageError(f"{topic}: plan_gripper: expected one value per plan pose ({len(poses)}), got {len(grip)}")
    frame = str(msg.header.frame_id)
    if not poses:
        return ExecutionPlan.empty(stamp_to_sec(msg.plan_start), float(msg.plan_dt), frame)
    pos = np.array([[p.position.x, p.position.y, p.position.z] for p in poses], dtype=np.float64)
    quat = np.array([[p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w] for p in poses])
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat)) and np.all(np.isfinite(grip))):
        raise MessageError(f"{topic}: plan_poses / plan_gripper: contain NaN or inf")
    if np.any(np.linalg.norm(quat, axis=1) < 1e-9):
        raise MessageError(f"{topic}: plan_poses.orientation: expected unit quaternions (x, y, z, w)")
    committed = int(msg.committed_steps)
    actions = np.concatenate([pos, quat_to_rotvec(quat_normalize(quat)), np.asarray(grip, np.float64)[:, None]], axis=1)
    return ExecutionPlan(stamp_to_sec(msg.plan_start), float(msg.plan_dt), min(committed, len(poses)), actions, frame)
