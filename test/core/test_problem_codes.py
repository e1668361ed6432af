"""Typed problem codes (issue 15, item 5): decode errors carry a `Problem`, the builder counts by it,
and nothing depends on the wording of the error text."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState

from vla_ros.core import msg_decode
from vla_ros.core.msg_decode import MessageError, Problem
from vla_ros.core.observation_builder import CODES, CameraInput, ObservationBuilder, ObservationSpec
from vla_ros.replay.evaluate import PROBLEM_LABELS
from vla_ros.ros.conversions import header

T0 = 100.0


def _builder(problems):
    spec = ObservationSpec(cameras=(CameraInput("primary", "/cam"),), joint_state_topic="/js",
                           joint_names=("duplicate_wrist", "missing_link"), base_frame="base_link")
    return ObservationBuilder(spec, slop=0.02, queue_size=10, max_age=0.5, instruction="x", on_problem=problems.append)


def _js(names, positions):
    return JointState(header=header(T0, ""), name=list(names), position=[float(p) for p in positions])


def test_codes_come_from_the_error_not_its_words():
    problems = []
    b = _builder(problems)
    # joint *names* that contain the words the old text matching looked for
    b.add_joint_state(_js(["duplicate_wrist", "missing_link"], [0.1, math.nan]), T0)
    b.add_joint_state(_js(["duplicate_wrist", "duplicate_wrist"], [0.1, 0.2]), T0)
    b.add_joint_state(_js(["duplicate_wrist"], [0.1]), T0)
    b.add_joint_state(_js([], [0.1, 0.2, 0.3]), T0)
    b.add_image("primary", Image(header=header(T0, "cam"), height=2, width=2, encoding="yuv422", step=4,
                                 data=bytes(8)), T0)
    assert [p.code for p in problems] == [Problem.NONFINITE, Problem.DUPLICATE_JOINT, Problem.MISSING_JOINT,
                                          Problem.MISSING_JOINT, Problem.ENCODING]
    assert all(isinstance(p.code, Problem) for p in problems)
    assert problems[0].code == "nonfinite" and f"{problems[0].code}" == "nonfinite"  # a str enum: reports unchanged


def test_every_code_is_labelled_and_messages_carry_one():
    assert set(CODES) == {p.value for p in Problem}
    assert set(PROBLEM_LABELS) == set(Problem)
    with pytest.raises(MessageError) as info:
        msg_decode.pose_to_ee(type("P", (), {"position": type("V", (), {"x": 0, "y": 0, "z": 0})(),
                                             "orientation": type("Q", (), {"x": 0, "y": 0, "z": 0, "w": 2.0})()})())
    assert info.value.code == Problem.QUATERNION
    with pytest.raises(MessageError) as info:
        msg_decode.compressed_image_to_rgb(type("C", (), {"data": np.zeros(0, np.uint8), "format": "jpeg"})())
    assert info.value.code == Problem.DECODE
