"""`executor_node`: the rclpy shell around `vla_ros.core.executor.ChunkExecutor`.

All behaviour (timeline, blending, interpolation, bridges, safety, watchdog, e-stop latch, RTC
plan) lives in the ROS-free core, driven through `vla_ros.core.executor_runtime.ExecutorRuntime`
(the replay drives the same object: chunk queue, feedback-pose rule, tick-then-admit step, status
message); this node only moves data between DDS and it, on the ROS clock (sim time when
``use_sim_time`` is set):

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

E-stop input (issue 11, finding 4): two subscriptions feed one handler, reliable +
transient-local (a latched ``true`` published before this node started is received at once) and
best-effort (matches every publisher, including best-effort ones, which a reliable subscription
never matches). With ``executor.estop_required`` no chunk is executed until the topic has been
heard once; while the topic has no publisher at all the status message says so. Chunks observed
before an e-stop never run after the reset (pending ones are dropped here, older stamps refused
by the core).

Design choice: a plain node, not a lifecycle node. It starts holding (the measured end-effector
pose) and publishes nothing before it has a plausible one, so there is no unconfigured/inactive
phase that a lifecycle manager would need to drive, and it runs the same under Humble, Jazzy and
Kilted without launch_ros' lifecycle tooling.

Parameters (`vla_ros.ros.params`): the node declares only the keys it reads
(`launch_plan.EXECUTOR_NODE_KEYS`). Writable at run time, applied at once and logged:
``executor.dry_run`` (WARN; the command publishers move between the preview and the real topics),
``executor.twist_gain`` and every ``safety.*`` limit (`ChunkExecutor.set_safety`). Every other key
is read-only; a set is validated by the schema and refused with its message when invalid.

Timing: one SingleThreadedExecutor runs the callbacks; the control timer's callback ticks and
publishes first, then combines the chunks decoded since into the plan (at most
``executor.max_queued_chunks``; each keeps its receive time as its arrival). The heavy, non-urgent
work runs in one daemon thread (`OffLoopWorker`), which hands the GIL back to the control thread
within the switch interval: raw chunk bytes wait for it in a queue of at most
``executor.max_queued_chunks`` (the oldest dropped, counted, logged and named in the status); a
chunk that cannot fit ``executor.max_chunk_steps`` by its serialized size is refused before it is
even deserialized (the subscription takes raw CDR bytes), a longer one by its pose count before
its poses are read; and each ExecutorStatus (a plan of at most ``executor.max_chunk_steps``
poses) is built there from a snapshot taken by the status timer. The e-stop is applied at once.
The lock serialises every call into the core.

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
from geometry_msgs.msg import Pose, PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64
from std_srvs.srv import SetBool, Trigger

try:  # Jazzy and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks  # type: ignore[no-redef]

from vla_ros.core.config import ConfigError, VlaConfig
from vla_ros.core.executor import ChunkExecutor, Command, ExecutorState, ExecutorStatusData
from vla_ros.core.executor_runtime import ExecutorRuntime
from vla_ros.core.types import EEPose
from vla_ros.msg import ActionChunk as ActionChunkMsg
from vla_ros.msg import ExecutorStatus
from vla_ros.ros.conversions import ENCODER
from vla_ros.ros import node_main
from vla_ros.ros.launch_plan import EXECUTOR_NODE_KEYS, EXECUTOR_NODE_WRITABLE
from vla_ros.ros.tf_listener import TfListener
from vla_ros.core.tf_buffer import ChainPoses, TransformBuffer, ee_pose_from_tf
from vla_ros.ros.params import RuntimeParameters, declare_config, set_result

# The control thread shares the interpreter with other threads (the off-loop worker; the policy in
# `vla-ros run --composed`): a thread that wants the GIL waits up to the switch interval for a busy
# one to yield it (CPython default 5 ms, half a 100 Hz period). 0.5 ms bounds that wait
# (measured in bench/executor_bench.py).
GIL_SWITCH_INTERVAL = 0.0005  # [s]
DISCOVERY_GRACE_S = 2.0  # [s] wall time after start before a missing e-stop publisher is reported
DROP_NOTE_S = 5.0  # [s] a dropped chunk stays mentioned in the status message this long
STRING_SLACK = 4096  # [bytes] allowed for the ids and frame of a chunk in the serialized size check


def preview_topic(prefix: str, topic: str) -> str:
    """``<prefix>/<topic>``, keeping an absolute topic absolute: ("preview", "/a/b") -> "/preview/a/b"."""
    prefix = prefix.strip("/")
    if not prefix:
        return topic
    if topic.startswith("/"):
        return f"/{prefix}{topic}"
    return f"{prefix}/{topic}"


def max_chunk_bytes(max_steps: int) -> int:
    """Largest serialized ActionChunk (CDR) that can hold `max_steps` steps, ids and frame included.

    Measured from the generated message itself, so it follows the message definition.
    """
    empty = len(serialize_message(ActionChunkMsg()))
    one = len(serialize_message(ActionChunkMsg(poses=[Pose()], gripper=[0.0])))
    return empty + (one - empty) * max_steps + STRING_SLACK


class OffLoopWorker:
    """One daemon thread for the work that must never delay a tick: decoding chunks, building statuses.

    Python runs one thread at a time, but the interpreter hands the GIL to the control thread
    within the switch interval (`main` shortens it), instead of after a whole 2000-pose decode.
    Raw chunks wait in a queue of at most `max_chunks` (the oldest is dropped and reported through
    `on_drop`); only the newest status waits (an older one is superseded).
    """

    def __init__(self, decode, publish_status, max_chunks: int, on_drop):
        self._decode, self._publish_status, self._on_drop = decode, publish_status, on_drop
        self._max_chunks = max_chunks
        self._cv = threading.Condition()
        self._chunks: collections.deque[tuple[bytes, float]] = collections.deque()
        self._status = None
        self._stopped = False
        self._decoding = 0
        self._thread = threading.Thread(target=self._run, name="executor_off_loop", daemon=True)
        self._thread.start()

    def put_chunk(self, raw: bytes, received: float) -> None:
        dropped = 0
        with self._cv:
            self._chunks.append((raw, received))
            while len(self._chunks) > self._max_chunks:
                self._chunks.popleft()
                dropped += 1
            self._cv.notify()
        if dropped:
            self._on_drop(dropped, received)

    @property
    def thread_id(self) -> int:
        """Native id of the worker thread (for its scheduling priority)."""
        return self._thread.native_id or 0

    def put_status(self, status) -> None:
        with self._cv:
            self._status = status
            self._cv.notify()

    def clear_chunks(self) -> None:
        with self._cv:
            self._chunks.clear()

    @property
    def queued(self) -> int:
        """Raw chunks waiting for this thread, the one it is decoding included."""
        with self._cv:
            return len(self._chunks) + self._decoding

    def stop(self, timeout: float = 1.0) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and not self._chunks and self._status is None:
                    self._cv.wait()
                if self._stopped:
                    return
                chunk = self._chunks.popleft() if self._chunks else None
                status, self._status = (self._status, None) if chunk is None else (None, self._status)
                self._decoding = int(chunk is not None)
            try:
                if chunk is not None:
                    self._decode(*chunk)
                if status is not None:
                    self._publish_status(status)
            except Exception:  # noqa: BLE001 - never let the worker die silently; the node logs it
                import traceback

                sys.stderr.write(f"executor_node: off-loop worker error:\n{traceback.format_exc()}")
            finally:
                with self._cv:
                    self._decoding = 0


class ExecutorNode(Node):
    """The executor node; `core` is the ChunkExecutor it drives (see the module docstring)."""

    def __init__(self, base: VlaConfig | None = None, *, node_name: str = "vla_executor", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.cfg = declare_config(self, base, EXECUTOR_NODE_KEYS, writable=EXECUTOR_NODE_WRITABLE)
        ex, robot = self.cfg.executor, self.cfg.robot
        if ex.gripper_output == "both" and ex.gripper_topic == ex.gripper_joint_state_topic:
            raise ConfigError(
                f"executor.gripper_joint_state_topic: must differ from executor.gripper_topic ({ex.gripper_topic!r}) "
                "with gripper_output=both (one topic cannot carry two message types)"
            )
        if ex.estop_required and not ex.estop_topic:
            raise ConfigError("executor.estop_required: needs an e-stop topic to hear (executor.estop_topic is '')")
        self.runtime = ExecutorRuntime(self.cfg)  # the core, its chunk queue and feedback pose, the step
        # Chunks in another frame than robot.base_frame go through /tf + /tf_static (refused by name if unknown).
        self.tf = TfListener(self, TransformBuffer(robot.tf_cache_time, robot.tf_max_extrapolation), robot.tf_topic,
                             robot.tf_static_topic)
        if self.tf.available:
            self.core.transforms = self.tf.buffer
        # The feedback pose from TF (robot.ee_pose_source tf, or auto without robot.ee_pose_topic).
        self._ee_chain = None
        if ee_pose_from_tf(robot) and self.tf.available:
            self._ee_chain = ChainPoses(self.tf.buffer, robot.base_frame, robot.ee_frame)
            self.tf.on_update = self._on_tf_update
        self.dry_run = ex.dry_run
        self._runtime = RuntimeParameters(EXECUTOR_NODE_WRITABLE)
        self._lock = self.runtime.lock  # serialises every call into the core
        self._estop_input = False
        self._estop_heard = False
        self._estop_publishers = -1  # publishers on the e-stop topic at the last status (-1 = not counted yet)
        self._started = time.monotonic()  # DDS discovery takes a moment: no "no publisher" note before the grace
        self._last_state: ExecutorState | None = None
        self._max_chunk_bytes = max_chunk_bytes(ex.max_chunk_steps)
        self.chunks_dropped = 0  # chunks dropped from a full queue (executor.max_queued_chunks)
        self._last_drop: float | None = None
        self.tick_log: list[tuple[float, float]] | None = None  # (monotonic start, thread CPU s) when benchmarking

        self._cmd_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pose_pub = self._twist_pub = self._grip_pub = self._grip_js_pub = None
        self._create_command_publishers()
        self._status_pub = self.create_publisher(ExecutorStatus, ex.status_topic, reliable)
        self._gripper_joint = robot.gripper_joint or "gripper"
        self._g_closed, self._g_open = robot.gripper_closed, robot.gripper_open

        self._worker = OffLoopWorker(self._decode_chunk, self._publish_status, ex.max_queued_chunks, self._dropped)
        # Raw CDR bytes: an over-long chunk is refused by its size before rclpy builds 10k Pose objects.
        self.create_subscription(ActionChunkMsg, self.cfg.policy.chunk_topic, self._on_chunk, reliable, raw=True)
        if self._ee_chain is not None:
            self.get_logger().info(f"end-effector pose from TF: {robot.base_frame} -> {robot.ee_frame}")
        elif robot.ee_pose_topic:
            self.create_subscription(PoseStamped, robot.ee_pose_topic, self._on_pose, qos_profile_sensor_data)
        else:
            self.get_logger().error(
                "robot.ee_pose_topic is empty: without an end-effector pose the executor has no hold pose and "
                "publishes no command"
            )
        if ex.estop_topic:
            self._subscribe_estop(ex.estop_topic)
        self.create_service(Trigger, "~/estop", self._srv_estop)
        self.create_service(Trigger, "~/reset", self._srv_reset)
        self.create_service(SetBool, "~/set_estop", self._srv_set_estop)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._control_timer = self.create_timer(1.0 / ex.control_rate, self._on_control)
        self._status_timer = self.create_timer(1.0 / ex.status_rate_hz, self._on_status)
        where = "PREVIEW ONLY (executor.dry_run=true)" if self.dry_run else "LIVE: commands go to the robot"
        self.get_logger().info(
            f"executor: {ex.strategy} at {ex.control_rate:g} Hz, output {ex.output_mode} + gripper "
            f"{ex.gripper_output}, chunks on {self.cfg.policy.chunk_topic}, frame {robot.base_frame}; {where}"
        )

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def core(self) -> ChunkExecutor:
        return self.runtime.core

    @property
    def chunks_waiting(self) -> int:
        """Chunks received and not yet in the plan (raw, waiting to be decoded, and decoded)."""
        return self._worker.queued + self.runtime.queued

    # ------------------------------------------------------------------ outputs
    def _command_topics(self) -> list[str]:
        ex = self.cfg.executor
        topics = []
        if ex.output_mode in ("pose", "both"):
            topics.append(ex.pose_topic)
        if ex.output_mode in ("twist", "both"):
            topics.append(ex.twist_topic)
        if ex.gripper_output in ("float64", "both"):
            topics.append(ex.gripper_topic)
        if ex.gripper_output in ("joint_state", "both"):
            topics.append(ex.gripper_joint_state_topic)
        return [self._out(t) for t in topics]

    def _out(self, topic: str) -> str:
        return preview_topic(self.cfg.executor.preview_prefix, topic) if self.dry_run else topic

    def _create_command_publishers(self) -> None:
        """(Re)create the command publishers on the preview or the real topics (per ``self.dry_run``)."""
        for pub in (self._pose_pub, self._twist_pub, self._grip_pub, self._grip_js_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        ex, out, qos = self.cfg.executor, self._out, self._cmd_qos
        self._pose_pub = (
            self.create_publisher(PoseStamped, out(ex.pose_topic), qos) if ex.output_mode in ("pose", "both") else None
        )
        self._twist_pub = (
            self.create_publisher(TwistStamped, out(ex.twist_topic), qos) if ex.output_mode in ("twist", "both")
            else None
        )
        self._grip_pub = (
            self.create_publisher(Float64, out(ex.gripper_topic), qos) if ex.gripper_output in ("float64", "both")
            else None
        )
        self._grip_js_pub = (
            self.create_publisher(JointState, out(ex.gripper_joint_state_topic), qos)
            if ex.gripper_output in ("joint_state", "both")
            else None
        )

    # ------------------------------------------------------------------ run-time parameters
    def _on_set_parameters(self, params: list) -> object:
        """``ros2 param set``: validated by the schema, applied at once and logged, or refused with the reason."""
        try:
            change = self._runtime.check(self.cfg, params)
        except ConfigError as exc:
            self.get_logger().warning(f"parameter set refused: {exc}")
            return set_result(str(exc))
        if not change.changed:
            return set_result()
        new = change.config
        changed = change.changed
        try:
            with self._lock:
                if any(k.startswith("safety.") for k in changed):
                    self.core.set_safety(new.safety)
                if "executor.twist_gain" in changed:
                    self.core.set_twist_gain(new.executor.twist_gain)
                self.cfg = new
                if "executor.dry_run" in changed:
                    self.dry_run = new.executor.dry_run
                    self._create_command_publishers()
        except (ConfigError, ValueError, TypeError, AttributeError) as exc:  # the core refused: nothing half-applied
            self.get_logger().error(f"parameter set refused by the executor core: {exc}")
            return set_result(f"not applied: {exc}")
        for key, (old, value) in changed.items():
            if key == "executor.dry_run":
                topics = ", ".join(self._command_topics())
                what = "PREVIEW ONLY, nothing reaches the robot" if value else "LIVE, commands go to the robot"
                self.get_logger().warning(f"executor.dry_run: {old} -> {value}: {what} (commands on {topics})")
            else:
                self.get_logger().info(f"parameter {key}: {old!r} -> {value!r} (applied)")
        return set_result()

    # ------------------------------------------------------------------ inputs
    def _on_chunk(self, raw: bytes) -> None:
        """Queue a chunk (raw bytes) for the off-loop worker; it enters the plan after the tick that follows."""
        self._worker.put_chunk(raw, self.now())

    def _dropped(self, count: int, now: float) -> None:
        with self._lock:  # called from the spinning thread and from the off-loop worker
            self.chunks_dropped += count
            self._last_drop = now
        self.get_logger().warning(
            f"{count} chunk(s) dropped: more than executor.max_queued_chunks = {self.cfg.executor.max_queued_chunks} "
            f"waiting ({self.chunks_dropped} dropped so far)", throttle_duration_sec=1.0)

    def _decode_chunk(self, raw: bytes, received: float) -> None:
        """Off-loop worker: size check, then decode; a decoded chunk waits for the control callback."""
        topic = self.cfg.policy.chunk_topic
        ex = self.cfg.executor
        if ex.estop_required and not self._estop_heard:
            self._refuse(f"{topic}: executor.estop_required: no message on the e-stop topic {ex.estop_topic!r} yet; "
                         "no chunk is executed until one arrives")
            return
        if len(raw) > self._max_chunk_bytes:
            self._refuse(f"{topic}: {len(raw)} bytes serialized, more than a chunk of executor.max_chunk_steps = "
                         f"{ex.max_chunk_steps} steps can take ({self._max_chunk_bytes}); refused before decoding",
                         code="length")
            return
        try:
            msg = deserialize_message(raw, ActionChunkMsg)
        except (ValueError, TypeError, AttributeError, RuntimeError) as exc:
            self._refuse(f"{topic}: does not deserialize as vla_ros/ActionChunk: {exc}")
            return
        reason, dropped = self.runtime.receive(msg, received)  # decoded, validated, queued for the next tick
        if reason:
            self._log_refusal(reason)
        if dropped:
            self._dropped(dropped, received)

    def _refuse(self, reason: str, code: str = "") -> None:
        self._log_refusal(self.runtime.refuse(reason, code))

    def _log_refusal(self, reason: str) -> None:
        self.get_logger().warning(f"chunk not executed: {reason}", throttle_duration_sec=1.0)

    def _on_pose(self, msg: PoseStamped) -> None:
        # the runtime's rule: base frame only, stamped with the receive time (the control callback runs here too)
        problem = self.runtime.feedback.on_msg(msg, self.now())
        if problem:
            self.get_logger().warning(problem, throttle_duration_sec=5.0)

    def _on_tf_update(self) -> None:
        got = self._ee_chain.update(self.now())
        if got is not None:  # stamped with the receive time, as a PoseStamped pose is (_on_pose)
            _, tf = got
            self.runtime.feedback.set(EEPose(tf.translation, tf.rotation, self.cfg.robot.base_frame), self.now())

    def _subscribe_estop(self, topic: str) -> None:
        """Two subscriptions, one handler: every publisher's QoS matches one of them (module docstring)."""
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                                 durability=DurabilityPolicy.VOLATILE)
        # A volatile publisher does not match the transient-local subscription; the best-effort one takes it,
        # so rclpy's "incompatible QoS" warning would be noise here.
        quiet = SubscriptionEventCallbacks(incompatible_qos=lambda _info: None)
        self.create_subscription(Bool, topic, self._on_estop_topic, latched, event_callbacks=quiet)
        self.create_subscription(Bool, topic, self._on_estop_topic, best_effort)

    def _on_estop_topic(self, msg: Bool) -> None:
        if not self._estop_heard:
            self._estop_heard = True
            self.get_logger().info(f"e-stop topic {self.cfg.executor.estop_topic!r} heard: {bool(msg.data)}")
        self._estop_input = bool(msg.data)
        if msg.data:
            self._estop(f"{self.cfg.executor.estop_topic} topic")

    def _estop(self, source: str) -> None:
        self._worker.clear_chunks()  # chunks received before the e-stop must never run after a reset
        self.runtime.clear()
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
        cmd = self.runtime.tick(self.now(), self._publish)  # published under the lock: a dry_run switch never splits it
        if cmd is not None and cmd.state != self._last_state:
            self._log_state(cmd)
        if self.tick_log is not None:
            self.tick_log.append((t0, time.thread_time() - c0))
        # Decoded chunks (at most executor.max_queued_chunks) enter the plan in the slack after the tick.
        for _, result in self.runtime.admit():
            if not result.accepted:
                self._log_refusal(result.reason)

    def _publish(self, cmd: Command) -> None:
        t, frame = cmd.stamp, cmd.frame_id
        hdr = ENCODER.header(t, frame)  # one header for the messages of this tick
        if self._pose_pub is not None:
            self._pose_pub.publish(ENCODER.pose_stamped(t, frame, cmd.position, cmd.orientation, header=hdr))
        if self._twist_pub is not None:
            self._twist_pub.publish(ENCODER.twist_stamped(t, frame, cmd.linear, cmd.angular, header=hdr))
        if cmd.gripper is not None:
            position = self._g_closed + cmd.gripper * (self._g_open - self._g_closed)
            if self._grip_pub is not None:
                self._grip_pub.publish(ENCODER.float64(position))
            if self._grip_js_pub is not None:
                self._grip_js_pub.publish(ENCODER.joint_state(t, [self._gripper_joint], [position], header=hdr))

    def _log_state(self, cmd: Command) -> None:
        self._last_state = cmd.state
        text = f"executor {cmd.state.label}" + (f": {cmd.reason}" if cmd.reason else "")
        if cmd.state in (ExecutorState.HOLDING, ExecutorState.ESTOP):
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    # ------------------------------------------------------------------ status (its own callback, never in the tick)
    def _on_status(self) -> None:
        """Snapshot the core (vectorised, cheap) here; the message (a Pose per plan step) is built off-loop."""
        now = self.now()
        notes = self._input_notes(now)
        self._worker.put_status((self.runtime.status(now, self.dry_run), notes))

    def _publish_status(self, item: tuple[ExecutorStatusData, list[str]]) -> None:
        st, notes = item
        msg = self.runtime.status_message(ENCODER, st)
        if notes:
            msg.message = "; ".join([m for m in (msg.message,) if m] + notes)
        self._status_pub.publish(msg)

    @property
    def off_loop_thread_id(self) -> int:
        """Native id of the off-loop worker thread (`main` raises its priority with the control loop's)."""
        return self._worker.thread_id

    def destroy_node(self) -> None:
        worker = getattr(self, "_worker", None)  # absent when __init__ failed early
        if worker is not None:
            worker.stop()
        super().destroy_node()

    def _input_notes(self, now: float) -> list[str]:
        """What the node itself knows about its inputs, for the status message."""
        ex = self.cfg.executor
        notes = []
        if ex.estop_required and not self._estop_heard:
            notes.append(f"executor.estop_required: holding until the e-stop topic {ex.estop_topic!r} is heard "
                         "(no message yet)")
        if ex.estop_topic and time.monotonic() - self._started >= DISCOVERY_GRACE_S:
            count = self.count_publishers(ex.estop_topic)
            if count == 0 and self._estop_publishers != 0:
                self.get_logger().warning(f"e-stop topic {ex.estop_topic!r} has no publisher: it cannot stop the arm",
                                          throttle_duration_sec=10.0)
            self._estop_publishers = count
            if count == 0:
                notes.append(f"e-stop input dead: no publisher on {ex.estop_topic!r}")
        if self._last_drop is not None and now - self._last_drop < DROP_NOTE_S:
            notes.append(f"{self.chunks_dropped} chunk(s) dropped so far: more than executor.max_queued_chunks = "
                         f"{ex.max_queued_chunks} waiting")
        return notes


