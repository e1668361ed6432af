"""Replay a bag through the policy and the executor on the bag's own clock: what would the robot have done?

The loop drives the same ROS-free code the nodes run, with a simulated clock instead of ROS time:

- `ObservationBuilder` (per-message validation, approximate-time sync, max age, lazy decoding),
  fed every bag message at its bag (receive) time - the time the node would have seen it;
- `InferenceWorker.run_once` (newest observation, instruction changes reset the policy, chunk
  stamped with the observation, seq / latency filled) called synchronously when the trigger is
  due: ``policy.trigger`` ``rate`` every ``1 / policy.rate_hz``, ``queue`` from simulated
  ExecutorStatus snapshots at ``executor.status_rate_hz`` (the `QueueTrigger` of the node);
  Real-Time Chunking guidance (``policy.rtc``) comes from the same snapshots (`rtc_guidance`);
- `ChunkExecutor` ticking at ``executor.control_rate`` with the recorded EE pose as feedback;
  a chunk is submitted ``latency`` after its inference started (``replay.latency``: none,
  measured = the inference's own wall time, fixed = ``replay.fixed_latency``), and while it is
  "in flight" further triggers are skipped, as the node's worker skips them.

Nothing sleeps: the replay runs as fast as the policy allows, and with latency none or fixed it
is deterministic (same chunks, same commands).

Batched inference (``replay.batch_size``): when no chunk can depend on the executor - trigger
``rate``, no RTC, latency ``none`` (and no output bag) - a lane only *takes* the observation at
each trigger (`InferenceWorker.take_pending`, exactly the one the node would use) and records its
executor events (ticks with their feedback pose, chunk arrivals); every ``batch_size`` triggers it
runs them as one batched inference (`Policy.infer_batch`, resets between tasks as the node does)
and then replays the recorded executor events in order. Same observations, same noise, same
executor inputs as one-at-a-time inference, up to float rounding of the batched forward pass
(tested); a flow-matching chunk then costs a fraction of a batch-1 forward pass on CPU or GPU.
Reported inference latency is then each chunk's share of its batch; ``replay.batch_size = 1`` (or
``replay.latency = measured``) gives per-chunk latencies. The `hold` baseline runs in a second lane on the
same message stream (one pass over the bag for both). The replay is open loop: the recorded
robot did what it did; the commands are scored against what was actually commanded
(`vla_ros.replay.ground_truth`, `vla_ros.replay.metrics`).

    result = evaluate_bag("run1", cfg, policy)             # BagResult: lanes, ground truth, metrics
    result.metrics["policy"]["chunks"]["position_error_m"]["mean"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from vla_ros.core import msg_decode
from vla_ros.core.msg_decode import Problem
from vla_ros.core.msg_encode import MessageEncoder
from vla_ros.core.config import ConfigError, VlaConfig
from vla_ros.core.executor import ChunkExecutor, ExecutorStatusData
from vla_ros.core.executor_feedback import ExecutorFeedback, rtc_guidance
from vla_ros.core.inference_worker import InferenceRecord, InferenceWorker, PendingInference
from vla_ros.core.observation_builder import InputProblem, ObservationBuilder, ObservationSpec
from vla_ros.core.triggers import QueueTrigger
from vla_ros.core.types import ActionChunk, ChunkGuidance, EEPose, Observation
from vla_ros.policy.base import Policy
from vla_ros.policy.hold import HoldPolicy
from vla_ros.policy.registry import load_configured_policy
from vla_ros.replay import metrics as M
from vla_ros.replay.bag_io import (
    IMAGE_TYPES, JOINT_STATE_TYPES, POSE_TYPES, STRING_TYPES, Bag, BagError, BagWriter,
)
from vla_ros.replay.executor_process import ARRIVAL as REMOTE_ARRIVAL
from vla_ros.replay.executor_process import TICK as REMOTE_TICK
from vla_ros.replay.executor_process import CommandLog, ExecutorProcess, LaneExecution
from vla_ros.replay.ground_truth import GroundTruth, GroundTruthCollector, abs_topic, select_sources
from vla_ros.replay.fk_poses import FkPoses, fk_pose_topic, load_urdf
from vla_ros.replay.quality import quality_warnings
from vla_ros.replay.tf_poses import TF_TYPES, TfPoses, tf_pose_topic, use_tf

POLICY_LANE, HOLD_LANE = "policy", "hold"
PARALLEL_MIN_SECONDS = 10.0  # shorter bags keep the executors in process (see _executor_process)
# Order of simultaneous events: a chunk arriving, the control tick, a status snapshot, a trigger.
_ARRIVAL, _TICK, _STATUS, _TRIGGER = 0, 1, 2, 3


@dataclass(frozen=True)
class _SimFeedback(ExecutorFeedback):
    """An ExecutorStatus snapshot taken in-process: the plan is kept as an ExecutionPlan."""

    execution_plan: Any = None

    def plan(self, topic: str = "executor_status"):
        return self.execution_plan


@dataclass
class ChunkRecord:
    """One inference of a lane: the chunk, when it was triggered and when the executor got it.

    A batched lane creates it at the trigger with ``chunk`` None and fills it after the batch.
    """

    chunk: ActionChunk | None
    triggered_at: float  # sim time the inference started (observation taken)
    arrival: float  # sim time the chunk was submitted to the executor
    wall_latency: float  # [s] measured wall time (observation taken -> chunk ready)
    injected_latency: float  # [s] sim delay applied
    guided: bool = False
    accepted: bool = False
    reason: str = ""
    skipped: int = 0


@dataclass
class Timing:
    """Wall-clock seconds spent per part of the replay."""

    bag_io: float = 0.0  # reading + deserialising messages
    inputs: float = 0.0  # observation builder (validation, sync) + ground-truth collection
    policy: float = 0.0  # inference (observation decode + policy.infer)
    executor: float = 0.0  # ticks, submits, status snapshots (in this process)
    output: float = 0.0  # writing the output bag
    executor_wait: float = 0.0  # waiting at the end for the second executor process
    executor_remote: float = 0.0  # executor time in the second process (in parallel: not a part of total)
    total: float = 0.0

    def add(self, other: "Timing") -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, float]:
        d = dataclasses.asdict(self)
        d["other"] = max(0.0, self.total - sum(v for k, v in d.items() if k not in ("total", "executor_remote")))
        return d


class Lane:
    """One policy + its own builder, worker, trigger and executor on the shared simulated clock."""

    def __init__(self, name: str, policy: Policy, spec: ObservationSpec, cfg: VlaConfig, clock: Callable[[], float],
                 batch_size: int = 1, remote: ExecutorProcess | None = None, flush_every: int | None = None):
        self.name = name
        self.cfg = cfg
        self.policy = policy
        self.clock = clock
        self.problems: Counter = Counter()
        self.problem_examples: dict[tuple[str, str], str] = {}
        self.errors: list[str] = []
        self.builder = ObservationBuilder.from_config(spec, cfg, on_problem=self._on_problem)
        self.cameras = {c.topic: c.name for c in spec.cameras}
        self.has_joints = bool(spec.joint_state_topic)
        self.has_ee = bool(spec.ee_pose_topic)
        p = cfg.policy
        self.worker = InferenceWorker(
            self.builder.take, lambda record: None, clock=clock, guidance=self._guidance if p.rtc else None,
            default_frame=cfg.robot.base_frame, on_error=self._on_error, name=f"replay-{name}",
        )
        policy.reset()
        self.worker.set_policy(policy)
        self.meta = policy.metadata
        self.executor = ChunkExecutor.from_config(cfg)
        self.trigger = QueueTrigger(
            p.queue_threshold, ack_timeout=p.queue_ack_timeout, status_timeout=p.executor_status_timeout,
            topic=p.executor_status_topic,
        ) if p.trigger == "queue" else None
        self.feedback: _SimFeedback | None = None
        self.needs_status = p.trigger == "queue" or p.rtc
        self.in_flight: ChunkRecord | None = None
        self.records: list[ChunkRecord] = []
        self.requests = 0
        self.no_observation_times: list[float] = []  # triggers that found no observation
        self.no_observation_why = ""  # what the builder waited for at the first of them
        self.skipped_busy = 0
        self.guided = 0
        self._guided_now = False
        self.rtc_notes: Counter = Counter()
        # commands
        self.commands = CommandLog()
        self.status: ExecutorStatusData | None = None
        self.timing = Timing()
        # batched inference (module docstring): taken observations, and executor events to replay
        self.batch_size = max(1, int(batch_size))
        # how many observations wait before a batch runs (hold: at once, its "inference" is free and
        # its events then stream to the executor process instead of piling up for the end)
        self.flush_every = self.batch_size if flush_every is None else max(1, int(flush_every))
        self._pending: list[tuple[PendingInference, ChunkRecord]] = []
        self._deferred: list[tuple] = []
        # batched lanes may replay their executor events in a second process (executor_process)
        self.remote = remote if self.batch_size > 1 else None
        self._commands: dict[str, np.ndarray] | None = None

    # ---------------------------------------------------------------- callbacks
    def _on_problem(self, p: InputProblem) -> None:
        self.problems[(p.topic, p.code)] += 1
        self.problem_examples.setdefault((p.topic, p.code), p.message)

    def _on_error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)

    def _guidance(self, obs: Observation, meta: Any) -> ChunkGuidance | None:
        p = self.cfg.policy
        frame = (obs.ee_pose.frame_id if obs.ee_pose is not None else "") or self.cfg.robot.base_frame
        guidance, why = rtc_guidance(
            self.feedback, obs, horizon=meta.horizon, dt=meta.dt, max_guidance_weight=p.rtc_max_guidance,
            now=self.clock(), max_status_age=p.executor_status_timeout, frame_id=frame, topic=p.executor_status_topic,
        )
        self._guided_now = guidance is not None
        if guidance is None:
            self.rtc_notes[why] += 1
        return guidance

    # ---------------------------------------------------------------- events
    def infer(self, now: float, latency_mode: str, fixed_latency: float) -> ChunkRecord | None:
        """The trigger fired at `now`: one inference unless one is in flight."""
        self.requests += 1
        if self.in_flight is not None:
            self.skipped_busy += 1
            return None
        t0 = time.perf_counter()
        missed = self.worker.stats.no_observation
        if self.batch_size > 1:
            pending = self.worker.take_pending()
            self.timing.policy += time.perf_counter() - t0
            if pending is None:
                self._no_observation(now, missed)
                return None
            rec = ChunkRecord(None, now, now, 0.0, 0.0)  # latency none: it arrives now, filled at the flush
            self._pending.append((pending, rec))
            self.in_flight = rec
            return rec
        self._guided_now = False
        record: InferenceRecord | None = self.worker.run_once()
        self.timing.policy += time.perf_counter() - t0
        if record is None:
            self._no_observation(now, missed)
            return None
        wall = float(record.chunk.inference_latency)
        injected = {"none": 0.0, "measured": wall, "fixed": fixed_latency}[latency_mode]
        if self._guided_now:
            self.guided += 1
        rec = ChunkRecord(record.chunk, now, now + injected, wall, injected, guided=self._guided_now)
        self.in_flight = rec
        return rec

    def _no_observation(self, now: float, before: int) -> None:
        if self.worker.stats.no_observation > before:
            if not self.no_observation_times:
                self.no_observation_why = self.builder.waiting_for(now)
            self.no_observation_times.append(now)

    def deliver(self, now: float) -> ChunkRecord:
        rec, self.in_flight = self.in_flight, None
        assert rec is not None
        if self.batch_size > 1:
            self._deferred.append((_ARRIVAL, now, rec))
            return rec
        return self._submit(now, rec)

    def _submit(self, now: float, rec: ChunkRecord) -> ChunkRecord:
        t0 = time.perf_counter()
        res = self.executor.submit(rec.chunk, now)
        self.timing.executor += time.perf_counter() - t0
        rec.accepted, rec.reason, rec.skipped = res.accepted, res.reason, res.skipped
        self.records.append(rec)
        if self.trigger is not None:
            self.trigger.on_chunk(now)
        return rec

    def tick(self, now: float, pose: EEPose | None, pose_time: float | None):
        if self.batch_size > 1:
            self._deferred.append((_TICK, now, pose, pose_time))
            return None
        return self._tick(now, pose, pose_time)

    def _tick(self, now: float, pose: EEPose | None, pose_time: float | None):
        t0 = time.perf_counter()
        cmd = self.executor.tick(now, pose, pose_time)
        self.timing.executor += time.perf_counter() - t0
        if cmd is not None:
            self.commands.add(now, cmd)
        return cmd

    def snapshot(self, now: float) -> bool:
        """A simulated ExecutorStatus at `now`; True if the queue trigger is due."""
        t0 = time.perf_counter()
        st = self.executor.status(now)
        self.timing.executor += time.perf_counter() - t0
        self.feedback = _SimFeedback(
            stamp=now, state=int(st.state), remaining_time=float(st.remaining_time), chunks_received=int(st.chunks_received),
            chunk_seq=int(st.chunk_seq), policy_id=st.policy_id, frame_id=st.frame_id, source=None, execution_plan=st.plan,
        )
        if self.trigger is None:
            return False
        self.trigger.on_status(self.feedback)
        return self.in_flight is None and self.trigger.due(now)

    # ---------------------------------------------------------------- inputs
    def on_message(self, kind: str, topic: str, msg: Any, now: float, decoded: Any = None) -> None:
        """One bag message in its role; `decoded` is an EE pose already decoded (shared by the lanes)."""
        b = self.builder
        if kind == "camera":
            cam = self.cameras.get(topic)
            if cam is not None:
                b.add_image(cam, msg, now)
        elif kind == "joints":
            if self.has_joints:
                b.add_joint_state(msg, now)
        elif kind == "ee_pose":
            if self.has_ee:
                b.add_ee_pose(msg, now, decoded)
        elif kind == "instruction":
            b.set_instruction(str(msg.data))

    def flush(self, force: bool = False) -> None:
        """Batched lane: once ``batch_size`` observations are waiting (or `force`), infer them in one
        batch and replay the executor events recorded meanwhile, in their order."""
        if self.batch_size <= 1 or (len(self._pending) < self.flush_every and not force):
            return
        if self._pending:
            t0 = time.perf_counter()
            records = self.worker.run_pending([p for p, _ in self._pending])
            self.timing.policy += time.perf_counter() - t0
            for (_, rec), record in zip(self._pending, records):
                if record is not None:
                    rec.chunk = record.chunk
                    rec.wall_latency = float(record.chunk.inference_latency)
            self._pending = []
        if self.remote is not None:
            self._send_remote()
            return
        for event in self._deferred:
            if event[0] == _TICK:
                self._tick(*event[1:])
            elif event[2].chunk is not None:  # an arrival; a failed inference (reported) delivers nothing
                self._submit(event[1], event[2])
        self._deferred = []

    def _send_remote(self) -> None:
        events = []
        for event in self._deferred:
            if event[0] == _TICK:
                _, now, pose, pose_time = event
                events.append((REMOTE_TICK, now, None if pose is None else pose.position.tolist(),
                               None if pose is None else pose.orientation.tolist(), pose_time))
            elif event[2].chunk is not None:
                events.append((REMOTE_ARRIVAL, event[1], event[2].chunk))
                self.records.append(event[2])  # accepted / reason / skipped come back at the end
        self._deferred = []
        self.remote.send(self.name, events)

    def apply_remote(self, result: LaneExecution) -> None:
        """The second process's executor output for this lane (after `finish`)."""
        self._commands = result.commands
        for rec, (accepted, reason, skipped) in zip(self.records, result.submits):
            rec.accepted, rec.reason, rec.skipped = accepted, reason, skipped
        self.status = result.status
        self.timing.executor_remote += result.seconds

    def finish(self, now: float) -> None:
        self.flush(force=True)
        if self.remote is None:
            self.status = self.executor.status(now)

    def arrays(self) -> dict[str, np.ndarray]:
        """The commands at every tick (from the second process when the executor ran there)."""
        return self._commands if self._commands is not None else self.commands.arrays()


