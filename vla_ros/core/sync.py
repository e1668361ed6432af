"""Approximate-time synchronisation of stamped inputs (cameras, joint states, EE pose), ROS-free.

Why not message_filters: it is not available everywhere we run (the PyPI ROS wheels, the rosbag
replay), it matches on arrival order rather than "the newest complete set", and it cannot explain
why nothing matches. This class is a few dozen lines of plain Python driven by header stamps
(never arrival time), so the policy node and the replay (simulated clock) share it exactly.

Semantics
---------
- One input is the *pivot* (the primary camera): every emitted set contains exactly one pivot
  message, and the set's stamp is the pivot's header stamp. Pivot stamps of emitted sets strictly
  increase; each pivot message is used at most once. Other inputs (joint states at 100+ Hz, a
  wrist camera) may serve two consecutive sets.
- A set is complete when every input has a message and all stamps lie within ``slop`` of each
  other (max - min <= slop, the pivot included). Among valid choices, each input gets the message
  closest to the pivot stamp.
- When to emit: a complete set is emitted once every other input has a message stamped at or after
  the pivot - then no later message can be closer, the choice is final. Until then it waits, at
  most until the next pivot message arrives (the older pivot is then emitted with the best
  messages available). With high-rate states this costs at most one state period; camera frames
  usually arrive after the states of their stamp, so it costs nothing. ``eager=True`` emits as
  soon as a set is complete instead (lowest latency, possibly not the closest partner). When
  several pending pivots could be emitted, the newest wins and the older ones count as
  ``unmatched``.
- Per input, stamps must not go backwards (`StampError`); an equal stamp replaces the previous
  message (a republished sample). At most ``queue_size`` messages are kept per input; messages
  that can no longer be part of a future set are discarded early.

Typical use (node or replay)::

    sync = ApproximateTimeSynchronizer(["camera:primary", "camera:wrist", "joint_state"],
                                       slop=0.05, queue_size=30, pivot="camera:primary")
    out = sync.add("joint_state", stamp, value)   # -> SyncedSet | None
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

_EPS = 1e-9


class StampError(ValueError):
    """A stamp that cannot be synchronised (not finite, or older than the previous one of its input)."""


@dataclass(frozen=True)
class Stamped:
    """One queued message: its header stamp (s) and whatever the caller stored with it."""

    stamp: float
    value: Any


@dataclass(frozen=True)
class SyncedSet:
    """One message per input, all within ``slop``; ``stamp`` is the pivot's stamp."""

    stamp: float
    items: Mapping[str, Stamped]

    @property
    def oldest(self) -> float:
        return min(s.stamp for s in self.items.values())

    @property
    def newest(self) -> float:
        return max(s.stamp for s in self.items.values())

    @property
    def spread(self) -> float:
        return self.newest - self.oldest

    def oldest_input(self) -> str:
        """Name of the input with the oldest stamp (the one that makes the set stale first)."""
        return min(self.items, key=lambda k: self.items[k].stamp)


@dataclass
class SyncStats:
    """Counters of one synchronizer; ``unmatched`` pivots never became part of an emitted set."""

    received: Counter = field(default_factory=Counter)
    emitted: int = 0
    unmatched: int = 0
    evicted: Counter = field(default_factory=Counter)


