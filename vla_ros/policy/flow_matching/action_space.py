"""Between robot quantities and the model's state/action vectors (numpy, ROS-free).

- `extract_state`: the state vector a checkpoint was trained on, from an `Observation`, with a
  ValueError naming what is missing or mis-sized.
- `policy_state`: the same through a declared state layout (``policy.state_map``,
  `vla_ros.policy.adapters.StateAdapter`) when the policy profile gives one.
(The DELTA convention itself lives in `vla_ros.core.action_modes`, shared with the executor.)
"""

from __future__ import annotations

import numpy as np

from vla_ros.core.types import Observation
from vla_ros.policy.adapters import StateAdapter
from vla_ros.policy.flow_matching.config import IOConfig


def policy_state(obs: Observation, io: IOConfig, adapter: StateAdapter | None) -> np.ndarray | None:
    """The raw state vector for the model: the adapter's layout if one is configured, else `extract_state`."""
    if adapter is None or not io.uses_state:
        return extract_state(obs, io)
    state = adapter(obs)
    if state.shape[0] != io.state_dim:  # the adapter was built for this state_dim; a guard, not a user error
        raise ValueError(f"observation: the state map gives {state.shape[0]} values, the checkpoint takes "
                         f"{io.state_dim}")
    return state


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
            raise ValueError("observation.ee_pose: this policy's state is the end-effector pose (state_source "
                             "'ee_pose'), but it is missing")
        return obs.ee_state()
    joints = obs.joint_positions
    if joints is None:
        raise ValueError("observation.joint_positions: this policy's state is the joint positions (state_source "
                         "'joints'), but they are missing")
    n_joints = io.state_dim - int(io.state_includes_gripper)
    if joints.shape[0] != n_joints:
        names = f" ({', '.join(io.joint_names)})" if io.joint_names else ""
        raise ValueError(f"observation.joint_positions: this policy expects {n_joints} joints{names}, got "
                         f"{joints.shape[0]}")
    if io.state_includes_gripper:
        if obs.gripper is None:
            raise ValueError("observation.gripper: this policy's state includes the gripper opening, but it is missing")
        return np.concatenate([joints, [float(obs.gripper)]])
    return np.asarray(joints, dtype=np.float64)
