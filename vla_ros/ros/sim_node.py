"""`sim_node`: a MuJoCo arm (`vla_ros.sim.world.SimWorld`) in place of the robot, on sim time.

Why a node and not only `vla-ros sim-eval`: sim-eval drives the core objects in one process; this
node puts the simulated arm behind the same topics as a real one, so the real policy and executor
nodes (and their QoS, threads, lifecycle, parameters, latency) run the closed loop over DDS.

One thread (the *sim thread*) owns the world: it builds it, steps it in ticks of
``1 / sim.clock_rate`` sim seconds, applies the commands received since the last tick, and after
each tick publishes, all stamped with the same sim time:

- ``/clock`` (rosgraph_msgs/Clock) first, so a subscriber's clock has reached every stamp it sees;
- ``robot.joint_state_topic`` (sensor_msgs/JointState: the world's arm and gripper joints, robot units),
  ``robot.ee_pose_topic`` (geometry_msgs/PoseStamped of the tool frame in ``robot.base_frame``);
- at ``sim.camera_rate`` (frames per sim second): one sensor_msgs/Image (rgb8,
  ``sim.image_size`` square) per camera of the profile (``robot.camera_names`` ->
  ``robot.camera_topics``); a camera is rendered only then, never per physics step;
- with every camera frame, the task state as JSON on ``sim.task_state_topic`` (std_msgs/String:
  the world's ``task_state()`` plus task, seed, episode, sim time and the achieved real-time factor).

The instruction (``world.instruction()``) is latched (reliable, transient-local) on
``robot.instruction_topic``. Sim time starts at `CLOCK_START` s (a ROS time of 0 reads as "unset")
and never goes back, also across ``~/reset`` (std_srvs/Trigger: next episode, seed
``sim.seed + episode``).

Commands in (whatever ``executor.output_mode`` says, all are subscribed; best-effort
subscriptions, so any publisher matches): PoseStamped targets on ``executor.pose_topic``,
TwistStamped on ``executor.twist_topic`` (zeroed when none arrives for `TWIST_TIMEOUT` sim
seconds, like MoveIt Servo's command timeout), the gripper as std_msgs/Float64 in robot units on
``executor.gripper_topic`` or sensor_msgs/JointState (the ``robot.gripper_joint`` entry) on
``executor.gripper_joint_state_topic``; robot units are mapped to the world's normalised [0, 1]
(0 = closed) with ``robot.gripper_closed`` / ``robot.gripper_open``, as the executor maps the other
way. A command in another frame, with a non-finite value or a zero quaternion is dropped and
counted (warned once per reason): nothing bad reaches the simulated arm. The executor's dry run
publishes to ``preview/...`` topics, which this node does not subscribe: the arm stays still.

Pacing: ``sim.real_time_factor`` sim seconds per wall second (1 = real time; 0 = no pacing, as
fast as stepping and rendering allow; only sensible when the policy and executor keep up, since
their commands then arrive later in sim time). When the sim falls behind (rendering) it does not
burst to catch up more than `MAX_CATCH_UP` wall seconds. ``sim.real_time_factor`` is writable at
run time; every other key is read-only.

    sim_node --robot sim_panda --set sim.real_time_factor=2
    ros2 run vla_ros sim_node --ros-args -p sim.task:=push -p use_sim_time:=true
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import threading
import time
from typing import Any, Sequence

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from vla_ros.core.config import ConfigError, VlaConfig
from vla_ros.ros import node_main
from vla_ros.ros.conversions import header, pose_msg, rgb_to_image_msg, time_msg
from vla_ros.ros.launch_plan import SIM_NODE_KEYS, SIM_NODE_NAME, SIM_NODE_WRITABLE
from vla_ros.ros.params import RuntimeParameters, declare_config, set_result

CLOCK_START = 1.0  # [s] sim time of the first tick's /clock (ROS reads a time of 0 as unset)
TWIST_TIMEOUT = 0.1  # [s sim] a twist older than this is replaced by zero (the executor stopped sending)
MAX_CATCH_UP = 0.25  # [s wall] the pacing re-anchors when the sim is further behind than this
START_TIMEOUT = 60.0  # [s] longest the world may take to build (MuJoCo compile + GL context)
STOP_TIMEOUT = 3.0  # [s] longest the sim thread may take to finish its tick at shutdown
RESET_TIMEOUT = 10.0  # [s] longest a ~/reset waits for the sim thread
RTF_WINDOW = 2.0  # [s wall] window of the achieved real-time factor in the task state


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


class SimNode(Node):
    """The simulated arm as a ROS node (module docstring). `world` exists once the node is built."""

    def __init__(self, base: VlaConfig | None = None, *, node_name: str = SIM_NODE_NAME, **node_kwargs: Any):
        super().__init__(node_name, **node_kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cfg = declare_config(self, base, SIM_NODE_KEYS, writable=SIM_NODE_WRITABLE)
        self._check_config()
        self._runtime = RuntimeParameters(SIM_NODE_WRITABLE)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.shutdown_problem = ""
        self.world = None
        self.episode = 0
        self.ticks = 0
        self.frames = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._commands: collections.deque = collections.deque(maxlen=256)
        self._reset_requests: collections.deque = collections.deque()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._sim_time = CLOCK_START
        self._instruction = ""
        self._last_twist = -math.inf  # sim time of the last twist received (-inf: none, or already zeroed)
        self._rtf_samples: collections.deque = collections.deque()
        r, ex, sim = self.cfg.robot, self.cfg.executor, self.cfg.sim
        self._g_closed, self._g_span = r.gripper_closed, r.gripper_open - r.gripper_closed

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._clock_pub = self.create_publisher(Clock, "/clock", reliable)
        self._joint_pub = (self.create_publisher(JointState, r.joint_state_topic, reliable)
                           if r.joint_state_topic else None)
        self._pose_pub = self.create_publisher(PoseStamped, r.ee_pose_topic, reliable) if r.ee_pose_topic else None
        self._cam_pubs = {name: self.create_publisher(Image, topic,
                                                      QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
                          for name, topic in zip(r.camera_names, r.camera_topics)}
        self._instr_pub = self.create_publisher(String, r.instruction_topic, latched) if r.instruction_topic else None
        self._state_pub = (self.create_publisher(String, sim.task_state_topic, reliable)
                           if sim.task_state_topic else None)
        cmd_qos = qos_profile_sensor_data
        self.create_subscription(PoseStamped, ex.pose_topic, self._on_pose, cmd_qos)
        self.create_subscription(TwistStamped, ex.twist_topic, self._on_twist, cmd_qos)
        self.create_subscription(Float64, ex.gripper_topic, self._on_gripper, cmd_qos)
        self.create_subscription(JointState, ex.gripper_joint_state_topic, self._on_gripper_joint, cmd_qos)
        self.create_service(Trigger, "~/reset", self._on_reset)

        self._thread = threading.Thread(target=self._run, name="sim_thread", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            self._stop.set()
            raise RuntimeError(f"sim_node: the scene was not built within {START_TIMEOUT:g} s")
        if self._start_error is not None:
            self._thread.join(STOP_TIMEOUT)
            super().destroy_node()
            err = self._start_error
            if isinstance(err, (ValueError, KeyError, ConfigError)):
                raise ConfigError(str(err)) from err
            # MuJoCo's import, the scene or the first render failed: almost always the GL backend.
            raise ConfigError(
                f"the simulation could not start ({type(err).__name__}: {err}); offscreen rendering needs "
                f"MUJOCO_GL=egl (now {os.environ.get('MUJOCO_GL', 'unset')!r}) and Mesa's EGL (make setup installs it)"
            ) from err
        self.get_logger().info(
            f"sim_node: task {sim.task} seed {sim.seed}, {len(self._cam_pubs)} camera(s) {sim.image_size}px at "
            f"{sim.camera_rate:g} Hz, {sim.clock_rate:g} ticks/s, real-time factor {sim.real_time_factor:g}; "
            f"commands from {ex.pose_topic}, {ex.twist_topic}, {ex.gripper_topic}; instruction: {self.instruction!r}")

    # ------------------------------------------------------------------ configuration
    def _check_config(self) -> None:
        r, ex, sim = self.cfg.robot, self.cfg.executor, self.cfg.sim
        if len(r.camera_topics) != len(r.camera_names):
            raise ConfigError(f"robot.camera_topics: expected one topic per camera of robot.camera_names "
                              f"({len(r.camera_names)}), got {len(r.camera_topics)}")
        if any(t.endswith("/compressed") for t in r.camera_topics):
            raise ConfigError("robot.camera_topics: sim_node publishes raw sensor_msgs/Image; a topic ending in "
                              "/compressed is not supported")
        if 1.0 / sim.clock_rate < sim.physics_dt - 1e-12:
            raise ConfigError(f"sim.clock_rate: one tick (1/{sim.clock_rate:g} s) must last at least one physics step "
                              f"(sim.physics_dt = {sim.physics_dt:g} s)")
        if sim.camera_rate > sim.clock_rate:
            raise ConfigError(f"sim.camera_rate: at most sim.clock_rate ({sim.clock_rate:g}), got {sim.camera_rate:g}")
        if r.joint_state_topic and ex.gripper_joint_state_topic == r.joint_state_topic:
            raise ConfigError(f"executor.gripper_joint_state_topic: must differ from robot.joint_state_topic "
                              f"({r.joint_state_topic!r}): sim_node would read its own joint states as commands")
        if abs(r.gripper_open - r.gripper_closed) < 1e-12:
            raise ConfigError("robot.gripper_open: must differ from robot.gripper_closed (the command cannot be "
                              "normalised)")

    def _build_world(self):
        from vla_ros.sim.world import CAMERAS, SimSpec, SimWorld  # mujoco: imported by the node, not by the launch plan

        r, sim = self.cfg.robot, self.cfg.sim
        unknown = [c for c in r.camera_names if c not in CAMERAS]
        if unknown:
            raise ConfigError(f"robot.camera_names: {', '.join(unknown)} not camera(s) of the simulated scene "
                              f"(it has {', '.join(CAMERAS)})")
        spec = SimSpec(task=sim.task, seed=sim.seed, image_size=sim.image_size, cameras=tuple(r.camera_names),
                       physics_dt=sim.physics_dt, render=bool(r.camera_names))
        world = SimWorld(spec)
        try:
            names = tuple(world.joint_names)
            missing = [j for j in (*r.joint_names, *([r.gripper_joint] if r.gripper_joint else ())) if j not in names]
            if missing:
                key = "robot.gripper_joint" if missing == [r.gripper_joint] else "robot.joint_names"
                raise ConfigError(f"{key}: {', '.join(missing)} not joint(s) of the simulated arm "
                                  f"(it has {', '.join(names)}); use the sim_panda profile")
        except BaseException:
            world.close()
            raise
        return world

    def _on_set_parameters(self, params: list) -> Any:
        try:
            change = self._runtime.check(self.cfg, params)
        except ConfigError as exc:
            return set_result(str(exc))
        if change.changed:
            with self._lock:
                self.cfg = change.config
                self._rtf_samples.clear()
            for key, (old, new) in change.changed.items():
                self.get_logger().info(f"{key}: {old} -> {new}")
        return set_result()

    # ------------------------------------------------------------------ commands in (executor thread)
    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        if reason not in self._warned:
            self._warned.add(reason)
            self.get_logger().warning(f"command dropped ({reason}); further drops of this kind are only counted")

    def _frame_ok(self, frame: str, topic: str) -> bool:
        if frame and frame != self.cfg.robot.base_frame:
            self._drop(f"{topic}: frame {frame!r}, expected {self.cfg.robot.base_frame!r}")
            return False
        return True

    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        pos, quat = np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])
        topic = self.cfg.executor.pose_topic
        if not self._frame_ok(msg.header.frame_id, topic):
            return
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            self._drop(f"{topic}: non-finite pose")
            return
        norm = float(np.linalg.norm(quat))
        if norm < 1e-6:
            self._drop(f"{topic}: zero quaternion")
            return
        with self._lock:
            self._commands.append(("pose", pos, quat / norm))

    def _on_twist(self, msg: TwistStamped) -> None:
        lin, ang = msg.twist.linear, msg.twist.angular
        v, w = np.array([lin.x, lin.y, lin.z]), np.array([ang.x, ang.y, ang.z])
        topic = self.cfg.executor.twist_topic
        if not self._frame_ok(msg.header.frame_id, topic):
            return
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(w))):
            self._drop(f"{topic}: non-finite twist")
            return
        with self._lock:
            self._commands.append(("twist", v, w))

    def _gripper(self, value: float, topic: str) -> None:
        if not math.isfinite(value):
            self._drop(f"{topic}: non-finite gripper")
            return
        normalised = min(1.0, max(0.0, (value - self._g_closed) / self._g_span))
        with self._lock:
            self._commands.append(("gripper", normalised))

    def _on_gripper(self, msg: Float64) -> None:
        self._gripper(float(msg.data), self.cfg.executor.gripper_topic)

    def _on_gripper_joint(self, msg: JointState) -> None:
        topic = self.cfg.executor.gripper_joint_state_topic
        name = self.cfg.robot.gripper_joint
        if name in msg.name and len(msg.position) == len(msg.name):
            self._gripper(float(msg.position[list(msg.name).index(name)]), topic)
        elif len(msg.name) == 0 and len(msg.position) == 1:
            self._gripper(float(msg.position[0]), topic)
        else:
            self._drop(f"{topic}: no position for gripper joint {name!r}")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        done = threading.Event()
        result: dict[str, str] = {}
        with self._lock:
            self._reset_requests.append((done, result))
        if not done.wait(RESET_TIMEOUT):
            response.success, response.message = False, f"the sim thread did not reset within {RESET_TIMEOUT:g} s"
        else:
            response.success, response.message = "error" not in result, result.get("error") or result.get("message", "")
        return response

    # ------------------------------------------------------------------ the sim thread
    @property
    def sim_time(self) -> float:
        """Sim time of the last published tick (ROS seconds, starting at `CLOCK_START`)."""
        return self._sim_time

    @property
    def instruction(self) -> str:
        return self._instruction

    def _run(self) -> None:
        try:
            self.world = self._build_world()
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor, which raises it
            self._start_error = exc
            self._ready.set()
            return
        try:
            self._instruction = str(self.world.instruction())
            self._publish_tick(camera=True)  # renders every camera: a GL problem is a start-up error, said once
            self._publish_instruction()
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor, which raises it
            self._start_error = exc
            self._close_world()
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - the node must not look alive with a dead simulation
            if not self._stop.is_set() and self.context.ok():  # (a publish fails once Ctrl-C shut the context down)
                import traceback

                self.shutdown_problem = f"the simulation stopped: {type(exc).__name__}: {exc}"
                sys.stderr.write(f"sim_node: {self.shutdown_problem}\n{traceback.format_exc()}")
                sys.stderr.flush()
                try:
                    self.context.try_shutdown()
                except Exception:  # noqa: BLE001 - already shutting down
                    pass
        finally:
            self._close_world()  # here: the GL context is current in this thread only

    def _close_world(self) -> None:
        try:
            self.world.close()
        except Exception as exc:  # noqa: BLE001 - reported through the exit code
            self.shutdown_problem = self.shutdown_problem or f"closing the world failed: {exc}"

    def _loop(self) -> None:
        wall_next = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            sim = self.cfg.sim
            dt = 1.0 / sim.clock_rate
            rtf = sim.real_time_factor
            if rtf > 0:
                wall_next += dt / rtf
                now = time.monotonic()
                if wall_next > now:
                    if self._stop.wait(wall_next - now):
                        return
                elif now - wall_next > MAX_CATCH_UP:
                    wall_next = now  # far behind (rendering): run on, do not burst
            self._apply_commands()
            self.world.step(dt)
            tick += 1
            self.ticks = tick
            self._sim_time = CLOCK_START + tick * dt  # (sim.clock_rate is read-only: dt never changes)
            # Frame n (counting the one at start as 0) is due at tick n * clock_rate / camera_rate.
            self._publish_tick(camera=math.floor(tick * sim.camera_rate / sim.clock_rate + 1e-9) >= self.frames)
            self._rtf_sample()

    def _apply_commands(self) -> None:
        with self._lock:
            commands = list(self._commands)
            self._commands.clear()
            resets = list(self._reset_requests)
            self._reset_requests.clear()
        for done, result in resets:
            try:
                self.episode += 1
                seed = self.cfg.sim.seed + self.episode
                self.world.reset(seed=seed)
                self._instruction = str(self.world.instruction())
                self._publish_instruction()
                self._last_twist = -math.inf
                commands = []  # commands meant for the old episode
                result["message"] = f"episode {self.episode}, seed {seed}: {self._instruction}"
                self.get_logger().info(f"reset: {result['message']}")
            except Exception as exc:  # noqa: BLE001 - answered to the caller
                result["error"] = f"reset failed: {type(exc).__name__}: {exc}"
            finally:
                done.set()
        for cmd in commands:
            kind = cmd[0]
            if kind == "pose":
                self.world.command_pose(cmd[1], cmd[2])
            elif kind == "twist":
                self.world.command_twist(cmd[1], cmd[2])
                self._last_twist = self._sim_time
            else:
                self.world.command_gripper(cmd[1])
        if self._sim_time - self._last_twist > TWIST_TIMEOUT and math.isfinite(self._last_twist):
            self.world.command_twist(np.zeros(3), np.zeros(3))  # the executor went quiet: stop, do not drift
            self._last_twist = -math.inf

    def _rtf_sample(self) -> None:
        now = time.monotonic()
        self._rtf_samples.append((now, self._sim_time))
        while len(self._rtf_samples) > 2 and now - self._rtf_samples[0][0] > RTF_WINDOW:
            self._rtf_samples.popleft()

    def achieved_rtf(self) -> float:
        """Sim seconds per wall second over the last `RTF_WINDOW` s (nan before two ticks)."""
        if len(self._rtf_samples) < 2:
            return math.nan
        (w0, s0), (w1, s1) = self._rtf_samples[0], self._rtf_samples[-1]
        return (s1 - s0) / (w1 - w0) if w1 > w0 else math.inf

    def _publish_instruction(self) -> None:
        if self._instr_pub is not None:
            self._instr_pub.publish(String(data=self._instruction))

    def _publish_tick(self, camera: bool) -> None:
        t = self._sim_time
        self._clock_pub.publish(Clock(clock=time_msg(t)))
        r = self.cfg.robot
        if self._joint_pub is not None:
            names, pos, vel = self.world.joint_state()
            msg = JointState(header=header(t), name=list(names), position=[float(v) for v in pos],
                             velocity=[float(v) for v in vel])
            self._joint_pub.publish(msg)
        if self._pose_pub is not None:
            xyz, quat = self.world.ee_pose()
            self._pose_pub.publish(PoseStamped(header=header(t, r.base_frame),
                                               pose=pose_msg(np.asarray(xyz), np.asarray(quat))))
        if not camera:
            return
        self.frames += 1
        for name, pub in self._cam_pubs.items():
            pub.publish(rgb_to_image_msg(np.ascontiguousarray(self.world.render(name)), t, "camera_" + name))
        if self._state_pub is not None:
            self._state_pub.publish(String(data=json.dumps(self.task_state(), default=_jsonable)))

    def task_state(self) -> dict[str, Any]:
        """What the task-state topic carries: the world's task state + where the simulation is."""
        sim = self.cfg.sim
        state = dict(self.world.task_state())
        rtf = self.achieved_rtf()
        state.update(task=sim.task, seed=sim.seed + self.episode, episode=self.episode, sim_time=self._sim_time,
                     real_time_factor=None if not math.isfinite(rtf) else round(rtf, 3),
                     commands_dropped=sum(self.dropped.values()))
        return state

    # ------------------------------------------------------------------ shutdown
    def destroy_node(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                self.shutdown_problem = self.shutdown_problem or (
                    f"the sim thread did not finish its tick within {STOP_TIMEOUT:g} s")
        super().destroy_node()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ros2 run vla_ros sim_node`` (also accepts --config/--robot/--set)."""
    args, base = node_main.parse_config("sim_node", "A simulated arm (MuJoCo) behind the robot's topics, on sim time.",
                                        argv)
    if base is None:
        return 2
    rclpy.init(args=args)
    node = node_main.make_node("sim_node", lambda: SimNode(base))
    if node is None:
        return 2
    return node_main.spin(node, SingleThreadedExecutor())


if __name__ == "__main__":
    sys.exit(main())
