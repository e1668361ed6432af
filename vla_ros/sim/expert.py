"""The scripted expert as a `Policy`: it reads the simulator's true state (privileged) and returns chunks.

It runs through exactly the same loop as any policy under test (observation builder, inference
worker, executor, safety limits), so its closed-loop numbers are the ceiling to compare against,
and its recorded episodes (`vla-ros sim-eval --record`) are the demo's training data.

A chunk is one decision of the task's Markov rule (`vla_ros.sim.tasks`) on the measured state:
a straight path from the tool towards the rule's waypoint at ``speed`` (stopping there), the yaw
turning towards the rule's yaw at ``EXPERT_YAW_SPEED``, the rule's gripper value throughout.
Replanning at the policy rate strings the phases together. Absolute actions in the base frame.
"""

from __future__ import annotations

import numpy as np

from vla_ros.core.rotations import quat_to_rotvec
from vla_ros.core.types import ActionChunk, ActionMode, ChunkGuidance, Observation
from vla_ros.policy.base import Policy, PolicyMetadata
from vla_ros.sim.world import SimWorld, quat_mul_down_inv, tool_quat

EXPERT_SPEED = 0.15  # [m/s]
EXPERT_YAW_SPEED = 1.0  # [rad/s]


class ExpertPolicy(Policy):
    policy_type = "sim_expert"

    def __init__(self, world: SimWorld | None = None, horizon: int = 10, dt: float = 0.1, speed: float = EXPERT_SPEED,
                 frame_id: str = "base_link"):
        self.world = world
        self.speed = float(speed)
        self.frame_id = frame_id
        self._meta = PolicyMetadata(policy_type=self.policy_type, cameras=(), state_source="ee_pose",
                                    horizon=int(horizon),
                                    dt=float(dt), action_mode=ActionMode.ABSOLUTE)

    @classmethod
    def load(cls, checkpoint: str | None, device: str = "cpu", dtype: str = "float32") -> "ExpertPolicy":
        raise ValueError("policy.type sim_expert: the scripted expert is built by vla-ros sim-eval around a simulator; "
                         "it has no checkpoint to load")

    @property
    def metadata(self) -> PolicyMetadata:
        return self._meta

    def bind(self, world: SimWorld) -> None:
        """The world whose true state the next chunks are planned from."""
        self.world = world

    def infer(self, observation: Observation, *, noise: np.ndarray | None = None,
              guidance: ChunkGuidance | None = None) -> ActionChunk:
        w = self.world
        if w is None:
            raise ValueError("observation: the sim expert has no world bound (ExpertPolicy.bind)")
        tool, quat = w.ee_pose()
        yaw = float(quat_to_rotvec(quat_mul_down_inv(quat))[2])
        cube, cube_yaw = w.cube_pose()
        opening = w.gripper_opening()
        m = self._meta
        step, yaw_step = self.speed * m.dt, EXPERT_YAW_SPEED * m.dt
        # One decision from the measured state, then a straight, speed-limited path to its waypoint.
        wp, want_yaw, grip = w.task.expert(tool, yaw, cube, cube_yaw, opening, w.layout)
        p = tool.copy()
        actions = np.zeros((m.horizon, 7))
        for i in range(m.horizon):
            d = wp - p
            n = float(np.linalg.norm(d))
            p = wp.copy() if n <= step else p + d * (step / n)
            yaw += float(np.clip(want_yaw - yaw, -yaw_step, yaw_step))
            actions[i, :3] = p
            actions[i, 3:6] = quat_to_rotvec(tool_quat(yaw))
            actions[i, 6] = grip
        return ActionChunk(stamp=observation.stamp, dt=m.dt, actions=actions, mode=ActionMode.ABSOLUTE,
                           frame_id=self.frame_id, policy_id=self.policy_type)
