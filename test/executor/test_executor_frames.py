"""ChunkExecutor with a transform buffer: chunks in another frame are moved into the command frame."""

from __future__ import annotations

import math

import numpy as np

from executor_testlib import HOME, make_chunk, make_executor, yaw
from vla_ros.core.rotations import rotvec_to_quat
from vla_ros.core.tf_buffer import TransformBuffer
from vla_ros.core.types import ActionMode, EEPose


def table_buffer() -> TransformBuffer:
    buf = TransformBuffer()
    buf.set_transform("base_link", "table", 0.0, (0.1, -0.2, 0.0), (0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)),
                      static=True)
    return buf


def test_absolute_chunk_in_table_frame_is_commanded_in_base_frame():
    ex = make_executor()
    ex.transforms = table_buffer()
    # (0.2, -0.3, 0.3) in table = (0.1 + 0.3, -0.2 + 0.2, 0.3) = (0.4, 0.0, 0.3) in base; yaw 0.1 -> 0.1 + pi/2
    res = ex.submit(make_chunk(0.2, y=-0.3, z=0.3, rz=0.1, horizon=5, frame_id="table"), 0.0)
    assert res.accepted and ex.chunks_transformed == 1
    cmd = ex.tick(0.0, HOME)
    np.testing.assert_allclose(cmd.position, [0.4, 0.0, 0.3], atol=1e-12)
    assert abs(yaw(cmd.orientation) - (0.1 + math.pi / 2)) < 1e-9 and cmd.frame_id == "base_link"


def test_delta_chunk_in_other_frame_becomes_absolute():
    ex = make_executor()
    ex.transforms = table_buffer()
    ref = EEPose(np.array([0.2, -0.3, 0.3]), rotvec_to_quat(np.array([0.0, 0.0, -math.pi / 2])), "table")
    chunk = make_chunk(0.0, y=0.0, z=0.0, horizon=5, mode=ActionMode.DELTA, reference_pose=ref, frame_id="table")
    assert ex.submit(chunk, 0.0).accepted
    cmd = ex.tick(0.0, HOME)
    np.testing.assert_allclose(cmd.position, HOME.position, atol=1e-12)
    assert abs(yaw(cmd.orientation)) < 1e-9


def test_unknown_frame_is_refused_by_name_with_or_without_buffer():
    ex = make_executor()
    ex.transforms = table_buffer()
    res = ex.submit(make_chunk(0.4, horizon=3, frame_id="camera"), 0.0)
    assert not res.accepted and ex.chunk_problems["frame"] == 1
    assert "'camera'" in res.reason and "frames present: base_link, table" in res.reason
    plain = make_executor()  # no buffer: the old refusal
    res = plain.submit(make_chunk(0.4, horizon=3, frame_id="table"), 0.0)
    assert not res.accepted and "header.frame_id" in res.reason and "'table'" in res.reason


def test_chunk_inside_the_box_in_its_own_frame_but_outside_after_the_transform_is_refused():
    # The safety checks judge the transformed chunk: 0.4 m in a frame 5 m away is 5.4 m in base_link.
    ex = make_executor()
    buf = TransformBuffer()
    buf.set_transform("base_link", "far_table", 0.0, (5.0, 0.0, 0.0), (0, 0, 0, 1), static=True)
    ex.transforms = buf
    inside_numerically = make_chunk(0.4, horizon=5, frame_id="far_table")
    assert make_executor().submit(make_chunk(0.4, horizon=5), 0.0).accepted  # the same numbers in base_link: fine
    res = ex.submit(inside_numerically, 0.0)
    assert not res.accepted and ex.chunk_problems["workspace"] == 1, res.reason
    cmd = ex.tick(0.0, HOME)
    assert cmd is None or np.linalg.norm(cmd.position - HOME.position) < 1e-9
