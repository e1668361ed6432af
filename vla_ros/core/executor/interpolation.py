"""Poses between waypoints: linear position, slerp rotation, linear gripper.

The control loop runs 10-50x faster than a policy's action rate, so every tick samples a
piecewise trajectory between two chunk steps. This module holds that one piece of math, plus the
two blends the strategies need (two-pose blend for crossfade, weighted mean for temporal
ensembling), on a tiny `PoseSample` value type instead of `EEPose` so the per-tick path does no
re-validation.

Everything here is written for single poses (the per-tick case): scalar ``math`` where numpy's
per-call overhead would dominate, numpy only for the 3-/4-vectors themselves.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from vla_ros.core.rotations import quat_normalize, quat_slerp, quat_to_rotvec


@dataclass(frozen=True)
class PoseSample:
    """One end-effector target: position (m), unit quaternion (x, y, z, w), gripper in [0, 1].

    ``gripper`` is None where it is not known (a hold before any chunk ever set it): the
    executor then leaves the gripper alone instead of guessing.
    """

    position: np.ndarray
    quaternion: np.ndarray
    gripper: float | None = None

    def is_finite(self) -> bool:
        g_ok = self.gripper is None or math.isfinite(self.gripper)  # plain floats: this runs every tick
        return bool(g_ok and all(map(math.isfinite, self.position.tolist()))
                    and all(map(math.isfinite, self.quaternion.tolist())))

    def as_action(self) -> np.ndarray:
        """7-vector (x, y, z, rx, ry, rz, gripper) in the action layout; gripper None -> 0."""
        g = 0.0 if self.gripper is None else float(self.gripper)
        return np.concatenate([self.position, quat_to_rotvec(self.quaternion), [g]])


class PoseBatch(NamedTuple):
    """K poses at once (plan sampling): positions [K,3], quaternions [K,4], gripper [K]."""

    positions: np.ndarray
    quaternions: np.ndarray
    gripper: np.ndarray

    def actions(self) -> np.ndarray:
        """[K, 7] actions (x, y, z, rx, ry, rz, gripper)."""
        if self.positions.shape[0] == 0:
            return np.zeros((0, 7))
        return np.concatenate([self.positions, quat_to_rotvec(self.quaternions), self.gripper[:, None]], axis=1)


def blend_many(a: PoseBatch, b: PoseBatch, w: np.ndarray) -> PoseBatch:
    """Row-wise `blend`: (1 - w) * a + w * b with w[K] in [0, 1]."""
    w = np.clip(w, 0.0, 1.0)
    pos = a.positions + w[:, None] * (b.positions - a.positions)
    quat = quat_slerp(a.quaternions, b.quaternions, w)
    # Rows at exactly 0 / 1 take the endpoint as is, like the scalar `blend`.
    quat = np.where((w <= 0.0)[:, None], a.quaternions, np.where((w >= 1.0)[:, None], b.quaternions, quat))
    return PoseBatch(pos, quat, a.gripper + w * (b.gripper - a.gripper))


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Slerp between two unit quaternions along the shorter arc (t=0 -> a, t=1 -> b).

    Scalar twin of `vla_ros.core.rotations.quat_slerp` in plain floats: it runs every control
    tick, where numpy's per-call overhead on 4-vectors costs more than the arithmetic.
    """
    dot = float(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3])
    if dot < 0.0:
        b = -b
        dot = -dot
    if dot > 0.9999995:  # nearly equal: normalised lerp avoids 0/0, error < 1e-12
        q = a + t * (b - a)
    else:
        theta = math.acos(min(dot, 1.0))
        s = math.sin(theta)
        q = (math.sin((1.0 - t) * theta) / s) * a + (math.sin(t * theta) / s) * b
    q = q / math.sqrt(float(q @ q))
    return -q if q[3] < 0.0 else q


def quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Geodesic angle (rad) between two unit quaternions.

    atan2 of the relative rotation's vector and scalar parts: exactly 0 for equal inputs and well
    conditioned for tiny angles, where acos(dot) would report ~1e-8 rad of rounding noise.
    """
    x, y, z, w = _relative(a, b)
    s = math.sqrt(x * x + y * y + z * z)
    return 2.0 * s if s < 1e-12 else 2.0 * math.atan2(s, w)  # |quat_delta_rotvec(a, b)|


def _relative(q_from: np.ndarray, q_to: np.ndarray) -> tuple[float, float, float, float]:
    """q_to * q_from^-1 as plain floats, in the w >= 0 hemisphere."""
    x1, y1, z1, w1 = q_from.tolist()
    x1, y1, z1 = -x1, -y1, -z1  # conjugate
    x2, y2, z2, w2 = q_to.tolist()
    x = w2 * x1 + x2 * w1 + y2 * z1 - z2 * y1
    y = w2 * y1 - x2 * z1 + y2 * w1 + z2 * x1
    z = w2 * z1 + x2 * y1 - y2 * x1 + z2 * w1
    w = w2 * w1 - x2 * x1 - y2 * y1 - z2 * z1
    if w < 0.0:
        x, y, z, w = -x, -y, -z, -w
    return x, y, z, w


def quat_delta_rotvec(q_from: np.ndarray, q_to: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) of the rotation taking q_from to q_to: q_to * q_from^-1."""
    x, y, z, w = _relative(q_from, q_to)
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-12:
        return np.array([2.0 * x, 2.0 * y, 2.0 * z])
    angle = 2.0 * math.atan2(s, w)
    return np.array([x, y, z]) * (angle / s)


