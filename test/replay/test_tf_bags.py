"""Bags shaped like real recordings: the EE pose only in TF, late joint states, nameless joint states."""

from __future__ import annotations

import numpy as np
import pytest

from realistic_bags import JOINTS_LATE, T0, hand_pose, quat_matrix, tf_config, tool_stamps, write_tf_bag
from vla_ros.policy.hold import HoldPolicy
from vla_ros.replay.bag_io import BagError
from vla_ros.replay.evaluate import evaluate_bag


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_ee_pose_from_tf_chain_matches_hand_computation(tmp_path, storage):
    bag = write_tf_bag(tmp_path / "tf_bag", storage)
    result = evaluate_bag(bag, tf_config(), HoldPolicy(), progress=False)
    gt = result.ground_truth
    assert gt.sources.kind == "ee_pose" and gt.sources.topic == "/tf[base_link->tool0]"
    # a chosen time: a tool0 stamp, where the shoulder's yaw is interpolated between two of its stamps
    t = tool_stamps()[60]
    i = int(np.argmin(np.abs(gt.poses.times - t)))
    assert abs(gt.poses.times[i] - t) < 1e-12
    p, r = hand_pose(t)
    np.testing.assert_allclose(gt.poses.positions[i], p, atol=1e-9, rtol=0)
    np.testing.assert_allclose(quat_matrix(gt.poses.quats[i]), r, atol=1e-9, rtol=0)
    # the hold lane observed the TF pose: its chunks start where the arm was (the arm moves ~0.2 m/s)
    hold = result.metrics["hold"]
    assert hold["commands"]["scored"] > 50 and hold["chunks"]["position_error_by_step_m"][0] < 0.005
    # the policy lane (hold policy, joint states in its observation) starts when the joint states do
    pol = result.lanes["policy"]
    assert pol.records and min(r.chunk.stamp for r in pol.records) >= T0 + JOINTS_LATE - 0.1
    assert result.metrics["policy"]["inputs"]["problems"] == {}


def test_joint_states_without_names_are_mapped_by_position(tmp_path):
    bag = write_tf_bag(tmp_path / "nameless", "mcap", empty_names=True)
    result = evaluate_bag(bag, tf_config(), HoldPolicy(), progress=False)
    assert result.lanes["policy"].records
    assert not any("joint" in k for k in result.metrics["policy"]["inputs"]["problems"])
    # without robot.joint_names the positions cannot be mapped: one sentence saying what to set
    with pytest.raises(BagError, match=r"name: empty, and robot.joint_names is empty"):
        evaluate_bag(bag, tf_config({"robot": {"joint_names": []}}), HoldPolicy(), progress=False)
    with pytest.raises(BagError, match=r"2 positions where robot.joint_names has 3 \(j1, j2, j3\)"):
        evaluate_bag(bag, tf_config({"robot": {"joint_names": ["j1", "j2", "j3"]}}), HoldPolicy(), progress=False)


def test_broken_tf_chain_names_the_gap(tmp_path):
    bag = write_tf_bag(tmp_path / "tf_bag", "mcap")
    with pytest.raises(BagError, match=r"no end-effector pose from TF: .*'flange'.*frames present: base_link, forearm"):
        evaluate_bag(bag, tf_config({"robot": {"ee_frame": "flange"}}), HoldPolicy(), progress=False)
