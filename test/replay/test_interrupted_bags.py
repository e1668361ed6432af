"""Interrupted and foreign recordings: evaluated up to the cut with a warning, or one sentence and exit 2."""

from __future__ import annotations

import numpy as np
import pytest

from realistic_bags import T0, cut_storage_file, hand_pose, tf_config, tf_config_yaml, tool_stamps, write_tf_bag
from vla_ros.cli import main
from vla_ros.policy.hold import HoldPolicy
from vla_ros.replay.bag_io import Bag, BagError
from vla_ros.replay.evaluate import evaluate_bag


@pytest.fixture(scope="module")
def big_bags(tmp_path_factory):
    """A 5 s TF bag with 96 px images at 30 Hz (several 1 MiB mcap chunks), in both storages."""
    root = tmp_path_factory.mktemp("big")
    return {s: write_tf_bag(root / f"full_{s}", s, image_px=96, camera_rate=30.0, joints_late=0.0)
            for s in ("mcap", "sqlite3")}


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("keep_metadata", [True, False])
def test_cut_at_60_percent_is_evaluated_up_to_the_cut(tmp_path, big_bags, storage, keep_metadata):
    bag = _copy(big_bags[storage], tmp_path / "cut")
    data = cut_storage_file(bag, 0.6, keep_metadata=keep_metadata)
    if storage == "mcap":  # a killed recorder: no summary, no footer
        assert b"MCAP0\r\n" not in data.read_bytes()[-8:]
    with Bag(bag) as b:
        assert b.recovered and 1.0 < b.duration < 4.0
        note = next(n for n in b.notes if "incomplete" in n)
        assert "evaluated up to the cut" in note and f"t = {T0:.3f} .. " in note and "sqlite3 database" not in note or \
            storage == "sqlite3"
        if storage == "mcap":
            assert "database" not in note
    result = evaluate_bag(bag, tf_config(), HoldPolicy(), progress=False)
    assert result.duration < 4.0 and result.lanes["policy"].records
    assert any("evaluated up to the cut" in w for w in result.warnings)
    # the replayed pose within the readable part is still the hand-computed one
    t = next(s for s in tool_stamps()[30:] if s < result.end - 0.2)
    gt = result.ground_truth.poses
    i = int(np.argmin(np.abs(gt.times - t)))
    np.testing.assert_allclose(gt.positions[i], hand_pose(t)[0], atol=1e-9, rtol=0)


def _cli(tmp_path, bag) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["eval", "--bag", str(bag), "--config", "default", "--config", tf_config_yaml(tmp_path / "c.yaml"),
                   "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"])
    return rc, out.getvalue()


def test_cut_before_the_first_chunk_is_one_sentence(tmp_path, big_bags):
    bag = _copy(big_bags["mcap"], tmp_path / "cut")
    cut_storage_file(bag, 0.1)
    rc, text = _cli(tmp_path, bag)
    assert rc == 2 and "Traceback" not in text
    assert "nothing readable: no complete message" in text and "(truncated or corrupt file?)" in text
    assert "database" not in text


def test_missing_storage_file_is_named_from_metadata(tmp_path, big_bags):
    bag = _copy(big_bags["sqlite3"], tmp_path / "moved")
    (data,) = bag.glob("*.db3")
    data.rename(bag / "renamed.db3")
    rc, text = _cli(tmp_path, bag)
    assert rc == 2 and "Traceback" not in text
    assert f"metadata.yaml names the storage file {data.name} (sqlite3 storage), which is not in the directory " \
           "(it has renamed.db3)" in text
    assert "truncated" not in text


def test_json_profile_mcap_is_not_a_ros2_recording(tmp_path):
    from mcap.writer import Writer

    path = tmp_path / "foxglove.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start(profile="", library="test")
        sid = w.register_schema(name="foxglove.PoseInFrame", encoding="jsonschema", data=b"{}")
        cid = w.register_channel(topic="/pose", message_encoding="json", schema_id=sid)
        for i in range(5):
            w.add_message(cid, log_time=i * 10**8, data=b'{"x": 1}', publish_time=i * 10**8)
        w.finish()
    with pytest.raises(BagError, match=r"foxglove.mcap is not a ROS 2 recording: its mcap profile is 'empty'"):
        Bag(path)
    rc, text = _cli(tmp_path, path)
    assert rc == 2 and "not a ROS 2 recording" in text and "truncated" not in text and "Traceback" not in text
    # the same with the ros2 profile but JSON messages, and no summary: still named exactly
    path2 = tmp_path / "json_cut.mcap"
    with open(path2, "wb") as f:
        w = Writer(f)
        w.start(profile="ros2", library="test")
        sid = w.register_schema(name="std_msgs/msg/String", encoding="jsonschema", data=b"{}")
        cid = w.register_channel(topic="/chatter", message_encoding="json", schema_id=sid)
        w.add_message(cid, log_time=1, data=b'{"data": "x"}', publish_time=1)
        w.finish()
    path2.write_bytes(path2.read_bytes()[:-100])
    with pytest.raises(BagError, match=r"topic /chatter has message encoding 'json'.*not a ROS 2 recording"):
        Bag(path2)
