"""What each topic of a bag feeds in a replay: the input side, set up once per bag.

Roles per topic (``camera``, ``joints``, ``ee_pose``, ``instruction``, ``gt`` for the ground
truth, ``tf`` / ``tf_static`` / ``fk`` for an end-effector pose computed from TF or by forward
kinematics), the virtual EE-pose topic such a computed pose is published on (`tf_poses`,
`fk_poses`), the hold baseline's inputs, and the checks that a bag can be evaluated at all, each
failing with a `BagError` that names the bag, the setting and what the bag has instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from vla_ros.core.config import ConfigError, VlaConfig
from vla_ros.core.msg_encode import MessageEncoder
from vla_ros.core.observation_builder import ObservationSpec
from vla_ros.replay.bag_io import IMAGE_TYPES, JOINT_STATE_TYPES, POSE_TYPES, STRING_TYPES, Bag, BagError
from vla_ros.replay.fk_poses import FkPoses, load_urdf
from vla_ros.replay.ground_truth import GroundTruthSources, abs_topic
from vla_ros.replay.tf_poses import TF_TYPES, TfPoses

# roles whose messages become EE poses on the virtual topic
POSE_SOURCE_ROLES = ("tf", "tf_static", "fk")


def required_topics(specs: list[ObservationSpec]) -> dict[str, tuple[tuple[str, ...], str]]:
    """The topics the observation specs read, with their accepted types and the setting that names them;
    ConfigError when one topic has two roles of different types."""
    wanted: dict[str, tuple[tuple[str, ...], str]] = {}
    for spec in specs:
        uses = [(cam.topic, IMAGE_TYPES, f"camera {cam.name!r}, robot.camera_topics") for cam in spec.cameras]
        if spec.joint_state_topic:
            uses.append((spec.joint_state_topic, JOINT_STATE_TYPES, "robot.joint_state_topic"))
        if spec.ee_pose_topic:
            uses.append((spec.ee_pose_topic, POSE_TYPES, "robot.ee_pose_topic"))
        for topic, types, why in uses:
            if topic in wanted and wanted[topic][0] != types:
                raise ConfigError(f"{why}: topic {topic} is also the {wanted[topic][1]}; one topic cannot be both")
            wanted[topic] = (types, why)
    return wanted


def hold_spec(spec: ObservationSpec, robot: Any) -> ObservationSpec:
    """The hold baseline's inputs: the EE pose (and the gripper from the joint states) only; its
    observations keep the policy's stamps (the pivot camera)."""
    ee_topic = abs_topic(robot.ee_pose_topic)
    hold_joints = abs_topic(robot.joint_state_topic) if robot.gripper_joint else ""
    return dataclasses.replace(spec, cameras=spec.cameras[:1], joint_state_topic=hold_joints,
                               ee_pose_topic=ee_topic) if ee_topic else spec


