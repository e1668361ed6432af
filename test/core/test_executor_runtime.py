"""ExecutorRuntime: the one executor driving loop (node, replay, executor process) - its rules."""

from __future__ import annotations

import numpy as np

from vla_ros.core.config import VlaConfig
from vla_ros.core.executor_runtime import ExecutorRuntime
from vla_ros.core.types import ActionChunk, ActionMode
from vla_ros.ros.conversions import ENCODER

QUAT = (0.0, 0.0, 0.0, 1.0)


def _chunk(stamp: float, x: float, steps: int = 10) -> ActionChunk:
    actions = np.zeros((steps, 7))
    actions[:, 0] = x
    actions[:, 2] = 0.3
    actions[:, 6] = 0.5
    return ActionChunk(stamp=stamp, dt=0.1, actions=actions, mode=ActionMode.ABSOLUTE, frame_id="base_link")


def _runtime(**overrides) -> ExecutorRuntime:
    return ExecutorRuntime(VlaConfig().with_overrides(overrides))


def _pose(rt: ExecutorRuntime, t: float, x: float = 0.4, frame: str = "base_link", stamp: float | None = None) -> str:
    return rt.feedback.on_msg(ENCODER.pose_stamped(t if stamp is None else stamp, frame, (x, 0.0, 0.3), QUAT), t)


def test_a_chunk_received_before_a_tick_enters_the_plan_after_it_with_its_receive_time():
    rt = _runtime()
    assert _pose(rt, 10.0) == ""
    rt.step(10.0)  # holding the measured pose
    reason, dropped = rt.receive(ENCODER.action_chunk(_chunk(10.0, 0.45)), 10.005, token="c1")
    assert (reason, dropped) == ("", 0) and rt.queued == 1
    cmd, results = rt.step(10.01)
    assert cmd.hold and [t for t, _ in results] == ["c1"] and results[0][1].accepted  # tick first, then admitted
    assert rt.queued == 0
    cmd, results = rt.step(10.02)
    assert not cmd.hold and cmd.state.label == "running" and results == []  # now it runs
    for k in range(3, 20):
        cmd, _ = rt.step(10.0 + k * 0.01)
    assert cmd.position[0] > 0.41  # towards the chunk's x = 0.45


def test_the_feedback_pose_rule_frame_checked_and_stamped_with_the_receive_time():
    rt = _runtime()
    why = _pose(rt, 10.0, frame="world")
    assert "header.frame_id" in why and "'base_link'" in why and "'world'" in why and rt.feedback.pose is None
    # A header stamp far in the past does not make the pose stale: it is stamped when received.
    assert _pose(rt, 10.0, stamp=1.0) == ""
    assert rt.feedback.time == 10.0
    cmd, _ = rt.step(10.01)
    assert cmd is not None and cmd.hold  # safety.max_pose_age (0.5 s) holds, it does not stop
    bad = ENCODER.pose_stamped(10.0, "base_link", (0.4, 0.0, 0.3), (0.0, 0.0, 0.0, 0.0))
    assert "pose ignored" in rt.feedback.on_msg(bad, 10.02) and rt.feedback.time == 10.0


def test_a_malformed_chunk_is_refused_and_counted_and_a_full_queue_drops_the_oldest():
    rt = _runtime(**{"executor.max_queued_chunks": 2})
    msg = ENCODER.action_chunk(_chunk(10.0, 0.45))
    msg.gripper = msg.gripper[:3]
    reason, _ = rt.receive(msg, 10.0)
    assert "gripper" in reason and rt.queued == 0
    assert rt.status(10.0).chunks_rejected == 1
    for i in range(3):
        rt.receive(ENCODER.action_chunk(_chunk(10.0 + i * 0.01, 0.45)), 10.0, token=i)
    assert rt.queued == 2 and rt.dropped == 1
    _pose(rt, 10.0)
    _, results = rt.step(10.05)
    assert [t for t, _ in results] == [1, 2]


def test_the_status_message_reads_back_through_the_policy_side_conversion():
    from vla_ros.core.executor_feedback import ExecutorFeedback

    rt = _runtime()
    _pose(rt, 10.0)
    rt.step(10.0)
    rt.receive(ENCODER.action_chunk(_chunk(10.0, 0.45)), 10.0)
    rt.step(10.01)
    st = rt.status(10.02)
    fb = ExecutorFeedback.from_msg(rt.status_message(ENCODER, st))
    assert fb.chunks_received == 1 and abs(fb.remaining_time - st.remaining_time) < 1e-9
    plan = fb.plan()
    assert plan.steps == st.plan.steps and np.allclose(plan.actions[:, :3], st.plan.actions[:, :3])
