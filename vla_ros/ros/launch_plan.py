"""The node plan behind `ros2 launch vla_ros vla.launch.py` / `sim.launch.py` and `vla-ros run [--sim]`.

Launch files must stay thin: they turn their string arguments into a `LaunchPlan` here (which
config files, which nodes, with which parameters and remappings, lifecycle or not) and only
translate the plan into launch_ros actions. The plan is plain data built by tested Python that
imports neither launch nor rclpy, so the same decisions drive `ros2 launch` on a robot, the
in-process composed runner (`vla-ros run`) and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from vla_ros.core import profiles, schema
from vla_ros.core.config import ConfigError, VlaConfig, load_config
from vla_ros.core.schema import parse_override
from vla_ros.policy.base import PolicyMetadata
from vla_ros.policy.compat import check_compatible
from vla_ros.policy.registry import describe_policy

PACKAGE = "vla_ros"
# The keys each node reads (section names or full keys, see `select_keys`): each node declares
# exactly these as ROS parameters and the launch plan passes it exactly these, so `ros2 param list`
# shows nothing a node would ignore. The policy node checks its chunks and the EE pose it observes
# with the executor's limits (safety.*, executor.max_chunk_steps).
POLICY_NODE_KEYS = ("robot", "policy", "sync", "safety", "executor.max_chunk_steps")
EXECUTOR_NODE_KEYS = (
    "robot.ee_pose_topic", "robot.base_frame", "robot.gripper_joint", "robot.gripper_closed", "robot.gripper_open",
    "robot.ee_frame", "robot.ee_pose_source", "robot.tf_topic", "robot.tf_static_topic", "robot.tf_cache_time",
    "robot.tf_max_extrapolation", "policy.chunk_topic", "executor", "safety",
)
# Keys a running node applies at once when set (``ros2 param set``); every other key is read-only.
POLICY_NODE_WRITABLE = ("policy.rate_hz", "policy.instruction")
# Policy node keys that only ~/load_policy changes (it swaps the policy and then updates them, so
# they read back what runs): writable for the node itself, refused for anyone else.
POLICY_NODE_PINNED = {k: "the ~/load_policy service (it loads and swaps the policy)"
                      for k in ("policy.type", "policy.checkpoint", "policy.device", "policy.dtype")}
EXECUTOR_NODE_WRITABLE = ("executor.dry_run", "executor.twist_gain") + tuple(
    k for k in schema.leaf_types(VlaConfig) if k.startswith("safety.")
)
# sim_node (vla_ros/ros/sim_node.py): the robot profile's sensor topics and frames, the executor's
# command topics (it subscribes to all of them, whatever executor.output_mode says), its own sim.* keys.
SIM_NODE_KEYS = (
    "robot.camera_names", "robot.camera_topics", "robot.joint_state_topic", "robot.joint_names",
    "robot.gripper_joint", "robot.gripper_closed", "robot.gripper_open", "robot.ee_pose_topic",
    "robot.instruction_topic", "robot.base_frame", "robot.ee_frame",
    "executor.pose_topic", "executor.twist_topic", "executor.gripper_topic", "executor.gripper_joint_state_topic",
    "sim.task", "sim.seed", "sim.image_size", "sim.physics_dt", "sim.real_time_factor", "sim.clock_rate",
    "sim.camera_rate", "sim.task_state_topic",
)
SIM_NODE_WRITABLE = ("sim.real_time_factor",)
# Node names: the nodes' own defaults, so `ros2 run` and `ros2 launch` give the same graph.
POLICY_NODE_NAME = "vla_policy"
EXECUTOR_NODE_NAME = "vla_executor"
SIM_NODE_NAME = "vla_sim"
SIM_ROBOT = "sim_panda"  # the robot profile of sim.launch.py when `robot` is not given


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str


# Every argument of vla.launch.py, in `--show-args` order. Empty string = "take it from the config".
LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("config", "default",
                   "Base config: a file name in share/vla_ros/config (without .yaml) or a path to a YAML file."),
    LaunchArgument("robot", "",
                   "Robot profile merged on top: franka, generic_dual_wrist, sim_panda, sim_tabletop "
                   "(share/vla_ros/config/robots) or a YAML path. Sets camera topics, joint names, frames, workspace "
                   "limits, output mode."),
    LaunchArgument("policy_config", "",
                   "Policy profile merged on top: hold, tiny_demo (share/vla_ros/config/policies) or a YAML path."),
    LaunchArgument("policy", "",
                   "Policy registry type (policy.type): flow_matching, hold, or a plugin's name. '' = from the "
                   "config."),
    LaunchArgument("checkpoint", "", "Checkpoint directory (policy.checkpoint). '' = from the config."),
    LaunchArgument("device", "",
                   "Torch device of the policy (policy.device): cpu, cuda, cuda:1. '' = from the config."),
    LaunchArgument("dtype", "", "Compute dtype (policy.dtype): float32, bfloat16, float16. '' = from the config."),
    LaunchArgument("namespace", "", "ROS namespace of both nodes (e.g. left_arm)."),
    LaunchArgument("use_sim_time", "false", "Use /clock (true for bag replay and simulation)."),
    LaunchArgument("dry_run", "",
                   "true: commands go to preview/ topics only; false: to the robot. '' = from the config (default "
                   "true)."),
    LaunchArgument("control_rate", "", "Executor control rate in Hz (executor.control_rate). '' = from the config."),
    LaunchArgument("set", "",
                   "More overrides, 'key=value' separated by ';', e.g. 'policy.rate_hz=10;executor.strategy=replace'."),
    LaunchArgument("check_policy", "true",
                   "Check the checkpoint's cameras/state against the robot profile before starting any node."),
    LaunchArgument("log_level", "info", "ROS log level of the nodes: debug, info, warn, error."),
)
ARGUMENT_DEFAULTS = {a.name: a.default for a in LAUNCH_ARGUMENTS}

# replay.launch.py: the same graph fed from a bag by `vla-ros play`, on the bag's clock.
REPLAY_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("bag", "", "Bag to play (rosbag2 directory with mcap/sqlite3 storage, or a .mcap file). Required."),
    LaunchArgument("rate", "1.0", "Playback speed factor (1.0 = recorded rate)."),
    LaunchArgument("loop", "false", "Start the bag over when it ends."),
)
REPLAY_DEFAULTS = {**ARGUMENT_DEFAULTS, **{a.name: a.default for a in REPLAY_ARGUMENTS}}

# sim.launch.py / `vla-ros run --sim`: the same graph plus sim_node, always on sim time. Three
# arguments read differently there (robot defaults to the simulated Panda; use_sim_time cannot be
# false; dry_run is still on unless turned off explicitly), and four are added.
_SIM_CHANGED = {
    "robot": LaunchArgument("robot", "",
                            f"Robot profile merged on top ('' = {SIM_ROBOT}, the simulated Panda); a name in "
                                         "share/vla_ros/config/robots or a YAML path."),
    "use_sim_time": LaunchArgument("use_sim_time", "true",
                                   "Always true in the simulator: every node runs on /clock from sim_node (false is "
                                   "refused)."),
    "dry_run": LaunchArgument("dry_run", "",
                              "Still ON by default in the simulator: the executor then publishes to preview/ topics "
                              "and the simulated arm does not move. Pass dry_run:=false (vla-ros run --sim --dry-run "
                              "false) to let it drive the arm. '' = from the config (default true)."),
}
SIM_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("task", "", "Simulated task (sim.task): reach, push, pick. '' = from the config (reach)."),
    LaunchArgument("seed", "", "Seed of the task's object positions (sim.seed). '' = from the config (0)."),
    LaunchArgument("real_time_factor", "",
                   "Sim seconds per wall second (sim.real_time_factor): 1 = real time, 2 = twice as fast, 0 = as fast "
                   "as possible. '' = from the config (1)."),
    LaunchArgument("image_size", "",
                   "Side of the square camera renders in px (sim.image_size). '' = from the config (128)."),
)
SIM_LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    *(_SIM_CHANGED.get(a.name, a) for a in LAUNCH_ARGUMENTS), *SIM_ARGUMENTS)
SIM_DEFAULTS = {a.name: a.default for a in SIM_LAUNCH_ARGUMENTS}
_SIM_SHORTCUTS = {"task": "sim.task", "seed": "sim.seed", "real_time_factor": "sim.real_time_factor",
                  "image_size": "sim.image_size"}

# Arguments that are shortcuts for one config key.
_SHORTCUTS = {"policy": "policy.type", "checkpoint": "policy.checkpoint", "device": "policy.device",
              "dtype": "policy.dtype"}


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: what `launch_ros.actions.Node` / `LifecycleNode` need, as plain data."""

    name: str
    executable: str
    namespace: str
    parameters: dict[str, Any]
    remappings: tuple[tuple[str, str], ...] = ()
    lifecycle: bool = False
    ros_arguments: tuple[str, ...] = ()
    package: str = PACKAGE


