"""Image / joint-state / action-chunk conversions of the rclpy messages against independent references (OpenCV)."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from vla_ros.core.msg_decode import MessageError, Problem, chunk_from_msg, decode_image, joint_positions
from vla_ros.core.types import ActionChunk, ActionMode
from vla_ros.msg import ActionChunk as ActionChunkMsg
from vla_ros.ros import conversions as conv

RNG = np.random.default_rng(42)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)  # odd sizes catch stride mistakes

# encoding -> (raw pixels as a camera driver would send them, expected RGB output)
CASES = {
    "rgb8": (RGB, RGB),
    "bgr8": (cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR), RGB),
    "rgba8": (cv2.cvtColor(RGB, cv2.COLOR_RGB2RGBA), RGB),
    "bgra8": (cv2.cvtColor(RGB, cv2.COLOR_RGB2BGRA), RGB),
    "mono8": (
        cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY),
        cv2.cvtColor(cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB),
    ),
}


def _cv_bridge():
    """A working ROS 2 cv_bridge, or None (absent, or the broken ROS 1 port from PyPI)."""
    try:
        from cv_bridge import CvBridge  # type: ignore[import-not-found]

        bridge = CvBridge()
        probe = Image(height=1, width=2, encoding="bgr8", step=6, data=bytes([1, 2, 3, 4, 5, 6]))
        out = bridge.imgmsg_to_cv2(probe, desired_encoding="rgb8")
        return bridge if out.shape == (1, 2, 3) and out[0, 0].tolist() == [3, 2, 1] else None
    except Exception:  # noqa: BLE001 - any failure means "no usable cv_bridge"
        return None


CV_BRIDGE = _cv_bridge()


def raw_image(pixels: np.ndarray, encoding: str, padding: int) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    pad = RNG.integers(0, 256, (h, padding), dtype=np.uint8)  # garbage that must be ignored
    data = np.concatenate([rows, pad], axis=1).tobytes()
    return Image(height=h, width=w, encoding=encoding, step=rows.shape[1] + padding, data=data)


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding", list(CASES))
def test_every_encoding_decodes_to_rgb(encoding, padding):
    pixels, expected = CASES[encoding]
    out = decode_image(raw_image(pixels, encoding, padding))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("encoding", list(CASES))
def test_builder_and_decoder_agree(encoding):
    msg = conv.rgb_to_image_msg(RGB, 1.5, "cam", encoding=encoding, row_padding=3)
    assert msg.step == 7 * (1 if encoding == "mono8" else len(encoding) - 1) + 3
    out = decode_image(msg)
    expected = RGB if encoding != "mono8" else np.repeat(RGB[..., :1], 3, axis=2)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.skipif(CV_BRIDGE is None, reason="no working ROS 2 cv_bridge on this machine")
@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding", list(CASES))
def test_decoder_matches_cv_bridge(encoding, padding):
    msg = raw_image(CASES[encoding][0], encoding, padding)
    np.testing.assert_array_equal(CV_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"), decode_image(msg))


def test_unsupported_encoding_is_a_clear_error():
    msg = Image(height=2, width=2, encoding="16UC1", step=4, data=bytes(8))
    with pytest.raises(MessageError, match=r"/cam/depth: encoding '16UC1' is not supported; expected one of rgb8"):
        decode_image(msg, "/cam/depth")


def test_truncated_and_bad_step_are_errors():
    short = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(20))
    with pytest.raises(MessageError, match="data: expected at least 48 bytes"):
        decode_image(short)
    narrow = Image(height=4, width=4, encoding="rgb8", step=10, data=bytes(48))
    with pytest.raises(MessageError, match="step: expected >= width\\*channels = 12"):
        decode_image(narrow)


def test_compressed_png_is_lossless_and_garbage_is_an_error():
    ok, png = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert ok
    msg = CompressedImage(format="png", data=png.tobytes())
    np.testing.assert_array_equal(decode_image(msg), RGB)
    with pytest.raises(MessageError, match="cannot decode compressed image of format 'jpeg'"):
        decode_image(CompressedImage(format="jpeg", data=b"not an image"), "/cam/compressed")


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth", "tiff"])
def test_compressed_formats_other_than_jpeg_and_png_are_refused_by_name(fmt):
    ok, png = cv2.imencode(".png", RGB)
    with pytest.raises(MessageError,
                       match=r"^/cam/depth/compressed: format: .* is not supported; expected a jpeg or png") as err:
        decode_image(CompressedImage(format=fmt, data=png.tobytes()), "/cam/depth/compressed")
    assert err.value.code == Problem.ENCODING
    # image_transport's long form of a colour jpeg/png is accepted
    decoded = decode_image(CompressedImage(format="bgr8; png compressed bgr8", data=png.tobytes()))
    np.testing.assert_array_equal(decoded, RGB[..., ::-1])


def test_joint_state_by_name_order_and_errors():
    msg = conv.ENCODER.joint_state(3.0, ["j2", "j1", "finger"], [0.2, 0.1, 0.04])
    np.testing.assert_array_equal(joint_positions(msg, ["j1", "j2"]), [0.1, 0.2])
    with pytest.raises(MessageError, match=r"/joint_states: name: joint\(s\) j7 missing; message has j2, j1, finger"):
        joint_positions(msg, ["j1", "j7"], "/joint_states")
    msg.position = [0.2, float("nan"), 0.0]
    with pytest.raises(MessageError, match=r"position: joint\(s\) j1 are NaN or inf"):
        joint_positions(msg, ["j1", "j2"])


def _chunk(mode=ActionMode.ABSOLUTE):
    actions = np.array([[0.4, 0.1, 0.3, 0.1, -0.2, 0.3, 1.0], [0.41, 0.1, 0.3, 0.1, -0.2, 0.31, 0.5]])
    return ActionChunk(stamp=10.25, dt=0.1, actions=actions, mode=mode, frame_id="base", seq=3, policy_id="p")


def test_chunk_message_round_trip():
    back = chunk_from_msg(conv.ENCODER.action_chunk(_chunk()))
    np.testing.assert_allclose(back.actions, _chunk().actions, atol=1e-12)
    assert (back.stamp, back.dt, back.seq, back.frame_id, back.policy_id) == (10.25, 0.1, 3, "base", "p")


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda m: setattr(m, "gripper", [1.0]), "gripper: expected one value per pose \\(2\\), got 1"),
        (lambda m: setattr(m.poses[1].position, "x", float("nan")), "actions: contains NaN or inf"),
        (lambda m: setattr(m.poses[0], "orientation", type(m.poses[0].orientation)(x=0.0, y=0.0, z=0.0, w=0.0)),
         "poses.orientation: expected finite unit quaternions"),
        (lambda m: setattr(m, "dt", 0.0), "dt: expected a positive number of seconds"),
        (lambda m: setattr(m, "action_mode", 7), "action_mode: expected 0 \\(absolute\\) or 1 \\(delta\\), got 7"),
        (lambda m: setattr(m, "poses", []), "poses: expected at least one pose"),
    ],
)
def test_malformed_chunk_messages_are_rejected_with_the_field(corrupt, message):
    msg = conv.ENCODER.action_chunk(_chunk())
    corrupt(msg)
    with pytest.raises(MessageError, match="^/ns/action_chunk: .*" + message):
        chunk_from_msg(msg, "/ns/action_chunk")


def test_delta_chunk_needs_its_reference_pose_in_the_message():
    msg = ActionChunkMsg()
    msg.poses = conv.ENCODER.action_chunk(_chunk()).poses
    msg.gripper = [1.0, 1.0]
    msg.dt = 0.1
    msg.action_mode = ActionChunkMsg.MODE_DELTA
    back = chunk_from_msg(msg)  # default reference_pose: identity at the origin
    assert back.mode == ActionMode.DELTA
    np.testing.assert_allclose(back.reference_pose.orientation, [0, 0, 0, 1])
