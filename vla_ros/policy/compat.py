"""Does a policy fit a robot profile? Checked before anything runs.

The policy node (at load and at a runtime swap), the launch plan and `vla-ros eval` call
`check_compatible` so that "policy expects 3 cameras, robot has 1" is one clear error at start-up
that names both sides, instead of masked inputs or a wrong-sized state on the robot.

With the policy profile (`PolicyConfig`) given, the check also covers a pretrained checkpoint's
action and state mapping (``policy.action_map`` / ``policy.state_map``, `vla_ros.policy.adapters`):
a joint-space action space, dims the checkpoint lacks, a state layout the robot cannot fill, a
mapping the loaded policy did not apply. `compatibility_report` gives the lines to log before the
first motion: cameras and their order, image size, state, the action mapping, norm stats, the
gripper convention, and the verdict.
"""

from __future__ import annotations

from vla_ros.core.config import ConfigError, PolicyConfig, RobotConfig
from vla_ros.policy import adapters
from vla_ros.policy.base import PolicyMetadata

# How each io.image_resize reads in the compatibility report.
_RESIZE_WORDS = {"bilinear": "resize with pad, bilinear",
                 "bilinear_top_left": "resize with pad on the top and left, bilinear",
                 "antialias": "antialiased"}


def _policy_name(meta: PolicyMetadata) -> str:
    return f"policy {meta.policy_type!r}" + (f" (checkpoint {meta.checkpoint_id})" if meta.checkpoint_id else "")


def _maps(policy: PolicyConfig | None):
    if policy is None:
        return None, None
    return policy.action_map, policy.state_map


def _mapped(meta: PolicyMetadata, policy: PolicyConfig | None) -> tuple[PolicyMetadata, list[str]]:
    """`meta` as seen through the profile's mapping, and the problems of the mapping itself.

    A described checkpoint (launch plan: config only) gets the mapping applied here; a loaded
    policy already describes the mapping it applies, and must apply the one configured.
    """
    action_map, state_map = _maps(policy)
    native = adapters.is_native(action_map) and adapters.state_is_native(state_map)
    who = _policy_name(meta)
    if not meta.extra.get("adapters_supported"):  # a policy without adapters runs as it is
        return meta, ([] if native else [f"{who} does not take policy.action_map / policy.state_map; remove them for "
                                          "this policy"])
    if policy is None and meta.extra.get("loaded"):
        return meta, []  # checked when it was configured; nothing to compare with
    problems: list[str] = []
    problem = adapters.action_map_problem(action_map, int(meta.extra.get("action_dim", 7)))
    if problem:
        problems.append(f"{who}: {problem}")
    if not adapters.state_is_native(state_map):
        problem = adapters.state_map_problem(state_map, meta.state_dim)
        if problem:
            problems.append(f"{who}: {problem}")
    if meta.extra.get("loaded"):
        if (meta.extra.get("adapters", adapters.adapter_settings(None, None))
                != adapters.adapter_settings(action_map, state_map)):
            problems.append(f"{who} was loaded without the configured policy.action_map / policy.state_map "
                            "(load it with vla_ros.policy.registry.load_configured_policy)")
        return meta, problems
    return adapters.mapped_metadata(meta, action_map, state_map, applied=False), problems


def _state_problems(meta: PolicyMetadata, robot: RobotConfig, who: str, where: str) -> list[str]:
    problems = []
    parts = dict((p, n) for p, n in meta.extra.get("state_parts") or [])
    if parts:  # a declared state layout: what each part reads
        if any(p.startswith("ee_") for p in parts) and not robot.ee_pose_topic:
            problems.append(f"{who} needs the end-effector pose as state (policy.state_map.parts) but {where} has no "
                            "robot.ee_pose_topic")
        if any(p.startswith("gripper") for p in parts) and not robot.gripper_joint:
            problems.append(f"{who} reads the gripper opening as state (policy.state_map.parts) but {where} has no "
                            "robot.gripper_joint")
        if "joints" in parts:
            if not robot.joint_state_topic:
                problems.append(f"{who} reads joint positions as state but {where} has no robot.joint_state_topic")
            elif robot.joint_names and len(robot.joint_names) != parts["joints"]:
                problems.append(f"{who} takes {parts['joints']} joint(s) in its state (policy.state_map.parts) but "
                                f"{where} lists {len(robot.joint_names)} robot.joint_names")
        return problems
    if meta.state_source == "ee_pose" and not robot.ee_pose_topic:
        problems.append(f"{who} needs the end-effector pose as state but {where} has no robot.ee_pose_topic")
    if meta.state_source == "joints":
        if meta.joint_names and robot.joint_names and list(meta.joint_names) != list(robot.joint_names):
            problems.append(
                f"{who} was trained on joints ({', '.join(meta.joint_names)}) but {where} lists "
                f"robot.joint_names ({', '.join(robot.joint_names)})"
            )
        n_joints = len(robot.joint_names or meta.joint_names)
        if n_joints and n_joints not in (meta.state_dim, meta.state_dim - 1):
            problems.append(
                f"{who} expects a joint state of dimension {meta.state_dim} but {where} gives {n_joints} joint(s)"
            )
    return problems


