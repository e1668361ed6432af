"""The rclpy side of `vla_ros.core.msg_encode`: its encoder over the rclpy message classes.

Decoding is duck-typed and shared with the replay (`vla_ros.core.msg_decode`, images included:
the nodes decode with the same numpy/OpenCV code as `vla-ros eval`, not with cv_bridge); building
messages is `msg_encode.MessageEncoder`, here bound to the rclpy classes. The names below are that
encoder's methods under the names the nodes, the simulators and the tests import.
"""

from __future__ import annotations

import importlib

from vla_ros.core.msg_encode import MessageEncoder


def rclpy_type(name: str) -> type:
    """The rclpy message class of 'pkg/msg/Name' (or 'pkg/Name'), as rosidl_runtime_py's get_message
    does; ValueError for a malformed name, ImportError / AttributeError for a class not installed."""
    parts = name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"expected a message type 'pkg/msg/Name', got {name!r}")
    return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])


ENCODER = MessageEncoder(rclpy_type)

time_msg = ENCODER.time  # float seconds -> builtin_interfaces/Time
header = ENCODER.header  # (t, frame_id) -> std_msgs/Header
pose_msg = ENCODER.pose  # (position, quaternion xyzw) -> geometry_msgs/Pose
rgb_to_image_msg = ENCODER.image  # (rgb, t, frame_id, encoding, row_padding) -> sensor_msgs/Image
