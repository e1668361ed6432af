"""Drive the live policy + executor nodes in lockstep with a recorded bag, on a simulated clock.

Why: "replay equals the robot" (issue 15) compares `vla-ros eval` on a bag with the real nodes fed
the same messages over DDS. The nodes run timers on sim time and threads of their own (inference,
the executor's off-loop decoder), so a free-running replay would depend on thread timing. Here the
test owns the clock: it steps sim time through every event time (control ticks, status snapshots,
triggers, message times) in order, and after each step spins until the consequences have settled
(bounded waits, each failure says what it waited for), so two runs give the same chunks and
commands.

Clocks: each node's ``/clock`` is remapped to a clock topic of its own (unique per graph, so no other
/clock publisher on the machine can move it), both carrying the same sim time. At a time t the
executor's clock moves first (its tick, then its status snapshot of t), then the policy node's (its
trigger at t then sees the status of t): the replay's order of simultaneous events (arrival, tick,
status, trigger). The tick comes before the status because the executor node creates its control
timer first (rclpy runs ready timers of a node in creation order).

Timer phase: rcl timers on sim time fire when the clock reaches their next call time, on the grid
of the clock value at their creation. The nodes are created while their clocks read 0 (no /clock
yet), so every timer grid is k * period, which holds bag.start (a whole number of seconds). The first
clock value is half a control period before bag.start (off every grid) so that one jump fires each
timer exactly once, before the bag; from there every timer time is stepped to, none jumped over.

Introspection of node internals is confined to the marked block of accessors below (the nodes are
being refactored; re-point those functions, nothing else).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

NS = 1_000_000_000
T0 = 100.0  # [s] bag start (a whole number of seconds: on every timer grid)
INSTRUCTION = "pick up the red block"
# Log-time offsets from their 10 ms grid: no input message coincides with a tick, status or trigger.
OFFSETS = {"joints": 0.002, "ee_pose": 0.003, "primary": 0.004, "wrist": 0.006, "instruction": 0.001}


# ------------------------------------------------------------------------------------- the bag
def write_lockstep_bag(path: str | Path, *, duration: float = 2.5, image_size: int = 32, state_rate: float = 50.0,
                       camera_rate: float = 10.0, seed: int = 0, ee_pose_delay: float = OFFSETS["ee_pose"]) -> Path:
    """A short sim_tabletop-like recording: two cameras, joint states, EE pose, one instruction, and the
    ground truth (/target_pose, /gripper_command, only read by the replay).

    The bag starts at `T0` exactly (the first ground-truth sample); every node input is logged a few
    ms off the 10 ms grid (`OFFSETS`), with header stamps on the grid (sensor time). The arm moves
    smoothly so the synchronizer, the policy and the executor all see changing inputs.
    `ee_pose_delay` (s, off the 10 ms grid): how long after its header stamp the EE pose is logged
    (received) - a late pose tells a feedback pose timed by its stamp from one timed by its arrival.
    """
    if round(ee_pose_delay * 1000) % 10 == 0:
        raise ValueError(f"ee_pose_delay: {ee_pose_delay} s puts the EE pose on the 10 ms tick grid; "
                         "expected an offset off it")
    from vla_ros.replay.bag_io import BagWriter
    from vla_ros.replay.synthetic import yaw_quat

    rng = np.random.default_rng(seed)
    events: list[tuple[float, str, Any]] = []
    with BagWriter(path, storage="mcap") as w:
        m = w.msgs

        def ee(t: float) -> tuple[np.ndarray, float]:
            s = t - T0
            return np.array([0.45 + 0.04 * np.sin(1.3 * s), 0.02 * s, 0.25 - 0.02 * s]), 0.1 * np.sin(0.7 * s)

        for k in range(int(round(duration * state_rate)) + 1):
            t = T0 + k / state_rate
            p, yaw = ee(t)
            finger = 0.04 * (0.5 + 0.4 * np.cos(0.9 * (t - T0)))
            events.append((t + OFFSETS["joints"], "/joint_states",
                           m.joint_state(t, ("sim_x", "sim_y", "sim_z", "sim_yaw", "sim_finger"), [*p, yaw, finger])))
            events.append((t + ee_pose_delay, "/ee_pose", m.pose_stamped(t, "base_link", p, yaw_quat(yaw))))
            events.append((t, "/target_pose", m.pose_stamped(t, "base_link", p + [0.02, 0.0, -0.01], yaw_quat(yaw))))
            events.append((t, "/gripper_command", m.float64(finger)))
        for k in range(int(round(duration * camera_rate)) + 1):
            t = T0 + k / camera_rate
            for cam in ("primary", "wrist"):
                img = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
                events.append((t + OFFSETS[cam], f"/camera/{cam}/image_raw", m.image(t, f"{cam}_camera", img)))
        w.write("/instruction", T0 + OFFSETS["instruction"], m.string(INSTRUCTION), latched=True)
        events.sort(key=lambda e: e[0])
        for t, topic, msg in events:
            w.write(topic, t, msg)
    return Path(path)


# ------------------------------------------------------------------------------------- records
@dataclass
class LiveRecord:
    """What the live graph produced: chunks (decoded ActionChunk) and one command row per tick."""

    chunks: list = field(default_factory=list)
    t: list = field(default_factory=list)
    position: list = field(default_factory=list)
    quat: list = field(default_factory=list)
    gripper: list = field(default_factory=list)
    ticks: int = 0
    requests: int = 0
    steps: int = 0  # sim-time steps taken
    rtc_guided: int = 0  # chunks the policy node inferred with RTC guidance
    chunk_problems: dict = field(default_factory=dict)  # chunks refused by the policy node, by code
    executor: dict = field(default_factory=dict)  # the executor core's chunk counters at the end

    def arrays(self) -> dict[str, np.ndarray]:
        return {"t": np.asarray(self.t, float), "position": np.asarray(self.position, float).reshape(-1, 3),
                "quat": np.asarray(self.quat, float).reshape(-1, 4), "gripper": np.asarray(self.gripper, float)}


class LockstepError(AssertionError):
    """A lockstep wait ran out: the message says what was awaited at which sim time."""


# ============================================================================ node introspection
# Every read of node state is here: the nodes' runtimes (`PolicyNode.runtime`: PolicyRuntime,
# `ExecutorNode.runtime`: ExecutorRuntime) and the counters they keep.
def policy_now_ns(policy_node) -> int:
    return policy_node.get_clock().now().nanoseconds


def policy_inputs_seen(policy_node) -> int:
    """Input messages the policy node's builder has judged (accepted + rejected)."""
    b = policy_node.builder
    return 0 if b is None else b.stats.received + b.stats.rejected


