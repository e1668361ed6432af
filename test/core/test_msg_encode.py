"""msg_encode -> the wire -> msg_decode, with the rclpy message classes and the rosbags ones.

Each message is serialised to CDR (rclpy's serializer, rosbags' serializer) and read back, so the
tests cover what a subscriber or a bag reader gets, not the Python object. The rotation references
are independent of vla_ros.core.rotations (Rodrigues' formula in numpy).
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from vla_ros.core.action_modes import absolute_actions, absolute_poses
from vla_ros.core.config import config_from_dict
from vla_ros.core.executor import ChunkExecutor
from vla_ros.core.executor_feedback import ExecutorFeedback
from vla_ros.core.msg_decode import (
    RAW_ENCODINGS, SUPPORTED_ENCODINGS, MessageError, Problem, chunk_from_msg, decode_image, joint_positions,
    pose_to_ee,
    stamp_to_sec,
)
from vla_ros.core.msg_encode import MessageEncoder
from vla_ros.core.types import ActionChunk, ActionMode, EEPose
from vla_ros.replay.bag_io import shared_typestore
from vla_ros.ros.conversions import ENCODER as RCLPY, rclpy_type

STORE = shared_typestore()
ROSBAGS = MessageEncoder(STORE.types)
RNG = np.random.default_rng(7)
REF = EEPose(np.array([0.45, -0.1, 0.32]), np.array([0.1, -0.2, 0.3, 0.9]), "table")  # normalised by EEPose


def rclpy_wire(msg, name):
    return deserialize_message(serialize_message(msg), rclpy_type(name))


def rosbags_wire(msg, name):
    return STORE.deserialize_cdr(STORE.serialize_cdr(msg, name), name)


FLAVOURS = {"rclpy": (RCLPY, rclpy_wire), "rosbags": (ROSBAGS, rosbags_wire)}


def rotation_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula (an independent reference for the rotation vector <-> quaternion path)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * kx @ kx


def quat_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def make_chunk(mode: ActionMode, horizon: int = 6) -> ActionChunk:
    axes = RNG.normal(size=(horizon, 3))
    rotvecs = axes / np.linalg.norm(axes, axis=1, keepdims=True) * RNG.uniform(0.05, 2.8, (horizon, 1))
    actions = np.column_stack([RNG.uniform(-0.3, 0.3, (horizon, 3)), rotvecs, RNG.uniform(0, 1, horizon)])
    return ActionChunk(stamp=1712.000123456, dt=0.05, actions=actions, mode=mode, frame_id="table",
                       reference_pose=REF if mode == ActionMode.DELTA else None, seq=41, policy_id="flow_matching",
                       checkpoint_id="ck-9", inference_latency=0.0375, observation_age=0.0125)


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@pytest.mark.parametrize("mode", [ActionMode.ABSOLUTE, ActionMode.DELTA])
def test_a_chunk_survives_the_wire_field_for_field(flavour, mode):
    enc, wire = FLAVOURS[flavour]
    chunk = make_chunk(mode)
    msg = wire(enc.action_chunk(chunk), "vla_ros/msg/ActionChunk")
    # On the wire: one unit quaternion per step, the same rotation as the rotation vector.
    for p, rv in zip(msg.poses, chunk.actions[:, 3:6]):
        q = np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])
        assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(quat_matrix(q), rotation_matrix(rv), atol=1e-12)
    back = chunk_from_msg(msg)
    np.testing.assert_allclose(back.actions, chunk.actions, atol=1e-12)
    assert back.mode == mode and back.frame_id == "table" and back.seq == 41
    assert (back.policy_id, back.checkpoint_id) == ("flow_matching", "ck-9")
    assert back.stamp == pytest.approx(chunk.stamp, abs=1e-9) and back.dt == chunk.dt
    assert back.inference_latency == pytest.approx(0.0375, abs=1e-7)
    assert back.observation_age == pytest.approx(0.0125, abs=1e-7)
    if mode == ActionMode.DELTA:
        np.testing.assert_allclose(back.reference_pose.position, REF.position, atol=1e-15)
        np.testing.assert_allclose(back.reference_pose.orientation, REF.orientation, atol=1e-15)
    else:
        assert back.reference_pose is None
        ref = pose_to_ee(msg.reference_pose)  # unused in ABSOLUTE mode, but a valid (identity) pose
        np.testing.assert_array_equal(ref.orientation, [0.0, 0.0, 0.0, 1.0])


def test_rclpy_and_rosbags_write_the_same_message():
    """One layout: what the nodes publish is what the replay writes into its bag. rosbags' bytes, read
    by rclpy, equal the message rclpy builds itself (field for field: rclpy's message equality)."""
    img = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    st = _executor_status()
    chunks = {m: make_chunk(m) for m in ActionMode}
    cases = [(lambda e, c=c: e.action_chunk(c), "vla_ros/msg/ActionChunk") for c in chunks.values()]
    cases += [(lambda e: e.executor_status(st), "vla_ros/msg/ExecutorStatus"),
              (lambda e: e.image(img, 2.5, "cam", "bgra8", 2), "sensor_msgs/msg/Image"),
              (lambda e: e.chunk_pose_array(chunks[ActionMode.DELTA]), "geometry_msgs/msg/PoseArray"),
              (lambda e: e.joint_state(1.5, ["a", "b"], [0.25, -1.0]), "sensor_msgs/msg/JointState"),
              (lambda e: e.twist_stamped(1.5, "base", [0.1, -0.2, 0.3], [0.0, 0.5, -0.25]),
               "geometry_msgs/msg/TwistStamped"),
              (lambda e: e.compressed_image(img, 2.5, "cam", "png"), "sensor_msgs/msg/CompressedImage"),
              (lambda e: e.float64(0.04), "std_msgs/msg/Float64")]
    for build, name in cases:
        ours = build(RCLPY)
        from_bag = deserialize_message(bytes(STORE.serialize_cdr(build(ROSBAGS), name)), rclpy_type(name))
        assert from_bag == rclpy_wire(ours, name), name


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_the_preview_shows_delta_chunks_composed_with_their_reference(flavour):
    enc, wire = FLAVOURS[flavour]
    chunk = make_chunk(ActionMode.DELTA)
    msg = wire(enc.chunk_pose_array(chunk), "geometry_msgs/msg/PoseArray")
    assert msg.header.frame_id == "table" and stamp_to_sec(msg.header.stamp) == pytest.approx(chunk.stamp, abs=1e-9)
    ref_rot = quat_matrix(REF.orientation)
    for p, delta in zip(msg.poses, chunk.actions):
        np.testing.assert_allclose([p.position.x, p.position.y, p.position.z], REF.position + delta[:3], atol=1e-12)
        q = np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])
        # rotation = delta * reference (left-multiplied, ActionChunk.msg)
        np.testing.assert_allclose(quat_matrix(q), rotation_matrix(delta[3:6]) @ ref_rot, atol=1e-12)