def set_realtime_priority(priority: int, thread_id: int = 0) -> str:
    """Make the calling thread (or the thread with native id `thread_id`) SCHED_FIFO at `priority`
    (1-99); "" on success, else why not.

    Threads created later by that thread inherit the policy. 0 restores normal scheduling.
    """
    if not hasattr(os, "sched_setscheduler"):
        return "SCHED_FIFO is not available on this platform"
    try:
        if priority > 0:
            os.sched_setscheduler(thread_id, os.SCHED_FIFO, os.sched_param(int(priority)))
        else:
            os.sched_setscheduler(thread_id, os.SCHED_OTHER, os.sched_param(0))
    except (PermissionError, OSError) as exc:
        return f"{exc.strerror or exc}; grant an rtprio limit (/etc/security/limits.conf) or CAP_SYS_NICE"
    return ""


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
    # The off-loop worker (chunk decoding, status messages) yields the GIL to the control thread this soon.
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
    prio = node.cfg.executor.realtime_priority
    if prio > 0:  # the spinning (= this) thread runs the control loop
        err = set_realtime_priority(prio)
        if err:
            node.get_logger().warning(f"executor.realtime_priority={prio} not applied: {err}")
        else:
            # The off-loop worker shares the GIL with the control thread: at normal priority another
            # process can preempt it while it holds the GIL, and the control thread then waits behind it
            # (priority inversion). One below the control thread, it runs before every ordinary process.
            err = set_realtime_priority(max(1, prio - 1), node.off_loop_thread_id)
            worker = f"; off-loop worker not raised: {err}" if err else f"; off-loop worker at {max(1, prio - 1)}"
            node.get_logger().info(f"control loop thread runs SCHED_FIFO priority {prio}{worker}")
    return node_main.spin(node, SingleThreadedExecutor())


if __name__ == "__main__":
    sys.exit(main())
