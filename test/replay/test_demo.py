"""The demo pipeline end to end, reduced (few episodes, a few training steps), and the synthetic scene of the
replay tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from replay_testlib import small_scene
from vla_ros.cli import main
from vla_ros.replay.bag_io import Bag
from vla_ros.replay.synthetic import TOPICS, Episode, render_scene, write_episode_bag


def test_synthetic_episode_is_deterministic_and_the_expert_leads(tmp_path):
    scene = small_scene()
    a = Episode.sample(np.random.default_rng(11), scene, seed=11).simulate(scene)
    b = Episode.sample(np.random.default_rng(11), scene, seed=11).simulate(scene)
    np.testing.assert_array_equal(a.cmd_pos, b.cmd_pos)
    assert set(a.phase) == {0, 1, 2}  # reach, grasp, lift
    assert a.gripper[-1] < 0.1 and a.ee_pos[-1, 2] > a.ee_pos[a.phase.tolist().index(1), 2] + 0.1  # lifted
    lead = np.linalg.norm(a.cmd_pos - a.ee_pos, axis=1)
    assert lead[a.phase == 0].max() == pytest.approx(scene.lookahead, abs=1e-9)  # the command is a carrot ahead
    img = render_scene(a, 0, 32, 1.0, np.random.default_rng(0), 0.0)
    assert img.shape == (32, 32,
                         3) and (img[..., 0] > 150).sum() > 0 and (img[..., 0].astype(int) - img[..., 1] > 100).any()
    ep = Episode.sample(np.random.default_rng(11), scene, seed=11)
    p1 = write_episode_bag(tmp_path / "a", ep, scene, duration=1.0)
    p2 = write_episode_bag(tmp_path / "b", ep, scene, duration=1.0)
    with Bag(p1) as x, Bag(p2) as y:
        assert set(x.topics) == set(TOPICS.values())
        for m1, m2 in zip(x.messages(raw=True), y.messages(raw=True)):
            assert (m1.topic, m1.t_ns, bytes(m1.raw)) == (m2.topic, m2.t_ns, bytes(m2.raw))


def test_training_samples_are_the_recorded_future(episode_bags, sim_cfg, tiny_checkpoint):
    from vla_ros.policy.base import PolicyMetadata
    from vla_ros.policy.training.dataset import samples_from_bag

    meta = PolicyMetadata("flow_matching", cameras=("primary", "wrist"), horizon=10, dt=0.1)
    obs, acts = samples_from_bag(episode_bags["mcap"], sim_cfg, meta)
    assert len(obs) >= 15 and acts.shape == (len(obs), 10, 7)
    assert all(set(o.images) == {"primary", "wrist"} and o.instruction == "pick up the red block" for o in obs)
    with Bag(episode_bags["mcap"]) as bag:
        cmds = [m.msg for m in bag.messages(["/target_pose"])]
    t = np.array([c.header.stamp.sec + c.header.stamp.nanosec * 1e-9 for c in cmds])
    p = np.array([[c.pose.position.x, c.pose.position.y, c.pose.position.z] for c in cmds])
    k = 3
    for i in range(10):
        tau = min(obs[k].stamp + 0.1 * i, t[-1])
        np.testing.assert_allclose(acts[k, i, :3], [np.interp(tau, t, p[:, d]) for d in range(3)], atol=1e-9)


def test_demo_end_to_end_reduced(tmp_path, capsys):
    """Simulator demonstrations -> training -> replay + closed loop, reduced (a few episodes, a few steps)."""
    from vla_ros.sim.world import rendering_problem

    if rendering_problem():
        pytest.skip(rendering_problem())
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--episodes", "3", "--test-episodes", "1", "--max-steps", "6",
               "--train-seconds", "60", "--no-progress", "--set", "sim.episode_seconds=3", "--set",
               "sim.image_size=48"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "training: 6 steps" in text and "replay chunk position error: trained" in text and f"report: {out}" in text
    assert "closed-loop success rate: trained" in text
    numbers = json.loads((out / "demo.json").read_text())["numbers"]
    assert numbers["train_steps"] == 6 and np.isfinite(numbers["final_loss"])
    assert numbers["episodes"] == {"train": 3, "test": 1} and numbers["task"] == "reach"
    assert numbers["chunk_position_error_m"]["hold"] > 0 and numbers["chunk_position_error_m"]["policy"] > 0
    cl = numbers["closed_loop"]
    assert cl["expert"]["success_rate"] == 1.0 and cl["hold"]["success_rate"] == 0.0 and cl["policy"]["episodes"] == 1
    assert (out / "report" / "index.html").is_file() and (out / "checkpoint" / "model.safetensors").is_file()
    assert (out / "report" / "gifs" / "ep_000.gif").is_file()
    sim = json.loads((out / "report" / "metrics.json").read_text())
    assert sim["format"] == "vla_ros.sim_eval" and sim["summary"]["expert"]["successes"] == 1
    doc = json.loads((out / "replay" / "metrics.json").read_text())
    assert doc["summary"]["evaluated"] == 1 and doc["policy"]["type"] == "flow_matching"
    assert doc["bags"][0]["hold"]["chunks"]["count"] > 0
    assert doc["bags"][0]["ground_truth"]["topic"] == "/target_pose"  # the executor's recorded commands
    assert len(list((out / "bags" / "train").iterdir())) == 3
    # a rerun into the same directory replaces the previous output
    rc = main(["demo", "--out", str(out), "--episodes", "2", "--test-episodes", "1", "--max-steps", "2",
               "--no-progress",
               "--set", "sim.episode_seconds=1.5", "--set", "sim.image_size=32"])
    assert rc == 0 and len(list((out / "bags" / "train").iterdir())) == 2
