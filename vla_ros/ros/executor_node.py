"""`executor_node`: the rclpy shell around `vla_ros.core.executor.ChunkExecutor`.

All behaviour (timeline, blending, interpolation, bridges, safety, watchdog, e-stop latch, RTC
plan) lives in the ROS-free core; this node only moves data between DDS and it, on the ROS clock
(sim time when ``use_sim_time`` is set):

- in: ``policy.chunk_topic`` (vla_ros/ActionChunk, reliable), ``robot.ee_pose_topic``
  (geometry_msgs/PoseStamped, sensor-data QoS so any publisher matches), ``executor.estop_topic``
  (std_msgs/Bool: true latches the e-stop);
- services: ``~/estop`` and ``~/reset`` (std_srvs/Trigger), ``~/set_estop`` (std_srvs/SetBool:
  true = e-stop, false = reset). A reset is refused while the e-stop topic still says true;
- out, at ``executor.control_rate`` from one timer: PoseStamped on ``executor.pose_topic`` and/or
  TwistStamped on ``executor.twist_topic`` (``executor.output_mode``), the gripper as
  std_msgs/Float64 in robot units on ``executor.gripper_topic`` and/or sensor_msgs/JointState on
  ``executor.gripper_joint_state_topic`` (``executor.gripper_output``); with ``executor.dry_run``
  (the default) every command topic gets the ``<executor.preview_prefix>/`` prefix instead, so
  nothing reaches the robot;
- ExecutorStatus on ``executor.status_topic`` at ``executor.status_rate_hz``.

Design choice: a plain node, not a lifecycle node. It starts holding (the first end-effector pose
it receives) and publishes nothing before it has one, so there is no unconfigured/inactive phase
that a lifecycle manager would need to drive, and it runs the same under Humble, Jazzy and Kilted
without launch_ros' lifecycle tooling. Parameters are read once at start (restart to change
them, e.g. to leave dry-run).

Timing: one SingleThreadedExecutor runs every callback. The control timer's callback does the
tick and publishes first; the heavier, non-urgent work - decoding and blending chunks that arrived
since the last tick (each keeps its receive time as its arrival), building the ExecutorStatus - is
done right after, in the slack of the same period, so it never delays the start of a tick. The
e-stop is applied at once. The lock only matters when a caller spins the node from several threads.

Scheduling: with ``executor.realtime_priority`` > 0, `main` switches the thread that spins the
node to SCHED_FIFO before spinning (`set_realtime_priority`; threads created afterwards inherit
it, so a composed process should call it from the executor's own thread). On a shared machine
this is what keeps the loop period steady while a policy saturates the CPU (bench/executor_bench.py).

Run: ``ros2 run vla_ros executor_node --ros-args -p executor.dry_run:=false -p ...`` or with our
config files: ``executor_node --robot franka --set executor.control_rate=200``.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from typing import Sequence

import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64
from std_srvs.srv import SetBool, Trigger

from vla_ros.core.config import ConfigError, VlaConfig
from vla_ros.core.executor import LIMIT_NAMES, ChunkExecutor, Command, ExecutorState, ExecutorStatusData
from vla_ros.core.msg_decode import MessageError, pose_to_ee
from vla_ros.core.rotations import rotvec_to_quat
from vla_ros.msg import ActionChunk as ActionChunkMsg
from vla_ros.msg import ExecutorStatus
from vla_ros.ros.conversions import header, pose_msg, time_msg
from vla_ros.ros import node_main
from vla_ros.ros.params import declare_config

SECTIONS = ("robot", "policy", "executor", "safety")


def preview_topic(prefix: str, topic: str) -> str:
    """``<prefix>/<topic>``, keeping an absolute topic absolute: ("preview", "/a/b") -> "/preview/a/b"."""
    prefix = prefix.strip("/")
    if not prefix:
        return topic
    if topic.startswith("/"):
        return f"/{prefix}{topic}"
    return f"{prefix}/{topic}"


class ExecutorNode(Node):
    """The executor node; `core` is the ChunkExecutor it drives (see the module docstring)."""

    def __init__(self, base: VlaConfig | None = None, *, node_name: str = "vla_executor", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.cfg = declare_config(self, base, SECTIONS)
        ex, robot = self.cfg.executor, self.cfg.robot
        if ex.gripper_output == "both" and ex.gripper_topic == ex.gripper_joint_state_topic:
            raise ConfigError(
                f"executor.gripper_joint_state_topic: must differ from executor.gripper_topic ({ex.gripper_topic!r}) "
                "with gripper_output=both (one topic cannot carry two message types)"
            )
        self.core = ChunkExecutor.from_config(self.cfg)
        self.dry_run = ex.dry_run
        self._lock = threading.Lock()
        self._pose = None
        self._pose_time: float | None = None
        self._estop_input = False
        self._last_state: ExecutorState | None = None
        self._pending: collections.deque[tuple[ActionChunkMsg, float]] = collections.deque()
        self._status_due = False
        self.tick_log: list[tuple[float, float]] | None = None  # (monotonic start, thread CPU s) when benchmarking

        def out(topic: str) -> str:
            return preview_topic(ex.preview_prefix, topic) if self.dry_run else topic

        cmd_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pose_pub = self.create_publisher(PoseStamped, out(ex.pose_topic), cmd_qos) if ex.output_mode in ("pose", "both") else None
        self._twist_pub = (
            self.create_publisher(TwistStamped, out(ex.twist_topic), cmd_qos) if ex.output_mode in ("twist", "both") else None
        )
        self._grip_pub = (
            self.create_publisher(Float64, out(ex.gripper_topic), cmd_qos) if ex.gripper_output in ("float64", "both") else None
        )
        self._grip_js_pub = (
            self.create_publisher(JointState, out(ex.gripper_joint_state_topic), cmd_qos)
            if ex.gripper_output in ("joint_state", "both")
            else None
        )
        self._status_pub = self.create_publisher(ExecutorStatus, ex.status_topic, reliable)
        self._gripper_joint = robot.gripper_joint or "gripper"
        self._g_closed, self._g_open = robot.gripper_closed, robot.gripper_open

        self.create_subscription(ActionChunkMsg, self.cfg.policy.chunk_topic, self._on_chunk, reliable)
        if robot.ee_pose_topic:
            self.create_subscription(PoseStamped, robot.ee_pose_topic, self._on_pose, qos_profile_sensor_data)
        else:
            self.get_logger().error(
                "robot.ee_pose_topic is empty: without an end-effector pose the executor has no hold pose and "
                "publishes no command"
            )
        if ex.estop_topic:
            self.create_subscription(Bool, ex.estop_topic, self._on_estop_topic, reliable)
        self.create_service(Trigger, "~/estop", self._srv_estop)
        self.create_service(Trigger, "~/reset", self._srv_reset)
        self.create_service(SetBool, "~/set_estop", self._srv_set_estop)

        self._control_timer = self.create_timer(1.0 / ex.control_rate, self._on_control)
        self._status_timer = self.create_timer(1.0 / ex.status_rate_hz, self._on_status)
        where = "PREVIEW ONLY (executor.dry_run=true)" if self.dry_run else "LIVE: commands go to the robot"
        self.get_logger().info(
            f"executor: {ex.strategy} at {ex.control_rate:g} Hz, output {ex.output_mode} + gripper {ex.gripper_output}, "
            f"chunks on {self.cfg.policy.chunk_topic}, frame {robot.base_frame}; {where}"
        )

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ inputs
    def _on_chunk(self, msg: ActionChunkMsg) -> None:
        self._pending.append((msg, self.now()))  # processed right after the next tick

    def _process_chunks(self) -> None:
        while self._pending:
            msg, received = self._pending.popleft()
            with self._lock:
                result = self.core.submit_msg(msg, received, self.cfg.policy.chunk_topic)
            if not result.accepted:
                self.get_logger().warning(f"chunk not executed: {result.reason}", throttle_duration_sec=1.0)

    def _on_pose(self, msg: PoseStamped) -> None:
        frame = msg.header.frame_id
        if frame and frame != self.cfg.robot.base_frame:
            self.get_logger().warning(
                f"{self.cfg.robot.ee_pose_topic}: header.frame_id: expected {self.cfg.robot.base_frame!r} "
                f"(robot.base_frame), got {frame!r}; pose ignored",
                throttle_duration_sec=5.0,
            )
            return
        try:
            pose = pose_to_ee(msg.pose, frame, self.cfg.robot.ee_pose_topic)
        except MessageError as exc:
            self.get_logger().warning(f"pose ignored: {exc}", throttle_duration_sec=5.0)
            return
        self._pose, self._pose_time = pose, self.now()

    def _on_estop_topic(self, msg: Bool) -> None:
        self._estop_input = bool(msg.data)
        if msg.data:
            self._estop(f"{self.cfg.executor.estop_topic} topic")

    def _estop(self, source: str) -> None:
        self._pending.clear()  # chunks received before the e-stop must never run after a reset
        with self._lock:
            already = self.core.estopped
            self.core.estop(self.now(), source)
        if not already:
            self.get_logger().error(f"E-STOP latched by {source}: holding until ~/reset")

    def _reset(self) -> tuple[bool, str]:
        if self._estop_input:
            return False, f"{self.cfg.executor.estop_topic} still reports true: release it before resetting"
        with self._lock:
            was = self.core.estopped
            self.core.reset(self.now())
        if was:
            self.get_logger().warning("e-stop reset: holding until the next chunk")
        return True, "e-stop reset" if was else "no e-stop was latched"

    def _srv_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._estop("~/estop service")
        response.success, response.message = True, "e-stop latched"
        return response

    def _srv_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self._reset()
        return response

    def _srv_set_estop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            self._estop("~/set_estop service")
            response.success, response.message = True, "e-stop latched"
        else:
            response.success, response.message = self._reset()
        return response

    # ------------------------------------------------------------------ control loop
    def _on_control(self) -> None:
        t0, c0 = time.monotonic(), time.thread_time()
        now = self.now()
        with self._lock:
            cmd = self.core.tick(now, self._pose, self._pose_time)
        if cmd is not None:
            self._publish(cmd)
            if cmd.state != self._last_state:
                self._log_state(cmd)
        if self.tick_log is not None:
            self.tick_log.append((t0, time.thread_time() - c0))
        # Non-urgent work in the slack after the tick (see the module docstring).
        self._process_chunks()
        if self._status_due:
            self._status_due = False
            self._publish_status()

    def _publish(self, cmd: Command) -> None:
        hdr = header(cmd.stamp, cmd.frame_id)
        if self._pose_pub is not None:
            self._pose_pub.publish(PoseStamped(header=hdr, pose=pose_msg(cmd.position, cmd.orientation)))
        if self._twist_pub is not None:
            tw = TwistStamped(header=hdr)
            tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = (float(v) for v in cmd.linear)
            tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z = (float(v) for v in cmd.angular)
            self._twist_pub.publish(tw)
        if cmd.gripper is not None:
            position = self._g_closed + cmd.gripper * (self._g_open - self._g_closed)
            if self._grip_pub is not None:
                self._grip_pub.publish(Float64(data=float(position)))
            if self._grip_js_pub is not None:
                self._grip_js_pub.publish(JointState(header=hdr, name=[self._gripper_joint], position=[float(position)]))

    def _log_state(self, cmd: Command) -> None:
        self._last_state = cmd.state
        text = f"executor {cmd.state.label}" + (f": {cmd.reason}" if cmd.reason else "")
        if cmd.state in (ExecutorState.HOLDING, ExecutorState.ESTOP):
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    # ------------------------------------------------------------------ status
    def _on_status(self) -> None:
        self._status_due = True  # built and published right after the next tick

    def _publish_status(self) -> None:
        now = self.now()
        with self._lock:
            st = self.core.status(now, self.dry_run)
        self._status_pub.publish(status_to_msg(st))


def set_realtime_priority(priority: int) -> str:
    """Make the calling thread SCHED_FIFO at `priority` (1-99); "" on success, else why not.

    Threads created later by this thread inherit the policy. 0 restores normal scheduling.
    """
    if not hasattr(os, "sched_setscheduler"):
        return "SCHED_FIFO is not available on this platform"
    try:
        if priority > 0:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (PermissionError, OSError) as exc:
        return f"{exc.strerror or exc}; grant an rtprio limit (/etc/security/limits.conf) or CAP_SYS_NICE"
    return ""


def status_to_msg(st: ExecutorStatusData) -> ExecutorStatus:
    """ExecutorStatusData -> vla_ros/ExecutorStatus."""
    msg = ExecutorStatus()
    msg.header = header(st.stamp, st.frame_id)
    msg.state = int(st.state)
    msg.state_name = st.state_name
    msg.dry_run = bool(st.dry_run)
    msg.chunk_seq = int(st.chunk_seq)
    msg.policy_id = st.policy_id
    msg.remaining_time = float(st.remaining_time)
    msg.remaining_steps = int(st.remaining_steps)
    msg.chunks_received = st.chunks_received
    msg.chunks_rejected = st.chunks_rejected
    msg.chunks_stale = st.chunks_stale
    msg.skipped_steps = st.skipped_steps
    msg.last_chunk_delay = float(st.last_chunk_delay)
    msg.mean_chunk_delay = float(st.mean_chunk_delay)
    msg.clamps = st.clamps
    msg.holds = st.holds
    msg.bridges = st.bridges
    msg.limit_names = list(LIMIT_NAMES)
    msg.limit_counts = [int(st.limit_counts[n]) for n in LIMIT_NAMES]
    msg.message = st.message
    msg.loop_period_mean = float(st.loop_period_mean)
    msg.loop_period_p99 = float(st.loop_period_p99)
    msg.loop_period_max = float(st.loop_period_max)
    plan = st.plan
    msg.plan_start = time_msg(plan.start)
    msg.plan_dt = float(plan.dt)
    msg.committed_steps = int(plan.committed_steps)
    if plan.steps:
        quats = rotvec_to_quat(plan.actions[:, 3:6])
        msg.plan_poses = [pose_msg(plan.actions[i, :3], quats[i]) for i in range(plan.steps)]
        msg.plan_gripper = [float(g) for g in plan.actions[:, 6]]
    return msg


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ros2 run vla_ros executor_node`` (also accepts --config/--robot/--set)."""
    args, base = node_main.parse_config(
        "executor_node", "Stream action chunks to the arm at control rate (docs/executor.md).", argv)
    if base is None:
        return 2
    rclpy.init(args=args)
    node = node_main.make_node("executor_node", lambda: ExecutorNode(base))
    if node is None:
        return 2
    prio = node.cfg.executor.realtime_priority
    if prio > 0:  # the spinning (= this) thread runs the control loop
        err = set_realtime_priority(prio)
        if err:
            node.get_logger().warning(f"executor.realtime_priority={prio} not applied: {err}")
        else:
            node.get_logger().info(f"control loop thread runs SCHED_FIFO priority {prio}")
    return node_main.spin(node, SingleThreadedExecutor())


if __name__ == "__main__":
    sys.exit(main())
