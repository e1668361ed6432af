"""Rotation representations pretrained policies use, to and from this package's quaternions.

vla_ros itself speaks (x, y, z, w) quaternions and rotation vectors (`vla_ros.core.rotations`).
Pretrained checkpoints write rotations as the dataset they were trained on did: axis-angle
(robosuite, LIBERO), roll-pitch-yaw Euler angles, or quaternions in either component order.
The action and state adapters (`vla_ros.policy.adapters`) convert through these functions, so
every representation has one tested definition.

Conventions:
- ``euler_xyz`` is roll, pitch, yaw about the FIXED x, y, z axes (extrinsic; applied x first):
  R = Rz(yaw) @ Ry(pitch) @ Rx(roll), the ROS ``tf2`` RPY and ``scipy``'s ``from_euler("xyz")``.
- ``quat_xyzw`` / ``quat_wxyz``: the component order; the norm is restored, the sign is free.
- ``axis_angle``: a rotation vector (axis * angle, rad).
"""

from __future__ import annotations

import numpy as np

from vla_ros.core.rotations import quat_mul, quat_normalize, quat_to_matrix, quat_to_rotvec, rotvec_to_quat

FORMS = ("axis_angle", "euler_xyz", "quat_xyzw", "quat_wxyz")
SIZES = {"axis_angle": 3, "euler_xyz": 3, "quat_xyzw": 4, "quat_wxyz": 4}


def _axis_quat(angle: np.ndarray, axis: int) -> np.ndarray:
    q = np.zeros(angle.shape + (4,))
    q[..., axis] = np.sin(0.5 * angle)
    q[..., 3] = np.cos(0.5 * angle)
    return q


def euler_xyz_to_quat(rpy: np.ndarray) -> np.ndarray:
    """[..., 3] roll, pitch, yaw (fixed axes) -> [..., 4] unit quaternion (x, y, z, w)."""
    rpy = np.asarray(rpy, dtype=np.float64)
    qx, qy, qz = (_axis_quat(rpy[..., i], i) for i in range(3))
    return quat_normalize(quat_mul(qz, quat_mul(qy, qx)))


def quat_to_euler_xyz(q: np.ndarray) -> np.ndarray:
    """[..., 4] quaternion (x, y, z, w) -> [..., 3] roll, pitch, yaw; pitch in [-pi/2, pi/2]."""
    r = quat_to_matrix(q)
    roll = np.arctan2(r[..., 2, 1], r[..., 2, 2])
    pitch = np.arcsin(np.clip(-r[..., 2, 0], -1.0, 1.0))
    yaw = np.arctan2(r[..., 1, 0], r[..., 0, 0])
    return np.stack([roll, pitch, yaw], axis=-1)


def to_quat(values: np.ndarray, form: str) -> np.ndarray:
    """[..., SIZES[form]] rotation in `form` -> [..., 4] unit quaternion (x, y, z, w)."""
    v = np.asarray(values, dtype=np.float64)
    if form == "axis_angle":
        return rotvec_to_quat(v)
    if form == "euler_xyz":
        return euler_xyz_to_quat(v)
    if form == "quat_xyzw":
        return quat_normalize(v)
    if form == "quat_wxyz":
        return quat_normalize(v[..., [1, 2, 3, 0]])
    raise ValueError(f"rotation: expected one of {', '.join(FORMS)}, got {form!r}")


def from_quat(q: np.ndarray, form: str) -> np.ndarray:
    """[..., 4] quaternion (x, y, z, w) -> [..., SIZES[form]] in `form` (quaternions with w >= 0)."""
    q = quat_normalize(q)
    if form == "axis_angle":
        return quat_to_rotvec(q)
    if form == "euler_xyz":
        return quat_to_euler_xyz(q)
    if form == "quat_xyzw":
        return q
    if form == "quat_wxyz":
        return q[..., [3, 0, 1, 2]]
    raise ValueError(f"rotation: expected one of {', '.join(FORMS)}, got {form!r}")


def rotvec_nearest(rotvec: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The rotation vector of the same rotation nearest `reference`: theta*n or (theta - 2pi)*n.

    A rotation by theta about n is also a rotation by 2pi - theta about -n. `quat_to_rotvec`
    returns the first (theta <= pi); a dataset whose quaternions were not kept in one hemisphere
    (robosuite's, hence LIBERO's, near theta = pi) holds the other one half of the time.
    """
    v = np.asarray(rotvec, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    n = v / np.where(theta < 1e-12, 1.0, theta)
    alt = np.where(theta < 1e-12, v, v - 2.0 * np.pi * n)
    ref = np.asarray(reference, dtype=np.float64)
    closer = np.linalg.norm(alt - ref, axis=-1, keepdims=True) < np.linalg.norm(v - ref, axis=-1, keepdims=True)
    return np.where(closer, alt, v)
