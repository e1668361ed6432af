"""The policy node in-process with real rclpy: lifecycle, load errors, triggers, RTC, instruction, swap.

Sensors, executor status and listeners are real rclpy nodes in the same process (real DDS within
one participant); the cross-process tests are in test_policy_node_dds.py. No timing is asserted:
"no chunk" is checked after spinning for a while with inputs flowing.
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from node_testlib import GatedPolicy, JointsPolicy, NodeHarness, executor_status
from vla_ros.core.config import ConfigError
from vla_ros.msg import ExecutorStatus, PolicyStatus
from vla_ros.policy import registry
from vla_ros.policy.hold import HoldPolicy

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


@pytest.fixture
def harness(rclpy_context):
    made = []

    def make(params=None, **kwargs):
        h = NodeHarness(rclpy_context, params or {}, **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.mark.timeout(60)
def test_lifecycle_states_drive_inference(harness):
    h = harness(sensors={})
    node = h.node
    assert node.status_msg().state == PolicyStatus.STATE_UNCONFIGURED
    assert node.trigger_configure() == SUCCESS and node.lifecycle_state == "inactive"
    st = node.status_msg()
    assert (st.state, st.policy_id, st.device) == (PolicyStatus.STATE_READY, "hold", "cpu")
    # Inactive: inputs are synchronized, nothing is inferred, and nothing counts as dropped.
    assert h.spin_until(lambda: node.builder.stats.synchronized >= 5)
    assert h.chunks == [] and node.status_msg().observations_dropped == 0

    assert node.trigger_activate() == SUCCESS
    assert h.spin_until(lambda: len(h.chunks) >= 3)
    assert [c.seq for c in h.chunks[:3]] == [0, 1, 2]
    assert h.spin_until(lambda: any(s.state == PolicyStatus.STATE_RUNNING for s in h.status))
    st = node.status_msg()
    assert st.chunks_published >= 3 and st.observations_used >= 3 and st.observations_rejected == 0
    assert st.mean_latency > 0.0 and 0.0 <= st.observation_age

    assert node.trigger_deactivate() == SUCCESS
    n = node.status_msg().chunks_published
    assert h.spin_until(lambda: len(h.chunks) == n)  # those published before deactivation arrive
    h.spin_for(0.5)
    # No chunk from an inactive node, not even one that was being computed.
    assert len(h.chunks) == n and node.status_msg().chunks_published == n
    assert node.status_msg().state == PolicyStatus.STATE_READY

    assert node.trigger_cleanup() == SUCCESS
    assert node.builder is None and node.worker is None
    assert node.status_msg().state == PolicyStatus.STATE_UNCONFIGURED
    assert node.start() and node.lifecycle_state == "active"  # configure + activate again
    assert h.spin_until(lambda: len(h.chunks) >= n + 2)
    assert h.chunks[n].seq == 0  # seq restarts after a (re)load


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "params, expected",
    [
        ({"policy.type": "flow_matching", "policy.checkpoint": "/nonexistent/ckpt"},
         "cannot load the policy (policy.type='flow_matching', policy.checkpoint='/nonexistent/ckpt'"),
        ({"policy.type": "nope"}, "unknown policy 'nope'; known policies:"),
    ],
)
def test_load_failure_is_an_error_state_not_a_crash(harness, params, expected):
    h = harness(params)
    node = h.node
    assert node.trigger_configure() == FAILURE
    assert node.lifecycle_state == "unconfigured"
    st = node.status_msg()
    assert st.state == PolicyStatus.STATE_ERROR and st.state_name == "error"
    assert st.message.startswith("configure failed: ") and expected in st.message
    assert h.spin_until(lambda: any(s.state == PolicyStatus.STATE_ERROR and expected in s.message for s in h.status))
    # Fix the parameter and configure again: no restart needed.
    node.set_parameters([Parameter("policy.type", value="hold"), Parameter("policy.checkpoint", value="")])
    assert node.start()
    assert node.status_msg().state in (PolicyStatus.STATE_READY, PolicyStatus.STATE_RUNNING)


@pytest.mark.timeout(60)
def test_policy_that_does_not_fit_the_robot_profile_is_refused(harness, tiny_checkpoint):
    h = harness({"policy.type": "flow_matching", "policy.checkpoint": tiny_checkpoint,
                 "robot.camera_names": ["scene"], "robot.camera_topics": ["/scene/image_raw"]})
    assert h.node.trigger_configure() == FAILURE
    st = h.node.status_msg()
    assert st.state == PolicyStatus.STATE_ERROR
    assert ("expects 2 camera(s) (primary, wrist) but robot profile 'generic' provides 1 (scene); "
            "missing: primary, wrist") in st.message


@pytest.mark.timeout(60)
def test_queue_trigger_follows_the_executor_status(harness):
    h = harness({"policy.trigger": "queue", "policy.queue_threshold": 0.4, "policy.queue_ack_timeout": 30.0},
                sensors={})
    node = h.node
    pub = h.test.create_publisher(ExecutorStatus, "executor_status",
                                  QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    executor = {"remaining": 1.0, "received": 0}
    h.test.create_timer(0.05, lambda: pub.publish(executor_status(h.now(), **executor)))
    assert node.start()
    assert h.spin_until(lambda: node.trigger.status is not None and node.builder.stats.synchronized >= 5)
    h.spin_for(0.3)
    assert h.chunks == []  # plan still long enough

    executor["remaining"] = 0.1
    assert h.spin_until(lambda: len(h.chunks) == 1)
    h.spin_for(0.5)  # statuses still show the old plan: the executor has not counted the chunk
    assert len(h.chunks) == 1
    assert "waiting for the executor to receive the last chunk" in node.trigger.waiting_for(h.now())

    executor["received"] = 1  # received, and the plan is still short
    assert h.spin_until(lambda: len(h.chunks) == 2)
    executor.update(remaining=0.9, received=2)
    h.spin_for(0.3)
    assert len(h.chunks) == 2


@pytest.mark.timeout(60)
def test_queue_trigger_without_executor_reports_what_it_waits_for(harness):
    h = harness({"policy.trigger": "queue"}, sensors={})
    assert h.node.start()
    assert h.spin_until(lambda: h.node.builder.stats.synchronized >= 3)
    h.spin_for(0.3)
    st = h.node.status_msg()
    assert h.chunks == [] and st.state == PolicyStatus.STATE_READY
    assert st.message == "waiting: trigger 'queue': no ExecutorStatus received on executor_status yet"


@pytest.mark.timeout(60)
def test_rtc_passes_the_executor_plan_as_guidance(harness):
    h = harness({"policy.rtc": True, "policy.rtc_max_guidance": 3.0}, sensors={})
    node = h.node
    assert node.trigger_configure() == SUCCESS
    policy = GatedPolicy()
    node.replace_policy(policy).close()
    assert node.trigger_activate() == SUCCESS
    assert h.spin_until(lambda: len(h.chunks) >= 2)
    assert all(g is None for _, g in policy.calls)  # no executor yet: plain inference
    assert "no ExecutorStatus" in node.runtime.rtc_note

    plan_x = [0.50, 0.51, 0.52, 0.53, 0.54, 0.55]
    pub = h.test.create_publisher(ExecutorStatus, "executor_status",
                                  QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    h.test.create_timer(0.05, lambda: pub.publish(executor_status(h.now(), plan_x=plan_x, plan_dt=0.1, committed=2)))
    assert h.spin_until(lambda: any(g is not None for _, g in policy.calls))
    guidance = next(g for _, g in policy.calls if g is not None)
    assert guidance.max_guidance_weight == 3.0 and guidance.weights[0] == 1.0
    assert 0.50 - 1e-9 <= guidance.actions[0, 0] <= 0.55 + 1e-9  # resampled from the plan
    assert node.rtc_guided >= 1


@pytest.mark.timeout(60)
def test_instruction_comes_from_the_latched_topic_and_the_parameter(harness):
    h = harness({"policy.instruction": ""}, sensors={})
    node = h.node
    assert node.trigger_configure() == SUCCESS
    policy = GatedPolicy()
    node.replace_policy(policy)
    assert node.trigger_activate() == SUCCESS
    assert h.spin_until(lambda: node.builder.stats.rejected >= 2)
    assert h.chunks == [] and policy.calls == []  # nothing reaches the policy without an instruction
    assert node.builder.last_problem.code == "instruction"
    st = node.status_msg()
    assert st.observations_rejected >= 2 and "instruction is empty" in st.message

    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    h.test.create_publisher(String, "/instruction", latched).publish(String(data="  pick up the red cube "))
    assert h.spin_until(lambda: len(policy.calls) >= 1)
    assert policy.calls[-1][0].instruction == "pick up the red cube"
    node.set_parameters([Parameter("policy.instruction", value="open the drawer")])
    assert h.spin_until(lambda: policy.calls[-1][0].instruction == "open the drawer")
    assert policy.resets >= 1  # a new instruction starts a new episode


@pytest.mark.timeout(60)
def test_policy_plugin_by_name_and_atomic_replacement(harness, monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_POLICIES, "test_joints", "node_testlib:JointsPolicy")
    joints = [f"joint_{i}" for i in range(1, 7)]
    h = harness({"policy.type": "test_joints", "policy.checkpoint": "first", "robot.joint_names": joints,
                 "robot.gripper_joint": "gripper", "robot.gripper_open": 0.08}, sensors={})
    node = h.node
    assert node.start()
    # The joints policy needs neither the wrist camera nor the EE pose: not subscribed.
    assert list(node.builder.topics.values()) == ["/camera/primary/image_raw", "/joint_states"]
    assert h.spin_until(lambda: len(h.chunks) >= 2)
    assert h.chunks[0].checkpoint_id == "first"
    assert h.chunks[0].poses[0].position.x == pytest.approx(0.4)  # q[0] = 0.0 from the sensors
    assert node.policy.calls[0].gripper == pytest.approx(0.5)  # 0.04 m of 0.08 m

    with pytest.raises(ConfigError,
                       match=r"needs input\(s\) /camera/wrist/image_raw, /ee_pose that this configuration"):
        node.replace_policy(HoldPolicy())
    second = JointsPolicy("second")
    first = node.replace_policy(second)
    assert first.name == "first"
    assert h.spin_until(lambda: h.chunks[-1].checkpoint_id == "second")
    swapped = [c for c in h.chunks if c.checkpoint_id == "second"]
    assert swapped[0].seq == 0 and len(second.calls) >= 1


@pytest.mark.timeout(60)
def test_compressed_topics_are_subscribed_as_compressed_images(harness):
    h = harness({"robot.camera_topics": ["/camera/primary/image_raw/compressed", "/camera/wrist/image_raw"]})
    assert h.node.trigger_configure() == SUCCESS
    types = {t: ts for t, ts in h.node.get_topic_names_and_types()}
    assert types["/camera/primary/image_raw/compressed"] == ["sensor_msgs/msg/CompressedImage"]
    assert types["/camera/wrist/image_raw"] == ["sensor_msgs/msg/Image"]


@pytest.mark.timeout(60)
def test_chunk_preview_pose_array_matches_the_chunk(harness):
    from geometry_msgs.msg import PoseArray

    h = harness(sensors={})
    previews = []
    h.test.create_subscription(PoseArray, "action_chunk_poses", previews.append,
                               QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    assert h.node.start()
    assert h.spin_until(lambda: len(h.chunks) >= 1 and len(previews) >= 1)
    chunk = h.chunks[0]
    match = [p for p in previews if p.header.stamp == chunk.header.stamp]
    assert match and len(match[0].poses) == len(chunk.poses)
    np.testing.assert_allclose([p.position.x for p in match[0].poses], [p.position.x for p in chunk.poses])
