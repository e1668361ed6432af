"""The node plan that vla.launch.py and `vla-ros run` execute: nodes, parameters, errors."""

import pytest
from policy_helpers import make_checkpoint

from vla_ros.core import profiles
from vla_ros.core.config import ConfigError, load_config
from vla_ros.ros.launch_plan import LAUNCH_ARGUMENTS, build_plan


@pytest.fixture(scope="module")
def two_cam_ckpt(tmp_path_factory):
    return str(make_checkpoint(tmp_path_factory.mktemp("two"), cameras=("primary", "wrist")))


@pytest.fixture(scope="module")
def three_cam_ckpt(tmp_path_factory):
    return str(make_checkpoint(tmp_path_factory.mktemp("three"), cameras=("primary", "wrist_left", "wrist_right")))


def test_every_shipped_config_and_profile_validates():
    for kind in profiles.KINDS:
        names = profiles.available(kind)
        assert names, f"no shipped {kind} files"
        for name in names:
            base = [] if kind == "config" else [profiles.resolve("config", "default")]
            load_config([*base, profiles.resolve(kind, name)])


def test_every_argument_is_documented():
    assert all(a.description.strip() and a.name.isidentifier() for a in LAUNCH_ARGUMENTS)
    assert {"config", "robot", "policy", "checkpoint", "device", "dtype", "namespace", "use_sim_time",
            "dry_run", "control_rate"} <= {a.name for a in LAUNCH_ARGUMENTS}


def test_franka_with_flow_matching_checkpoint(two_cam_ckpt):
    plan = build_plan({"robot": "franka", "policy": "flow_matching", "checkpoint": two_cam_ckpt,
                       "device": "cuda", "dtype": "bfloat16", "namespace": "/left_arm/",
                       "control_rate": "250", "set": "policy.rate_hz=8; executor.strategy=replace"})
    assert [n.name for n in plan.nodes] == ["vla_policy", "vla_executor"]
    policy, executor = plan.node("vla_policy"), plan.node("vla_executor")
    assert policy.lifecycle and policy.parameters["policy.autostart"] is False
    assert policy.namespace == executor.namespace == "left_arm"
    assert policy.executable == "policy_node" and executor.executable == "executor_node"
    assert policy.parameters["policy.checkpoint"] == two_cam_ckpt
    assert policy.parameters["policy.device"] == "cuda" and policy.parameters["policy.dtype"] == "bfloat16"
    assert policy.parameters["policy.rate_hz"] == 8
    assert policy.parameters["robot.camera_topics"] == [
        "/scene_camera/color/image_raw", "/wrist_camera/color/image_raw/compressed"]
    assert policy.parameters["robot.joint_names"][0] == "fr3_joint1"
    # Each node gets only the keys it reads: the policy node checks chunks with the executor's limits.
    assert [k for k in policy.parameters if k.startswith("executor.")] == ["executor.max_chunk_steps"]
    assert policy.parameters["safety.workspace_min"] == [0.25, -0.45, 0.03]
    assert executor.parameters["executor.control_rate"] == 250.0
    assert executor.parameters["executor.strategy"] == "replace"
    assert executor.parameters["executor.dry_run"] is True  # the robot profile keeps dry-run on
    assert executor.parameters["safety.workspace_min"] == [0.25, -0.45, 0.03]
    assert executor.parameters["policy.chunk_topic"] == policy.parameters["policy.chunk_topic"]
    assert not any(k.startswith("sync.") for k in executor.parameters)
    assert not any(k.startswith("policy.") for k in executor.parameters if k != "policy.chunk_topic")
    assert "robot.camera_topics" not in executor.parameters and "robot.base_frame" in executor.parameters
    assert policy.remappings == () and executor.remappings == ()
    assert plan.policy_metadata.cameras == ("primary", "wrist")
    assert policy.ros_arguments == ("--log-level", "info")