@dataclass(frozen=True)
class LaunchPlan:
    config: VlaConfig
    config_files: tuple[str, ...]
    nodes: tuple[NodeSpec, ...]
    use_sim_time: bool
    policy_metadata: PolicyMetadata | None = None
    processes: tuple[tuple[str, ...], ...] = field(default=())  # extra commands (bag player)

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(name)


def parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"launch argument {name}: expected true or false, got {text!r}")


def _overrides(args: Mapping[str, str], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    overrides: dict[str, Any] = dict(extra or {})
    for arg, key in _SHORTCUTS.items():
        if args[arg].strip():
            overrides[key] = args[arg].strip()
    if args["dry_run"].strip():
        overrides["executor.dry_run"] = parse_bool("dry_run", args["dry_run"])
    if args["control_rate"].strip():
        try:
            overrides["executor.control_rate"] = float(args["control_rate"])
        except ValueError:
            raise ConfigError("launch argument control_rate: expected a number in Hz, got "
                              f"{args['control_rate']!r}") from None
    for item in args["set"].split(";"):
        if item.strip():
            key, value = parse_override(item.strip())
            overrides[key] = value
    return overrides


def select_keys(selectors: tuple[str, ...] | list[str] | None) -> list[str]:
    """Flat schema keys picked by `selectors`: section names ("safety") or full keys ("robot.base_frame").

    None = every key. An unknown selector raises ConfigError (a typo must not silently select nothing).
    """
    keys = list(schema.leaf_types(VlaConfig))
    if selectors is None:
        return keys
    wanted = set(selectors)
    sections = {k.split(".", 1)[0] for k in keys}
    unknown = sorted(wanted - sections - set(keys))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a configuration section or key")
    return [k for k in keys if k in wanted or k.split(".", 1)[0] in wanted]


def _node_parameters(cfg: VlaConfig, selectors: tuple[str, ...], use_sim_time: bool) -> dict[str, Any]:
    # Empty lists are left out: they have no ROS parameter type; the node's declared default is [].
    flat = cfg.flatten()
    params = {k: flat[k] for k in select_keys(selectors) if flat[k] != []}
    params["use_sim_time"] = use_sim_time
    return params


def _check_known(arguments: Mapping[str, str] | None, known: Mapping[str, str]) -> None:
    unknown = sorted(set(arguments or {}) - set(known))
    if unknown:
        raise ConfigError(f"launch argument {unknown[0]}: unknown (known: {', '.join(known)})")


def build_plan(arguments: Mapping[str, str] | None = None, *, policy_node_lifecycle: bool = True,
               extra_overrides: Mapping[str, Any] | None = None) -> LaunchPlan:
    """Launch arguments (strings, as `ros2 launch` gives them) -> the validated node plan.

    `extra_overrides` (dotted keys) are applied after the arguments' own overrides and before
    ``set`` (`build_sim_plan` passes its sim.* shortcuts this way). Raises ConfigError naming the
    argument/key for anything invalid, including a policy that does not fit the robot profile
    (both named).
    """
    args = dict(ARGUMENT_DEFAULTS)
    _check_known(arguments, args)
    args.update({k: str(v) for k, v in (arguments or {}).items()})

    files = [str(profiles.resolve("config", args["config"]))]
    if args["robot"].strip():
        files.append(str(profiles.resolve("robot", args["robot"].strip())))
    if args["policy_config"].strip():
        files.append(str(profiles.resolve("policy", args["policy_config"].strip())))
    cfg = load_config(files, _overrides(args, extra_overrides))
    use_sim_time = parse_bool("use_sim_time", args["use_sim_time"])

    meta = None
    if parse_bool("check_policy", args["check_policy"]):
        try:
            meta = describe_policy(cfg.policy.type, cfg.policy.checkpoint)
        except (KeyError, ValueError, OSError) as exc:
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise ConfigError(f"policy {cfg.policy.type!r} (checkpoint {cfg.policy.checkpoint or 'none'}): "
                              f"{reason}") from exc
        check_compatible(meta, cfg.robot, cfg.policy)

    namespace = args["namespace"].strip().strip("/")
    policy_params = _node_parameters(cfg, POLICY_NODE_KEYS, use_sim_time)
    # A lifecycle policy node is configured/activated by the launcher, not by itself.
    policy_params["policy.autostart"] = not policy_node_lifecycle
    ros_args = ("--log-level", args["log_level"].strip() or "info")
    nodes = (
        NodeSpec(POLICY_NODE_NAME, "policy_node", namespace, policy_params,
                 lifecycle=policy_node_lifecycle, ros_arguments=ros_args),
        NodeSpec(EXECUTOR_NODE_NAME, "executor_node", namespace,
                 _node_parameters(cfg, EXECUTOR_NODE_KEYS, use_sim_time),
                 ros_arguments=ros_args),
    )
    return LaunchPlan(cfg, tuple(files), nodes, use_sim_time, meta)


def build_replay_plan(arguments: Mapping[str, str]) -> LaunchPlan:
    """The plan of `build_plan` with use_sim_time forced on, plus `vla-ros play` for the bag."""
    args = {**REPLAY_DEFAULTS, **{k: str(v) for k, v in arguments.items()}}
    bag = args.pop("bag").strip()
    rate_text = args.pop("rate").strip()
    loop = parse_bool("loop", args.pop("loop"))
    if not bag:
        raise ConfigError("launch argument bag: required (a rosbag2 directory or a .mcap file)")
    if not Path(bag).expanduser().exists():
        raise ConfigError(f"launch argument bag: {bag} does not exist")
    try:
        rate = float(rate_text)
    except ValueError:
        rate = 0.0
    if not rate > 0:
        raise ConfigError(f"launch argument rate: expected a positive speed factor, got {rate_text!r}")
    args["use_sim_time"] = "true"
    plan = build_plan(args)
    player = ("vla-ros", "play", "--bag", str(Path(bag).expanduser()), "--rate", f"{rate:g}",
              *(("--loop",) if loop else ()))
    return replace(plan, processes=(player,))



def build_sim_plan(arguments: Mapping[str, str] | None = None, *, policy_node_lifecycle: bool = True) -> LaunchPlan:
    """The plan of `build_plan` plus sim_node, every node on sim time (sim.launch.py, `vla-ros run --sim`).

    The robot profile defaults to `SIM_ROBOT`; ``use_sim_time`` false is refused (the nodes would
    run on wall time against a simulated arm); ``dry_run`` keeps the config's value (on) unless the
    argument turns it off. The sim node is the plan's third node (`NodeSpec` named `SIM_NODE_NAME`).
    """
    _check_known(arguments, SIM_DEFAULTS)
    args = {**SIM_DEFAULTS, **{k: str(v) for k, v in (arguments or {}).items()}}
    if not parse_bool("use_sim_time", args["use_sim_time"]):
        raise ConfigError("launch argument use_sim_time: the simulator runs every node on sim time (/clock from "
                          "sim_node); it cannot be false")
    extra: dict[str, Any] = {}
    for arg, key in _SIM_SHORTCUTS.items():
        text = args.pop(arg).strip()
        if text:
            extra[key] = parse_override(f"{key}={text}")[1]  # read as YAML; the schema checks it, naming the key
    if not args["robot"].strip():
        args["robot"] = SIM_ROBOT
    plan = build_plan(args, policy_node_lifecycle=policy_node_lifecycle, extra_overrides=extra)
    namespace = plan.nodes[0].namespace
    sim = NodeSpec(SIM_NODE_NAME, "sim_node", namespace, _node_parameters(plan.config, SIM_NODE_KEYS, True),
                   ros_arguments=plan.nodes[0].ros_arguments)
    return replace(plan, nodes=(*plan.nodes, sim))
