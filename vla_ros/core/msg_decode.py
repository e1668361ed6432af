"""Read ROS messages into numpy / vla_ros types without importing ROS.

Every function here is duck-typed on the message *fields* (``msg.height``, ``msg.header.stamp.sec``,
...), so the same code decodes rclpy messages in the nodes and `rosbags` messages in the replay.
Bad input raises `MessageError` naming the field and the expected form; nothing half-decoded
leaves this module.
"""

from __future__ import annotations

import enum
import math
from typing import Any, Sequence

import numpy as np

from vla_ros.core.rotations import quat_normalize, quat_to_rotvec
from vla_ros.core.types import ActionChunk, ActionMode, EEPose

# encoding -> channels of the raw pixels
RAW_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3}
SUPPORTED_ENCODINGS = tuple(RAW_ENCODINGS)
# CompressedImage codecs (the words image_transport puts in ``format``)
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


# A quaternion on the wire must be a unit quaternion to this tolerance; anything else (norm 7, a
# near-zero "quaternion" that normalises into an arbitrary flip) is refused, never renormalised.
QUATERNION_NORM_TOLERANCE = 1e-3


class Problem(str, enum.Enum):
    """What is wrong with an input message: the code a `MessageError` carries, so callers (the
    observation builder's problem counts, the report's labels) never match the error's wording."""

    STAMP = "stamp"
    ENCODING = "encoding"
    SIZE = "size"
    TOO_LARGE = "too_large"
    NONFINITE = "nonfinite"
    QUATERNION = "quaternion"
    MISSING_JOINT = "missing_joint"
    DUPLICATE_JOINT = "duplicate_joint"
    FRAME = "frame"
    IMPLAUSIBLE = "implausible"
    DECODE = "decode"
    INSTRUCTION = "instruction"
    STALE = "stale"
    CLOCK = "clock"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:  # interchangeable with its value as a dict key ("stamp")
        return hash(self.value)


class MessageError(ValueError):
    """A message cannot be turned into an observation / chunk; the text names the field, ``code``
    (a `Problem`) says what kind of problem it is."""

    def __init__(self, text: str, code: Problem = Problem.SIZE):
        super().__init__(text)
        self.code = Problem(code)


class ChunkTooLong(MessageError):
    """An ActionChunk with more steps than allowed (refused before its poses are decoded)."""


def _check_unit(norms: np.ndarray, field: str) -> None:
    bad = np.flatnonzero(~(np.abs(norms - 1.0) <= QUATERNION_NORM_TOLERANCE))
    if bad.size:
        i = int(bad[0])
        where = f"step {i} has norm" if norms.shape[0] > 1 else "got norm"
        raise MessageError(f"{field}.orientation: expected finite unit quaternions (x, y, z, w) with norm 1 +- "
                           f"{QUATERNION_NORM_TOLERANCE}; {where} {float(norms[i]):.6g}", Problem.QUATERNION)


def stamp_to_sec(stamp: Any) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def sec_to_sec_nanosec(t: float) -> tuple[int, int]:
    """float seconds -> (sec, nanosec) with 0 <= nanosec < 1e9, rounding to the nearest ns."""
    total_ns = int(round(t * 1e9))
    return total_ns // 1_000_000_000, total_ns % 1_000_000_000