@dataclass
class PoseSources:
    """The EE pose computed from TF or by forward kinematics, published on the virtual topic ``ee_topic``."""

    ee_topic: str
    tf: TfPoses | None = None
    fk: FkPoses | None = None
    virtual: dict[str, str] = field(default_factory=dict)  # virtual topic -> its message type

    @classmethod
    def open(cls, bag: Bag, path: Path, robot: Any, tf_mode: bool) -> "PoseSources":
        """The pose sources `robot` asks for; BagError when the bag lacks what they read."""
        out = cls(abs_topic(robot.ee_pose_topic))
        if tf_mode:
            tf_topics = [t for t in (abs_topic(robot.tf_topic), abs_topic(robot.tf_static_topic)) if t in bag.topics]
            bad = [f"{t} has type {bag.topics[t].msgtype}" for t in tf_topics if bag.topics[t].msgtype not in TF_TYPES]
            if not tf_topics or bad:
                what = ("; ".join(bad) + ", expected tf2_msgs/msg/TFMessage" if bad else
                        f"the bag has neither {robot.tf_topic} nor {robot.tf_static_topic}")
                raise BagError(f"bag {path}: the end-effector pose is to come from TF (robot.ee_pose_source "
                               f"{robot.ee_pose_source}), but {what}. Bag topics: {bag.topic_list()}")
            out.tf = TfPoses(robot, MessageEncoder(bag.typestore.types))
            out.virtual[out.ee_topic] = POSE_TYPES[0]
        js_topic = abs_topic(robot.joint_state_topic)
        if robot.ee_pose_source == "fk":
            if not js_topic or js_topic not in bag.topics:
                raise BagError(f"bag {path}: robot.ee_pose_source fk computes the pose from the joint states, but "
                               f"{js_topic or 'robot.joint_state_topic (empty)'} is not in the bag")
            out.fk = FkPoses(robot, load_urdf(robot, bag), MessageEncoder(bag.typestore.types))
            out.virtual[out.ee_topic] = POSE_TYPES[0]
        return out

    def poses(self, role: str, msg: Any, now: float) -> Iterable[Any]:
        """The pose messages one ``tf`` / ``tf_static`` / ``fk`` message yields."""
        if role == "fk":
            return self.fk.add(msg)
        return self.tf.add(msg, static=role == "tf_static", now=now)

    def check(self, path: Path, warnings: list[str]) -> None:
        """After the replay: BagError if no pose came out; the refused transforms / failed FK as warnings."""
        tf, fk = self.tf, self.fk
        if tf is not None and tf.emitted == 0:
            raise BagError(f"bag {path}: no end-effector pose from TF: {tf.why_none()}")
        if fk is not None and fk.emitted == 0:
            raise BagError(f"bag {path}: no end-effector pose by forward kinematics: {fk.why_none()}")
        if fk is not None and fk.failures:
            warnings.append(f"forward kinematics: {fk.failures} joint state(s) without a pose; e.g. {fk.last_error}")
        if tf is not None and tf.buffer.problems:
            warnings.append(f"TF: {tf.buffer.problems} transform(s) refused; e.g. {tf.buffer.last_problem}")


def instruction_topic(bag: Bag, path: Path, cfg: VlaConfig) -> str:
    """The bag's instruction topic ("" if it has none); BagError when there is no instruction at all."""
    topic = abs_topic(cfg.robot.instruction_topic)
    if bool(topic) and topic in bag.topics and bag.topics[topic].msgtype in STRING_TYPES:
        return topic
    if not cfg.policy.instruction and not cfg.policy.allow_empty_instruction:
        raise BagError(
            f"bag {path}: no instruction: the bag has no {topic or 'instruction topic'} (std_msgs/String) and "
            f"policy.instruction is empty; pass --set policy.instruction='...' (or policy.allow_empty_instruction=true)"
        )
    return ""


@dataclass
class TopicRoles:
    """The roles of every topic read from the bag (``bag``) and of the virtual EE-pose topic (``virtual``)."""

    bag: dict[str, list[str]]
    virtual: dict[str, list[str]]

    @classmethod
    def build(cls, bag: Bag, robot: Any, cameras: Iterable[str], instr_topic: str, sources: GroundTruthSources,
              poses: PoseSources) -> "TopicRoles":
        roles: dict[str, list[str]] = {}
        for topic in cameras:
            roles.setdefault(topic, []).append("camera")
        if robot.joint_state_topic:
            roles.setdefault(abs_topic(robot.joint_state_topic), []).append("joints")
        if poses.ee_topic:
            roles.setdefault(poses.ee_topic, []).append("ee_pose")
        if instr_topic:
            roles.setdefault(instr_topic, []).append("instruction")
        for t in sources.topics():
            roles.setdefault(t, []).append("gt")
        if poses.tf is not None:
            roles.setdefault(abs_topic(robot.tf_topic), []).append("tf")
            roles.setdefault(abs_topic(robot.tf_static_topic), []).append("tf_static")
        if poses.fk is not None:
            roles.setdefault(abs_topic(robot.joint_state_topic), []).append("fk")
        return cls(bag={t: sorted(set(r)) for t, r in roles.items() if t in bag.topics},
                   virtual={t: sorted(set(r)) for t, r in roles.items() if t in poses.virtual})
