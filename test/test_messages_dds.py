"""Our generated messages cross a process boundary over DDS, both ways, field for field."""

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ros_helpers import spin_until, start_process, stop_process
from vla_ros.core.types import ActionChunk, ActionMode, EEPose
from vla_ros.msg import ActionChunk as ActionChunkMsg
from vla_ros.msg import PolicyStatus
from vla_ros.core.msg_decode import chunk_from_msg
from vla_ros.ros.conversions import ENCODER, header


@pytest.mark.timeout(60)
def test_action_chunk_and_status_round_trip_between_processes(rclpy_context):
    echo = start_process("echo_node.py")
    node = Node("dds_test", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    try:
        chunk_pub = node.create_publisher(ActionChunkMsg, "chunk_in", qos)
        status_pub = node.create_publisher(PolicyStatus, "status_in", qos)
        got_chunks, got_status = [], []
        node.create_subscription(ActionChunkMsg, "chunk_out", got_chunks.append, qos)
        node.create_subscription(PolicyStatus, "status_out", got_status.append, qos)

        rng = np.random.default_rng(0)
        actions = np.concatenate([rng.uniform(-0.5, 0.5, (8, 6)), rng.uniform(0, 1, (8, 1))], axis=1)
        ref = EEPose(np.array([0.4, 0.0, 0.3]), np.array([0.0, 1.0, 0.0, 0.0]), "base_link")
        chunk = ActionChunk(
            stamp=1234.5678, dt=0.05, actions=actions, mode=ActionMode.DELTA, frame_id="base_link",
            reference_pose=ref, seq=7, policy_id="flow_matching", checkpoint_id="tiny-abc123",
            inference_latency=0.042, observation_age=0.01,
        )
        status = PolicyStatus(
            header=header(99.0), state=PolicyStatus.STATE_RUNNING, state_name="running",
            policy_id="hold", checkpoint_id="", device="cpu", last_latency=0.01, mean_latency=0.02,
            p99_latency=0.03, observation_age=0.1, chunks_published=41, observations_used=41,
            observations_dropped=2, observations_rejected=3, message="",
        )

        def publish_until_echoed() -> bool:
            # Discovery takes a moment: keep publishing until the echo process answers.
            if not got_chunks:
                chunk_pub.publish(ENCODER.action_chunk(chunk))
            if not got_status:
                status_pub.publish(status)
            return bool(got_chunks and got_status)

        assert spin_until(executor, publish_until_echoed, timeout=30.0, step=0.1), stop_process(echo)

        back = chunk_from_msg(got_chunks[0])
        assert back.seq == 1007
        assert back.stamp == pytest.approx(chunk.stamp, abs=1e-9)
        assert back.mode == ActionMode.DELTA and back.frame_id == "base_link"
        assert back.policy_id == "flow_matching" and back.checkpoint_id == "tiny-abc123"
        np.testing.assert_allclose(back.actions, chunk.actions, atol=1e-9)
        np.testing.assert_allclose(back.reference_pose.position, ref.position)
        assert back.inference_latency == pytest.approx(0.042, rel=1e-6)

        st = got_status[0]
        assert st.chunks_published == 42 and st.state == PolicyStatus.STATE_RUNNING
        assert (st.observations_dropped, st.observations_rejected) == (2, 3)
    finally:
        executor.shutdown()
        node.destroy_node()
        stop_process(echo)