def policy_instruction(policy_node) -> str:
    b = policy_node.builder
    return "" if b is None else (b.instruction or "")


def policy_requests(policy_node) -> int:
    w = policy_node.worker
    return 0 if w is None else w.stats.requests


def policy_busy(policy_node) -> bool:
    w = policy_node.worker
    return w is not None and w.busy


def policy_chunks_published(policy_node) -> int:
    rt = policy_node.runtime
    return 0 if rt is None else rt.chunks_published


def policy_feedback_stamp(policy_node) -> float | None:
    rt = policy_node.runtime
    fb = None if rt is None else rt.feedback
    return None if fb is None else float(fb.stamp)


def policy_chunk_problems(policy_node) -> dict:
    return {k: v for k, v in dict(policy_node.chunk_problems).items() if v}


def policy_rtc_guided(policy_node) -> int:
    return int(policy_node.rtc_guided)


def executor_now_ns(executor_node) -> int:
    return executor_node.get_clock().now().nanoseconds


def executor_ticks(executor_node) -> int:
    """Control ticks so far."""
    return executor_node.runtime.ticks


def executor_commanding(executor_node) -> bool:
    """True once the core publishes a command every tick (it had a plausible pose)."""
    return executor_node.runtime.last_command is not None


def executor_decoded_waiting(executor_node) -> int:
    """Chunks decoded and waiting for the next tick to enter the plan."""
    return executor_node.runtime.queued


