"""The DELTA action convention of ActionChunk.msg, in one place for the policy and the executor.

A DELTA action is an offset from a reference end-effector pose (the pose at the observation):
position = reference.position + delta.position (in the chunk frame); rotation =
delta_rotation * reference_rotation (left-multiplied, i.e. a rotation expressed in the chunk
frame, applied after the reference); the gripper value stays absolute.

`absolute_actions` is the one place a chunk is resolved into absolute targets: the executor's
timeline, the RViz preview, the replay's scores and plots all call it.
"""

from __future__ import annotations

import numpy as np

from vla_ros.core.rotations import quat_conj, quat_mul, quat_to_rotvec, rotvec_to_quat
from vla_ros.core.types import ActionChunk, ActionMode, EEPose


def absolute_to_delta(actions: np.ndarray, reference: EEPose) -> np.ndarray:
    """[..., 7] absolute (x, y, z, rx, ry, rz, g) -> offsets from `reference` (gripper unchanged)."""
    a = np.asarray(actions, dtype=np.float64)
    out = a.copy()
    out[..., :3] = a[..., :3] - reference.position
    q = quat_mul(rotvec_to_quat(a[..., 3:6]), quat_conj(reference.orientation))
    out[..., 3:6] = quat_to_rotvec(q)
    return out


def delta_to_absolute(deltas: np.ndarray, reference: EEPose) -> np.ndarray:
    """Inverse of `absolute_to_delta`."""
    d = np.asarray(deltas, dtype=np.float64)
    out = d.copy()
    out[..., :3] = reference.position + d[..., :3]
    q = quat_mul(rotvec_to_quat(d[..., 3:6]), reference.orientation)
    out[..., 3:6] = quat_to_rotvec(q)
    return out


def absolute_actions(chunk: ActionChunk) -> np.ndarray:
    """A chunk's actions as absolute targets [H, 7] (x, y, z, rx, ry, rz, g), a new array.

    DELTA chunks are composed with their ``reference_pose`` (ActionChunk requires one in DELTA mode).
    """
    acts = np.asarray(chunk.actions, dtype=np.float64)
    if chunk.mode == ActionMode.DELTA:
        return delta_to_absolute(acts, chunk.reference_pose)
    return acts.copy()


def absolute_poses(chunk: ActionChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions [H, 3], quaternions [H, 4] (x, y, z, w), gripper [H]) of `absolute_actions`."""
    acts = absolute_actions(chunk)
    return acts[:, :3].copy(), rotvec_to_quat(acts[:, 3:6]), acts[:, 6].copy()
