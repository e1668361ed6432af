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


def test_only_selected_keys_are_declared_and_unknown_selectors_fail(rclpy_context):
    node = make_node(rclpy_context)
    try:
        declare_config(node, sections=["robot.base_frame", "safety"])
        assert node.has_parameter("robot.base_frame") and node.has_parameter("safety.max_linear_speed")
        assert not node.has_parameter("robot.camera_topics")
        with pytest.raises(ConfigError, match=r"^safty: not a configuration section or key"):
            declare_config(node, sections=["safty"])
    finally:
        node.destroy_node()


def test_keys_are_read_only_unless_writable_and_sets_go_through_the_schema(rclpy_context):
    from vla_ros.ros.params import RuntimeParameters

    node = make_node(rclpy_context, **{"executor.control_rate": 100})  # an int for a float key
    try:
        cfg = declare_config(node, sections=["executor", "safety"], writable=["executor.dry_run"])
        assert cfg.executor.control_rate == 100.0
        assert node.describe_parameter("executor.control_rate").read_only
        assert not node.describe_parameter("executor.dry_run").read_only
        res = node.set_parameters([Parameter("executor.control_rate", value=50.0)])[0]
        assert not res.successful and "read-only" in res.reason
        assert node.get_parameter("executor.control_rate").value == 100

        runtime = RuntimeParameters(["executor.dry_run", "safety.max_linear_speed", "safety.workspace_max"])
        change = runtime.check(cfg, [Parameter("executor.dry_run", value=False)])
        assert change.config.executor.dry_run is False and change.changed == {"executor.dry_run": (True, False)}
        for prm, message in (
            (Parameter("executor.dry_run", value="banana"), r"executor\.dry_run: expected boolean, got str 'banana'"),
            (Parameter("safety.max_linear_speed", value=-1.0), r"safety\.max_linear_speed: expected >= 0.0, got -1.0"),
            (Parameter("safety.workspace_max", value=[1.0, 1.0, -1.0]),
             r"safety\.workspace_min: z = 0.0 must be below"),
            (Parameter("executor.watchdog_timeout", value=0.0), r"executor\.watchdog_timeout: read-only"),
        ):
            with pytest.raises(ConfigError, match=message):
                runtime.check(cfg, [prm])
        # A pinned key only accepts the value already in use (what the node itself sets after a swap).
        pinned = RuntimeParameters(["policy.type"], {"policy.type": "~/load_policy"})
        assert pinned.check(VlaConfig(), [Parameter("policy.type", value="flow_matching")]).changed == {}
        with pytest.raises(ConfigError, match=r"policy\.type: changes only through ~/load_policy"):
            pinned.check(VlaConfig(), [Parameter("policy.type", value="hold")])
    finally:
        node.destroy_node()


def test_configure_time_keys_are_settable_only_while_a_lifecycle_node_is_unconfigured(rclpy_context):
    from vla_ros.ros.params import CONFIGURE_NOTE, RuntimeParameters

    node = make_node(rclpy_context)
    try:
        cfg = declare_config(node, sections=["robot"], at_configure=["robot.camera_names"])
        desc = node.describe_parameter("robot.camera_names")
        assert not desc.read_only and CONFIGURE_NOTE in desc.additional_constraints
        assert node.describe_parameter("robot.base_frame").read_only
        # Unconfigured: one key at a time, cross-field checks wait for configure.
        loose = RuntimeParameters(["robot.camera_names"], section_checks=False)
        assert loose.check(cfg, [Parameter("robot.camera_names",
                                           value=["scene"])]).config.robot.camera_names == ["scene"]
        with pytest.raises(ConfigError, match=r"robot\.camera_topics: expected one topic per camera name"):
            RuntimeParameters(["robot.camera_names"]).check(cfg, [Parameter("robot.camera_names", value=["scene"])])
    finally:
        node.destroy_node()
