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
    chunks_rejected: int = 0
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
    t_wall0 = time.perf_counter()
    timing = EpisodeTiming()
    world.reset(seed)
    robot, p, ex, r = cfg.robot, cfg.policy, cfg.executor, cfg.replay
    if hasattr(policy, "bind"):
        policy.bind(world)
    spec = ObservationSpec.from_config(robot, policy.metadata)
    if cameras is not None:
        spec = dataclasses.replace(spec,
                                   cameras=tuple(c for c in ObservationSpec.from_config(robot).cameras
                                                 if c.name in cameras))
    elif not policy.metadata.cameras:
        spec = dataclasses.replace(spec, cameras=spec.cameras[:1])
    clock_now = [EPOCH]
    ln = Lane(lane, policy, spec, cfg, lambda: clock_now[0])
    ln.on_message(abs_topic(robot.instruction_topic), _String(world.instruction()), EPOCH)
    msgs = MessageFactory()
    frame = robot.base_frame
    joints_topic, ee_topic = abs_topic(robot.joint_state_topic), abs_topic(robot.ee_pose_topic)
    cam_topics = {c.name: c.topic for c in spec.cameras}
    all_cams = dict(zip(robot.camera_names, robot.camera_topics))
    render_names = list(dict.fromkeys([*cam_topics, *(all_cams if record else ()), *(("primary", "wrist") if gif
                                                                                     else ())]))
    rec = _Recorder(Path(record), cfg, world.instruction()) if record else None
    lo, hi = np.asarray(cfg.safety.workspace_min, np.float64), np.asarray(cfg.safety.workspace_max, np.float64)

    ctrl_dt = 1.0 / ex.control_rate
    trig_every = max(1, int(round(1.0 / (p.rate_hz * ctrl_dt))))
    status_every = max(1, int(round(1.0 / (ex.status_rate_hz * ctrl_dt))))
    cam_every = max(1, int(round(1.0 / (cfg.sim.camera_rate * ctrl_dt)))) if rec else 0
    seconds = episode_seconds(cfg, world.task.name) if max_seconds is None else float(max_seconds)
    n_ticks = int(round(seconds / ctrl_dt))
    ts, tools, cmds, grips, frames = [], [], [], [], []
    injected: list[float] = []
    success_at = None
    last_cmd = np.full(3, np.nan)
    excess = 0.0
    distances = []
    state: dict = {}
    k = 0
    for k in range(n_ticks + 1):
        t_sim = k * ctrl_dt
        now = EPOCH + t_sim
        # 1. arrivals (at their own time, before this tick)
        while ln.in_flight is not None and ln.in_flight.arrival <= now + 1e-12:
            clock_now[0] = max(clock_now[0], ln.in_flight.arrival)
            ln.deliver(clock_now[0])
        clock_now[0] = now
        # 2. state messages, then the control tick on the measured pose
        t0 = time.perf_counter()
        names, qpos, _ = world.joint_state()
        pos, quat = world.ee_pose()
        js = msgs.joint_state(now, names, qpos)
        ps = msgs.pose_stamped(now, frame, pos, quat)
        ln.on_message(joints_topic, js, now)
        ln.on_message(ee_topic, ps, now)
        timing.inputs += time.perf_counter() - t0
        cmd = ln.tick(now)  # on the pose just routed (the executor node takes it as its feedback)
        if cmd is not None:
            if ex.output_mode == "twist":
                world.command_twist(cmd.linear, cmd.angular)
            else:
                world.command_pose(cmd.position, cmd.orientation)
            if cmd.gripper is not None:
                world.command_gripper(cmd.gripper)
            last_cmd = np.asarray(cmd.position, np.float64)
        if rec is not None:
            t0 = time.perf_counter()
            rec.write(joints_topic, now, js)
            rec.write(ee_topic, now, ps)
            if cmd is not None:
                rec.command(now, cmd)
            timing.record += time.perf_counter() - t0
        ts.append(t_sim)
        tools.append(pos)
        cmds.append(last_cmd)
        grips.append(world.gripper_opening())
        excess = max(excess, _workspace_excess(pos, lo, hi))
        # 3. status snapshots
        due = False
        if ln.needs_status and k % status_every == 0:
            due = ln.snapshot(now)
        if ln.trigger is None:
            due = k % trig_every == 0
        # 4. cameras (only when an observation is taken or recorded) and the inference
        obs_due = due and ln.in_flight is None  # else the trigger is skipped (busy): nothing is taken
        rec_due = rec is not None and k % cam_every == 0
        if obs_due or rec_due:
            t0 = time.perf_counter()
            images = {c: world.render(c) for c in (render_names if rec_due or gif else cam_topics)}
            timing.render += time.perf_counter() - t0
            t0 = time.perf_counter()
            for c, img in images.items():
                msg = msgs.image(now, f"{c}_camera", img)
                if obs_due and c in cam_topics:
                    ln.on_message(cam_topics[c], msg, now)
                if rec_due and c in all_cams:
                    rec.write(abs_topic(all_cams[c]), now, msg)
            timing.inputs += time.perf_counter() - t0
            if gif and obs_due:
                frames.append(gif_frame(world, images, last_cmd))
        if due:
            chunk_rec = ln.infer(now, r.latency, r.fixed_latency)
            if chunk_rec is not None:
                injected.append(chunk_rec.injected_latency)
        # task state, end of episode
        state = world.task_state()
        distances.append(state["distance"])
        if state["success"] and success_at is None:
            success_at = t_sim
        if success_at is not None and stop_on_success and t_sim - success_at >= after_success - 1e-9:
            break
        if k == n_ticks:
            break
        t0 = time.perf_counter()
        world.step(ctrl_dt)
        timing.physics += time.perf_counter() - t0
    ln.finish(clock_now[0])
    if rec is not None:
        t0 = time.perf_counter()
        rec.close()
        timing.record += time.perf_counter() - t0
    timing.policy = ln.timing.policy
    timing.executor = ln.timing.executor
    timing.total = time.perf_counter() - t_wall0
    chunks = [x for x in ln.records]
    return Episode(
        lane=lane, task=world.task.name, seed=seed, success=success_at is not None, time_to_success=success_at,
        duration=ts[-1] if ts else 0.0, final_distance=float(distances[-1]) if distances else float("nan"),
        min_distance=float(np.min(distances)) if distances else float("nan"),
        t=np.asarray(ts), tool=np.asarray(tools), command=np.asarray(cmds), gripper=np.asarray(grips),
        distance=np.asarray(distances), commands=ln.arrays(), chunks=len(chunks),
        latencies=[x.wall_latency for x in chunks], injected=injected,
        timing=timing, frames=frames, bag=str(record) if record else "", task_state=state, workspace_excess=excess,
        rejected_by_world=world.rejected_commands, inference_errors=int(ln.worker.stats.errors),
        chunks_rejected=int(ln.status.chunks_rejected) if ln.status is not None else 0,
        chunk_times=[(x.triggered_at - EPOCH, x.arrival - EPOCH, x.wall_latency) for x in chunks],
    )


@dataclass(frozen=True)
class _String:
    """The instruction as a std_msgs/String-shaped value (the builder reads ``.data``)."""

    data: str
