"""Fixtures of the simulator tests: the sim_panda config, a tiny checkpoint; rendering is required here."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def render_ok():
    """Skip (with the reason) where no offscreen GL context can be made; `make setup` installs Mesa's EGL."""
    from vla_ros.sim.world import rendering_problem

    why = rendering_problem()
    if why:
        pytest.skip(why)
    return True


@pytest.fixture(scope="session")
def panda_cfg():
    from vla_ros.replay.demo import sim_demo_config

    return sim_demo_config("", {"sim.image_size": 64})


@pytest.fixture(scope="session")
def sim_checkpoint(tmp_path_factory):
    """A tiny random flow-matching checkpoint with the demo's layout (2 cameras, 32 px, delta actions)."""
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint
    from vla_ros.replay.demo import SMALL_MODEL

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", cameras=("primary", "wrist"), image_size=32,
                                patch_size=8, horizon=10, dt=0.1, action_mode="delta", max_text_tokens=8,
                                overrides=SMALL_MODEL)
