"""One policy on a replay's simulated clock: the policy node and the executor node, called synchronously.

A `Lane` runs the nodes' own runtimes without ROS and without threads:

- its policy half is a `PolicyRuntime` (vla_ros.core.policy_runtime), the object the policy node
  runs: every message is routed into it at its receive time; its `InferenceWorker` runs when the
  trigger is due (the rate trigger is the session's timer, the queue trigger reads ExecutorStatus
  messages); RTC guidance comes from the same statuses; each chunk passes the node's chunk check
  and leaves as a vla_ros/ActionChunk message, or is refused (`refused`) and never sent;
- its executor half is an `ExecutorRuntime` (vla_ros.core.executor_runtime) held by the lane's
  execution strategy (`vla_ros.replay.execution`: at once, batched, or in a second process). A
  chunk message delivered at t is decoded and validated as the executor node does and enters the
  plan after the next control tick; the feedback pose follows the node's rule (`FeedbackPose`:
  base frame only, stamped with the receive time); a status snapshot becomes an ExecutorStatus
  message that the policy half reads back through `ExecutorFeedback.from_msg`, as over DDS.

One `ChunkRecord` per chunk that reached the executor. The replay (`vla_ros.replay.session`) and
the closed-loop simulation (`vla_ros.sim.closed_loop`) drive lanes through the same methods:
`on_message`, `infer`, `deliver`, `tick`, `snapshot`, `finish`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from vla_ros.core.config import VlaConfig
from vla_ros.core.executor import ExecutorStatusData
from vla_ros.core.executor.executor import SubmitResult
from vla_ros.core.executor_runtime import FeedbackPose
from vla_ros.core.inference_worker import InferenceRecord, InferenceWorker, PendingInference
from vla_ros.core.observation_builder import InputProblem, ObservationBuilder, ObservationSpec
from vla_ros.core.policy_runtime import DUE, PolicyRuntime, absolute
from vla_ros.core.triggers import QueueTrigger
from vla_ros.core.types import ActionChunk
from vla_ros.policy.base import Policy
from vla_ros.replay.bag_io import MessageFactory
from vla_ros.replay.execution import choose_execution
from vla_ros.replay.executor_process import ExecutorProcess, LaneExecution

POLICY_LANE, HOLD_LANE = "policy", "hold"
_ENCODER = None


def lane_encoder() -> MessageFactory:
    """The lanes' message classes (rosbags, standard + vla_ros types): one per process."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = MessageFactory()
    return _ENCODER


