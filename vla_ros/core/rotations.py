"""Rotation helpers on plain numpy arrays (no scipy, no ROS).

Conventions used everywhere in vla_ros:
- quaternions are (x, y, z, w), the ROS `geometry_msgs/Quaternion` order, unit norm, and are
  kept in the hemisphere w >= 0 when produced here;
- rotation vectors (rx, ry, rz) are axis * angle in radians, |angle| <= pi;
- composition ``quat_mul(a, b)`` applies ``b`` first, then ``a`` (same as matrices ``A @ B``).

The functions accept a single rotation (shape ``(4,)`` / ``(3,)``) or a batch (``(..., 4)`` /
``(..., 3)``) so the executor's per-tick path and vectorised replay metrics share one code path.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-12


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit-normalise and move to the w >= 0 hemisphere. Raises on a zero quaternion."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape == (4,):  # the per-message / per-tick case: plain floats are ~5x cheaper than numpy calls
        x, y, z, w = q.tolist()
        n = math.sqrt(x * x + y * y + z * z + w * w)
        if n < _EPS:
            raise ValueError("quaternion has zero norm; expected a unit quaternion (x, y, z, w)")
        if w / n < 0.0:
            n = -n
        return np.array([x / n, y / n, z / n, w / n])
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n < _EPS):
        raise ValueError("quaternion has zero norm; expected a unit quaternion (x, y, z, w)")
    q = q / n
    return np.where(q[..., 3:4] < 0.0, -q, q)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (x, y, z, w) quaternions (rotation b first, then a)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (= inverse for unit quaternions)."""
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, rad) -> unit quaternion (x, y, z, w)."""
    v = np.asarray(v, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(a/2)/a with its Taylor expansion near 0 keeps small rotations exact.
    small = angle < 1e-6
    safe = np.where(small, 1.0, angle)
    k = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / safe)
    return np.concatenate([v * k, np.cos(half)], axis=-1)


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> rotation vector with angle in [0, pi]."""
    q = quat_normalize(q)
    xyz = q[..., :3]
    w = np.clip(q[..., 3:4], -1.0, 1.0)
    s = np.linalg.norm(xyz, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, w)
    small = s < 1e-9
    k = np.where(small, 2.0 / np.where(small, w, 1.0), angle / np.where(small, 1.0, s))
    return xyz * k


def quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle (rad, in [0, pi]) between two orientations.

    atan2 of the relative rotation's vector and scalar parts: exactly 0 for equal inputs and well
    conditioned for tiny angles, where 2*acos(|a.b|) reports ~1e-8 rad of rounding noise.
    """
    rel = quat_mul(quat_normalize(b), quat_conj(quat_normalize(a)))
    return 2.0 * np.arctan2(np.linalg.norm(rel[..., :3], axis=-1), np.abs(rel[..., 3]))


def quat_slerp(a: np.ndarray, b: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Spherical linear interpolation from a (t=0) to b (t=1) along the shorter arc."""
    a = quat_normalize(a)
    b = quat_normalize(b)
    t = np.asarray(t, dtype=np.float64)
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0.0, -b, b)
    dot = np.abs(dot)
    t = t[..., None]  # scalar -> (1,), per-pair [K] -> [K, 1]: broadcasts against [..., 1]
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    wb = np.where(near, t, np.sin(t * theta) / safe)
    return quat_normalize(wa * a + wb * b)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> 3x3 rotation matrix."""
    x, y, z, w = np.moveaxis(quat_normalize(q), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )
