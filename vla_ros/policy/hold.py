"""`hold`: the do-nothing baseline. Every chunk repeats the current end-effector pose.

It is the reference every evaluation compares against (a policy that cannot beat "stay where you
are" has learnt nothing), and a safe policy to bring up a new robot with.
"""

from __future__ import annotations

import json
import os

import numpy as np

from vla_ros.core.types import ActionChunk, ActionMode, ChunkGuidance, Observation
from vla_ros.policy.base import Policy, PolicyMetadata


class HoldPolicy(Policy):
    policy_type = "hold"

    def __init__(self, horizon: int = 10, dt: float = 0.1, device: str = "cpu", dtype: str = "float32"):
        self._meta = PolicyMetadata(
            policy_type=self.policy_type,
            checkpoint_id="",
            cameras=(),
            state_source="ee_pose",
            state_dim=7,
            horizon=int(horizon),
            dt=float(dt),
            action_mode=ActionMode.ABSOLUTE,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def load(cls, checkpoint: str | None, device: str = "cpu", dtype: str = "float32") -> "HoldPolicy":
        """`checkpoint` is optional: a directory (or file) with a JSON {"horizon": H, "dt": s}."""
        if not checkpoint:
            return cls(device=device, dtype=dtype)
        path = os.path.join(checkpoint, "config.json") if os.path.isdir(checkpoint) else checkpoint
        try:
            with open(path, encoding="utf-8") as f:
                cfg = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"policy.checkpoint: cannot read hold policy config {path}: {exc}") from exc
        return cls(horizon=cfg.get("horizon", 10), dt=cfg.get("dt", 0.1), device=device, dtype=dtype)

    @property
    def metadata(self) -> PolicyMetadata:
        return self._meta

    def infer(
        self,
        observation: Observation,
        *,
        noise: np.ndarray | None = None,
        guidance: ChunkGuidance | None = None,
    ) -> ActionChunk:
        state = observation.ee_state()
        actions = np.repeat(state[None, :], self._meta.horizon, axis=0)
        return ActionChunk(
            stamp=observation.stamp,
            dt=self._meta.dt,
            actions=actions,
            mode=ActionMode.ABSOLUTE,
            frame_id=observation.ee_pose.frame_id if observation.ee_pose else "",
            policy_id=self.policy_type,
            checkpoint_id=self._meta.checkpoint_id,
        )