def _as_uint8_buffer(data: Any) -> np.ndarray:
    """Zero-copy uint8 view of a message's data (bytes, array.array from rclpy, numpy from rosbags)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain list of ints
        return np.asarray(data, dtype=np.uint8)


def check_image(msg: Any, topic: str = "image") -> int:
    """Validate a sensor_msgs/Image's encoding, sizes and data length without touching pixels.

    Returns the number of channels; raises MessageError naming the field otherwise.
    """
    encoding = str(msg.encoding)
    if encoding not in RAW_ENCODINGS:
        raise MessageError(
            f"{topic}: encoding {encoding!r} is not supported; expected one of {', '.join(SUPPORTED_ENCODINGS)}",
            Problem.ENCODING,
        )
    channels = RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise MessageError(f"{topic}: height/width: expected a non-empty image, got {height}x{width}")
    row_bytes = width * channels
    if step < row_bytes:
        raise MessageError(f"{topic}: step: expected >= width*channels = {row_bytes} bytes, got {step}")
    needed = step * (height - 1) + row_bytes
    size = len(msg.data)
    if size < needed:
        raise MessageError(f"{topic}: data: expected at least {needed} bytes for {height}x{width} {encoding} (step "
                           f"{step}), got {size}")
    return channels


def _to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    import cv2  # OpenCV's channel shuffles are ~20x faster than numpy fancy indexing on camera frames

    if encoding == "rgb8":
        return np.ascontiguousarray(pixels)
    pixels = np.ascontiguousarray(pixels)
    code = {"bgr8": cv2.COLOR_BGR2RGB, "8UC3": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
            "bgra8": cv2.COLOR_BGRA2RGB}.get(encoding, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(pixels, code)


def image_to_rgb(msg: Any, topic: str = "image") -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 uint8 RGB. Honours row padding in ``step``; shares the message's
    buffer when no conversion is needed (rgb8 without padding)."""
    channels = check_image(msg, topic)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels
    buf = _as_uint8_buffer(msg.data)
    if buf.size < step * height:  # last row without its padding: pad virtually
        buf = np.concatenate([buf, np.zeros(step * height - buf.size, np.uint8)])
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    return _to_rgb(rows.reshape(height, width, channels), str(msg.encoding))


def _check_compressed_format(fmt: str, topic: str) -> None:
    """Refuse a CompressedImage format we cannot turn into RGB (depth, or a codec other than jpeg/png).

    image_transport writes e.g. ``"jpeg"``, ``"png"`` or ``"bgr8; jpeg compressed bgr8"``; an empty
    format is decoded by its content.
    """
    tokens = {t.strip().lower() for t in fmt.replace(";", " ").split()}
    if "compresseddepth" in tokens or (tokens and not tokens & set(COMPRESSED_FORMATS)):
        raise MessageError(f"{topic}: format: {fmt!r} is not supported; expected a jpeg or png colour image "
                           f"(image_transport 'compressed')", Problem.ENCODING)


def compressed_image_to_rgb(msg: Any, topic: str = "image") -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> HxWx3 uint8 RGB."""
    import cv2  # local import: only needed for compressed transport

    _check_compressed_format(str(msg.format), topic)
    buf = _as_uint8_buffer(msg.data)
    if buf.size == 0:
        raise MessageError(f"{topic}: data: empty compressed image (format {msg.format!r})", Problem.DECODE)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise MessageError(f"{topic}: data: cannot decode compressed image of format {msg.format!r}; expected jpeg or "
                           "png",
                           Problem.DECODE)
    return np.ascontiguousarray(bgr[..., ::-1])


def decode_image(msg: Any, topic: str = "image") -> np.ndarray:
    """sensor_msgs/Image or sensor_msgs/CompressedImage (rclpy or rosbags) -> HxWx3 uint8 RGB.

    The one image decoder of the nodes and the replay: raw encodings in SUPPORTED_ENCODINGS, jpeg
    and png compressed images; anything else raises MessageError naming the topic and field.
    """
    if hasattr(msg, "format"):  # only CompressedImage has it
        return compressed_image_to_rgb(msg, topic)
    return image_to_rgb(msg, topic)


def joint_names_of(msg: Any, order: Sequence[str] = (), topic: str = "joint_states") -> list[str]:
    """The joint names of a JointState. Some drivers publish an empty ``name`` list: its positions are
    then taken in `order` (``robot.joint_names``) when the lengths match; otherwise MessageError."""
    names = list(msg.name)
    if names:
        return names
    n = len(msg.position)
    if order and n == len(order):
        return list(order)
    if not order:
        raise MessageError(f"{topic}: name: empty, and robot.joint_names is empty; set robot.joint_names to the "
                           f"order of the {n} positions to map them by position", Problem.MISSING_JOINT)
    raise MessageError(f"{topic}: name: empty, and the message has {n} positions where robot.joint_names has "
                       f"{len(order)} ({', '.join(order)}); cannot map them by position", Problem.MISSING_JOINT)


def joint_positions(msg: Any, joint_names: Sequence[str], topic: str = "joint_states",
                    order: Sequence[str] = ()) -> np.ndarray:
    """sensor_msgs/JointState -> positions in `joint_names` order (float64). Missing/NaN -> MessageError.

    `order`: the names of the positions when the message's ``name`` is empty (`joint_names_of`)."""
    names = joint_names_of(msg, order, topic)
    pos = msg.position
    positions = pos.tolist() if isinstance(pos, np.ndarray) else [float(v) for v in pos]  # plain floats: cheaper
    if len(positions) != len(names):
        raise MessageError(f"{topic}: position: expected one value per name ({len(names)}), got {len(positions)}")
    index = {n: i for i, n in enumerate(names)}
    if len(index) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise MessageError(f"{topic}: name: duplicate joint name(s) {', '.join(dups)}; expected each joint once",
                           Problem.DUPLICATE_JOINT)
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise MessageError(f"{topic}: name: joint(s) {', '.join(missing)} missing; message has "
                           f"{', '.join(names) or 'no joints'}",
                           Problem.MISSING_JOINT)
    values = [positions[index[j]] for j in joint_names]
    bad = [j for j, v in zip(joint_names, values) if not math.isfinite(v)]
    if bad:
        raise MessageError(f"{topic}: position: joint(s) {', '.join(bad)} are NaN or inf", Problem.NONFINITE)
    return np.array(values, dtype=np.float64)


