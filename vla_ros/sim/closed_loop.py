"""One closed-loop episode in one process: the simulator, the policy and the executor on a simulated clock.

The wiring is the replay's (`vla_ros.replay.lane.Lane`: an `ObservationBuilder`, an
`InferenceWorker` called synchronously, the trigger, a `ChunkExecutor` with its safety limits),
fed with the messages a robot would publish, built by the same `MessageFactory` that writes bags;
only the source differs: the simulator instead of a bag, and the executor's commands move the arm.

Per control tick (``executor.control_rate``), in the replay's order of simultaneous events:

1. chunks whose (simulated) inference has finished arrive at the executor, at their arrival time;
2. the joint states and the tool pose of this instant go to the builder (``/joint_states``,
   ``/ee_pose``), and the executor ticks with the measured pose as feedback; its safe command
   becomes the controller's target (pose or twist per ``executor.output_mode``) and the gripper
   command;
3. ExecutorStatus snapshots (queue trigger, RTC) at ``executor.status_rate_hz``;
4. when the trigger is due, the cameras are rendered (only then: an observation is taken) and
   the inference runs; with ``replay.latency`` ``measured`` its measured wall time passes in sim
   time before the chunk arrives (``fixed``: ``replay.fixed_latency``), and further triggers meanwhile
   are skipped, as the node's worker skips them;
5. the world steps to the next tick.

Nothing sleeps. With latency ``none`` (or ``fixed``) an episode is a pure function of the seed and
the policy. With ``record`` the episode is written as a bag with the topics and types of a real
recording (cameras, joint states, EE pose, instruction, the executor's commands on its command
topics), which `vla-ros eval` and the training code read.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_ros.core.config import VlaConfig
from vla_ros.core.observation_builder import ObservationSpec
from vla_ros.policy.base import Policy
from vla_ros.replay import metrics as M
from vla_ros.replay.bag_io import BagWriter, MessageFactory
from vla_ros.replay.lane import Lane
from vla_ros.replay.session import SimClock
from vla_ros.replay.ground_truth import abs_topic
from vla_ros.sim.world import SimSpec, SimWorld

EPOCH = 100.0  # ROS time of sim time 0 (a zero header stamp reads as "unset")
TASK_SECONDS = {"reach": 10.0, "push": 20.0, "pick": 15.0}
GIF_CAMERA_NOTE = "primary | wrist; yellow ring = the executor's commanded tool position"


def episode_seconds(cfg: VlaConfig, task: str) -> float:
    return float(cfg.sim.episode_seconds) or TASK_SECONDS[task]


def world_for(cfg: VlaConfig, task: str, seed: int = 0, render: bool = True) -> SimWorld:
    """A world built from the ``sim`` section (image size, physics step)."""
    return SimWorld(SimSpec(task=task, seed=seed, image_size=int(cfg.sim.image_size),
                            physics_dt=float(cfg.sim.physics_dt),
                            render=render))


@dataclass
class EpisodeTiming:
    """Wall seconds per part of an episode."""

    render: float = 0.0
    physics: float = 0.0
    policy: float = 0.0
    executor: float = 0.0
    inputs: float = 0.0  # building messages + the observation builder
    record: float = 0.0
    total: float = 0.0

    def as_dict(self) -> dict[str, float]:
        d = {k: getattr(self, k) for k in ("render", "physics", "policy", "executor", "inputs", "record", "total")}
        d["other"] = max(0.0, self.total - sum(v for k, v in d.items() if k != "total"))
        return d


@dataclass
class Episode:
    """What one closed-loop episode did (arrays at the control ticks, sim seconds from 0)."""

    lane: str
    task: str
    seed: int
    success: bool
    time_to_success: float | None
    duration: float
    final_distance: float
    min_distance: float
    t: np.ndarray
    tool: np.ndarray  # [N, 3] measured tool position
    command: np.ndarray  # [N, 3] commanded position (NaN before the first command)
    gripper: np.ndarray  # [N] measured opening
    distance: np.ndarray  # [N] the task's distance (m)
    commands: dict[str, np.ndarray]  # the executor's command log (Lane.arrays)
    chunks: int
    latencies: list[float]
    injected: list[float]
    timing: EpisodeTiming
    frames: list[np.ndarray] = field(default_factory=list)  # GIF frames (primary | wrist)
    bag: str = ""
    task_state: dict = field(default_factory=dict)
    workspace_excess: float = 0.0  # [m] how far the measured tool ever was outside the safety workspace
    rejected_by_world: int = 0
    inference_errors: int = 0
    chunks_rejected: int = 0  # refused by the executor
    chunks_refused: int = 0  # refused by the policy node's chunk check before they were sent
    chunk_times: list[tuple[float, float, float]] = field(default_factory=list)  # (triggered, arrival, wall latency)

    def metrics(self) -> dict[str, Any]:
        arr = self.commands
        path = float(np.linalg.norm(np.diff(self.tool, axis=0), axis=1).sum()) if len(self.tool) > 1 else 0.0
        cmd_ok = np.isfinite(self.command).all(axis=1)
        return {
            "lane": self.lane, "task": self.task, "seed": self.seed,
            "success": self.success, "time_to_success_s": self.time_to_success, "duration_s": self.duration,
            "final_distance_m": self.final_distance, "min_distance_m": self.min_distance, "path_length_m": path,
            "tool_jerk_mps3": M.summary(M.jerk(self.t, self.tool)),
            "command_jerk_mps3": M.summary(M.jerk(self.t[cmd_ok], self.command[cmd_ok])),
            "ticks": int(arr["t"].size) if "t" in arr else 0,
            "held_ticks": int(np.asarray(arr.get("hold", np.zeros(0))).sum()),
            "clamped_ticks": int(np.asarray(arr.get("clamped", np.zeros(0))).sum()),
            "chunks": self.chunks,
            "inference_s": M.latency_summary(self.latencies),
            "injected_latency_s": M.latency_summary(self.injected),
            "workspace_excess_m": self.workspace_excess,
            "commands_refused_by_sim": self.rejected_by_world,
            "inference_errors": self.inference_errors, "chunks_rejected": self.chunks_rejected,
            "chunks_refused_by_chunk_check": self.chunks_refused,
            "timing_s": self.timing.as_dict(),
            "speed_x": self.duration / self.timing.total if self.timing.total > 0 else float("nan"),
            "bag": self.bag,
        }


def _workspace_excess(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    return float(np.max(np.concatenate([lo - p, p - hi, [0.0]])))


def project(world: SimWorld, camera: str, point: np.ndarray, size: int) -> tuple[float, float] | None:
    """Pixel (u right, v down) of a base-frame point in `camera`'s render, None if behind it."""
    d = world.data
    cid = world.model.camera(camera).id
    pc = d.cam_xmat[cid].reshape(3, 3).T @ (np.asarray(point, np.float64) - d.cam_xpos[cid])
    if pc[2] >= -1e-6:
        return None
    f = (size / 2) / math.tan(math.radians(float(world.model.cam_fovy[cid])) / 2)
    return size / 2 + f * pc[0] / -pc[2], size / 2 - f * pc[1] / -pc[2]


