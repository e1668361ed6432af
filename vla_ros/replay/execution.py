"""A lane's executor half, and when its inferences run: one strategy object per lane.

- `InlineExecution`: each inference runs when its trigger fires, each chunk message goes to the
  lane's `ExecutorRuntime` when it arrives (decoded and validated as the executor node does, and
  combined with the plan after the next tick), each tick runs at once (the node's behaviour; queue
  trigger, RTC and measured latency need it: they read the executor between inferences).
- `BatchedExecution` (``replay.batch_size`` > 1, see `vla_ros.replay.evaluate.inference_batch_size`):
  at each trigger only the observation is *taken* (`InferenceWorker.take_pending`, the one the
  node would use) and the ticks and chunk arrivals are recorded; every ``flush_every`` taken
  observations the lane infers them as one batch, then the recorded executor events run in order
  on the in-process executor. Same observations, same executor inputs, same order as inline.
- `RemoteExecution`: batched, and the recorded events stream to the second executor process
  (`vla_ros.replay.executor_process`); its commands, submit results and status come back at the end.

The strategies hold the executor-side calls; the policy-side ones (run an inference, take an
observation, run a batch, note a submitted chunk) are the `Lane`'s, which each method receives.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from vla_ros.core.config import VlaConfig
from vla_ros.core.executor import ExecutorStatusData
from vla_ros.core.executor.executor import SubmitResult
from vla_ros.core.executor_runtime import ExecutorRuntime, FeedbackPose
from vla_ros.core.inference_worker import PendingInference
from vla_ros.replay.command_log import CommandLog
from vla_ros.replay.executor_process import ARRIVAL as REMOTE_ARRIVAL
from vla_ros.replay.executor_process import TICK as REMOTE_TICK
from vla_ros.replay.executor_process import ExecutorProcess, LaneExecution

if TYPE_CHECKING:
    from vla_ros.replay.lane import ChunkRecord, Lane, Timing

# the kinds of the executor events a batched lane records until its batch has run
_ARRIVAL, _TICK = 0, 1


class InlineExecution:
    """Run everything at once, in this process: one inference per trigger, one executor call per event.

    `feedback` is the lane's feedback pose (the node's rule), read at every tick.
    """

    batch_size = 1

    def __init__(self, cfg: VlaConfig, timing: Timing, feedback: FeedbackPose | None = None):
        self.runtime = ExecutorRuntime(cfg)
        if feedback is not None:
            self.runtime.feedback = feedback
        self.commands = CommandLog()
        self.timing = timing  # the lane's: executor seconds go to ``timing.executor``
        self.status: ExecutorStatusData | None = None

    def infer(self, lane: Lane, now: float, latency_mode: str, fixed_latency: float) -> ChunkRecord | None:
        return lane.run_inference(now, latency_mode, fixed_latency)

    def deliver(self, lane: Lane, now: float, rec: ChunkRecord) -> ChunkRecord:
        return self._deliver_now(lane, now, rec)

    def tick(self, lane: Lane, now: float):
        return self._execute_tick(lane, now)

    def _execute_tick(self, lane: Lane, now: float):
        """Tick on the runtime's feedback pose, then admit the chunks delivered since (the node's order)."""
        t0 = time.perf_counter()
        cmd, admitted = self.runtime.step(now)
        self.timing.executor += time.perf_counter() - t0
        if cmd is not None:
            self.commands.add(now, cmd)
        for rec, result in admitted:
            lane.admitted(rec, result)
        return cmd

    def status_message(self, now: float, encoder) -> object:
        """The executor's ExecutorStatus message at `now` (what the executor node publishes)."""
        t0 = time.perf_counter()
        msg = self.runtime.status_message(encoder, self.runtime.status(now))
        self.timing.executor += time.perf_counter() - t0
        return msg

    def flush(self, lane: Lane, force: bool = False) -> None:
        """Nothing waits: every inference already ran."""

    def finish(self, lane: Lane, now: float) -> None:
        """The last batch, then the chunks delivered since the last tick enter the plan (they were sent:
        they count), and the final status."""
        self.flush(lane, force=True)
        for rec, result in self.runtime.admit():
            lane.admitted(rec, result)
        self.status = self.runtime.status(now)

    def apply_remote(self, lane: Lane, result: LaneExecution) -> None:
        raise RuntimeError(f"lane {lane.name}: its executor runs in this process, not in the executor process")

    def arrays(self) -> dict[str, np.ndarray]:
        return self.commands.arrays()

    def _deliver_now(self, lane: Lane, now: float, rec: ChunkRecord) -> ChunkRecord:
        """The chunk message reaches the executor at `now`: queued for the next tick (or refused)."""
        lane.sent(now)
        t0 = time.perf_counter()
        reason, _ = self.runtime.receive(rec.msg, now, token=rec)
        self.timing.executor += time.perf_counter() - t0
        if reason:
            lane.admitted(rec, SubmitResult(False, reason))
        return rec