@dataclass
class BagResult:
    """Everything one bag's evaluation produced (metrics per lane, raw series for the plots)."""

    path: Path
    name: str
    duration: float
    start: float
    end: float
    ground_truth: GroundTruth
    lanes: dict[str, Lane]
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)
    output_bag: str = ""
    messages: int = 0


def _lane_spec(robot, policy: Policy) -> ObservationSpec:
    return ObservationSpec.from_config(robot, policy.metadata)


def hold_for(policy: Policy) -> HoldPolicy:
    """The `hold` baseline with the same horizon and dt as `policy`."""
    meta = policy.metadata
    return HoldPolicy(horizon=meta.horizon, dt=meta.dt)


def _required_topics(specs: list[ObservationSpec]) -> dict[str, tuple[tuple[str, ...], str]]:
    wanted: dict[str, tuple[tuple[str, ...], str]] = {}

    def want(topic: str, types: tuple[str, ...], why: str) -> None:
        if topic in wanted and wanted[topic][0] != types:
            raise ConfigError(f"{why}: topic {topic} is also the {wanted[topic][1]}; one topic cannot be both")
        wanted[topic] = (types, why)

    for spec in specs:
        for cam in spec.cameras:
            want(cam.topic, IMAGE_TYPES, f"camera {cam.name!r}, robot.camera_topics")
        if spec.joint_state_topic:
            want(spec.joint_state_topic, JOINT_STATE_TYPES, "robot.joint_state_topic")
        if spec.ee_pose_topic:
            want(spec.ee_pose_topic, POSE_TYPES, "robot.ee_pose_topic")
    return wanted


