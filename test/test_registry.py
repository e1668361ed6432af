"""Policies are found by name through the installed entry points, and hold behaves as the baseline."""

from importlib import metadata

import numpy as np
import pytest

from vla_ros.core.types import EEPose, Observation
from vla_ros.policy import registry
from vla_ros.policy.hold import HoldPolicy


def test_entry_points_are_installed_for_builtin_policies():
    eps = {ep.name: ep.value for ep in metadata.entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert eps["hold"] == "vla_ros.policy.hold:HoldPolicy"
    assert eps["flow_matching"].endswith(":FlowMatchingPolicy")


def test_unknown_policy_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"policy\.type: unknown policy 'nope'; known policies: flow_matching, hold"):
        registry.get_policy_class("nope")


def test_hold_repeats_the_current_pose(tmp_path):
    (tmp_path / "config.json").write_text('{"horizon": 4, "dt": 0.2}')
    policy = registry.load_policy("hold", str(tmp_path))
    assert isinstance(policy, HoldPolicy) and policy.metadata.horizon == 4
    obs = Observation(stamp=5.0, ee_pose=EEPose([0.4, 0.0, 0.2], [0, 0, 0, 1], "base"), gripper=0.3)
    chunk = policy.infer(obs)
    assert chunk.stamp == 5.0 and chunk.dt == 0.2 and chunk.frame_id == "base" and chunk.policy_id == "hold"
    np.testing.assert_allclose(chunk.actions, np.tile([0.4, 0.0, 0.2, 0, 0, 0, 0.3], (4, 1)))
    with pytest.raises(ValueError, match="ee_pose: required"):
        policy.infer(Observation(stamp=5.0))


def test_hold_without_gripper_feedback_commands_open():
    chunk = HoldPolicy(horizon=2).infer(Observation(stamp=0.0, ee_pose=EEPose([0.4, 0.0, 0.2], [0, 0, 0, 1])))
    np.testing.assert_array_equal(chunk.actions[:, 6], [1.0, 1.0])
