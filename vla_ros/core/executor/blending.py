"""How a new chunk combines with the current plan (``executor.strategy``).

The plan is ONE timed trajectory (`Plan`). When a chunk arrives, the strategy bakes it into a new
plan on the new chunk's own steps (plus a point at the arrival time, so the plan is continuous
there); every control tick then samples a single trajectory, however many chunks overlap, and the
RTC plan published to the policy is exactly what will be executed.

``replace``
    Newest wins: the new plan is the chunk alone (with its interpolation anchor). Most reactive;
    disagreement between consecutive chunks shows up as a jump, which the bridge and the safety
    step limits bound.
``crossfade``
    Linear blend over the overlap: at step time t the new plan is
    ``(1 - w) * old(t) + w * chunk(t)``, with ``w`` rising linearly from 0 at the arrival to 1 at
    the end of the old plan. Continuous by construction.
``temporal_ensemble``
    ACT-style (Zhao et al. 2023): the plan at a step time is the weighted mean of every chunk's
    prediction for that time, weight ``exp(-ensemble_decay * age)`` with age = how many of the
    newest chunk's steps older the chunk's observation is. Baked incrementally: each plan point
    keeps the total weight of the chunks that predicted it (newest = 1); a new chunk scales that
    by ``exp(-decay * steps since the previous chunk)`` and is folded in with weight 1. decay 0 =
    plain average; larger decay trusts older chunks less (ACT writes the same family with the sign
    flipped, favouring the oldest).

Between plan points, commands are interpolated (linear / slerp / linear), so the combination is
exact at the chunk's steps and piecewise linear between them. The new plan ends where the new
chunk ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_ros.core.executor.interpolation import PoseBatch, Waypoints, blend_many
from vla_ros.core.executor.timeline import TIME_EPS, PlacedChunk

STRATEGIES = ("replace", "crossfade", "temporal_ensemble")


@dataclass
class Plan:
    """The executor's trajectory: waypoints, per-point ensemble weight, and the newest chunk's identity.

    ``origin`` / ``dt`` define the newest chunk's step grid (``origin + k * dt``), on which the
    RTC plan is sampled; `shift` moves everything in time (bridge insertion).
    """

    waypoints: Waypoints
    weights: np.ndarray
    seq: int
    policy_id: str
    stamp: float
    dt: float
    origin: float

    @classmethod
    def from_chunk(cls, c: PlacedChunk) -> "Plan":
        return cls(c.waypoints, np.ones(len(c.waypoints)), c.seq, c.policy_id, c.stamp, c.dt, c.origin)

    @property
    def start(self) -> float:
        return self.waypoints.start

    @property
    def end(self) -> float:
        return self.waypoints.end

    def shift(self, dt: float) -> None:
        self.waypoints.shift(dt)
        self.origin += dt

    def weight_at(self, ts: np.ndarray) -> np.ndarray:
        """Ensemble weight interpolated at `ts`; 0 outside the plan (no prediction there)."""
        w = np.interp(ts, self.waypoints.times, self.weights)
        return np.where((ts < self.start - TIME_EPS) | (ts > self.end + TIME_EPS), 0.0, w)


def _merge_times(c: PlacedChunk, now: float) -> np.ndarray:
    """The arrival instant followed by the chunk's steps after it."""
    t = c.waypoints.times
    return np.concatenate([[now], t[t > now + TIME_EPS]])


def _plan(times: np.ndarray, poses: PoseBatch, weights: np.ndarray, c: PlacedChunk) -> Plan:
    wp = Waypoints(times, poses.positions, poses.quaternions, poses.gripper, normalized=True)
    return Plan(wp, weights, c.seq, c.policy_id, c.stamp, c.dt, c.origin)


class Strategy:
    """Base: the new chunk replaces the plan (that is `replace`)."""

    name = "replace"

    def combine(self, plan: Plan | None, c: PlacedChunk, now: float) -> Plan:
        return Plan.from_chunk(c)


class Replace(Strategy):
    name = "replace"


class Crossfade(Strategy):
    name = "crossfade"

    def combine(self, plan: Plan | None, c: PlacedChunk, now: float) -> Plan:
        if plan is None or plan.end <= now + TIME_EPS:  # nothing left to fade from
            return Plan.from_chunk(c)
        ts = _merge_times(c, now)
        w = np.clip((ts - now) / (plan.end - now), 0.0, 1.0)
        poses = blend_many(plan.waypoints.sample_many(ts), c.waypoints.sample_many(ts), w)
        return _plan(ts, poses, np.ones_like(ts), c)


class TemporalEnsemble(Strategy):
    name = "temporal_ensemble"

    def __init__(self, decay: float = 0.5):
        self.decay = float(decay)

    def combine(self, plan: Plan | None, c: PlacedChunk, now: float) -> Plan:
        if plan is None or plan.end <= now + TIME_EPS:
            return Plan.from_chunk(c)
        ts = _merge_times(c, now)
        age_steps = max(0.0, (c.stamp - plan.stamp) / c.dt)
        w_old = plan.weight_at(ts) * math.exp(-self.decay * age_steps)
        poses = blend_many(plan.waypoints.sample_many(ts), c.waypoints.sample_many(ts), 1.0 / (w_old + 1.0))
        return _plan(ts, poses, w_old + 1.0, c)


def make_strategy(name: str, ensemble_decay: float = 0.5) -> Strategy:
    """Strategy by its config name (``executor.strategy``)."""
    if name == "replace":
        return Replace()
    if name == "crossfade":
        return Crossfade()
    if name == "temporal_ensemble":
        return TemporalEnsemble(ensemble_decay)
    raise ValueError(f"executor.strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")
