"""`vla-ros sim-eval` end to end: deterministic for a seed, report written, --record bags read by `vla-ros eval`,
errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_ros.cli import main


def _run(cfg, checkpoint, seed, episodes=1, **kw):
    from vla_ros.policy.registry import load_configured_policy
    from vla_ros.sim.evaluate import run_sim_eval

    cfg = cfg.with_overrides({"policy.type": "flow_matching", "policy.checkpoint": str(checkpoint),
                              "sim.episode_seconds": 2.0})
    policy = load_configured_policy(cfg.policy)
    try:
        return run_sim_eval(cfg, policy, task="reach", episodes=episodes, seed=seed, progress=False,
                            log=lambda _: None, **kw)
    finally:
        policy.close()


def test_same_seed_same_trajectory(panda_cfg, sim_checkpoint, render_ok, tmp_path):
    import torch

    torch.set_num_threads(1)
    a = _run(panda_cfg, sim_checkpoint, 3, lanes=("policy",), gifs=False)
    b = _run(panda_cfg, sim_checkpoint, 3, lanes=("policy",), out_dir=tmp_path / "rep")  # report + GIF: same physics
    c = _run(panda_cfg, sim_checkpoint, 4, lanes=("policy",), gifs=False)
    ea, eb, ec = a.episodes["policy"][0], b.episodes["policy"][0], c.episodes["policy"][0]
    assert ea.chunks >= 8
    np.testing.assert_array_equal(ea.tool, eb.tool)
    np.testing.assert_array_equal(ea.commands["position"], eb.commands["position"])
    assert np.linalg.norm(ea.tool[-1] - ea.tool[0]) > 0.005  # the (random) policy did move the arm
    assert ec.tool.shape != ea.tool.shape or not np.allclose(ec.tool, ea.tool)  # another seed, another episode
    assert (tmp_path / "rep" / "gifs" / "ep_000.gif").is_file() and (tmp_path / "rep" / "index.html").is_file()


def test_cli_report_record_and_eval_reads_the_bag(tmp_path, render_ok, capsys):
    out, bags = tmp_path / "out", tmp_path / "bags"
    rc = main(["sim-eval", "--policy", "hold", "--task", "reach", "--episodes", "2", "--seed", "7", "--out", str(out),
               "--record", str(bags), "--record-lanes", "policy,expert", "--no-progress",
               "--set", "sim.episode_seconds=4", "--set", "sim.image_size=48"])
    text = capsys.readouterr().out
    assert rc == 0 and f"report: {out / 'index.html'}" in text
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["format"] == "vla_ros.sim_eval" and doc["info"]["task"] == "reach"
    s = doc["summary"]
    assert s["policy"]["success_rate"] == 0.0 and s["hold"]["success_rate"] == 0.0  # --policy hold
    assert s["expert"]["success_rate"] == 1.0 and s["expert"]["time_to_success_s"] > 0
    lane = doc["episodes"][0]["lanes"]["expert"]
    assert lane["seed"] == 7 and lane["path_length_m"] > 0.05
    assert {"held_ticks", "clamped_ticks", "tool_jerk_mps3"} <= set(lane)
    html = (out / "index.html").read_text()
    assert "data:image/gif;base64" in html and "success rate" in html
    assert sorted(p.name for p in (bags / "expert").iterdir()) == ["ep_000", "ep_001"]
    rc = main(["eval", "--bag", str(bags / "expert" / "ep_001"), "--robot", "sim_panda", "--policy", "hold",
               "--out", str(tmp_path / "ev"), "--no-progress", "--no-plots"])
    text = capsys.readouterr().out
    assert rc == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    bag = ev["bags"][0]
    assert bag["ground_truth"]["topic"] == "/target_pose" and "gripper_command" in bag["ground_truth"]["description"]
    assert bag["duration_s"] > 0.5 and bag["policy"]["inference"]["chunks"] >= 3
    # hold vs the expert's recorded commands: clearly wrong (the expert moved)
    assert bag["policy"]["commands"]["position_error_m"]["mean"] > 0.01


@pytest.mark.parametrize("argv, needle", [
    (["--episodes", "0"], "--episodes: expected at least 1"),
    (["--seed", "-1"], "--seed: expected a non-negative integer"),
    (["--record-lanes", "policy,teacher"], "--record-lanes: expected"),
    (["--robot", "generic_dual_wrist"], "robot.camera_names: the simulator renders"),
    (["--set", "sim.image_size=4"], "sim.image_size"),
    (["--policy", "flow_matching", "--checkpoint", "/nonexistent/ckpt"], "/nonexistent/ckpt"),
])
def test_cli_errors_are_one_sentence(argv, needle, tmp_path, capsys):
    rc = main(["sim-eval", "--policy", "hold", "--out", str(tmp_path / "o"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_bad_task_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sim-eval", "--task", "stack"])
    assert exc.value.code == 2 and "invalid choice: 'stack'" in capsys.readouterr().err
