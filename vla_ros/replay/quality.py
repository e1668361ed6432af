"""Warnings for a bag whose numbers are shaped by something other than the policy.

A replay's errors say how good the policy is only when the policy was what moved the commands.
These say when it was not, each with the limit, the times or the counts to check:

- clamped ticks over ``replay.clamp_warning_fraction``: the safety limit that clamped (its config
  key, e.g. ``safety.workspace_min z``) and how far past it the commands were;
- camera or joint-state gaps longer than the synchronizer can bridge (``sync.slop``, or 2.5x the
  topic's usual period when that is longer), and inputs that start late, with their times;
- watchdog trips (the executor held the arm: no chunk in time);
- triggers that found no observation (what the builder was waiting for);
- chunks left out of a lane's score because another lane had no observation at their trigger.

They go to the report's warning list (and flag the bag in the HTML summary).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

GAP_PERIODS = 2.5  # an interval this many times the topic's median period is a gap (if above sync.slop)
MAX_LISTED = 5


def _amount(key: str, value: float) -> str:
    if "rotation" in key or "angular" in key:
        return f"{value:.3f} rad"
    if "gripper" in key:
        return f"{value:.3f}"
    return f"{value:.3f} m"


def clamp_warning(name: str, executor: dict[str, Any], count: int, fraction: float) -> str:
    clamped = int(executor.get("clamped_ticks", 0))
    if not count or clamped / count <= fraction:
        return ""
    excess = sorted((executor.get("limit_excess") or {}).items(), key=lambda kv: -kv[1])
    limits = ", ".join(f"{k} (up to {_amount(k, v)} past it)" for k, v in excess[:3])
    if not limits:
        limits = ", ".join(k for k, n in sorted((executor.get("limit_counts") or {}).items()) if n) or "a limit"
    return (f"[{name}] {clamped} of {count} ticks ({100.0 * clamped / count:.1f} %, over replay.clamp_warning_fraction "
            f"= {100.0 * fraction:g} %) were clamped by a safety limit: {limits}; the command errors measure the "
            "limits as much as the policy")


def no_observation_warning(lane: Any) -> str:
    times = lane.no_observation_times
    first = min((r.triggered_at for r in lane.records), default=math.inf)
    late = [t for t in times if t > first]
    if len(times) < 2 and not late:  # one trigger before the very first frame is how every bag starts
        return ""
    after = f"; {len(late)} after the first chunk" if late else ""
    why = f": waiting for {lane.no_observation_why}" if lane.no_observation_why else ""
    return (f"[{lane.name}] {len(times)} of {lane.requests} triggers found no observation "
            f"(t = {times[0]:.3f} .. {times[-1]:.3f} s{after}){why}")


def gap_warnings(arrivals: dict[str, list[float]], start: float, slop: float) -> list[str]:
    out = []
    for topic, ts in sorted(arrivals.items()):
        t = np.asarray(ts, np.float64)
        if t.size < 2:
            continue
        d = np.diff(t)
        threshold = max(slop, GAP_PERIODS * float(np.median(d)))
        parts = []
        if t[0] - start > threshold:
            parts.append(f"starts {t[0] - start:.2f} s after the bag (t = {t[0]:.3f} s)")
        gaps = np.flatnonzero(d > threshold)
        if gaps.size:
            listed = ", ".join(f"{t[i]:.3f} .. {t[i + 1]:.3f} s" for i in gaps[:MAX_LISTED])
            more = f" and {gaps.size - MAX_LISTED} more" if gaps.size > MAX_LISTED else ""
            parts.append(f"{gaps.size} gap(s) longer than {threshold:.3f} s: {listed}{more}")
        if parts:
            out.append(f"input {topic}: " + "; ".join(parts) + f"; no observation is assembled without it "
                       f"(sync.slop {slop:g} s)")
    return out


def quality_warnings(result: Any, cfg: Any, arrivals: dict[str, list[float]]) -> list[str]:
    """Every warning of the module docstring for one evaluated bag (a `BagResult` with metrics)."""
    out: list[str] = []
    for name, lane in result.lanes.items():
        m = result.metrics.get(name, {})
        ex = m.get("executor", {})
        text = clamp_warning(name, ex, int(m.get("commands", {}).get("count", 0)), cfg.replay.clamp_warning_fraction)
        if text:
            out.append(text)
        trips = int(ex.get("watchdog_trips", 0))
        if trips:
            out.append(f"[{name}] the watchdog tripped {trips} time(s) (no chunk within executor.watchdog_timeout = "
                       f"{cfg.executor.watchdog_timeout:g} s): the executor held the arm meanwhile")
        text = no_observation_warning(lane)
        if text:
            out.append(text)
        skipped = int(m.get("chunks", {}).get("not_scored", 0))
        if skipped:
            others = ", ".join(n for n in result.lanes if n != name)
            out.append(f"[{name}] {skipped} of {len(lane.records)} chunks not scored: {others} had no observation at "
                       "their triggers (every lane is scored on the samples where all had one)")
    out.extend(gap_warnings(arrivals, result.start, cfg.sync.slop))
    return out
