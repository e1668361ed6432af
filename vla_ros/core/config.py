"""The one configuration schema of vla_ros.

Every tunable of the nodes, the composed runner and the replay lives here, once, with its default,
type, range and doc. The same schema is read from YAML files in ``config/`` (merged in order:
default -> robot profile -> policy profile -> overrides), exposed as ROS parameters with dotted
names (``policy.device``), and overridden on the command line with ``--set policy.device=cuda``.
``docs/configuration.md`` is generated from it (``vla-ros config --doc``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from vla_ros.core import schema
from vla_ros.core.schema import ConfigError, FieldError, param, section

__all__ = [
    "ActionMapConfig",
    "ConfigError",
    "ExecutorConfig",
    "PolicyConfig",
    "ReplayConfig",
    "RobotConfig",
    "SafetyConfig",
    "SimConfig",
    "StateMapConfig",
    "SyncConfig",
    "VlaConfig",
    "config_from_dict",
    "load_config",
    "load_yaml",
]


@dataclass
class RobotConfig:
    """Robot profile: what the robot publishes and how it is commanded."""

    name: str = param("generic", "Profile name, shown in logs and reports.")
    camera_names: list[str] = param(
        ["primary", "wrist"], "Camera names, in the order the policy expects them (first = primary)."
    )
    camera_topics: list[str] = param(
        ["/camera/primary/image_raw", "/camera/wrist/image_raw"],
        "One image topic per camera name; a topic ending in /compressed is read as sensor_msgs/CompressedImage.",
    )
    joint_state_topic: str = param("/joint_states", "sensor_msgs/JointState topic.")
    joint_names: list[str] = param(
        [], "Joint order of the state vector; empty = the order of the first JointState message."
    )
    gripper_joint: str = param("", "JointState name of the gripper joint ('' = no gripper feedback).")
    gripper_closed: float = param(0.0, "Gripper joint position (robot units) when closed (normalised 0).")
    gripper_open: float = param(0.08, "Gripper joint position (robot units) when fully open (normalised 1).")
    ee_pose_topic: str = param(
        "/ee_pose", "geometry_msgs/PoseStamped end-effector pose topic ('' = none; needed for ee_pose state and delta "
                    "mode)."
    )
    instruction_topic: str = param("/instruction", "std_msgs/String instruction topic (transient-local).")
    base_frame: str = param("base_link", "Frame of end-effector poses and commands.")
    ee_frame: str = param("tool0", "End-effector frame name (child frame of the pose).")
    ee_pose_source: str = param(
        "auto", "Where the end-effector pose comes from: topic (robot.ee_pose_topic, PoseStamped), tf (the chain "
        "robot.base_frame -> robot.ee_frame in robot.tf_topic / robot.tf_static_topic), fk (forward kinematics of "
        "robot.urdf or the bag's robot.robot_description_topic from the joint states; replay only, needs the pin "
        "package), auto (the topic when a bag has it, else TF).", choices=("auto", "topic", "tf", "fk"),
    )
    urdf: str = param("", "URDF file for robot.ee_pose_source fk ('' = the bag's robot.robot_description_topic).")
    robot_description_topic: str = param("/robot_description", "std_msgs/String topic holding the URDF (latched).")
    tf_topic: str = param("/tf", "tf2_msgs/TFMessage topic of the dynamic transforms.")
    tf_static_topic: str = param("/tf_static", "tf2_msgs/TFMessage topic of the static transforms (transient-local).")
    tf_cache_time: float = param(10.0, "How long dynamic transforms are kept for lookups (s).", min=0.1)
    tf_max_extrapolation: float = param(
        0.05, "How far past a link's first/newest stamp a lookup may use that sample; further is refused (s).", min=0.0,
    )

    def check(self) -> None:
        if not self.camera_names:
            raise ConfigError("robot.camera_names: expected at least one camera")
        if len(self.camera_names) != len(self.camera_topics):
            raise ConfigError(
                f"robot.camera_topics: expected one topic per camera name ({len(self.camera_names)}: "
                f"{', '.join(self.camera_names)}), got {len(self.camera_topics)}"
            )
        if len(set(self.camera_names)) != len(self.camera_names):
            raise ConfigError(f"robot.camera_names: names must be unique, got {self.camera_names}")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ConfigError(f"robot.joint_names: names must be unique, got {self.joint_names}")

ACTION_SPACES = ("native", "ee", "joints")
ROTATION_FORMS = ("axis_angle", "euler_xyz", "quat_xyzw", "quat_wxyz")
STATE_PARTS = ("ee_position", "ee_rotvec", "ee_euler_xyz", "ee_quat_xyzw", "ee_quat_wxyz", "gripper", "gripper_fingers",
               "joints")


def _non_default_keys(obj: Any, skip: tuple[str, ...]) -> list[str]:
    """The fields of a config dataclass that differ from their defaults (except `skip`)."""
    fresh = type(obj)()
    return [name for name in schema.leaf_types(type(obj))
            if name not in skip and getattr(obj, name) != getattr(fresh, name)]


@dataclass
class ActionMapConfig:
    """How a pretrained policy's raw action vector becomes a 7-DoF end-effector ActionChunk (docs/pretrained.md)."""

    space: str = param(
        "native", "native: the checkpoint's own 7-dim layout (x y z rotation-vector gripper in [0, 1], the "
        "checkpoint's io.action_mode; the other keys unused); ee: end-effector actions mapped by the keys below; "
        "joints: a joint-space policy (DROID, ALOHA), refused by name: vla_ros commands the end effector.",
        choices=ACTION_SPACES,
    )
    position_dims: list[int] = param([0, 1, 2], "ee: raw action dims of x, y, z.", length=3, min=0, unique=True)
    rotation_dims: list[int] = param(
        [3, 4, 5], "ee: raw action dims of the rotation (3 for axis_angle / euler_xyz, 4 for a quaternion).",
        min=0, unique=True,
    )
    rotation: str = param(
        "axis_angle", "ee: rotation representation: axis_angle (rotation vector, rad), euler_xyz (roll, pitch, yaw "
        "about the fixed x, y, z axes, rad), quat_xyzw or quat_wxyz.", choices=ROTATION_FORMS,
    )
    gripper_dim: int = param(6, "ee: raw action dim of the gripper; -1 = none (the measured opening is kept).", min=-1)
    gripper_closed: float = param(
        0.0, "ee: raw gripper value meaning fully closed (LIBERO / robosuite: +1). With gripper_open it gives range "
        "and sign; values in between map linearly to the opening 0..1, clipped.",
    )
    gripper_open: float = param(1.0, "ee: raw gripper value meaning fully open (LIBERO / robosuite: -1).")
    mode: str = param(
        "absolute", "ee: absolute (targets in robot.base_frame) or delta (offsets; the chunk is published as DELTA "
        "with the observation's end-effector pose as reference_pose).", choices=("absolute", "delta"),
    )
    delta_reference: str = param(
        "observation", "ee delta: what each action is an offset from: observation (the observation's end-effector "
        "pose) or previous (the previous action's target, the first from the observation: per-step deltas, as "
        "robosuite's OSC controller in LIBERO executes them).", choices=("observation", "previous"),
    )
    frame: str = param(
        "base", "ee delta: frame of the offsets: base (robot.base_frame axes; rotations applied on the left, as "
        "robosuite's OSC) or ee (the reference end-effector frame; rotations applied on the right).",
        choices=("base", "ee"),
    )
    position_scale: float = param(
        1.0, "ee: metres per raw position unit (LIBERO / robosuite OSC_POSE: 0.05).", gt=0.0,
    )
    rotation_scale: float = param(
        1.0, "ee: radians per raw axis_angle / euler unit (LIBERO / robosuite OSC_POSE: 0.5; must be 1 for "
             "quaternions).",
        gt=0.0,
    )
    clip: float = param(
        0.0, "ee: clip raw position and rotation values to [-clip, clip] before scaling, as the reference controller "
        "does (robosuite: 1); 0 = no clipping.", min=0.0,
    )

    def check(self) -> None:
        if self.space == "native":
            changed = _non_default_keys(self, ("space",))
            if changed:
                raise FieldError(changed[0],
                                 "only used with policy.action_map.space 'ee'; set space: ee (or remove it)")
            return
        want = 4 if self.rotation.startswith("quat") else 3
        if len(self.rotation_dims) != want:
            raise FieldError("rotation_dims",
                             f"rotation {self.rotation!r} takes {want} dims, got {len(self.rotation_dims)}")
        if self.rotation.startswith("quat") and self.rotation_scale != 1.0:
            raise FieldError("rotation_scale", f"a quaternion cannot be scaled; expected 1, got {self.rotation_scale}")
        used = (list(self.position_dims) + list(self.rotation_dims)
                + ([self.gripper_dim] if self.gripper_dim >= 0 else []))
        repeated = sorted({d for d in used if used.count(d) > 1})
        if repeated:
            raise FieldError("rotation_dims",
                             f"dims {repeated} are used twice (position_dims, rotation_dims, gripper_dim)")
        if self.gripper_dim >= 0 and self.gripper_open == self.gripper_closed:
            raise FieldError("gripper_open", f"must differ from gripper_closed (both {self.gripper_open})")
        if self.mode == "absolute":
            if self.delta_reference != "observation":
                raise FieldError("delta_reference", "only used with mode 'delta'")
            if self.frame != "base":
                raise FieldError("frame", "absolute targets are in robot.base_frame; 'ee' needs mode 'delta'")

    @property
    def raw_dims(self) -> int:
        """Smallest raw action length this mapping reads."""
        return 1 + max([*self.position_dims, *self.rotation_dims, self.gripper_dim])


