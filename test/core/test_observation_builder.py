"""ObservationBuilder (ROS-free): validation, rejection reasons and counters, assembly, max age.

Messages are real sensor_msgs / geometry_msgs classes (plain data, no rclpy.init needed) and, for
the replay path, duck-typed objects like the ones `rosbags` yields.
"""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CompressedImage

from vla_ros.core.config import ConfigError, RobotConfig
from vla_ros.core.observation_builder import CameraInput, ObservationBuilder, ObservationSpec
from vla_ros.core.types import ActionMode
from vla_ros.policy.base import PolicyMetadata
from vla_ros.ros.conversions import ENCODER, header, pose_msg, rgb_to_image_msg

T0 = 1000.0
JOINTS = ("j1", "j2", "j3")
RNG = np.random.default_rng(0)
PRIMARY = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
WRIST = RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)


def spec(**changes):
    base = dict(
        cameras=(CameraInput("primary", "/cam/primary"), CameraInput("wrist", "/cam/wrist")),
        joint_state_topic="/joint_states", joint_names=JOINTS, gripper_joint="finger",
        gripper_closed=0.0, gripper_open=0.08, ee_pose_topic="/ee_pose", base_frame="base_link",
        instruction_topic="/instruction",
    )
    base.update(changes)
    return ObservationSpec(**base)


def builder(problems=None, **kwargs):
    opts = dict(slop=0.02, queue_size=10, max_age=0.5, instruction="pick up the red cube")
    opts.update(kwargs)
    sp = opts.pop("spec", None) or spec()
    return ObservationBuilder(sp, on_problem=(problems.append if problems is not None else None), **opts)


def joints_msg(t, values=(0.1, 0.2, 0.3), finger=0.04, names=("j3", "j1", "finger", "j2")):
    by_name = dict(zip(JOINTS, values), finger=finger)
    return ENCODER.joint_state(t, list(names), [by_name[n] for n in names])


def ee_msg(t, x=0.4, frame="base_link", quat=(0.0, 0.0, 0.0, 1.0)):
    return PoseStamped(header=header(t, frame), pose=pose_msg(np.array([x, 0.0, 0.3]), np.array(quat)))


def feed(b, t, now=None, *, x=0.4):
    now = t + 0.01 if now is None else now
    assert b.add_image("primary", rgb_to_image_msg(PRIMARY, t, encoding="bgr8"), now) is None
    assert b.add_image("wrist", rgb_to_image_msg(WRIST, t, row_padding=3), now) is None
    assert b.add_joint_state(joints_msg(t + 0.005), now) is None
    assert b.add_ee_pose(ee_msg(t + 0.003, x), now) is None


def test_assembles_the_observation_from_synchronized_inputs():
    b = builder()
    feed(b, T0 + 0.123456789)
    sample = b.take(T0 + 0.2)
    obs = sample.observation
    assert obs.stamp == pytest.approx(T0 + 0.123456789)
    assert sample.stamp_ns == int(T0) * 10**9 + 123456789  # the pivot's exact header stamp
    np.testing.assert_array_equal(obs.images["primary"], PRIMARY)  # bgr8 -> RGB
    np.testing.assert_array_equal(obs.images["wrist"], WRIST)  # row padding removed
    np.testing.assert_allclose(obs.joint_positions, [0.1, 0.2, 0.3])  # robot.joint_names order
    assert obs.gripper == pytest.approx(0.5)  # 0.04 of 0.08 m
    np.testing.assert_allclose(obs.ee_pose.position, [0.4, 0.0, 0.3])
    assert obs.ee_pose.frame_id == "base_link" and obs.instruction == "pick up the red cube"
    assert set(sample.input_stamps) == {"/cam/primary", "/cam/wrist", "/joint_states", "/ee_pose"}
    assert b.stats.synchronized == 1 and b.stats.taken == 1 and b.stats.rejected == 0
    assert b.take(T0 + 0.2) is None  # each observation is handed out once


def test_take_returns_the_newest_and_counts_superseded_observations_as_dropped():
    b = builder()
    feed(b, T0, x=0.41)
    feed(b, T0 + 0.1, x=0.42)
    sample = b.take(T0 + 0.15)
    assert sample.observation.ee_pose.position[0] == pytest.approx(0.42)
    assert b.stats.dropped_superseded == 1 and b.stats.dropped == 1


