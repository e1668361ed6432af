"""Status: counters, queue length, loop-period statistics, and the ExecutorStatus message."""

import os
import threading

import numpy as np
import pytest

from executor_testlib import make_chunk, make_executor
from vla_ros.core.executor import LIMIT_NAMES, ExecutorState
from vla_ros.core.executor.stats import LoopStats
from vla_ros.ros.conversions import ENCODER
from vla_ros.ros.executor_node import preview_topic, set_realtime_priority


def test_loop_stats_cover_the_last_second_only():
    s = LoopStats()
    t = 0.0
    for _ in range(100):  # one slow period long ago ...
        t += 0.01
        s.record(t)
    s.record(t + 0.5)
    t += 0.5
    for _ in range(150):  # ... then 1.5 s of steady 10 ms ticks
        t += 0.01
        s.record(t)
    mean, p99, mx = s.summary()
    assert mean == pytest.approx(0.01) and p99 == pytest.approx(0.01) and mx == pytest.approx(0.01)
    s.record(t + 0.03)
    assert s.summary()[2] == pytest.approx(0.03)


def test_status_reports_queue_and_counters():
    ex = make_executor({"watchdog_timeout": 5.0}, {"gripper_max": 0.9})
    ex.submit(make_chunk(0.40, horizon=10, stamp=0.0, seq=7), 0.05)
    for t in np.arange(0.1, 0.35, 0.01):
        ex.tick(float(t))
    st = ex.status(0.34)
    assert st.state == ExecutorState.RUNNING and st.state_name == "running"
    assert st.chunk_seq == 7 and st.policy_id == "test" and st.dry_run is True
    assert st.remaining_time == pytest.approx(0.9 - 0.34)
    assert st.remaining_steps == 6  # 0.4 .. 0.9
    assert st.skipped_steps == 1 and st.chunks_received == 1
    assert st.clamps == st.limit_counts["gripper"] == 25
    # Periods: 0.11 s from the set-up tick at -0.01, then 24 x 10 ms.
    assert st.loop_period_mean == pytest.approx((0.11 + 0.24) / 25) and st.loop_period_max == pytest.approx(0.11)


def test_status_message_carries_every_field():
    ex = make_executor({"watchdog_timeout": 5.0}, {"gripper_max": 0.9})
    ex.submit(make_chunk(0.40 + 0.01 * np.arange(10), stamp=0.0, seq=3), 0.0)
    ex.tick(0.0)
    ex.reject("action_chunk: poses: bad")
    msg = ENCODER.executor_status(ex.status(0.0, dry_run=False))
    assert msg.state == msg.STATE_RUNNING and msg.state_name == "running" and msg.dry_run is False
    assert (msg.chunk_seq, msg.chunks_received, msg.chunks_rejected, msg.clamps) == (3, 2, 1, 1)
    assert list(msg.limit_names) == list(LIMIT_NAMES)
    assert dict(zip(msg.limit_names, msg.limit_counts))["gripper"] == 1
    assert "poses" in msg.message
    assert len(msg.plan_poses) == len(msg.plan_gripper) == 10 and msg.plan_dt == pytest.approx(0.1)
    assert msg.plan_poses[3].position.x == pytest.approx(0.43)
    assert msg.header.frame_id == "base_link"


def test_preview_topics_keep_absolute_names_absolute():
    assert preview_topic("preview", "target_pose") == "preview/target_pose"
    assert preview_topic("preview", "/arm/target_pose") == "/preview/arm/target_pose"
    assert preview_topic("/preview/", "x") == "preview/x"


def test_realtime_priority_applies_to_the_calling_thread_only():
    seen = {}

    def worker():
        seen["err"] = set_realtime_priority(10)
        seen["policy"] = os.sched_getscheduler(0)
        seen["reset"] = set_realtime_priority(0)
        seen["after"] = os.sched_getscheduler(0)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    if seen["err"]:
        pytest.skip(f"SCHED_FIFO not permitted here: {seen['err']}")
    assert seen["policy"] == os.SCHED_FIFO and seen["reset"] == "" and seen["after"] == os.SCHED_OTHER
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the test's own thread was never touched
