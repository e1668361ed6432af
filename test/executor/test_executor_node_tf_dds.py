"""The executor node over DDS with TF: a chunk in another frame is transformed through /tf_static,
a chunk in a frame without a known transform is refused by name."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("tf2_msgs", reason="tf2_msgs (test/msg_pkgs, built by scripts/build.sh) is not on the path")

from geometry_msgs.msg import TransformStamped  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from executor_testlib import make_chunk  # noqa: E402
from test_executor_node_dds import Harness, start_executor, x_of  # noqa: E402
from vla_ros.ros.conversions import ENCODER, header  # noqa: E402
from vla_ros.ros.tf_listener import tf_qos  # noqa: E402

TABLE_T = (0.05, 0.0, 0.0)  # base_link -> table: 5 cm along x, turned 90 deg about z
TABLE_YAW = math.pi / 2


def static_tf(stamp: float) -> TFMessage:
    ts = TransformStamped()
    ts.header = header(stamp, "base_link")
    ts.child_frame_id = "table"
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = TABLE_T
    ts.transform.rotation.z, ts.transform.rotation.w = math.sin(TABLE_YAW / 2), math.cos(TABLE_YAW / 2)
    return TFMessage(transforms=[ts])


@pytest.mark.timeout(90)
def test_chunk_in_another_frame_is_transformed_and_unknown_frame_refused(rclpy_context):
    proc = start_executor(**{"executor.control_rate": "50.0", "executor.status_rate_hz": "20.0"})  # dry run
    h = Harness(rclpy_context, proc)
    static_pub = h.node.create_publisher(TFMessage, "/tf_static", tf_qos(True))
    static_pub.publish(static_tf(h.now()))  # once, latched (transient-local) as robot_state_publisher does
    frame = {"id": "table"}

    def publish_chunk() -> None:
        # target (0.42, 0, 0.30) in base_link, identity orientation, written in the table frame
        h.seq += 1
        chunk = make_chunk(0.0, y=-(0.42 - TABLE_T[0]), z=0.30, rz=-TABLE_YAW, horizon=10, stamp=h.now(),
                           seq=h.seq, frame_id=frame["id"])
        h.chunk_pub.publish(ENCODER.action_chunk(chunk))

    h.node.create_timer(0.1, publish_chunk)
    poses = h.got["preview/target_pose"]
    try:
        h.spin_until(lambda: poses and abs(x_of(poses[-1]) - 0.42) < 1e-6, what="commands reaching x=0.42")
        last = poses[-1].pose
        np.testing.assert_allclose([last.position.y, last.position.z], [0.0, 0.30], atol=1e-6)
        assert abs(last.orientation.z) < 1e-6 and poses[-1].header.frame_id == "base_link"
        # (a chunk that arrives before the latched /tf_static reached the node is refused, and said why)
        rejected = h.last_status().chunks_rejected
        frame["id"] = "nowhere"
        h.spin_until(lambda: h.last_status().chunks_rejected > rejected + 1, what="refused chunk")
        msg = h.last_status().message
        assert "'nowhere'" in msg and "no transform to 'base_link'" in msg and "frames present: base_link, table" in msg
    finally:
        h.close()


@pytest.mark.timeout(90)
def test_feedback_pose_from_tf_when_no_pose_topic(rclpy_context):
    """robot.ee_pose_topic '' (auto): the executor holds the pose the TF chain gives (base -> table static,
    table -> tool0 on /tf), with no PoseStamped anywhere."""
    proc = start_executor(**{"executor.control_rate": "50.0", "robot.ee_pose_topic": "''"})
    h = Harness(rclpy_context, proc)
    static_pub = h.node.create_publisher(TFMessage, "/tf_static", tf_qos(True))
    static_pub.publish(static_tf(h.now()))
    tf_pub = h.node.create_publisher(TFMessage, "/tf", tf_qos(False))

    def publish_tool() -> None:  # tool0 at (0.0, -0.32, 0.3) in table = (0.37, 0.0, 0.30) in base_link
        # (the harness's /ee_pose says x = 0.40: not subscribed without robot.ee_pose_topic)
        ts = TransformStamped()
        ts.header = header(h.now(), "table")
        ts.child_frame_id = "tool0"
        ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = 0.0, -0.32, 0.3
        ts.transform.rotation.z, ts.transform.rotation.w = -math.sin(TABLE_YAW / 2), math.cos(TABLE_YAW / 2)
        tf_pub.publish(TFMessage(transforms=[ts]))

    h.node.create_timer(0.02, publish_tool)
    poses = h.got["preview/target_pose"]
    try:
        h.spin_until(lambda: len(poses) >= 5, what="hold commands at the TF pose")
        p = poses[-1].pose
        np.testing.assert_allclose([p.position.x, p.position.y, p.position.z], [0.37, 0.0, 0.30], atol=1e-9)
        assert abs(p.orientation.z) < 1e-9
    finally:
        h.close()
