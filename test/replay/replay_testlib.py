"""Helpers of the replay tests: small scenes and hand-built bags with known content."""

from __future__ import annotations

import numpy as np


def small_scene(**changes):
    from dataclasses import replace

    from vla_ros.replay.synthetic import SceneConfig

    return replace(SceneConfig(image_size=32, camera_rate=10.0, state_rate=50.0, command_rate=50.0), **changes)


# ---------------------------------------------------------------------------------------------
# A hand-built bag with known content: the EE moves along +x at V; the recorded command is the EE
# pose offset by D (|D| = 5 cm) and rotated by DROT about z; the gripper command is open until
# T0 + 0.995 s, closed after. One camera at 10 Hz, EE pose and commands at 50 Hz.
T0 = 50.0
P0 = np.array([0.4, 0.0, 0.3])
V = np.array([0.05, 0.0, 0.0])
D = np.array([0.0, 0.03, 0.04])
YAW, DROT = 0.3, 0.2
GRIPPER_SWITCH = T0 + 0.995
KNOWN_DURATION = 2.0


def ee_pos(t: float) -> np.ndarray:
    return P0 + V * (t - T0)


def write_known_bag(path, storage: str = "mcap", *, duration: float = KNOWN_DURATION, camera_topic: str = "/cam",
                    backwards_at: tuple[int, ...] = (), twist_topic: str = ""):
    """The bag described above; camera frames with index in `backwards_at` get a header stamp 0.15 s in the past."""
    from vla_ros.replay.bag_io import BagWriter
    from vla_ros.replay.synthetic import yaw_quat

    rng = np.random.default_rng(0)
    events = []
    with BagWriter(path, storage=storage) as w:
        m = w.msgs
        w.write("/instruction", T0, m.string("move along x"), latched=True)
        for j in range(int(round(duration * 10)) + 1):
            t = T0 + 0.1 * j
            stamp = t - 0.15 if j in backwards_at else t
            events.append((t + 0.002, camera_topic,
                           m.image(stamp, "cam", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))))
        for j in range(int(round(duration * 50)) + 1):
            t = T0 + 0.02 * j
            events.append((t + 0.001, "/ee_pose", m.pose_stamped(t, "base_link", ee_pos(t), yaw_quat(YAW))))
            events.append((t, "/target_pose", m.pose_stamped(t, "base_link", ee_pos(t) + D, yaw_quat(YAW + DROT))))
            if twist_topic:
                events.append((t, twist_topic, m.twist_stamped(t, "base_link", V, [0.0, 0.0, 0.0])))
            tg = t + 0.005
            events.append((tg, "/gripper_command", m.float64(0.04 if tg < GRIPPER_SWITCH else 0.0)))
        events.sort(key=lambda e: e[0])
        for t, topic, msg in events:
            w.write(topic, t, msg)
    return path


def known_config(overrides: dict | None = None):
    """Config of the known bag: one camera, EE pose, hold policy, replace strategy, loose limits, fixed latency."""
    from vla_ros.core.config import config_from_dict

    base = {
        "robot": {"name": "known", "camera_names": ["primary"], "camera_topics": ["/cam"], "joint_state_topic": "",
                  "gripper_joint": "", "gripper_open": 0.04, "ee_pose_topic": "/ee_pose",
                  "instruction_topic": "/instruction",
                  "base_frame": "base_link"},
        "policy": {"type": "hold", "rate_hz": 5.0},
        "executor": {"strategy": "replace", "control_rate": 100.0},
        "safety": {"max_linear_speed": 10.0, "max_translation_step": 1.0, "max_angular_speed": 10.0,
                   "max_rotation_step": 3.0},
        "replay": {"ground_truth_topic": "/target_pose", "gripper_topic": "/gripper_command", "latency": "fixed",
                   "fixed_latency": 0.05},
    }
    return config_from_dict(base, overrides)
