"""`vla-ros eval` refusals: checked before the policy loads, one sentence each, exit 2, no traceback."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time

import pytest

from replay_testlib import T0, known_config, write_known_bag
from vla_ros.cli import main
from vla_ros.policy.hold import HoldPolicy
from vla_ros.replay.bag_io import Bag, BagError, BagWriter
from vla_ros.replay.evaluate import evaluate_bag

KNOWN_YAML = ("robot: {camera_names: [primary], camera_topics: [/cam], joint_state_topic: '', gripper_joint: '', "
              "ee_pose_topic: /ee_pose, instruction_topic: /instruction}\n"
              "policy: {type: hold}\nreplay: {ground_truth_topic: /target_pose}\n")


@pytest.fixture(scope="module")
def good_bag(tmp_path_factory):
    return write_known_bag(tmp_path_factory.mktemp("good") / "bag", storage="sqlite3")


def _main(argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(argv)
    return rc, out.getvalue()


def test_no_policy_exits_2_in_under_3_s_without_traceback(tmp_path, good_bag):
    t0 = time.monotonic()
    cli = "import sys; from vla_ros.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", cli, "eval", "--bag", str(good_bag), "--no-progress"],
                          capture_output=True, text=True, timeout=30, env=dict(os.environ))
    elapsed = time.monotonic() - t0
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text, text
    assert "no --policy given" in text and "--policy hold" in text
    assert len([line for line in text.splitlines() if line.strip()]) == 1
    assert elapsed < 3.0, f"took {elapsed:.2f} s"


def test_checkpoint_missing_or_unloadable(tmp_path, good_bag):
    rc, text = _main(["eval", "--bag", str(good_bag), "--policy", "flow_matching", "--checkpoint",
                      str(tmp_path / "nope"), "--no-progress"])
    assert rc == 2 and "does not exist; expected a checkpoint directory" in text and "Traceback" not in text
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    rc, text = _main(["eval", "--bag", str(good_bag), "--policy", "flow_matching", "--checkpoint",
                      str(tmp_path / "junk"), "--no-progress", "--out", str(tmp_path / "o")])
    assert rc == 2 and "cannot load the policy" in text and "Traceback" not in text
    assert not (tmp_path / "o").exists()  # nothing was evaluated or written


def test_all_bags_missing_is_checked_first(tmp_path):
    rc, text = _main(["eval", "--bag", str(tmp_path / "a"), "--bag", str(tmp_path / "b.db3"), "--policy", "hold"])
    assert rc == 2 and "no bag to evaluate" in text and ".db3" in text


def test_help_mentions_db3(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert ".db3" in capsys.readouterr().out


def test_topic_in_two_roles_is_one_configuration_error(tmp_path, good_bag):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(KNOWN_YAML)
    rc, text = _main(["eval", "--bag", str(good_bag), "--bag", str(good_bag), "--config", "default", "--config",
                      str(cfg_file), "--set", "robot.joint_state_topic=/cam", "--no-progress", "--no-plots",
                      "--out", str(tmp_path / "o")])
    assert rc == 2 and "Traceback" not in text
    assert text.count("one topic cannot be both") == 1 and "skipped" not in text


def test_old_type_names_resolve(tmp_path, good_bag):
    old = tmp_path / "old"
    with Bag(good_bag) as bag, BagWriter(old, storage="sqlite3") as w:
        for m in bag.messages(raw=True):
            pkg, _, name = m.msgtype.split("/")
            w.add_topic(m.topic, f"{pkg}/{name}", msgdef="", digest="RIHS01_" + "0" * 64)
            w.write_raw(m.topic, m.t_ns, m.raw)
    with Bag(old) as bag:
        assert bag.topics["/cam"].msgtype == "sensor_msgs/msg/Image" and not bag.unknown_types
    result = evaluate_bag(old, known_config(), HoldPolicy(), progress=False)
    assert result.metrics["policy"]["chunks"]["count"] >= 8


def test_no_camera_topic_says_so_in_one_line(tmp_path):
    path = tmp_path / "nocam"
    with BagWriter(path, storage="mcap") as w:
        m = w.msgs
        for i in range(20):
            w.write(f"/sensor_{i}/points", T0 + i * 0.1, m.float64(1.0))
        w.write("/camera/depth/info", T0, m.string("x"))
        w.write("/ee_pose", T0, m.pose_stamped(T0, "base_link", [0, 0, 0], [0, 0, 0, 1]))
    with pytest.raises(BagError) as info:
        evaluate_bag(path, known_config(), HoldPolicy(), progress=False)
    text = str(info.value)
    assert "this bag has no sensor_msgs/Image or CompressedImage topic (robot.camera_topics: /cam)" in text
    assert "image-like topics: /camera/depth/info (std_msgs/msg/String)" in text
    assert "/sensor_3/points" not in text and len(text) < 400


def test_notes_survive_a_skip(tmp_path, good_bag):
    bag = tmp_path / "nometa"
    shutil.copytree(good_bag, bag)
    (bag / "metadata.yaml").unlink()
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(KNOWN_YAML)
    rc, text = _main(["eval", "--bag", str(bag), "--config", "default", "--config", str(cfg_file), "--set",
                      "robot.camera_topics=[/elsewhere]", "--no-progress", "--no-plots", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "is not in the bag" in text and "note: bag" in text and "no metadata.yaml" in text
    assert text.count("is not in the bag") == 1  # the reason is printed once
    html = (tmp_path / "o" / "index.html").read_text()
    assert "no metadata.yaml" in html