# Report labels of the input problems, keyed by the typed code (msg_decode.Problem)
PROBLEM_LABELS: dict[Problem, str] = {
    Problem.STAMP: "skipped (header stamp unset, ahead of the clock, or going backwards)",
    Problem.STALE: "observations dropped as too old (sync.max_age)",
    Problem.ENCODING: "skipped (unsupported encoding)",
    Problem.SIZE: "skipped (malformed image / joint state)",
    Problem.TOO_LARGE: "skipped (image larger than sync.max_image_pixels)",
    Problem.NONFINITE: "skipped (NaN or inf)",
    Problem.QUATERNION: "skipped (not a unit quaternion)",
    Problem.MISSING_JOINT: "skipped (joint missing)",
    Problem.DUPLICATE_JOINT: "skipped (duplicate joint names)",
    Problem.FRAME: "skipped (wrong frame_id)",
    Problem.IMPLAUSIBLE: "skipped (implausible end-effector pose)",
    Problem.DECODE: "skipped (image does not decode)",
    Problem.INSTRUCTION: "observations rejected (empty instruction)",
    Problem.CLOCK: "synchronizer resets (bag time jumped back)",
}


def _problem_warnings(lane: Lane) -> list[str]:
    out = []
    labels = PROBLEM_LABELS
    for (topic, code), n in sorted(lane.problems.items()):
        example = lane.problem_examples.get((topic, code), "")
        out.append(f"[{lane.name}] {topic}: {n} message(s) {labels.get(code, code)}; e.g. {example}")
    return out