def test_absolute_actions_resolves_delta_once_and_copies_absolute():
    chunk = make_chunk(ActionMode.DELTA)
    acts = absolute_actions(chunk)
    for a, d in zip(acts, chunk.actions):
        np.testing.assert_allclose(a[:3], REF.position + d[:3], atol=1e-12)
        np.testing.assert_allclose(rotation_matrix(a[3:6]), rotation_matrix(d[3:6]) @ quat_matrix(REF.orientation),
                                   atol=1e-12)
    np.testing.assert_array_equal(acts[:, 6], chunk.actions[:, 6])
    pos, quat, grip = absolute_poses(chunk)
    np.testing.assert_array_equal(pos, acts[:, :3])
    np.testing.assert_array_equal(grip, acts[:, 6])
    for q, a in zip(quat, acts):
        np.testing.assert_allclose(quat_matrix(q), rotation_matrix(a[3:6]), atol=1e-12)
    absolute = make_chunk(ActionMode.ABSOLUTE)
    out = absolute_actions(absolute)
    np.testing.assert_array_equal(out, absolute.actions)
    out[0, 0] = 99.0
    assert absolute.actions[0, 0] != 99.0  # a copy: callers may change it


def _executor_status(now: float = 0.12):
    """A real executor's status: one chunk received, ticked once (a plan of 10 steps, 2 committed)."""
    cfg = config_from_dict({
        "executor": {"expected_delay": 0.15, "watchdog_timeout": 5.0, "bridge_distance": 1e6, "bridge_angle": 1e6},
        "safety": {k: 1e6 for k in ("max_linear_speed", "max_angular_speed", "max_translation_step",
                                    "max_rotation_step", "max_pose_age", "max_measured_speed",
                                    "max_measured_angular_speed", "max_start_distance", "max_start_angle")},
    })
    ex = ChunkExecutor.from_config(cfg)
    home = EEPose(np.array([0.4, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]), "")
    ex.tick(-0.01, home)
    h = 10
    acts = np.column_stack([0.40 + 0.01 * np.arange(h), np.zeros(h), np.full(h, 0.3), np.zeros(h), np.zeros(h),
                            0.02 * np.arange(h), np.linspace(1.0, 0.2, h)])
    assert ex.submit(ActionChunk(stamp=0.0, dt=0.1, actions=acts, seq=5, policy_id="p"), 0.0).accepted
    ex.tick(now)
    return ex.status(now)


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_a_status_survives_the_wire_and_the_policy_side_reads_the_same_plan(flavour):
    enc, wire = FLAVOURS[flavour]
    st = _executor_status()
    assert st.plan.steps > 4
    msg = wire(enc.executor_status(st), "vla_ros/msg/ExecutorStatus")
    fb = ExecutorFeedback.from_msg(msg)
    assert (fb.state, fb.chunks_received, fb.chunk_seq, fb.policy_id) == (int(st.state), 1, 5, "p")
    assert fb.stamp == pytest.approx(st.stamp, abs=1e-9)
    assert fb.remaining_time == pytest.approx(st.remaining_time, abs=1e-6)
    assert msg.state_name == st.state_name and msg.dry_run == st.dry_run
    assert dict(zip(msg.limit_names, (int(c) for c in msg.limit_counts))) == st.limit_counts
    plan = fb.plan()
    assert plan.start == pytest.approx(st.plan.start, abs=1e-9) and plan.dt == st.plan.dt
    assert plan.committed_steps == st.plan.committed_steps
    np.testing.assert_allclose(plan.actions, st.plan.actions, atol=1e-12)
    cut = ExecutorFeedback.from_msg(wire(enc.executor_status(st, max_plan_steps=3),
                                         "vla_ros/msg/ExecutorStatus")).plan()
    np.testing.assert_allclose(cut.actions, st.plan.actions[:3], atol=1e-12)
    assert cut.committed_steps == min(st.plan.committed_steps, 3)


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("padding", [0, 3])
def test_every_raw_encoding_survives_the_wire(flavour, encoding, padding):
    enc, wire = FLAVOURS[flavour]
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    if encoding in ("mono8", "8UC1"):
        rgb = np.repeat(rgb[..., :1], 3, axis=2)  # a grey image: what a mono camera can carry
    msg = wire(enc.image(rgb, 3.25, "cam", encoding, padding), "sensor_msgs/msg/Image")
    assert msg.encoding == encoding and msg.step == 7 * RAW_ENCODINGS[encoding] + padding
    out = decode_image(msg, "/cam")
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_compressed_images_survive_the_wire(flavour):
    enc, wire = FLAVOURS[flavour]
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=2).astype(np.uint8)  # smooth: jpeg keeps it close
    png = decode_image(wire(enc.compressed_image(rgb, 1.0, "cam", "png"), "sensor_msgs/msg/CompressedImage"))
    np.testing.assert_array_equal(png, rgb)
    jpeg = decode_image(wire(enc.compressed_image(rgb, 1.0, "cam", "jpeg"), "sensor_msgs/msg/CompressedImage"))
    assert jpeg.shape == rgb.shape and np.abs(jpeg.astype(int) - rgb.astype(int)).mean() < 3.0


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_unsupported_images_are_refused_with_the_field(flavour):
    enc, wire = FLAVOURS[flavour]
    msg = enc.image(RNG.integers(0, 256, (2, 2, 3), dtype=np.uint8), 0.0)
    msg.encoding = "16UC1"
    with pytest.raises(MessageError, match=r"^/cam/depth: encoding '16UC1' is not supported; expected one of") as err:
        decode_image(wire(msg, "sensor_msgs/msg/Image"), "/cam/depth")
    assert err.value.code == Problem.ENCODING
    depth = enc.compressed_image(np.zeros((4, 4, 3), np.uint8), 0.0, "cam", "png")
    depth.format = "16UC1; compressedDepth"
    with pytest.raises(MessageError, match=r"^/cam/compressed: format: '16UC1; compressedDepth' is not supported"):
        decode_image(wire(depth, "sensor_msgs/msg/CompressedImage"), "/cam/compressed")
    with pytest.raises(ValueError, match="encoding: cannot build 'yuv422'; expected one of rgb8"):
        enc.image(np.zeros((2, 2, 3), np.uint8), 0.0, encoding="yuv422")


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_command_messages_carry_the_commanded_values(flavour):
    """The executor's outputs (pose, twist, gripper) as a driver reads them."""
    enc, wire = FLAVOURS[flavour]
    quat = np.array([0.0, 0.0, np.sin(0.2), np.cos(0.2)])
    ps = wire(enc.pose_stamped(7.5, "base", [0.4, -0.1, 0.25], quat), "geometry_msgs/msg/PoseStamped")
    ee = pose_to_ee(ps.pose, ps.header.frame_id)
    np.testing.assert_allclose(ee.position, [0.4, -0.1, 0.25])
    np.testing.assert_allclose(ee.orientation, quat)
    assert ee.frame_id == "base" and stamp_to_sec(ps.header.stamp) == 7.5
    tw = wire(enc.twist_stamped(7.5, "base", [0.1, -0.2, 0.3], [0.4, 0.5, -0.6]), "geometry_msgs/msg/TwistStamped")
    assert (tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z) == (0.1, -0.2, 0.3)
    assert (tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z) == (0.4, 0.5, -0.6)
    assert wire(enc.float64(0.035), "std_msgs/msg/Float64").data == 0.035
    js = wire(enc.joint_state(7.5, ["finger", "j1"], [0.035, -1.5]), "sensor_msgs/msg/JointState")
    np.testing.assert_array_equal(joint_positions(js, ["j1", "finger"]), [-1.5, 0.035])
    assert len(js.velocity) == 0 and len(js.effort) == 0
