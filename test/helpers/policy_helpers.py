"""Helpers for the policy tests: tiny-checkpoint options and synthetic observations."""

from __future__ import annotations

import numpy as np

from vla_ros.core.types import EEPose, Observation

SMALL = {
    "backbone": {"hidden_size": 64, "intermediate_size": 128, "head_dim": 16},
    "expert": {"hidden_size": 32, "intermediate_size": 64},
}
CAMERAS = ("primary", "wrist")


def make_checkpoint(directory, **options):
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint

    options.setdefault("image_size", 32)
    options.setdefault("patch_size", 8)
    options.setdefault("cameras", CAMERAS)
    options.setdefault("overrides", SMALL)
    return make_tiny_checkpoint(directory, **options)


def make_observation(seed: int = 0, cameras=CAMERAS, instruction: str = "pick up the red cube", *, stamp: float = 12.5,
                     joints: int | None = None, gripper: float | None = 0.7, ee_pose: bool = True,
                     image_shape=(24, 40)) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(
        stamp=stamp,
        images={c: rng.integers(0, 256, (*image_shape, 3), dtype=np.uint8) for c in cameras},
        joint_positions=None if joints is None else rng.uniform(-1, 1, joints),
        ee_pose=EEPose(np.array([0.45, 0.02, 0.31]) + rng.normal(0, 0.01, 3), np.array([0.0, 0.1, 0.2, 0.97]),
                       "base_link")
        if ee_pose else None,
        gripper=gripper,
        instruction=instruction,
    )


def fixed_noise(policy, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((policy.metadata.horizon, 7))
