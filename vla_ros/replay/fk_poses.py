"""End-effector poses by forward kinematics from a bag's joint states (``robot.ee_pose_source: fk``).

For recordings with joint states and a URDF but no pose: the URDF is ``robot.urdf`` (a file) or
the first message of the bag's ``robot.robot_description_topic``; every JointState becomes a
geometry_msgs/PoseStamped of ``robot.ee_frame`` in ``robot.base_frame`` at the joint state's header
stamp (`vla_ros.core.urdf_fk`), routed like a recorded EE pose topic (see `tf_poses` for TF).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_ros.core import msg_decode
from vla_ros.core.urdf_fk import UrdfKinematics
from vla_ros.replay.bag_io import STRING_TYPES, Bag, BagError


def fk_pose_topic(base_frame: str, ee_frame: str) -> str:
    return f"/fk[{base_frame}->{ee_frame}]"


def load_urdf(robot: Any, bag: Bag) -> str:
    """The URDF text: robot.urdf, else the bag's robot description topic (BagError if neither)."""
    if robot.urdf:
        path = Path(robot.urdf)
        if not path.is_file():
            raise ValueError(f"robot.urdf: {path} does not exist; expected a URDF file")
        return path.read_text(encoding="utf-8")
    topic = robot.robot_description_topic
    info = bag.topics.get(topic)
    if info is None or info.msgtype not in STRING_TYPES:
        raise BagError(f"bag {bag.path}: robot.ee_pose_source fk needs a URDF: robot.urdf is empty and the bag has no "
                       f"{topic} (std_msgs/String, robot.robot_description_topic)")
    for m in bag.messages([topic]):
        return str(m.msg.data)
    raise BagError(f"bag {bag.path}: {topic} (robot.robot_description_topic) has no readable message")


class FkPoses:
    """JointState messages in, EE PoseStamped messages out."""

    def __init__(self, robot: Any, urdf_xml: str, factory: Any):
        self.fk = UrdfKinematics(urdf_xml, robot.base_frame, robot.ee_frame)
        self.base = robot.base_frame
        self.order = tuple(robot.joint_names)
        self.factory = factory
        self.emitted = 0
        self.failures = 0
        self.last_error = ""

    def add(self, msg: Any) -> list[Any]:
        try:
            names = msg_decode.joint_names_of(msg, self.order)
            positions = [float(v) for v in msg.position]
            pos, quat = self.fk.pose(dict(zip(names, positions)))
            stamp = msg_decode.stamp_to_sec(msg.header.stamp)
        except (msg_decode.MessageError, ValueError, TypeError, AttributeError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            return []
        self.emitted += 1
        return [self.factory.pose_stamped(stamp, self.base, pos, quat)]

    def why_none(self) -> str:
        return self.last_error or "no joint state was read"
