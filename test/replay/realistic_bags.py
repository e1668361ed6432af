"""Bags shaped like real arm recordings: the EE pose only in /tf (+ a static link in /tf_static),
joint states that start late or carry no names, and the hand computation of the EE pose.

The chain: base_link -(yaw, /tf at 50 Hz)-> shoulder -(static offset, /tf_static)-> forearm
-(pitch, /tf at 30 Hz, other stamps)-> tool0. Each link has its own TFMessage, as drivers publish.
"""

from __future__ import annotations

import math

import numpy as np

from vla_ros.core.msg_decode import sec_to_sec_nanosec

T0 = 50.0
DURATION = 5.0
JOINTS_LATE = 3.0  # joint states start this long after the cameras
SHOULDER_Z = 0.4
FOREARM = np.array([0.35, 0.0, 0.1])  # static: shoulder -> forearm
TOOL = np.array([0.25, 0.0, 0.0])  # forearm -> tool0 translation (rotation: pitch)
SHOULDER_DT, TOOL_DT, TOOL_OFFSET = 0.02, 1.0 / 30.0, 0.005


def bag_time(t: float) -> float:
    """A time as it comes back from a header stamp (ns resolution)."""
    sec, nsec = sec_to_sec_nanosec(t)
    return float(sec) + float(nsec) * 1e-9


def yaw(t: float) -> float:
    return 0.3 * math.sin(1.3 * (t - T0))


def pitch(t: float) -> float:
    return 0.2 + 0.25 * math.cos(0.9 * (t - T0))


def shoulder_stamps() -> list[float]:
    return [bag_time(T0 + SHOULDER_DT * k) for k in range(int(DURATION / SHOULDER_DT) + 1)]


def tool_stamps() -> list[float]:
    return [bag_time(T0 + TOOL_OFFSET + TOOL_DT * k) for k in range(int((DURATION - TOOL_OFFSET) / TOOL_DT) + 1)]


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _interp(stamps: list[float], f, t: float) -> float:
    """The angle a tf2 buffer gives at t: linear between the two samples around t (one axis: slerp = lerp)."""
    i = max(k for k, s in enumerate(stamps) if s <= t + 1e-12)
    if abs(stamps[i] - t) < 1e-12 or i == len(stamps) - 1:
        return f(stamps[i])
    a, b = stamps[i], stamps[i + 1]
    return f(a) + (t - a) / (b - a) * (f(b) - f(a))


def hand_pose(t: float) -> tuple[np.ndarray, np.ndarray]:
    """(position, rotation matrix) of tool0 in base_link at t, by hand: matrices, no quaternions."""
    r_sh = _rz(_interp(shoulder_stamps(), yaw, t))
    r_tool = _ry(_interp(tool_stamps(), pitch, t))
    p_forearm = np.array([0.0, 0.0, SHOULDER_Z]) + r_sh @ FOREARM
    return p_forearm + r_sh @ TOOL, r_sh @ r_tool


def exact_pose(t: float) -> tuple[np.ndarray, np.ndarray]:
    """(position, rotation matrix) of tool0 with the joint angles at exactly t (what FK of the joint states gives)."""
    r_sh = _rz(yaw(t))
    return np.array([0.0, 0.0, SHOULDER_Z]) + r_sh @ FOREARM + r_sh @ TOOL, r_sh @ _ry(pitch(t))


def quat_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _tf_msg(store, stamp: float, parent: str, child: str, translation, quat):
    T = store.types
    sec, nsec = sec_to_sec_nanosec(stamp)
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=parent)
    x, y, z = (float(v) for v in translation)
    qx, qy, qz, qw = (float(v) for v in quat)
    tr = T["geometry_msgs/msg/Transform"](translation=T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
                                          rotation=T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))
    ts = T["geometry_msgs/msg/TransformStamped"](header=header, child_frame_id=child, transform=tr)
    return T["tf2_msgs/msg/TFMessage"](transforms=[ts])