@dataclass
class StateMapConfig:
    """How the robot's observation becomes a pretrained policy's state vector (docs/pretrained.md)."""

    parts: list[str] = param(
        [], "State vector, in order, from: ee_position (3), ee_rotvec (3, axis-angle), ee_euler_xyz (3), ee_quat_xyzw "
        "(4), ee_quat_wxyz (4), gripper (1), gripper_fingers (2: +w, -w, as robosuite's Panda finger joints), joints "
        "(the robot's joint positions, robot.joint_names order). [] = the checkpoint's own io.state_source.",
        choices=STATE_PARTS, unique=True,
    )
    gripper_closed: float = param(0.0, "Value of a gripper part (each finger for gripper_fingers) when closed.")
    gripper_open: float = param(1.0, "The same when fully open (LIBERO's Panda fingers: 0.04 m each).")
    rotation_branch: str = param(
        "principal", "ee_rotvec: principal (angle <= pi) or stats_mean (of the two rotation vectors of one rotation, "
        "theta*n and (theta-2pi)*n, the one nearer the checkpoint's state mean: LIBERO's states, near pi, use "
        "angles up to 2pi).", choices=("principal", "stats_mean"),
    )

    def check(self) -> None:
        if not self.parts:
            changed = _non_default_keys(self, ("parts",))
            if changed:
                raise FieldError(changed[0], "only used with policy.state_map.parts; list the parts (or remove it)")
            return
        rotations = [p for p in self.parts if p.startswith("ee_") and p != "ee_position"]
        if len(rotations) > 1:
            raise FieldError("parts", f"at most one rotation part, got {', '.join(rotations)}")
        if "gripper" in self.parts and "gripper_fingers" in self.parts:
            raise FieldError("parts", "at most one of gripper and gripper_fingers")
        if self.gripper_open == self.gripper_closed and any(p.startswith("gripper") for p in self.parts):
            raise FieldError("gripper_open", f"must differ from gripper_closed (both {self.gripper_open})")