@dataclass
class ChunkRecord:
    """One inference of a lane: the chunk, when it was triggered and when the executor got it.

    A batched lane creates it at the trigger with ``chunk`` None and fills it after the batch.
    """

    chunk: ActionChunk | None
    triggered_at: float  # sim time the inference started (observation taken)
    arrival: float  # sim time the chunk was delivered to the executor (it enters the plan after the next tick)
    wall_latency: float  # [s] measured wall time (observation taken -> chunk ready)
    injected_latency: float  # [s] sim delay applied
    guided: bool = False
    accepted: bool = False
    reason: str = ""
    skipped: int = 0
    msg: Any = None  # the vla_ros/ActionChunk message sent (None: no chunk, or refused by the chunk check)
    sent: bool = True  # False: the policy node's chunk check refused it, it never reached the executor

    def executes_from(self, control_dt: float) -> float:
        """The first control tick that can execute the chunk: it enters the plan after the first tick at
        or after its arrival (the executor node's order), i.e. one control period after it arrives."""
        return self.arrival + control_dt


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
    """One policy + its own builder, worker, trigger and executor on the shared simulated clock.

    `batch_size`, `remote`, `flush_every` choose the execution strategy (`choose_execution`).
    """

    def __init__(self, name: str, policy: Policy, spec: ObservationSpec, cfg: VlaConfig, clock: Callable[[], float],
                 batch_size: int = 1, remote: ExecutorProcess | None = None, flush_every: int | None = None):
        self.name = name
        self.cfg = cfg
        self.policy = policy
        self.clock = clock
        self.problems: Counter = Counter()
        self.problem_examples: dict[tuple[str, str], str] = {}
        self.errors: list[str] = []
        self.runtime = PolicyRuntime(spec, cfg, clock=clock, encoder=lane_encoder(), emit=self._emit,
                                     name=f"replay-{name}", on_problem=self._on_problem, on_error=self._on_error)
        # The chunk check's clock: the time the inference took its observation (a batch runs later).
        self.runtime.check_time = _taken_at
        self._emitted: dict[int, Any] = {}  # id(InferenceRecord) -> the message the runtime emitted
        self.cameras = {c.topic: c.name for c in spec.cameras}
        policy.reset()
        self.worker.set_policy(policy)
        self.meta = policy.metadata
        self.in_flight: ChunkRecord | None = None
        # every chunk the policy produced, by trigger time: sent to the executor (accepted or not by it),
        # or refused by the policy node's chunk check (``sent`` False), as the robot would have
        self.records: list[ChunkRecord] = []
        self.requests = 0
        self.no_observation_times: list[float] = []  # triggers that found no observation
        self.no_observation_why = ""  # what the builder waited for at the first of them
        self.skipped_busy = 0
        self.guided = 0
        self.timing = Timing()
        # the executor's feedback pose, by the node's rule (updated by every EE pose message)
        self.feedback = FeedbackPose(cfg.robot.base_frame, cfg.robot.ee_pose_topic or "ee_pose")
        self._ee_topic = absolute(cfg.robot.ee_pose_topic)
        self.execution = choose_execution(name, cfg, self.timing, batch_size, remote, flush_every, self.feedback)

    # The policy runtime's parts
    @property
    def builder(self) -> ObservationBuilder:
        return self.runtime.builder

    @property
    def worker(self) -> InferenceWorker:
        return self.runtime.worker

    @property
    def trigger(self) -> QueueTrigger | None:
        return self.runtime.trigger

    @property
    def needs_status(self) -> bool:
        return self.runtime.needs_status

    @property
    def refused(self) -> list[ChunkRecord]:
        """The chunks the policy node's chunk check refused (never sent)."""
        return [r for r in self.records if not r.sent]

    @property
    def rtc_notes(self) -> Counter:
        """Why inferences had no RTC guidance, counted."""
        return self.runtime.rtc_notes

    @property
    def batch_size(self) -> int:
        """How many observations one inference takes (1: one at a time)."""
        return self.execution.batch_size

    @property
    def status(self) -> ExecutorStatusData | None:
        """The executor's final status (after `finish`; from the second process after `apply_remote`)."""
        return self.execution.status

    # ---------------------------------------------------------------- callbacks
    def _on_problem(self, p: InputProblem) -> None:
        self.problems[(p.topic, p.code)] += 1
        self.problem_examples.setdefault((p.topic, p.code), p.message)

    def _on_error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)

    def _emit(self, record: InferenceRecord, msg: Any) -> None:
        self._emitted[id(record)] = msg

    # ---------------------------------------------------------------- events
    def infer(self, now: float, latency_mode: str, fixed_latency: float) -> ChunkRecord | None:
        """The trigger fired at `now`: one inference unless one is in flight (run or taken per the strategy)."""
        self.requests += 1
        if self.in_flight is not None:
            self.skipped_busy += 1
            return None
        rec = self.execution.infer(self, now, latency_mode, fixed_latency)
        if rec is not None:
            self.in_flight = rec
        return rec

    def deliver(self, now: float) -> ChunkRecord:
        """The chunk in flight arrives at the executor at `now`."""
        rec, self.in_flight = self.in_flight, None
        assert rec is not None
        return self.execution.deliver(self, now, rec)

    def tick(self, now: float):
        """A control tick on the newest feedback pose; the command (None when the strategy defers the tick)."""
        return self.execution.tick(self, now)

    def snapshot(self, now: float) -> bool:
        """The executor's ExecutorStatus at `now`, read by the policy half; True if the queue trigger is due."""
        msg = self.execution.status_message(now, lane_encoder())
        due = self.runtime.route(self.cfg.policy.executor_status_topic, msg, now) == DUE
        return due and self.in_flight is None

    def flush(self, force: bool = False) -> None:
        """A batched lane runs its batch once enough observations wait (or `force`); see `BatchedExecution`."""
        self.execution.flush(self, force)

    def finish(self, now: float) -> None:
        """The end of the replay at `now`: the last batch, the executor's final status."""
        self.execution.finish(self, now)
        self._order_records()

    def apply_remote(self, result: LaneExecution) -> None:
        """The second process's executor output for this lane (a `LaneExecution`, after `finish`)."""
        self.execution.apply_remote(self, result)
        self._order_records()

    def _order_records(self) -> None:
        # refused chunks are recorded when inferred, sent ones when the executor took them
        self.records.sort(key=lambda r: r.triggered_at)

    def arrays(self) -> dict[str, np.ndarray]:
        """The commands at every tick (from the second process when the executor ran there)."""
        return self.execution.arrays()

    # ---------------------------------------------------------------- the policy half, for the strategies
    def run_inference(self, now: float, latency_mode: str, fixed_latency: float) -> ChunkRecord | None:
        """One inference now (`InferenceWorker.run_once`), its chunk arriving `latency_mode` later."""
        t0 = time.perf_counter()
        missed = self.worker.stats.no_observation
        record: InferenceRecord | None = self.worker.run_once()
        self.timing.policy += time.perf_counter() - t0
        if record is None:
            self._no_observation(now, missed)
            return None
        wall = float(record.chunk.inference_latency)
        injected = {"none": 0.0, "measured": wall, "fixed": fixed_latency}[latency_mode]
        guided = record.guidance is not None
        self.guided += guided
        rec = ChunkRecord(record.chunk, now, now + injected, wall, injected, guided=guided,
                          msg=self._emitted.pop(id(record), None))
        if rec.msg is None:
            self._refuse(rec)
            return None
        return rec

    def take_observation(self, now: float) -> tuple[PendingInference, ChunkRecord] | None:
        """The observation an inference at `now` would use, for a later batch; its record has no chunk yet."""
        t0 = time.perf_counter()
        missed = self.worker.stats.no_observation
        pending = self.worker.take_pending()
        self.timing.policy += time.perf_counter() - t0
        if pending is None:
            self._no_observation(now, missed)
            return None
        return pending, ChunkRecord(None, now, now, 0.0, 0.0)  # latency none: it arrives now, filled at the flush

    def run_batch(self, taken: list[tuple[PendingInference, ChunkRecord]]) -> None:
        """Infer the taken observations as one batch and fill their records (a failed one keeps no chunk)."""
        t0 = time.perf_counter()
        records = self.worker.run_pending([p for p, _ in taken])
        self.timing.policy += time.perf_counter() - t0
        for (_, rec), record in zip(taken, records):
            if record is not None:
                rec.chunk = record.chunk
                rec.wall_latency = float(record.chunk.inference_latency)
                rec.msg = self._emitted.pop(id(record), None)
                if rec.msg is None:
                    self._refuse(rec)

    def _refuse(self, rec: ChunkRecord) -> None:
        """The policy-side chunk check refused the chunk: it is never sent (as on the node)."""
        rec.sent, rec.accepted = False, False
        rec.reason = f"refused by the policy node's chunk check: {self.runtime.last_refusal}"
        self.records.append(rec)

    def sent(self, now: float) -> None:
        """A chunk message leaves the policy half at `now` (the queue trigger waits for its acknowledgement)."""
        self.runtime.sent(now)

    def admitted(self, rec: ChunkRecord, result: SubmitResult) -> None:
        """The executor combined `rec` with its plan (or refused it): it is a record."""
        rec.accepted, rec.reason, rec.skipped = bool(result.accepted), str(result.reason), int(result.skipped)
        self.records.append(rec)

    def _no_observation(self, now: float, before: int) -> None:
        if self.worker.stats.no_observation > before:
            if not self.no_observation_times:
                self.no_observation_why = self.builder.waiting_for(now)
            self.no_observation_times.append(now)

    # ---------------------------------------------------------------- inputs
    def on_message(self, topic: str, msg: Any, now: float, decoded: Any = None) -> None:
        """One input message received at `now`: into the policy half (`PolicyRuntime.route`), and the
        EE pose also into the executor's feedback (`FeedbackPose`), as the two nodes take them.

        `decoded`: an EE pose's `pose_to_ee`, when the caller decoded it once for several lanes.
        """
        self.runtime.route(topic, msg, now, decoded)
        if absolute(topic) == self._ee_topic:
            self.feedback.on_msg(msg, now, decoded)  # a pose the rule ignores is reported by the builder too


def _taken_at(record: InferenceRecord) -> float:
    """Simulated time an inference took its observation: its stamp plus its age then."""
    return record.chunk.stamp + record.chunk.observation_age
