"""Test policies for the closed-loop simulator tests: ones that command what must never reach the arm."""

from __future__ import annotations

import numpy as np

from vla_ros.core.types import ActionChunk, ActionMode, ChunkGuidance, Observation
from vla_ros.policy.base import Policy, PolicyMetadata


class _TestPolicy(Policy):
    policy_type = "sim_test"

    def __init__(self, horizon: int = 10, dt: float = 0.1):
        self._meta = PolicyMetadata(self.policy_type, cameras=("primary",), horizon=horizon, dt=dt,
                                    action_mode=ActionMode.ABSOLUTE)
        self.calls = 0

    @classmethod
    def load(cls, checkpoint, device="cpu", dtype="float32"):
        return cls()

    @property
    def metadata(self) -> PolicyMetadata:
        return self._meta

    def actions(self, observation: Observation) -> np.ndarray:
        raise NotImplementedError

    def infer(self, observation: Observation, *, noise=None, guidance: ChunkGuidance | None = None) -> ActionChunk:
        self.calls += 1
        return ActionChunk(stamp=observation.stamp, dt=self._meta.dt, actions=self.actions(observation),
                           mode=ActionMode.ABSOLUTE, frame_id="base_link", policy_id=self.policy_type)


class OutsideWorkspacePolicy(_TestPolicy):
    """A straight path from the tool to `goal`, outside the workspace (default: far below the table, past its edge)."""

    def __init__(self, goal=(1.2, 0.7, -0.3), **kw):
        super().__init__(**kw)
        self.GOAL = np.asarray(goal, dtype=np.float64)

    def actions(self, observation):
        p = observation.ee_pose.position
        steps = np.linspace(0.1, 1.0, self._meta.horizon)[:, None]
        acts = np.zeros((self._meta.horizon, 7))
        acts[:, :3] = p + steps * (self.GOAL - p)
        acts[:, 3] = np.pi  # tool pointing down
        acts[:, 6] = 1.0
        return acts


class NaNAfterPolicy(_TestPolicy):
    """Two sane chunks (move down 5 cm), then chunks whose poses are NaN."""

    def actions(self, observation):
        acts = np.zeros((self._meta.horizon, 7))
        acts[:, :3] = observation.ee_pose.position + np.array([0.0, 0.0, -0.05])
        acts[:, 3] = np.pi
        acts[:, 6] = 1.0
        if self.calls > 2:
            acts[:, :3] = np.nan
        return acts
