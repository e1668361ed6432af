"""Every safety limit acts, is counted by name, and never lets a violating command through."""

import math

import numpy as np
import pytest

from executor_testlib import HOME, make_chunk, make_executor, rotation_error, yaw
from vla_ros.core.config import SafetyConfig
from vla_ros.core.executor.interpolation import PoseSample
from vla_ros.core.executor.safety import SafetyFilter

TICKS = np.round(np.arange(0.0, 0.2, 0.01), 10)  # 100 Hz


def run_to(ex, times):
    return [ex.tick(float(t)) for t in times]


def test_workspace_box_clips_the_target():
    # Outside the box but within safety.workspace_margin (default 0.05 m): clipped to the box.
    ex = make_executor(safety={"workspace_min": [-1.0, -1.0, 0.1], "workspace_max": [0.45, 1.0, 1.0]})
    assert ex.submit(make_chunk(0.48, z=0.07, horizon=10), 0.0).accepted
    cmd = ex.tick(0.0)
    np.testing.assert_allclose(cmd.position, [0.45, 0.0, 0.1])
    assert cmd.limits == ("workspace",)
    st = ex.status(0.0)
    assert st.clamps == 1 and st.limit_counts["workspace"] == 1


def test_translation_step_limits_each_jump():
    ex = make_executor(safety={"max_translation_step": 0.01})
    ex.submit(make_chunk(0.45, horizon=30), 0.0)
    xs = [c.position[0] for c in run_to(ex, TICKS[:7])]
    assert xs == pytest.approx([0.41, 0.42, 0.43, 0.44, 0.45, 0.45, 0.45], abs=1e-12)
    assert ex.status(0.1).limit_counts["translation_step"] == 4


def test_linear_speed_limits_motion_per_second():
    ex = make_executor(safety={"max_linear_speed": 0.1})  # 1 mm per 10 ms tick
    ex.submit(make_chunk(0.45, y=0.05, horizon=30), 0.0)
    cmds = run_to(ex, TICKS)
    steps = np.linalg.norm(np.diff([c.position for c in cmds], axis=0), axis=1)
    assert np.all(steps <= 0.001 + 1e-12) and steps.max() == pytest.approx(0.001)
    assert all(c.limits == ("linear_speed",) for c in cmds)
    # Direction is kept: shortened along the straight line to the target.
    d = cmds[-1].position - HOME.position
    assert d[0] == pytest.approx(d[1])


def test_rotation_step_limits_each_rotation():
    ex = make_executor(safety={"max_rotation_step": 0.05})
    ex.submit(make_chunk(0.40, rz=0.2, horizon=30), 0.0)
    yaws = [yaw(c.orientation) for c in run_to(ex, TICKS[:5])]
    assert yaws == pytest.approx([0.05, 0.10, 0.15, 0.20, 0.20], abs=1e-9)
    assert ex.status(0.05).limit_counts["rotation_step"] == 3


def test_angular_speed_limits_rotation_per_second():
    ex = make_executor(safety={"max_angular_speed": 1.0})  # 0.01 rad per tick
    ex.submit(make_chunk(0.40, rz=0.2, horizon=30), 0.0)
    yaws = [yaw(c.orientation) for c in run_to(ex, TICKS[:3])]
    assert yaws == pytest.approx([0.01, 0.02, 0.03], abs=1e-9)
    assert ex.status(0.03).limit_counts["angular_speed"] == 3


def test_gripper_range_clips_the_opening():
    ex = make_executor(safety={"gripper_min": 0.2, "gripper_max": 0.8})
    ex.submit(make_chunk(0.40, gripper=[1.0, 0.0], horizon=2, dt=0.1), 0.0)
    assert ex.tick(0.0).gripper == pytest.approx(0.8)
    assert ex.tick(0.05).gripper == pytest.approx(0.5)  # inside the range: untouched
    assert ex.tick(0.1).gripper == pytest.approx(0.2)
    assert ex.status(0.1).limit_counts["gripper"] == 2


