"""Watchdog: no valid chunk for ``executor.watchdog_timeout`` seconds -> hold.

A policy that dies, hangs or loses its camera stops sending chunks, but the executor may still
hold seconds of plan. Executing that stale plan open-loop is the failure this guards against:
once the timeout passes, the remaining plan is dropped and the arm holds the last safe command
until a new valid chunk arrives (the watchdog does not latch; the e-stop does).
"""

from __future__ import annotations


class Watchdog:
    """Tracks the time of the last valid chunk on the caller's clock (no wall time inside)."""

    def __init__(self, timeout: float):
        if not timeout > 0.0:
            raise ValueError(f"executor.watchdog_timeout: expected > 0 s, got {timeout}")
        self.timeout = float(timeout)
        self.last_feed: float | None = None
        self.trips = 0
        self._tripped = False

    def feed(self, now: float) -> None:
        """A valid chunk arrived at `now`."""
        self.last_feed = now
        self._tripped = False

    def silence(self, now: float) -> float:
        """Seconds since the last valid chunk (0 before the first)."""
        return 0.0 if self.last_feed is None else max(0.0, now - self.last_feed)

    def expired(self, now: float) -> bool:
        """True once `timeout` has passed since the last valid chunk (never before the first)."""
        if self.last_feed is None:
            return False
        if now - self.last_feed > self.timeout:
            if not self._tripped:
                self._tripped = True
                self.trips += 1
            return True
        return False
