"""A simulated arm that integrates the executor's commands, for closed-loop tests over DDS.

The executor's safety can only be judged by where the *arm* goes, not by what the executor says it
commanded: a wrong measured pose turns correct-looking twists into a runaway. So this node closes
the loop the way a robot driver does:

- pose mode: it follows the last ``PoseStamped`` target first-order (time constant `tau`), so a
  jump in the target shows up as a speed, not hidden by a speed clamp; the driver's own hard
  limit `max_speed` is far above any safety limit under test;
- twist mode: it integrates the last ``TwistStamped`` (MoveIt Servo style: a twist older than
  `twist_timeout` means stop);
- it publishes its end-effector pose (``PoseStamped`` in `frame`) at `rate` Hz and records the TRUE
  trajectory (`trajectory`: rows t, x, y, z in ROS time) and every gripper command.

Faults (`set_fault`) corrupt only what it *reports*, never where it is: ``freeze`` (the pose at the
moment of the fault, with fresh stamps: a hung driver), ``far`` (+100 m in x: a wrong TF),
``mm`` (millimetres instead of metres), ``silent`` (stops publishing).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64

from vla_ros.core.rotations import quat_mul, quat_normalize, quat_slerp, rotvec_to_quat
from vla_ros.ros.conversions import header, pose_msg

FAULTS = ("", "freeze", "far", "mm", "silent")


class KinematicArm(Node):
    def __init__(self, *, mode: str = "pose", start=(0.45, 0.0, 0.3), orientation=(0.0, 0.0, 0.0, 1.0),
                 rate: float = 50.0, tau: float = 0.05, max_speed: float = 5.0, twist_timeout: float = 0.1,
                 frame: str = "base_link", pose_topic: str = "/ee_pose", target_topic: str = "target_pose",
                 twist_topic: str = "delta_twist_cmds", gripper_topic: str = "gripper_command",
                 node_name: str = "kinematic_arm", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        if mode not in ("pose", "twist"):
            raise ValueError(f"mode: expected 'pose' or 'twist', got {mode!r}")
        self.mode, self.tau, self.max_speed, self.twist_timeout, self.frame = mode, tau, max_speed, twist_timeout, frame
        self.position = np.array(start, dtype=float)
        self.orientation = quat_normalize(np.array(orientation, dtype=float))
        self.fault = ""
        self._frozen: tuple[np.ndarray, np.ndarray] | None = None
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self._twist: tuple[float, np.ndarray, np.ndarray] | None = None  # (receive time, linear, angular)
        self._lock = threading.Lock()
        self._last_t: float | None = None
        self.trajectory: list[tuple[float, float, float, float]] = []
        self.gripper: list[float] = []
        self.targets_received = 0
        self.twists_received = 0
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pose_pub = self.create_publisher(PoseStamped, pose_topic, qos)
        self.create_subscription(PoseStamped, target_topic, self._on_target, qos)
        self.create_subscription(TwistStamped, twist_topic, self._on_twist, qos)
        self.create_subscription(Float64, gripper_topic, lambda m: self.gripper.append(float(m.data)), qos)
        self.create_timer(1.0 / rate, self._on_tick)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def set_fault(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault: expected one of {FAULTS}, got {fault!r}")
        with self._lock:
            self.fault = fault
            self._frozen = (self.position.copy(), self.orientation.copy())

    # ------------------------------------------------------------------ commands in
    def _on_target(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self.targets_received += 1
        with self._lock:
            self._target = (np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w]))

    def _on_twist(self, msg: TwistStamped) -> None:
        lin, ang = msg.twist.linear, msg.twist.angular
        self.twists_received += 1
        with self._lock:
            self._twist = (self.now(), np.array([lin.x, lin.y, lin.z]), np.array([ang.x, ang.y, ang.z]))

    # ------------------------------------------------------------------ physics + pose out
    def _step(self, dt: float, now: float) -> None:
        old = self.position.copy()
        if self.mode == "pose" and self._target is not None:
            target, quat = self._target
            if np.all(np.isfinite(target)):
                alpha = 1.0 - math.exp(-dt / self.tau)
                self.position = self.position + alpha * (target - self.position)
                if np.all(np.isfinite(quat)) and np.linalg.norm(quat) > 0.5:
                    self.orientation = quat_normalize(quat_slerp(self.orientation, quat_normalize(quat), alpha))
        elif self.mode == "twist" and self._twist is not None:
            received, lin, ang = self._twist
            if now - received <= self.twist_timeout and np.all(np.isfinite(lin)) and np.all(np.isfinite(ang)):
                self.position = self.position + lin * dt
                self.orientation = quat_normalize(quat_mul(rotvec_to_quat(ang * dt), self.orientation))
        step = self.position - old
        limit = self.max_speed * dt  # the driver's own hard limit
        if np.linalg.norm(step) > limit:
            self.position = old + step * (limit / np.linalg.norm(step))

    def _on_tick(self) -> None:
        now = self.now()
        with self._lock:
            if self._last_t is not None:
                self._step(max(0.0, now - self._last_t), now)
            self._last_t = now
            self.trajectory.append((now, *self.position))
            fault, frozen = self.fault, self._frozen
            position, orientation = self.position.copy(), self.orientation.copy()
        if fault == "silent":
            return
        if fault == "freeze":
            position, orientation = frozen
        elif fault == "far":
            position = position + np.array([100.0, 0.0, 0.0])
        elif fault == "mm":
            position = position * 1000.0
        self.pose_pub.publish(PoseStamped(header=header(now, self.frame), pose=pose_msg(position, orientation)))

    # ------------------------------------------------------------------ what happened
    def path(self) -> np.ndarray:
        """The true trajectory so far: (N, 4) rows of t, x, y, z."""
        with self._lock:
            return np.array(self.trajectory, dtype=float).reshape(-1, 4)

    def max_speed_over(self, window: float = 0.1, since: float = -math.inf) -> tuple[float, float]:
        """(fastest speed over any `window` s of the true path after `since`, when): discretisation of the
        20 ms ticks averages out over a window, a real overspeed does not."""
        path = self.path()
        path = path[path[:, 0] >= since]
        best, when = 0.0, math.nan
        j = 0
        for i in range(len(path)):
            while j < len(path) and path[j, 0] - path[i, 0] < window:
                j += 1
            if j >= len(path):
                break
            v = float(np.linalg.norm(path[j, 1:] - path[i, 1:]) / (path[j, 0] - path[i, 0]))
            if v > best:
                best, when = v, float(path[i, 0])
        return best, when

    def moved_since(self, since: float) -> float:
        """Largest distance of the true position from where it was at `since` (m)."""
        path = self.path()
        path = path[path[:, 0] >= since]
        if len(path) < 2:
            return 0.0
        return float(np.max(np.linalg.norm(path[:, 1:] - path[0, 1:], axis=1)))
