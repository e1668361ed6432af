"""Run `Policy.infer` off the ROS thread: one worker thread, at most one inference in flight. ROS-free.

Why a thread (not a process): the policy's heavy work (torch) releases the GIL, so a thread
keeps subscription callbacks and timers responsive without copying images between processes;
and the policy object stays in this process, where it can be swapped between inferences.

Flow of one inference (`run_once`, also callable synchronously, e.g. by the replay):

    request() --> take(now) newest observation --> guidance(obs, metadata) --> policy.infer
              --> chunk stamped with the observation, seq / latency / age filled --> publish(record)

- `request()` never blocks: if an inference is already requested or running it returns False and
  counts ``skipped_busy`` (so a slow policy lowers the chunk rate instead of queueing stale work).
- The observation is taken when the inference *starts*, so it is always the newest one.
- `set_policy()` swaps the policy atomically *between* inferences (it waits for the one in
  flight) and restarts ``seq`` at 0, as ActionChunk.msg specifies after every (re)load. It returns
  the previous policy so the caller can `close()` it.
- A policy exception is counted and reported through ``on_error``; the thread keeps running.
- A hung inference cannot hang its callers: `running_for()` tells a watchdog how long the one in
  flight has been running, `set_policy(timeout=...)` gives up (`WorkerBusy`) instead of waiting
  forever for it, and `stop()` returns False after its timeout so the caller can abandon the
  (daemon) thread; a chunk finishing after `stop()` is never published.
- When the instruction changes, `policy.reset()` is called before the next inference (new task).

Offline, the replay may split an inference in two: `take_pending()` at the trigger time (the
observation the node would have used) and later `run_pending()` on several of them at once, which
runs them as one `Policy.infer_batch` per run of the same task (resets in between, as `run_once`
does) and stamps each chunk as `run_once` would; ``inference_latency`` is then each chunk's share
of its batch's wall time.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from vla_ros.core.types import ActionChunk, ChunkGuidance, Observation

TakeFn = Callable[[float], Any]  # now -> ObservationSample-like (has .observation) | Observation | None
GuidanceFn = Callable[[Observation, Any], "ChunkGuidance | None"]  # (observation, metadata) -> guidance


class WorkerBusy(TimeoutError):
    """`set_policy` could not swap within its timeout: an inference is still running."""


@dataclass(frozen=True)
class PendingInference:
    """An observation taken for inference that has not run yet (see `InferenceWorker.take_pending`)."""

    sample: Any
    requested_at: float
    taken_at: float
    age: float  # [s] ROS time at the take minus the observation stamp
    new_task: bool  # the instruction changed since the previous one: reset the policy first

    @property
    def observation(self) -> Observation:
        return getattr(self.sample, "observation", self.sample)


@dataclass(frozen=True)
class InferenceRecord:
    """One finished inference. Times are ``time.perf_counter()`` seconds (wall, monotonic)."""

    chunk: ActionChunk
    sample: Any  # what `take` returned (an ObservationSample in the node)
    guidance: ChunkGuidance | None
    requested_at: float
    taken_at: float
    infer_start: float
    infer_end: float

    @property
    def observation(self) -> Observation:
        return getattr(self.sample, "observation", self.sample)


class LatencyWindow:
    """Last / mean / p99 over the most recent ``size`` samples (seconds); thread-safe."""

    def __init__(self, size: int = 100):
        self._values: collections.deque[float] = collections.deque(maxlen=int(size))
        self._lock = threading.Lock()
        self.last = 0.0

    def add(self, value: float) -> None:
        with self._lock:
            self.last = float(value)
            self._values.append(float(value))

    def values(self) -> np.ndarray:
        with self._lock:
            return np.array(self._values, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def mean(self) -> float:
        v = self.values()
        return float(v.mean()) if v.size else 0.0

    @property
    def p99(self) -> float:
        v = self.values()
        return float(np.percentile(v, 99)) if v.size else 0.0


@dataclass
class WorkerStats:
    requests: int = 0
    skipped_busy: int = 0
    no_observation: int = 0
    used: int = 0  # observations that went into a published chunk
    errors: int = 0
    last_error: str = ""
    latency: LatencyWindow = field(default_factory=LatencyWindow)


class InferenceWorker:
    """See the module docstring. ``clock()`` returns ROS time (float s) for observation ages."""

    def __init__(
        self,
        take: TakeFn,
        publish: Callable[[InferenceRecord], None],
        *,
        clock: Callable[[], float],
        guidance: GuidanceFn | None = None,
        default_frame: str = "",
        on_error: Callable[[str], None] | None = None,
        latency_window: int = 100,
        name: str = "vla-inference",
    ):
        self._take = take
        self._publish = publish
        self._clock = clock
        self._guidance = guidance
        self.default_frame = default_frame
        self.on_error = on_error
        self.name = name
        self.stats = WorkerStats(latency=LatencyWindow(latency_window))
        self._policy: Any = None
        self._metadata: Any = None
        self._seq = 0
        self._last_instruction: str | None = None
        self._infer_lock = threading.Lock()  # held for a whole inference: swaps happen between them
        self._cond = threading.Condition()
        self._requested = False
        self._busy = False
        self._requested_at = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._infer_started: float | None = None  # perf_counter() when the inference in flight started

    # ------------------------------------------------------------------ policy
    @property
    def policy(self) -> Any:
        return self._policy

    @property
    def metadata(self) -> Any:
        return self._metadata

    def set_policy(self, policy: Any, timeout: float | None = None) -> Any:
        """Use `policy` from the next inference on (waits for the one in flight); returns the old one.

        `timeout` (s, None = forever): raise `WorkerBusy` (nothing changed) if the inference in
        flight has not finished by then, so a hung policy cannot hang a swap or a teardown.
        """
        if not self._infer_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            running = self.running_for(time.perf_counter())
            raise WorkerBusy(
                f"the inference in flight has been running for {running:.1f} s and did not finish within {timeout:g} s"
            )
        try:
            old = self._policy
            self._policy = policy
            self._metadata = policy.metadata if policy is not None else None
            self._seq = 0
            self._last_instruction = None
        finally:
            self._infer_lock.release()
        return old

    def running_for(self, now: float) -> float:
        """How long the inference in flight has been running at `now` (a ``time.perf_counter()``
        value, s); 0.0 when none is. Read by the node's policy watchdog."""
        started = self._infer_started
        return 0.0 if started is None else max(0.0, now - started)

    # ------------------------------------------------------------------ thread
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def busy(self) -> bool:
        """An inference is requested or running."""
        with self._cond:
            return self._busy

    def start(self) -> None:
        if self.running:
            return
        with self._cond:
            self._stopping = False
            self._requested = self._busy = False
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread after the inference in flight (if any); True if it ended within `timeout`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True

    def request(self) -> bool:
        """Ask for one inference now; False (and counted) if one is already requested or running."""
        with self._cond:
            if self._thread is None or self._stopping:
                return False
            self.stats.requests += 1
            if self._busy:
                self.stats.skipped_busy += 1
                return False
            self._busy = self._requested = True
            self._requested_at = time.perf_counter()
            self._cond.notify()
            return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._requested or self._stopping):
                    self._cond.wait()
                if self._stopping:
                    self._busy = False
                    return
                self._requested = False
                requested_at = self._requested_at
            try:
                self.run_once(requested_at)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything a callback raises
                self._error(f"inference worker: {type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False

    # ------------------------------------------------------------------ one inference
    def _error(self, text: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = text
        if self.on_error is not None:
            self.on_error(text)

    def run_once(self, requested_at: float | None = None) -> InferenceRecord | None:
        """Take the newest observation, infer, publish; the record, or None if nothing was published."""
        with self._infer_lock:
            self._infer_started = time.perf_counter()  # decoding in `take` counts: it can hang too
            try:
                pending = self._take_pending(requested_at)
                return None if pending is None else self._run([pending], guided=True)[0]
            finally:
                self._infer_started = None

    def take_pending(self, requested_at: float | None = None) -> PendingInference | None:
        """Take the newest observation now, infer later with `run_pending` (None: no observation)."""
        with self._infer_lock:
            return self._take_pending(requested_at)

    def run_pending(self, pending: list[PendingInference]) -> list[InferenceRecord | None]:
        """Infer taken observations in order, batched per task; a record (published) or None (error) each.

        No Real-Time Chunking here: guidance depends on the executor state at each inference, so a
        caller with a guidance function runs `run_once` instead (ValueError otherwise).
        """
        if self._guidance is not None and len(pending) > 1:
            raise ValueError("run_pending: batched inference cannot use guidance (RTC); use run_once")
        with self._infer_lock:
            self._infer_started = time.perf_counter()
            try:
                return self._run(pending, guided=False)
            finally:
                self._infer_started = None

    def _take_pending(self, requested_at: float | None) -> PendingInference | None:
        if self._policy is None:
            return None
        taken_at = time.perf_counter()
        requested_at = taken_at if requested_at is None else requested_at
        sample = self._take(self._clock())
        if sample is None:
            self.stats.no_observation += 1
            return None
        obs: Observation = getattr(sample, "observation", sample)
        new_task = self._last_instruction is not None and obs.instruction != self._last_instruction
        self._last_instruction = obs.instruction
        return PendingInference(sample, requested_at, taken_at, self._clock() - obs.stamp, new_task)

    def _run(self, pending: list[PendingInference], guided: bool) -> list[InferenceRecord | None]:
        """Runs of the same task go to the policy together; a failing batch is retried one by one
        (validation comes before any noise is drawn, so the retries give the sequential chunks)."""
        policy = self._policy
        out: list[InferenceRecord | None] = []
        i = 0
        while i < len(pending):
            j = i + 1
            while j < len(pending) and not pending[j].new_task:
                j += 1
            group = pending[i:j]
            if group[0].new_task and policy is not None:
                policy.reset()  # new task: forget episode state
            if len(group) > 1:
                start = time.perf_counter()
                try:
                    chunks = policy.infer_batch([p.observation for p in group])
                except Exception:  # noqa: BLE001 - find the failing observation(s) one at a time below
                    chunks = None
                end = time.perf_counter()
                if chunks is not None and len(chunks) == len(group):
                    share = (end - start) / len(group)
                    out.extend(self._finish(p, c, None, p.taken_at, start, end, share) for p, c in zip(group, chunks))
                    i = j
                    continue
            for p in group:
                out.append(self._infer_one(policy, p, guided))
            i = j
        return out

    def _infer_one(self, policy: Any, p: PendingInference, guided: bool) -> InferenceRecord | None:
        guidance = self._guidance(p.observation, self._metadata) if (guided and self._guidance is not None) else None
        start = time.perf_counter()
        try:
            chunk = policy.infer(p.observation, guidance=guidance)
        except Exception as exc:  # noqa: BLE001 - any policy failure is reported, never fatal
            self._error(f"policy.infer failed: {type(exc).__name__}: {exc}")
            return None
        end = time.perf_counter()
        return self._finish(p, chunk, guidance, p.taken_at, start, end, end - p.taken_at)

    def _finish(self, p: PendingInference, chunk: ActionChunk, guidance: ChunkGuidance | None, taken_at: float,
                infer_start: float, infer_end: float, latency: float) -> InferenceRecord:
        meta = self._metadata
        chunk = chunk.with_fields(
            stamp=p.observation.stamp,
            seq=self._seq,
            inference_latency=latency,
            observation_age=max(0.0, p.age),
            frame_id=chunk.frame_id or self.default_frame,
            policy_id=chunk.policy_id or getattr(meta, "policy_id", ""),
            checkpoint_id=chunk.checkpoint_id or getattr(meta, "checkpoint_id", ""),
        )
        record = InferenceRecord(chunk, p.sample, guidance, p.requested_at, taken_at, infer_start, infer_end)
        self._seq += 1
        self.stats.used += 1
        self.stats.latency.add(chunk.inference_latency)
        self.stats.last_error = ""
        if not self._stopping:  # stopped (or abandoned) while inferring: the chunk is not published
            self._publish(record)
        return record