@dataclass
class PolicyConfig:
    """Which policy runs, where, and when it is asked for a chunk."""

    type: str = param("flow_matching", "Registry name of the policy (entry point group vla_ros.policies).")
    checkpoint: str = param("", "Checkpoint directory ('' = the policy's built-in default, if it has one).")
    device: str = param("cpu", "torch device: cpu, cuda, cuda:1, ...")
    dtype: str = param("float32", "Compute dtype.", choices=("float32", "bfloat16", "float16"))
    num_steps: int = param(10, "Euler denoising steps per chunk (flow-matching policies).", min=1, max=100)
    instruction: str = param("", "Initial language instruction (until one arrives on the instruction topic).")
    trigger: str = param(
        "rate", "When to infer: 'rate' (fixed rate) or 'queue' (when the executor's plan runs low).",
        choices=("rate", "queue"),
    )
    rate_hz: float = param(5.0, "Inference rate for trigger 'rate' (Hz).", min=0.1, max=200.0)
    queue_threshold: float = param(
        0.4, "Trigger 'queue': infer when the executor's remaining plan is shorter than this (s).", min=0.0
    )
    seed: int = param(0, "Seed of the sampling noise (deterministic chunks for identical inputs).", min=0)
    rtc: bool = param(False, "Real-Time Chunking: inpaint the executor's committed actions into new chunks.")
    rtc_max_guidance: float = param(5.0, "RTC: maximum guidance weight (beta).", min=0.0, max=100.0)
    chunk_topic: str = param("action_chunk", "Topic the policy node publishes ActionChunk on.")
    status_topic: str = param("policy_status", "Topic of PolicyStatus messages.")
    status_rate_hz: float = param(2.0, "PolicyStatus publish rate (Hz).", min=0.1, max=100.0)
    allow_empty_instruction: bool = param(
        False, "Run without an instruction (single-task policies); false = observations are rejected until one is set."
    )
    executor_status_topic: str = param(
        "executor_status", "ExecutorStatus topic read for trigger 'queue' and RTC (the executor's "
                           "executor.status_topic)."
    )
    executor_status_timeout: float = param(
        1.0, "An ExecutorStatus older than this (ROS time) is ignored by trigger 'queue' and RTC (s).", min=0.01,
        max=60.0
    )
    queue_ack_timeout: float = param(
        1.0, "Trigger 'queue': after a chunk, wait until the executor status counts it, or this long, before the next "
             "(s).",
        min=0.0, max=60.0,
    )
    preview_topic: str = param(
        "action_chunk_poses", "geometry_msgs/PoseArray of each chunk's absolute poses, for RViz ('' = not published)."
    )
    autostart: bool = param(
        True, "policy_node: configure (load) and activate at start-up; false = wait for lifecycle transitions (launch)."
    )
    inference_timeout: float = param(
        5.0, "Policy watchdog: an inference running longer than this sets PolicyStatus ERROR with a message; "
        "~/load_policy answers within it too (s).", min=0.01, max=600.0,
    )
    max_bad_chunks: int = param(
        3, "Consecutive chunks refused by the chunk check (workspace, reach, gripper, ...) before the policy node goes "
        "to ERROR and stops publishing until the next good chunk or a reconfigure.", min=1, max=1000,
    )
    max_instruction_length: int = param(
        2000, "Longest accepted instruction (characters); a longer one is refused by name.", min=1, max=1_000_000,
    )
    action_map: ActionMapConfig = section(
        ActionMapConfig, "Pretrained checkpoints: the policy's raw action vector -> 7-DoF end-effector chunk."
    )
    state_map: StateMapConfig = section(StateMapConfig,
                                        "Pretrained checkpoints: the observation -> the policy's state vector.")