def test_non_finite_command_is_replaced_by_a_hold_and_counted():
    f = SafetyFilter(SafetyConfig())
    prev = PoseSample(np.array([0.4, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]), 0.5)
    for bad in (
        PoseSample(np.array([np.nan, 0.0, 0.3]), prev.quaternion, 0.5),
        PoseSample(prev.position, np.array([0.0, 0.0, np.inf, 1.0]), 0.5),
        PoseSample(prev.position, prev.quaternion, float("nan")),
    ):
        safe, limits, hold = f.filter_pose(bad, prev, 0.01)
        assert hold and limits == ["nonfinite"] and safe is prev
    lin, ang, limits, hold = f.filter_twist(np.array([np.nan, 0, 0]), np.zeros(3))
    assert hold and not np.any(lin) and not np.any(ang)
    assert f.counts["nonfinite"] == 4


def test_twist_output_is_feedforward_plus_gain_and_speed_limited():
    ex = make_executor({"output_mode": "twist", "twist_gain": 0.0}, safety={"max_linear_speed": 0.15})
    ramp = 0.40 + 0.01 * np.arange(30)  # 0.1 m/s along x
    ex.submit(make_chunk(ramp, horizon=30), 0.0)
    ex.tick(0.0, HOME)
    cmd = ex.tick(0.01, HOME)
    np.testing.assert_allclose(cmd.linear, [0.1, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(cmd.angular, 0.0, atol=1e-12)

    ex = make_executor({"output_mode": "twist", "twist_gain": 5.0}, safety={"max_linear_speed": 0.15})
    ex.submit(make_chunk(ramp, horizon=30), 0.0)
    ex.tick(0.0, HOME)
    cmd = ex.tick(0.01, HOME)  # arm still at 0.40, target 0.401: 0.1 + 5 * 0.001 = 0.105 m/s
    assert cmd.linear[0] == pytest.approx(0.105, abs=1e-9)
    lagging = type(HOME)(HOME.position - [0.02, 0.0, 0.0], HOME.orientation)
    cmd = ex.tick(0.02, lagging)  # 0.1 + 5 * 0.022 = 0.21 m/s > 0.15: capped
    assert cmd.linear[0] == pytest.approx(0.15) and "twist_linear" in cmd.limits


def test_twist_angular_is_limited():
    ex = make_executor({"output_mode": "twist", "twist_gain": 10.0}, safety={"max_angular_speed": 0.5})
    ex.submit(make_chunk(0.40, rz=0.2, horizon=30), 0.0)
    cmd = ex.tick(0.0, HOME)
    assert math.isclose(float(np.linalg.norm(cmd.angular)), 0.5) and "twist_angular" in cmd.limits


def test_default_limits_stop_a_wild_chunk():
    """With the shipped defaults a chunk 1 m away is refused whole (out of reach), and one at the edge
    of reach never moves the target faster than allowed."""
    ex = make_executor(safety={k: v for k, v in SafetyConfig().__dict__.items() if k.startswith("max_")})
    res = ex.submit(make_chunk(0.9, y=0.9, rz=3.0, horizon=50), 0.0)
    assert not res.accepted and "reach" in res.reason and "safety.max_start_distance" in res.reason
    np.testing.assert_allclose(ex.tick(0.0, HOME).position, HOME.position)
    ex = make_executor(safety={k: v for k, v in SafetyConfig().__dict__.items() if k.startswith("max_")})
    assert ex.submit(make_chunk(0.53, y=0.13, rz=0.9, horizon=50), 0.0).accepted
    cmds = [ex.tick(float(t), HOME) for t in TICKS]
    pos = np.array([c.position for c in cmds])
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert steps.max() <= SafetyConfig().max_linear_speed * 0.01 + 1e-12
    rot = [rotation_error(a.orientation, b.orientation) for a, b in zip(cmds, cmds[1:])]
    assert max(rot) <= SafetyConfig().max_angular_speed * 0.01 + 1e-9
    assert ex.status(0.2).clamps == len(TICKS)
