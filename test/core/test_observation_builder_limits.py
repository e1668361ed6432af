"""ObservationBuilder (ROS-free) under hostile inputs (issue 11): size limits, future stamps,
implausible EE poses, and the age check repeated after decoding.

Messages are real sensor_msgs / geometry_msgs classes; time is passed in, nothing sleeps.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from test_observation_builder import T0, builder, ee_msg, feed, joints_msg, spec
from vla_ros.core.config import SafetyConfig
from vla_ros.core.observation_builder import CameraInput, compressed_image_size
from vla_ros.ros.conversions import header


def compressed(t, img, ext=".png"):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return CompressedImage(header=header(t), format=ext[1:], data=buf.tobytes())


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_image_size_is_read_from_the_header(ext):
    img = np.zeros((48, 64, 3), np.uint8)
    assert compressed_image_size(compressed(0.0, img, ext).data) == (48, 64)
    assert compressed_image_size(b"not an image") is None
    assert compressed_image_size(b"\xff\xd8\xff") is None  # cut short


def test_a_raw_image_over_max_image_pixels_is_refused_before_decoding():
    problems = []
    b = builder(problems, max_image_pixels=1000)
    # 4000 x 4000 claimed; the data is never looked at (it is not even there).
    big = Image(header=header(T0), height=4000, width=4000, encoding="rgb8", step=12000, data=bytes(10))
    p = b.add_image("primary", big, T0 + 0.01)
    assert p is not None and p.code == "too_large" and p.counter == "rejected"
    assert p.message == ("/cam/primary: image of 4000x4000 = 16000000 pixels (height x width) refused; "
                         "expected at most sync.max_image_pixels = 1000")


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_a_compressed_image_over_max_image_pixels_is_refused_from_its_header(ext):
    problems = []
    sp = spec(cameras=(CameraInput("primary", "/cam/primary/compressed"),), ee_pose_topic="")
    b = builder(problems, spec=sp, max_image_pixels=100 * 100)
    small = compressed(T0, np.zeros((50, 80, 3), np.uint8), ext)
    assert b.add_image("primary", small, T0 + 0.01) is None
    big = compressed(T0 + 0.1, np.zeros((1000, 2000, 3), np.uint8), ext)  # a few kB, 2 megapixels
    p = b.add_image("primary", big, T0 + 0.11)
    assert p is not None and p.code == "too_large"
    assert p.message.startswith("/cam/primary/compressed: image of 2000x1000 = 2000000 pixels (header) refused; "
                                "expected at most sync.max_image_pixels = 10000")


def test_an_instruction_over_max_instruction_length_is_refused_and_the_robot_pauses():
    problems = []
    b = builder(problems, max_instruction_length=20)
    assert b.set_instruction("x" * 21) is False
    assert problems[-1].code == "instruction" and problems[-1].message == (
        "/instruction: data: instruction of 21 characters refused; expected at most policy.max_instruction_length = 20")
    assert b.instruction == ""  # not the old task: nothing runs until a valid instruction arrives
    feed(b, T0)
    assert b.take(T0 + 0.02) is None
    assert "policy.max_instruction_length = 20" in problems[-1].message
    assert b.set_instruction("open the drawer") is True
    feed(b, T0 + 0.1)
    assert b.take(T0 + 0.12).observation.instruction == "open the drawer"


def test_a_future_stamped_message_is_refused_and_does_not_block_its_input():
    problems = []
    b = builder(problems)  # slop 0.02 s, max_age 0.5 s
    p = b.add_joint_state(joints_msg(T0 + 0.3), T0)  # 0.3 s ahead: within max_age, beyond slop
    assert p is not None and p.code == "stamp" and p.topic == "/joint_states"
    assert "0.300 s ahead of the ROS clock; expected at most sync.slop = 0.02 s ahead" in p.message
    # The next, correctly stamped messages are used at once (no "stamps must not go backwards").
    feed(b, T0)
    sample = b.take(T0 + 0.02)
    assert sample is not None and sample.observation.stamp == T0


def test_an_observation_that_got_too_old_while_decoding_is_dropped():
    problems = []
    b = builder(problems)  # max_age 0.5 s
    feed(b, T0)
    assert b.take(T0 + 0.02, clock=lambda: T0 + 0.9) is None  # decoding "took" 0.88 s
    assert b.stats.dropped_stale == 1 and problems[-1].code == "stale" and problems[-1].counter == "dropped"
    feed(b, T0 + 1.0)
    assert b.take(T0 + 1.02, clock=lambda: T0 + 1.03) is not None


@pytest.mark.parametrize("x, expected", [
    (100.0, "x = 100.000 m above safety.workspace_max x = 1.0 + margin 0.05"),
    (400.0, "x = 400.000 m above safety.workspace_max x = 1.0 + margin 0.05"),  # millimetres
])
def test_an_ee_pose_outside_the_workspace_is_refused(x, expected):
    problems = []
    b = builder(problems, safety=SafetyConfig())
    p = b.add_ee_pose(ee_msg(T0, x=x), T0 + 0.01)
    assert p is not None and p.code == "implausible" and p.counter == "rejected"
    assert p.message.startswith("/ee_pose: measured end-effector pose implausible: ") and expected in p.message


def test_an_ee_pose_that_jumps_faster_than_possible_is_refused():
    problems = []
    b = builder(problems, safety=SafetyConfig(max_measured_speed=2.0))
    feed(b, T0, x=0.40)
    assert b.add_ee_pose(ee_msg(T0 + 0.01, x=0.70), T0 + 0.02).code == "implausible"  # 30 cm in 10 ms
    assert "faster than safety.max_measured_speed = 2.0 m/s" in problems[-1].message
    assert b.add_ee_pose(ee_msg(T0 + 0.02, x=0.41), T0 + 0.03) is None  # back on track