class ApproximateTimeSynchronizer:
    """Groups stamped messages of several inputs into sets within ``slop`` (see the module docstring)."""

    def __init__(
        self,
        inputs: Iterable[str],
        *,
        slop: float,
        queue_size: int,
        pivot: str | None = None,
        labels: Mapping[str, str] | None = None,
        eager: bool = False,
    ):
        """`labels` (optional) maps input names to what `waiting_for` calls them (e.g. topic names)."""
        self.inputs: tuple[str, ...] = tuple(inputs)
        if not self.inputs:
            raise ValueError("inputs: expected at least one input name")
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"inputs: names must be unique, got {list(self.inputs)}")
        if not (math.isfinite(slop) and slop >= 0.0):
            raise ValueError(f"slop: expected a finite number of seconds >= 0, got {slop!r}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size: expected >= 1, got {queue_size}")
        self.pivot = self.inputs[0] if pivot is None else pivot
        if self.pivot not in self.inputs:
            raise ValueError(f"pivot: {self.pivot!r} is not one of the inputs {list(self.inputs)}")
        self.labels = {n: (labels or {}).get(n, n) for n in self.inputs}
        self.eager = bool(eager)
        self.slop = float(slop)
        self.queue_size = int(queue_size)
        self.stats = SyncStats()
        self._queues: dict[str, deque[Stamped]] = {}
        self._last: dict[str, float] = {}
        self._emitted: float = -math.inf
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every queued message and stamp (e.g. after the clock jumped back); keeps the stats."""
        self._queues = {name: deque() for name in self.inputs}
        self._last = {}
        self._emitted = -math.inf

    def last_stamp(self, name: str) -> float | None:
        """Stamp of the newest message accepted on `name` (None before the first)."""
        return self._last.get(name)

    @property
    def last_emitted(self) -> float | None:
        """Stamp of the newest emitted set (None before the first)."""
        return None if self._emitted == -math.inf else self._emitted

    def pending(self, name: str) -> int:
        """Messages currently queued for `name`."""
        return len(self._queues[name])

    # ------------------------------------------------------------------ input
    def add(self, name: str, stamp: float, value: Any = None) -> SyncedSet | None:
        """Queue one message; return the newest set it completes, if any.

        Raises StampError (message not queued) for a non-finite stamp or one older than the previous
        message of the same input, KeyError for an unknown input name.
        """
        if name not in self._queues:
            raise KeyError(f"unknown input {name!r}; inputs are {', '.join(self.inputs)}")
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise StampError(f"header.stamp: expected finite seconds, got {stamp!r}")
        last = self._last.get(name)
        queue = self._queues[name]
        if last is not None and stamp < last:
            raise StampError(
                f"header.stamp: expected stamps that do not go backwards, got {stamp:.6f} s after {last:.6f} s "
                f"({(last - stamp) * 1e3:.1f} ms back)"
            )
        self.stats.received[name] += 1
        item = Stamped(stamp, value)
        if last is not None and stamp == last and queue and queue[-1].stamp == stamp:
            queue[-1] = item  # republished sample: latest wins
        else:
            queue.append(item)
            if len(queue) > self.queue_size:
                queue.popleft()
                self.stats.evicted[name] += 1
                if name == self.pivot:
                    self.stats.unmatched += 1
        self._last[name] = stamp
        return self._match()

    # ------------------------------------------------------------------ matching
    def _match(self) -> SyncedSet | None:
        pivots = self._queues[self.pivot]
        newest = len(pivots) - 1
        # Newest pending pivot first: the freshest complete observation is the one worth emitting.
        for idx in range(newest, -1, -1):
            p = pivots[idx]
            if p.stamp <= self._emitted:
                break
            chosen = self._best_partners(p.stamp)
            if chosen is None:
                continue
            if idx == newest and not self.eager and not self._final(p.stamp):
                continue  # a closer partner may still come (see the module docstring)
            chosen[self.pivot] = p
            self.stats.unmatched += idx  # older pending pivots are superseded
            for _ in range(idx + 1):
                pivots.popleft()
            self._emitted = p.stamp
            self._prune(p.stamp)
            self.stats.emitted += 1
            return SyncedSet(p.stamp, {name: chosen[name] for name in self.inputs})
        return None

    def _final(self, t: float) -> bool:
        """Every other input has a message at/after `t`: later ones cannot be closer to t."""
        return all(self._last.get(n, -math.inf) >= t - _EPS for n in self.inputs if n != self.pivot)

    def _candidates(self, name: str, t: float) -> list[Stamped]:
        lo, hi = t - self.slop - _EPS, t + self.slop + _EPS
        return [m for m in self._queues[name] if lo <= m.stamp <= hi]

    def _best_partners(self, t: float) -> dict[str, Stamped] | None:
        """For pivot stamp `t`: one message per other input, all within slop of each other and of t."""
        others = [n for n in self.inputs if n != self.pivot]
        cands = {}
        for name in others:
            c = self._candidates(name, t)
            if not c:
                return None
            cands[name] = c
        closest = {n: min(c, key=lambda m: abs(m.stamp - t)) for n, c in cands.items()}
        stamps = [t] + [m.stamp for m in closest.values()]
        if max(stamps) - min(stamps) <= self.slop + _EPS:
            return closest
        # The closest ones straddle the pivot too widely: search the windows [L, L + slop] that
        # contain t (L is the set's oldest stamp) for the one keeping every input nearest to t.
        lows = sorted({m.stamp for c in cands.values() for m in c if m.stamp <= t} | {t})
        best, best_score = None, math.inf
        for lo in lows:
            hi = lo + self.slop + _EPS
            pick = {}
            for name, c in cands.items():
                inside = [m for m in c if lo - _EPS <= m.stamp <= hi]
                if not inside:
                    break
                pick[name] = min(inside, key=lambda m: abs(m.stamp - t))
            else:
                score = max(abs(m.stamp - t) for m in pick.values())
                if score < best_score:
                    best, best_score = pick, score
        return best

    def _prune(self, emitted: float) -> None:
        """Drop partner messages no later pivot (stamp > emitted) can use: stamp <= emitted - slop."""
        limit = emitted - self.slop
        for name, queue in self._queues.items():
            if name == self.pivot:
                continue
            # Keep the newest message even when it is old: it still tells `waiting_for` what arrived.
            while len(queue) > 1 and queue[0].stamp < limit - _EPS:
                queue.popleft()

    # ------------------------------------------------------------------ diagnosis
    def waiting_for(self) -> str:
        """Why no new set is being emitted, in words ("" when nothing is obviously wrong)."""
        missing = [n for n in self.inputs if n not in self._last]
        if missing:
            return "no valid message yet on " + ", ".join(self.labels[n] for n in missing)
        ref = self._last[self.pivot]
        far = []
        for name in self.inputs:
            if name == self.pivot:
                continue
            d = self._last[name] - ref
            if abs(d) > self.slop:
                where = "ahead of" if d > 0 else "behind"
                far.append(f"{self.labels[name]} newest stamp is {abs(d):.3f} s {where} {self.labels[self.pivot]}")
        if far:
            return "; ".join(far) + f" (sync.slop = {self.slop:g} s)"
        return ""

