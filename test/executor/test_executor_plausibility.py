"""Issue 11 findings 1-3 and 6-9 in the executor core: what the executor refuses to act on.

Each test would pass on the executor before the plausibility layer only if the bug were absent:
the twist servo trusted any measured pose, the first pose became the hold target unchecked, the
hold target never followed the arm, chunks outside the box were clipped and driven to, a DELTA
chunk's reference was never compared with the arm, quaternions were renormalised whatever their
norm, and a stall licensed a full ``max_translation_step``.
"""

import math

import numpy as np
import pytest

from executor_testlib import HOME, make_chunk, make_executor
from vla_ros.core.config import SafetyConfig, config_from_dict
from vla_ros.core.executor import ChunkExecutor, ExecutorState
from vla_ros.core.executor.plausibility import PoseMonitor, check_chunk
from vla_ros.core.msg_decode import MessageError, chunk_from_msg, joint_positions
from vla_ros.core.types import ActionMode, EEPose
from vla_ros.ros.conversions import ENCODER

RATE = 100.0
BOX_MIN, BOX_MAX = np.array([0.2, -0.4, 0.05]), np.array([0.7, 0.4, 0.6])


def shipped(**executor) -> ChunkExecutor:
    """An executor with the shipped safety defaults inside a small box (what a robot profile sets)."""
    cfg = config_from_dict({"executor": {"control_rate": RATE, **executor},
                            "safety": {"workspace_min": BOX_MIN.tolist(), "workspace_max": BOX_MAX.tolist()}})
    return ChunkExecutor.from_config(cfg)


def at(x, y=0.0, z=0.3) -> EEPose:
    return EEPose(np.array([x, y, z], np.float64), np.array([0.0, 0.0, 0.0, 1.0]), "base_link")


class TwistArm:
    """A velocity-controlled arm: integrates the executor's twist exactly; `report` says what pose it claims."""

    def __init__(self, start: np.ndarray):
        self.true = start.astype(np.float64).copy()
        self.path = [self.true.copy()]

    def step(self, cmd, dt: float) -> None:
        if cmd is not None:
            self.true = self.true + cmd.linear * dt
        self.path.append(self.true.copy())


def _inside(path, margin=1e-9) -> bool:
    p = np.asarray(path)
    return bool(np.all(p >= BOX_MIN - margin) and np.all(p <= BOX_MAX + margin))


# ---------------------------------------------------------------- finding 1: twist trusts the measured pose
@pytest.mark.parametrize("fault", ["frozen", "millimetres", "offset_tf"])
def test_twist_output_never_drives_out_of_the_workspace_on_a_wrong_pose(fault):
    ex = shipped(output_mode="twist")
    arm = TwistArm(np.array([0.45, 0.0, 0.3]))
    dt = 1.0 / RATE
    frozen = arm.true.copy()
    for k in range(int(6.0 * RATE)):
        t = k * dt
        if k % 20 == 0:  # a 5 Hz policy asking for x = 0.65 (inside the box)
            ex.submit(make_chunk(0.6 + 0.005 * np.arange(10), stamp=t, dt=0.1, seq=k), t)
        if t < 0.5:
            claimed = arm.true
        elif fault == "frozen":
            claimed = frozen  # the publisher keeps sending the same pose with fresh stamps
        elif fault == "millimetres":
            claimed = arm.true * 1000.0
        else:
            claimed = arm.true - np.array([0.3, 0.0, 0.0])  # a wrong TF: 30 cm off, inside the margin box
        frozen = arm.true.copy() if t < 0.5 else frozen
        cmd = ex.tick(t, at(*claimed), pose_time=t)
        arm.step(cmd, dt)
    assert _inside(arm.path), f"arm left the workspace: max {np.max(arm.path, axis=0)}, min {np.min(arm.path, axis=0)}"
    speeds = np.linalg.norm(np.diff(np.asarray(arm.path), axis=0), axis=1) / dt
    assert speeds.max() <= SafetyConfig().max_linear_speed + 1e-9
    st = ex.status(6.0)
    assert st.state == ExecutorState.HOLDING and st.message  # holding, and it says why
    assert np.linalg.norm(cmd.linear) == 0.0


