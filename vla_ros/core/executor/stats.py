"""Rolling statistics the executor reports: control-loop period and chunk delay.

Both run on the caller's clock, so the replay (simulated time) and the node (ROS time) report
the same quantities. The loop window is the last second, as ExecutorStatus.msg documents.
"""

from __future__ import annotations

import collections

import numpy as np

LOOP_WINDOW_S = 1.0  # ExecutorStatus.loop_period_*: "over the last second"


class LoopStats:
    """Periods between consecutive ticks over the last `window` seconds: mean, p99, max."""

    def __init__(self, window: float = LOOP_WINDOW_S):
        self.window = float(window)
        self._ticks: collections.deque[tuple[float, float]] = collections.deque()  # (time, period)
        self._last: float | None = None

    def record(self, now: float) -> None:
        if self._last is not None and now >= self._last:
            self._ticks.append((now, now - self._last))
        self._last = now
        cutoff = now - self.window
        while self._ticks and self._ticks[0][0] < cutoff:
            self._ticks.popleft()

    def reset_origin(self) -> None:
        """Forget the last tick (after a clock jump) so no bogus period is recorded."""
        self._last = None
        self._ticks.clear()

    def summary(self) -> tuple[float, float, float]:
        """(mean, p99, max) period in seconds; zeros before two ticks."""
        if not self._ticks:
            return 0.0, 0.0, 0.0
        p = np.fromiter((x[1] for x in self._ticks), np.float64, len(self._ticks))
        return float(p.mean()), float(np.percentile(p, 99)), float(p.max())


class DelayStats:
    """Chunk delay (arrival - observation stamp) over the last `window` chunks."""

    def __init__(self, window: int = 20):
        self._d: collections.deque[float] = collections.deque(maxlen=max(1, int(window)))
        self.last = 0.0

    def record(self, delay: float) -> None:
        self.last = float(delay)
        self._d.append(float(delay))

    def __len__(self) -> int:
        return len(self._d)

    @property
    def mean(self) -> float:
        return float(sum(self._d) / len(self._d)) if self._d else 0.0

    @property
    def max(self) -> float:
        return float(max(self._d)) if self._d else 0.0