@dataclass
class SyncConfig:
    """Approximate-time assembly of camera + joint-state observations (header stamps)."""

    slop: float = param(
        0.05, "Maximum stamp difference between the inputs of one observation; also the most a header stamp may be "
        "ahead of the ROS clock (further ahead = refused, it would block its input) (s).", min=0.0, max=5.0,
    )
    queue_size: int = param(30, "Messages kept per input while waiting for partners.", min=1, max=1000)
    max_age: float = param(
        0.5, "An observation older than this (ROS time now - stamp) is not used and counts as dropped (s).",
        min=0.0, max=60.0,
    )
    max_image_pixels: int = param(
        4096 * 4096, "Largest accepted camera image (width * height, raw or decoded compressed); larger ones are "
        "refused before any pixel is decoded.", min=1,
    )
    eager: bool = param(
        False, "Emit an observation as soon as every input has a message within slop; false = first wait until each "
        "input has one stamped at/after the primary camera frame (closest match), at most until the next frame.",
    )


@dataclass
class ExecutorConfig:
    """Streaming chunks to the arm at control rate."""

    control_rate: float = param(100.0, "Control-loop rate (Hz).", min=1.0, max=1000.0)
    strategy: str = param(
        "crossfade", "How overlapping chunks combine.", choices=("replace", "crossfade", "temporal_ensemble")
    )
    ensemble_decay: float = param(
        0.5, "temporal_ensemble: weight exp(-decay * age_in_steps); larger favours older chunks less.", min=0.0
    )
    latency_compensation: bool = param(True, "Skip actions whose time has passed when a chunk arrives.")
    bridge_distance: float = param(
        0.02, "Insert a bridge when a new plan starts further than this from the last command (m).", min=0.0
    )
    bridge_speed: float = param(0.1, "Speed of a bridge segment towards the new plan (m/s).", min=0.001)
    bridge_angle: float = param(
        0.1, "Insert a bridge when a new plan starts rotated further than this from the last command (rad).", min=0.0
    )
    bridge_angular_speed: float = param(0.5, "Angular speed of a bridge segment (rad/s).", min=0.001)
    delay_window: int = param(
        20, "Chunks over which the measured chunk delay (arrival - observation stamp) is averaged / maxed.",
        min=1, max=10000,
    )
    max_future_stamp: float = param(
        0.5, "Reject a chunk stamped further than this in the future (clock mismatch between machines) (s).", min=0.0
    )
    realtime_priority: int = param(
        0, "SCHED_FIFO priority (1-99) of the thread spinning the executor node; 0 = normal scheduling. Needs "
        "CAP_SYS_NICE or an rtprio limit; if refused the node warns and runs normally.", min=0, max=99,
    )
    watchdog_timeout: float = param(1.0, "No valid chunk for this long -> hold the last safe pose (s).", min=0.01)
    expected_delay: float = param(
        0.0, "Expected inference delay for RTC committed steps (s); 0 = use the measured chunk delay.", min=0.0
    )
    dry_run: bool = param(
        True, "Publish commands to the preview topics only, never to the robot. Can be changed at run time "
        "(ros2 param set); the change is logged at WARN."
    )
    max_chunk_steps: int = param(
        256, "Longest accepted action chunk (steps); a longer one is refused whole before it is decoded.",
        min=1, max=100000,
    )
    max_queued_chunks: int = param(
        4, "executor_node: chunks received but not yet processed; on overflow the oldest is dropped and counted.",
        min=1, max=1000,
    )
    estop_required: bool = param(
        False, "Hold (execute no chunk) until the e-stop topic has been heard at least once, so a dead e-stop input "
        "cannot go unnoticed."
    )
    output_mode: str = param("pose", "Command output.", choices=("pose", "twist", "both"))
    pose_topic: str = param("target_pose", "geometry_msgs/PoseStamped command topic.")
    twist_topic: str = param("delta_twist_cmds", "geometry_msgs/TwistStamped command topic (MoveIt Servo).")
    gripper_topic: str = param("gripper_command", "Gripper command topic (std_msgs/Float64, robot units).")
    gripper_joint_state_topic: str = param(
        "gripper_joint_command", "Gripper command topic for gripper_output joint_state/both (sensor_msgs/JointState)."
    )
    twist_gain: float = param(
        2.0, "Twist output: proportional gain on (target - measured EE pose) added to the feed-forward (1/s).",
        min=0.0, max=100.0,
    )
    estop_topic: str = param(
        "estop", "std_msgs/Bool e-stop topic: true latches a hold until the ~/reset service ('' = no topic)."
    )
    gripper_output: str = param(
        "float64", "Gripper command type: std_msgs/Float64 position, sensor_msgs/JointState, both or none.",
        choices=("float64", "joint_state", "both", "none"),
    )
    preview_prefix: str = param("preview", "Dry-run commands go to <prefix>/<command topic>.")
    status_topic: str = param("executor_status", "Topic of ExecutorStatus messages.")
    status_rate_hz: float = param(10.0, "ExecutorStatus publish rate (Hz).", min=0.1, max=200.0)


