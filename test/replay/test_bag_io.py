"""Bag I/O with rosbags: both storages round-trip every message type the replay reads and writes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vla_ros.core.msg_decode import chunk_from_msg, decode_image, joint_positions, pose_to_ee, stamp_to_sec
from vla_ros.core.msg_encode import MessageEncoder
from vla_ros.core.types import ActionChunk, ActionMode, EEPose
from vla_ros.replay.bag_io import Bag, BagWriter


def _write_all_types(path, storage):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (6, 10, 3), dtype=np.uint8)
    chunk = ActionChunk(stamp=12.25, dt=0.1,
                        actions=np.column_stack([rng.normal(size=(5, 3)), 0.1 * rng.normal(size=(5, 3)),
                                                                      rng.uniform(0, 1, 5)]),
                        mode=ActionMode.DELTA, frame_id="base_link",
                        reference_pose=EEPose(np.array([0.4, 0.1, 0.3]), np.array([0.0, 0.0, 0.3, 0.954]), "base_link"),
                        seq=7, policy_id="flow_matching", checkpoint_id="ck-1", inference_latency=0.031,
                        observation_age=0.012)
    with BagWriter(path, storage=storage) as w:
        m = w.msgs
        w.write("/instruction", 12.0, m.string("pick up the red block"), latched=True)
        w.write("/cam", 12.1, m.image(12.1, "cam", img))
        w.write("/cam_bgr", 12.1, m.image(12.1, "cam", img, encoding="bgr8"))
        w.write("/joint_states", 12.2, m.joint_state(12.2, ["a", "b"], [0.5, -1.25]))
        w.write("/ee_pose", 12.2, m.pose_stamped(12.2, "base_link", [0.4, 0.1, 0.3], [0.0, 0.0, 0.3, 0.954]))
        w.write("/action_chunk", 12.3, MessageEncoder(w.store.types).action_chunk(chunk))
    return img, chunk


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_roundtrip_both_storages(tmp_path, storage):
    img, chunk = _write_all_types(tmp_path / "bag", storage)
    with Bag(tmp_path / "bag") as bag:
        assert {t: i.msgtype for t, i in bag.topics.items()} == {
            "/instruction": "std_msgs/msg/String", "/cam": "sensor_msgs/msg/Image", "/cam_bgr": "sensor_msgs/msg/Image",
            "/joint_states": "sensor_msgs/msg/JointState", "/ee_pose": "geometry_msgs/msg/PoseStamped",
            "/action_chunk": "vla_ros/msg/ActionChunk",
        }
        assert bag.message_count == 6 and bag.start == pytest.approx(12.0) and bag.end == pytest.approx(12.3, abs=1e-6)
        msgs = {m.topic: m for m in bag.messages()}
    assert [m.t for m in sorted(msgs.values(), key=lambda m: m.t)][0] == pytest.approx(12.0)
    assert msgs["/instruction"].msg.data == "pick up the red block"
    np.testing.assert_array_equal(decode_image(msgs["/cam"].msg), img)
    np.testing.assert_array_equal(decode_image(msgs["/cam_bgr"].msg), img)
    assert stamp_to_sec(msgs["/cam"].msg.header.stamp) == pytest.approx(12.1, abs=1e-9)
    np.testing.assert_array_equal(joint_positions(msgs["/joint_states"].msg, ["b", "a"]), [-1.25, 0.5])
    ee = pose_to_ee(msgs["/ee_pose"].msg.pose)
    np.testing.assert_allclose(ee.position, [0.4, 0.1, 0.3])
    back = chunk_from_msg(msgs["/action_chunk"].msg)
    assert back.mode == ActionMode.DELTA and back.seq == 7 and back.policy_id == "flow_matching"
    assert back.checkpoint_id == "ck-1" and back.dt == pytest.approx(0.1) and back.stamp == pytest.approx(12.25)
    np.testing.assert_allclose(back.actions, chunk.actions, atol=1e-9)
    np.testing.assert_allclose(back.reference_pose.position, chunk.reference_pose.position)
    assert back.inference_latency == pytest.approx(0.031, abs=1e-6)


def test_single_mcap_file_and_directory_without_metadata(tmp_path):
    _write_all_types(tmp_path / "bag", "mcap")
    (mcap,) = sorted((tmp_path / "bag").glob("*.mcap"))
    single = tmp_path / "run.mcap"
    shutil.copy(mcap, single)
    with Bag(single) as bag:
        assert bag.storage == "mcap-file" and len(bag.topics) == 6
        assert sum(1 for _ in bag.messages(["/cam", "/action_chunk"])) == 2
    # A recording killed before rosbag2 wrote metadata.yaml: read the storage file, and say so.
    (tmp_path / "bag" / "metadata.yaml").unlink()
    with Bag(tmp_path / "bag") as bag:
        assert any("no metadata.yaml" in n for n in bag.notes)
        assert chunk_from_msg(next(iter(bag.messages(["/action_chunk"]))).msg).seq == 7