def test_frozen_pose_is_detected_by_the_twist_integral():
    ex = shipped(output_mode="twist")
    arm = TwistArm(np.array([0.45, 0.0, 0.3]))
    ex.submit(make_chunk(0.65, stamp=0.0, dt=0.1, horizon=50), 0.0)
    reasons = []
    for k in range(300):
        t = k / RATE
        cmd = ex.tick(t, at(0.45), pose_time=t)  # never moves, whatever is commanded
        arm.step(cmd, 1.0 / RATE)
        reasons.append(cmd.reason)
    assert any("safety.max_tracking_error" in r for r in reasons)
    assert arm.true[0] <= 0.45 + SafetyConfig().max_tracking_error + 0.01


# ---------------------------------------------------------------- finding 2: first pose unchecked
def test_an_implausible_first_pose_never_becomes_the_hold_target():
    ex = shipped()
    for k in range(51):
        assert ex.tick(k / RATE, at(100.0), pose_time=k / RATE) is None
    assert "safety.workspace_max x" in ex.status(0.5).message
    cmd = ex.tick(0.52, at(0.45), pose_time=0.52)
    np.testing.assert_allclose(cmd.position, [0.45, 0.0, 0.3])


# ---------------------------------------------------------------- finding 3: stale hold target
def test_idle_hold_target_follows_the_arm_and_the_first_bridge_starts_there():
    ex = shipped()
    ex.tick(0.0, at(0.30), pose_time=0.0)
    for k in range(1, 300):  # hand guiding: 0.15 m in 3 s, under the speed limit
        t = k / RATE
        cmd = ex.tick(t, at(0.30 + 0.05 * t), pose_time=t)
    assert cmd.position[0] == pytest.approx(0.30 + 0.05 * 2.99, abs=1e-3)
    ex.submit(make_chunk(0.47, stamp=3.0, dt=0.1, horizon=10), 3.0)
    first = ex.tick(3.0, at(0.4495), pose_time=3.0)
    assert abs(first.position[0] - 0.4495) < 0.01  # the bridge starts where the arm is, not at 0.30


# ---------------------------------------------------------------- finding 6: garbage inside the box
@pytest.mark.parametrize("chunk_kwargs, code, text", [
    ({"x": 10.0}, "workspace", "step 0: x = 10.000 m above safety.workspace_max x"),
    ({"x": [0.45, 0.46, 3.7e6]}, "workspace", "step 2:"),
    ({"x": 0.45, "gripper": 5.0}, "gripper", "step 0: gripper = 5.000"),
    ({"x": 0.45, "horizon": 300}, "length", "executor.max_chunk_steps = 256"),
])
def test_implausible_chunks_are_refused_whole_with_the_first_bad_step(chunk_kwargs, code, text):
    ex = shipped()
    ex.tick(0.0, at(0.45), pose_time=0.0)
    res = ex.submit(make_chunk(stamp=0.0, **chunk_kwargs), 0.0)
    assert not res.accepted and text in res.reason and f"({code})" in res.reason
    assert ex.chunk_problems[code] == 1
    st = ex.status(0.01)
    assert st.chunks_rejected == 1 and text in st.message
    cmd = ex.tick(0.01, at(0.45), pose_time=0.01)
    np.testing.assert_allclose(cmd.position, [0.45, 0.0, 0.3])  # nothing moved: not clipped and driven to
    assert cmd.state == ExecutorState.IDLE


def test_chunk_out_of_reach_of_the_arm_is_refused():
    ex = shipped()
    ex.tick(0.0, at(0.25), pose_time=0.0)
    res = ex.submit(make_chunk(0.65, stamp=0.0), 0.0)  # inside the box, 0.4 m from the arm
    assert not res.accepted and "(reach)" in res.reason and "safety.max_start_distance" in res.reason
    assert ex.submit(make_chunk(0.40, stamp=0.0), 0.0).accepted  # 0.15 m: a bridge covers it


