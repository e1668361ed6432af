"""Real-Time Chunking: the executor's plan/committed steps and `guidance_from_plan`."""

import math

import numpy as np
import pytest

from executor_testlib import make_chunk, make_executor
from vla_ros.core.executor.rtc import ExecutionPlan, guidance_from_plan, plan_from_status_msg, soft_mask
from vla_ros.ros.conversions import ENCODER


def paper_weight(i: int, d: int, i_end: int) -> float:
    """Black, Galliker & Levine 2025, eq. 5."""
    if i < d:
        return 1.0
    if i >= i_end:
        return 0.0
    c = (i_end - i) / (i_end - d + 1)
    return c * (math.exp(c) - 1.0) / (math.e - 1.0)


def ramp_plan(n: int) -> np.ndarray:
    """x = 0.01 j, rz = 0.02 j, gripper = 1 - 0.1 j."""
    j = np.arange(n)
    acts = np.zeros((n, 7))
    acts[:, 0], acts[:, 5], acts[:, 6] = 0.01 * j, 0.02 * j, 1.0 - 0.1 * j
    return acts


def test_soft_mask_matches_the_paper():
    w = soft_mask(2, 6, 8)
    assert w.tolist() == pytest.approx([paper_weight(i, 2, 6) for i in range(8)])
    assert w[0] == w[1] == 1.0 and w[6] == w[7] == 0.0 and np.all(np.diff(w[1:7]) < 0)
    assert soft_mask(2, 6, 8, "hard").tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert soft_mask(2, 6, 8, "linear")[2] == pytest.approx(4 / 5)


def test_aligned_timelines_copy_the_plan_and_weight_it():
    acts = ramp_plan(6)  # plan at 1.0, 1.1, ..., 1.5
    g = guidance_from_plan(1.0, 0.1, 2, acts, obs_stamp=1.0, horizon=8, dt=0.1, max_guidance_weight=3.0)
    np.testing.assert_allclose(g.actions[:6], acts, atol=1e-12)
    np.testing.assert_allclose(g.actions[6:], acts[[5, 5]], atol=1e-12)  # beyond the plan: finite filler
    assert g.weights.tolist() == pytest.approx([paper_weight(i, 2, 6) for i in range(8)])
    assert g.committed_steps == 2 and g.max_guidance_weight == 3.0


def test_plan_is_resampled_onto_the_new_chunk_timeline():
    acts = ramp_plan(6)  # covers [1.0, 1.5]; committed: 2 samples = [1.0, 1.2)
    g = guidance_from_plan(1.0, 0.1, 2, acts, obs_stamp=1.05, horizon=12, dt=0.05, max_guidance_weight=1.0)
    taus = 1.05 + 0.05 * np.arange(12)
    inside = taus <= 1.5 + 1e-9
    u = np.clip((taus - 1.0) / 0.1, 0.0, 5.0)
    np.testing.assert_allclose(g.actions[inside, 0], 0.01 * u[inside], atol=1e-12)
    np.testing.assert_allclose(g.actions[inside, 5], 0.02 * u[inside], atol=1e-9)  # slerp about z
    np.testing.assert_allclose(g.actions[inside, 6], 1.0 - 0.1 * u[inside], atol=1e-12)
    # 1.05, 1.10, 1.15 are before 1.2 -> committed; 1.20 .. 1.50 overlap (i_end = 10); rest 0.
    assert g.weights.tolist() == pytest.approx([paper_weight(i, 3, 10) for i in range(12)])


def test_steps_before_the_plan_start_are_the_executed_past():
    acts = ramp_plan(4)
    g = guidance_from_plan(1.0, 0.1, 1, acts, obs_stamp=0.9, horizon=5, dt=0.1, max_guidance_weight=1.0)
    np.testing.assert_allclose(g.actions[0], acts[0])
    assert g.weights[:2].tolist() == [1.0, 1.0]  # 0.9 (past) and 1.0 (committed)
    assert g.committed_steps == 2


