"""The policy node under bad inputs and faults (issue 11), in-process with real rclpy and DDS.

- Garbage inside the box: chunks 10 m away or with a gripper of 5.0 are never published and the
  node goes to ERROR after policy.max_bad_chunks of them; an EE pose 100 m away or in millimetres
  is refused as an input problem; duplicate joint names likewise.
- A hung inference: PolicyStatus ERROR with how long it has been running, and ~/load_policy
  answers (failure, with the reason) instead of waiting for it.
- A swap whose old policy fails to close still reports success (the new policy is running).

No timing is asserted: "no chunk" is checked after spinning with inputs flowing, and every wait
is on a condition with a generous timeout.
"""

from __future__ import annotations

import pytest

from fault_policies import BadClosePolicy, StuckPolicy, register
from node_testlib import NodeHarness
from vla_ros.msg import PolicyStatus
from vla_ros.policy import registry
from vla_ros.ros import sensor_sim
from vla_ros.srv import LoadPolicy

EE_X = sensor_sim.ee_x  # the simulated arm's real x; the tests below publish it wrong


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory):
    """A tiny flow-matching checkpoint (primary + wrist cameras) whose weights are all NaN."""
    pytest.importorskip("torch")
    from fault_policies import nan_weights
    from policy_helpers import make_checkpoint

    return nan_weights(make_checkpoint(tmp_path_factory.mktemp("nan_ckpt")))


@pytest.fixture
def harness(rclpy_context, monkeypatch):
    made = []
    table = dict(registry.BUILTIN_POLICIES)
    register(table)
    monkeypatch.setattr(registry, "BUILTIN_POLICIES", table)

    def make(params=None, **kwargs):
        h = NodeHarness(rclpy_context, params or {}, **kwargs)
        made.append(h)
        return h

    StuckPolicy.release.clear()
    StuckPolicy.entered.clear()
    yield make
    StuckPolicy.release.set()  # frees a stuck worker thread so the node can tear down
    for h in made:
        h.close()


def call_load_policy(h: NodeHarness, timeout: float = 30.0, **fields) -> LoadPolicy.Response:
    client = h.test.create_client(LoadPolicy, "/vla_policy/load_policy")
    assert h.spin_until(client.service_is_ready, timeout=timeout)
    future = client.call_async(LoadPolicy.Request(**fields))
    assert h.spin_until(future.done, timeout=timeout), "~/load_policy did not answer"
    return future.result()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault, expected", [
    ("far", "step 0: x = 10.4"),
    ("gripper", "step 0: gripper = 5.000, expected a normalised opening in [0, 1]"),
])
def test_implausible_chunks_are_not_published_and_end_in_error(harness, fault, expected):
    h = harness({"policy.type": "test_garbage", "policy.checkpoint": fault, "policy.max_bad_chunks": 3}, sensors={})
    node = h.node
    assert node.start()
    policy = node.policy

    def error():
        return [s for s in h.status if s.state == PolicyStatus.STATE_ERROR]

    assert h.spin_until(lambda: policy.calls >= 4 and error(), timeout=45.0), [
        (s.state_name, s.message) for s in h.status]
    h.spin_for(0.3)
    assert h.chunks == [] and node.status_msg().chunks_published == 0
    code = "gripper" if fault == "gripper" else "workspace"
    assert node.chunk_problems.get(code, 0) >= 3
    msg = error()[-1].message
    assert msg.startswith("policy output implausible: ") and "(policy.max_bad_chunks = 3); last: " in msg, msg
    assert expected in msg, msg

    policy.good = True  # the next good chunk is published and the error clears
    assert h.spin_until(lambda: len(h.chunks) >= 1, timeout=30.0)
    assert h.spin_until(lambda: node.status_msg().state != PolicyStatus.STATE_ERROR, timeout=10.0)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("pose_x, expected", [
    (lambda tick: 100.0, "x = 100.000 m above safety.workspace_max x = 1.0 + margin"),
    (lambda tick: 1000.0 * EE_X(tick), "m above safety.workspace_max x = 1.0 + margin"),
], ids=["100m", "millimetres"])
def test_an_implausible_ee_pose_is_refused_as_an_input_problem(harness, monkeypatch, pose_x, expected):
    monkeypatch.setattr(sensor_sim, "ee_x", pose_x)
    h = harness(sensors={})
    node = h.node
    assert node.start()
    by_topic = node.builder.stats.rejected_by_topic
    assert h.spin_until(lambda: by_topic["/ee_pose"] >= 5, timeout=45.0), dict(by_topic)
    h.spin_for(0.3)
    assert h.chunks == [] and node.worker.stats.used == 0
    p = node.builder.last_problems["/ee_pose"]
    assert p.code == "implausible" and p.counter == "rejected"
    assert p.message.startswith("/ee_pose: measured end-effector pose "
                                "implausible: ") and expected in p.message, p.message
    st = node.status_msg()
    assert st.observations_rejected >= 5 and st.state != PolicyStatus.STATE_RUNNING


