"""The executor node over real DDS: a separate process, driven by a separate test node.

The test node plays both the policy (ActionChunk) and the robot (PoseStamped end-effector pose,
e-stop button) and listens to every command topic. No timing is asserted beyond "the configured
rate is the one used" (median spacing of command stamps within a factor of 2).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64
from std_srvs.srv import Trigger

from executor_testlib import make_chunk
from ros_helpers import start_node_process, stop_process
from vla_ros.msg import ActionChunk as ActionChunkMsg
from vla_ros.msg import ExecutorStatus
from vla_ros.ros.conversions import ENCODER, header, pose_msg

REPO = Path(__file__).resolve().parents[2]
HOME = np.array([0.40, 0.0, 0.30])
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
COMMAND_TOPICS = {
    "target_pose": PoseStamped,
    "delta_twist_cmds": TwistStamped,
    "gripper_command": Float64,
    "gripper_joint_command": JointState,
}


def start_executor(**params) -> subprocess.Popen:
    """`python -m vla_ros.ros.executor_node --ros-args -p k:=v ...` with this source tree first on the path."""
    return start_node_process("vla_ros.ros.executor_node", params)


class Harness:
    """Policy + robot + listener in one test node, on its own executor."""

    def __init__(self, context, proc: subprocess.Popen):
        self.proc = proc
        self.node = Node("executor_dds_test", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.chunk_pub = self.node.create_publisher(ActionChunkMsg, "action_chunk", RELIABLE)
        self.pose_pub = self.node.create_publisher(PoseStamped, "/ee_pose", RELIABLE)
        self.estop_pub = self.node.create_publisher(Bool, "estop", RELIABLE)
        self.got: dict[str, list] = {}
        for name, tp in COMMAND_TOPICS.items():
            for topic in (name, f"preview/{name}"):
                self.got[topic] = []
                self.node.create_subscription(tp, topic, self.got[topic].append, RELIABLE)
        self.status: list[ExecutorStatus] = []
        self.node.create_subscription(ExecutorStatus, "executor_status", self.status.append, RELIABLE)
        self.ee = HOME.copy()
        self.node.create_timer(0.02, self._publish_pose)  # the "robot" reports its pose at 50 Hz
        self.streaming: float | None = None  # x of the chunks streamed by the "policy", None = silent
        self.seq = 0
        self.node.create_timer(0.1, self._publish_chunk)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _publish_pose(self) -> None:
        self.pose_pub.publish(PoseStamped(header=header(self.now(), "base_link"),
                                          pose=pose_msg(self.ee, [0, 0, 0, 1.0])))

    def _publish_chunk(self) -> None:
        if self.streaming is not None:
            self.seq += 1
            chunk = make_chunk(self.streaming, horizon=10, dt=0.1, stamp=self.now(), gripper=0.5, seq=self.seq)
            self.chunk_pub.publish(ENCODER.action_chunk(chunk))

    def spin_until(self, cond, timeout: float = 15.0, what: str = "") -> None:
        deadline = self.now() + timeout
        while self.now() < deadline:
            if cond():
                return
            self.executor.spin_once(timeout_sec=0.02)
            if self.proc.poll() is not None:
                pytest.fail(f"executor node exited ({self.proc.returncode}):\n{stop_process(self.proc)}")
        if not cond():
            last = self.status[-1] if self.status else None
            pytest.fail(f"timed out waiting for {what}; last status: {last}\n{stop_process(self.proc)}")

    def spin_for(self, seconds: float) -> None:
        end = self.now() + seconds
        while self.now() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def last_status(self) -> ExecutorStatus:
        return self.status[-1]

    def state(self) -> str:
        return self.status[-1].state_name if self.status else ""

    def call(self, srv: str) -> Trigger.Response:
        client = self.node.create_client(Trigger, f"/vla_executor/{srv}")
        assert client.wait_for_service(timeout_sec=15.0), f"service /vla_executor/{srv} not available"
        future = client.call_async(Trigger.Request())
        self.spin_until(future.done, what=f"/vla_executor/{srv} response")
        self.node.destroy_client(client)
        return future.result()

    def close(self) -> str:
        self.executor.shutdown()
        self.node.destroy_node()
        return stop_process(self.proc)


def x_of(msg: PoseStamped) -> float:
    return msg.pose.position.x


@pytest.mark.timeout(120)
def test_live_executor_streams_holds_and_latches_estop(rclpy_context):
    proc = start_executor(**{
        "executor.dry_run": "false",
        "executor.control_rate": "50.0",
        "executor.status_rate_hz": "20.0",
        "executor.watchdog_timeout": "0.6",
        "executor.output_mode": "both",
        "executor.gripper_output": "both",
        "robot.gripper_open": "0.08",
        "robot.gripper_joint": "finger_joint",
    })
    h = Harness(rclpy_context, proc)
    poses = h.got["target_pose"]
    try:
        # 1. Before any chunk: holding the robot's own pose, gripper untouched.
        h.spin_until(lambda: len(poses) >= 5 and h.status, what="idle hold commands")
        assert h.state() == "idle"
        np.testing.assert_allclose([x_of(poses[-1]), poses[-1].pose.position.z], [0.40, 0.30], atol=1e-9)
        assert not h.got["gripper_command"]

        # 2. A policy streams chunks at 10 Hz towards x = 0.43: commands follow (bridge first).
        h.streaming = 0.43
        n0 = len(poses)
        h.spin_until(lambda: len(poses) > n0 and abs(x_of(poses[-1]) - 0.43) < 1e-9, what="commands reaching x=0.43")
        h.spin_until(lambda: h.state() == "running", what="status running")
        st = h.last_status()
        assert st.chunk_seq >= 1 and st.chunks_received >= 1 and st.dry_run is False
        assert st.plan_dt == pytest.approx(0.1) and len(st.plan_poses) >= 1
        xs = [x_of(m) for m in poses[n0:]]
        assert np.all(np.diff(xs) >= -1e-12), "the arm target moves monotonically towards the chunks"
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in poses[n0:]]
        assert 0.01 <= statistics.median(np.diff(stamps)) <= 0.04  # the configured 50 Hz, not the default 100
        assert poses[-1].header.frame_id == "base_link"
        h.spin_until(lambda: h.got["gripper_joint_command"], what="gripper joint command")
        assert h.got["gripper_command"][-1].data == pytest.approx(0.04)  # 0.5 of robot.gripper_open
        js = h.got["gripper_joint_command"][-1]
        assert list(js.name) == ["finger_joint"] and js.position[0] == pytest.approx(0.04)
        assert h.got["delta_twist_cmds"], "twist output is on in output_mode=both"

        # 3. The policy goes silent: after the watchdog timeout the node holds and says why.
        h.streaming = None
        h.spin_until(lambda: h.state() == "holding" and "watchdog" in h.last_status().message, what="watchdog hold")
        n1 = len(poses)
        h.spin_until(lambda: len(poses) >= n1 + 5, what="commands during the hold")
        assert {round(x_of(m), 12) for m in poses[n1:]} == {0.43}
        twist = h.got["delta_twist_cmds"][-1].twist
        assert (twist.linear.x, twist.linear.y, twist.linear.z) == (0.0, 0.0, 0.0)

        # 4. A malformed chunk is counted, and the node carries on.
        bad = ENCODER.action_chunk(make_chunk(0.41, horizon=3, stamp=h.now()))
        bad.poses[1].orientation.w = float("nan")
        h.chunk_pub.publish(bad)
        h.spin_until(lambda: h.last_status().chunks_rejected >= 1, what="rejected chunk in status")
        assert "orientation" in h.last_status().message

        # 5. E-stop from the topic latches; chunks do not release it, nor a reset while it is pressed.
        h.estop_pub.publish(Bool(data=True))
        h.spin_until(lambda: h.state() == "estop", what="e-stop state")
        h.streaming = 0.41
        h.spin_for(0.5)
        n2 = len(poses)
        h.spin_until(lambda: len(poses) >= n2 + 5, what="commands during e-stop")
        assert {round(x_of(m), 12) for m in poses[n2:]} == {0.43}
        assert h.call("reset").success is False
        assert h.state() == "estop"
        h.estop_pub.publish(Bool(data=False))
        h.spin_for(0.3)
        assert h.call("reset").success is True
        # Released: the streamed chunks are executed again.
        h.spin_until(lambda: h.state() == "running" and x_of(poses[-1]) < 0.43 - 1e-6, what="running after reset")

        # 6. The e-stop service latches too.
        assert h.call("estop").success is True
        h.spin_until(lambda: h.state() == "estop", what="e-stop via service")
        h.streaming = None
        assert h.call("reset").success is True

        # Live mode never published on the preview topics.
        assert not any(h.got[f"preview/{t}"] for t in COMMAND_TOPICS)
    finally:
        out = h.close()
    assert "E-STOP latched" in out


@pytest.mark.timeout(90)
def test_dry_run_publishes_only_on_preview_topics(rclpy_context):
    proc = start_executor(**{"executor.control_rate": "50.0", "executor.output_mode": "both"})  # dry_run: default
    h = Harness(rclpy_context, proc)
    try:
        h.streaming = 0.42
        h.spin_until(
            lambda: len(h.got["preview/target_pose"]) >= 20 and h.got["preview/gripper_command"] and h.status,
            what="preview commands",
        )
        assert h.last_status().dry_run is True
        assert h.got["preview/delta_twist_cmds"]
        h.spin_for(0.3)  # late messages on a real topic would arrive by now
        assert not h.got["target_pose"] and not h.got["delta_twist_cmds"] and not h.got["gripper_command"]
    finally:
        h.close()


def test_bad_parameter_stops_the_node_with_the_parameter_name():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(
        [sys.executable, "-m", "vla_ros.ros.executor_node", "--ros-args", "-p", "executor.strategy:=newest"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2
    assert "executor.strategy" in res.stderr and "crossfade" in res.stderr
