"""`policy_node`: synchronized camera + joint-state observations in, ActionChunk out.

A thin rclpy lifecycle shell over ROS-free logic that the rosbag replay shares:

- `vla_ros.core.policy_runtime.PolicyRuntime` (the replay lanes run the same object): every input
  is routed into it (`route`) - the `ObservationBuilder` (per-message validation, rejections
  counted and logged, throttled per topic and problem; approximate-time sync on header stamps;
  max age; lazy image decoding), the executor feedback for the queue trigger and RTC - and its
  `InferenceWorker` thread (at most one inference in flight, always on the newest observation)
  runs the policy; each chunk passes the executor's chunk check and is encoded there, then
  published here.

Topics (names are parameters; see docs/policy_node.md):

- in: every camera of the policy (``robot.camera_topics``; ``sensor_msgs/Image``, or
  ``CompressedImage`` for a topic ending in ``/compressed``), ``robot.joint_state_topic``
  (``sensor_msgs/JointState``), ``robot.ee_pose_topic`` (``geometry_msgs/PoseStamped``, only when
  the policy needs the EE pose) - all sensor-data QoS; ``robot.instruction_topic``
  (``std_msgs/String``, reliable + transient-local); ``policy.executor_status_topic``
  (``vla_ros/ExecutorStatus``, for trigger 'queue' and RTC);
- out: ``policy.chunk_topic`` (``vla_ros/ActionChunk``, reliable), ``policy.preview_topic``
  (``geometry_msgs/PoseArray``, for RViz), ``policy.status_topic`` (``vla_ros/PolicyStatus`` at
  ``policy.status_rate_hz``, in every state).

Lifecycle (standard ROS 2 managed node; PolicyStatus.state in brackets):

- unconfigured [UNCONFIGURED, or ERROR + message after a failed configure]
- configure: read parameters, load the policy through the registry, check it against the robot
  profile, subscribe, start the (idle) worker thread -> inactive [READY]. A failure is logged once,
  the node stays unconfigured with status ERROR and keeps running (no crash loop); fix the
  parameter and configure again.
- activate: start triggering -> active [RUNNING while chunks flow, READY + the reason while it
  waits for inputs / the executor; ERROR while inference fails].
- deactivate: stop triggering; a chunk still in flight is not published -> inactive.
- cleanup: stop the worker, unsubscribe, release the policy -> unconfigured. shutdown likewise.

Driven by a launch file / lifecycle manager through the usual ``~/change_state`` services, or
in-process (tests, a composed runner) with ``node.trigger_configure()``, ``trigger_activate()``,
``trigger_deactivate()``, ``trigger_cleanup()`` (rclpy API), or ``node.start()`` = configure +
activate. `main` does ``start()`` unless ``policy.autostart`` is false.

The policy object can be swapped between inferences with `replace_policy` (for a runtime swap
service): it is checked against the robot profile and the node's inputs first.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from functools import partial
from typing import Any, Sequence

import rclpy
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String

from vla_ros.core.config import ConfigError, VlaConfig
from vla_ros.core.inference_worker import InferenceRecord, InferenceWorker, WorkerBusy
from vla_ros.core.observation_builder import InputProblem, ObservationBuilder, ObservationSpec
from vla_ros.core.policy_runtime import DUE, INSTRUCTION, PolicyRuntime
from vla_ros.core.tf_buffer import ChainPoses, TransformBuffer, ee_pose_from_tf, tf_pose_topic
from vla_ros.core.triggers import QueueTrigger
from vla_ros.msg import ActionChunk as ActionChunkMsg
from vla_ros.msg import ExecutorStatus, PolicyStatus
from vla_ros.policy.base import Policy
from vla_ros.policy.compat import check_compatible, compatibility_report
from vla_ros.policy.registry import load_configured_policy
from vla_ros.ros.conversions import ENCODER, header, pose_msg
from vla_ros.ros.tf_listener import TfListener
from vla_ros.ros import node_main
from vla_ros.ros.launch_plan import POLICY_NODE_KEYS, POLICY_NODE_PINNED, POLICY_NODE_WRITABLE, select_keys
from vla_ros.ros.params import RuntimeParameters, declare_config, set_result
from vla_ros.srv import LoadPolicy

WARN_PERIOD = 2.0  # [s] throttle of repeated warnings, per (topic, problem)
RECENT = 5.0  # [s] a warning stays in PolicyStatus.message this long
# [s] at shutdown, how long to wait for an inference in flight before abandoning its (daemon) thread;
# node_main bounds the whole teardown on top of this.
SHUTDOWN_WAIT = 2.0
STATE_NAMES = {
    PolicyStatus.STATE_UNCONFIGURED: "unconfigured",
    PolicyStatus.STATE_LOADING: "loading",
    PolicyStatus.STATE_READY: "ready",
    PolicyStatus.STATE_RUNNING: "running",
    PolicyStatus.STATE_ERROR: "error",
}


class ServiceThread:
    """A service of `owner` (``<owner>/<name>``) answered on its own node and thread.

    Why: a runtime swap (~/load_policy) loads a checkpoint for seconds while the policy node must
    keep taking inputs and triggering inferences. rclpy's MultiThreadedExecutor would allow that,
    but it busy-waits while a ready entity's callback group is occupied: the policy node burned a
    whole core at 64x48 px inputs (measured: 1017 of 1000 CPU ticks in 10 s). So the node spins
    single-threaded and only this service runs beside it. The helper node ignores the command
    line's remappings (they name the policy node) and lives in the owner's namespace.
    """

    def __init__(self, owner: Node, srv_type: Any, name: str, callback: Any):
        from rclpy.executors import SingleThreadedExecutor

        full = f"{owner.get_fully_qualified_name()}/{name}"
        self.node = Node(f"{owner.get_name()}_{name}", namespace=owner.get_namespace(), context=owner.context,
                         use_global_arguments=False, start_parameter_services=False)
        self.node.create_service(srv_type, full, callback)
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{owner.get_name()}-{name}", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self._executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass
        except Exception:  # noqa: BLE001 - a context shut down under the spin: the process is leaving
            if self.node.context.ok():
                raise

    def stop(self, timeout: float = 2.0) -> None:
        self._executor.shutdown(timeout_sec=timeout)
        self._thread.join(timeout)
        self.node.destroy_node()


class PolicyNode(LifecycleNode):
    """The policy node (see the module docstring). Constructible in-process:
    ``PolicyNode(base_config, context=ctx, parameter_overrides=[...])``."""

    def __init__(self, base: VlaConfig | None = None, *, node_name: str = "vla_policy", **node_kwargs: Any):
        super().__init__(node_name, **node_kwargs)
        self._base = base
        self._subs: list[Any] = []
        self._rate_timer = None
        self._chunk_pub = None
        self._preview_pub = None
        self.runtime: PolicyRuntime | None = None  # builder, worker, trigger, feedback, chunk check
        self._active = False
        # Only the keys this node reads; ConfigError names a bad parameter. See `_on_set_parameters`.
        self.cfg = declare_config(self, base, POLICY_NODE_KEYS, writable=(*POLICY_NODE_WRITABLE, *POLICY_NODE_PINNED),
                                  at_configure=POLICY_NODE_KEYS)
        self.lifecycle_state = "unconfigured"
        self.timing_log: list[tuple[InferenceRecord, float]] | None = None  # (record, published perf_counter)
        self._load_error = ""
        self._infer_error = ""
        self._last_chunk_wall: float | None = None
        self._warned: dict[tuple[str, str], tuple[float, int]] = {}
        self._warn_lock = threading.Lock()
        self._last_warning: tuple[str, float] | None = None
        self._stuck_warned = False
        # Set when a teardown had to abandon an inference that never returned: the process must
        # exit non-zero (node_main.spin) so a launch respawn replaces it.
        self.shutdown_problem = ""
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._status_pub = self.create_publisher(PolicyStatus, self.cfg.policy.status_topic, reliable)
        self._status_timer = self.create_timer(1.0 / self.cfg.policy.status_rate_hz, self.publish_status)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Its own node and thread (ServiceThread): a swap loads the new policy while the old one keeps
        # inferring and this node keeps spinning, single-threaded.
        self._swap_lock = threading.Lock()
        self._swap_service = ServiceThread(self, LoadPolicy, "load_policy", self._on_load_policy)

    # ------------------------------------------------------------------ helpers
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def active(self) -> bool:
        return self._active

    @property
    def policy(self) -> Policy | None:
        return self.worker.policy if self.worker is not None else None

    # The runtime's parts, None while unconfigured.
    @property
    def worker(self) -> InferenceWorker | None:
        return self.runtime.worker if self.runtime is not None else None

    @property
    def builder(self) -> ObservationBuilder | None:
        return self.runtime.builder if self.runtime is not None else None

    @property
    def trigger(self) -> QueueTrigger | None:
        return self.runtime.trigger if self.runtime is not None else None

    @property
    def rtc_guided(self) -> int:
        return self.runtime.rtc_guided if self.runtime is not None else 0

    @property
    def chunk_problems(self) -> dict[str, int]:
        """Chunk check refusals by code (plausibility.CHUNK_PROBLEM_CODES)."""
        return dict(self.runtime.chunk_problems) if self.runtime is not None else {}

    def _warn(self, key: tuple[str, str], text: str) -> None:
        """Warning throttled per `key` (topic, problem), mentioning how many were suppressed."""
        t = time.monotonic()
        with self._warn_lock:
            last, suppressed = self._warned.get(key, (-1e9, 0))
            self._last_warning = (text, t)
            if t - last < WARN_PERIOD:
                self._warned[key] = (last, suppressed + 1)
                return
            self._warned[key] = (t, 0)
        more = f" ({suppressed} more since the last warning)" if suppressed else ""
        self.get_logger().warning(text + more)

    def _on_problem(self, p: InputProblem) -> None:
        self._warn((p.topic, p.code), p.message)

    def _on_note(self, level: str, key: str, text: str) -> None:
        if level == "warning":
            self._warn(("policy", key), text)
        else:
            self.get_logger().info(text)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> bool:
        """Configure (if needed) and activate, in-process; True if the node ends up active.

        Judged by the state reached, not by the trigger_* return values (their exact behaviour on
        refused transitions differs between rclpy releases).
        """
        try:
            if self.lifecycle_state == "unconfigured":
                self.trigger_configure()
            if self.lifecycle_state == "inactive":
                self.trigger_activate()
        except Exception as exc:  # noqa: BLE001 - e.g. rclpy's RCLError for a refused transition
            self.get_logger().error(f"start: lifecycle transition refused: {exc}")
        return self.lifecycle_state == "active"

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.lifecycle_state = "configuring"
        self._load_error = self._infer_error = ""
        t0 = time.monotonic()
        try:
            self.cfg = declare_config(self, self._base, POLICY_NODE_KEYS,
                                      writable=(*POLICY_NODE_WRITABLE, *POLICY_NODE_PINNED),
                                      at_configure=POLICY_NODE_KEYS)
            self.publish_status()  # LOADING, before a load that may take a while
            policy = load_configured_policy(self.cfg.policy)
            try:
                robot = self._spec_robot()
                for line in compatibility_report(policy.metadata, robot, self.cfg.policy):
                    self.get_logger().info(line)
                check_compatible(policy.metadata, robot, self.cfg.policy)
                spec = ObservationSpec.from_config(robot, policy.metadata)
            except BaseException:
                policy.close()
                raise
            try:
                self._setup(spec, policy)
            except BaseException:
                if self.worker is None or self.worker.policy is not policy:
                    policy.close()
                self._teardown()  # closes the policy if the worker holds it
                raise
        except Exception as exc:  # noqa: BLE001 - any failure = error state, never a crash loop
            self._load_error = f"configure failed: {exc}"
            self.get_logger().error(self._load_error)
            self.lifecycle_state = "unconfigured"
            self.publish_status()
            return TransitionCallbackReturn.FAILURE
        meta = policy.metadata
        inputs = ", ".join(self.builder.topics.values())
        self.get_logger().info(
            f"policy {meta.policy_type!r} loaded in {time.monotonic() - t0:.1f} s "
            f"(checkpoint {meta.checkpoint_id or '-'}, {meta.device}/{meta.dtype}; state {meta.state_source}, "
            f"horizon {meta.horizon} x {meta.dt:g} s, {meta.action_mode.name.lower()}); inputs: {inputs}"
        )
        self.lifecycle_state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.worker is None or self.builder is None:
            return TransitionCallbackReturn.FAILURE
        p = self.cfg.policy
        self.builder.discard_pending()  # never act on an observation from before activation
        self.builder.counting = True
        self.runtime.active = self._active = True
        self._last_chunk_wall = None
        if p.trigger == "rate":
            self._rate_timer = self.create_timer(1.0 / p.rate_hz, self._on_rate_timer)
            how = f"every {1.0 / p.rate_hz:.3g} s"
        else:
            how = f"when the executor's plan ({p.executor_status_topic}) is shorter than {p.queue_threshold:g} s"
        self.get_logger().info(f"active: inference {how}{', with RTC' if p.rtc else ''}; chunks on {p.chunk_topic}")
        self.lifecycle_state = "active"
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        if self.runtime is not None:
            self.runtime.active = False
        if self._rate_timer is not None:
            self.destroy_timer(self._rate_timer)
            self._rate_timer = None
        if self.builder is not None:
            self.builder.counting = False
        self.get_logger().info("inactive: inference stopped")
        self.lifecycle_state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.lifecycle_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        services = getattr(self, "_swap_service", None)
        if services is not None:
            services.stop()
        cfg = getattr(self, "cfg", None)  # absent if the constructor failed (a bad parameter)
        self._teardown(wait=min(SHUTDOWN_WAIT, cfg.policy.inference_timeout) if cfg is not None else SHUTDOWN_WAIT)
        super().destroy_node()

    # ------------------------------------------------------------------ set-up / tear-down
    def _setup(self, spec: ObservationSpec, policy: Policy) -> None:
        cfg, p = self.cfg, self.cfg.policy
        self.runtime = PolicyRuntime(
            spec, cfg, clock=self.now, encoder=ENCODER, emit=self._publish_chunk, name=f"{self.get_name()}-inference",
            on_problem=self._on_problem, on_error=self._on_infer_error, on_note=self._on_note,
        )
        self.runtime.active = False  # until activated
        self.builder.counting = False
        self.worker.set_policy(policy)
        self.worker.start()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._chunk_pub = self.create_publisher(ActionChunkMsg, p.chunk_topic, reliable)
        if p.preview_topic:
            self._preview_pub = self.create_publisher(PoseArray, p.preview_topic, reliable)
        sensor = qos_profile_sensor_data
        for cam in spec.cameras:
            msg_type = CompressedImage if cam.compressed else Image
            self._subs.append(self.create_subscription(msg_type, cam.topic, partial(self._route, cam.topic), sensor))
        if spec.joint_state_topic:
            self._subs.append(self.create_subscription(JointState, spec.joint_state_topic,
                                                       partial(self._route, spec.joint_state_topic), sensor))
        if spec.ee_pose_topic and ee_pose_from_tf(cfg.robot):  # the EE pose from /tf + /tf_static
            robot = cfg.robot
            listener = TfListener(self, TransformBuffer(robot.tf_cache_time, robot.tf_max_extrapolation),
                                  robot.tf_topic, robot.tf_static_topic)
            chain = ChainPoses(listener.buffer, robot.base_frame, robot.ee_frame)
            listener.on_update = partial(self._on_tf_update, chain, spec.ee_pose_topic)
            self._subs.extend(listener.subscriptions)
            self.get_logger().info(f"end-effector pose from TF: {robot.base_frame} -> {robot.ee_frame}")
        elif spec.ee_pose_topic:
            self._subs.append(self.create_subscription(PoseStamped, spec.ee_pose_topic,
                                                       partial(self._route, spec.ee_pose_topic), sensor))
        if cfg.robot.instruction_topic:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self._subs.append(self.create_subscription(String, cfg.robot.instruction_topic, self._on_instruction,
                                                       latched))
        if p.trigger == "queue" or p.rtc:
            status_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
            self._subs.append(
                self.create_subscription(ExecutorStatus, p.executor_status_topic, self._on_executor_status, status_qos)
            )

    def _teardown(self, wait: float | None = None) -> None:
        """Release everything `_setup` created (idempotent). The worker goes first, so no inference
        is running (or publishing) when the publishers and subscriptions are destroyed.

        An inference still running after `wait` s (default policy.inference_timeout) is abandoned:
        its daemon thread is left behind (it publishes nothing when it returns), the policy is not
        closed under it, and `shutdown_problem` says so (the process then exits non-zero).
        """
        self._active = False
        runtime, self.runtime = self.runtime, None
        worker = runtime.worker if runtime is not None else None
        if runtime is not None:
            runtime.active = False
        if worker is not None:
            wait = self.cfg.policy.inference_timeout if wait is None else wait
            old = None
            try:
                if not worker.stop(timeout=wait):
                    raise WorkerBusy(f"still running after {wait:g} s")
                old = worker.set_policy(None, timeout=wait)
            except WorkerBusy:
                running = worker.running_for(time.perf_counter())
                self.shutdown_problem = (
                    f"inference running for {running:.1f} s did not stop: its thread was abandoned, "
                    f"the policy was not closed"
                )
                self.get_logger().error(self.shutdown_problem)
            if old is not None:
                self._close_policy(old)
        if self._rate_timer is not None:
            self.destroy_timer(self._rate_timer)
            self._rate_timer = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        for pub in (self._chunk_pub, self._preview_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._chunk_pub = self._preview_pub = None

    def _close_policy(self, policy: Policy) -> str:
        """`policy.close()`; a failure is logged and returned (the policy is released either way)."""
        try:
            policy.close()
        except Exception as exc:  # noqa: BLE001 - a plugin's close() must not undo a swap or a teardown
            text = f"closing policy {policy.metadata.policy_type!r} failed: {type(exc).__name__}: {exc}"
            self.get_logger().warning(text)
            return text
        return ""

    # ------------------------------------------------------------------ policy swap
    def _on_load_policy(self, request: LoadPolicy.Request, response: LoadPolicy.Response) -> LoadPolicy.Response:
        """~/load_policy: load, check and swap in another policy; the old one runs until the swap."""
        if not self._swap_lock.acquire(blocking=False):
            response.success, response.message = False, "another load_policy call is in progress"
            return self._swap_response(response)
        try:
            if self.worker is None:
                raise ConfigError("the node is not configured; configure it first")
            cur = self.cfg.policy
            cfg = self.cfg.with_overrides({
                "policy.type": request.policy_type or cur.type, "policy.checkpoint": request.checkpoint,
                "policy.device": request.device or cur.device, "policy.dtype": request.dtype or cur.dtype,
            })
            t0 = time.monotonic()
            policy = load_configured_policy(cfg.policy)
            try:
                for line in compatibility_report(policy.metadata, cfg.robot, cfg.policy):
                    self.get_logger().info(line)
                check_compatible(policy.metadata, cfg.robot, cfg.policy)
                old = self.replace_policy(policy, timeout=cur.inference_timeout)
            except BaseException:
                self._close_policy(policy)
                raise
            # The new policy runs from here on: a failing close() of the old one is a warning, not a failure.
            close_warning = self._close_policy(old) if old is not None else ""
            self.cfg = cfg
            self.set_parameters([Parameter(k, value=getattr(cfg.policy, k.split(".", 1)[1]))
                                 for k in ("policy.type", "policy.checkpoint", "policy.device", "policy.dtype")])
            meta = policy.metadata
            response.success = True
            response.message = (f"loaded {meta.policy_type!r} (checkpoint {meta.checkpoint_id or '-'}) "
                                f"in {time.monotonic() - t0:.1f} s; it produces the next chunk")
            if close_warning:
                response.message += f"; warning: {close_warning}"
        except WorkerBusy as exc:  # a hung inference: answer now instead of waiting for it
            response.success = False
            response.message = (f"load_policy failed: {exc} (policy.inference_timeout = "
                                f"{self.cfg.policy.inference_timeout:g} s); the new policy was not swapped in")
            self.get_logger().error(response.message)
        except Exception as exc:  # noqa: BLE001 - the old policy keeps running; say why
            response.success, response.message = False, f"load_policy failed, the previous policy keeps running: {exc}"
            self.get_logger().error(response.message)
        finally:
            self._swap_lock.release()
        return self._swap_response(response)

    def _swap_response(self, response: LoadPolicy.Response) -> LoadPolicy.Response:
        policy = self.policy
        response.policy_id = policy.metadata.policy_id if policy is not None else ""
        response.checkpoint_id = policy.metadata.checkpoint_id if policy is not None else ""
        return response

    def replace_policy(self, policy: Policy, timeout: float | None = None) -> Policy | None:
        """Use `policy` from the next inference on; returns the previous one (the caller closes it).

        Raises ConfigError (nothing changed) if it does not fit the robot profile or needs inputs
        this configuration does not subscribe to (then cleanup + configure with new parameters),
        and WorkerBusy (nothing changed) if the inference in flight does not finish within
        `timeout` s (None = wait for it).
        """
        if self.worker is None or self.builder is None:
            raise RuntimeError("replace_policy: the node is not configured")
        check_compatible(policy.metadata, self._spec_robot())
        needed = ObservationSpec.from_config(self._spec_robot(), policy.metadata).inputs()
        missing = [t for n, t in needed.items() if n not in self.builder.topics]
        if missing:
            raise ConfigError(
                f"replace_policy: policy {policy.metadata.policy_type!r} needs input(s) {', '.join(missing)} that this "
                f"configuration does not subscribe to; reconfigure (cleanup + configure) to load it"
            )
        old = self.worker.set_policy(policy, timeout=timeout)
        self._infer_error = ""
        self.runtime.reset_counters()
        meta = policy.metadata
        self.get_logger().info(f"policy replaced: now {meta.policy_type!r} (checkpoint {meta.checkpoint_id or '-'})")
        return old

    # ------------------------------------------------------------------ inputs (ROS thread)
    def _route(self, topic: str, msg: Any) -> None:
        """Every input subscription: the message into the runtime at its receive time."""
        runtime = self.runtime
        if runtime is not None:
            runtime.route(topic, msg, self.now())

    def _on_tf_update(self, chain: ChainPoses, topic: str) -> None:
        got = chain.update(self.now())
        if got is not None:  # the same path as a PoseStamped on robot.ee_pose_topic
            t, tf = got
            self._route(topic, PoseStamped(header=header(t, self.cfg.robot.base_frame),
                                           pose=pose_msg(tf.translation, tf.rotation)))

    def _spec_robot(self):
        """robot config for the observation spec: the TF pose named when it replaces an empty ee_pose_topic."""
        robot = self.cfg.robot
        if ee_pose_from_tf(robot) and not robot.ee_pose_topic:
            return dataclasses.replace(robot, ee_pose_topic=tf_pose_topic(robot.base_frame, robot.ee_frame))
        return robot

    def _on_instruction(self, msg: String) -> None:
        runtime = self.runtime
        if runtime is None or runtime.route(self.cfg.robot.instruction_topic, msg, self.now()) != INSTRUCTION:
            return
        builder = runtime.builder
        if builder.instruction:
            self.get_logger().info(f"instruction: {builder.instruction!r}")
        else:
            self._warn(
                (self.cfg.robot.instruction_topic, "instruction"),
                f"{self.cfg.robot.instruction_topic}: empty instruction received; no chunks until a non-empty one "
                "arrives",
            )

    def _on_set_parameters(self, params: list) -> Any:
        """Run-time ``ros2 param set``: applied at once, or refused with the reason - never a silent success.

        Unconfigured, every key may be set (checked by type and range; all together at configure:
        fix a parameter and configure again). Configured: ``policy.rate_hz`` (the rate timer is
        re-created) and ``policy.instruction`` apply at once; ``policy.type/checkpoint/device/dtype``
        change only through ~/load_policy (which then sets them to what runs); any other key is
        refused until a cleanup. Values go through the schema.
        """
        try:
            if self.lifecycle_state == "unconfigured":
                runtime = RuntimeParameters(select_keys(POLICY_NODE_KEYS), section_checks=False)
            else:
                runtime = RuntimeParameters(
                    (*POLICY_NODE_WRITABLE, *POLICY_NODE_PINNED), POLICY_NODE_PINNED,
                    read_only_note=f"read at configure and the node is {self.lifecycle_state}: cleanup, set it, "
                                   "configure again")
            change = runtime.check(self.cfg, params)
            p = change.config.policy
            names = {prm.name for prm in params}
            if "policy.instruction" in names and len(p.instruction.strip()) > p.max_instruction_length:
                raise ConfigError(f"policy.instruction: {len(p.instruction.strip())} characters; expected at most "
                                  f"policy.max_instruction_length = {p.max_instruction_length}")
        except ConfigError as exc:
            self.get_logger().warning(f"parameter set refused: {exc}")
            return set_result(str(exc))
        self.cfg = change.config
        for key, (old, new) in change.changed.items():
            if key != "policy.instruction":
                self.get_logger().info(f"parameter {key}: {old!r} -> {new!r} (applied)")
        if "policy.rate_hz" in change.changed and self._rate_timer is not None:
            self.destroy_timer(self._rate_timer)
            self._rate_timer = self.create_timer(1.0 / p.rate_hz, self._on_rate_timer)
        # The instruction topic may have changed it since: apply a set even when the parameter is unchanged.
        if "policy.instruction" in names and self.builder is not None:
            if self.builder.set_instruction(p.instruction):
                self.get_logger().info(f"instruction (parameter): {p.instruction.strip()!r}")
        return set_result()

    def _on_executor_status(self, msg: ExecutorStatus) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        topic = self.cfg.policy.executor_status_topic
        try:
            due = runtime.route(topic, msg, self.now()) == DUE
        except (AttributeError, TypeError, ValueError) as exc:
            self._warn((topic, "status"), f"{topic}: {exc}")
            return
        if due and self._active and not runtime.worker.busy:
            runtime.worker.request()

    def _on_rate_timer(self) -> None:
        worker = self.worker
        if self._active and worker is not None:
            worker.request()

    # ------------------------------------------------------------------ inference (worker thread)
    def _on_infer_error(self, text: str) -> None:
        self._infer_error = text
        self._warn(("policy", "infer"), text)

    def _publish_chunk(self, record: InferenceRecord, msg: ActionChunkMsg) -> None:
        """The runtime's `emit`: a checked chunk's message goes out (none while inactive)."""
        pub, runtime = self._chunk_pub, self.runtime
        if not self._active or pub is None or runtime is None:
            return  # deactivated while inferring: an inactive node publishes no chunk
        pub.publish(msg)
        published = time.perf_counter()
        runtime.sent(self.now())
        self._last_chunk_wall = time.monotonic()
        if self.timing_log is not None:
            self.timing_log.append((record, published))
        preview = self._preview_pub
        # After the chunk (RViz can wait, the executor cannot), and only if someone is looking.
        if preview is not None and preview.get_subscription_count() > 0:
            poses = ENCODER.chunk_pose_array(record.chunk)
            poses.header = msg.header
            preview.publish(poses)
        if self._infer_error:
            self._infer_error = ""
            self.get_logger().info("inference recovered")

    # ------------------------------------------------------------------ status
    def _stuck(self) -> str:
        """Policy watchdog: why the inference in flight counts as hung ("" if none is). Logged once
        per hang; the status says it for as long as it lasts."""
        worker = self.worker
        limit = self.cfg.policy.inference_timeout
        running = worker.running_for(time.perf_counter()) if worker is not None else 0.0
        if running <= limit:
            if self._stuck_warned:
                self._stuck_warned = False
                self.get_logger().info("the hung inference returned")
            return ""
        text = f"inference running for {running:.1f} s (policy.inference_timeout = {limit:g} s)"
        if not self._stuck_warned:
            self._stuck_warned = True
            self.get_logger().error(text + "; no chunks until it returns")
        return text

    def _running_window(self) -> float:
        """How recent the last chunk must be to report RUNNING (s of wall time)."""
        p, meta = self.cfg.policy, self.worker.metadata if self.worker else None
        horizon = meta.horizon * meta.dt if meta is not None else 1.0
        return max(1.0, 3.0 / p.rate_hz if p.trigger == "rate" else 2.0 * horizon)

    def _state(self, now: float) -> tuple[int, str]:
        recent = ""
        if self._last_warning is not None and time.monotonic() - self._last_warning[1] < RECENT:
            recent = self._last_warning[0]
        st = self.lifecycle_state
        if st == "configuring":
            p = self.cfg.policy
            return PolicyStatus.STATE_LOADING, f"loading {p.type!r} from {p.checkpoint or '(default)'} on {p.device}"
        if self._load_error:
            return PolicyStatus.STATE_ERROR, self._load_error
        if st in ("unconfigured", "finalized"):
            return PolicyStatus.STATE_UNCONFIGURED, "not configured (lifecycle configure loads the policy)"
        stuck = self._stuck()
        if stuck:
            return PolicyStatus.STATE_ERROR, stuck
        if self._infer_error:
            return PolicyStatus.STATE_ERROR, self._infer_error
        if self.runtime is not None and self.runtime.chunk_error:
            return PolicyStatus.STATE_ERROR, self.runtime.chunk_error
        if st == "inactive":
            return PolicyStatus.STATE_READY, recent or "inactive (lifecycle activate starts inference)"
        last = self._last_chunk_wall
        if last is not None and time.monotonic() - last < self._running_window():
            return PolicyStatus.STATE_RUNNING, recent
        if recent:  # a rejected / dropped input says more than "waiting for inputs"
            return PolicyStatus.STATE_READY, recent
        waiting = self.builder.waiting_for(now) if self.builder is not None else ""
        if not waiting and self.trigger is not None:
            waiting = self.trigger.waiting_for(now)
        return PolicyStatus.STATE_READY, f"waiting: {waiting}" if waiting else ""

    def status_msg(self) -> PolicyStatus:
        """The PolicyStatus the node would publish now."""
        now = self.now()
        state, text = self._state(now)
        msg = PolicyStatus(header=header(now), state=state, state_name=STATE_NAMES[state], message=text)
        worker, builder = self.worker, self.builder
        meta = worker.metadata if worker is not None else None
        if meta is not None:
            msg.policy_id, msg.checkpoint_id, msg.device = meta.policy_id, meta.checkpoint_id, str(meta.device)
        msg.chunks_published = self.runtime.chunks_published if self.runtime is not None else 0
        msg.observation_age = -1.0
        if worker is not None:
            lat = worker.stats.latency
            msg.last_latency, msg.mean_latency, msg.p99_latency = lat.last, lat.mean, lat.p99
            msg.observations_used = worker.stats.used
        if builder is not None:
            msg.observations_dropped = builder.stats.dropped
            msg.observations_rejected = builder.stats.rejected
            newest = builder.newest_stamp
            if newest is not None:
                msg.observation_age = max(0.0, now - newest)
        return msg

    def publish_status(self) -> None:
        self._status_pub.publish(self.status_msg())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ros2 run vla_ros policy_node`` (also accepts --config/--robot/--policy/--set)."""
    args, base = node_main.parse_config(
        "policy_node", "Run a VLA policy on synchronized robot observations (docs/policy_node.md).", argv)
    if base is None:
        return 2
    rclpy.init(args=args)
    node = node_main.make_node("policy_node", lambda: PolicyNode(base))
    if node is None:
        return 2
    if node.cfg.policy.autostart:
        node.start()  # a failure is logged and reported as STATE_ERROR; the node stays up
    return node_main.spin(node, SingleThreadedExecutor())  # ~/load_policy runs beside it (ServiceThread)


if __name__ == "__main__":
    sys.exit(main())
