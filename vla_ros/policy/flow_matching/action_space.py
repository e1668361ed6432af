"""Between robot quantities and the model's state/action vectors (numpy, ROS-free).

- `extract_state`: the state vector a checkpoint was trained on, from an `Observation`, with a
  ValueError naming what is missing or mis-sized.
- `absolute_to_delta` / `delta_to_absolute`: the DELTA action convention of ActionChunk.msg:
  position = reference.position + delta.position; rotation = delta_rotation * reference_rotation
  (left-multiplied, as rotation vectors here); the gripper stays absolute.
"""

from __future__ import annotations

import numpy as np

from vla_ros.core.rotations import quat_conj, quat_mul, quat_to_rotvec, rotvec_to_quat
from vla_ros.core.types import EEPose, Observation
from vla_ros.policy.flow_matching.config import IOConfig


def extract_state(obs: Observation, io: IOConfig) -> np.ndarray | None:
    """State vector [state_dim] float64 for `io.state_source`, or None for 'none'.

    ee_pose: (x, y, z, rx, ry, rz, gripper) from `Observation.ee_state` (a missing gripper
    reading counts as UNKNOWN_GRIPPER_OPENING, as there). joints: the joint positions (+ the gripper opening when
    `state_includes_gripper`).
    """
    if io.state_source == "none":
        return None
    if io.state_source == "ee_pose":
        if obs.ee_pose is None:
            raise ValueError("observation.ee_pose: this policy's state is the end-effector pose (state_source 'ee_pose'), but it is missing")
        return obs.ee_state()
    joints = obs.joint_positions
    if joints is None:
        raise ValueError("observation.joint_positions: this policy's state is the joint positions (state_source 'joints'), but they are missing")
    n_joints = io.state_dim - int(io.state_includes_gripper)
    if joints.shape[0] != n_joints:
        names = f" ({', '.join(io.joint_names)})" if io.joint_names else ""
        raise ValueError(f"observation.joint_positions: this policy expects {n_joints} joints{names}, got {joints.shape[0]}")
    if io.state_includes_gripper:
        if obs.gripper is None:
            raise ValueError("observation.gripper: this policy's state includes the gripper opening, but it is missing")
        return np.concatenate([joints, [float(obs.gripper)]])
    return np.asarray(joints, dtype=np.float64)


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
