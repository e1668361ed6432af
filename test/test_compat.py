"""A policy that does not fit the robot profile is refused with both sides named."""

import pytest

from vla_ros.core.config import ConfigError, RobotConfig
from vla_ros.policy.base import PolicyMetadata
from vla_ros.policy.compat import check_compatible, compatibility_problems

ONE_CAM = RobotConfig(name="franka", camera_names=["primary"], camera_topics=["/cam"])


def test_three_camera_policy_on_one_camera_robot_names_both():
    meta = PolicyMetadata("flow_matching", checkpoint_id="tri-cam", cameras=("primary", "wrist_left", "wrist_right"))
    with pytest.raises(ConfigError) as err:
        check_compatible(meta, ONE_CAM)
    text = str(err.value)
    assert "policy 'flow_matching' (checkpoint tri-cam) expects 3 camera(s)" in text
    assert "robot profile 'franka' provides 1 (primary); missing: wrist_left, wrist_right" in text


def test_subset_of_cameras_and_matching_state_is_fine():
    meta = PolicyMetadata("flow_matching", cameras=("primary",))
    assert compatibility_problems(meta, RobotConfig()) == []


def test_state_requirements():
    no_pose = RobotConfig(name="r", ee_pose_topic="")
    assert "has no robot.ee_pose_topic" in compatibility_problems(PolicyMetadata("hold"), no_pose)[0]
    joints = RobotConfig(name="r", joint_names=["a", "b", "c"])
    meta = PolicyMetadata("p", state_source="joints", state_dim=8, joint_names=("a", "b", "x"))
    problems = compatibility_problems(meta, joints)
    assert "trained on joints (a, b, x) but robot profile 'r' lists robot.joint_names (a, b, c)" in problems[0]
    assert "expects a joint state of dimension 8 but robot profile 'r' gives 3 joint(s)" in problems[1]


def test_chunk_must_cover_the_inference_period():
    from vla_ros.core.config import PolicyConfig
    from vla_ros.policy.compat import timing_problems

    meta = PolicyMetadata("p", horizon=4, dt=0.05)  # 0.2 s per chunk
    assert timing_problems(meta, PolicyConfig(rate_hz=5.0)) == []
    problems = timing_problems(meta, PolicyConfig(rate_hz=2.0))
    assert ("predicts 4 x 0.05 s = 0.2 s per chunk, shorter than the inference period 1 / policy.rate_hz = 0.5 s"
            in problems[0])
    assert timing_problems(meta, PolicyConfig(rate_hz=2.0, trigger="queue")) == []


def test_delta_actions_need_an_ee_pose_and_mappings_need_a_policy_that_applies_them():
    from vla_ros.core.config import ActionMapConfig, PolicyConfig

    no_pose = RobotConfig(name="r", ee_pose_topic="")
    delta = PolicyMetadata("p", state_source="none", state_dim=0, action_mode="delta")
    assert compatibility_problems(delta, no_pose) == [
        "policy 'p' predicts DELTA actions (offsets from the measured end-effector pose) but robot profile 'r' has no "
        "robot.ee_pose_topic"]
    mapped = PolicyConfig(action_map=ActionMapConfig(space="ee", mode="delta"))
    assert "policy 'hold' does not take policy.action_map / policy.state_map" in \
        compatibility_problems(PolicyMetadata("hold"), RobotConfig(), mapped)[0]
    assert compatibility_problems(PolicyMetadata("hold"), RobotConfig(), PolicyConfig()) == []


def test_report_names_what_was_compared_and_the_verdict():
    from vla_ros.policy.compat import compatibility_report

    meta = PolicyMetadata("p", checkpoint_id="c", cameras=("wrist", "primary"), image_size=(224, 224))
    lines = compatibility_report(meta, RobotConfig(name="r"))
    assert lines[0] == "compatibility check: policy 'p' (checkpoint c) on robot profile 'r'"
    assert ("cameras, in the policy's order: 1 wrist <- /camera/wrist/image_raw, "
            "2 primary <- /camera/primary/image_raw") in lines[1]
    assert lines[-1] == "  result: compatible"
    lines = compatibility_report(meta, ONE_CAM)
    assert "2 primary <- /cam" in lines[1] and "1 wrist <- MISSING" in lines[1]
    assert lines[-2] == "  REFUSED, 1 problem(s):" and "missing: wrist" in lines[-1]
