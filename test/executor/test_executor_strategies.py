"""Overlapping chunks: replace, crossfade and temporal_ensemble, exact values on small chunks.

Chunk A (observation 0.0) holds x = 0.40 for 10 steps of 0.1 s (ends at 0.9); chunk B holds
x = 0.42. With constant chunks the expected command is a closed-form expression of the weights.
"""

import math

import numpy as np
import pytest

from executor_testlib import make_chunk, make_executor, rotation_error, yaw
from vla_ros.core.rotations import rotvec_to_quat

A = dict(x=0.40, horizon=10, stamp=0.0, seq=1)


def x_at(ex, t):
    return ex.tick(t).position[0]


def test_replace_newest_wins_from_its_arrival():
    ex = make_executor({"strategy": "replace"})
    ex.submit(make_chunk(**A), 0.0)
    assert x_at(ex, 0.2) == pytest.approx(0.40)
    ex.submit(make_chunk(0.42, horizon=10, stamp=0.3, seq=2), 0.35)
    assert x_at(ex, 0.35) == pytest.approx(0.42)  # no blending at all
    assert x_at(ex, 0.8) == pytest.approx(0.42)
    assert ex.status(0.8).chunk_seq == 2


def test_crossfade_blends_linearly_over_the_overlap():
    ex = make_executor({"strategy": "crossfade"})
    ex.submit(make_chunk(**A), 0.0)
    ex.tick(0.45)
    ex.submit(make_chunk(0.42, horizon=10, stamp=0.5, seq=2), 0.5)
    # Overlap = [arrival 0.5, end of A 0.9]: B's weight 0 -> 1 over 0.4 s.
    expected = {0.5: 0.40, 0.6: 0.405, 0.7: 0.41, 0.8: 0.415, 0.9: 0.42, 1.2: 0.42}
    for t, x in expected.items():
        assert x_at(ex, t) == pytest.approx(x, abs=1e-12), t


def test_crossfade_blends_rotation_and_gripper_too():
    ex = make_executor({"strategy": "crossfade"})
    ex.submit(make_chunk(**A, rz=0.0, gripper=1.0), 0.0)
    ex.submit(make_chunk(0.40, horizon=10, stamp=0.5, rz=0.2, gripper=0.0), 0.5)
    cmd = ex.tick(0.6)  # weight 0.25
    assert yaw(cmd.orientation) == pytest.approx(0.05, abs=1e-9)
    assert cmd.gripper == pytest.approx(0.75)


def test_crossfade_after_the_old_plan_ended_switches_directly():
    ex = make_executor({"strategy": "crossfade"})
    ex.submit(make_chunk(**A), 0.0)
    ex.tick(0.95)  # A finished at 0.9: holding its last pose
    ex.submit(make_chunk(0.42, horizon=10, stamp=0.95, seq=2), 0.955)
    assert x_at(ex, 0.96) == pytest.approx(0.42)


def test_temporal_ensemble_weights_decay_with_chunk_age():
    decay = 0.5
    ex = make_executor({"strategy": "temporal_ensemble", "ensemble_decay": decay})
    ex.submit(make_chunk(**A, rz=0.0, gripper=1.0), 0.0)
    ex.submit(make_chunk(0.42, horizon=10, stamp=0.2, seq=2, rz=0.1, gripper=0.0), 0.2)
    w_a, w_b = math.exp(-decay * 2), 1.0  # A's observation is 2 steps older than B's
    cmd = ex.tick(0.5)
    assert cmd.position[0] == pytest.approx((0.40 * w_a + 0.42 * w_b) / (w_a + w_b), abs=1e-12)
    assert yaw(cmd.orientation) == pytest.approx(0.1 * w_b / (w_a + w_b), abs=1e-9)
    assert cmd.gripper == pytest.approx(w_a / (w_a + w_b))
    # A third chunk: all three predictions for t contribute, each weighted by its own age.
    ex.submit(make_chunk(0.44, horizon=10, stamp=0.3, seq=3), 0.55)
    w = np.exp(-decay * np.array([3.0, 1.0, 0.0]))
    assert x_at(ex, 0.6) == pytest.approx(float(w @ [0.40, 0.42, 0.44] / w.sum()), abs=1e-12)
    # Past A's end (0.9) only B and C remain.
    assert x_at(ex, 1.0) == pytest.approx(float(w[1:] @ [0.42, 0.44] / w[1:].sum()), abs=1e-12)


def test_temporal_ensemble_with_zero_decay_is_the_plain_average():
    ex = make_executor({"strategy": "temporal_ensemble", "ensemble_decay": 0.0})
    ex.submit(make_chunk(**A), 0.0)
    ex.submit(make_chunk(0.42, horizon=10, stamp=0.1), 0.1)
    assert x_at(ex, 0.3) == pytest.approx(0.41, abs=1e-12)


def test_temporal_ensemble_is_continuous_when_an_old_chunk_runs_out():
    """Between steps the ensemble is interpolated, so A ending at 0.9 causes no step at 0.9+."""
    ex = make_executor({"strategy": "temporal_ensemble", "ensemble_decay": 0.0})
    ex.submit(make_chunk(**A), 0.0)
    ex.submit(make_chunk(0.42, horizon=10, stamp=0.1), 0.1)
    assert x_at(ex, 0.9) == pytest.approx(0.41, abs=1e-12)  # both predict 0.9
    assert x_at(ex, 0.95) == pytest.approx(0.415, abs=1e-12)  # halfway to B alone
    assert x_at(ex, 1.0) == pytest.approx(0.42, abs=1e-12)


@pytest.mark.parametrize("strategy", ["replace", "crossfade", "temporal_ensemble"])
def test_the_rtc_plan_is_what_the_ticks_execute(strategy):
    """Two identical executors: one reports its plan, the other ticks through it: same poses."""
    rng = np.random.default_rng(7)
    chunks = []
    for k in range(3):
        stamp = 0.25 * k
        x = 0.4 + 0.02 * rng.normal(size=12).cumsum() / 10
        chunks.append((make_chunk(x, stamp=stamp, rz=rng.normal(size=12) * 0.05, gripper=rng.uniform(size=12), seq=k),
                       stamp + 0.05))
    a, b = (make_executor({"strategy": strategy, "watchdog_timeout": 5.0}) for _ in range(2))
    for ex in (a, b):
        for chunk, arrival in chunks:
            ex.submit(chunk, arrival)
            ex.tick(arrival)
    plan = a.plan(0.6)
    assert plan.steps == 11  # 0.6 .. 1.6 on the newest chunk grid (stamp 0.5, 12 steps)
    for t, act in zip(plan.times, plan.actions):
        cmd = b.tick(float(t))
        np.testing.assert_allclose(cmd.position, act[:3], atol=1e-12)
        assert rotation_error(cmd.orientation, rotvec_to_quat(act[3:6])) < 1e-9
        assert cmd.gripper == pytest.approx(act[6], abs=1e-12)
