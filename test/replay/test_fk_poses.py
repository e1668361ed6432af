"""End-effector pose by forward kinematics of a URDF (Pinocchio) from joint states, compared with TF."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pinocchio", reason="forward kinematics needs the pin package")

from realistic_bags import (  # noqa: E402
    FOREARM, SHOULDER_Z, T0, TOOL, URDF, exact_pose, quat_matrix, shoulder_stamps, tf_config, write_tf_bag,
)
from vla_ros.core.tf_buffer import TransformBuffer  # noqa: E402
from vla_ros.core.urdf_fk import UrdfKinematics  # noqa: E402
from vla_ros.policy.hold import HoldPolicy  # noqa: E402
from vla_ros.replay.bag_io import BagError  # noqa: E402
from vla_ros.replay.evaluate import evaluate_bag  # noqa: E402


def test_fk_equals_the_tf_chain_of_the_same_joint_angles():
    fk = UrdfKinematics(URDF, "base_link", "tool0")
    assert set(fk.joint_names) == {"j1", "j2"}
    buf = TransformBuffer()
    buf.set_transform("shoulder", "forearm", 0.0, FOREARM, (0, 0, 0, 1), static=True)
    for k, (a, b) in enumerate([(0.3, 0.2), (-1.1, 0.7), (2.5, -0.4)]):
        t = float(k)
        buf.set_transform("base_link", "shoulder", t, (0, 0, SHOULDER_Z), (0, 0, math.sin(a / 2), math.cos(a / 2)))
        buf.set_transform("forearm", "tool0", t, TOOL, (0, math.sin(b / 2), 0, math.cos(b / 2)))
        tf = buf.lookup_transform("base_link", "tool0", t)
        p, q = fk.pose({"j1": a, "j2": b})
        np.testing.assert_allclose(p, tf.translation, atol=1e-12)
        np.testing.assert_allclose(quat_matrix(q), quat_matrix(tf.rotation), atol=1e-12)
    with pytest.raises(ValueError, match=r"robot.ee_frame: 'flange' is not a link of the URDF \(links: base_link"):
        UrdfKinematics(URDF, "base_link", "flange")


def test_replay_pose_from_robot_description_and_joint_states(tmp_path):
    bag = write_tf_bag(tmp_path / "fk", "sqlite3", joints_late=0.0, robot_description=URDF)
    result = evaluate_bag(bag, tf_config({"robot": {"ee_pose_source": "fk"}}), HoldPolicy(), progress=False)
    gt = result.ground_truth
    assert gt.sources.topic == "/fk[base_link->tool0]" and gt.sources.kind == "ee_pose"
    t = shoulder_stamps()[77]  # a joint-state stamp
    i = int(np.argmin(np.abs(gt.poses.times - t)))
    assert abs(gt.poses.times[i] - t) < 1e-12
    p, r = exact_pose(t)
    np.testing.assert_allclose(gt.poses.positions[i], p, atol=1e-9, rtol=0)
    np.testing.assert_allclose(quat_matrix(gt.poses.quats[i]), r, atol=1e-9, rtol=0)
    assert result.metrics["hold"]["commands"]["scored"] > 50
    # no URDF anywhere: one sentence naming both places
    plain = write_tf_bag(tmp_path / "nourdf", "mcap", joints_late=0.0)
    with pytest.raises(BagError, match=r"needs a URDF: robot.urdf is empty and the bag has no /robot_description"):
        evaluate_bag(plain, tf_config({"robot": {"ee_pose_source": "fk"}}), HoldPolicy(), progress=False)
    assert T0 == 50.0