class BatchedExecution(InlineExecution):
    """Take observations, record executor events, and on a flush infer a batch and replay the events."""

    def __init__(self, cfg: VlaConfig, timing: Timing, batch_size: int, flush_every: int | None = None,
                 feedback: FeedbackPose | None = None):
        super().__init__(cfg, timing)  # its own feedback pose: the ticks replay the one recorded with them
        self.live = feedback if feedback is not None else FeedbackPose(cfg.robot.base_frame)
        self.batch_size = batch_size
        # how many observations wait before a batch runs (hold: at once, its "inference" is free and
        # its events then stream to the executor process instead of piling up for the end)
        self.flush_every = batch_size if flush_every is None else max(1, int(flush_every))
        self._taken: list[tuple[PendingInference, ChunkRecord]] = []
        self._deferred: list[tuple] = []

    def infer(self, lane: Lane, now: float, latency_mode: str, fixed_latency: float) -> ChunkRecord | None:
        taken = lane.take_observation(now)
        if taken is None:
            return None
        self._taken.append(taken)
        return taken[1]

    def deliver(self, lane: Lane, now: float, rec: ChunkRecord) -> ChunkRecord:
        self._deferred.append((_ARRIVAL, now, rec))
        return rec

    def tick(self, lane: Lane, now: float):
        self._deferred.append((_TICK, now, self.live.pose, self.live.time))  # the feedback pose of this instant
        return None

    def flush(self, lane: Lane, force: bool = False) -> None:
        """Once ``flush_every`` observations are waiting (or `force`), infer them in one batch and
        replay the executor events recorded meanwhile, in their order."""
        if len(self._taken) < self.flush_every and not force:
            return
        if self._taken:
            lane.run_batch(self._taken)
            self._taken = []
        self._run_deferred(lane)
        self._deferred = []

    def _run_deferred(self, lane: Lane) -> None:
        fb = self.runtime.feedback
        for event in self._deferred:
            if event[0] == _TICK:
                _, now, fb.pose, fb.time = event
                self._execute_tick(lane, now)
            elif event[2].msg is not None:  # an arrival; a failed or refused inference delivers nothing
                self._deliver_now(lane, event[1], event[2])


class RemoteExecution(BatchedExecution):
    """Batched, the executor events streamed to the second process (`ExecutorProcess`) at each flush."""

    def __init__(self, cfg: VlaConfig, timing: Timing, batch_size: int, remote: ExecutorProcess, name: str,
                 flush_every: int | None = None, feedback: FeedbackPose | None = None):
        super().__init__(cfg, timing, batch_size, flush_every, feedback)
        self.remote = remote
        self.name = name
        self._commands: dict[str, np.ndarray] | None = None
        self._sent: list[ChunkRecord] = []  # arrivals sent, in order: their submit results come back at the end

    def _run_deferred(self, lane: Lane) -> None:
        events = []
        for event in self._deferred:
            if event[0] == _TICK:
                _, now, pose, pose_time = event
                events.append((REMOTE_TICK, now, None if pose is None else pose.position.tolist(),
                               None if pose is None else pose.orientation.tolist(), pose_time))
            elif event[2].msg is not None:
                _, now, rec = event
                lane.sent(now)
                chunk, why, code = self.runtime.decode(rec.msg)  # the executor node's validation, here
                if chunk is None:
                    lane.admitted(rec, SubmitResult(False, why))
                    continue
                events.append((REMOTE_ARRIVAL, now, chunk))
                self._sent.append(rec)  # accepted / reason / skipped come back with `apply_remote`
        self._deferred = []
        self.remote.send(self.name, events)

    def finish(self, lane: Lane, now: float) -> None:
        self.flush(lane, force=True)  # the status comes with `apply_remote`

    def apply_remote(self, lane: Lane, result: LaneExecution) -> None:
        self._commands = result.commands
        for rec, (accepted, reason, skipped) in zip(self._sent, result.submits):
            lane.admitted(rec, SubmitResult(accepted, reason, skipped))
        self.status = result.status
        self.timing.executor_remote += result.seconds

    def arrays(self) -> dict[str, np.ndarray]:
        return self._commands if self._commands is not None else self.commands.arrays()


def choose_execution(name: str, cfg: VlaConfig, timing: Timing, batch_size: int = 1,
                     remote: ExecutorProcess | None = None, flush_every: int | None = None,
                     feedback: FeedbackPose | None = None) -> InlineExecution:
    """The strategy of a lane: inline for batch size 1, else batched, in the executor process if `remote`.

    `feedback`: the lane's feedback pose (updated by its EE pose messages), read at each tick.
    """
    batch_size = max(1, int(batch_size))
    if batch_size <= 1:
        return InlineExecution(cfg, timing, feedback)
    if remote is not None:
        return RemoteExecution(cfg, timing, batch_size, remote, name, flush_every, feedback)
    return BatchedExecution(cfg, timing, batch_size, flush_every, feedback)
