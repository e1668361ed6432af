"""The executor node under input faults, over real DDS (issue 11, findings 4, 9 and 11).

The executor runs in its own process (as in test_executor_node_dds.py); the test node plays the
policy, the robot and the e-stop button. Each test asserts what reaches the command topics and
what the ExecutorStatus says, never timing.
"""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import Pose
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool

from executor_testlib import make_chunk
from test_executor_node_dds import HOME, Harness, start_executor, x_of
from vla_ros.ros.conversions import ENCODER

LIVE = {"executor.dry_run": "false", "executor.control_rate": "50.0", "executor.status_rate_hz": "20.0"}
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


class FaultHarness(Harness):
    """`Harness` whose "robot" can stop reporting its pose (`pose_on = False`)."""

    pose_on = True

    def _publish_pose(self) -> None:
        if self.pose_on:
            super()._publish_pose()


def never_ran_a_chunk(h: Harness) -> None:
    """Every command so far is the hold of the measured pose, and no status ever said running."""
    assert h.got["target_pose"], "the executor published no command at all"
    assert {round(x_of(m), 9) for m in h.got["target_pose"]} == {round(float(HOME[0]), 9)}
    assert all(s.state_name != "running" for s in h.status)


@pytest.mark.timeout(90)
def test_estop_latched_before_the_executor_starts_is_honoured(rclpy_context):
    button = Node("latched_estop_button", context=rclpy_context)
    button.create_publisher(Bool, "estop", LATCHED).publish(Bool(data=True))  # published before the executor exists
    h = FaultHarness(rclpy_context, start_executor(**LIVE))
    try:
        h.streaming = 0.43
        h.spin_until(lambda: h.state() == "estop", what="e-stop latched from the transient-local topic")
        h.spin_for(1.0)  # chunks keep arriving at 10 Hz
        never_ran_a_chunk(h)
        assert "e-stop" in h.last_status().message
    finally:
        out = h.close()
        button.destroy_node()
    assert "E-STOP latched by estop topic" in out


@pytest.mark.timeout(90)
def test_best_effort_estop_publisher_is_heard(rclpy_context):
    h = FaultHarness(rclpy_context, start_executor(**LIVE))
    button = h.node.create_publisher(Bool, "estop", BEST_EFFORT)
    try:
        h.streaming = 0.43
        h.spin_until(lambda: h.state() == "running", what="running before the e-stop")
        h.spin_until(lambda: button.get_subscription_count() >= 1, what="the best-effort e-stop publisher matched")
        button.publish(Bool(data=True))
        h.spin_until(lambda: h.state() == "estop", what="e-stop from a best-effort publisher")
        n = len(h.got["target_pose"])
        h.spin_until(lambda: len(h.got["target_pose"]) >= n + 10, what="commands during the e-stop")
        held = {round(x_of(m), 9) for m in h.got["target_pose"][n:]}
        assert len(held) == 1, f"the target moved during the e-stop: {sorted(held)}"
    finally:
        h.close()


@pytest.mark.timeout(90)
def test_estop_required_holds_until_the_estop_topic_is_heard(rclpy_context):
    h = FaultHarness(rclpy_context, start_executor(**LIVE, **{"executor.estop_required": "true"}))
    h.node.destroy_publisher(h.estop_pub)  # no e-stop input at all, at first
    try:
        h.streaming = 0.43
        h.spin_until(lambda: h.status and "no publisher on 'estop'" in h.last_status().message,
                     what="status naming the dead e-stop input")
        h.spin_until(lambda: h.last_status().chunks_rejected >= 3, what="chunks refused while the e-stop is unheard")
        msg = h.last_status().message
        assert "executor.estop_required" in msg and "'estop'" in msg
        never_ran_a_chunk(h)

        button = h.node.create_publisher(Bool, "estop", LATCHED)
        button.publish(Bool(data=False))
        h.spin_until(lambda: h.state() == "running" and abs(x_of(h.got["target_pose"][-1]) - 0.43) < 1e-9,
                     what="chunks executed once the e-stop topic said false")
        assert "estop_required" not in h.last_status().message
        assert "no publisher" not in h.last_status().message
    finally:
        h.close()


