"""The policy node takes the end-effector pose from /tf + /tf_static when no PoseStamped topic is set."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("tf2_msgs", reason="tf2_msgs (test/msg_pkgs, built by scripts/build.sh) is not on the path")

from geometry_msgs.msg import TransformStamped  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from node_testlib import NodeHarness  # noqa: E402
from vla_ros.core.msg_decode import chunk_from_msg  # noqa: E402
from vla_ros.ros.conversions import header  # noqa: E402
from vla_ros.ros.tf_listener import tf_qos  # noqa: E402


def _ts(stamp, parent, child, xyz, yaw=0.0):
    ts = TransformStamped()
    ts.header = header(stamp, parent)
    ts.child_frame_id = child
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = xyz
    ts.transform.rotation.z, ts.transform.rotation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    return ts


@pytest.mark.timeout(60)
def test_ee_pose_state_from_tf_chain(rclpy_context):
    h = NodeHarness(rclpy_context, {"robot.ee_pose_topic": "", "robot.ee_frame": "tool0"}, sensors={})
    try:
        static = h.test.create_publisher(TFMessage, "/tf_static", tf_qos(True))
        dyn = h.test.create_publisher(TFMessage, "/tf", tf_qos(False))
        static.publish(TFMessage(transforms=[_ts(h.now(), "base_link", "shoulder", (0.1, 0.0, 0.2))]))
        h.test.create_timer(0.02, lambda: dyn.publish(TFMessage(transforms=[
            _ts(h.now(), "shoulder", "tool0", (0.25, 0.05, 0.1), yaw=0.3)])))
        node = h.node
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert h.spin_until(lambda: len(h.chunks) >= 2), f"no chunk; status: {node.status_msg()}"
        chunk = chunk_from_msg(h.chunks[-1])  # hold: the chunk is the observed EE pose
        np.testing.assert_allclose(chunk.actions[0, :3], [0.35, 0.05, 0.3], atol=1e-9)
        np.testing.assert_allclose(chunk.actions[0, 3:6], [0.0, 0.0, 0.3], atol=1e-9)
    finally:
        h.close()