def test_superseded_observations_are_not_counted_while_nobody_consumes():
    b = builder()
    b.counting = False
    feed(b, T0)
    feed(b, T0 + 0.1)
    assert b.stats.dropped == 0 and b.has_pending()


def test_stale_observation_is_dropped_at_take_and_names_the_oldest_input():
    problems = []
    b = builder(problems)
    feed(b, T0)
    assert b.take(T0 + 0.8) is None
    assert b.stats.dropped_stale == 1 and b.stats.rejected == 0
    p = problems[-1]
    assert p.code == "stale" and p.counter == "dropped" and p.topic == "/cam/primary"  # the oldest input
    assert ("/cam/primary: observation dropped: header.stamp is 0.800 s old, expected at most sync.max_age = 0.5 s"
            == p.message)


def test_observation_already_stale_when_synchronized_is_dropped_immediately():
    problems = []
    b = builder(problems)
    now = T0 + 3.0
    b.add_image("primary", rgb_to_image_msg(PRIMARY, T0), now)
    b.add_image("wrist", rgb_to_image_msg(WRIST, T0), now)
    b.add_joint_state(joints_msg(T0), now)
    p = b.add_ee_pose(ee_msg(T0 + 0.002), now)  # completes the set: already too old
    assert p.code == "stale" and p.counter == "dropped" and problems == [p]
    assert not b.has_pending() and b.stats.dropped_stale == 1
    assert b.take(T0 + 3.0) is None


BAD_INPUTS = [
    ("primary", lambda t: _with(rgb_to_image_msg(PRIMARY, t), encoding="yuv422"), "/cam/primary", "encoding",
     "/cam/primary: encoding 'yuv422' is not supported; expected one of rgb8"),
    ("primary", lambda t: _with(rgb_to_image_msg(PRIMARY, t), data=bytes(10)), "/cam/primary", "size",
     "/cam/primary: data: expected at least 144 bytes for 6x8 rgb8 (step 24), got 10"),
    ("primary", lambda t: _with(rgb_to_image_msg(PRIMARY, t), height=0), "/cam/primary", "size",
     "/cam/primary: height/width: expected a non-empty image, got 0x8"),
    ("joints", lambda t: joints_msg(t, values=(0.1, float("nan"), 0.3)), "/joint_states", "nonfinite",
     "/joint_states: position: joint(s) j2 are NaN or inf"),
    ("joints", lambda t: joints_msg(t, names=("j1", "j2", "finger")), "/joint_states", "missing_joint",
     "/joint_states: name: joint(s) j3 missing"),
    ("joints", lambda t: joints_msg(t, names=("j1", "j2", "j3")), "/joint_states", "missing_joint",
     "/joint_states: name: joint(s) finger missing"),
    ("joints", lambda t: joints_msg(t, finger=float("inf")), "/joint_states", "nonfinite",
     "/joint_states: position: joint(s) finger are NaN or inf"),
    ("ee", lambda t: ee_msg(t, frame="world"), "/ee_pose", "frame",
     "/ee_pose: header.frame_id: expected 'base_link' (robot.base_frame) or empty, got 'world'"),
    ("ee", lambda t: ee_msg(t, quat=(0.0, 0.0, 0.0, 0.0)), "/ee_pose", "quaternion", "/ee_pose: "),
    ("ee", lambda t: ee_msg(t, x=float("nan")), "/ee_pose", "nonfinite",
     "/ee_pose: ee_pose.position: contains NaN or inf"),
    ("primary", lambda t: _with(rgb_to_image_msg(PRIMARY, 0.0)), "/cam/primary", "stamp",
     "/cam/primary: header.stamp: expected the capture time, got 0 (unset stamp)"),
    ("joints", lambda t: joints_msg(t + 5.0), "/joint_states", "stamp",
     "/joint_states: header.stamp: 4.990 s ahead of the ROS clock; expected at most sync.slop = 0.02 s ahead"),
]


def _with(msg, **fields):
    for k, v in fields.items():
        setattr(msg, k, v)
    return msg


def _add(b, which, msg, now):
    if which in ("primary", "wrist"):
        return b.add_image(which, msg, now)
    if which == "joints":
        return b.add_joint_state(msg, now)
    return b.add_ee_pose(msg, now)