def compatibility_problems(meta: PolicyMetadata, robot: RobotConfig, policy: PolicyConfig | None = None) -> list[str]:
    """Every mismatch between `meta` and `robot`, as sentences naming both sides ([] = compatible).

    `policy` (the policy profile) adds its action / state mapping to the check.
    """
    meta, problems = _mapped(meta, policy)
    who, where = _policy_name(meta), f"robot profile {robot.name!r}"
    missing = [c for c in meta.cameras if c not in robot.camera_names]
    if missing:
        problems.append(
            f"{who} expects {len(meta.cameras)} camera(s) ({', '.join(meta.cameras)}) but {where} provides "
            f"{len(robot.camera_names)} ({', '.join(robot.camera_names)}); missing: {', '.join(missing)}"
        )
    problems += _state_problems(meta, robot, who, where)
    if meta.action_mode.name == "DELTA" and not robot.ee_pose_topic:
        problems.append(f"{who} predicts DELTA actions (offsets from the measured end-effector pose) but {where} has "
                        "no robot.ee_pose_topic")
    if meta.extra.get("norm_stats") == "missing":
        problems.append(f"{who} uses {meta.extra.get('normalization')} normalisation but its checkpoint has no norm "
                        "stats (norm_stats.json); re-import it")
    return problems


def timing_problems(meta: PolicyMetadata, policy: PolicyConfig) -> list[str]:
    """A chunk must last until the next one is due, or the executor runs dry and holds between chunks."""
    span = meta.horizon * meta.dt
    if policy.trigger == "rate" and span < 1.0 / policy.rate_hz:
        return [
            f"{_policy_name(meta)} predicts {meta.horizon} x {meta.dt:g} s = {span:g} s per chunk, shorter than the "
            f"inference period 1 / policy.rate_hz = {1.0 / policy.rate_hz:g} s; raise policy.rate_hz"
        ]
    return []


def _all_problems(meta: PolicyMetadata, robot: RobotConfig, policy: PolicyConfig | None, timing: bool) -> list[str]:
    return (compatibility_problems(meta, robot, policy)
            + (timing_problems(meta, policy) if policy is not None and timing else []))


def check_compatible(meta: PolicyMetadata, robot: RobotConfig, policy: PolicyConfig | None = None, *,
                     timing: bool = True) -> None:
    """Raise ConfigError listing every mismatch (`compatibility_problems`, and `timing_problems` with `policy`
    unless `timing` is False: an offline replay has no real-time inference period)."""
    problems = _all_problems(meta, robot, policy, timing)
    if problems:
        raise ConfigError("; ".join(problems))


def compatibility_report(meta: PolicyMetadata, robot: RobotConfig, policy: PolicyConfig | None = None, *,
                         timing: bool = True) -> list[str]:
    """The compatibility check as lines to log before the first motion (the last line is the verdict).

    The same findings as `check_compatible` with the same arguments (which refuses); this says
    what was compared, so a log shows which camera feeds which input and how actions and the
    gripper are read.
    """
    mapped, _ = _mapped(meta, policy)
    problems = _all_problems(meta, robot, policy, timing)
    extra = mapped.extra
    topics = dict(zip(robot.camera_names, robot.camera_topics))
    source = f" ({extra['source']})" if extra.get("source") else ""
    lines = [f"compatibility check: {_policy_name(mapped)}{source} on robot profile {robot.name!r}"]
    cams = ", ".join(f"{i + 1} {c} <- {topics.get(c, 'MISSING')}" for i, c in enumerate(mapped.cameras))
    lines.append(f"  cameras, in the policy's order: {cams or 'none named (every robot camera)'}")
    h, w = mapped.image_size
    resize = extra.get("image_resize")
    lines.append(f"  image size: the policy sees {h}x{w} px; every camera image is resized to it"
                 + (f" ({_RESIZE_WORDS.get(resize, resize)})" if resize else ""))
    if extra.get("state_parts"):
        state = f"{extra['state_map']} (policy.state_map)"
    elif mapped.state_source == "none":
        state = "none"
    else:
        state = f"{mapped.state_dim} dims from the {mapped.state_source.replace('_', ' ')}" + (
            f" ({', '.join(mapped.joint_names)})" if mapped.joint_names else "")
    lines.append(f"  state: {state}")
    lines.append(f"  actions: {extra.get('action_map', mapped.action_mode.name)}; horizon {mapped.horizon} x "
                 f"{mapped.dt:g} s")
    if "norm_stats" in extra or "normalization" in extra:
        lines.append(f"  norm stats: {extra.get('normalization', '?')}, {extra.get('norm_stats', 'present')}")
    if robot.gripper_joint:
        grip = (f"robot.gripper_joint {robot.gripper_joint!r}: {robot.gripper_closed:g} closed .. "
                f"{robot.gripper_open:g} open (robot units) <-> opening 0..1")
    else:
        grip = "no robot.gripper_joint: the opening is commanded, none is measured"
    action_map = policy.action_map if policy is not None else None
    if action_map is not None and action_map.space == "ee" and action_map.gripper_dim >= 0:
        grip += f"; policy gripper {action_map.gripper_closed:g} = closed, {action_map.gripper_open:g} = open"
    else:
        grip += "; policy gripper 0 = closed, 1 = open"
    lines.append(f"  gripper: {grip}")
    if problems:
        lines.append(f"  REFUSED, {len(problems)} problem(s):")
        lines += [f"    - {p}" for p in problems]
    else:
        lines.append("  result: compatible")
    return lines
