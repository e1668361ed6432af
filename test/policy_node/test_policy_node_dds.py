"""The policy node over real DDS with its inputs from another process (vla_ros.ros.sensor_sim).

1. Tiny flow-matching checkpoint: chunks carry the exact header stamp of the camera frame they
   were computed from, and the observation behind each chunk holds the EE pose of that stamp.
2. Malformed inputs (bad encoding, short image, NaN joints, wrong pose frame) and stale inputs
   produce no chunk; the counters and per-topic messages say why.
3. The real entry point (`python -m vla_ros.ros.policy_node`): a load failure keeps the process up
   in STATE_ERROR (no crash loop); an invalid parameter exits with code 2 naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from node_testlib import NodeHarness
from ros_helpers import start_process, stop_process
from vla_ros.msg import PolicyStatus

REPO = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def start_sensors(*args: str):
    return start_process("vla_ros.ros.sensor_sim", *args, env=ENV)


@pytest.fixture
def harness(rclpy_context):
    made, procs = [], []

    def make(params, *sim_args):
        procs.append(start_sensors(*sim_args))
        h = NodeHarness(rclpy_context, params)
        h.proc = procs[-1]
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
    for p in procs:
        stop_process(p)


@pytest.mark.timeout(120)
def test_chunks_from_another_process_inputs_carry_the_observation_stamp(harness, tiny_checkpoint):
    # Random weights: the first pose may land further from the arm than the chunk check's
    # max_start_distance allows; this test is about stamps, so every chunk must go out.
    h = harness({"policy.type": "flow_matching", "policy.checkpoint": tiny_checkpoint, "policy.instruction": "",
                 "policy.rate_hz": 10.0, "safety.max_start_distance": 2.0},
                "--instruction", "pick up the red cube")  # the instruction also comes from the other process
    node = h.node
    camera_stamps, ee_x = set(), {}
    h.test.create_subscription(Image, "/camera/primary/image_raw",
                               lambda m: camera_stamps.add((m.header.stamp.sec, m.header.stamp.nanosec)), RELIABLE)
    h.test.create_subscription(PoseStamped, "/ee_pose",
                               lambda m: ee_x.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec),
                                                          m.pose.position.x),
                               RELIABLE)
    node.timing_log = []
    assert node.start(), node.status_msg().message
    meta = node.policy.metadata

    def stamp(msg):
        return (msg.header.stamp.sec, msg.header.stamp.nanosec)

    def seen():  # chunks whose frame the test saw too (its subscription may match a little later)
        first = min(camera_stamps) if camera_stamps else (2**62, 0)
        return [c for c in h.chunks if stamp(c) >= first]

    assert h.spin_until(lambda: len(seen()) >= 4, timeout=60.0), (node.status_msg().message, stop_process(h.proc))
    for chunk in seen():
        assert stamp(chunk) in camera_stamps  # exactly the camera frame's header stamp
        assert chunk.policy_id == "flow_matching" and chunk.checkpoint_id == meta.checkpoint_id
        assert len(chunk.poses) == len(chunk.gripper) == meta.horizon and chunk.dt == pytest.approx(meta.dt)
        assert chunk.header.frame_id == "base_link" and chunk.inference_latency > 0.0
    seqs = [c.seq for c in h.chunks]
    assert seqs == list(range(len(seqs)))  # reliable, in order, none lost
    for record, _ in node.timing_log:
        obs = record.observation
        key = divmod(record.sample.stamp_ns, 10**9)
        assert obs.instruction == "pick up the red cube"
        assert set(obs.images) == {"primary", "wrist"} and obs.images["primary"].shape == (48, 64, 3)
        if key in ee_x:  # the pose synchronized with the frame is the one published with its stamp
            assert obs.ee_pose.position[0] == pytest.approx(ee_x[key])
    st = node.status_msg()
    # The only rejections allowed: observations complete before the latched instruction from the
    # other process arrived (a race of discovery, correctly refused), never a malformed input.
    stats = node.builder.stats
    assert st.state == PolicyStatus.STATE_RUNNING
    assert st.observations_rejected == stats.rejected_by_topic.get("/instruction", 0)
    assert st.chunks_published == len(h.chunks) and st.observations_used >= len(h.chunks)


BAD = ["--fault", "bad_encoding=primary", "--fault", "short_data=wrist", "--fault", "nan_joints", "--fault",
       "bad_frame"]


@pytest.mark.timeout(90)
def test_malformed_inputs_produce_no_chunk_and_are_counted_per_topic(harness):
    h = harness({"policy.status_rate_hz": 10.0}, *BAD)
    node = h.node
    assert node.start()
    topics = ["/camera/primary/image_raw", "/camera/wrist/image_raw", "/joint_states", "/ee_pose"]
    by_topic = node.builder.stats.rejected_by_topic
    assert h.spin_until(lambda: all(by_topic[t] >= 3 for t in topics), timeout=45.0), (
        dict(by_topic), stop_process(h.proc))
    h.spin_for(0.5)
    assert h.chunks == []
    st = node.status_msg()
    assert st.chunks_published == 0 and st.observations_used == 0 and st.observations_dropped == 0
    assert st.observations_rejected == sum(by_topic.values()) and st.state == PolicyStatus.STATE_READY
    msgs = {t: node.builder.last_problems[t].message for t in topics}
    assert msgs["/camera/primary/image_raw"].startswith(
        "/camera/primary/image_raw: encoding 'yuv422' is not supported; expected one of rgb8")
    assert msgs["/camera/wrist/image_raw"].startswith("/camera/wrist/image_raw: data: expected at least 9216 bytes")
    assert msgs["/joint_states"] == "/joint_states: position: joint(s) joint_1 are NaN or inf"
    assert msgs["/ee_pose"] == ("/ee_pose: header.frame_id: expected 'base_link' (robot.base_frame) or empty, "
                                "got 'other_frame'")
    assert any(s.observations_rejected > 0 and s.message.split(":")[0] in topics for s in h.status)


@pytest.mark.timeout(90)
def test_stale_inputs_produce_no_chunk_and_count_as_dropped(harness):
    h = harness({"sync.max_age": 0.5}, "--fault", "stale", "--stale-offset", "2.0")
    node = h.node
    assert node.start()
    assert h.spin_until(lambda: node.builder.stats.dropped_stale >= 5, timeout=45.0), stop_process(h.proc)
    h.spin_for(0.5)
    assert h.chunks == []
    st = node.status_msg()
    assert st.chunks_published == 0 and st.observations_used == 0
    assert st.observations_dropped >= 5 and st.observations_rejected == 0
    p = node.builder.last_problem
    assert p.code == "stale" and p.counter == "dropped"
    assert "observation dropped: header.stamp is 2." in p.message
    assert "expected at most sync.max_age = 0.5 s" in p.message


@pytest.mark.timeout(60)
def test_entry_point_stays_up_in_error_state_when_the_policy_cannot_load(rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from ros_helpers import spin_until

    proc = start_process("vla_ros.ros.policy_node", "--policy", "flow_matching", "--checkpoint", "/nonexistent/ckpt",
                         "--ros-args", "-r", "__ns:=/entry_point_test", "-p", "policy.status_rate_hz:=10.0", env=ENV)
    node = Node("entry_point_test", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    status = []
    # its own namespace: no other node's status (another test's, a stray process) can reach this subscription
    node.create_subscription(PolicyStatus, "/entry_point_test/policy_status", status.append, RELIABLE)
    try:
        def errors():
            return [s for s in status if s.state == PolicyStatus.STATE_ERROR]

        assert spin_until(executor, lambda: len(errors()) >= 3, timeout=40.0), stop_process(proc)
        assert proc.poll() is None  # still running: no crash loop
        first = status.index(errors()[0])  # a "loading" status may come first
        assert all(s.state == PolicyStatus.STATE_ERROR for s in status[first:]), [
            (s.state_name, s.message) for s in status]
        assert all(s.state == PolicyStatus.STATE_LOADING for s in status[:first])
        assert ("cannot load the policy (policy.type='flow_matching', policy.checkpoint='/nonexistent/ckpt'"
                in status[-1].message)
    finally:
        executor.shutdown()
        node.destroy_node()
        out = stop_process(proc)
    assert "configure failed: cannot load the policy" in out  # one clear log line


@pytest.mark.timeout(60)
def test_entry_point_rejects_an_invalid_parameter_with_exit_code_2():
    proc = start_process("vla_ros.ros.policy_node", "--ros-args", "-p", "policy.trigger:=sometimes", env=ENV)
    out = proc.communicate(timeout=45)[0]
    assert proc.returncode == 2, out
    assert "policy.trigger" in out and "sometimes" in out
