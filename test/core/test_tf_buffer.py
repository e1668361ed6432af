"""TransformBuffer: tf2's lookup semantics (chains, static links, interpolation, limits, errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_ros.core.rotations import quat_angle
from vla_ros.core.tf_buffer import ConnectivityError, ExtrapolationError, TransformBuffer


def zq(angle: float) -> np.ndarray:
    return np.array([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)])


def yq(angle: float) -> np.ndarray:
    return np.array([0.0, math.sin(angle / 2), 0.0, math.cos(angle / 2)])


def chain_buffer(**kw) -> TransformBuffer:
    """base -> shoulder (yaw, dynamic at 1 Hz stamps) -> arm (static offset) -> tool (pitch, dynamic)."""
    buf = TransformBuffer(**kw)
    buf.set_transform("base", "arm", 0.0, (0.0, 0.0, 0.5), (0, 0, 0, 1), static=True)  # re-parented below
    buf.set_transform("shoulder", "arm", 0.0, (0.3, 0.0, 0.0), (0, 0, 0, 1), static=True)
    for t in (10.0, 11.0, 12.0):
        buf.set_transform("/base", "shoulder", t, (0.0, 0.0, 0.5), zq(0.2 * (t - 10)))
        buf.set_transform("arm", "tool", t + 0.5, (0.2, 0.0, 0.0), yq(0.1 * (t - 10)))
    return buf


def hand_pose(t: float) -> tuple[np.ndarray, np.ndarray]:
    """The tool in base at time t, computed by hand: angles interpolate linearly about one axis."""
    yaw = 0.2 * (t - 10)
    pitch = 0.1 * (t - 10.5)
    c, s = math.cos(yaw), math.sin(yaw)
    arm = np.array([0.3 * c, 0.3 * s, 0.5])
    tool = arm + np.array([0.2 * c, 0.2 * s, 0.0])
    # R = Rz(yaw) * Ry(pitch)
    cy, sy, cp, sp = math.cos(yaw / 2), math.sin(yaw / 2), math.cos(pitch / 2), math.sin(pitch / 2)
    q = np.array([-sy * sp, cy * sp, sy * cp, cy * cp])
    return tool, q


def test_chain_with_static_link_interpolates_to_hand_computed_pose():
    buf = chain_buffer()
    assert buf.parent("arm") == "shoulder" and buf.is_static("arm") and not buf.is_static("tool")
    for t in (10.5, 10.8, 11.25, 12.0):
        tf = buf.lookup_transform("base", "tool", t)
        p, q = tf.apply((0, 0, 0))
        hp, hq = hand_pose(t)
        np.testing.assert_allclose(p, hp, atol=1e-12)
        assert float(quat_angle(q, hq)) < 1e-9
    # inverse direction and a pose given in the tool frame
    t = 11.25
    inv = buf.lookup_transform("tool", "base", t)
    p, _ = inv.apply(buf.lookup_transform("base", "tool", t).apply((0.1, 0.2, 0.3))[0])
    np.testing.assert_allclose(p, (0.1, 0.2, 0.3), atol=1e-12)
    # time 0 = the latest time every link is known at (shoulder: 12.0; tool: 12.5)
    assert buf.latest_common_time("base", "tool") == pytest.approx(12.0)
    np.testing.assert_allclose(buf.lookup_transform("base", "tool").translation, hand_pose(12.0)[0], atol=1e-12)


def test_extrapolation_limit_and_cache_length():
    buf = chain_buffer(max_extrapolation=0.1)
    buf.lookup_transform("base", "tool", 12.05)  # 0.05 s past the shoulder's newest stamp: allowed
    with pytest.raises(ExtrapolationError, match=r"base -> shoulder is not known at t = 12\.300000 s.*after the new"):
        buf.lookup_transform("base", "tool", 12.3)
    with pytest.raises(ExtrapolationError, match=r"arm -> tool .*before the first"):
        buf.lookup_transform("base", "tool", 10.2)
    short = TransformBuffer(cache_time=1.5)
    for t in range(10):
        short.set_transform("base", "tool", float(t), (t, 0, 0), (0, 0, 0, 1))
    with pytest.raises(ExtrapolationError, match=r"known 7\.000000 \.\. 9\.000000"):
        short.lookup_transform("base", "tool", 6.0)


def test_broken_chain_names_the_gap_and_the_frames():
    buf = chain_buffer()
    buf.set_transform("world", "camera", 10.0, (0, 0, 1), (0, 0, 0, 1), static=True)
    with pytest.raises(ConnectivityError, match=r"broken between 'base' and 'world'.*frames present: arm, base, cam"):
        buf.lookup_transform("world", "tool", 11.0)
    with pytest.raises(ConnectivityError, match=r"frame 'flange' is not in the transform tree"):
        buf.lookup_transform("base", "flange", 11.0)
    with pytest.raises(ValueError, match="unit quaternion"):
        buf.set_transform("base", "x", 0.0, (0, 0, 0), (0, 0, 0, 2))