# ---------------------------------------------------------------- finding 7: DELTA reference unset
def test_delta_chunk_with_an_unset_reference_is_refused():
    ex = shipped()
    ex.tick(0.0, at(0.45), pose_time=0.0)
    origin = EEPose(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))  # what an unset reference_pose decodes to
    # +1 cm in x from the base origin is x = 0.01 m: out of the box; put the box around it to isolate the reference
    # check
    cfg = config_from_dict({"safety": {"workspace_min": [-0.1, -0.4, -0.1], "workspace_max": [0.7, 0.4, 0.6]}})
    ex = ChunkExecutor.from_config(cfg)
    ex.tick(0.0, at(0.45), pose_time=0.0)
    res = ex.submit(make_chunk(0.01, y=0.0, z=0.0, mode=ActionMode.DELTA, reference_pose=origin, stamp=0.0), 0.0)
    assert not res.accepted and "(delta_reference)" in res.reason and "reference_pose" in res.reason
    good = make_chunk(0.01, y=0.0, z=0.0, mode=ActionMode.DELTA, reference_pose=at(0.45), stamp=0.0)
    assert ex.submit(good, 0.0).accepted


def test_delta_chunk_without_a_measured_pose_is_refused():
    ex = make_executor(start=None)
    res = ex.submit(make_chunk(0.01, z=0.0, mode=ActionMode.DELTA, reference_pose=HOME), 0.0)
    assert not res.accepted and "no plausible measured pose" in res.reason


# ---------------------------------------------------------------- finding 8: quaternions
@pytest.mark.parametrize("quat, norm", [((1e-8, 0.0, 0.0, 0.0), "1e-08"), ((0.0, 0.0, 0.0, 7.0), "7")])
def test_non_unit_quaternions_are_refused_not_renormalised(quat, norm):
    msg = ENCODER.action_chunk(make_chunk(0.45, horizon=3))
    o = msg.poses[1].orientation
    o.x, o.y, o.z, o.w = quat
    with pytest.raises(MessageError, match=rf"poses.orientation: .*step 1 has norm {norm}"):
        chunk_from_msg(msg)
    ex = make_executor()
    assert not ex.submit_msg(msg, 0.0).accepted
    assert ex.tick(2.0).position == pytest.approx(HOME.position)  # never rotated


def test_a_pose_with_a_non_unit_quaternion_is_refused():
    from vla_ros.core.msg_decode import pose_to_ee
    from vla_ros.ros.conversions import pose_msg

    with pytest.raises(MessageError, match="orientation: .*got norm 7"):
        pose_to_ee(pose_msg([0.4, 0.0, 0.3], [0.0, 0.0, 0.0, 7.0]), "base_link", "/ee_pose")


# ---------------------------------------------------------------- finding 9: stalls and long chunks
def test_after_a_stall_the_step_is_bounded_by_two_control_periods():
    ex = shipped()
    ex.tick(0.0, at(0.45), pose_time=0.0)
    ex.submit(make_chunk(0.45 + 0.02 * np.arange(10), stamp=0.0, dt=0.1), 0.0)
    ex.tick(0.01, at(0.45), pose_time=0.01)
    before = ex.tick(0.02, at(0.45), pose_time=0.02).position
    after = ex.tick(0.80, at(0.45), pose_time=0.80).position  # the loop stalled for 780 ms
    step = float(np.linalg.norm(after - before))
    assert step <= SafetyConfig().max_linear_speed * 2.0 / RATE + 1e-12  # 5 mm, not max_translation_step (5 cm)
    assert step > 0.0


def test_an_over_long_chunk_message_is_refused_before_decoding():
    msg = ENCODER.action_chunk(make_chunk(0.45, horizon=300))
    ex = make_executor()
    res = ex.submit_msg(msg, 0.0)
    assert not res.accepted and "executor.max_chunk_steps = 256" in res.reason
    assert ex.chunk_problems["length"] == 1