def executor_chunks_waiting(executor_node) -> int:
    """Chunks received and not yet in the plan (raw or decoded)."""
    return executor_node.chunks_waiting


def executor_chunks_in(executor_node) -> int:
    """Chunks the executor has decoded: waiting for the next tick, or submitted / refused by the core."""
    return executor_node.core.chunks_received + executor_decoded_waiting(executor_node)


def executor_gripper_sent(executor_node) -> bool:
    """The last tick's command carried a gripper value (published on the gripper topic)."""
    cmd = executor_node.runtime.last_command
    return cmd is not None and cmd.gripper is not None


def executor_pose_time(executor_node) -> float | None:
    return executor_node.runtime.feedback.time


def executor_counters(executor_node) -> dict:
    core = executor_node.core
    return {"received": core.chunks_received, "rejected": core.chunks_rejected, "stale": core.chunks_stale}
# ======================================================================== end of introspection


def _ns(t: float) -> int:
    return int(round(t * NS))


def _grid(start_ns: int, end_ns: int, period_ns: int) -> list[int]:
    return list(range(start_ns, end_ns + 1, period_ns))


class LockstepGraph:
    """The real PolicyNode and ExecutorNode in this process (sim time), a feeder and a probe node,
    spun by one executor in the calling thread. `run(bag)` replays the bag in lockstep."""

    def __init__(self, context, cfg, *, timeout: float = 30.0):
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import JointState

        from vla_ros.msg import ActionChunk, ExecutorStatus
        from vla_ros.ros.executor_node import ExecutorNode, preview_topic
        from vla_ros.ros.policy_node import PolicyNode

        self.cfg = cfg
        self.timeout = timeout
        sim = [Parameter("use_sim_time", value=True)]
        tag = uuid.uuid4().hex[:8]
        self.clock_topics = {"executor": f"/lockstep_{tag}/clock_executor", "policy": f"/lockstep_{tag}/clock_policy"}
        remap = {k: ["--ros-args", "-r", f"/clock:={topic}"] for k, topic in self.clock_topics.items()}
        self.executor_node = ExecutorNode(cfg, node_name=f"vla_executor_{tag}", context=context,
                                          parameter_overrides=sim, cli_args=remap["executor"])
        self.policy_node = PolicyNode(cfg, node_name=f"vla_policy_{tag}", context=context, parameter_overrides=sim,
                                      cli_args=remap["policy"])
        self.feeder = Node("lockstep_feeder", context=context)
        self.probe = Node("lockstep_probe", context=context)
        self.ex = SingleThreadedExecutor(context=context)
        for n in (self.executor_node, self.policy_node, self.feeder, self.probe):
            self.ex.add_node(n)
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self._clock_ex = self.feeder.create_publisher(Clock, self.clock_topics["executor"], best_effort)
        self._clock_pol = self.feeder.create_publisher(Clock, self.clock_topics["policy"], best_effort)
        self._Clock = Clock
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.record = LiveRecord()
        self.chunk_msgs: list = []
        self.statuses: list = []
        self._poses: list = []
        self._grips: list = []
        self._n_grips = 0
        ex_cfg = cfg.executor
        prefix = ex_cfg.preview_prefix if ex_cfg.dry_run else ""
        self.probe.create_subscription(ActionChunk, cfg.policy.chunk_topic, self.chunk_msgs.append, reliable)
        self.probe.create_subscription(ExecutorStatus, ex_cfg.status_topic, self.statuses.append, reliable)
        self.probe.create_subscription(PoseStamped, preview_topic(prefix, ex_cfg.pose_topic), self._poses.append,
                                       reliable)
        if ex_cfg.gripper_output != "joint_state":
            raise ValueError("executor.gripper_output: expected joint_state (stamped gripper commands)")
        self.probe.create_subscription(JointState, preview_topic(prefix, ex_cfg.gripper_joint_state_topic),
                                       self._grips.append, reliable)
        self._pubs: dict[str, Any] = {}
        self._latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                   durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

    # ---------------------------------------------------------------- waiting
    def wait(self, cond: Callable[[], bool], what: str, t_ns: int | None = None) -> None:
        deadline = time.monotonic() + self.timeout
        while not cond():
            if time.monotonic() > deadline:
                at = f" at sim time {t_ns / NS:.6f} s" if t_ns is not None else ""
                raise LockstepError(f"lockstep: waited {self.timeout:g} s{at} for {what}")
            self.ex.spin_once(timeout_sec=0.002)

    def _set_clock(self, pub, t_ns: int) -> None:
        msg = self._Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(t_ns, NS)
        pub.publish(msg)

    def _clock_to(self, which: str, t_ns: int) -> None:
        """Publish `t_ns` on that node's clock topic (again until heard: best effort); spin until its clock reads it."""
        node, pub, now = ((self.executor_node, self._clock_ex, executor_now_ns) if which == "executor"
                          else (self.policy_node, self._clock_pol, policy_now_ns))
        deadline = time.monotonic() + self.timeout
        while now(node) != t_ns:
            if time.monotonic() > deadline:
                raise LockstepError(f"lockstep: the {which} node's clock did not reach {t_ns / NS:.6f} s "
                                    f"(reads {now(node) / NS:.6f} s)")
            self._set_clock(pub, t_ns)
            for _ in range(5):
                self.ex.spin_once(timeout_sec=0.002)
                if now(node) == t_ns:
                    break

    # ---------------------------------------------------------------- set-up
    def start(self, first_ns: int, input_subscribers: dict[str, int], rtc_status: bool) -> None:
        """Activate the policy node while its clock reads 0 (timer grids k * period), wait for discovery
        (`input_subscribers`: topic -> subscriptions the feeder's publisher must see), then move both
        clocks to `first_ns` (off every grid): each timer fires once there, before the bag."""
        assert policy_now_ns(self.policy_node) == 0 and executor_now_ns(self.executor_node) == 0, "clock already set"
        assert self.policy_node.start(), "policy node did not configure + activate"
        from vla_ros.ros.executor_node import preview_topic

        cfg, en, pn = self.cfg, self.executor_node, self.policy_node
        ex = cfg.executor
        prefix = ex.preview_prefix if ex.dry_run else ""
        expected = {**input_subscribers, self.clock_topics["policy"]: 1, self.clock_topics["executor"]: 1}
        pubs = {self.clock_topics["policy"]: self._clock_pol, self.clock_topics["executor"]: self._clock_ex,
                **{t: self._pubs[t] for t in input_subscribers}}

        def discovered() -> bool:
            return (all(pubs[t].get_subscription_count() >= n for t, n in expected.items())
                    and pn.count_subscribers(cfg.policy.chunk_topic) >= 2
                    and en.count_subscribers(ex.status_topic) >= (2 if rtc_status else 1)
                    and en.count_subscribers(preview_topic(prefix, ex.pose_topic)) >= 1
                    and en.count_subscribers(preview_topic(prefix, ex.gripper_joint_state_topic)) >= 1)

        self.wait(discovered, "discovery (clocks, inputs, chunks, status, commands)")
        self._clock_to("executor", first_ns)
        self.wait(lambda: executor_ticks(self.executor_node) >= 1, "the first tick (before the bag)", first_ns)
        self._clock_to("policy", first_ns)
        self.wait(lambda: policy_requests(self.policy_node) >= 1 and not policy_busy(self.policy_node),
                  "the first inference request (before the bag, no observation)", first_ns)

    def publisher(self, topic: str, cls: Any, latched: bool = False):
        if topic not in self._pubs:
            self._pubs[topic] = self.feeder.create_publisher(cls, topic, self._latched if latched else self._reliable)
        return self._pubs[topic]

    # ---------------------------------------------------------------- the run
    def run(self, bag_path: str | Path, rtc_status: bool) -> LiveRecord:
        """Replay the bag's node inputs in lockstep; returns the chunks and commands."""
        from rclpy.serialization import deserialize_message

        from vla_ros.replay.bag_io import Bag
        from vla_ros.ros.conversions import rclpy_type

        cfg = self.cfg
        robot = cfg.robot
        inputs = {*robot.camera_topics, robot.joint_state_topic, robot.ee_pose_topic}
        instruction = robot.instruction_topic
        with Bag(bag_path) as bag:
            start_ns = _ns(bag.start)
            msgs = []
            for m in bag.messages([*inputs, instruction], raw=True):
                cls = rclpy_type(m.msgtype)
                msgs.append((m.t_ns, m.topic, deserialize_message(bytes(m.raw), cls), cls))
        assert start_ns % NS == 0, f"bag start {start_ns / NS} s is not a whole number of seconds"
        ctrl_ns = _ns(1.0 / cfg.executor.control_rate)
        status_ns = _ns(1.0 / cfg.executor.status_rate_hz)
        trig_ns = _ns(1.0 / cfg.policy.rate_hz)
        for period in (ctrl_ns, status_ns, trig_ns):
            assert NS % period == 0, f"timer period {period} ns does not divide a second"
        last_msg_ns = msgs[-1][0]
        ticks = set(_grid(start_ns, last_msg_ns, ctrl_ns))
        statuses = set(_grid(start_ns, last_msg_ns, status_ns))
        triggers = set(_grid(start_ns, last_msg_ns, trig_ns))
        by_time: dict[int, list] = {}
        for t, topic, msg, cls in msgs:
            by_time.setdefault(t, []).append((topic, msg, cls))
        overlap = set(by_time) & (ticks | statuses | triggers)
        assert not overlap, f"bag messages at timer times {sorted(overlap)[:3]}: move them off the grid"

        subscribers = {}
        for _, topic, _, cls in msgs:
            if topic not in subscribers:
                self.publisher(topic, cls, latched=topic == instruction)
                subscribers[topic] = 2 if topic == robot.ee_pose_topic else 1  # the EE pose: policy + executor
        pre = start_ns - ctrl_ns // 2  # off every grid: one jump fires each timer once, before the bag
        self.start(pre, subscribers, rtc_status)
        self._base = (executor_ticks(self.executor_node), policy_requests(self.policy_node))
        rec = self.record
        for t in sorted(ticks | statuses | triggers | set(by_time)):
            rec.steps += 1
            arriving = by_time.get(t, [])
            # 1. the executor's clock: its tick (then the chunks received before enter the plan), its status
            self._step_executor(t, t in ticks, t in statuses, rtc_status)
            # 2. the policy node's clock: the trigger (inference; a chunk waits in the executor's queue)
            if t in triggers or arriving:
                self._step_policy(t, t in triggers)
            # 3. the messages logged at t, received at t on both clocks
            if arriving:
                self._publish_inputs(t, arriving, inputs)
            extra_ticks = executor_ticks(self.executor_node) - self._base[0] - rec.ticks
            extra_requests = policy_requests(self.policy_node) - self._base[1] - rec.requests
            if extra_ticks or extra_requests:
                raise LockstepError(f"lockstep: at {t / NS:.6f} s: {extra_ticks} unexpected tick(s), {extra_requests} "
                                    "unexpected inference request(s): a timer off the grid?")
        pn, en = self.policy_node, self.executor_node
        rec.rtc_guided, rec.chunk_problems = policy_rtc_guided(pn), policy_chunk_problems(pn)
        rec.executor = executor_counters(en)
        return rec

    def _step_executor(self, t: int, tick: bool, status: bool, rtc_status: bool) -> None:
        en, pn, rec = self.executor_node, self.policy_node, self.record
        seen_status = len(self.statuses)
        self._clock_to("executor", t)
        if tick:
            rec.ticks += 1
            self.wait(lambda: executor_ticks(en) - self._base[0] >= rec.ticks and executor_chunks_waiting(en) == 0,
                      f"control tick {rec.ticks} (and the queued chunks entering the plan)", t)
            if executor_commanding(en):
                grip = executor_gripper_sent(en)
                self.wait(lambda: len(self._poses) > len(rec.t) and (not grip or len(self._grips) > self._n_grips),
                          "the command of this tick on the probe", t)
                self._take_command(t, grip)
        if status:
            self.wait(lambda: len(self.statuses) > seen_status, "the ExecutorStatus of this time on the probe", t)
            if rtc_status:
                self.wait(lambda: policy_feedback_stamp(pn) is not None and _ns(policy_feedback_stamp(pn)) == t,
                          "the policy node to hold the ExecutorStatus of this time", t)

    def _step_policy(self, t: int, trigger: bool) -> None:
        from vla_ros.core.msg_decode import chunk_from_msg

        en, pn, rec = self.executor_node, self.policy_node, self.record
        published = policy_chunks_published(pn)
        self._clock_to("policy", t)
        if not trigger:
            return
        rec.requests += 1
        self.wait(lambda: policy_requests(pn) - self._base[1] >= rec.requests and not policy_busy(pn),
                  f"inference request {rec.requests} to finish", t)
        n = len(rec.chunks) + policy_chunks_published(pn) - published
        self.wait(lambda: len(self.chunk_msgs) >= n and executor_chunks_in(en) >= n,
                  "the chunk on the probe and decoded in the executor's queue", t)
        rec.chunks.extend(chunk_from_msg(msg) for msg in self.chunk_msgs[len(rec.chunks):])

    def _publish_inputs(self, t: int, arriving: list, inputs: set[str]) -> None:
        en, pn, robot = self.executor_node, self.policy_node, self.cfg.robot
        seen = policy_inputs_seen(pn)
        for topic, msg, _ in arriving:
            self._pubs[topic].publish(msg)
        n_inputs = sum(1 for topic, _, _ in arriving if topic in inputs)
        self.wait(lambda: policy_inputs_seen(pn) >= seen + n_inputs, "the policy node to take the inputs", t)
        if any(topic == robot.ee_pose_topic for topic, _, _ in arriving):
            self.wait(lambda: executor_pose_time(en) is not None and _ns(executor_pose_time(en)) == t,
                      "the executor to take the EE pose", t)
        texts = [str(msg.data).strip() for topic, msg, _ in arriving if topic == robot.instruction_topic]
        if texts:
            self.wait(lambda: policy_instruction(pn) == texts[-1], "the instruction", t)

    def _take_command(self, t_ns: int, grip: bool) -> None:
        rec = self.record
        msg = self._poses[len(rec.t)]
        stamp = msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        if stamp != t_ns:
            raise LockstepError(f"lockstep: command stamped {stamp / NS:.6f} s at tick {t_ns / NS:.6f} s")
        p, q = msg.pose.position, msg.pose.orientation
        rec.t.append(stamp / NS)
        rec.position.append([p.x, p.y, p.z])
        rec.quat.append([q.x, q.y, q.z, q.w])
        if grip:
            js = self._grips[self._n_grips]
            self._n_grips += 1
            g_stamp = js.header.stamp.sec * NS + js.header.stamp.nanosec
            if g_stamp != t_ns:
                raise LockstepError(f"lockstep: gripper command stamped {g_stamp / NS:.6f} s at tick "
                                    f"{t_ns / NS:.6f} s")
            robot = self.cfg.robot
            span = robot.gripper_open - robot.gripper_closed
            rec.gripper.append((float(js.position[0]) - robot.gripper_closed) / span)
        else:
            rec.gripper.append(float("nan"))

    def close(self) -> None:
        self.ex.shutdown()
        for n in (self.probe, self.feeder, self.policy_node, self.executor_node):
            n.destroy_node()


