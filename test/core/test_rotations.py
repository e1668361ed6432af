"""Rotation helpers against closed-form cases and each other."""

import numpy as np
import pytest

from vla_ros.core import rotations as R

RNG = np.random.default_rng(1)


def random_quats(n):
    return R.quat_normalize(RNG.normal(size=(n, 4)))


def test_known_rotation_about_z():
    q = R.rotvec_to_quat(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(q, [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(R.quat_to_matrix(q) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_rotvec_quat_round_trip_including_tiny_angles():
    dirs = R.quat_normalize(np.concatenate([RNG.normal(size=(55, 3)), np.zeros((55, 1))], axis=1))[:, :3]
    angles = np.concatenate([RNG.uniform(0, np.pi - 1e-3, 50), RNG.uniform(0, 1e-9, 5)])
    v = dirs * angles[:, None]  # angles within [0, pi): the representation is unique there
    np.testing.assert_allclose(R.quat_to_rotvec(R.rotvec_to_quat(v)), v, atol=1e-9)


def test_multiplication_matches_matrices():
    a, b = random_quats(10), random_quats(10)
    np.testing.assert_allclose(R.quat_to_matrix(R.quat_mul(a, b)), R.quat_to_matrix(a) @ R.quat_to_matrix(b),
                               atol=1e-12)
    np.testing.assert_allclose(R.quat_normalize(R.quat_mul(a, R.quat_conj(a))), np.tile([0, 0, 0, 1.0], (10, 1)),
                               atol=1e-12)


def test_slerp_endpoints_midpoint_and_short_arc():
    a = R.rotvec_to_quat(np.array([0.0, 0.0, 0.2]))
    b = R.rotvec_to_quat(np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(R.quat_slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(R.quat_slerp(a, b, 1.0), b, atol=1e-12)
    np.testing.assert_allclose(R.quat_to_rotvec(R.quat_slerp(a, b, 0.5)), [0, 0, 0.6], atol=1e-12)
    np.testing.assert_allclose(R.quat_slerp(a, -b, 0.5), R.quat_slerp(a, b, 0.5), atol=1e-12)  # same rotation


def test_angle_between_orientations():
    a = R.rotvec_to_quat(np.array([0.3, 0.0, 0.0]))
    b = R.rotvec_to_quat(np.array([-0.2, 0.0, 0.0]))
    assert R.quat_angle(a, b) == pytest.approx(0.5)


def test_zero_quaternion_is_an_error():
    with pytest.raises(ValueError, match="zero norm"):
        R.quat_normalize(np.zeros(4))


def test_batched_slerp_with_per_pair_fractions():
    a = R.rotvec_to_quat(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.4]]))
    b = R.rotvec_to_quat(np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.8]]))
    out = R.quat_slerp(a, b, np.array([0.25, 0.5]))
    np.testing.assert_allclose(R.quat_to_rotvec(out), [[0, 0, 0.25], [0, 0, 0.6]], atol=1e-12)