@dataclass
class SafetyConfig:
    """Limits every command passes through; a violation is clamped or held, and counted."""

    workspace_min: list[float] = param([-1.0, -1.0, 0.0], "Workspace box lower corner x, y, z (m, base frame).",
                                       length=3)
    workspace_max: list[float] = param([1.0, 1.0, 1.5], "Workspace box upper corner x, y, z (m, base frame).", length=3)
    max_linear_speed: float = param(0.25, "Maximum end-effector speed (m/s).", min=0.0)
    max_angular_speed: float = param(1.5, "Maximum end-effector angular speed (rad/s).", min=0.0)
    max_translation_step: float = param(0.05, "Largest jump of the target between two commands (m).", min=0.0)
    max_rotation_step: float = param(0.2, "Largest rotation of the target between two commands (rad).", min=0.0)
    gripper_min: float = param(0.0, "Lowest normalised gripper command.", min=0.0, max=1.0)
    gripper_max: float = param(1.0, "Highest normalised gripper command.", min=0.0, max=1.0)
    max_pose_age: float = param(
        0.5, "A measured end-effector pose older than this is stale: the executor holds (zero twist) and says so (s).",
        min=0.0,
    )
    workspace_margin: float = param(
        0.05, "Plausibility margin around the workspace box: a measured pose or a chunk pose further outside than "
        "this is implausible (pose -> hold; chunk -> refused whole) (m).", min=0.0,
    )
    max_measured_speed: float = param(
        2.0, "A measured end-effector pose that moved faster than this since the previous reading is implausible "
        "(a jump: wrong TF, units, another robot) -> hold (m/s).", min=0.0,
    )
    max_measured_angular_speed: float = param(
        10.0, "The same for the measured orientation (rad/s).", min=0.0,
    )
    max_start_distance: float = param(
        0.2, "A chunk's first pose must lie within this of the measured pose (a bridge covers the rest slowly); "
        "further -> refused (m).", min=0.0,
    )
    max_start_angle: float = param(
        1.0, "The same for the first pose's rotation from the measured orientation (rad).", min=0.0,
    )
    max_tracking_error: float = param(
        0.1, "Twist output: the executor integrates its own twist commands; when the measured pose strays further "
        "than this from that integral (a frozen or wrong pose), it holds with zero twist (m).", min=0.0,
    )
    delta_reference_tolerance: float = param(
        0.05, "A DELTA chunk's reference_pose must lie within this (plus max_linear_speed x the chunk's age) of the "
        "measured pose; otherwise it is refused (m).", min=0.0,
    )

    def check(self) -> None:
        for axis, lo, hi in zip("xyz", self.workspace_min, self.workspace_max):
            if not lo < hi:
                raise ConfigError(f"safety.workspace_min: {axis} = {lo} must be below safety.workspace_max {axis} = "
                                  f"{hi}")
        if not self.gripper_min <= self.gripper_max:
            raise ConfigError("safety.gripper_min: must not exceed safety.gripper_max")


