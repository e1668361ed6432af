"""rclpy messages <-> numpy / vla_ros.core types.

Decoding is shared with the replay (duck-typed, in `vla_ros.core.msg_decode`); this module adds
what needs the rclpy message classes: building messages, and using the system's cv_bridge for
images when a working one is installed (a ROS 2 install usually has it). The numpy fallback gives
identical arrays (tested), so behaviour does not depend on which one runs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Header

from vla_ros.core import msg_decode
from vla_ros.core.msg_decode import MessageError, SUPPORTED_ENCODINGS
from vla_ros.core.rotations import rotvec_to_quat
from vla_ros.core.types import ActionChunk, ActionMode, EEPose
from vla_ros.msg import ActionChunk as ActionChunkMsg


def _load_cv_bridge() -> Any | None:
    """A working ROS 2 cv_bridge, or None (absent, or the broken ROS 1 port from PyPI)."""
    try:
        from cv_bridge import CvBridge  # type: ignore[import-not-found]

        bridge = CvBridge()
        probe = Image(height=1, width=2, encoding="bgr8", step=6, data=bytes([1, 2, 3, 4, 5, 6]))
        out = bridge.imgmsg_to_cv2(probe, desired_encoding="rgb8")
        if out.shape != (1, 2, 3) or out[0, 0].tolist() != [3, 2, 1]:
            return None
        return bridge
    except Exception:  # noqa: BLE001 - any failure means "no usable cv_bridge"
        return None


_CV_BRIDGE = _load_cv_bridge()


def has_cv_bridge() -> bool:
    return _CV_BRIDGE is not None


def image_to_rgb(msg: Image, topic: str = "image", use_cv_bridge: bool = True) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 uint8 RGB; encodings outside SUPPORTED_ENCODINGS raise MessageError."""
    if use_cv_bridge and _CV_BRIDGE is not None and msg.encoding in SUPPORTED_ENCODINGS:
        try:
            out = _CV_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8")
            return np.ascontiguousarray(out)
        except Exception as exc:  # noqa: BLE001 - re-raised as the same clear error type
            raise MessageError(f"{topic}: {exc}") from exc
    return msg_decode.image_to_rgb(msg, topic)


def any_image_to_rgb(msg: Image | CompressedImage, topic: str = "image") -> np.ndarray:
    """Image or CompressedImage -> HxWx3 uint8 RGB."""
    if isinstance(msg, CompressedImage) or hasattr(msg, "format"):
        return msg_decode.compressed_image_to_rgb(msg, topic)
    return image_to_rgb(msg, topic)


def time_msg(t: float) -> Time:
    sec, nanosec = msg_decode.sec_to_sec_nanosec(t)
    return Time(sec=sec, nanosec=nanosec)


def header(t: float, frame_id: str = "") -> Header:
    return Header(stamp=time_msg(t), frame_id=frame_id)


def rgb_to_image_msg(rgb: np.ndarray, t: float, frame_id: str = "", encoding: str = "rgb8", row_padding: int = 0) -> Image:
    """HxWx3 RGB uint8 -> sensor_msgs/Image in `encoding` (rgb8/bgr8/rgba8/bgra8/mono8), optional row padding."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    if encoding == "rgb8":
        px = rgb
    elif encoding == "bgr8":
        px = rgb[..., ::-1]
    elif encoding in ("rgba8", "bgra8"):
        base = rgb if encoding == "rgba8" else rgb[..., ::-1]
        px = np.concatenate([base, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    elif encoding == "mono8":
        px = rgb[..., :1]
    else:
        raise ValueError(f"encoding: cannot build {encoding!r}; expected rgb8, bgr8, rgba8, bgra8 or mono8")
    h, w, c = px.shape
    rows = np.ascontiguousarray(px).reshape(h, w * c)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((h, row_padding), np.uint8)], axis=1)
    return Image(
        header=header(t, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * c + row_padding, data=rows.tobytes(),
    )


def joint_state_msg(names: Sequence[str], positions: Sequence[float], t: float) -> JointState:
    return JointState(header=header(t), name=list(names), position=[float(p) for p in positions])


def pose_msg(position: np.ndarray, quat: np.ndarray) -> Pose:
    return Pose(
        position=Point(x=float(position[0]), y=float(position[1]), z=float(position[2])),
        orientation=Quaternion(x=float(quat[0]), y=float(quat[1]), z=float(quat[2]), w=float(quat[3])),
    )


def ee_to_pose_msg(ee: EEPose) -> Pose:
    return pose_msg(ee.position, ee.orientation)


def chunk_to_msg(chunk: ActionChunk) -> ActionChunkMsg:
    """ActionChunk -> vla_ros/ActionChunk message (poses with quaternions, stamped with the observation)."""
    quats = rotvec_to_quat(chunk.actions[:, 3:6])
    msg = ActionChunkMsg()
    msg.header = header(chunk.stamp, chunk.frame_id)
    msg.seq = int(chunk.seq)
    msg.policy_id = chunk.policy_id
    msg.checkpoint_id = chunk.checkpoint_id
    msg.action_mode = int(chunk.mode)
    msg.dt = float(chunk.dt)
    msg.poses = [pose_msg(chunk.actions[i, :3], quats[i]) for i in range(chunk.horizon)]
    msg.gripper = [float(g) for g in chunk.actions[:, 6]]
    if chunk.mode == ActionMode.DELTA and chunk.reference_pose is not None:
        msg.reference_pose = ee_to_pose_msg(chunk.reference_pose)
    msg.inference_latency = float(chunk.inference_latency)
    msg.observation_age = float(chunk.observation_age)
    return msg


def chunk_from_msg(msg: ActionChunkMsg, topic: str = "action_chunk") -> ActionChunk:
    """vla_ros/ActionChunk message -> validated ActionChunk (MessageError names the bad field)."""
    return msg_decode.chunk_from_msg(msg, topic)