@pytest.mark.timeout(90)
def test_overlong_chunk_is_refused_by_name_and_streaming_goes_on(rclpy_context):
    h = FaultHarness(rclpy_context, start_executor(**LIVE))
    poses = h.got["target_pose"]
    try:
        h.streaming = 0.43
        h.spin_until(lambda: h.state() == "running", what="running")
        h.streaming = None  # no good chunk clears the status message meanwhile
        huge = ENCODER.action_chunk(make_chunk(0.41, horizon=10, stamp=h.now(), seq=10_000))
        pose = huge.poses[0]
        huge.poses = [Pose(position=pose.position, orientation=pose.orientation) for _ in range(10_000)]
        huge.gripper = [0.5] * 10_000
        h.chunk_pub.publish(huge)
        h.spin_until(lambda: h.last_status().chunks_rejected >= 1, what="the 10000-pose chunk refused")
        msg = h.last_status().message
        assert "executor.max_chunk_steps = 256" in msg and "refused before decoding" in msg, msg
        h.streaming = 0.43
        n = len(poses)
        h.spin_until(lambda: len(poses) >= n + 20 and h.state() == "running", what="streaming after the refusal")
        assert abs(x_of(poses[-1]) - 0.43) < 1e-9, "the refused chunk (x = 0.41) was never executed"
    finally:
        h.close()


@pytest.mark.timeout(90)
def test_chunk_burst_is_bounded_by_the_queue_and_counted(rclpy_context):
    # 5 Hz control: a burst of 10 chunks lands between two ticks; 4 are kept, the oldest dropped.
    h = FaultHarness(rclpy_context, start_executor(**{**LIVE, "executor.control_rate": "5.0"}))
    try:
        h.spin_until(lambda: h.status and h.got["target_pose"], what="the executor running")
        for i in range(10):
            h.chunk_pub.publish(ENCODER.action_chunk(make_chunk(0.42, horizon=10, stamp=h.now(), seq=100 + i)))
        h.spin_until(lambda: "executor.max_queued_chunks = 4" in h.last_status().message,
                     what="status naming the dropped chunks")
        assert "dropped" in h.last_status().message
        h.spin_until(lambda: h.last_status().chunk_seq == 109, what="the newest chunk of the burst executed")
    finally:
        out = h.close()
    assert "dropped: more than executor.max_queued_chunks = 4 waiting" in out


@pytest.mark.timeout(90)
def test_twist_output_holds_and_says_why_when_the_pose_goes_stale(rclpy_context):
    h = FaultHarness(rclpy_context, start_executor(**LIVE, **{"executor.output_mode": "twist"}))
    twists = h.got["delta_twist_cmds"]
    try:
        h.streaming = 0.43
        h.spin_until(lambda: h.state() == "running", what="running in twist mode")
        h.spin_until(lambda: any(t.twist.linear.x > 0.0 for t in twists), what="a twist towards the chunks")
        h.pose_on = False  # the robot's pose publisher dies
        h.spin_until(lambda: h.state() == "holding" and "stale" in h.last_status().message,
                     what="status holding because the pose is stale")
        assert "safety.max_pose_age" in h.last_status().message
        n = len(twists)
        h.spin_until(lambda: len(twists) >= n + 10, what="twists while the pose is stale")
        assert all(np.allclose([t.twist.linear.x, t.twist.linear.y, t.twist.linear.z,
                                t.twist.angular.x, t.twist.angular.y, t.twist.angular.z], 0.0) for t in twists[n:])
        assert all(s.state_name != "running" for s in h.status[-3:])
    finally:
        h.close()