# ------------------------------------------------------------------------------------- comparing
def _rot_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (rad) between orientations given as quaternions (x, y, z, w), sign-blind."""
    from vla_ros.core.rotations import quat_angle

    return np.atleast_1d(quat_angle(np.asarray(a, float), np.asarray(b, float)))


def chunk_differences(expected: list, actual: list, tol: float = 1e-6, names=("replay", "live")) -> list[str]:
    """Where two chunk sequences first differ (count, seq, stamp, actions); [] if they agree.

    Actions compare by position, gripper and rotation (quaternion distance: the wire carries
    quaternions, so the rotation vectors may legitimately differ by 2 pi)."""
    from vla_ros.core.rotations import rotvec_to_quat

    a_name, b_name = names
    out = []
    if len(expected) != len(actual):
        stamps = [[round(c.stamp, 4) for c in chunks] for chunks in (expected, actual)]
        out.append(f"{len(expected)} {a_name} chunks vs {len(actual)} {b_name} chunks "
                   f"({a_name} stamps {stamps[0]}, {b_name} {stamps[1]})")
    for i, (x, y) in enumerate(zip(expected, actual)):
        where = f"chunk {i} ({a_name} seq {x.seq} stamp {x.stamp:.6f} s, {b_name} seq {y.seq} stamp {y.stamp:.6f} s)"
        if x.seq != y.seq or abs(x.stamp - y.stamp) > 1e-9:
            out.append(f"{where}: seq/stamp differ")
            break
        if x.actions.shape != y.actions.shape:
            out.append(f"{where}: shapes {x.actions.shape} vs {y.actions.shape}")
            break
        pos = np.abs(x.actions[:, :3] - y.actions[:, :3]).max(axis=1)
        grip = np.abs(x.actions[:, 6] - y.actions[:, 6])
        rot = _rot_err(rotvec_to_quat(x.actions[:, 3:6]), rotvec_to_quat(y.actions[:, 3:6]))
        bad = np.flatnonzero((pos > tol) | (grip > tol) | (rot > tol))
        if bad.size:
            k = int(bad[0])
            out.append(f"{where}: first differs at step {k}: position {x.actions[k, :3]} vs {y.actions[k, :3]} "
                       f"(max |d| over the chunk {pos.max():.3g} m), gripper {x.actions[k, 6]:.6f} vs "
                       f"{y.actions[k, 6]:.6f}, rotation {rot[k]:.3g} rad")
            break
    return out


def command_differences(expected: dict, actual: dict, tol: float = 1e-6, names=("replay", "live")) -> list[str]:
    """Where two command series (t, position, quat, gripper per tick) first differ; [] if they agree."""
    a_name, b_name = names
    ta, tb = np.asarray(expected["t"], float), np.asarray(actual["t"], float)
    out = []
    if ta.size != tb.size:
        out.append(f"{ta.size} {a_name} commands ({ta[:1]}..{ta[-1:]}) vs {tb.size} {b_name} commands "
                   f"({tb[:1]}..{tb[-1:]})")
    n = min(ta.size, tb.size)
    if n == 0:
        return out
    dt = np.abs(ta[:n] - tb[:n])
    pos = np.abs(np.asarray(expected["position"])[:n] - np.asarray(actual["position"])[:n]).max(axis=1)
    rot = _rot_err(np.asarray(expected["quat"])[:n], np.asarray(actual["quat"])[:n])
    ga, gb = np.asarray(expected["gripper"], float)[:n], np.asarray(actual["gripper"], float)[:n]
    gdiff = np.where(np.isnan(ga) & np.isnan(gb), 0.0, np.abs(ga - gb))
    gdiff = np.where(np.isnan(gdiff), np.inf, gdiff)  # a gripper value on one side only
    bad = np.flatnonzero((dt > 1e-9) | (pos > tol) | (rot > tol) | (gdiff > tol))
    if bad.size:
        k = int(bad[0])
        out.append(
            f"command {k} ({a_name} t {ta[k]:.6f} s, {b_name} t {tb[k]:.6f} s): position "
            f"{np.asarray(expected['position'])[k]} vs {np.asarray(actual['position'])[k]} (|d| {pos[k]:.3g} m), "
            f"rotation {rot[k]:.3g} rad, gripper {ga[k]:.6f} vs {gb[k]:.6f}; {bad.size} of {n} commands differ, "
            f"max position |d| {pos.max():.3g} m"
        )
    return out