def gif_frame(world: SimWorld, images: dict[str, np.ndarray], target: np.ndarray | None) -> np.ndarray:
    """primary | wrist side by side, the commanded target drawn into the primary view."""
    import cv2

    size = world.spec.image_size
    prim = images["primary"].copy()
    if target is not None and np.isfinite(target).all():
        px = project(world, "primary", target, size)
        if px is not None:
            cv2.circle(prim, (int(round(px[0])), int(round(px[1]))), max(3, size // 24), (255, 220, 0), 1, cv2.LINE_AA)
    wrist = images.get("wrist")
    return np.concatenate([prim, wrist], axis=1) if wrist is not None else prim


class _Recorder:
    """Writes the episode as a real recording would be (topics and types of the robot profile)."""

    def __init__(self, path: Path, cfg: VlaConfig, instruction: str):
        self.cfg = cfg
        self.w = BagWriter(path, storage="mcap")
        r, ex = cfg.robot, cfg.executor
        self.cams = dict(zip(r.camera_names, r.camera_topics))
        for topic in self.cams.values():
            self.w.add_topic(abs_topic(topic), "sensor_msgs/msg/Image")
        self.joints, self.ee = abs_topic(r.joint_state_topic), abs_topic(r.ee_pose_topic)
        self.w.add_topic(self.joints, "sensor_msgs/msg/JointState")
        self.w.add_topic(self.ee, "geometry_msgs/msg/PoseStamped")
        self.instr = abs_topic(r.instruction_topic)
        self.pose_topic = abs_topic(ex.pose_topic)
        self.w.add_topic(self.pose_topic, "geometry_msgs/msg/PoseStamped")
        self.twist_topic = abs_topic(ex.twist_topic) if ex.output_mode in ("twist", "both") else ""
        if self.twist_topic:
            self.w.add_topic(self.twist_topic, "geometry_msgs/msg/TwistStamped")
        self.gripper_topic = abs_topic(ex.gripper_topic)
        self.w.add_topic(self.gripper_topic, "std_msgs/msg/Float64")
        self.w.write(self.instr, EPOCH, self.w.msgs.string(instruction), latched=True)

    def write(self, topic: str, t: float, msg: Any) -> None:
        self.w.write(topic, t, msg)

    def command(self, t: float, cmd: Any) -> None:
        m = self.w.msgs
        self.w.write(self.pose_topic, t, m.pose_stamped(t, cmd.frame_id, cmd.position, cmd.orientation))
        if self.twist_topic:
            self.w.write(self.twist_topic, t, m.twist_stamped(t, cmd.frame_id, cmd.linear, cmd.angular))
        if cmd.gripper is not None:
            r = self.cfg.robot
            self.w.write(self.gripper_topic, t,
                         m.float64(r.gripper_closed + float(cmd.gripper) * (r.gripper_open - r.gripper_closed)))

    def close(self) -> None:
        self.w.close()


def _observation_spec(cfg: VlaConfig, policy: Policy, cameras: tuple[str, ...] | None) -> ObservationSpec:
    """What the observations carry: the policy's cameras, or `cameras` when given, or the profile's first
    camera for a policy that reads none (the pivot of the synchronisation)."""
    spec = ObservationSpec.from_config(cfg.robot, policy.metadata)
    if cameras is not None:
        return dataclasses.replace(spec, cameras=tuple(c for c in ObservationSpec.from_config(cfg.robot).cameras
                                                       if c.name in cameras))
    if not policy.metadata.cameras:
        return dataclasses.replace(spec, cameras=spec.cameras[:1])
    return spec


class EpisodeRun:
    """One closed-loop episode in progress: the world, the replay `Lane` on a `SimClock`, the arrays so far.

    `tick(k)` runs control tick `k` in the order of the module docstring (arrivals, state messages and
    the control tick, status snapshots, cameras and the inference, the task state), `step()` moves the
    world to the next tick, `finish()` ends the lane and returns the `Episode`. `run_episode` drives it.
    """

    def __init__(self, world: SimWorld, cfg: VlaConfig, policy: Policy, *, lane: str, seed: int,
                 cameras: tuple[str, ...] | None, record: str | Path | None, gif: bool):
        self.t_wall0 = time.perf_counter()
        self.timing = EpisodeTiming()
        world.reset(seed)
        if hasattr(policy, "bind"):
            policy.bind(world)
        robot = cfg.robot
        self.world, self.cfg, self.name, self.seed, self.gif = world, cfg, lane, seed, gif
        self.record = record
        spec = _observation_spec(cfg, policy, cameras)
        self.clock = SimClock(EPOCH)
        self.lane = Lane(lane, policy, spec, cfg, self.clock)
        self.lane.on_message(abs_topic(robot.instruction_topic), _String(world.instruction()), EPOCH)
        self.msgs = MessageFactory()
        self.joints_topic, self.ee_topic = abs_topic(robot.joint_state_topic), abs_topic(robot.ee_pose_topic)
        self.cam_topics = {c.name: c.topic for c in spec.cameras}
        self.all_cams = dict(zip(robot.camera_names, robot.camera_topics))
        self.render_names = list(dict.fromkeys([*self.cam_topics, *(self.all_cams if record else ()),
                                                *(("primary", "wrist") if gif else ())]))
        self.rec = _Recorder(Path(record), cfg, world.instruction()) if record else None
        self.lo = np.asarray(cfg.safety.workspace_min, np.float64)
        self.hi = np.asarray(cfg.safety.workspace_max, np.float64)
        ex = cfg.executor
        self.ctrl_dt = ctrl_dt = 1.0 / ex.control_rate
        self.trig_every = max(1, int(round(1.0 / (cfg.policy.rate_hz * ctrl_dt))))
        self.status_every = max(1, int(round(1.0 / (ex.status_rate_hz * ctrl_dt))))
        self.cam_every = max(1, int(round(1.0 / (cfg.sim.camera_rate * ctrl_dt)))) if self.rec else 0
        self.ts: list[float] = []
        self.tools: list[np.ndarray] = []
        self.cmds: list[np.ndarray] = []
        self.grips: list[float] = []
        self.frames: list[np.ndarray] = []
        self.distances: list[float] = []
        self.injected: list[float] = []
        self.success_at: float | None = None
        self.last_cmd = np.full(3, np.nan)
        self.excess = 0.0
        self.state: dict = {}

    def tick(self, k: int, stop_on_success: bool, after_success: float) -> bool:
        """Control tick `k` (module docstring, steps 1-4) and the task state; True when the episode is over
        (`after_success` seconds after the first success, with `stop_on_success`)."""
        t_sim = k * self.ctrl_dt
        now = EPOCH + t_sim
        self.arrivals(now)
        self.control(t_sim, now)
        due = self.statuses(k, now)
        self.observe(k, now, due)
        if due:
            chunk_rec = self.lane.infer(now, self.cfg.replay.latency, self.cfg.replay.fixed_latency)
            if chunk_rec is not None:
                self.injected.append(chunk_rec.injected_latency)
        return self.task_state(t_sim, stop_on_success, after_success)

    def arrivals(self, now: float) -> None:
        """1. The chunks whose inference has finished by `now` arrive, each at its own time."""
        ln, clock = self.lane, self.clock
        while ln.in_flight is not None and ln.in_flight.arrival <= now + 1e-12:
            clock.now = max(clock.now, ln.in_flight.arrival)
            ln.deliver(clock.now)
        clock.now = now

    def control(self, t_sim: float, now: float) -> None:
        """2. The state messages, then the control tick on the measured pose; its command moves the world."""
        world, ln, msgs = self.world, self.lane, self.msgs
        t0 = time.perf_counter()
        names, qpos, _ = world.joint_state()
        pos, quat = world.ee_pose()
        js = msgs.joint_state(now, names, qpos)
        ps = msgs.pose_stamped(now, self.cfg.robot.base_frame, pos, quat)
        ln.on_message(self.joints_topic, js, now)
        ln.on_message(self.ee_topic, ps, now)
        self.timing.inputs += time.perf_counter() - t0
        cmd = ln.tick(now)  # on the pose just routed (the executor node takes it as its feedback)
        if cmd is not None:
            if self.cfg.executor.output_mode == "twist":
                world.command_twist(cmd.linear, cmd.angular)
            else:
                world.command_pose(cmd.position, cmd.orientation)
            if cmd.gripper is not None:
                world.command_gripper(cmd.gripper)
            self.last_cmd = np.asarray(cmd.position, np.float64)
        if self.rec is not None:
            t0 = time.perf_counter()
            self.rec.write(self.joints_topic, now, js)
            self.rec.write(self.ee_topic, now, ps)
            if cmd is not None:
                self.rec.command(now, cmd)
            self.timing.record += time.perf_counter() - t0
        self.ts.append(t_sim)
        self.tools.append(pos)
        self.cmds.append(self.last_cmd)
        self.grips.append(world.gripper_opening())
        self.excess = max(self.excess, _workspace_excess(pos, self.lo, self.hi))

    def statuses(self, k: int, now: float) -> bool:
        """3. The ExecutorStatus snapshot when one is due; whether the trigger (queue or rate) is due."""
        due = False
        if self.lane.needs_status and k % self.status_every == 0:
            due = self.lane.snapshot(now)
        if self.lane.trigger is None:
            due = k % self.trig_every == 0
        return due

    def observe(self, k: int, now: float, due: bool) -> None:
        """4. The cameras, rendered only when an observation is taken (a due trigger, no inference in flight:
        else it is skipped as busy) or recorded; the GIF frame with the commanded target."""
        obs_due = due and self.lane.in_flight is None
        rec_due = self.rec is not None and k % self.cam_every == 0
        if not (obs_due or rec_due):
            return
        t0 = time.perf_counter()
        images = {c: self.world.render(c) for c in (self.render_names if rec_due or self.gif else self.cam_topics)}
        self.timing.render += time.perf_counter() - t0
        t0 = time.perf_counter()
        for c, img in images.items():
            msg = self.msgs.image(now, f"{c}_camera", img)
            if obs_due and c in self.cam_topics:
                self.lane.on_message(self.cam_topics[c], msg, now)
            if rec_due and c in self.all_cams:
                self.rec.write(abs_topic(self.all_cams[c]), now, msg)
        self.timing.inputs += time.perf_counter() - t0
        if self.gif and obs_due:
            self.frames.append(gif_frame(self.world, images, self.last_cmd))

    def task_state(self, t_sim: float, stop_on_success: bool, after_success: float) -> bool:
        """The task's distance and success at `t_sim`; True when the episode ends here after a success."""
        self.state = state = self.world.task_state()
        self.distances.append(state["distance"])
        if state["success"] and self.success_at is None:
            self.success_at = t_sim
        return (self.success_at is not None and stop_on_success
                and t_sim - self.success_at >= after_success - 1e-9)

    def step(self) -> None:
        """5. The world steps to the next tick."""
        t0 = time.perf_counter()
        self.world.step(self.ctrl_dt)
        self.timing.physics += time.perf_counter() - t0

    def finish(self) -> Episode:
        """The lane's end (its last status), the bag closed; the episode."""
        ln, timing, record = self.lane, self.timing, self.record
        ln.finish(self.clock.now)
        if self.rec is not None:
            t0 = time.perf_counter()
            self.rec.close()
            timing.record += time.perf_counter() - t0
        timing.policy = ln.timing.policy
        timing.executor = ln.timing.executor
        timing.total = time.perf_counter() - self.t_wall0
        chunks, ts, distances, success_at = list(ln.records), self.ts, self.distances, self.success_at
        return Episode(
            lane=self.name, task=self.world.task.name, seed=self.seed, success=success_at is not None,
            time_to_success=success_at, duration=ts[-1] if ts else 0.0,
            final_distance=float(distances[-1]) if distances else float("nan"),
            min_distance=float(np.min(distances)) if distances else float("nan"),
            t=np.asarray(ts), tool=np.asarray(self.tools), command=np.asarray(self.cmds),
            gripper=np.asarray(self.grips), distance=np.asarray(distances), commands=ln.arrays(), chunks=len(chunks),
            latencies=[x.wall_latency for x in chunks], injected=self.injected, timing=timing, frames=self.frames,
            bag=str(record) if record else "", task_state=self.state, workspace_excess=self.excess,
            rejected_by_world=self.world.rejected_commands, inference_errors=int(ln.worker.stats.errors),
            chunks_rejected=int(ln.status.chunks_rejected) if ln.status is not None else 0,
            chunks_refused=len(ln.refused),
            chunk_times=[(x.triggered_at - EPOCH, x.arrival - EPOCH, x.wall_latency) for x in chunks],
        )


def run_episode(world: SimWorld, cfg: VlaConfig, policy: Policy, *, lane: str = "policy", seed: int = 0,
                cameras: tuple[str, ...] | None = None, record: str | Path | None = None, gif: bool = False,
                max_seconds: float | None = None, stop_on_success: bool = True,
                after_success: float = 0.0) -> Episode:
    """Reset `world` to `seed` and run `policy` on it until success or the episode's length.

    `cameras`: the camera names the observations carry (default: the policy's, or the profile's
    first for a policy that reads none, as the pivot of the synchronisation). `record`: write a bag
    there (all profile cameras, rendered at the triggers and at ``sim.camera_rate``). The episode
    ends `after_success` seconds after the first success (with `stop_on_success`; a demonstration
    that also shows staying at the goal), else after the task's length.
    """
    run = EpisodeRun(world, cfg, policy, lane=lane, seed=seed, cameras=cameras, record=record, gif=gif)
    seconds = episode_seconds(cfg, world.task.name) if max_seconds is None else float(max_seconds)
    n_ticks = int(round(seconds / run.ctrl_dt))
    for k in range(n_ticks + 1):
        if run.tick(k, stop_on_success, after_success) or k == n_ticks:
            break
        run.step()
    return run.finish()


@dataclass(frozen=True)
class _String:
    """The instruction as a std_msgs/String-shaped value (the builder reads ``.data``)."""

    data: str