def test_hold_baseline_sim_time_and_dry_run_off():
    plan = build_plan({"robot": "generic_dual_wrist", "policy_config": "hold", "use_sim_time": "true",
                       "dry_run": "false", "log_level": "debug"})
    ex = plan.node("vla_executor")
    assert plan.use_sim_time and ex.parameters["use_sim_time"] is True
    assert ex.parameters["executor.dry_run"] is False and ex.parameters["executor.output_mode"] == "twist"
    assert plan.node("vla_policy").parameters["policy.type"] == "hold"
    assert plan.policy_metadata.policy_type == "hold"
    assert ex.ros_arguments == ("--log-level", "debug")


def test_three_camera_policy_on_one_camera_robot_is_refused_naming_both(tmp_path, three_cam_ckpt):
    one_cam = tmp_path / "one_cam.yaml"
    one_cam.write_text("robot:\n  name: one_cam\n  camera_names: [primary]\n  camera_topics: [/cam/image_raw]\n")
    with pytest.raises(ConfigError) as err:
        build_plan({"robot": str(one_cam), "policy": "flow_matching", "checkpoint": three_cam_ckpt})
    text = str(err.value)
    assert "expects 3 camera(s) (primary, wrist_left, wrist_right)" in text
    assert "robot profile 'one_cam' provides 1 (primary)" in text


@pytest.mark.parametrize(
    "args, message",
    [
        ({"robt": "franka"}, "launch argument robt: unknown"),
        ({"robot": "ur99"}, "no robot profile named 'ur99'"),
        ({"dry_run": "maybe", "policy": "hold"}, "launch argument dry_run: expected true or false, got 'maybe'"),
        ({"control_rate": "fast", "policy": "hold"}, "launch argument control_rate: expected a number in Hz"),
        ({"policy": "nope"}, "unknown policy 'nope'; known policies: flow_matching, hold"),
        ({"policy": "flow_matching"}, "policy.checkpoint: this policy needs a checkpoint directory"),
        ({"policy": "hold", "set": "executor.control_rate=0"}, "executor.control_rate: expected >= 1.0"),
    ],
)
def test_invalid_arguments_are_clear_errors(args, message):
    with pytest.raises(ConfigError, match=message):
        build_plan(args)


def test_replay_plan_plays_the_bag_on_sim_time(tmp_path):
    from vla_ros.ros.launch_plan import build_replay_plan

    bag = tmp_path / "run1"
    bag.mkdir()
    plan = build_replay_plan({"bag": str(bag), "rate": "2", "loop": "true", "policy": "hold", "use_sim_time": "false"})
    assert plan.use_sim_time and all(n.parameters["use_sim_time"] is True for n in plan.nodes)
    assert plan.processes == (("vla-ros", "play", "--bag", str(bag), "--rate", "2", "--loop"),)
    with pytest.raises(ConfigError, match="launch argument bag: required"):
        build_replay_plan({"policy": "hold"})
    with pytest.raises(ConfigError, match="launch argument rate: expected a positive speed factor, got '0'"):
        build_replay_plan({"bag": str(bag), "rate": "0", "policy": "hold"})
    with pytest.raises(ConfigError, match="does not exist"):
        build_replay_plan({"bag": str(tmp_path / "nope"), "policy": "hold"})