def inference_batch_size(cfg: VlaConfig, *, writing: bool = False) -> int:
    """``replay.batch_size`` where no chunk can depend on the executor or on wall time, else 1
    (queue trigger and RTC read the executor state; measured/fixed latency put chunks in flight;
    the output bag is written in time order)."""
    p, r = cfg.policy, cfg.replay
    if p.trigger != "rate" or p.rtc or r.latency != "none" or writing:
        return 1
    return r.batch_size


@contextlib.contextmanager
def _executor_process(cfg: VlaConfig, batch: int, seconds: float) -> Iterator[ExecutorProcess | None]:
    """The second executor process when it can help, else None: batched, ``replay.parallel_executor``,
    2+ CPUs, and at least `PARALLEL_MIN_SECONDS` of bag (starting the process costs ~0.2-0.3 s of
    interpreter start-up, more than a short bag's executor time).

    While it runs it has a core of its own: torch's intra-op pool (if torch is in use) is capped at
    the other cores, so the two do not fight over one (measured on 2 cores: inference ~25 % faster).
    """
    cpus = os.cpu_count() or 1
    if batch <= 1 or not cfg.replay.parallel_executor or cpus < 2 or seconds < PARALLEL_MIN_SECONDS:
        yield None
        return
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else 0
    if threads > cpus - 1:
        torch.set_num_threads(cpus - 1)
    try:
        with ExecutorProcess(cfg, [POLICY_LANE, HOLD_LANE]) as remote:
            yield remote
    finally:
        if threads > cpus - 1:
            torch.set_num_threads(threads)


def evaluate_bag(path: str | Path, cfg: VlaConfig, policy: Policy, *, baseline: Policy | None = None,
                 progress: bool = True, out_bag: str | Path | None = None) -> BagResult:
    """Replay one bag with `policy` and the `hold` baseline; BagError if the bag cannot be evaluated.

    The policies are warmed up first (`Policy.warmup`, also for the batch size used): one-time
    costs such as tracing are neither inference latency (the node warms up at load too) nor part
    of the replay time in ``timing`` (they are paid once per process, not per bag).
    """
    baseline = baseline or hold_for(policy)
    batch = inference_batch_size(cfg, writing=out_bag is not None)
    for pol in (policy, baseline):
        pol.warmup()
        if batch > 1:
            pol.warmup(batch)
    t_start_wall = time.perf_counter()
    path = Path(path)
    warnings: list[str] = []

    with contextlib.ExitStack() as stack:
        bag = stack.enter_context(Bag(path))
        tf_mode = use_tf(cfg.robot, bag.topics)
        if tf_mode:  # the EE pose comes from /tf + /tf_static (tf_poses), under a name of its own
            cfg = cfg.with_overrides({"robot.ee_pose_topic": tf_pose_topic(cfg.robot.base_frame, cfg.robot.ee_frame)})
        elif cfg.robot.ee_pose_source == "fk":  # from the joint states by forward kinematics (fk_poses)
            cfg = cfg.with_overrides({"robot.ee_pose_topic": fk_pose_topic(cfg.robot.base_frame, cfg.robot.ee_frame)})
        try:
            return _evaluate_open_bag(bag, stack, path, cfg, policy, baseline, batch, progress, out_bag, tf_mode,
                                      t_start_wall, warnings)
        except BagError as exc:  # the bag's notes (e.g. no metadata.yaml) stay with its skip
            exc.notes = tuple(bag.notes)
            raise


