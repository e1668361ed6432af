"""Fixtures of the replay tests: the sim_tabletop config, small synthetic bags, a tiny checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from replay_testlib import small_scene


@pytest.fixture(scope="session")
def sim_cfg():
    from vla_ros.replay.demo import demo_config

    return demo_config("")


@pytest.fixture(scope="session")
def episode_bags(tmp_path_factory):
    """One short synthetic episode written twice: sqlite3 and mcap storage (same messages)."""
    from vla_ros.replay.synthetic import Episode, write_episode_bag

    root = tmp_path_factory.mktemp("episode")
    scene = small_scene()
    ep = Episode.sample(np.random.default_rng(5), scene, seed=5)
    data = ep.simulate(scene)
    return {
        storage: write_episode_bag(root / f"ep_{storage}", ep, scene, storage=storage, data=data, duration=2.0)
        for storage in ("sqlite3", "mcap")
    }


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random flow-matching checkpoint with the demo's layout (2 cameras, 32 px, delta actions)."""
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint
    from vla_ros.replay.demo import SMALL_MODEL

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", cameras=("primary", "wrist"), image_size=32,
                                patch_size=8, horizon=10, dt=0.1, action_mode="delta", max_text_tokens=8,
                                overrides=SMALL_MODEL)