# ----------------------------------------------------------------------------- sim.launch.py / vla-ros run --sim
def test_sim_plan_adds_sim_node_on_sim_time_with_dry_run_still_on():
    from vla_ros.ros.launch_plan import SIM_NODE_KEYS, build_sim_plan

    plan = build_sim_plan({"policy": "hold", "task": "push", "seed": "7", "real_time_factor": "2.5",
                           "image_size": "96", "namespace": "sim_arm"})
    assert [n.name for n in plan.nodes] == ["vla_policy", "vla_executor", "vla_sim"]
    sim, ex, pol = plan.node("vla_sim"), plan.node("vla_executor"), plan.node("vla_policy")
    assert sim.executable == "sim_node" and not sim.lifecycle and sim.namespace == ex.namespace == "sim_arm"
    assert plan.use_sim_time and all(n.parameters["use_sim_time"] is True for n in plan.nodes)
    assert plan.config.robot.name == "sim_panda"  # the default robot of the simulator
    assert ex.parameters["executor.dry_run"] is True  # the simulator does not switch dry run off
    assert (sim.parameters["sim.task"], sim.parameters["sim.seed"], sim.parameters["sim.real_time_factor"],
            sim.parameters["sim.image_size"]) == ("push", 7, 2.5, 96)
    # sim_node gets exactly its keys; it listens where the executor commands and publishes what the policy reads.
    assert set(sim.parameters) == {*SIM_NODE_KEYS, "use_sim_time"}
    assert sim.parameters["executor.pose_topic"] == ex.parameters["executor.pose_topic"]
    assert sim.parameters["robot.camera_topics"] == pol.parameters["robot.camera_topics"]
    assert sim.parameters["robot.ee_pose_topic"] == ex.parameters["robot.ee_pose_topic"]
    assert not any(k.startswith("sim.") for n in (pol, ex) for k in n.parameters)


def test_sim_plan_dry_run_off_only_when_asked_and_other_profiles():
    from vla_ros.ros.launch_plan import build_sim_plan

    plan = build_sim_plan({"policy": "hold", "dry_run": "false"})
    assert plan.node("vla_executor").parameters["executor.dry_run"] is False
    plan = build_sim_plan({"policy": "hold", "robot": "sim_tabletop", "set": "sim.camera_rate=5"})
    assert plan.config.robot.name == "sim_tabletop" and plan.node("vla_sim").parameters["sim.camera_rate"] == 5.0


@pytest.mark.parametrize(
    "args, message",
    [
        ({"use_sim_time": "false"}, "launch argument use_sim_time: the simulator runs every node on sim time"),
        ({"task": "fly"}, "sim.task: expected one of 'reach', 'push', 'pick', got 'fly'"),
        ({"seed": "-1"}, "sim.seed: expected >= 0"),
        ({"real_time_factor": "fast"}, "sim.real_time_factor: expected number"),
        ({"image_size": "4"}, "sim.image_size: expected >= 16"),
        ({"bag": "x.mcap"}, "launch argument bag: unknown"),
        ({"dry_run": "maybe"}, "launch argument dry_run: expected true or false"),
    ],
)
def test_sim_plan_invalid_arguments_are_clear_errors(args, message):
    from vla_ros.ros.launch_plan import build_sim_plan

    with pytest.raises(ConfigError, match=message):
        build_sim_plan({"policy": "hold", **args})


def test_sim_arguments_are_documented_and_say_dry_run_stays_on():
    from vla_ros.ros.launch_plan import SIM_ARGUMENTS, SIM_LAUNCH_ARGUMENTS

    names = [a.name for a in SIM_LAUNCH_ARGUMENTS]
    assert len(names) == len(set(names))
    assert set(names) == {a.name for a in LAUNCH_ARGUMENTS} | {a.name for a in SIM_ARGUMENTS}
    by_name = {a.name: a for a in SIM_LAUNCH_ARGUMENTS}
    assert "Still ON by default" in by_name["dry_run"].description
    assert "dry_run:=false" in by_name["dry_run"].description
    assert by_name["use_sim_time"].default == "true"
    assert all(a.description.strip() and a.name.isidentifier() for a in SIM_LAUNCH_ARGUMENTS)


def test_run_cli_sim_options(capsys):
    from vla_ros.cli import main

    assert main(["run", "--task", "push", "--policy", "hold"]) == 2
    assert "--task: only with --sim" in capsys.readouterr().err
    assert main(["run", "--sim", "--policy", "hold", "--use-sim-time", "false"]) == 2
    assert "use_sim_time" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # (argparse wraps to the terminal width)
    assert "--sim" in text and "dry_run stays ON" in text and "--real-time-factor" in text