def _evaluate_open_bag(bag: Bag, stack: contextlib.ExitStack, path: Path, cfg: VlaConfig, policy: Policy,
                       baseline: Policy, batch: int, progress: bool, out_bag, tf_mode: bool, t_start_wall: float,
                       warnings: list[str]) -> BagResult:
    robot = cfg.robot
    spec = _lane_spec(robot, policy)
    ee_topic = abs_topic(robot.ee_pose_topic)
    # hold needs the EE pose (and the gripper from the joint states) only; its observations keep the
    # policy's stamps (the pivot camera).
    hold_joints = abs_topic(robot.joint_state_topic) if robot.gripper_joint else ""
    hold_spec = dataclasses.replace(spec, cameras=spec.cameras[:1], joint_state_topic=hold_joints,
                                    ee_pose_topic=ee_topic) if ee_topic else spec
    tf_poses = None
    virtual: dict[str, str] = {}
    if tf_mode:
        tf_topics = [t for t in (abs_topic(robot.tf_topic), abs_topic(robot.tf_static_topic)) if t in bag.topics]
        bad = [f"{t} has type {bag.topics[t].msgtype}" for t in tf_topics if bag.topics[t].msgtype not in TF_TYPES]
        if not tf_topics or bad:
            raise BagError(
                f"bag {path}: the end-effector pose is to come from TF (robot.ee_pose_source {robot.ee_pose_source}), "
                f"but " + ("; ".join(bad) + ", expected tf2_msgs/msg/TFMessage" if bad else
                           f"the bag has neither {robot.tf_topic} nor {robot.tf_static_topic}")
                + f". Bag topics: {bag.topic_list()}"
            )
        tf_poses = TfPoses(robot, MessageEncoder(bag.typestore.types))
        virtual[ee_topic] = POSE_TYPES[0]
    fk_poses = None
    js_topic = abs_topic(robot.joint_state_topic)
    if robot.ee_pose_source == "fk":
        if not js_topic or js_topic not in bag.topics:
            raise BagError(f"bag {path}: robot.ee_pose_source fk computes the pose from the joint states, but "
                           f"{js_topic or 'robot.joint_state_topic (empty)'} is not in the bag")
        fk_poses = FkPoses(robot, load_urdf(robot, bag), MessageEncoder(bag.typestore.types))
        virtual[ee_topic] = POSE_TYPES[0]

    span = bag.end - bag.start if cfg.replay.max_duration <= 0 else min(bag.end - bag.start, cfg.replay.max_duration)
    remote = stack.enter_context(_executor_process(cfg, batch, span))
    warnings.extend(bag.notes)
    wanted = {t: w for t, w in _required_topics([spec]).items() if t not in virtual}
    bag.require(wanted)
    hold_ok = bool(ee_topic) and (ee_topic in bag.topics or ee_topic in virtual)
    if not hold_ok:
        warnings.append(f"hold baseline skipped: it needs the EE pose ({ee_topic or 'robot.ee_pose_topic is empty'}) in the bag")
    instr_topic = abs_topic(robot.instruction_topic)
    has_instr = bool(instr_topic) and instr_topic in bag.topics and bag.topics[instr_topic].msgtype in STRING_TYPES
    if not has_instr and not cfg.policy.instruction and not cfg.policy.allow_empty_instruction:
        raise BagError(
            f"bag {path}: no instruction: the bag has no {instr_topic or 'instruction topic'} (std_msgs/String) and "
            f"policy.instruction is empty; pass --set policy.instruction='...' (or policy.allow_empty_instruction=true)"
        )
    sources = select_sources(bag, cfg, virtual=virtual)
    collector = GroundTruthCollector(sources, cfg)

    clock_now = [0.0]

    def clock() -> float:
        return clock_now[0]

    lanes: dict[str, Lane] = {POLICY_LANE: Lane(POLICY_LANE, policy, spec, cfg, clock, batch, remote)}
    if hold_ok:
        lanes[HOLD_LANE] = Lane(HOLD_LANE, baseline, hold_spec, cfg, clock, batch, remote, flush_every=1)

    # Topic roles
    roles: dict[str, list[str]] = {}
    for lane in lanes.values():
        for topic in lane.cameras:
            roles.setdefault(topic, []).append("camera")
    if robot.joint_state_topic:
        roles.setdefault(abs_topic(robot.joint_state_topic), []).append("joints")
    if ee_topic:
        roles.setdefault(ee_topic, []).append("ee_pose")
    if has_instr:
        roles.setdefault(instr_topic, []).append("instruction")
    for t in sources.topics():
        roles.setdefault(t, []).append("gt")
    if tf_poses is not None:
        roles.setdefault(abs_topic(robot.tf_topic), []).append("tf")
        roles.setdefault(abs_topic(robot.tf_static_topic), []).append("tf_static")
    if fk_poses is not None:
        roles.setdefault(js_topic, []).append("fk")
    virtual_roles = {t: sorted(set(r)) for t, r in roles.items() if t in virtual}
    roles = {t: sorted(set(r)) for t, r in roles.items() if t in bag.topics}

    writer = encode = None
    if out_bag is not None:
        writer = BagWriter(out_bag, storage="mcap", store=bag.typestore)
        encode = MessageEncoder(writer.store.types)  # the nodes' message layout, over the bag's classes
        for t in bag.topics.values():
            if t.msgtype not in bag.unknown_types:
                writer.add_topic(t.name, t.msgtype, latched=t.msgtype in STRING_TYPES)

    p = cfg.policy
    r = cfg.replay
    ctrl_dt = 1.0 / cfg.executor.control_rate
    trig_dt = 1.0 / p.rate_hz
    status_dt = 1.0 / cfg.executor.status_rate_hz
    start = bag.start
    stop = bag.end if r.max_duration <= 0 else min(bag.end, start + r.max_duration)
    state = {name: {"tick": 0, "trig": 0, "status": 0} for name in lanes}
    pose_state: list[Any] = [None, None]  # newest EE pose (the executor's feedback) and its stamp

    def decode_pose(msg: Any) -> EEPose | None:
        """Each EE pose message is decoded once, for the feedback and for every lane's builder."""
        try:
            frame = str(msg.header.frame_id) or robot.base_frame
            pose = msg_decode.pose_to_ee(msg.pose, frame, ee_topic)
            stamp = msg_decode.stamp_to_sec(msg.header.stamp)
        except (msg_decode.MessageError, AttributeError, TypeError, ValueError):
            return None  # the builders report malformed poses; the feedback keeps the previous one
        pose_state[0], pose_state[1] = pose, stamp
        return pose

    def current_pose() -> tuple[EEPose | None, float | None]:
        return pose_state[0], pose_state[1]
    timing = Timing()

    def next_event(name: str, lane: Lane) -> tuple[float, int]:
        s = state[name]
        best = (start + s["tick"] * ctrl_dt, _TICK)
        if lane.in_flight is not None:
            best = min(best, (lane.in_flight.arrival, _ARRIVAL))
        if lane.needs_status:
            best = min(best, (start + s["status"] * status_dt, _STATUS))
        if lane.trigger is None:
            best = min(best, (start + s["trig"] * trig_dt, _TRIGGER))
        return best

    def run_events(until: float) -> None:
        while True:
            best = None
            for name, lane in lanes.items():
                tk = next_event(name, lane)
                if best is None or tk < best[0]:
                    best = (tk, name)
            (t, kind), name = best
            if t > until + 1e-12:
                return
            clock_now[0] = t
            lane = lanes[name]
            s = state[name]
            if kind == _ARRIVAL:
                rec = lane.deliver(t)
                if writer is not None:
                    t0 = time.perf_counter()
                    _write_chunk(writer, encode, r.output_prefix, name, rec)
                    timing.output += time.perf_counter() - t0
            elif kind == _TICK:
                s["tick"] += 1
                cmd = lane.tick(t, *current_pose())
                if writer is not None and cmd is not None:
                    t0 = time.perf_counter()
                    writer.write(f"{r.output_prefix}/{name}/command", t,
                                 encode.pose_stamped(t, cmd.frame_id, cmd.position, cmd.orientation))
                    timing.output += time.perf_counter() - t0
            elif kind == _STATUS:
                s["status"] += 1
                if lane.snapshot(t):
                    _start_inference(lane, t)
            else:
                s["trig"] += 1
                _start_inference(lane, t)
                lane.flush()

    def _start_inference(lane: Lane, t: float) -> None:
        # A chunk without latency is delivered by the arrival event at the same time, next.
        lane.infer(t, r.latency, r.fixed_latency)

    def dispatch(role: str, topic: str, msg: Any, now: float) -> None:
        if role == "gt":
            collector.add(topic, now, msg)
            return
        if role in ("camera", "joints"):
            arrivals.setdefault(topic, []).append(now)
        decoded = decode_pose(msg) if role == "ee_pose" else None
        for lane in lanes.values():
            lane.on_message(role, topic, msg, now, decoded)

    arrivals: dict[str, list[float]] = {}  # receive times of the cameras and joint states (gap warnings)
    total = sum(max(0, bag.topics[t].count) for t in roles) or None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"eval {path.name}", unit="msg", leave=False, mininterval=0.25)
    n_msgs = 0
    it = bag.messages(list(roles), raw=writer is not None)
    t_io = time.perf_counter()
    for m in it:
        timing.bag_io += time.perf_counter() - t_io
        if m.t > stop + 1e-9:
            break
        run_events(m.t)
        clock_now[0] = max(clock_now[0], m.t)
        now = m.t
        t0 = time.perf_counter()
        for role in roles.get(m.topic, ()):
            if role in ("tf", "tf_static"):
                for pose_msg in tf_poses.add(m.msg, static=role == "tf_static", now=now):
                    for vrole in virtual_roles.get(ee_topic, ()):
                        dispatch(vrole, ee_topic, pose_msg, now)
                continue
            if role == "fk":
                for pose_msg in fk_poses.add(m.msg):
                    for vrole in virtual_roles.get(ee_topic, ()):
                        dispatch(vrole, ee_topic, pose_msg, now)
                continue
            dispatch(role, m.topic, m.msg, now)
        timing.inputs += time.perf_counter() - t0
        if writer is not None and m.raw is not None:
            t0 = time.perf_counter()
            writer.write_raw(m.topic, m.t_ns, m.raw)
            timing.output += time.perf_counter() - t0
        n_msgs += 1
        if bar is not None:
            bar.update(1)
        t_io = time.perf_counter()
    if bar is not None:
        bar.close()
    if bag.truncated:
        warnings.append(bag.truncated)
    end = min(stop, clock_now[0]) if n_msgs else start
    run_events(end)
    for lane in lanes.values():
        lane.finish(end)
    if remote is not None:
        t0 = time.perf_counter()
        for name, execution in remote.finish(end).items():
            if name in lanes:
                lanes[name].apply_remote(execution)
        timing.executor_wait = time.perf_counter() - t0
    for lane in lanes.values():
        timing.policy += lane.timing.policy
        timing.executor += lane.timing.executor
        timing.executor_remote += lane.timing.executor_remote
    if writer is not None:
        writer.close()

    if tf_poses is not None and tf_poses.emitted == 0:
        raise BagError(f"bag {path}: no end-effector pose from TF: {tf_poses.why_none()}")
    if fk_poses is not None and fk_poses.emitted == 0:
        raise BagError(f"bag {path}: no end-effector pose by forward kinematics: {fk_poses.why_none()}")
    if fk_poses is not None and fk_poses.failures:
        warnings.append(f"forward kinematics: {fk_poses.failures} joint state(s) without a pose; e.g. {fk_poses.last_error}")
    if tf_poses is not None and tf_poses.buffer.problems:
        warnings.append(f"TF: {tf_poses.buffer.problems} transform(s) refused; e.g. {tf_poses.buffer.last_problem}")
    gt = collector.build()
    if collector.problems:
        warnings.append(f"ground truth: {collector.problems} message(s) could not be read; e.g. {collector.last_problem}")
    if gt.empty:
        raise BagError(f"bag {path}: ground truth ({sources.describe()}) has no usable samples")
    pol = lanes[POLICY_LANE]
    if not pol.records:
        why = pol.errors[-1] if pol.errors else (pol.builder.waiting_for(end) or "no synchronized observation")
        extra = "; ".join(_problem_warnings(pol)[:3])
        raise BagError(f"bag {path}: the policy produced no chunk: {why}" + (f" ({extra})" if extra else ""))
    for lane in lanes.values():
        warnings.extend(_problem_warnings(lane))
        if lane.errors:
            warnings.append(f"[{lane.name}] {len(lane.errors)} inference error(s); last: {lane.errors[-1]}")
    timing.total = time.perf_counter() - t_start_wall
    result = BagResult(path, path.name, end - start, start, end, gt, lanes, {}, warnings, timing,
                       str(out_bag) if out_bag is not None else "", n_msgs)
    result.metrics = compute_metrics(result, cfg)
    quality = quality_warnings(result, cfg, arrivals)
    result.warnings.extend(quality)
    result.metrics["warnings"].extend(quality)
    return result


