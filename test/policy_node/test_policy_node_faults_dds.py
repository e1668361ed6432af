"""The real `policy_node` process with a hung inference (issue 11, finding 10), over DDS.

Sensors come from another process (vla_ros.ros.sensor_sim); the node runs `test_stuck`
(fault_policies.py registers it and calls `policy_node`'s main), whose inference never returns.
PolicyStatus says so, and SIGINT still ends the process - with a non-zero exit code, so a launch
``respawn`` replaces it - instead of leaving it hanging until SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ros_helpers import spin_until, start_process, stop_process
from vla_ros.msg import PolicyStatus

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")])}
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


@pytest.mark.timeout(120)
def test_sigint_ends_a_policy_node_with_a_stuck_inference_with_a_nonzero_code(rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    sensors = start_process("vla_ros.ros.sensor_sim", env=ENV)
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fault_policies.py"), "--policy", "test_stuck", "--ros-args", "-r",
         "__ns:=/stuck_test",
         "-p", "policy.instruction:=pick up the cube", "-p", "policy.inference_timeout:=0.5",
         "-p", "policy.status_rate_hz:=10.0"],
        env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    node = Node("stuck_test_listener", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    status = []
    node.create_subscription(PolicyStatus, "/stuck_test/policy_status", status.append, RELIABLE)
    try:
        def stuck():
            return [s for s in status
                    if s.state == PolicyStatus.STATE_ERROR and s.message.startswith("inference running for")]

        assert spin_until(executor, lambda: bool(stuck()), timeout=60.0), (
            [(s.state_name, s.message) for s in status[-5:]], stop_process(proc))
        assert "(policy.inference_timeout = 0.5 s)" in stuck()[-1].message
        proc.send_signal(signal.SIGINT)
        try:
            out = proc.communicate(timeout=30.0)[0]  # generous under load; the node's own bound is a few s
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("policy_node did not exit after SIGINT with an inference stuck:\n" + proc.communicate()[0])
    finally:
        executor.shutdown()
        node.destroy_node()
        if proc.poll() is None:
            stop_process(proc)
        stop_process(sensors)
    assert proc.returncode == 1, out  # non-zero (not killed by a signal): a launch respawn restarts it
    assert "its thread was abandoned" in out and "unclean shutdown" in out, out