@dataclass
class ReplayConfig:
    """Offline evaluation on recorded bags (`vla-ros eval`, `vla-ros demo`); see docs/replay.md."""

    ground_truth_topic: str = param(
        "", "Topic of what was actually commanded, the reference predictions are scored against; '' = auto: the "
        "first of executor.pose_topic, executor.twist_topic, policy.chunk_topic in the bag, else robot.ee_pose_topic."
    )
    ground_truth_type: str = param(
        "auto", "How ground_truth_topic is read: pose (PoseStamped targets), twist (TwistStamped), chunk "
        "(ActionChunk), ee_pose (measured PoseStamped), auto (from the message type).",
        choices=("auto", "pose", "twist", "chunk", "ee_pose"),
    )
    gripper_topic: str = param(
        "", "Recorded gripper commands (std_msgs/Float64, robot units); '' = executor.gripper_topic if in the bag, "
        "else the chunks' gripper (chunk ground truth) or the measured robot.gripper_joint."
    )
    latency: str = param(
        "none", "Inference latency injected on the simulated clock: none (chunks arrive at once), measured (each "
        "inference's own wall time), fixed (replay.fixed_latency; deterministic).",
        choices=("none", "measured", "fixed"),
    )
    fixed_latency: float = param(0.1, "Injected latency for replay.latency = fixed (s).", min=0.0, max=10.0)
    batch_size: int = param(
        16, "Observations per batched inference when no chunk can depend on the executor (policy.trigger rate, "
        "policy.rtc off, replay.latency none, no output bag): the same chunks, several times faster; the reported "
        "inference latency is then each chunk's share of its batch. 1 = one inference at a time.", min=1, max=1024,
    )
    parallel_executor: bool = param(
        True, "With batched inference, simulate the executors in a second process, beside input handling and "
        "inference (2+ CPU cores, bags of 10 s or more). Same commands; the replay finishes sooner."
    )
    max_gap: float = param(
        0.25, "Ground truth is interpolated only between samples closer than this; other times are not scored (s).",
        min=0.0,
    )
    gripper_threshold: float = param(0.5, "Gripper accuracy: normalised opening above this counts as open.", min=0.0,
                                     max=1.0)
    max_duration: float = param(0.0, "Evaluate only the first this many seconds of each bag (0 = all) (s).", min=0.0)
    output_bag: bool = param(
        False, "Also write an mcap bag with the inputs, the predicted chunks and the executor commands (Foxglove)."
    )
    output_prefix: str = param("/replay", "Topic prefix of the predictions and commands in the output bag.")
    clamp_warning_fraction: float = param(
        0.05, "Warn when more than this fraction of a lane's ticks were clamped by a safety limit.", min=0.0, max=1.0,
    )
    out_dir: str = param("out/eval", "Directory of metrics.json, the plots, index.html and the output bag.")