def _write_chunk(writer: BagWriter, encode: MessageEncoder, prefix: str, lane: str, rec: ChunkRecord) -> None:
    writer.write(f"{prefix}/{lane}/action_chunk", rec.arrival, encode.action_chunk(rec.chunk))
    writer.write(f"{prefix}/{lane}/chunk_poses", rec.arrival, encode.chunk_pose_array(rec.chunk))


# ------------------------------------------------------------------------------------- metrics
def lane_metrics(lane: Lane, gt: GroundTruth, cfg: VlaConfig, *, scored: Callable[[ChunkRecord], bool] | None = None,
                 commands_from: float | None = None) -> dict[str, Any]:
    """One lane's scores. `scored`: which chunks count (default all); `commands_from`: commands are scored
    from this time on (default: the lane's first accepted chunk) - see `fair_samples`."""
    r = cfg.replay
    arr = lane.arrays()
    recs = lane.records
    accepted = [x for x in recs if x.accepted]
    first = accepted[0].arrival if accepted else math.inf
    if commands_from is not None and math.isfinite(first):
        first = max(first, commands_from)
    sel = arr["t"] >= first - 1e-12
    t = arr["t"][sel]
    commands: dict[str, Any] = {"count": int(sel.sum()), "from": first if math.isfinite(first) else None}
    if gt.poses is not None and len(gt.poses) and t.size:
        gp, gq, valid = gt.poses.sample(t)
        commands.update(M.pose_scores(arr["position"][sel][valid], arr["quat"][sel][valid], gp[valid], gq[valid]))
        commands["scored"] = int(valid.sum())
    else:
        commands.update(M.pose_scores(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3)), np.zeros((0, 4))))
        commands["scored"] = 0
    if gt.gripper is not None and len(gt.gripper) and t.size:
        gv, valid = gt.gripper.sample(t)
        commands["gripper"] = M.gripper_scores(arr["gripper"][sel][valid], gv[valid], r.gripper_threshold)
    else:
        commands["gripper"] = M.gripper_scores([], [], r.gripper_threshold)
    if gt.twist is not None:
        use_twist = cfg.executor.output_mode in ("twist", "both")
        commands["velocity"] = M.twist_scores(
            t, arr["position"][sel], arr["quat"][sel], gt.twist,
            arr["linear"][sel] if use_twist else None, arr["angular"][sel] if use_twist else None,
        )
    scored_recs = [x for x in recs if scored is None or scored(x)]
    chunk_part = M.chunk_scores([x.chunk for x in scored_recs], [x.arrival for x in scored_recs], gt,
                                r.gripper_threshold)
    chunk_part["not_scored"] = len(recs) - len(scored_recs)  # no observation in another lane at their trigger
    jerk = M.jerk(t, arr["position"][sel])
    steps = M.step_sizes(arr["position"][sel])
    gt_jerk = np.zeros(0)
    if gt.poses is not None and len(gt.poses) and t.size:
        gp, _, valid = gt.poses.sample(t)
        if np.all(valid):
            gt_jerk = M.jerk(t, gp)
    st = lane.status
    executor = {
        "ticks": int(arr["t"].size),
        "hold_ticks": int(arr["hold"][sel].sum()),
        "clamped_ticks": int(arr["clamped"][sel].sum()),
        "holds": int(st.holds) if st else 0,
        "clamps": int(st.clamps) if st else 0,
        "limit_counts": dict(st.limit_counts) if st else {},
        "bridges": int(st.bridges) if st else 0,
        "chunks_received": int(st.chunks_received) if st else 0,
        "chunks_rejected": int(st.chunks_rejected) if st else 0,
        "chunks_stale": int(st.chunks_stale) if st else 0,
        "skipped_steps": int(st.skipped_steps) if st else 0,
        "watchdog_trips": int(st.watchdog_trips) if st else 0,
        "limit_excess": dict(st.limit_excess or {}) if st else {},
    }
    bstats = lane.builder.stats
    meta = lane.meta
    return {
        "policy": meta.policy_type,
        "checkpoint": meta.checkpoint_id,
        "horizon": meta.horizon,
        "dt": meta.dt,
        "commands": commands,
        "chunks": chunk_part,
        "smoothness": {
            "command_jerk_mps3": M.summary(jerk),
            "ground_truth_jerk_mps3": M.summary(gt_jerk),
            "command_step_m": M.summary(steps),
        },
        "executor": executor,
        "latency": {
            "inference_s": M.latency_summary([x.wall_latency for x in recs]),
            "injected_s": M.latency_summary([x.injected_latency for x in recs]),
            "chunk_delay_s": M.latency_summary([x.arrival - x.chunk.stamp for x in recs]),
            "observation_age_s": M.latency_summary([x.chunk.observation_age for x in recs]),
        },
        "inference": {
            "requests": lane.requests,
            "chunks": len(recs),
            "skipped_busy": lane.skipped_busy,
            "no_observation": lane.worker.stats.no_observation,
            "errors": lane.worker.stats.errors,
            "rtc_guided": lane.guided,
        },
        "inputs": {
            "received": bstats.received,
            "rejected": bstats.rejected,
            "synchronized": bstats.synchronized,
            "dropped": bstats.dropped,
            "used": bstats.taken,
            "problems": {f"{t} {c}": n for (t, c), n in sorted(lane.problems.items())},
        },
    }