def blend(a: PoseSample, b: PoseSample, w: float) -> PoseSample:
    """(1 - w) * a + w * b: lerp position and gripper, slerp rotation. w=0 -> a, w=1 -> b."""
    if w <= 0.0:
        return a
    if w >= 1.0:
        return b
    if a.gripper is None or b.gripper is None:
        g = b.gripper if a.gripper is None else a.gripper
    else:
        g = a.gripper + w * (b.gripper - a.gripper)
    return PoseSample(a.position + w * (b.position - a.position), slerp(a.quaternion, b.quaternion, w), g)


class Waypoints:
    """Timed poses t_0 < t_1 < ... sampled by interpolation; clamped at both ends.

    Built once per chunk (vectorised quaternion conversion), sampled every tick (bisect + one
    slerp). ``shift(dt)`` moves the whole trajectory in time (bridge insertion).
    """

    __slots__ = ("times", "positions", "quaternions", "gripper", "_tlist")

    def __init__(self, times: np.ndarray, positions: np.ndarray, quaternions: np.ndarray, gripper: np.ndarray,
                 *, normalized: bool = False):
        times = np.asarray(times, np.float64)
        if times.ndim != 1 or times.size < 1:
            raise ValueError(f"waypoints.times: expected a non-empty 1-D array, got shape {times.shape}")
        if times.size > 1 and not np.all(np.diff(times) > 0.0):
            raise ValueError("waypoints.times: expected strictly increasing times")
        self.times = times
        self.positions = np.asarray(positions, np.float64).reshape(-1, 3)
        q = np.asarray(quaternions, np.float64).reshape(-1, 4)
        if not normalized:
            q = quat_normalize(q)
        if q.shape[0] > 1:
            # Same hemisphere as the previous waypoint, so consecutive slerps never take the long way:
            # waypoint i flips iff an odd number of consecutive pairs up to i point apart.
            pair = np.where(np.einsum("ij,ij->i", q[1:], q[:-1]) < 0.0, -1.0, 1.0)
            q = q * np.concatenate([[1.0], np.cumprod(pair)])[:, None]
        self.quaternions = q
        self.gripper = np.asarray(gripper, np.float64).reshape(-1)
        n = times.size
        if not (self.positions.shape[0] == self.quaternions.shape[0] == self.gripper.shape[0] == n):
            raise ValueError("waypoints: times, positions, quaternions and gripper must have the same length")
        self._tlist = times.tolist()

    @property
    def start(self) -> float:
        return self._tlist[0]

    @property
    def end(self) -> float:
        return self._tlist[-1]

    def __len__(self) -> int:
        return len(self._tlist)

    def shift(self, dt: float) -> None:
        self.times = self.times + dt
        self._tlist = self.times.tolist()

    def sample(self, t: float) -> PoseSample:
        """Pose at time `t` (linear / slerp / linear between the two neighbouring waypoints)."""
        tl = self._tlist
        if t <= tl[0]:
            return self._at(0)
        if t >= tl[-1]:
            return self._at(len(tl) - 1)
        i = bisect.bisect_right(tl, t)  # tl[i-1] <= t < tl[i]
        t0, t1 = tl[i - 1], tl[i]
        u = (t - t0) / (t1 - t0)
        p0, p1 = self.positions[i - 1], self.positions[i]
        g0, g1 = float(self.gripper[i - 1]), float(self.gripper[i])
        return PoseSample(p0 + u * (p1 - p0), slerp(self.quaternions[i - 1], self.quaternions[i], u),
                          g0 + u * (g1 - g0))

    def sample_many(self, ts: np.ndarray) -> PoseBatch:
        """`sample` at every time in `ts` at once (vectorised; same values)."""
        ts = np.asarray(ts, np.float64)
        n = len(self._tlist)
        if n == 1:
            k = ts.shape[0]
            return PoseBatch(np.repeat(self.positions, k, 0), np.repeat(self.quaternions, k, 0),
                             np.repeat(self.gripper, k))
        i1 = np.clip(np.searchsorted(self.times, ts, side="right"), 1, n - 1)
        i0 = i1 - 1
        t0, t1 = self.times[i0], self.times[i1]
        u = np.clip((ts - t0) / (t1 - t0), 0.0, 1.0)
        pos = self.positions[i0] + u[:, None] * (self.positions[i1] - self.positions[i0])
        quat = quat_slerp(self.quaternions[i0], self.quaternions[i1], u)
        quat = np.where((u <= 0.0)[:, None], self.quaternions[i0],
                        np.where((u >= 1.0)[:, None], self.quaternions[i1], quat))
        quat = np.where((quat[:, 3] < 0.0)[:, None], -quat, quat)  # canonical w >= 0, like `sample`
        grip = self.gripper[i0] + u * (self.gripper[i1] - self.gripper[i0])
        return PoseBatch(pos, quat, grip)

    def _at(self, i: int) -> PoseSample:
        q = self.quaternions[i]
        return PoseSample(self.positions[i].copy(), -q if q[3] < 0.0 else q.copy(), float(self.gripper[i]))
