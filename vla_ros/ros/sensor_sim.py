"""Synthetic robot sensors: cameras + joint states + EE pose (+ instruction), optionally faulty.

For bringing up the policy node without a robot, for its DDS tests and for bench/node_bench.py.
Every ``1 / state_rate`` s it publishes a JointState and a PoseStamped stamped with the ROS time;
every ``state_rate / camera_rate``-th tick also one frame per camera with *the same stamp*, so an
observation's inputs are exactly aligned and a test can look the pose of a chunk's stamp up.
The EE x position encodes the tick: a triangle wave ``x = 0.40 + 0.001 * |tick % 200 - 100|``
(1 mm per tick, never a jump an arm could not make, so the plausibility checks accept it).

Faults (``--fault NAME[=TARGET]``, repeatable) make the inputs bad in one specific way each:
``stale`` (stamps ``--stale-offset`` s in the past), ``bad_encoding=CAM`` (encoding "yuv422"),
``short_data=CAM`` (data shorter than height*step), ``nan_joints``, ``missing_joint``,
``bad_frame`` (EE pose in another frame), ``backwards`` (every other JointState 10 ms back),
``unset_stamp=CAM`` (header.stamp 0).

    python -m vla_ros.ros.sensor_sim --width 640 --height 480 --camera-rate 30 --instruction "pick up the cube"
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from vla_ros.ros import node_main
from vla_ros.ros.conversions import header, pose_msg, rgb_to_image_msg

FAULTS = ("stale", "bad_encoding", "short_data", "nan_joints", "missing_joint", "bad_frame", "backwards", "unset_stamp")
DEFAULT_JOINTS = tuple(f"joint_{i}" for i in range(1, 7))


def ee_x(tick: int) -> float:
    """EE x position published at `tick` (tests invert nothing: they look the pose up by stamp)."""
    return 0.40 + 0.001 * abs(tick % 200 - 100)


class SensorSim(Node):
    def __init__(
        self,
        *,
        cameras: dict[str, str],
        width: int = 64,
        height: int = 48,
        encoding: str = "rgb8",
        camera_rate: float = 30.0,
        state_rate: float = 60.0,
        joint_topic: str = "/joint_states",
        joint_names: Sequence[str] = DEFAULT_JOINTS,
        gripper_joint: str = "gripper",
        ee_topic: str = "/ee_pose",
        frame: str = "base_link",
        instruction: str | None = None,
        instruction_topic: str = "/instruction",
        faults: dict[str, str] | None = None,
        stale_offset: float = 2.0,
        reliable: bool = True,
        node_name: str = "vla_sensor_sim",
        **node_kwargs,
    ):
        super().__init__(node_name, **node_kwargs)
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"--fault: unknown fault(s) {', '.join(sorted(unknown))}; known: {', '.join(FAULTS)}")
        self.faults = dict(faults or {})
        self.stale_offset = stale_offset
        self.encoding = encoding
        self.frame = frame
        self.joint_names = list(joint_names)
        self.gripper_joint = gripper_joint
        # Reliable with some history, so a subscriber that is briefly slow (a test) still gets every message.
        qos = QoSProfile(depth=30, reliability=ReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
        self.cam_pubs = {name: self.create_publisher(Image, topic, qos) for name, topic in cameras.items()}
        self.joint_pub = self.create_publisher(JointState, joint_topic, qos) if joint_topic else None
        self.ee_pub = self.create_publisher(PoseStamped, ee_topic, qos) if ee_topic else None
        if instruction is not None:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_publisher(String, instruction_topic, latched).publish(String(data=instruction))
        rng = np.random.default_rng(0)
        self.images = {name: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for name in cameras}
        self.every = max(1, int(round(state_rate / camera_rate)))
        self.tick = 0
        self.published_frames = 0
        self.create_timer(1.0 / state_rate, self._on_tick)

    def _stamp(self) -> float:
        t = self.get_clock().now().nanoseconds * 1e-9
        return t - self.stale_offset if "stale" in self.faults else t

    def _on_tick(self) -> None:
        k, t = self.tick, self._stamp()
        self.tick += 1
        if self.joint_pub is not None:
            names = list(self.joint_names) + ([self.gripper_joint] if self.gripper_joint else [])
            pos = [0.1 * i for i in range(len(self.joint_names))] + ([0.04] if self.gripper_joint else [])
            if "nan_joints" in self.faults:
                pos[0] = float("nan")
            if "missing_joint" in self.faults:
                names, pos = names[1:], pos[1:]
            tj = t - 0.01 if "backwards" in self.faults and k % 2 else t
            self.joint_pub.publish(JointState(header=header(tj), name=names, position=pos))
        if self.ee_pub is not None:
            frame = "other_frame" if "bad_frame" in self.faults else self.frame
            self.ee_pub.publish(
                PoseStamped(header=header(t, frame),
                            pose=pose_msg(np.array([ee_x(k), 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0])))
            )
        if k % self.every == 0:
            for name, pub in self.cam_pubs.items():
                msg = rgb_to_image_msg(self.images[name], t, "camera_" + name, self.encoding)
                if self.faults.get("bad_encoding") == name:
                    msg.encoding = "yuv422"
                if self.faults.get("short_data") == name:
                    msg.data = bytes(msg.data)[: len(msg.data) // 2]
                if self.faults.get("unset_stamp") == name:
                    msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0
                pub.publish(msg)
            self.published_frames += 1


def _parse_faults(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, _, target = item.partition("=")
        out[name] = target
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(prog="sensor_sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--camera", action="append", default=None, metavar="NAME=TOPIC",
                    help="camera name and topic (repeatable; default primary + wrist on /camera/<name>/image_raw)")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--height", type=int, default=48)
    ap.add_argument("--encoding", default="rgb8")
    ap.add_argument("--camera-rate", type=float, default=30.0)
    ap.add_argument("--state-rate", type=float, default=60.0, help="joint state / EE pose rate (Hz)")
    ap.add_argument("--joint-topic", default="/joint_states")
    ap.add_argument("--ee-topic", default="/ee_pose")
    ap.add_argument("--gripper-joint", default="gripper")
    ap.add_argument("--instruction", default=None, help="publish this instruction (latched) on /instruction")
    ap.add_argument("--fault", action="append", default=[], metavar="NAME[=TARGET]", help=f"one of {', '.join(FAULTS)}")
    ap.add_argument("--stale-offset", type=float, default=2.0)
    ap.add_argument("--best-effort", action="store_true", help="publish with sensor-data QoS (default: reliable)")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = run until killed)")
    ns = ap.parse_args(remove_ros_args(args)[1:])
    cams = dict(c.split("=", 1) for c in ns.camera) if ns.camera else {
        "primary": "/camera/primary/image_raw", "wrist": "/camera/wrist/image_raw"}
    rclpy.init(args=args)
    node = SensorSim(
        cameras=cams, width=ns.width, height=ns.height, encoding=ns.encoding, camera_rate=ns.camera_rate,
        state_rate=ns.state_rate, joint_topic=ns.joint_topic, ee_topic=ns.ee_topic, gripper_joint=ns.gripper_joint,
        instruction=ns.instruction, faults=_parse_faults(ns.fault), stale_offset=ns.stale_offset,
        reliable=not ns.best_effort,
    )
    print(f"sensor_sim ready: {len(cams)} camera(s) {ns.width}x{ns.height} at {ns.camera_rate:g} Hz", flush=True)
    return node_main.spin(node, SingleThreadedExecutor(), ns.duration)


if __name__ == "__main__":
    sys.exit(main())
