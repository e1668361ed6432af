"""Interpolation between chunk steps: linear position, slerp rotation, linear gripper."""

import numpy as np
import pytest

from executor_testlib import make_chunk, make_executor, rotation_error, yaw
from vla_ros.core.executor.interpolation import PoseSample, Waypoints, blend, slerp
from vla_ros.core.rotations import quat_slerp, rotvec_to_quat


def z_quat(angle: float) -> np.ndarray:
    return rotvec_to_quat(np.array([0.0, 0.0, angle]))


def test_waypoints_interpolate_each_channel_and_clamp_at_the_ends():
    wp = Waypoints(
        np.array([1.0, 1.1, 1.2]),
        np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.1, 0.2, 0.0]]),
        np.stack([z_quat(0.0), z_quat(0.4), z_quat(0.4)]),
        np.array([1.0, 0.0, 0.5]),
    )
    s = wp.sample(1.025)  # a quarter into the first segment
    np.testing.assert_allclose(s.position, [0.025, 0.0, 0.0], atol=1e-12)
    assert yaw(s.quaternion) == pytest.approx(0.1, abs=1e-12)
    assert s.gripper == pytest.approx(0.75)
    s = wp.sample(1.15)
    np.testing.assert_allclose(s.position, [0.1, 0.1, 0.0], atol=1e-12)
    assert yaw(s.quaternion) == pytest.approx(0.4) and s.gripper == pytest.approx(0.25)
    # Before the first / after the last waypoint: held, never extrapolated.
    np.testing.assert_allclose(wp.sample(0.0).position, [0.0, 0.0, 0.0])
    np.testing.assert_allclose(wp.sample(9.0).position, [0.1, 0.2, 0.0])
    assert wp.sample(9.0).gripper == 0.5


def test_slerp_matches_the_shared_rotation_helper_on_random_pairs():
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b = rotvec_to_quat(rng.normal(size=3)), rotvec_to_quat(rng.normal(size=3))
        t = float(rng.uniform())
        assert rotation_error(slerp(a, b, t), quat_slerp(a, b, t)) < 1e-9


def test_batch_sampling_equals_single_sampling():
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.05, 0.2, 8))
    wp = Waypoints(times, rng.normal(size=(8, 3)), rotvec_to_quat(rng.normal(size=(8, 3))), rng.uniform(size=8))
    ts = np.linspace(times[0] - 0.1, times[-1] + 0.1, 57)
    batch = wp.sample_many(ts)
    for i, t in enumerate(ts):
        s = wp.sample(float(t))
        np.testing.assert_allclose(batch.positions[i], s.position, atol=1e-12)
        assert rotation_error(batch.quaternions[i], s.quaternion) < 1e-9
        assert batch.gripper[i] == pytest.approx(s.gripper)


def test_blend_is_exact_about_one_axis():
    a = PoseSample(np.zeros(3), z_quat(0.0), 0.0)
    b = PoseSample(np.ones(3), z_quat(0.6), 1.0)
    m = blend(a, b, 0.25)
    np.testing.assert_allclose(m.position, [0.25] * 3)
    assert yaw(m.quaternion) == pytest.approx(0.15) and m.gripper == pytest.approx(0.25)
    assert blend(a, b, 0.0) is a and blend(a, b, 1.0) is b


def test_control_ticks_interpolate_between_chunk_steps():
    """A 10 Hz chunk executed at 100 Hz: every tick lies on the straight line / slerp between steps."""
    ex = make_executor()
    chunk = make_chunk(x=[0.40, 0.42, 0.42], rz=[0.0, 0.2, 0.2], gripper=[1.0, 0.0, 0.0])
    assert ex.submit(chunk, 0.0).accepted
    for k in range(11):
        t = k * 0.01
        cmd = ex.tick(t)
        assert cmd.position[0] == pytest.approx(0.40 + 0.2 * t, abs=1e-12)
        assert yaw(cmd.orientation) == pytest.approx(2.0 * t, abs=1e-9)
        assert cmd.gripper == pytest.approx(1.0 - 10.0 * t)
        assert not cmd.hold and cmd.state.label == "running"
