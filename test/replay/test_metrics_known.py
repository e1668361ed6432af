"""Metrics on a hand-built bag whose predictions are known: every number equals the hand computation.

The policy is `hold` (every chunk repeats the EE pose at its observation), the EE moves along +x
at V, and the recorded command is the EE pose + D rotated by DROT: so the error of action i of a
chunk observed at s is |(-V (i dt), -D)| exactly, its rotation error DROT, and with the `replace`
strategy and a fixed injected latency the executed command at tick t is the EE pose at the stamp of
the newest chunk that arrived by t.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from replay_testlib import D, DROT, GRIPPER_SWITCH, T0, V, known_config, write_known_bag
from vla_ros.policy.hold import HoldPolicy
from vla_ros.replay.evaluate import evaluate_bag

SPEED = float(np.linalg.norm(V))
OFFSET = float(np.linalg.norm(D))
GT_END = T0 + 2.0  # last recorded command
GRIP_FIRST, GRIP_LAST = T0 + 0.005, T0 + 2.005


def recorded_gripper(t: float) -> float:
    """The recorded gripper command (normalised) at t: 1 until T0 + 0.985, 0 from T0 + 1.005, linear between."""
    return float(np.clip((T0 + 1.005 - t) / 0.02, 0.0, 1.0))


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    path = write_known_bag(tmp_path_factory.mktemp("known") / "bag")
    cfg = known_config()
    return evaluate_bag(path, cfg, HoldPolicy(horizon=10, dt=0.1), progress=False), cfg


def test_chunk_errors_equal_hand_computation(known):
    result, _ = known
    m = result.metrics["policy"]
    recs = result.lanes["policy"].records
    assert len(recs) >= 8
    # error of action i = |(-speed * i * dt, -D)|, wherever the recorded command exists
    expected_by_step = [math.hypot(SPEED * 0.1 * i, OFFSET) for i in range(10)]
    np.testing.assert_allclose(m["chunks"]["position_error_by_step_m"], expected_by_step, rtol=0, atol=1e-9)
    errs, grip_ok, grip_err = [], [], []
    for r in recs:
        for i in range(10):
            tau = r.chunk.stamp + 0.1 * i
            if T0 - 1e-9 <= tau <= GT_END + 1e-9:
                errs.append(math.hypot(SPEED * 0.1 * i, OFFSET))
            if GRIP_FIRST <= tau <= GRIP_LAST:
                grip_ok.append(tau < GRIPPER_SWITCH)  # hold predicts open (no gripper feedback = open)
                grip_err.append(1.0 - recorded_gripper(tau))
    assert m["chunks"]["scored_actions"] == len(errs)
    assert m["chunks"]["position_error_m"]["mean"] == pytest.approx(np.mean(errs), abs=1e-9)
    assert m["chunks"]["position_error_m"]["max"] == pytest.approx(max(errs), abs=1e-9)
    assert m["chunks"]["rotation_error_rad"]["mean"] == pytest.approx(DROT, abs=1e-9)
    assert m["chunks"]["rotation_error_rad"]["max"] == pytest.approx(DROT, abs=1e-9)
    assert m["chunks"]["gripper"]["accuracy"] == pytest.approx(np.mean(grip_ok), abs=1e-12)
    assert m["chunks"]["gripper"]["mae"] == pytest.approx(np.mean(grip_err), abs=1e-9)


def test_discontinuity_and_latency_equal_hand_computation(known):
    result, cfg = known
    m = result.metrics["policy"]
    recs = result.lanes["policy"].records
    stamps = np.array([r.chunk.stamp for r in recs])
    jumps = SPEED * np.diff(stamps)  # constant chunks: the plan jumps by the EE motion between observations
    assert m["chunks"]["discontinuity"]["position_m"]["mean"] == pytest.approx(jumps.mean(), abs=1e-9)
    assert m["chunks"]["discontinuity"]["position_m"]["max"] == pytest.approx(jumps.max(), abs=1e-9)
    assert m["chunks"]["discontinuity"]["rotation_rad"]["max"] == pytest.approx(0.0, abs=1e-9)
    lat = m["latency"]
    assert lat["injected_s"]["mean"] == pytest.approx(0.05, abs=1e-12)
    assert lat["injected_s"]["max"] == pytest.approx(0.05, abs=1e-12)
    delays = [r.triggered_at + 0.05 - r.chunk.stamp for r in recs]
    assert lat["chunk_delay_s"]["mean"] == pytest.approx(np.mean(delays), abs=1e-9)
    assert all(r.arrival == pytest.approx(r.triggered_at + 0.05, abs=1e-12) for r in recs)
    # rate trigger at 5 Hz from the first message: every trigger is 0.2 s after the previous one
    trig = np.array([r.triggered_at for r in recs])
    periods = np.diff(trig) / 0.2
    np.testing.assert_allclose(periods, np.round(periods), atol=1e-9)
    assert np.all(np.round(periods) >= 1)


def test_command_errors_equal_hand_computation(known):
    result, cfg = known
    m = result.metrics["policy"]
    lane = result.lanes["policy"]
    arr = lane.arrays()
    recs = lane.records
    # a chunk enters the plan after the first tick at or after its arrival (the executor node's order):
    # it drives the commands from one control period after it arrives
    ctrl = 1.0 / cfg.executor.control_rate
    arrivals = [r.arrival + ctrl for r in recs]
    errs, grip_ok, positions = [], [], []
    for t, pos in zip(arr["t"], arr["position"]):
        if t < arrivals[0] - 1e-9:
            continue
        k = max(i for i, a in enumerate(arrivals) if a <= t + 1e-9)
        s = recs[k].chunk.stamp
        expected_pos = np.array([0.4, 0.0, 0.3]) + V * (s - T0)
        np.testing.assert_allclose(pos, expected_pos, atol=1e-9)  # replace: the newest chunk's (constant) target
        positions.append(expected_pos)
        if t <= GT_END + 1e-9:
            errs.append(math.hypot(SPEED * (t - s), OFFSET))
        if GRIP_FIRST <= t <= GRIP_LAST:
            grip_ok.append(t < GRIPPER_SWITCH)
    c = m["commands"]
    assert c["scored"] == len(errs)
    assert c["position_error_m"]["mean"] == pytest.approx(np.mean(errs), abs=1e-9)
    assert c["position_error_m"]["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(errs))), abs=1e-9)
    assert c["position_error_per_axis_m"]["y"]["mean"] == pytest.approx(abs(D[1]), abs=1e-9)
    assert c["position_error_per_axis_m"]["z"]["mean"] == pytest.approx(abs(D[2]), abs=1e-9)
    assert c["rotation_error_rad"]["mean"] == pytest.approx(DROT, abs=1e-9)
    assert c["rotation_error_per_axis_rad"]["rz"]["mean"] == pytest.approx(DROT, abs=1e-9)
    assert c["gripper"]["accuracy"] == pytest.approx(np.mean(grip_ok), abs=1e-12)
    # jerk of a piecewise-constant command: third differences of a step J are J, 2J, J (/ dt^3)
    jumps = np.linalg.norm(np.diff(np.array(positions), axis=0), axis=1)
    assert m["smoothness"]["command_jerk_mps3"]["max"] == pytest.approx(2 * jumps.max() / 0.01**3, rel=1e-6)
    assert m["smoothness"]["command_step_m"]["max"] == pytest.approx(jumps.max(), abs=1e-9)
    ex = m["executor"]
    assert ex["clamps"] == 0 and ex["bridges"] == 0 and ex["chunks_rejected"] == 0 and ex["hold_ticks"] == 0


def test_hold_baseline_runs_on_the_same_bag(known):
    result, _ = known
    vs = result.metrics["vs_hold"]
    # the evaluated policy is hold itself: both lanes agree exactly
    for key in ("chunk_position_error_m", "command_position_error_m", "chunk_rotation_error_rad"):
        assert vs[key]["policy"] == pytest.approx(vs[key]["hold"], abs=1e-12)
        assert vs[key]["difference"] == pytest.approx(0.0, abs=1e-12)
    gt = result.metrics["ground_truth"]
    assert gt["kind"] == "pose" and gt["topic"] == "/target_pose"


def test_recorded_chunks_as_ground_truth(tmp_path, known):
    """Ground truth = the chunks a previous run recorded (replace semantics): hold vs its own recording."""
    first, cfg = known
    path = write_known_bag(tmp_path / "bag")
    from vla_ros.replay.evaluate import run_evaluation

    out = run_evaluation([path], cfg.with_overrides({"replay.output_bag": True}), policy=HoldPolicy(horizon=10, dt=0.1),
                         out_dir=tmp_path / "run1", progress=False, plots=False)
    recorded = out.results[0].output_bag
    cfg2 = cfg.with_overrides({"replay.ground_truth_topic": "/replay/hold/action_chunk"})
    res = evaluate_bag(recorded, cfg2, HoldPolicy(horizon=10, dt=0.1), progress=False)
    assert res.metrics["ground_truth"]["kind"] == "chunk"
    recs = res.lanes["policy"].records
    stamps = [r.chunk.stamp for r in recs]
    arrivals = [r.arrival for r in recs]  # the same run again: the recorded chunks arrived at the same times
    last_time = stamps[-1] + 0.9
    errs = []
    for s_j in stamps:
        for i in range(10):
            tau = s_j + 0.1 * i
            if tau > last_time + 1e-9:
                continue
            k = max([n for n, a in enumerate(arrivals) if a <= tau + 1e-9], default=0)
            errs.append(SPEED * abs(s_j - stamps[k]))
    m = res.metrics["policy"]["chunks"]
    assert m["scored_actions"] == len(errs)
    assert m["position_error_m"]["mean"] == pytest.approx(np.mean(errs), abs=1e-9)
    assert m["rotation_error_rad"]["max"] == pytest.approx(0.0, abs=1e-9)


def test_twist_ground_truth_scores_velocities(tmp_path):
    path = write_known_bag(tmp_path / "bag", twist_topic="/servo/delta_twist_cmds")
    cfg = known_config({"replay.ground_truth_topic": "/servo/delta_twist_cmds", "replay.latency": "none"})
    res = evaluate_bag(path, cfg, HoldPolicy(horizon=10, dt=0.1), progress=False)
    gt = res.metrics["ground_truth"]
    assert gt["kind"] == "twist" and "positions from ee_pose on /ee_pose" in gt["description"]
    vel = res.metrics["policy"]["commands"]["velocity"]
    # hold's commands stand still between chunks: the velocity error is the recorded speed there
    assert vel["count"] > 50
    assert vel["linear_error_mps"]["median"] == pytest.approx(SPEED, abs=1e-9)
    # positions are scored against the measured EE pose: hold lags it by the age of its observation
    assert res.metrics["policy"]["chunks"]["position_error_by_step_m"][0] == pytest.approx(0.0, abs=1e-9)
    assert res.metrics["policy"]["chunks"]["position_error_by_step_m"][4] == pytest.approx(SPEED * 0.4, abs=1e-9)
