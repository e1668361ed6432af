"""Placing a chunk on the executor's timeline: absolute poses, times, latency compensation.

A chunk's action i is the target for ``stamp + i * dt``, where ``stamp`` is the time of the
observation it was computed from. By the time the chunk arrives, inference and transport have
taken some of that time, so with latency compensation the actions whose time has passed are
skipped and the rest keep their intended times; the last passed action stays as an interpolation
anchor only, so the command at arrival is the chunk's own pose *at that instant* instead of a
jump to the next step. Without compensation the chunk is replayed from its first action starting
at arrival (``now + i * dt``), which is what a naive executor does.

DELTA chunks are resolved here once, against the ``reference_pose`` they carry (the EE pose at
the observation): position = ref.position + delta, rotation = delta * ref (left-multiplied, as
ActionChunk.msg specifies). Everything downstream sees absolute poses only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_ros.core.executor.interpolation import Waypoints
from vla_ros.core.action_modes import absolute_poses
from vla_ros.core.types import ActionChunk

# Two times closer than this are "the same instant" (float rounding of stamps in ns).
TIME_EPS = 1e-9


@dataclass
class PlacedChunk:
    """A chunk on the timeline, in absolute poses, ready to be combined into the plan.

    ``origin`` is the time of action 0 (``stamp``, or the arrival without latency compensation);
    ``waypoints`` hold the kept actions plus the anchor.
    """

    seq: int
    policy_id: str
    stamp: float  # observation stamp: dates the chunk's information
    dt: float
    horizon: int
    arrival: float
    origin: float
    waypoints: Waypoints
    skipped: int
    delay: float


def place_chunk(chunk: ActionChunk, now: float, latency_compensation: bool) -> PlacedChunk | None:
    """Put `chunk` on the timeline at arrival time `now`; None if every action is already past.

    The returned ``skipped`` counts the actions not executed because their time had passed
    (the anchor among them); ``delay`` is ``now - chunk.stamp``.
    """
    pos, quats, grip = absolute_poses(chunk)
    h = chunk.horizon
    delay = now - chunk.stamp
    if latency_compensation:
        origin = chunk.stamp
        times = origin + chunk.dt * np.arange(h)
        passed = int(np.count_nonzero(times < now - TIME_EPS))
        if passed >= h:
            return None
        keep_from = max(passed - 1, 0)  # the anchor: last passed action, for interpolation only
    else:
        origin = now
        times = origin + chunk.dt * np.arange(h)
        passed = 0
        keep_from = 0
    wp = Waypoints(times[keep_from:], pos[keep_from:], quats[keep_from:], grip[keep_from:])
    return PlacedChunk(
        seq=int(chunk.seq),
        policy_id=chunk.policy_id,
        stamp=chunk.stamp,
        dt=chunk.dt,
        horizon=h,
        arrival=now,
        origin=origin,
        waypoints=wp,
        skipped=passed,
        delay=delay,
    )


def grid_after(origin: float, dt: float, t: float) -> float:
    """First time ``origin + k * dt`` (k any integer) at or after `t`."""
    k = math.ceil((t - origin) / dt - TIME_EPS)
    return origin + k * dt
