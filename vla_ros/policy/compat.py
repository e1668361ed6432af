"""Does a policy fit a robot profile? Checked before anything runs.

The policy node (at load and at a runtime swap), the launch plan and `vla-ros eval` call
`check_compatible` so that "policy expects 3 cameras, robot has 1" is one clear error at start-up
that names both sides, instead of masked inputs or a wrong-sized state on the robot.
"""

from __future__ import annotations

from vla_ros.core.config import ConfigError, PolicyConfig, RobotConfig
from vla_ros.policy.base import PolicyMetadata


def _policy_name(meta: PolicyMetadata) -> str:
    return f"policy {meta.policy_type!r}" + (f" (checkpoint {meta.checkpoint_id})" if meta.checkpoint_id else "")


def compatibility_problems(meta: PolicyMetadata, robot: RobotConfig) -> list[str]:
    """Every mismatch between `meta` and `robot`, as sentences naming both sides ([] = compatible)."""
    problems = []
    who, where = _policy_name(meta), f"robot profile {robot.name!r}"
    missing = [c for c in meta.cameras if c not in robot.camera_names]
    if missing:
        problems.append(
            f"{who} expects {len(meta.cameras)} camera(s) ({', '.join(meta.cameras)}) but {where} provides "
            f"{len(robot.camera_names)} ({', '.join(robot.camera_names)}); missing: {', '.join(missing)}"
        )
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


def timing_problems(meta: PolicyMetadata, policy: PolicyConfig) -> list[str]:
    """A chunk must last until the next one is due, or the executor runs dry and holds between chunks."""
    span = meta.horizon * meta.dt
    if policy.trigger == "rate" and span < 1.0 / policy.rate_hz:
        return [
            f"{_policy_name(meta)} predicts {meta.horizon} x {meta.dt:g} s = {span:g} s per chunk, shorter than the "
            f"inference period 1 / policy.rate_hz = {1.0 / policy.rate_hz:g} s; raise policy.rate_hz"
        ]
    return []


def check_compatible(meta: PolicyMetadata, robot: RobotConfig, policy: PolicyConfig | None = None) -> None:
    """Raise ConfigError listing every mismatch (`compatibility_problems`, and `timing_problems` with `policy`)."""
    problems = compatibility_problems(meta, robot) + (timing_problems(meta, policy) if policy is not None else [])
    if problems:
        raise ConfigError("; ".join(problems))