def write_tf_bag(path, storage: str = "mcap", *, joint_names=("j1", "j2"), empty_names: bool = False,
                 image_px: int = 8, camera_rate: float = 10.0, joints_late: float = JOINTS_LATE,
                 robot_description: str = ""):
    """The bag of the module docstring: /cam, /joint_states (from T0 + joints_late), /tf, /tf_static, /instruction."""
    from vla_ros.replay.bag_io import BagWriter

    rng = np.random.default_rng(1)
    events = []
    with BagWriter(path, storage=storage) as w:
        m, store = w.msgs, w.store
        w.write("/instruction", T0, m.string("reach"), latched=True)
        if robot_description:
            w.write("/robot_description", T0, m.string(robot_description), latched=True)
        w.write("/tf_static", T0, _tf_msg(store, T0, "shoulder", "forearm", FOREARM, (0, 0, 0, 1)), latched=True)
        for k in range(int(DURATION * camera_rate) + 1):
            t = T0 + k / camera_rate
            img = rng.integers(0, 255, (image_px, image_px, 3), dtype=np.uint8)
            events.append((t + 0.002, "/cam", m.image(t, "cam", img)))
        for t in shoulder_stamps():
            q = (0.0, 0.0, math.sin(yaw(t) / 2), math.cos(yaw(t) / 2))
            events.append((t + 0.001, "/tf", _tf_msg(store, t, "base_link", "shoulder", (0, 0, SHOULDER_Z), q)))
            if t >= T0 + joints_late - 1e-9:
                names = [] if empty_names else list(joint_names)
                positions = [yaw(t), pitch(t)][: len(joint_names)]
                events.append((t + 0.0015, "/joint_states", m.joint_state(t, names, positions)))
        for t in tool_stamps():
            q = (0.0, math.sin(pitch(t) / 2), 0.0, math.cos(pitch(t) / 2))
            events.append((t + 0.001, "/tf", _tf_msg(store, t, "forearm", "tool0", TOOL, q)))
        events.sort(key=lambda e: e[0])
        for t, topic, msg in events:
            w.write(topic, t, msg)
    return path


def tf_config(overrides: dict | None = None):
    """Config of the TF bag: no PoseStamped topic configured, the EE pose from the TF chain, hold policy."""
    from vla_ros.core.config import config_from_dict

    base = {
        "robot": {"name": "tf_arm", "camera_names": ["primary"], "camera_topics": ["/cam"],
                  "joint_state_topic": "/joint_states", "joint_names": ["j1", "j2"], "gripper_joint": "",
                  "ee_pose_topic": "", "instruction_topic": "/instruction", "base_frame": "base_link",
                  "ee_frame": "tool0"},
        "policy": {"type": "hold", "rate_hz": 5.0},
        "executor": {"strategy": "replace", "control_rate": 50.0},
        "safety": {"max_linear_speed": 10.0, "max_translation_step": 1.0, "max_angular_speed": 10.0,
                   "max_rotation_step": 3.0, "max_measured_speed": 50.0, "max_measured_angular_speed": 50.0},
        "replay": {"latency": "none", "batch_size": 1},
    }
    return config_from_dict(base, overrides)


def tf_config_yaml(path) -> str:
    """tf_config() as a YAML file for the CLI tests."""
    import yaml

    cfg = tf_config().to_dict()
    path.write_text(yaml.safe_dump({k: cfg[k] for k in ("robot", "policy", "executor", "safety", "replay")}))
    return str(path)


def cut_storage_file(bag_dir, fraction: float, *, keep_metadata: bool = True):
    """Cut the bag's storage file at `fraction` of its size, as a killed recorder leaves it."""
    (data,) = [p for p in bag_dir.iterdir() if p.suffix in (".db3", ".mcap")]
    raw = data.read_bytes()
    data.write_bytes(raw[: int(len(raw) * fraction)])
    if not keep_metadata:
        (bag_dir / "metadata.yaml").unlink()
    return data


URDF = f"""<?xml version="1.0"?>
<robot name="tf_arm">
  <link name="base_link"/><link name="shoulder"/><link name="forearm"/><link name="tool0"/>
  <joint name="j1" type="revolute"><parent link="base_link"/><child link="shoulder"/>
    <origin xyz="0 0 {SHOULDER_Z}"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="forearm_fixed" type="fixed"><parent link="shoulder"/><child link="forearm"/>
    <origin xyz="{FOREARM[0]} {FOREARM[1]} {FOREARM[2]}"/></joint>
  <joint name="j2" type="revolute"><parent link="forearm"/><child link="tool0"/>
    <origin xyz="{TOOL[0]} {TOOL[1]} {TOOL[2]}"/><axis xyz="0 1 0"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
</robot>
"""