def pose_to_ee(pose: Any, frame_id: str = "", topic: str = "pose") -> EEPose:
    """geometry_msgs/Pose -> EEPose; non-finite values or a non-unit quaternion raise MessageError."""
    p, q = pose.position, pose.orientation
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    try:
        if np.all(np.isfinite(quat)):
            _check_unit(np.array([math.sqrt(float(quat @ quat))]), "pose")
        return EEPose(np.array([p.x, p.y, p.z]), quat, frame_id)
    except ValueError as exc:
        code = exc.code if isinstance(exc, MessageError) else Problem.NONFINITE
        raise MessageError(f"{topic}: {exc}", code) from exc


def chunk_from_msg(msg: Any, topic: str = "action_chunk", max_steps: int | None = None) -> ActionChunk:
    """vla_ros/ActionChunk message -> ActionChunk (validated: sizes, finiteness, unit quaternions,
    mode, dt). With `max_steps`, a longer chunk raises `ChunkTooLong` before any pose is read."""
    n_poses, n_grip = len(msg.poses), len(msg.gripper)
    if n_poses == 0:
        raise MessageError(f"{topic}: poses: expected at least one pose, got an empty chunk")
    if max_steps is not None and n_poses > max_steps:
        raise ChunkTooLong(f"{topic}: poses: {n_poses} steps, more than executor.max_chunk_steps = {max_steps}")
    if n_grip != n_poses:
        raise MessageError(f"{topic}: gripper: expected one value per pose ({n_poses}), got {n_grip}")
    try:
        mode = ActionMode(int(msg.action_mode))
    except ValueError:
        raise MessageError(f"{topic}: action_mode: expected 0 (absolute) or 1 (delta), got {msg.action_mode}") from None
    pos = np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses], dtype=np.float64)
    quat = np.array([[p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w] for p in msg.poses])
    if not np.all(np.isfinite(quat)):
        raise MessageError(f"{topic}: poses.orientation: expected finite unit quaternions (x, y, z, w)",
                           Problem.NONFINITE)
    _check_unit(np.linalg.norm(quat, axis=1), f"{topic}: poses")
    actions = np.concatenate([pos, quat_to_rotvec(quat_normalize(quat)), np.asarray(msg.gripper, np.float64)[:, None]],
                             axis=1)
    frame = str(msg.header.frame_id)
    try:
        return ActionChunk(
            stamp=stamp_to_sec(msg.header.stamp),
            dt=float(msg.dt),
            actions=actions,
            mode=mode,
            frame_id=frame,
            reference_pose=pose_to_ee(msg.reference_pose, frame, topic + ".reference_pose") if mode == ActionMode.DELTA
            else None,
            seq=int(msg.seq),
            policy_id=str(msg.policy_id),
            checkpoint_id=str(msg.checkpoint_id),
            inference_latency=float(msg.inference_latency),
            observation_age=float(msg.observation_age),
        )
    except ValueError as exc:
        code = exc.code if isinstance(exc, MessageError) else Problem.NONFINITE
        raise MessageError(f"{topic}: {exc}", code) from exc