def fair_samples(lanes: dict[str, Lane], cfg: VlaConfig) -> tuple[dict[str, Callable[[ChunkRecord], bool]], float | None]:
    """Score every lane on the samples where every lane had an observation (issue: a baseline that needs
    fewer inputs must not be scored over time the policy never saw).

    Chunks: with the rate trigger the lanes share their trigger times, so a chunk counts when every
    lane produced one at its trigger; otherwise from the latest first chunk stamp of the lanes on.
    Commands: from the latest first accepted chunk of the lanes on. One lane: everything counts.
    """
    if len(lanes) < 2 or any(not lane.records for lane in lanes.values()):
        return {}, None
    if cfg.policy.trigger == "rate":
        common = set.intersection(*({round(r.triggered_at, 9) for r in lane.records} for lane in lanes.values()))
        rule = lambda rec: round(rec.triggered_at, 9) in common  # noqa: E731
    else:
        start = max(min(r.chunk.stamp for r in lane.records if r.chunk is not None) for lane in lanes.values())
        rule = lambda rec: rec.chunk is not None and rec.chunk.stamp >= start - 1e-9  # noqa: E731
    firsts = [min((r.arrival for r in lane.records if r.accepted), default=math.inf) for lane in lanes.values()]
    commands_from = max(firsts) if all(math.isfinite(f) for f in firsts) else None
    return {name: rule for name in lanes}, commands_from


def compute_metrics(result: BagResult, cfg: VlaConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bag": str(result.path),
        "duration_s": result.duration,
        "messages": result.messages,
        "ground_truth": {
            "kind": result.ground_truth.sources.kind,
            "topic": result.ground_truth.sources.topic,
            "description": result.ground_truth.sources.describe(),
            "samples": len(result.ground_truth.poses) if result.ground_truth.poses is not None else 0,
        },
        "latency_mode": cfg.replay.latency,
        "inference_batch": result.lanes[POLICY_LANE].batch_size,
    }
    scored, commands_from = fair_samples(result.lanes, cfg)
    for name, lane in result.lanes.items():
        out[name] = lane_metrics(lane, result.ground_truth, cfg, scored=scored.get(name), commands_from=commands_from)
    if HOLD_LANE in out:
        out["vs_hold"] = comparison(out[POLICY_LANE], out[HOLD_LANE])
    timing = result.timing.as_dict()
    timing["speed_x"] = result.duration / result.timing.total if result.timing.total > 0 else float("nan")
    out["timing_s"] = timing
    out["warnings"] = list(result.warnings)
    return out


def _mean(d: dict, *keys: str) -> float:
    for k in keys:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    return float(d) if isinstance(d, (int, float)) else float("nan")


HEADLINES = (
    ("chunk_position_error_m", ("chunks", "position_error_m", "mean")),
    ("command_position_error_m", ("commands", "position_error_m", "mean")),
    ("chunk_rotation_error_rad", ("chunks", "rotation_error_rad", "mean")),
    ("command_gripper_accuracy", ("commands", "gripper", "accuracy")),
)