@dataclass
class SimConfig:
    """The MuJoCo tabletop simulation (`sim_node`, `vla-ros run --sim`, sim-eval); see docs/sim.md, docs/launch.md."""

    task: str = param("reach", "Simulated task.", choices=("reach", "push", "pick"))
    seed: int = param(0, "Seed of the task's randomised object positions.", min=0)
    image_size: int = param(128, "Side of the square camera renders (px).", min=16, max=1024)
    physics_dt: float = param(0.002, "MuJoCo physics time step (s).", min=0.0005, max=0.01)
    real_time_factor: float = param(
        1.0, "sim_node: sim seconds per wall second (1 = real time, 2 = twice as fast); 0 = as fast as the "
        "machine can step and render (only when the policy and executor keep up: their commands arrive later in sim "
        "time).", min=0.0, max=100.0,
    )
    clock_rate: float = param(
        100.0, "sim_node: sim-time ticks per sim second: the world is stepped, /clock, joint states and the EE pose "
        "are published once per tick (keep it >= executor.control_rate, or the control timer ticks less often).",
        min=10.0, max=2000.0,
    )
    camera_rate: float = param(
        10.0, "sim_node: camera frames per sim second (each camera is rendered only then).", gt=0.0, max=100.0,
    )
    task_state_topic: str = param(
        "sim/task_state", "sim_node: std_msgs/String topic with the task state as JSON (success, distance, ...) "
        "('' = not published).",
    )
    episode_seconds: float = param(
        0.0, "sim-eval: longest episode (sim s); it ends earlier on success. 0 = the task's default (reach 10, "
        "push 20, pick 15).", min=0.0, max=600.0,
    )


