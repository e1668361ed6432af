"""Bridge steps: a plan that starts far from the last command is entered slowly, then resumes."""

import numpy as np
import pytest

from executor_testlib import make_chunk, make_executor, yaw

BRIDGE = {"bridge_distance": 0.02, "bridge_speed": 0.1, "bridge_angle": 0.1, "bridge_angular_speed": 0.5,
          "watchdog_timeout": 5.0}


def test_far_plan_is_entered_by_a_straight_bridge_at_bridge_speed():
    ex = make_executor(BRIDGE)  # holding HOME, x = 0.40
    chunk = make_chunk(0.50 + 0.01 * np.arange(10), stamp=0.0)  # starts 0.1 m away
    ex.submit(chunk, 0.0)
    xs = {t: ex.tick(t).position[0] for t in (0.0, 0.25, 0.5, 0.75, 1.0)}
    # 0.1 m at 0.1 m/s: a 1 s straight line from the held pose to the plan's pose at arrival.
    assert xs == pytest.approx({0.0: 0.40, 0.25: 0.425, 0.5: 0.45, 0.75: 0.475, 1.0: 0.50}, abs=1e-12)
    # The plan was delayed by the bridge: it resumes exactly where the bridge ended.
    assert ex.tick(1.2).position[0] == pytest.approx(0.52, abs=1e-12)
    assert ex.tick(1.9).position[0] == pytest.approx(0.59, abs=1e-12)
    st = ex.status(1.9)
    assert st.bridges == 1 and st.state.label == "running"


def test_bridge_moves_y_and_z_along_the_same_straight_line():
    ex = make_executor(BRIDGE)
    ex.submit(make_chunk(0.40, y=0.03, z=0.34, horizon=10), 0.0)  # 0.05 m away -> 0.5 s
    ex.tick(0.0)  # the bridge starts at the first tick after the chunk arrived
    p = ex.tick(0.25).position
    np.testing.assert_allclose(p, [0.40, 0.015, 0.32], atol=1e-12)


def test_rotation_bridge_uses_the_angular_speed():
    ex = make_executor(BRIDGE)
    ex.submit(make_chunk(0.40, rz=0.3, horizon=10), 0.0)  # 0.3 rad at 0.5 rad/s -> 0.6 s
    ex.tick(0.0)
    assert yaw(ex.tick(0.3).orientation) == pytest.approx(0.15, abs=1e-9)
    assert yaw(ex.tick(0.6).orientation) == pytest.approx(0.3, abs=1e-9)


def test_no_bridge_when_the_plan_starts_close():
    ex = make_executor(BRIDGE)
    ex.submit(make_chunk(0.41, horizon=10), 0.0)  # 1 cm < bridge_distance
    assert ex.tick(0.0).position[0] == pytest.approx(0.41)
    assert ex.status(0.0).bridges == 0


def test_a_newer_chunk_during_a_bridge_restarts_it_from_the_current_command():
    ex = make_executor(BRIDGE)
    ex.submit(make_chunk(0.50, horizon=30), 0.0)
    ex.tick(0.0)
    assert ex.tick(0.5).position[0] == pytest.approx(0.45)
    ex.submit(make_chunk(0.30, horizon=30, stamp=0.5), 0.5)  # now 0.15 m the other way
    xs = [ex.tick(t).position[0] for t in (0.5, 0.6, 1.0, 2.0)]
    assert xs == pytest.approx([0.45, 0.44, 0.40, 0.30], abs=1e-12)
    assert ex.status(2.0).bridges == 2


def test_replace_with_a_disagreeing_chunk_bridges_instead_of_jumping():
    ex = make_executor({**BRIDGE, "strategy": "replace"})
    ex.submit(make_chunk(0.40, horizon=30), 0.0)
    ex.tick(0.2)
    ex.submit(make_chunk(0.46, horizon=30, stamp=0.2), 0.2)
    ex.tick(0.2)
    assert ex.tick(0.3).position[0] == pytest.approx(0.41, abs=1e-12)  # 0.1 m/s, not a 6 cm jump
