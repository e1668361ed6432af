"""Bad bags give one clear message (or a reported skip), never a stack trace."""

from __future__ import annotations

import shutil

import pytest

from replay_testlib import T0, known_config, write_known_bag
from vla_ros.cli import main
from vla_ros.policy.hold import HoldPolicy
from vla_ros.replay.bag_io import Bag, BagError, BagWriter
from vla_ros.replay.evaluate import evaluate_bag


def _eval(path, cfg=None):
    return evaluate_bag(path, cfg or known_config(), HoldPolicy(), progress=False)


@pytest.fixture(scope="module")
def good_bag(tmp_path_factory):
    return write_known_bag(tmp_path_factory.mktemp("good") / "bag", storage="mcap")


def test_missing_path_and_not_a_bag(tmp_path):
    with pytest.raises(BagError, match=r"bag .*nope: does not exist"):
        _eval(tmp_path / "nope")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(BagError, match=r"not a rosbag2 directory \(no metadata.yaml, no .mcap or .db3 file\)"):
        _eval(tmp_path / "empty_dir")
    (tmp_path / "old.bag").write_bytes(b"#ROSBAG V2.0\n")
    with pytest.raises(BagError, match="ROS 1 bags are not supported"):
        _eval(tmp_path / "old.bag")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BagError, match=r"unrecognised file type '.txt'"):
        _eval(tmp_path / "notes.txt")


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_empty_bag(tmp_path, storage):
    with BagWriter(tmp_path / "empty", storage=storage) as w:
        w.add_topic("/cam", "sensor_msgs/msg/Image")
    with pytest.raises(BagError, match=r"bag .*empty: contains no messages"):
        _eval(tmp_path / "empty")


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_file(tmp_path, good_bag, storage):
    src = write_known_bag(tmp_path / "src", storage=storage) if storage == "sqlite3" else good_bag
    (data,) = [p for p in src.iterdir() if p.suffix in (".db3", ".mcap")]
    bad = tmp_path / "truncated"
    shutil.copytree(src, bad)
    target = bad / data.name
    raw = target.read_bytes()
    target.write_bytes(raw[: len(raw) // 2])
    try:
        result = _eval(bad)
    except BagError as exc:  # unreadable: one clear sentence
        assert "truncated or corrupt file?" in str(exc) and str(bad) in str(exc)
    else:  # readable up to the cut: evaluated, and the skip is reported
        assert any("truncated file?" in w and "the rest of the bag is skipped" in w for w in result.metrics["warnings"])
        assert result.duration < 1.9


def test_missing_topics_are_listed(tmp_path, good_bag):
    cfg = known_config({"robot.camera_topics": ["/other_cam"], "robot.ee_pose_topic": "/pose_elsewhere"})
    with pytest.raises(BagError) as info:
        _eval(good_bag, cfg)
    text = str(info.value)
    assert "topic /other_cam (camera 'primary', robot.camera_topics) is not in the bag" in text
    assert "topic /pose_elsewhere (robot.ee_pose_topic) is not in the bag" in text
    assert "Bag topics: /cam (sensor_msgs/msg/Image)" in text
    with pytest.raises(BagError,
                       match=r"ground truth topic /nothing_here \(replay.ground_truth_topic\) is not in the bag"):
        _eval(good_bag, known_config({"replay.ground_truth_topic": "/nothing_here"}))


def test_unknown_message_type(tmp_path):
    # A topic whose type is neither a standard nor a vla_ros message, and the bag has no definition of it.
    path = write_known_bag(tmp_path / "bag", storage="sqlite3", camera_topic="/cam_ok")
    weird = tmp_path / "weird"
    with Bag(path) as bag, BagWriter(weird, storage="sqlite3") as w:
        for m in bag.messages(raw=True):
            w.add_topic(m.topic, m.msgtype)
            w.write_raw(m.topic, m.t_ns, m.raw)
        w.add_topic("/cam", "acme_msgs/msg/FancyImage", msgdef="", digest="RIHS01_" + "0" * 64)
        w.write_raw("/cam", int(T0 * 1e9), bytes(8))
    with Bag(weird) as bag:
        assert "acme_msgs/msg/FancyImage" in bag.unknown_types
    with pytest.raises(BagError, match=r"topic /cam \(camera 'primary', robot.camera_topics\) has unknown type "
                                       r"acme_msgs/msg/FancyImage: not a standard ROS 2 or vla_ros type"):
        _eval(weird)
    # A topic of an unexpected (known) type names both types.
    with pytest.raises(BagError, match=r"topic /target_pose \(camera 'primary', robot.camera_topics\) has type "
                                       r"geometry_msgs/msg/PoseStamped, expected sensor_msgs/msg/Image"):
        _eval(path, known_config({"robot.camera_topics": ["/target_pose"]}))


def test_non_monotonic_stamps_are_skipped_and_reported(tmp_path):
    path = write_known_bag(tmp_path / "bag", backwards_at=(5, 9, 15))
    result = _eval(path)
    warnings = [w for w in result.metrics["warnings"] if w.startswith("[policy] /cam")]
    assert len(warnings) == 1
    assert "3 message(s) skipped (header stamp unset, ahead of the clock, or going backwards)" in warnings[0]
    assert "expected stamps that do not go backwards" in warnings[0]
    assert result.metrics["policy"]["inputs"]["problems"] == {"/cam stamp": 3}
    assert result.metrics["policy"]["inputs"]["rejected"] == 3
    assert result.metrics["policy"]["chunks"]["count"] >= 8  # the rest of the bag is still evaluated


def test_cli_reports_bad_bags_without_traceback(tmp_path, good_bag, capsys):
    cfg_file = tmp_path / "known.yaml"
    cfg_file.write_text(
        "robot: {camera_names: [primary], camera_topics: [/cam], joint_state_topic: '', gripper_joint: '', "
        "ee_pose_topic: /ee_pose, instruction_topic: /instruction}\n"
        "policy: {type: hold}\nreplay: {ground_truth_topic: /target_pose}\n"
    )
    (tmp_path / "empty_dir").mkdir()
    rc = main(["eval", "--bag", str(tmp_path / "missing"), "--bag", str(tmp_path / "empty_dir"), "--config", "default",
               "--config", str(cfg_file), "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"])
    out = capsys.readouterr()
    assert rc == 2  # nothing could be evaluated
    text = out.out + out.err
    assert "Traceback" not in text
    assert "does not exist" in text and "not a rosbag2 directory" in text
    rc = main(["eval", "--bag", str(good_bag), "--config", "default", "--config", str(cfg_file), "--out",
               str(tmp_path / "out2"), "--no-progress", "--no-plots"])
    assert rc == 0
