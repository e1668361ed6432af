"""The executor process's message format: exact round trips of the replay's types, nothing else."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from vla_ros.core.config import config_from_dict
from vla_ros.core.executor import ChunkExecutor
from vla_ros.core.types import ActionChunk, ActionMode, EEPose
from vla_ros.replay import wire


def _roundtrip(obj):
    buf = io.BytesIO()
    wire.write(buf, obj)
    buf.seek(0)
    out = wire.read(buf)
    with pytest.raises(EOFError):
        wire.read(buf)
    return out


def test_events_chunks_and_status_round_trip_exactly(sim_cfg):
    pose = EEPose(np.array([0.4, 0.1, 0.3]), np.array([0.1, 0.2, 0.3, 0.9]), "base_link")
    chunk = ActionChunk(stamp=1.5, dt=0.1, actions=np.random.default_rng(0).normal(size=(10, 7)) * 0.01,
                        mode=ActionMode.DELTA, frame_id="base_link", reference_pose=pose, seq=3, policy_id="p")
    events = [("tick", 0.01, pose.position.tolist(), pose.orientation.tolist(), 0.005), ("tick", 0.02, None, None,
                                                                                         None),
              ("arrival", 0.02, chunk), {"nan": float("nan"), "inf": float("inf")}]
    back = _roundtrip(events)
    assert back[0] == events[0] and back[1] == events[1] and isinstance(back[0], tuple)
    c = back[2][2]
    assert isinstance(c, ActionChunk) and c.mode is ActionMode.DELTA and c.seq == 3 and c.frame_id == "base_link"
    np.testing.assert_array_equal(c.actions, chunk.actions)
    np.testing.assert_array_equal(c.reference_pose.orientation, pose.orientation)  # bits kept, not re-normalised
    assert np.isnan(back[3]["nan"]) and back[3]["inf"] == float("inf")
    ex = ChunkExecutor.from_config(sim_cfg)
    ex.tick(0.0, pose, 0.0)
    ex.submit(chunk.with_fields(stamp=0.0), 0.0)
    ex.tick(0.01, pose, 0.01)
    st = ex.status(0.02)
    st2 = _roundtrip(st)
    assert type(st2) is type(st) and st2.state is st.state and st2.limit_counts == st.limit_counts
    np.testing.assert_array_equal(st2.plan.actions, st.plan.actions)
    assert config_from_dict(_roundtrip(sim_cfg.to_dict())) == sim_cfg


def test_only_the_replay_types_are_carried():
    class Other:
        pass

    with pytest.raises(wire.WireError, match="cannot send a Other"):
        wire.write(io.BytesIO(), [Other()])
    with pytest.raises(wire.WireError, match="dict keys must be strings"):
        wire.write(io.BytesIO(), {1: 2})
    header = json.dumps([{"__dc__": ["os.system", {"command": "true"}]}, []]).encode()
    buf = io.BytesIO(len(header).to_bytes(8, "little") + header)
    with pytest.raises(wire.WireError, match="unknown type 'os.system'"):
        wire.read(buf)
    with pytest.raises(EOFError, match="truncated"):
        wire.read(io.BytesIO((100).to_bytes(8, "little") + b"[]"))