def test_no_overlap_or_no_plan_gives_no_guidance():
    acts = ramp_plan(4)  # ends at 1.3
    assert guidance_from_plan(1.0, 0.1, 1, acts, obs_stamp=1.31, horizon=5, dt=0.1, max_guidance_weight=1.0) is None
    assert guidance_from_plan(1.0, 0.1, 0, np.zeros((0, 7)), 1.0, 5, 0.1, 1.0) is None


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"plan_actions": np.zeros((3, 6))}, "plan_actions"),
        ({"plan_actions": np.full((3, 7), np.nan)}, "plan_actions"),
        ({"plan_dt": 0.0}, "plan_dt"),
        ({"dt": -0.1}, "dt"),
        ({"horizon": 0}, "horizon"),
        ({"committed_steps": -1}, "committed_steps"),
        ({"obs_stamp": float("nan")}, "obs_stamp"),
    ],
)
def test_bad_arguments_are_named(kwargs, field):
    args = dict(plan_start=0.0, plan_dt=0.1, committed_steps=1, plan_actions=ramp_plan(3), obs_stamp=0.0,
                horizon=4, dt=0.1, max_guidance_weight=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        guidance_from_plan(**args)


def test_executor_plan_reports_committed_steps_from_expected_delay():
    ex = make_executor({"expected_delay": 0.25, "watchdog_timeout": 5.0})
    ex.submit(make_chunk(0.40 + 0.01 * np.arange(10), stamp=0.0), 0.02)
    plan = ex.plan(0.33)
    assert plan.start == pytest.approx(0.4) and plan.dt == 0.1 and plan.steps == 6  # 0.4 .. 0.9
    np.testing.assert_allclose(plan.actions[:, 0], 0.44 + 0.01 * np.arange(6), atol=1e-12)
    assert plan.committed_steps == 3  # ceil(0.25 / 0.1)


def test_executor_plan_uses_the_measured_delay_when_none_is_configured():
    ex = make_executor({"expected_delay": 0.0, "watchdog_timeout": 5.0})
    assert ex.plan(0.0).steps == 0 and ex.plan(0.0).committed_steps == 0
    ex.submit(make_chunk(0.40, horizon=20, stamp=0.0), 0.05)
    ex.submit(make_chunk(0.40, horizon=20, stamp=0.2), 0.32)  # delays 0.05 and 0.12: the larger counts
    assert ex.plan(0.32).committed_steps == 2
    st = ex.status(0.32)
    assert st.last_chunk_delay == pytest.approx(0.12) and st.mean_chunk_delay == pytest.approx(0.085)


def test_plan_includes_a_pending_bridge():
    ex = make_executor({"bridge_distance": 0.02, "bridge_speed": 0.1, "watchdog_timeout": 5.0})
    ex.submit(make_chunk(0.50, horizon=10), 0.0)
    ex.tick(0.0)  # bridge 0.40 -> 0.50 over [0, 1], plan shifted to [1.0, 1.9]
    plan = ex.plan(0.0)
    assert plan.start == pytest.approx(0.0) and plan.end == pytest.approx(1.9)
    np.testing.assert_allclose(plan.actions[:11, 0], np.linspace(0.40, 0.50, 11), atol=1e-12)
    assert ex.status(0.0).remaining_time == pytest.approx(1.9)


def test_plan_survives_the_status_message_and_becomes_guidance():
    """Executor plan -> ExecutorStatus message -> policy side: the same guidance as in-process."""
    ex = make_executor({"expected_delay": 0.15, "watchdog_timeout": 5.0})
    ex.submit(make_chunk(0.40 + 0.01 * np.arange(10), rz=0.02 * np.arange(10), stamp=0.0), 0.0)
    ex.tick(0.12)
    msg = ENCODER.executor_status(ex.status(0.12))
    back = plan_from_status_msg(msg)
    plan = ex.plan(0.12)
    assert back.start == pytest.approx(plan.start, abs=1e-9) and back.dt == plan.dt
    assert back.committed_steps == plan.committed_steps == 2
    np.testing.assert_allclose(back.actions, plan.actions, atol=1e-9)
    g = back.guidance(obs_stamp=0.15, horizon=10, dt=0.1, max_guidance_weight=5.0)
    direct = plan.guidance(obs_stamp=0.15, horizon=10, dt=0.1, max_guidance_weight=5.0)
    np.testing.assert_allclose(g.actions, direct.actions, atol=1e-9)
    np.testing.assert_allclose(g.weights, direct.weights)
    assert isinstance(back, ExecutionPlan)
