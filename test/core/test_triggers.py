"""Rate / queue triggers and RTC guidance from the executor's status (ROS-free logic)."""

import numpy as np
import pytest

from core_testlib import executor_status, observation
from vla_ros.core.executor_feedback import EXECUTOR_STATE_ESTOP, ExecutorFeedback, rtc_guidance
from vla_ros.core.triggers import QueueTrigger
from vla_ros.msg import ExecutorStatus


def feedback(stamp, **kw):
    return ExecutorFeedback.from_msg(executor_status(stamp, **kw))


def test_queue_trigger_fires_when_the_plan_runs_low():
    q = QueueTrigger(0.4, ack_timeout=1.0, status_timeout=1.0, topic="/executor_status")
    assert not q.due(10.0)
    assert q.waiting_for(10.0) == "trigger 'queue': no ExecutorStatus received on /executor_status yet"
    q.on_status(feedback(10.0, remaining=0.8))
    assert not q.due(10.05) and q.waiting_for(10.05) == ""
    q.on_status(feedback(10.1, remaining=0.3))
    assert q.due(10.15)


def test_queue_trigger_waits_until_the_executor_received_the_chunk():
    q = QueueTrigger(0.4, ack_timeout=1.0, status_timeout=1.0)
    q.on_status(feedback(10.0, remaining=0.1, received=4))
    assert q.due(10.0)
    q.on_chunk(10.05)
    q.on_status(feedback(10.1, remaining=0.05, received=4))  # old plan: executor has not got it yet
    assert not q.due(10.1)
    assert "waiting for the executor to receive the last chunk" in q.waiting_for(10.1)
    q.on_status(feedback(10.2, remaining=0.9, received=5))  # received: remaining is current
    assert not q.due(10.2)
    q.on_status(feedback(10.8, remaining=0.3, received=5))
    assert q.due(10.8)


def test_queue_trigger_ack_timeout_covers_a_lost_chunk():
    q = QueueTrigger(0.4, ack_timeout=0.5, status_timeout=1.0)
    q.on_status(feedback(10.0, remaining=0.0, received=2))
    q.on_chunk(10.0)
    q.on_status(feedback(10.3, remaining=0.0, received=2))
    assert not q.due(10.3)
    q.on_status(feedback(10.6, remaining=0.0, received=2))
    assert q.due(10.6)


def test_queue_trigger_is_quiet_for_an_estopped_or_silent_executor():
    assert EXECUTOR_STATE_ESTOP == ExecutorStatus.STATE_ESTOP
    q = QueueTrigger(0.4, ack_timeout=0.5, status_timeout=1.0)
    q.on_status(feedback(10.0, remaining=0.0, state=ExecutorStatus.STATE_ESTOP))
    assert not q.due(10.0) and "e-stopped" in q.waiting_for(10.0)
    q.on_status(feedback(10.0, remaining=0.0))
    assert q.due(10.5)
    assert not q.due(11.5) and "is 1.50 s old" in q.waiting_for(11.5)


def test_rtc_guidance_resamples_the_plan_on_the_new_chunk_timeline():
    fb = feedback(20.0, plan_start=20.0, plan_x=[0.40, 0.41, 0.42, 0.43, 0.44], plan_dt=0.1, committed=2)
    obs = observation(20.1)
    g, why = rtc_guidance(fb, obs, horizon=10, dt=0.1, max_guidance_weight=5.0, now=20.2, max_status_age=1.0,
                          frame_id="base_link")
    assert why == "" and g is not None
    np.testing.assert_allclose(g.actions[:4, 0], [0.41, 0.42, 0.43, 0.44])
    assert g.weights[0] == 1.0 and g.weights[3] > 0.0 and np.all(g.weights[4:] == 0.0)
    assert g.max_guidance_weight == 5.0


@pytest.mark.parametrize(
    "fb, now, frame, reason",
    [
        (None, 20.0, "base_link", "no ExecutorStatus received on executor_status yet"),
        (dict(plan_x=[0.4, 0.5]), 22.0, "base_link", "newest status is 2.00 s old"),
        (dict(plan_x=[]), 20.0, "base_link", "executor has no plan"),
        (dict(plan_x=[0.4, 0.5]), 20.0, "world", "plan frame 'base_link' differs from the chunk frame 'world'"),
        (dict(plan_x=[0.4, 0.5], plan_start=10.0), 20.0, "base_link", "does not overlap"),
    ],
)
def test_rtc_guidance_says_why_there_is_none(fb, now, frame, reason):
    f = None if fb is None else feedback(20.0, **fb)
    g, why = rtc_guidance(f, observation(20.0), horizon=10, dt=0.1, max_guidance_weight=5.0, now=now,
                          max_status_age=1.0, frame_id=frame)
    assert g is None and reason in why


def test_malformed_plan_is_reported_not_raised():
    msg = executor_status(20.0, plan_x=[0.4, 0.5])
    msg.plan_gripper = [1.0]
    g, why = rtc_guidance(ExecutorFeedback.from_msg(msg), observation(20.0), horizon=10, dt=0.1,
                          max_guidance_weight=5.0, now=20.0, max_status_age=1.0)
    assert g is None and "plan_gripper: expected one value per plan pose (2), got 1" in why