@pytest.mark.parametrize("which, make_msg, topic, code, text", BAD_INPUTS,
                         ids=[f"{b[3]}-{i}" for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_is_rejected_with_topic_and_expected_form_and_never_reaches_the_policy(which, make_msg, topic, code,
                                                                                         text):
    problems = []
    b = builder(problems)
    now = T0 + 0.01
    p = _add(b, which, make_msg(T0), now)
    assert p is not None and p.topic == topic and p.code == code and p.counter == "rejected"
    assert p.message.startswith(text), p.message
    assert problems == [p]
    assert b.stats.rejected == 1 and b.stats.rejected_by_topic[topic] == 1
    # The other inputs are fine, but no observation forms without the rejected one.
    for other in ("primary", "wrist", "joints", "ee"):
        if other != which:
            good = {"primary": rgb_to_image_msg(PRIMARY, T0), "wrist": rgb_to_image_msg(WRIST, T0),
                    "joints": joints_msg(T0), "ee": ee_msg(T0)}[other]
            assert _add(b, other, good, now) is None
    assert b.take(now) is None and b.stats.synchronized == 0


def test_stamps_going_backwards_are_rejected_per_topic():
    problems = []
    b = builder(problems)
    assert b.add_joint_state(joints_msg(T0), T0) is None
    p = b.add_joint_state(joints_msg(T0 - 0.01), T0)
    assert p.code == "stamp" and p.topic == "/joint_states"
    assert p.message.startswith("/joint_states: header.stamp: expected stamps that do not go backwards, got ")
    assert b.stats.rejected_by_topic == {"/joint_states": 1}


def test_empty_instruction_rejects_the_observation_until_one_is_set():
    problems = []
    b = builder(problems, instruction="  ")
    feed(b, T0)
    assert b.take(T0 + 0.1) is None
    p = problems[-1]
    assert p.code == "instruction" and p.topic == "/instruction" and b.stats.rejected == 1
    assert "instruction is empty; expected a non-empty std_msgs/String on /instruction" in p.message
    assert "policy.instruction" in p.message
    assert b.set_instruction("open the drawer")
    feed(b, T0 + 0.1)
    assert b.take(T0 + 0.2).observation.instruction == "open the drawer"


def test_empty_instruction_allowed_for_instruction_free_policies():
    b = builder(instruction="", allow_empty_instruction=True)
    feed(b, T0)
    assert b.take(T0 + 0.1).observation.instruction == ""


def test_compressed_images_decode_at_take_and_a_corrupt_one_is_rejected_there():
    problems = []
    sp = spec(cameras=(CameraInput("primary", "/cam/primary/compressed"),), ee_pose_topic="")
    b = builder(problems, spec=sp)
    ok, jpg = cv2.imencode(".png", PRIMARY[..., ::-1])
    b.add_image("primary", CompressedImage(header=header(T0), format="png", data=jpg.tobytes()), T0)
    b.add_joint_state(joints_msg(T0), T0)
    np.testing.assert_array_equal(b.take(T0).observation.images["primary"], PRIMARY)

    # A valid header but a truncated body: only decoding finds out, at take.
    b.add_image("primary", CompressedImage(header=header(T0 + 0.1), format="png", data=jpg.tobytes()[:40]), T0 + 0.1)
    b.add_joint_state(joints_msg(T0 + 0.1), T0 + 0.1)
    assert b.take(T0 + 0.1) is None
    assert problems[-1].code == "decode" and problems[-1].topic == "/cam/primary/compressed"
    assert "cannot decode compressed image of format 'png'; expected jpeg or png" in problems[-1].message
    # No PNG/JPEG header at all: its size is unknown, refused on arrival.
    p = b.add_image("primary", CompressedImage(header=header(T0 + 0.15), format="jpeg", data=b"not a jpeg"), T0 + 0.15)
    assert p.code == "decode" and "no PNG or JPEG header (format 'jpeg'); expected jpeg or png" in p.message
    p = b.add_image("primary", CompressedImage(header=header(T0 + 0.2), format="jpeg", data=b""), T0 + 0.2)
    assert p.code == "size" and "empty compressed image" in p.message


def test_duck_typed_messages_as_read_from_a_bag():
    """The replay feeds `rosbags` messages: plain objects with numpy data, same field names."""
    b = builder(spec=spec(ee_pose_topic="", gripper_joint=""))
    stamp = SimpleNamespace(sec=int(T0), nanosec=5)
    img = SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id="cam"), height=6, width=8, encoding="rgb8",
                          is_bigendian=0, step=24, data=PRIMARY.reshape(-1).copy())
    wrist = SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id="cam"), height=4, width=5, encoding="rgb8",
                            is_bigendian=0, step=15, data=WRIST.reshape(-1).copy())
    js = SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id=""), name=["j1", "j2", "j3"],
                         position=np.array([1.0, 2.0, 3.0]), velocity=np.array([]), effort=np.array([]))
    assert b.add_image("primary", img, T0) is None
    assert b.add_image("wrist", wrist, T0) is None
    assert b.add_joint_state(js, T0) is None
    obs = b.take(T0).observation
    np.testing.assert_array_equal(obs.images["primary"], PRIMARY)
    np.testing.assert_allclose(obs.joint_positions, [1.0, 2.0, 3.0])
    assert obs.gripper is None and obs.ee_pose is None


