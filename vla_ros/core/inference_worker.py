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
- When the instruction changes, `policy.reset()` is called before the next inference (new task).
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

    # ------------------------------------------------------------------ policy
    @property
    def policy(self) -> Any:
        return self._policy

    @property
    def metadata(self) -> Any:
        return self._metadata

    def set_policy(self, policy: Any) -> Any:
        """Use `policy` from the next inference on (waits for the one in flight); returns the old one."""
        with self._infer_lock:
            old = self._policy
            self._policy = policy
            self._metadata = policy.metadata if policy is not None else None
            self._seq = 0
            self._last_instruction = None
        return old

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
            policy, meta = self._policy, self._metadata
            if policy is None:
                return None
            taken_at = time.perf_counter()
            requested_at = taken_at if requested_at is None else requested_at
            now = self._clock()
            sample = self._take(now)
            if sample is None:
                self.stats.no_observation += 1
                return None
            obs: Observation = getattr(sample, "observation", sample)
            if self._last_instruction is not None and obs.instruction != self._last_instruction:
                policy.reset()  # new task: forget episode state
            self._last_instruction = obs.instruction
            guidance = self._guidance(obs, meta) if self._guidance is not None else None
            age = self._clock() - obs.stamp
            infer_start = time.perf_counter()
            try:
                chunk = policy.infer(obs, guidance=guidance)
            except Exception as exc:  # noqa: BLE001 - any policy failure is reported, never fatal
                self._error(f"policy.infer failed: {type(exc).__name__}: {exc}")
                return None
            infer_end = time.perf_counter()
            chunk = chunk.with_fields(
                stamp=obs.stamp,
                seq=self._seq,
                inference_latency=infer_end - taken_at,
                observation_age=max(0.0, age),
                frame_id=chunk.frame_id or self.default_frame,
                policy_id=chunk.policy_id or getattr(meta, "policy_id", ""),
                checkpoint_id=chunk.checkpoint_id or getattr(meta, "checkpoint_id", ""),
            )
            record = InferenceRecord(chunk, sample, guidance, requested_at, taken_at, infer_start, infer_end)
            self._seq += 1
            self.stats.used += 1
            self.stats.latency.add(chunk.inference_latency)
            self.stats.last_error = ""
            self._publish(record)
            return record
