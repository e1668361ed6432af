"""Holds: watchdog, finished plan, e-stop latch and reset, missing/stale end-effector pose."""

import numpy as np
import pytest

from executor_testlib import HOME, make_chunk, make_executor
from vla_ros.core.executor import ExecutorState

RAMP = 0.40 + 0.005 * np.arange(40)  # 4 s of plan, 5 cm/s


def test_no_pose_no_command():
    ex = make_executor(start=None)
    assert ex.tick(0.0) is None
    ex.submit(make_chunk(0.41, horizon=10), 0.0)
    assert ex.tick(0.01) is None  # a plan alone is no reference: nothing is sent
    st = ex.status(0.01)
    assert st.state == ExecutorState.IDLE and "end-effector pose" in st.message
    cmd = ex.tick(0.02, HOME)
    assert cmd is not None and cmd.position[0] == pytest.approx(0.41)


def test_idle_holds_the_measured_pose_and_leaves_the_gripper_alone():
    ex = make_executor(start=None)
    cmd = ex.tick(0.0, HOME)
    moved = type(HOME)(HOME.position + [0.05, 0, 0], HOME.orientation)
    cmd2 = ex.tick(0.1, moved)  # idle: the hold target follows the arm (hand guiding, another controller)
    np.testing.assert_allclose(cmd.position, HOME.position)
    np.testing.assert_allclose(cmd2.position, moved.position)
    for c in (cmd, cmd2):
        assert c.state == ExecutorState.IDLE and c.hold and c.gripper is None
    assert ex.status(0.1).holds == 0  # idle ticks are not counted as holds


def test_watchdog_drops_the_plan_and_holds_the_last_safe_pose():
    ex = make_executor({"watchdog_timeout": 0.5})
    ex.submit(make_chunk(RAMP, seq=3), 0.0)
    xs = [ex.tick(t).position[0] for t in (0.1, 0.3, 0.5)]
    assert xs == pytest.approx([0.405, 0.415, 0.425])
    assert ex.state == ExecutorState.RUNNING
    for t in (0.51, 1.0, 3.0):  # the plan would go on for seconds: it is not executed
        cmd = ex.tick(t)
        assert cmd.hold and cmd.state == ExecutorState.HOLDING
        assert cmd.position[0] == pytest.approx(0.425)
        assert cmd.gripper == pytest.approx(1.0)
    st = ex.status(3.0)
    assert st.state == ExecutorState.HOLDING and "watchdog" in st.message
    assert st.holds == 3 and st.watchdog_trips == 1 and st.remaining_steps == 0
    # A fresh chunk resumes execution.
    ex.submit(make_chunk(0.43, horizon=10, stamp=3.0, seq=4), 3.0)
    cmd = ex.tick(3.01)
    assert cmd.state == ExecutorState.RUNNING and cmd.position[0] == pytest.approx(0.43)
    assert ex.status(3.01).message == ""


def test_watchdog_hold_in_twist_mode_is_zero_twist():
    ex = make_executor({"watchdog_timeout": 0.2, "output_mode": "twist"})
    ex.submit(make_chunk(RAMP), 0.0)
    assert np.linalg.norm(ex.tick(0.1, HOME).linear) > 0
    cmd = ex.tick(0.3, HOME)
    assert cmd.hold and not np.any(cmd.linear) and not np.any(cmd.angular)


def test_finished_plan_holds_its_last_pose_until_the_next_chunk():
    ex = make_executor({"watchdog_timeout": 10.0})
    ex.submit(make_chunk([0.40, 0.41, 0.42]), 0.0)
    cmd = ex.tick(0.5)
    assert cmd.hold and cmd.state == ExecutorState.HOLDING and cmd.position[0] == pytest.approx(0.42)
    assert "plan finished" in ex.status(0.5).message


def test_estop_latches_a_hold_that_only_reset_releases():
    ex = make_executor({"watchdog_timeout": 10.0})
    ex.submit(make_chunk(RAMP, seq=1), 0.0)
    ex.tick(0.2)
    ex.estop(0.2, "test")
    for t in (0.3, 1.0):
        cmd = ex.tick(t)
        assert cmd.state == ExecutorState.ESTOP and cmd.hold and cmd.position[0] == pytest.approx(0.41)
    # Chunks do not release it.
    res = ex.submit(make_chunk(0.45, horizon=10, stamp=1.0, seq=2), 1.0)
    assert not res.accepted and "e-stop" in res.reason
    assert ex.tick(1.1).position[0] == pytest.approx(0.41)
    st = ex.status(1.1)
    assert st.state == ExecutorState.ESTOP and "e-stop" in st.message and st.plan.steps == 0
    # Reset: still holding, the old plan does not resume ...
    ex.reset(1.2)
    cmd = ex.tick(1.2)
    assert cmd.state == ExecutorState.HOLDING and cmd.position[0] == pytest.approx(0.41)
    # ... until a new chunk arrives.
    ex.submit(make_chunk(0.42, horizon=10, stamp=1.3, seq=3), 1.3)
    cmd = ex.tick(1.31)
    assert cmd.state == ExecutorState.RUNNING and cmd.position[0] == pytest.approx(0.42)
    assert ex.status(1.31).holds == 4


def test_estop_before_any_pose_still_latches():
    ex = make_executor(start=None)
    ex.estop(0.0)
    assert ex.tick(0.0) is None and ex.state == ExecutorState.ESTOP
    cmd = ex.tick(0.1, HOME)
    assert cmd.state == ExecutorState.ESTOP and cmd.hold


def test_stale_pose_gives_zero_twist_in_twist_mode():
    ex = make_executor({"output_mode": "both"}, {"max_pose_age": 0.1})
    ex.submit(make_chunk(RAMP), 0.0)
    assert np.any(ex.tick(0.05, HOME, pose_time=0.0).linear)
    cmd = ex.tick(0.2, None)  # last pose at 0.0 is now 0.2 s old
    assert cmd.hold and not np.any(cmd.linear)
    assert "stale" in cmd.reason
    assert cmd.state == ExecutorState.HOLDING  # never "running" while the output is zero
    assert cmd.position[0] > HOME.position[0]  # the pose target holds the last command, not the old pose


def test_clock_jumping_back_drops_the_plan_and_holds():
    ex = make_executor()
    ex.submit(make_chunk(RAMP), 0.0)
    ex.tick(0.5)
    cmd = ex.tick(0.1)  # a bag looped
    assert cmd.hold and cmd.state == ExecutorState.HOLDING and "clock" in cmd.reason
    assert cmd.position[0] == pytest.approx(0.425)