@dataclass
class VlaConfig:
    """Everything a vla_ros graph needs, in one validated object."""

    robot: RobotConfig = section(RobotConfig, "Robot profile.")
    policy: PolicyConfig = section(PolicyConfig, "Policy selection and triggering.")
    sync: SyncConfig = section(SyncConfig, "Observation synchronisation.")
    executor: ExecutorConfig = section(ExecutorConfig, "Chunk execution.")
    safety: SafetyConfig = section(SafetyConfig, "Safety limits.")
    replay: ReplayConfig = section(ReplayConfig, "Offline evaluation on recorded bags.")
    sim: SimConfig = section(SimConfig, "MuJoCo closed-loop simulation.")

    def to_dict(self) -> dict[str, Any]:
        return schema.to_dict(self)

    def flatten(self) -> dict[str, Any]:
        return schema.flatten(self)

    def with_overrides(self, overrides: dict[str, Any] | Iterable[str]) -> "VlaConfig":
        """Copy with dotted-key overrides applied ({"policy.device": "cuda"} or ["policy.device=cuda"])."""
        return config_from_dict(self.to_dict(), overrides)


def _unwrap_ros_params(data: dict[str, Any]) -> dict[str, Any]:
    """Accept ROS 2 parameter files (``node: {ros__parameters: {...}}``) as well as plain configs."""
    if len(data) == 1:
        (only,) = data.values()
        if isinstance(only, dict) and "ros__parameters" in only:
            return only["ros__parameters"] or {}
    if "ros__parameters" in data:
        return data["ros__parameters"] or {}
    return data


def _nest(data: dict[str, Any]) -> dict[str, Any]:
    """Allow dotted keys in files too (``policy.device: cuda``), as ROS parameter files do."""
    flat = {k: v for k, v in data.items() if "." in k}
    nested = {k: v for k, v in data.items() if "." not in k}
    return schema.deep_merge(nested, schema.unflatten(flat)) if flat else nested


def load_yaml(path: str) -> dict[str, Any]:
    """Read one config/profile YAML file into a (possibly partial) nested dict."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, got {type(data).__name__}")
    return _nest(_unwrap_ros_params(data))


def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | Iterable[str] | None) -> dict[str, Any]:
    if not overrides:
        return data
    if not isinstance(overrides, dict):
        overrides = dict(schema.parse_override(o) for o in overrides)
    return schema.deep_merge(data, schema.unflatten(dict(overrides)))


def config_from_dict(data: dict[str, Any] | None, overrides: dict[str, Any] | Iterable[str] | None = None) -> VlaConfig:
    """Validate a nested dict (+ dotted overrides) into a `VlaConfig`; errors name the key."""
    return schema.from_dict(VlaConfig, _apply_overrides(_nest(dict(data or {})), overrides))


def load_config(
    paths: Iterable[str | os.PathLike] = (),
    overrides: dict[str, Any] | Iterable[str] | None = None,
) -> VlaConfig:
    """Merge YAML files in order (later wins) on top of the schema defaults, then the overrides."""
    merged: dict[str, Any] = {}
    for path in paths:
        part = load_yaml(os.fspath(path))
        try:  # keys and types of each file alone, so an error names the file that holds it
            schema.from_dict(VlaConfig, part, run_checks=False)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in {os.fspath(path)})") from exc
        merged = schema.deep_merge(merged, part)
    return config_from_dict(merged, overrides)
