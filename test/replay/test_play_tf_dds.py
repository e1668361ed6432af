"""`vla-ros play` publishes /tf and /tf_static (transient-local: a late subscriber still gets it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tf2_msgs", reason="tf2_msgs (test/msg_pkgs, built by scripts/build.sh) is not on the path")

from realistic_bags import FOREARM, write_tf_bag  # noqa: E402
from ros_helpers import spin_until, stop_process  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_play_publishes_tf_and_latched_tf_static(tmp_path, rclpy_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from vla_ros.ros.tf_listener import tf_qos

    bag = write_tf_bag(tmp_path / "bag", "sqlite3")
    got: dict[str, list] = {"tf": [], "static": []}
    node = rclpy.create_node("play_tf_listener", context=rclpy_context)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(TFMessage, "/tf", got["tf"].append, reliable)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vla_ros.cli import main; sys.exit(main(sys.argv[1:]))",
         "play", "--bag", str(bag), "--rate", "2", "--delay", "0.5", "--depth", "20"],
        cwd=str(REPO_ROOT), env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        ok = spin_until(executor, lambda: len(got["tf"]) >= 20 or proc.poll() is not None, timeout=30.0)
        # joins after the static transform went out: transient-local delivers it anyway
        node.create_subscription(TFMessage, "/tf_static", got["static"].append, tf_qos(True))
        ok = ok and spin_until(executor, lambda: got["static"] or proc.poll() is not None, timeout=10.0)
        ok = ok and bool(got["static"])
    finally:
        output = stop_process(proc)
        executor.shutdown()
        node.destroy_node()
    assert ok, f"received {({k: len(v) for k, v in got.items()})}; player output:\n{output}"
    assert "Traceback" not in output and "not publishing /tf" not in output
    ts = got["static"][0].transforms[0]
    assert (ts.header.frame_id, ts.child_frame_id) == ("shoulder", "forearm")
    assert ts.transform.translation.x == pytest.approx(FOREARM[0])
    assert {t.child_frame_id for m in got["tf"] for t in m.transforms} == {"shoulder", "tool0"}
