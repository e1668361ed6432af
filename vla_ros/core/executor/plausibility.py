"""Plausibility checks: what the executor (and the policy node) refuse to act on at all.

The safety filter (`safety.py`) bounds *how* the arm moves; it cannot tell a wrong input from a
right one. Clipping a target that is 10 m away to the workspace edge and driving there at the
speed limit is "safe" by the filter's rules and still wrong. So before the filter:

- `PoseMonitor` judges every measured end-effector pose: inside the workspace box plus
  ``safety.workspace_margin``, no faster jump from the previous plausible reading than
  ``safety.max_measured_speed`` / ``max_measured_angular_speed`` (a TF mix-up, millimetres for
  metres, another robot's topic), and not older than ``safety.max_pose_age``. An implausible or
  stale pose makes the executor hold and say why; it never becomes a hold target or a twist error.
- `check_chunk` judges an action chunk whole, before it enters the plan: a length limit, every pose
  inside the box plus the margin, gripper values in range, the first pose within reach of the
  measured pose, and a DELTA chunk's reference consistent with the measured pose. A chunk that fails
  is refused with a `ChunkProblem` naming the first bad step; it is never clipped silently.

Both are ROS-free and take time as an argument, so the nodes and the replay judge identically.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from vla_ros.core.config import SafetyConfig
from vla_ros.core.executor.interpolation import quat_angle
from vla_ros.core.action_modes import absolute_poses
from vla_ros.core.types import ActionChunk, ActionMode, EEPose

# Gripper values are normalised openings in [0, 1]; a little over/undershoot (un-normalisation
# rounding) is clamped by the safety filter, anything further means the output is not a gripper value.
GRIPPER_TOLERANCE = 0.05
# Readings closer in time than this are compared as if this far apart (no division by ~0).
MIN_READING_INTERVAL = 1e-3
# Sensor noise floor: a reading may move this much regardless of the time since the previous one (m).
NOISE_FLOOR = 1e-4
CHUNK_PROBLEM_CODES = ("length", "frame", "workspace", "gripper", "reach", "delta_reference")
_AXES = "xyz"


class ChunkProblem(NamedTuple):
    """Why a chunk is refused: a code (one of CHUNK_PROBLEM_CODES), the first bad step (-1: the
    chunk as a whole) and a sentence naming the limit."""

    code: str
    step: int
    message: str


def outside_box(position: np.ndarray, safety: SafetyConfig) -> str:
    """"" if `position` is inside the workspace box plus the margin, else which bound it breaks."""
    m = safety.workspace_margin
    for i, axis in enumerate(_AXES):
        v = float(position[i])
        if v < safety.workspace_min[i] - m:
            return f"{axis} = {v:.3f} m below safety.workspace_min {axis} = {safety.workspace_min[i]} - margin {m}"
        if v > safety.workspace_max[i] + m:
            return f"{axis} = {v:.3f} m above safety.workspace_max {axis} = {safety.workspace_max[i]} + margin {m}"
    return ""


class PoseMonitor:
    """Judges measured end-effector poses one reading at a time (see the module docstring)."""

    def __init__(self, safety: SafetyConfig):
        self.safety = safety
        self.pose: EEPose | None = None  # the last plausible reading
        self.time = -math.inf  # its measurement time
        self.rejected = 0
        self.last_problem = ""  # why the newest reading was refused ("" = it was plausible)
        self.reading_time = -math.inf  # time of the newest reading, plausible or not

    def update(self, pose: EEPose, pose_time: float) -> str:
        """Judge one reading; "" if plausible (it becomes the current pose), else the reason."""
        self.reading_time = float(pose_time)
        problem = self._judge(pose, pose_time)
        if problem:
            self.rejected += 1
            self.last_problem = problem
            return problem
        self.pose, self.time = pose, float(pose_time)
        self.last_problem = ""
        return ""

    def _judge(self, pose: EEPose, pose_time: float) -> str:
        out = outside_box(pose.position, self.safety)
        if out:
            return f"measured end-effector pose implausible: {out} (wrong frame or units?)"
        prev = self.pose
        if prev is None:
            return ""
        if pose_time < self.time:
            return f"measured end-effector pose stamped {self.time - pose_time:.3f} s before the previous one"
        interval = max(pose_time - self.time, MIN_READING_INTERVAL)
        dist = float(np.linalg.norm(pose.position - prev.position))
        if dist > self.safety.max_measured_speed * interval + NOISE_FLOOR:
            return (f"measured end-effector pose jumped {dist:.3f} m in {pose_time - self.time:.3f} s "
                    f"(faster than safety.max_measured_speed = {self.safety.max_measured_speed} m/s)")
        angle = quat_angle(prev.orientation, pose.orientation)
        if angle > self.safety.max_measured_angular_speed * interval + NOISE_FLOOR:
            return (f"measured end-effector orientation jumped {angle:.3f} rad in {pose_time - self.time:.3f} s "
                    f"(faster than safety.max_measured_angular_speed = {self.safety.max_measured_angular_speed} rad/s)")
        return ""

    def problem(self, now: float) -> str:
        """"" if the newest reading was plausible and is fresh at `now`, else why the pose cannot be used."""
        if self.last_problem:
            return self.last_problem
        if self.pose is None:
            return "waiting for the end-effector pose (robot.ee_pose_topic)"
        age = now - self.time
        if age > self.safety.max_pose_age:
            return f"end-effector pose stale: {age:.3f} s old (safety.max_pose_age = {self.safety.max_pose_age} s)"
        return ""

    def fresh_pose(self, now: float) -> EEPose | None:
        """The current plausible pose if fresh at `now`, else None."""
        return None if self.problem(now) else self.pose


def check_chunk(chunk: ActionChunk, safety: SafetyConfig, *, measured: EEPose | None, now: float,
                max_steps: int, frame_id: str = "") -> ChunkProblem | None:
    """None if `chunk` may enter the plan, else the first reason it may not (module docstring).

    `measured` is the current plausible end-effector pose (None: reach is not checked, and a
    DELTA chunk is refused - its reference cannot be confirmed). `frame_id` is the command frame
    ('' = not checked); the chunk's own '' frame means that frame.
    """
    if chunk.horizon > max_steps:
        return ChunkProblem("length", -1, f"{chunk.horizon} steps, more than executor.max_chunk_steps = {max_steps}")
    if chunk.frame_id and frame_id and chunk.frame_id != frame_id:
        return ChunkProblem("frame", -1, f"header.frame_id: expected {frame_id!r} (robot.base_frame) or '', "
                                         f"got {chunk.frame_id!r}")
    age = max(0.0, now - chunk.stamp)
    if chunk.mode == ActionMode.DELTA:
        problem = _check_reference(chunk.reference_pose, measured, age, safety)
        if problem is not None:
            return problem
    pos, quat, grip = absolute_poses(chunk)
    m = safety.workspace_margin
    lo, hi = np.asarray(safety.workspace_min) - m, np.asarray(safety.workspace_max) + m
    outside = np.flatnonzero(((pos < lo) | (pos > hi)).any(axis=1))
    if outside.size:
        i = int(outside[0])
        return ChunkProblem("workspace", i, f"step {i}: {outside_box(pos[i], safety)}")
    bad = np.flatnonzero((grip < -GRIPPER_TOLERANCE) | (grip > 1.0 + GRIPPER_TOLERANCE))
    if bad.size:
        i = int(bad[0])
        return ChunkProblem("gripper", i, f"step {i}: gripper = {grip[i]:.3f}, expected a normalised opening in [0, 1]")
    if measured is not None:
        reach = safety.max_start_distance + safety.max_linear_speed * age
        dist = float(np.linalg.norm(pos[0] - measured.position))
        if dist > reach:
            return ChunkProblem("reach", 0, f"step 0: {dist:.3f} m from the measured pose, more than "
                                            f"safety.max_start_distance = {safety.max_start_distance} m "
                                            f"(+ max_linear_speed x {age:.3f} s of chunk age)")
        angle = quat_angle(measured.orientation, quat[0])
        turn = safety.max_start_angle + safety.max_angular_speed * age
        if angle > turn:
            return ChunkProblem("reach", 0, f"step 0: rotated {angle:.3f} rad from the measured pose, more than "
                                            f"safety.max_start_angle = {safety.max_start_angle} rad "
                                            f"(+ max_angular_speed x {age:.3f} s of chunk age)")
    return None


def _check_reference(ref: EEPose | None, measured: EEPose | None, age: float,
                     safety: SafetyConfig) -> ChunkProblem | None:
    if measured is None:
        return ChunkProblem("delta_reference", -1, "DELTA chunk refused: no plausible measured pose to confirm its "
                                                   "reference_pose against")
    tol = safety.delta_reference_tolerance + safety.max_linear_speed * age
    dist = float(np.linalg.norm(ref.position - measured.position))
    if dist > tol:
        return ChunkProblem("delta_reference", -1,
                            f"reference_pose is {dist:.3f} m from the measured pose (more than "
                            f"safety.delta_reference_tolerance = {safety.delta_reference_tolerance} m + "
                            f"max_linear_speed x {age:.3f} s); was reference_pose left unset?")
    return None
