"""SimWorld: the controller tracks pose targets and twists, the gripper follows, bad commands are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_ros.core.rotations import quat_angle
from vla_ros.sim.world import SimSpec, SimWorld, tool_quat


def test_pose_target_is_tracked():
    w = SimWorld(SimSpec(task="reach", seed=1, render=False))
    p0, _ = w.ee_pose()
    goal = p0 + np.array([0.06, -0.10, -0.08])
    q_goal = tool_quat(0.4)
    assert w.command_pose(goal, q_goal)
    w.step(0.1)
    assert np.linalg.norm(w.ee_pose()[0] - goal) > 0.03  # it moves at a finite speed, not teleports
    w.step(1.4)
    p, q = w.ee_pose()
    assert np.linalg.norm(p - goal) < 0.003
    assert float(quat_angle(q, q_goal)) < 0.01
    assert w.time == pytest.approx(1.5, abs=1e-9)


def test_twist_is_followed_and_zero_stops():
    w = SimWorld(SimSpec(task="reach", seed=2, render=False))
    w.step(0.2)
    p0, q0 = w.ee_pose()
    assert w.command_twist([0.0, 0.08, 0.0], [0.0, 0.0, 0.5])
    w.step(0.5)
    assert w.command_twist([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    w.step(0.4)
    p1, q1 = w.ee_pose()
    np.testing.assert_allclose(p1 - p0, [0.0, 0.04, 0.0], atol=0.004)
    assert float(quat_angle(q0, q1)) == pytest.approx(0.25, abs=0.02)
    w.step(0.5)
    np.testing.assert_allclose(w.ee_pose()[0], p1, atol=0.001)  # stopped


def test_gripper_follows_and_nan_is_refused():
    w = SimWorld(SimSpec(task="pick", seed=0, render=False))
    assert w.gripper_opening() == pytest.approx(1.0, abs=0.01)
    assert w.command_gripper(0.25)
    w.step(0.6)
    assert w.gripper_opening() == pytest.approx(0.25, abs=0.02)
    p, q = w.ee_pose()
    assert not w.command_pose([np.nan, 0, 0], q)
    assert not w.command_twist([0, np.inf, 0], [0, 0, 0])
    assert not w.command_gripper(float("nan"))
    assert w.rejected_commands == 3
    w.step(0.3)
    np.testing.assert_allclose(w.ee_pose()[0], p, atol=0.002)  # the previous target stays


def test_reset_is_seeded_and_task_state_is_json():
    a = SimWorld(SimSpec(task="push", seed=4, render=False))
    b = SimWorld(SimSpec(task="push", seed=0, render=False))
    b.reset(4)
    sa, sb = a.task_state(), b.task_state()
    assert sa == sb and json.loads(json.dumps(sa)) == sa
    assert set(sa) >= {"success", "distance", "tool", "cube", "goal"} and not sa["success"]
    b.reset(5)
    assert b.task_state()["cube"] != sa["cube"]
    a.step(0.5)
    a.reset()
    assert a.time == 0.0 and a.task_state() == sa
    r = SimWorld(SimSpec(task="reach", seed=3, render=False)).task_state()
    assert len(r["target"]) == 3 and r["distance"] == pytest.approx(np.linalg.norm(np.subtract(r["target"], r["tool"])))


def test_renders_both_cameras(render_ok):
    with SimWorld(SimSpec(task="pick", seed=0, image_size=48)) as w:
        prim, wrist = w.render("primary"), w.render("wrist")
        assert prim.shape == wrist.shape == (48, 48, 3) and prim.dtype == np.uint8
        assert not np.array_equal(prim, wrist)
        red = lambda img: ((img[..., 0] > 150) & (img[..., 1] < 80)).sum()  # noqa: E731 - the red cube
        assert red(prim) > 0 and red(wrist) > 0
        p, q = w.ee_pose()
        w.command_pose(p + [0.0, 0.0, 0.1], q)
        w.step(1.0)
        assert not np.array_equal(w.render("wrist"), wrist)  # the camera moved with the hand
        with pytest.raises(ValueError, match="camera"):
            w.render("top")


def test_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="sim task"):
        SimSpec(task="stack")
    with pytest.raises(ValueError, match="image_size"):
        SimSpec(image_size=4)
    with pytest.raises(RuntimeError, match="render=False"):
        SimWorld(SimSpec(render=False)).render("primary")