# ---------------------------------------------------------------- measured pose plausibility
def test_a_pose_jump_faster_than_an_arm_holds_and_drops_the_plan():
    ex = shipped()
    ex.tick(0.0, at(0.45), pose_time=0.0)
    ex.submit(make_chunk(0.45 + 0.01 * np.arange(10), stamp=0.0), 0.0)
    assert ex.tick(0.01, at(0.45), pose_time=0.01).state == ExecutorState.RUNNING
    cmd = ex.tick(0.02, at(0.45, y=0.3), pose_time=0.02)  # 0.3 m in 10 ms
    assert cmd.hold and cmd.state == ExecutorState.HOLDING and "safety.max_measured_speed" in cmd.reason
    cmd = ex.tick(0.03, at(0.45), pose_time=0.03)  # the real arm again: holding until a new chunk
    assert cmd.hold and "plan dropped" in cmd.reason


def test_pose_monitor_reacquires_after_a_gap():
    mon = PoseMonitor(SafetyConfig())
    assert mon.update(at(0.4), 0.0) == ""
    assert "jumped" in mon.update(at(0.6), 0.01)
    assert mon.update(at(0.6), 1.0) == ""  # 0.2 m in 1 s: possible (the arm was moved while readings were bad)
    assert "stale" in mon.problem(2.0)


def test_check_chunk_is_usable_without_an_executor():
    chunk = make_chunk(0.45, stamp=0.0)
    assert check_chunk(chunk, SafetyConfig(), measured=at(0.45), now=0.0, max_steps=256) is None
    problem = check_chunk(make_chunk(0.45, gripper=-1.0), SafetyConfig(), measured=None, now=0.0, max_steps=256)
    assert problem.code == "gripper" and problem.step == 0


# ---------------------------------------------------------------- list 11
def test_a_chunk_observed_before_an_estop_never_runs_after_the_reset():
    ex = make_executor()
    ex.tick(0.0, HOME)
    old = make_chunk(0.45, stamp=0.9, horizon=30)  # observed at 0.9 s
    ex.estop(1.0)
    ex.reset(1.5)
    res = ex.submit(old, 1.6)  # delivered late, after the reset
    assert not res.accepted and "before the last e-stop" in res.reason
    assert ex.tick(1.7, HOME).position == pytest.approx(HOME.position)
    assert ex.submit(make_chunk(0.45, stamp=1.6, horizon=30), 1.65).accepted


def test_duplicate_joint_names_are_refused():
    class Msg:
        name = ["a", "b", "a"]
        position = [0.1, 0.2, 0.3]

    with pytest.raises(MessageError, match="duplicate joint name\\(s\\) a"):
        joint_positions(Msg(), ["a", "b"], "/joint_states")


def test_new_safety_limits_apply_at_once():
    ex = shipped()
    ex.tick(0.0, at(0.45), pose_time=0.0)
    ex.submit(make_chunk(0.55, stamp=0.0, horizon=200), 0.0)
    for k in range(1, 90):
        cmd = ex.tick(k / RATE, at(0.45), pose_time=k / RATE)
    assert cmd.position[0] > 0.52 and cmd.state == ExecutorState.RUNNING
    tighter = config_from_dict({"safety": {"workspace_min": BOX_MIN.tolist(),
                                           "workspace_max": [0.5, 0.4, 0.6]}}).safety
    ex.set_safety(tighter)
    cmds = [ex.tick(0.9 + k / RATE, at(0.45), pose_time=0.9 + k / RATE) for k in range(50)]
    xs = np.array([c.position[0] for c in cmds])
    assert xs[0] < cmd.position[0] and np.all(np.diff(xs) <= 1e-12)  # walks back into the new box at once ...
    assert np.all(np.abs(np.diff(xs)) <= SafetyConfig().max_linear_speed / RATE + 1e-12)  # ... at the speed limit
    assert math.isclose(xs[-1], 0.5)