@pytest.mark.timeout(90)
def test_duplicate_joint_names_are_an_input_problem(harness):
    names = ["joint_1", "joint_2", "joint_2", "joint_4", "joint_5", "joint_6"]
    h = harness(sensors={"joint_names": names})
    node = h.node
    assert node.start()
    by_topic = node.builder.stats.rejected_by_topic
    assert h.spin_until(lambda: by_topic["/joint_states"] >= 3, timeout=45.0), dict(by_topic)
    h.spin_for(0.3)
    assert h.chunks == []
    p = node.builder.last_problems["/joint_states"]
    assert p.code == "duplicate_joint" and "joint_2" in p.message and "duplicate" in p.message, p.message


@pytest.mark.timeout(90)
def test_a_hung_inference_is_reported_and_load_policy_still_answers(harness):
    h = harness({"policy.type": "test_stuck", "policy.inference_timeout": 0.5}, sensors={})
    node = h.node
    assert node.start()
    assert h.spin_until(StuckPolicy.entered.is_set, timeout=45.0)

    def stuck():
        return [s for s in h.status
                if s.state == PolicyStatus.STATE_ERROR and s.message.startswith("inference running for")]

    assert h.spin_until(lambda: bool(stuck()), timeout=30.0), [(s.state_name, s.message) for s in h.status]
    assert stuck()[-1].message.endswith("s (policy.inference_timeout = 0.5 s)")

    resp = call_load_policy(h, policy_type="hold")
    assert not resp.success
    assert "did not finish within 0.5 s (policy.inference_timeout = 0.5 s)" in resp.message, resp.message
    assert "not swapped in" in resp.message
    assert resp.policy_id == "test_stuck"  # nothing changed

    StuckPolicy.release.set()  # the inference returns: the error clears and chunks flow again
    assert h.spin_until(lambda: len(h.chunks) >= 1, timeout=30.0)
    assert h.spin_until(lambda: not node.status_msg().message.startswith("inference running"), timeout=10.0)


@pytest.mark.timeout(60)
def test_swap_reports_success_when_the_old_policy_fails_to_close(harness):
    h = harness(sensors={})
    node = h.node
    assert node.start()
    node.replace_policy(BadClosePolicy()).close()
    resp = call_load_policy(h, policy_type="hold")
    assert resp.success, resp.message
    assert resp.message.startswith("loaded 'hold'")
    assert "warning: closing policy 'hold' failed: RuntimeError: device busy (simulated)" in resp.message
    assert not isinstance(node.policy, BadClosePolicy)
    n = len(h.chunks)
    assert h.spin_until(lambda: len(h.chunks) > n + 1, timeout=30.0)  # the new policy is running


@pytest.mark.timeout(120)
def test_a_checkpoint_with_nan_weights_is_not_swapped_in(harness, nan_checkpoint):
    h = harness(sensors={})
    node = h.node
    assert node.start()
    resp = call_load_policy(h, timeout=60.0, policy_type="flow_matching", checkpoint=nan_checkpoint)
    assert not resp.success
    assert "cannot warm up the policy" in resp.message and "NaN or inf" in resp.message, resp.message
    assert node.policy.metadata.policy_type == "hold"
    n = len(h.chunks)
    assert h.spin_until(lambda: len(h.chunks) > n, timeout=30.0)  # the old policy keeps running
