"""End-effector poses from a bag's /tf and /tf_static, for recordings without a PoseStamped topic.

Real arms keep the end-effector pose in TF (robot_state_publisher, the driver's controller) and
nowhere else. `TfPoses` feeds each TFMessage into the one `TransformBuffer` (tf2's semantics) and,
through `ChainPoses` (the same the nodes use), emits a geometry_msgs/PoseStamped of
``robot.ee_frame`` in ``robot.base_frame`` whenever the chain becomes known at a newer time. The
replay routes these exactly like a recorded EE pose topic: observation builders, executor feedback,
``ee_pose`` ground truth.

    poses = TfPoses(cfg.robot, factory)          # factory: bag_io.MessageFactory of the bag's typestore
    for pose_msg in poses.add(tf_msg, static=False, now=t):
        ...                                      # PoseStamped in base_frame, stamped at the chain's time
"""

from __future__ import annotations

from typing import Any

from vla_ros.core.tf_buffer import ChainPoses, TransformBuffer, ee_pose_from_tf, tf_pose_topic

TF_TYPES = ("tf2_msgs/msg/TFMessage",)
__all__ = ["TF_TYPES", "TfPoses", "tf_pose_topic", "use_tf"]


def use_tf(robot: Any, topics: dict) -> bool:
    """Whether the EE pose of a bag with these topics comes from TF (``robot.ee_pose_source``)."""
    return ee_pose_from_tf(robot, topics)


class TfPoses:
    """TF messages in, EE PoseStamped messages out (see the module docstring)."""

    def __init__(self, robot: Any, factory: Any):
        self.base = robot.base_frame
        self.buffer = TransformBuffer(robot.tf_cache_time, robot.tf_max_extrapolation)
        self.chain = ChainPoses(self.buffer, robot.base_frame, robot.ee_frame)
        self.factory = factory

    @property
    def emitted(self) -> int:
        return self.chain.emitted

    def add(self, msg: Any, *, static: bool, now: float) -> list[Any]:
        """Take one TFMessage; the EE poses it makes known (0 or 1)."""
        if not self.buffer.add_message(msg, static=static):
            return []
        got = self.chain.update(now)
        if got is None:
            return []
        t, tf = got
        return [self.factory.pose_stamped(t, self.base, tf.translation, tf.rotation)]

    def why_none(self) -> str:
        return self.chain.why_none()