def test_joint_order_is_learnt_from_the_first_message_when_the_profile_has_none():
    b = builder(spec=spec(joint_names=()))
    feed(b, T0)
    assert b.joint_names == ("j3", "j1", "j2")  # message order, gripper joint excluded
    np.testing.assert_allclose(b.take(T0 + 0.05).observation.joint_positions, [0.3, 0.1, 0.2])


def test_clock_jumping_back_resets_the_synchronizer():
    problems = []
    b = builder(problems)
    feed(b, T0)
    b.take(T0 + 0.05)
    feed(b, 5.0)  # sim restarted: stamps far older than before, accepted after the reset
    assert b.stats.clock_resets == 1 and problems[0].code == "clock" and problems[0].counter == "none"
    assert b.take(5.05).observation.stamp == pytest.approx(5.0)
    assert b.stats.rejected == 0


def _robot(**changes):
    return RobotConfig(**changes)


def test_spec_takes_the_policys_cameras_and_needed_inputs_from_the_profile():
    robot = _robot(camera_names=["primary", "wrist", "top"], camera_topics=["/a", "/b/compressed", "/c"])
    meta = PolicyMetadata(policy_type="x", cameras=("top", "wrist"), state_source="joints", state_dim=7)
    sp = ObservationSpec.from_config(robot, meta)
    assert [c.name for c in sp.cameras] == ["wrist", "top"]  # robot order: wrist is the pivot
    assert sp.cameras[0].compressed and not sp.cameras[1].compressed
    assert sp.ee_pose_topic == "" and sp.joint_state_topic == "/joint_states"
    ee = ObservationSpec.from_config(robot, PolicyMetadata(policy_type="hold", state_source="ee_pose"))
    assert [c.name for c in ee.cameras] == ["primary", "wrist", "top"] and ee.ee_pose_topic == "/ee_pose"
    delta = PolicyMetadata(policy_type="x", state_source="none", state_dim=0, action_mode=ActionMode.DELTA)
    assert ObservationSpec.from_config(robot, delta).ee_pose_topic == "/ee_pose"
    assert list(ObservationSpec.from_config(robot, meta).inputs()) == ["camera:wrist", "camera:top", "joint_state"]


@pytest.mark.parametrize(
    "robot, meta, message",
    [
        (dict(ee_pose_topic=""), dict(state_source="ee_pose"),
         "robot.ee_pose_topic: the policy uses the end-effector pose"),
        (dict(ee_pose_topic=""), dict(state_source="none", state_dim=0, action_mode="delta"), "predicts DELTA actions"),
        (dict(joint_state_topic=""), dict(state_source="joints"), "robot.joint_state_topic"),
        (dict(), dict(cameras=("overhead",)), r"robot.camera_names: the policy needs camera\(s\) overhead"),
    ],
)
def test_spec_errors_name_the_parameter(robot, meta, message):
    with pytest.raises(ConfigError, match=message):
        ObservationSpec.from_config(_robot(**robot), PolicyMetadata(policy_type="x", **meta))