def comparison(policy: dict, hold: dict) -> dict[str, Any]:
    """Policy vs hold on the headline numbers: both values, the difference and hold / policy."""
    out = {}
    for name, keys in HEADLINES:
        a, b = _mean(policy, *keys), _mean(hold, *keys)
        ratio = b / a if a and math.isfinite(a) and math.isfinite(b) and a > 0 else float("nan")
        out[name] = {"policy": a, "hold": b, "difference": a - b, "hold_over_policy": ratio}
    return out


# ------------------------------------------------------------------------------------- many bags
@dataclass
class EvalOutput:
    """What `run_evaluation` produced: one summary row per bag (skipped ones with their reason)."""

    rows: list[dict[str, Any]]
    results: list[BagResult]
    out_dir: Path
    metrics_path: Path
    report_path: Path
    table: str

    @property
    def evaluated(self) -> int:
        return sum(1 for r in self.rows if r.get("ok"))

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.rows if not r.get("ok"))


def _unique_names(paths: list[Path]) -> list[str]:
    names, seen = [], Counter()
    for p in paths:
        base = p.name or str(p)
        if base.endswith(".mcap"):
            base = base[:-5]
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    if len(set(names)) != len(names):  # a base name equal to an earlier suffixed one
        names = [f"{i:02d}_{n}" for i, n in enumerate(names)]
    return names


def run_evaluation(bags: list[str | Path], cfg: VlaConfig, *, policy: Policy | None = None, out_dir: str | Path | None = None,
                   progress: bool = True, plots: bool = True, title: str = "vla_ros offline evaluation",
                   extra_info: dict[str, Any] | None = None, extra_html: str = "",
                   log: Callable[[str], None] = print) -> EvalOutput:
    """Evaluate every bag (a bad bag is reported and skipped), then write metrics.json, plots, index.html."""
    import shutil

    from vla_ros.policy.compat import check_compatible, compatibility_report
    from vla_ros.replay import plots as P
    from vla_ros.replay import report as R

    out = Path(out_dir or cfg.replay.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    own_policy = policy is None
    if policy is None:
        policy = load_configured_policy(cfg.policy)
    try:
        meta = policy.metadata
        robot = cfg.robot
        if not robot.ee_pose_topic and robot.ee_pose_source != "topic":  # the EE pose can come from TF
            robot = dataclasses.replace(robot, ee_pose_topic=tf_pose_topic(robot.base_frame, robot.ee_frame))
        for line in compatibility_report(meta, robot, cfg.policy, timing=False):
            log(line)
        check_compatible(meta, robot, cfg.policy, timing=False)
        paths = [Path(b) for b in bags]
        names = _unique_names(paths)
        rows: list[dict[str, Any]] = []
        results: list[BagResult] = []
        bag_sections: list[tuple[str, dict, dict]] = []
        all_metrics: list[dict[str, Any]] = []
        for path, name in zip(paths, names):
            out_bag = None
            if cfg.replay.output_bag:
                out_bag = out / "bags" / f"{name}_replay"
                if out_bag.exists() and (out_bag / "metadata.yaml").is_file():
                    shutil.rmtree(out_bag)  # our own output of an earlier run
            try:
                result = evaluate_bag(path, cfg, policy, progress=progress, out_bag=out_bag)
            except BagError as exc:
                notes = list(exc.notes)
                log(f"skipped {name} (the reason is in the summary below)")
                rows.append(R.summary_row(name, str(path), error=str(exc), notes=notes))
                all_metrics.append({"name": name, "bag": str(path), "ok": False, "error": str(exc), "notes": notes})
                continue
            except ConfigError:  # the same for every bag: one configuration error, not one skip per bag
                raise
            except Exception as exc:  # noqa: BLE001 - one broken bag must not end a multi-bag evaluation
                msg = f"bag {path}: evaluation failed: {type(exc).__name__}: {exc}"
                log(f"skipped {name}: {msg}")
                rows.append(R.summary_row(name, str(path), error=msg))
                all_metrics.append({"name": name, "bag": str(path), "ok": False, "error": msg})
                continue
            result.name = name
            for w in result.warnings:
                log(f"warning ({name}): {w}")
            figs = P.plot_bag(result, out / "plots" / name) if plots else {}
            results.append(result)
            rows.append(R.summary_row(name, str(path), result.metrics))
            entry = {"name": name, "ok": True, **result.metrics}
            if result.output_bag:
                entry["output_bag"] = result.output_bag
            all_metrics.append(entry)
            bag_sections.append((name, result.metrics, figs))
        summary_plot = P.plot_summary(rows, out / "plots" / "summary.png") if plots else None
        mean = R.mean_row(rows)
        info = {
            "policy": meta.policy_type, "checkpoint": meta.checkpoint_id or "-", "robot": cfg.robot.name,
            "trigger": f"{cfg.policy.trigger} ({cfg.policy.rate_hz:g} Hz)" if cfg.policy.trigger == "rate" else cfg.policy.trigger,
            "executor": f"{cfg.executor.strategy} @ {cfg.executor.control_rate:g} Hz", "rtc": cfg.policy.rtc,
            "latency": cfg.replay.latency if cfg.replay.latency != "fixed" else f"fixed {cfg.replay.fixed_latency:g} s",
            **(extra_info or {}),
        }
        doc = {
            "format": "vla_ros.eval", "version": 1, "info": info,
            "policy": {"type": meta.policy_type, "checkpoint": meta.checkpoint_id, "horizon": meta.horizon, "dt": meta.dt,
                       "action_mode": meta.action_mode.name.lower()},
            "summary": {"evaluated": sum(1 for r in rows if r["ok"]), "skipped": sum(1 for r in rows if not r["ok"]),
                        "rows": rows, "mean": mean},
            "config": cfg.to_dict(),
            "bags": all_metrics,
        }
        metrics_path = R.write_json(out / "metrics.json", doc)
        report_path = R.write_html(out / "index.html", title=title, rows=rows, bags=bag_sections,
                                   summary_plot=summary_plot, info=info, extra_html=extra_html)
        table = R.format_table(rows)
        return EvalOutput(rows, results, out, metrics_path, report_path, table)
    finally:
        if own_policy:
            policy.close()
