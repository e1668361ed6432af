"""What the executor hands out: one `Command` per tick and an `ExecutorStatusData` on request.

Both are plain values (numpy + floats) so the rclpy node, the replay and the tests consume them
alike; the node turns them into PoseStamped / TwistStamped / Float64 / JointState / ExecutorStatus.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from vla_ros.core.executor.rtc import ExecutionPlan


class ExecutorState(enum.IntEnum):
    """Values match the STATE_* constants of ExecutorStatus.msg."""

    IDLE = 0  # no chunk received yet: holding the initial pose
    RUNNING = 1  # executing a plan (or a bridge into it)
    HOLDING = 2  # watchdog, plan finished, or after an e-stop reset: holding the last safe command
    ESTOP = 3  # e-stop latched: holding until reset

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Command:
    """The safe command of one control tick.

    ``position`` / ``orientation`` (x, y, z, w) form the target pose in ``frame_id``;
    ``linear`` / ``angular`` the twist (m/s, rad/s, base frame) for velocity interfaces - zero on
    a hold; ``gripper`` the normalised opening in [0, 1], or None to leave the gripper alone
    (nothing has commanded it yet). ``hold`` is True when the tick repeats a held pose instead of
    following a plan; ``limits`` names the safety limits that changed this command.
    """

    stamp: float
    frame_id: str
    position: np.ndarray
    orientation: np.ndarray
    gripper: float | None
    linear: np.ndarray
    angular: np.ndarray
    state: ExecutorState
    hold: bool
    limits: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class ExecutorStatusData:
    """Everything ExecutorStatus.msg carries, ROS-free (times in seconds)."""

    stamp: float
    state: ExecutorState
    dry_run: bool
    chunk_seq: int
    policy_id: str
    remaining_time: float
    remaining_steps: int
    chunks_received: int
    chunks_rejected: int
    chunks_stale: int
    skipped_steps: int
    last_chunk_delay: float
    mean_chunk_delay: float
    clamps: int
    holds: int
    bridges: int
    limit_counts: dict[str, int]
    loop_period_mean: float
    loop_period_p99: float
    loop_period_max: float
    plan: ExecutionPlan
    message: str = ""
    watchdog_trips: int = 0
    frame_id: str = ""
    # largest amount past each safety limit, by config key (SafetyFilter.excess): m, rad or gripper units
    limit_excess: dict[str, float] | None = None

    @property
    def state_name(self) -> str:
        return self.state.label
