"""Run-time parameter sets over the real parameter services (issue 11, finding 5): applied, or refused.

Both nodes run in their own process; the test sets parameters through rcl_interfaces
SetParameters / GetParameters clients and watches what the nodes publish. A set either changes
what the node does (and reads back the new value) or is refused with a reason (and reads back the
old value) - never a success that changes nothing.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import pytest
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python

sys.path.insert(0, str(Path(__file__).resolve().parent / "executor"))
from test_executor_node_dds import Harness, start_executor, x_of  # noqa: E402

from ros_helpers import start_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NS = "params_runtime_test"


class Parameters:
    """SetParameters / GetParameters clients of one node, spun by a harness."""

    def __init__(self, harness, node_name: str):
        self.h = harness
        self.set_client = harness.node.create_client(SetParameters, f"/{node_name}/set_parameters")
        self.get_client = harness.node.create_client(GetParameters, f"/{node_name}/get_parameters")
        for client in (self.set_client, self.get_client):
            harness.spin_until(lambda c=client: c.service_is_ready(), what=f"{client.srv_name}")

    def _call(self, client, request):
        future = client.call_async(request)
        self.h.spin_until(future.done, what=f"{client.srv_name} response")
        return future.result()

    def set(self, name: str, value):
        """The SetParametersResult of setting `name` to `value` (the ROS type follows the Python type)."""
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self._call(self.set_client, request).results[0]

    def get(self, name: str):
        value = self._call(self.get_client, GetParameters.Request(names=[name])).values[0]
        return parameter_value_to_python(value)


def start(rclpy_context, **params):
    h = Harness(rclpy_context, start_executor(**{"executor.control_rate": "50.0", "executor.status_rate_hz": "20.0",
                                                 **params}))
    return h, Parameters(h, "vla_executor")


@pytest.mark.timeout(120)
def test_dry_run_switches_both_ways_and_bad_or_read_only_sets_are_refused(rclpy_context):
    h, params = start(rclpy_context)  # dry_run: default true
    live, preview = h.got["target_pose"], h.got["preview/target_pose"]
    try:
        h.streaming = 0.43
        h.spin_until(lambda: len(preview) >= 10, what="preview commands")

        # Refused: invalid values (the schema's message) and read-only keys; nothing changes.
        for name, value, reason in (
            ("executor.dry_run", "banana", "executor.dry_run: expected boolean, got str 'banana'"),
            ("safety.max_linear_speed", -1.0, "safety.max_linear_speed: expected >= 0.0, got -1.0"),
            ("safety.workspace_min", [2.0, -1.0, 0.0], "safety.workspace_min: x = 2.0 must be below"),
            ("executor.watchdog_timeout", 0.05, "read-only"),
            ("executor.control_rate", 10.0, "read-only"),
        ):
            old = params.get(name)
            res = params.set(name, value)
            assert not res.successful and reason in res.reason, (name, res.reason)
            assert params.get(name) == old, f"{name} reads back a value that was refused"
        assert params.get("executor.dry_run") is True
        h.spin_for(0.3)
        assert not live, "a refused set must not leave dry-run"

        # Live: commands move from the preview topic to the real one.
        assert params.set("executor.dry_run", False).successful
        assert params.get("executor.dry_run") is False
        h.spin_until(lambda: len(live) >= 10 and not h.last_status().dry_run, what="live commands after dry_run:=false")
        assert abs(x_of(live[-1]) - 0.43) < 1e-9
        h.spin_for(0.3)  # preview messages still in flight arrive by now
        n_preview = len(preview)
        h.spin_until(lambda: len(live) >= 30, what="more live commands")
        assert len(preview) == n_preview, "commands still go to the preview topic"

        # And back: preview only again.
        assert params.set("executor.dry_run", True).successful
        h.spin_until(lambda: len(preview) >= n_preview + 10 and h.last_status().dry_run, what="preview again")
        h.spin_for(0.3)
        n_live = len(live)
        h.spin_until(lambda: len(preview) >= n_preview + 30, what="more preview commands")
        assert len(live) == n_live, "commands still reach the robot topic after dry_run:=true"
    finally:
        out = h.close()
    assert "executor.dry_run: True -> False: LIVE" in out and "executor.dry_run: False -> True: PREVIEW ONLY" in out


@pytest.mark.timeout(90)
def test_tightening_the_workspace_moves_the_target_inside_the_new_box(rclpy_context):
    h, params = start(rclpy_context, **{"executor.dry_run": "false"})
    poses = h.got["target_pose"]
    try:
        h.streaming = 0.43
        h.spin_until(lambda: poses and abs(x_of(poses[-1]) - 0.43) < 1e-9, what="commands reaching x = 0.43")
        res = params.set("safety.workspace_max", [0.42, 1.0, 1.5])
        assert res.successful, res.reason
        assert params.get("safety.workspace_max") == [0.42, 1.0, 1.5]
        h.spin_until(lambda: x_of(poses[-1]) <= 0.42 + 1e-9, what="the target inside the new box")
        n = len(poses)
        h.spin_until(lambda: len(poses) >= n + 20, what="more commands")
        assert max(x_of(m) for m in poses[n:]) <= 0.42 + 1e-9
        assert h.state() == "running"
    finally:
        out = h.close()
    assert "safety.workspace_max" in out and "(applied)" in out


class PolicyHarness(Harness):
    """The test node of `Harness` (no chunks of its own) plus synthetic sensors for a policy node."""

    def __init__(self, context, proc):
        from vla_ros.msg import ActionChunk as ActionChunkMsg
        from vla_ros.ros.sensor_sim import SensorSim

        super().__init__(context, proc)
        # Cameras and joints only: the EE pose comes from `Harness` alone (two pose publishers on one
        # topic would interleave into jumps, which the policy node rightly refuses as implausible).
        self.sim = SensorSim(context=context, cameras={"primary": "/camera/primary/image_raw",
                                                       "wrist": "/camera/wrist/image_raw"}, ee_topic="")
        self.executor.add_node(self.sim)
        self.chunk_times: list[float] = []
        from test_executor_node_dds import RELIABLE

        self.node.create_subscription(ActionChunkMsg, f"/{NS}/action_chunk",
                                      lambda _m: self.chunk_times.append(self.now()), RELIABLE)

    def median_interval(self, since: int) -> float:
        return statistics.median(
            b - a for a, b in zip(self.chunk_times[since:], self.chunk_times[since + 1:]))

    def close(self) -> str:
        self.executor.remove_node(self.sim)
        self.sim.destroy_node()
        return super().close()


@pytest.mark.timeout(120)
def test_policy_rate_changes_the_chunk_rate_and_policy_type_is_refused(rclpy_context):
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # In its own namespace: no other policy node of the session can answer for it.
    proc = start_process("vla_ros.ros.policy_node", "--ros-args", "-r", f"__ns:=/{NS}", "-p", "policy.type:=hold", "-p",
                         "policy.instruction:=pick up the cube", "-p", "policy.rate_hz:=1", env=env)
    h = PolicyHarness(rclpy_context, proc)
    params = Parameters(h, f"{NS}/vla_policy")
    try:
        h.spin_until(lambda: len(h.chunk_times) >= 4, timeout=30.0, what="chunks at 1 Hz")
        assert h.median_interval(0) > 0.7

        res = params.set("policy.type", "flow_matching")
        assert not res.successful and "~/load_policy" in res.reason, res.reason
        assert params.get("policy.type") == "hold"

        assert params.set("policy.rate_hz", 10).successful  # an int for a float key
        assert params.get("policy.rate_hz") == 10
        n = len(h.chunk_times)
        h.spin_until(lambda: len(h.chunk_times) >= n + 12, what="chunks at the new rate")
        interval = h.median_interval(n + 1)
        assert interval < 0.5, f"median chunk interval {interval:.3f} s after rate_hz:=10\n{h.close()[-4000:]}"

        res = params.set("policy.rate_hz", 0.0)
        assert not res.successful and "policy.rate_hz" in res.reason
        assert params.get("policy.rate_hz") == 10
    finally:
        out = h.close()
    assert "policy.rate_hz: 1.0 -> 10.0 (applied)" in out, out[-3000:]
