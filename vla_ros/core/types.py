"""ROS-free data types that flow through vla_ros: observations in, action chunks out.

The ROS nodes, the rosbag replay and the tests all speak these types, so the logic that uses them
(synchronisation, policy inference, execution) never needs a ROS message. Times are float seconds
on the ROS clock (sim time in replay); arrays are numpy.

Action layout (7-DoF end-effector): ``x, y, z`` in metres, ``rx, ry, rz`` a rotation vector
(axis * angle, radians) and ``gripper`` a normalised opening in [0, 1] (0 closed, 1 open).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from vla_ros.core.rotations import quat_normalize, quat_to_rotvec

ACTION_DIM = 7
ACTION_NAMES = ("x", "y", "z", "rx", "ry", "rz", "gripper")
# Gripper opening assumed when a robot reports none: open, the rest state of most grippers, so a
# hold or a state vector never implies a grasp that was not measured.
UNKNOWN_GRIPPER_OPENING = 1.0


class ActionMode(enum.IntEnum):
    """How the poses of a chunk are to be read; values match ActionChunk.msg constants."""

    ABSOLUTE = 0  # absolute targets in the chunk's frame
    DELTA = 1  # offsets from the chunk's reference pose (the EE pose at the observation)

    @classmethod
    def parse(cls, value: "str | int | ActionMode") -> "ActionMode":
        if isinstance(value, ActionMode):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise ValueError(f"action_mode: expected 'absolute' or 'delta', got {value!r}") from None
        return cls(int(value))


def _finite_array(name: str, value, shape_tail: tuple[int, ...] | None, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if shape_tail is not None and arr.shape[-len(shape_tail):] != shape_tail:
        raise ValueError(f"{name}: expected shape (..., {', '.join(map(str, shape_tail))}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


@dataclass(frozen=True)
class EEPose:
    """End-effector pose: position (m) and unit quaternion (x, y, z, w) in ``frame_id``."""

    position: np.ndarray
    orientation: np.ndarray
    frame_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", _finite_array("ee_pose.position", self.position, (3,), 1))
        q = _finite_array("ee_pose.orientation", self.orientation, (4,), 1)
        object.__setattr__(self, "orientation", quat_normalize(q))

    def as_vector(self) -> np.ndarray:
        """6-vector (x, y, z, rx, ry, rz)."""
        return np.concatenate([self.position, quat_to_rotvec(self.orientation)])


@dataclass(frozen=True)
class Observation:
    """One synchronised snapshot of what the robot sees and feels.

    ``images`` maps camera name -> HxWx3 uint8 RGB; a camera that is not present is simply absent
    (the policy masks it). ``joint_positions`` follows the robot profile's ``joint_names`` order.
    """

    stamp: float
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    joint_positions: np.ndarray | None = None
    ee_pose: EEPose | None = None
    gripper: float | None = None
    instruction: str = ""

    def __post_init__(self) -> None:
        if not math.isfinite(self.stamp):
            raise ValueError(f"observation.stamp: expected finite seconds, got {self.stamp!r}")
        for name, img in self.images.items():
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                shape = getattr(img, "shape", None)
                dtype = getattr(img, "dtype", type(img).__name__)
                raise ValueError(f"observation.images[{name!r}]: expected HxWx3 uint8 RGB, got {shape} {dtype}")
        if self.joint_positions is not None:
            object.__setattr__(
                self, "joint_positions", _finite_array("observation.joint_positions", self.joint_positions, None, 1)
            )
        if self.gripper is not None and not math.isfinite(self.gripper):
            raise ValueError("observation.gripper: contains NaN or inf")

    def ee_state(self) -> np.ndarray:
        """7-vector (x, y, z, rx, ry, rz, gripper) of the current end effector, same layout as actions.

        A missing gripper reading reads as UNKNOWN_GRIPPER_OPENING.
        """
        if self.ee_pose is None:
            raise ValueError("observation.ee_pose: required for an end-effector state, but missing")
        g = UNKNOWN_GRIPPER_OPENING if self.gripper is None else float(self.gripper)
        return np.concatenate([self.ee_pose.as_vector(), [g]])


@dataclass(frozen=True)
class ActionChunk:
    """H end-effector actions predicted from one observation; mirrors ActionChunk.msg.

    ``actions[i]`` = (x, y, z, rx, ry, rz, gripper) is the target for ``stamp + i * dt``.
    In DELTA mode the first six values are offsets from ``reference_pose``.
    """

    stamp: float
    dt: float
    actions: np.ndarray
    mode: ActionMode = ActionMode.ABSOLUTE
    frame_id: str = ""
    reference_pose: EEPose | None = None
    seq: int = 0
    policy_id: str = ""
    checkpoint_id: str = ""
    inference_latency: float = 0.0
    observation_age: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.stamp):
            raise ValueError(f"action_chunk.stamp: expected finite seconds, got {self.stamp!r}")
        if not (math.isfinite(self.dt) and self.dt > 0.0):
            raise ValueError(f"action_chunk.dt: expected a positive number of seconds, got {self.dt!r}")
        acts = _finite_array("action_chunk.actions", self.actions, (ACTION_DIM,), 2)
        if acts.shape[0] < 1:
            raise ValueError("action_chunk.actions: expected at least one action, got an empty chunk")
        acts = acts.copy()
        acts.flags.writeable = False
        object.__setattr__(self, "actions", acts)
        object.__setattr__(self, "mode", ActionMode.parse(self.mode))
        if self.mode == ActionMode.DELTA and self.reference_pose is None:
            raise ValueError("action_chunk.reference_pose: required in DELTA mode (the pose the deltas are from)")

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def times(self) -> np.ndarray:
        """Target time of each action (s)."""
        return self.stamp + self.dt * np.arange(self.horizon)

    @property
    def end_time(self) -> float:
        return self.stamp + self.dt * (self.horizon - 1)

    def with_fields(self, **changes) -> "ActionChunk":
        """Copy with some fields changed (seq, latency, ...), re-validated."""
        return replace(self, **changes)


@dataclass(frozen=True)
class ChunkGuidance:
    """Real-Time Chunking input for one inference: what the next chunk should agree with.

    ``actions[i]`` is an absolute 7-vector (x, y, z, rx, ry, rz, gripper) target for
    ``stamp + i * dt`` on the NEW chunk's timeline (the observation stamp), taken from the
    executor's current plan; ``weights[i]`` in [0, 1] is the soft inpainting mask (1 for the
    committed steps, decaying over the rest of the overlap, 0 where no plan exists).
    ``max_guidance_weight`` caps the guidance strength (beta in Black, Galliker & Levine 2025).
    """

    actions: np.ndarray
    weights: np.ndarray
    max_guidance_weight: float = 5.0

    def __post_init__(self) -> None:
        acts = _finite_array("guidance.actions", self.actions, (ACTION_DIM,), 2)
        w = _finite_array("guidance.weights", self.weights, None, 1)
        if w.shape[0] != acts.shape[0]:
            raise ValueError(f"guidance.weights: expected {acts.shape[0]} weights (one per action), got {w.shape[0]}")
        if np.any((w < 0.0) | (w > 1.0)):
            raise ValueError("guidance.weights: expected values in [0, 1]")
        if not (math.isfinite(self.max_guidance_weight) and self.max_guidance_weight >= 0.0):
            raise ValueError("guidance.max_guidance_weight: expected a finite number >= 0")
        object.__setattr__(self, "actions", acts)
        object.__setattr__(self, "weights", w)

    @property
    def committed_steps(self) -> int:
        """Number of leading steps with full weight."""
        full = np.flatnonzero(self.weights < 1.0)
        return int(full[0]) if full.size else int(self.weights.shape[0])
