"""`vla-ros play` publishes a bag's messages over DDS (real rclpy subscriber here, player in another process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ros_helpers import spin_until, stop_process
from vla_ros.core.msg_encode import MessageEncoder
from vla_ros.core.types import ActionChunk
from vla_ros.replay.bag_io import BagWriter

START = 200.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def _bag(path):
    rng = np.random.default_rng(3)
    images = {}
    chunks = {}
    with BagWriter(path, storage="sqlite3") as w:
        m = w.msgs
        w.write("/instruction", START, m.string("stack the blocks"), latched=True)
        for j in range(11):
            t = START + 0.1 * j
            img = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
            images[j] = img
            w.write("/camera/primary/image_raw", t + 0.003, m.image(t, "cam", img))
            w.write("/joint_states", t + 0.001, m.joint_state(t, ["j1", "j2"], [0.1 * j, -0.2]))
            if j in (2, 7):
                acts = np.column_stack([rng.normal(size=(4, 3)), np.zeros((4, 3)), np.full(4, 0.25 * j / 7)])
                chunk = ActionChunk(stamp=t, dt=0.1, actions=acts, frame_id="base_link", seq=j, policy_id="test")
                chunks[j] = chunk
                w.write("/action_chunk", t + 0.01, MessageEncoder(w.store.types).action_chunk(chunk))
    return images, chunks


def test_play_publishes_every_topic_with_clock(tmp_path, rclpy_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String

    from vla_ros.msg import ActionChunk as ActionChunkMsg

    images, chunks = _bag(tmp_path / "bag")
    got: dict[str, list] = {"clock": [], "image": [], "joints": [], "instruction": [], "chunk": []}
    node = rclpy.create_node("play_listener", context=rclpy_context)
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(Clock, "/clock",
                             lambda m: got["clock"].append(m.clock.sec + m.clock.nanosec * 1e-9), reliable)
    node.create_subscription(Image, "/camera/primary/image_raw", lambda m: got["image"].append(m), reliable)
    node.create_subscription(JointState, "/joint_states", lambda m: got["joints"].append(m), reliable)
    node.create_subscription(String, "/instruction", lambda m: got["instruction"].append(m.data), latched)
    node.create_subscription(ActionChunkMsg, "/action_chunk", lambda m: got["chunk"].append(m), reliable)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vla_ros.cli import main; sys.exit(main(sys.argv[1:]))",
         "play", "--bag", str(tmp_path / "bag"), "--loop", "--rate", "2", "--delay", "0.5"],
        cwd=str(REPO_ROOT), env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    def looped() -> bool:
        c = got["clock"]
        return len(c) >= 50 and any(b < a - 0.5 for a, b in zip(c, c[1:]))

    try:
        ok = spin_until(executor, lambda: len(got["image"]) >= 11 and len(got["chunk"]) >= 2 and got["instruction"]
                        and len(got["joints"]) >= 11 and looped() or proc.poll() is not None,
                        timeout=60.0)
        ok = ok and proc.poll() is None
    finally:
        output = stop_process(proc)
        executor.shutdown()
        node.destroy_node()
    assert ok, f"received {({k: len(v) for k, v in got.items()})}; player output:\n{output}"
    assert "Traceback" not in output
    assert got["instruction"][0] == "stack the blocks"
    # Images: same pixels and header stamps as recorded.
    by_stamp = {round(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - START, 3): m for m in got["image"]}
    for j in (0, 5, 10):
        m = by_stamp[round(0.1 * j, 3)]
        assert (m.height, m.width, m.encoding, m.step) == (12, 16, "rgb8", 48)
        np.testing.assert_array_equal(np.frombuffer(bytes(m.data), np.uint8).reshape(12, 16, 3), images[j])
    js = got["joints"][0]
    assert list(js.name) == ["j1", "j2"] and len(js.position) == 2
    # ActionChunk: the vla_ros message class, every field copied.
    from vla_ros.core.msg_decode import chunk_from_msg

    received = {c.seq: chunk_from_msg(c) for c in got["chunk"]}
    for j, chunk in chunks.items():
        np.testing.assert_allclose(received[j].actions, chunk.actions, atol=1e-9)
        assert received[j].policy_id == "test" and received[j].stamp == pytest.approx(chunk.stamp)
    # /clock carries the bag time (looping: it jumps back at the start of each pass).
    clock = np.array(got["clock"])
    assert clock.min() >= START - 1e-6 and clock.max() <= START + 1.0 + 0.02
    assert np.sum(np.diff(clock) > 0) > 0.8 * len(clock) - 1
    assert np.any(np.diff(clock) < -0.5), "the loop should restart the clock"
