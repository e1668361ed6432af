"""Builders shared by the executor tests: hand-made chunks and executors with chosen limits.

`make_executor` starts from "limits out of the way" (huge speeds/steps, no bridges) so each test
switches on exactly the behaviour it checks; values go through the real config schema.
"""

from __future__ import annotations

import numpy as np

from vla_ros.core.config import config_from_dict
from vla_ros.core.executor import ChunkExecutor
from vla_ros.core.types import ActionChunk, ActionMode, EEPose

HOME = EEPose(np.array([0.4, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]), "base_link")

LOOSE_SAFETY = {
    "max_linear_speed": 1e6,
    "max_angular_speed": 1e6,
    "max_translation_step": 1e6,
    "max_rotation_step": 1e6,
    # Plausibility limits (plausibility.py) out of the way too: tests tick without a fresh pose.
    "max_pose_age": 1e6,
    "max_measured_speed": 1e6,
    "max_measured_angular_speed": 1e6,
    "max_start_distance": 1e6,
    "max_start_angle": 1e6,
}
NO_BRIDGE = {"bridge_distance": 1e6, "bridge_angle": 1e6}


def make_config(executor: dict | None = None, safety: dict | None = None, **robot):
    return config_from_dict(
        {
            "executor": {**NO_BRIDGE, **(executor or {})},
            "safety": {**LOOSE_SAFETY, **(safety or {})},
            "robot": robot,
        }
    )


def make_executor(executor: dict | None = None, safety: dict | None = None, start: float | None = -0.01,
                  pose: EEPose = HOME) -> ChunkExecutor:
    """Executor with the given config overrides; with `start` set, one IDLE tick latches `pose` as the hold pose.

    The default start is one 100 Hz tick before t = 0, so a first tick at 0 has a real period.
    """
    ex = ChunkExecutor.from_config(make_config(executor, safety))
    if start is not None:
        ex.tick(start, pose)
    return ex


def make_chunk(
    x,
    *,
    stamp: float = 0.0,
    dt: float = 0.1,
    y=0.0,
    z=0.3,
    rz=0.0,
    gripper=1.0,
    horizon: int | None = None,
    seq: int = 0,
    mode: ActionMode = ActionMode.ABSOLUTE,
    reference_pose: EEPose | None = None,
    frame_id: str = "",
) -> ActionChunk:
    """Chunk from per-axis values (scalars broadcast to the horizon); rotation only about z."""
    cols = [x, y, z, 0.0, 0.0, rz, gripper]
    h = horizon or max(np.size(c) for c in cols)
    acts = np.stack([np.broadcast_to(np.asarray(c, np.float64), (h,)) for c in cols], axis=1)
    return ActionChunk(stamp=stamp, dt=dt, actions=acts, mode=mode, reference_pose=reference_pose, seq=seq,
                       frame_id=frame_id, policy_id="test")


def yaw(quat) -> float:
    """Signed rotation about z of a quaternion that only rotates about z."""
    return 2.0 * float(np.arctan2(quat[2], quat[3]))


def rotation_error(a, b) -> float:
    """Angle (rad) between two quaternions, well conditioned near 0."""
    from vla_ros.core.executor.interpolation import quat_angle

    return quat_angle(np.asarray(a, np.float64), np.asarray(b, np.float64))


def run(ex: ChunkExecutor, times, pose: EEPose | None = None):
    """Tick at every time; list of commands."""
    return [ex.tick(float(t), pose) for t in times]
