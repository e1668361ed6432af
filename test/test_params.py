"""The schema as ROS parameters on a real rclpy node: declared with docs, overridable, validated."""

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from vla_ros.core.config import ConfigError, VlaConfig, config_from_dict
from vla_ros.ros.params import declare_config, parameter_overrides


def make_node(ctx, **overrides):
    params = [Parameter(k, value=v) for k, v in overrides.items()]
    return Node("params_test", context=ctx, parameter_overrides=params)


def test_defaults_come_from_the_base_config_and_are_documented(rclpy_context):
    base = config_from_dict({"policy": {"device": "cuda"}, "robot": {"joint_names": ["a", "b"]}})
    node = make_node(rclpy_context)
    try:
        cfg = declare_config(node, base)
        assert cfg == base
        assert node.get_parameter("policy.device").value == "cuda"
        desc = node.describe_parameter("executor.control_rate")
        assert desc.description == "Control-loop rate (Hz)." and "<= 1000.0" in desc.additional_constraints
        assert desc.floating_point_range[0].to_value == 1000.0
    finally:
        node.destroy_node()


def test_launch_style_overrides_win_and_ints_work_for_floats(rclpy_context):
    node = make_node(rclpy_context, **{"executor.control_rate": 250, "robot.camera_names": ["primary"],
                                       "robot.camera_topics": ["/cam"], "executor.dry_run": False})
    try:
        cfg = declare_config(node)
        assert cfg.executor.control_rate == 250.0 and cfg.executor.dry_run is False
        assert cfg.robot.camera_names == ["primary"]
    finally:
        node.destroy_node()


def test_only_requested_sections_are_declared(rclpy_context):
    node = make_node(rclpy_context)
    try:
        declare_config(node, sections=["policy", "sync"])
        assert node.has_parameter("policy.type") and not node.has_parameter("executor.control_rate")
    finally:
        node.destroy_node()


def test_bad_parameter_value_names_the_parameter(rclpy_context):
    node = make_node(rclpy_context, **{"policy.num_steps": 0})
    try:
        with pytest.raises(ConfigError, match=r"^policy\.num_steps: .*out of range. Min: 1, Max: 100"):
            declare_config(node)
    finally:
        node.destroy_node()


def test_wrong_type_from_outside_is_reported_by_the_schema(rclpy_context):
    node = make_node(rclpy_context, **{"sync.slop": "fast"})
    try:
        with pytest.raises(ConfigError, match=r"sync\.slop: expected number, got str 'fast'"):
            declare_config(node)
    finally:
        node.destroy_node()


def test_parameter_overrides_round_trip(rclpy_context):
    cfg = config_from_dict({"sync": {"slop": 0.2}, "robot": {"joint_names": ["j1"]}})
    node = Node("params_rt", context=rclpy_context, parameter_overrides=parameter_overrides(cfg))
    try:
        assert declare_config(node, VlaConfig()) == cfg
    finally:
        node.destroy_node()
