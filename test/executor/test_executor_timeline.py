"""Placing chunks on the timeline: latency compensation, stale chunks, DELTA resolution, rejections."""

import numpy as np
import pytest

from executor_testlib import make_chunk, make_executor, yaw
from vla_ros.core.rotations import rotvec_to_quat
from vla_ros.core.types import ActionMode, EEPose
from vla_ros.ros.conversions import ENCODER

RAMP = 0.40 + 0.01 * np.arange(10)  # x of step i: 0.40 + 0.01 i, at stamp + 0.1 i


def test_latency_compensation_skips_past_steps_and_keeps_their_times():
    ex = make_executor({"latency_compensation": True})
    res = ex.submit(make_chunk(RAMP, stamp=0.0), 0.25)  # arrives 0.25 s after its observation
    assert res.accepted and res.skipped == 3 and res.delay == pytest.approx(0.25)
    # At arrival the command is the chunk's own pose at t = 0.25 (between steps 2 and 3) ...
    assert ex.tick(0.25).position[0] == pytest.approx(0.425, abs=1e-12)
    # ... and step i is reached at its intended time stamp + 0.1 i.
    assert ex.tick(0.30).position[0] == pytest.approx(0.43, abs=1e-12)
    assert ex.tick(0.70).position[0] == pytest.approx(0.47, abs=1e-12)
    st = ex.status(0.7)
    assert st.skipped_steps == 3
    assert st.last_chunk_delay == pytest.approx(0.25) and st.mean_chunk_delay == pytest.approx(0.25)


def test_without_latency_compensation_the_chunk_starts_at_arrival():
    ex = make_executor({"latency_compensation": False})
    res = ex.submit(make_chunk(RAMP, stamp=0.0), 0.25)
    assert res.accepted and res.skipped == 0 and res.delay == pytest.approx(0.25)
    assert ex.tick(0.25).position[0] == pytest.approx(0.40, abs=1e-12)
    assert ex.tick(0.35).position[0] == pytest.approx(0.41, abs=1e-12)
    assert ex.status(0.35).skipped_steps == 0


def test_an_action_exactly_at_arrival_is_kept():
    ex = make_executor()
    assert ex.submit(make_chunk(RAMP, stamp=0.0), 0.2).skipped == 2
    assert ex.tick(0.2).position[0] == pytest.approx(0.42, abs=1e-12)


def test_a_chunk_entirely_in_the_past_is_stale_and_changes_nothing():
    ex = make_executor()
    ex.submit(make_chunk(0.41, horizon=20, stamp=0.0, seq=1), 0.0)
    res = ex.submit(make_chunk(RAMP, stamp=0.0, seq=2), 1.0)  # its last step was at 0.9 < 1.0
    assert not res.accepted and "past" in res.reason
    st = ex.status(1.0)
    assert (st.chunks_received, st.chunks_stale, st.chunks_rejected, st.skipped_steps) == (2, 1, 0, 10)
    assert st.chunk_seq == 1
    assert ex.tick(1.0).position[0] == pytest.approx(0.41)


def test_a_chunk_older_than_the_plan_is_ignored():
    ex = make_executor({"strategy": "replace"})
    ex.submit(make_chunk(0.41, horizon=20, stamp=0.5, seq=5), 0.55)
    res = ex.submit(make_chunk(0.45, horizon=20, stamp=0.4, seq=4), 0.6)  # overtaken in transport
    assert not res.accepted and "older" in res.reason
    assert ex.status(0.6).chunks_stale == 1
    assert ex.tick(0.6).position[0] == pytest.approx(0.41)


def test_delta_chunks_are_resolved_against_their_reference_pose():
    ref = EEPose(np.array([0.5, 0.1, 0.2]), rotvec_to_quat(np.array([0.0, 0.0, 0.3])))
    ex = make_executor(pose=ref)  # the arm is where the reference says
    chunk = make_chunk([0.0, 0.02], y=0.01, z=-0.05, rz=[0.0, 0.1], mode=ActionMode.DELTA, reference_pose=ref)
    ex.submit(chunk, 0.0)
    cmd = ex.tick(0.1)
    np.testing.assert_allclose(cmd.position, [0.52, 0.11, 0.15], atol=1e-12)
    assert yaw(cmd.orientation) == pytest.approx(0.4, abs=1e-9)  # delta * reference about z
    assert cmd.gripper == 1.0  # gripper stays absolute


def test_chunk_in_another_frame_is_rejected_naming_the_field():
    ex = make_executor()
    res = ex.submit(make_chunk(0.41, frame_id="world"), 0.0)
    assert not res.accepted and "frame_id" in res.reason and "base_link" in res.reason
    assert ex.submit(make_chunk(0.41, frame_id="base_link"), 0.0).accepted
    assert ex.submit(make_chunk(0.41, frame_id=""), 0.0).accepted
    assert ex.status(0.0).chunks_rejected == 1


def test_chunk_stamped_in_the_future_is_rejected_as_a_clock_problem():
    ex = make_executor({"max_future_stamp": 0.5})
    res = ex.submit(make_chunk(0.41, stamp=10.0), 1.0)
    assert not res.accepted and "header.stamp" in res.reason and "future" in res.reason
    assert ex.submit(make_chunk(0.41, stamp=1.3), 1.0).accepted  # a little skew is tolerated


def test_malformed_messages_are_counted_and_never_crash():
    ex = make_executor()
    ex.submit(make_chunk(0.41, horizon=20), 0.0)
    good = ENCODER.action_chunk(make_chunk(0.45, horizon=10, stamp=0.1))
    nan = ENCODER.action_chunk(make_chunk(0.45))
    nan.poses[0].position.x = float("nan")
    short = ENCODER.action_chunk(make_chunk(0.45, horizon=3))
    short.gripper = [1.0]
    empty = ENCODER.action_chunk(make_chunk(0.45))
    empty.poses, empty.gripper = [], []
    bad_dt = ENCODER.action_chunk(make_chunk(0.45))
    bad_dt.dt = 0.0
    reasons = [ex.submit_msg(m, 0.1).reason for m in (nan, short, empty, bad_dt)]
    assert "NaN" in reasons[0] and "gripper" in reasons[1] and "poses" in reasons[2] and "dt" in reasons[3]
    assert ex.submit_msg("not a message", 0.1).accepted is False
    st = ex.status(0.1)
    assert st.chunks_rejected == 5 and st.chunks_received == 6
    assert "rejected" in st.message
    # The plan from before is untouched and a good message still works.
    assert ex.tick(0.1).position[0] == pytest.approx(0.41)
    assert ex.submit_msg(good, 0.1).accepted
