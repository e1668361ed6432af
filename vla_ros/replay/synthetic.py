"""A synthetic tabletop scene for the demo, the tests and the benchmark: deterministic, seconds to make.

Each episode has a red block on the table at a random position and a gantry-like arm starting at
a random pose above the table. A scripted expert reaches the block, closes the gripper on it and
lifts it. Everything a real recording of a teleoperated run holds is written to one bag per
episode, on the topics of ``config/robots/sim_tabletop.yaml``:

- ``/camera/primary/image_raw``: a top-down scene camera (the block, the gripper seen from above);
- ``/camera/wrist/image_raw``: a camera on the gripper looking down (the block relative to the
  gripper, rotating with its yaw; the finger tips at the bottom show the opening);
- ``/joint_states`` (sim_x, sim_y, sim_z, sim_yaw, sim_finger) and ``/ee_pose`` (PoseStamped);
- ``/target_pose`` (PoseStamped) and ``/gripper_command`` (Float64, finger position in m): the
  expert's commands, i.e. the ground truth of ``vla-ros eval``; ``/instruction`` (String, latched).

The expert is a function of what the robot observes (Markov), so a policy can learn it from one
observation: while the block is more than 1 cm away it commands a "carrot" ``lookahead`` metres
towards the grasp point (and the yaw towards 0); at the block it closes the gripper; once closed
it carries the block up. The arm follows its commands with a first-order lag ``tau``, so the
commands lead the measured pose - standing still (the `hold` baseline) is genuinely wrong.

    scene = SceneConfig()
    ep = Episode.sample(np.random.default_rng(3), scene)
    data = ep.simulate(scene)                         # arrays at the simulation rate
    write_episode_bag("out/ep3", ep, scene)           # rosbag2 directory (mcap)
    generate_episodes("out/demo/bags", n_train=40, n_test=4, seed=0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from vla_ros.core.rotations import rotvec_to_quat
from vla_ros.replay.bag_io import BagWriter, MessageFactory

FRAME = "base_link"
JOINT_NAMES = ("sim_x", "sim_y", "sim_z", "sim_yaw")
GRIPPER_JOINT = "sim_finger"
GRIPPER_OPEN = 0.04  # finger position (m) when fully open
TOPICS = {
    "primary": "/camera/primary/image_raw",
    "wrist": "/camera/wrist/image_raw",
    "joint_states": "/joint_states",
    "ee_pose": "/ee_pose",
    "instruction": "/instruction",
    "command": "/target_pose",
    "gripper_command": "/gripper_command",
}
INSTRUCTION = "pick up the red block"

# Geometry (m, base frame). The scene camera looks straight down from SCENE_CAM_Z over VIEW.
VIEW_X, VIEW_Y = (0.28, 0.72), (-0.22, 0.22)
SCENE_CAM_Z = 1.0
BLOCK_X, BLOCK_Y = (0.38, 0.62), (-0.13, 0.13)
START_X, START_Y, START_Z = (0.34, 0.66), (-0.17, 0.17), (0.20, 0.28)
START_YAW = (-0.35, 0.35)
BLOCK_HALF = 0.018  # half the block's side
GRASP_Z = 0.04  # EE height when grasping (block centre height + clearance)
LIFT = 0.12  # lift height above the grasp point
WRIST_HALF_FOV = math.radians(40.0)
WRIST_CAM_HEIGHT = 0.10  # the wrist camera sits this far above the finger tips


@dataclass(frozen=True)
class SceneConfig:
    """Rates, image size and expert parameters of the synthetic scene."""

    image_size: int = 64  # square images (px)
    camera_rate: float = 15.0
    state_rate: float = 50.0
    command_rate: float = 50.0
    sim_rate: float = 200.0
    tau: float = 0.2  # [s] the arm's lag behind its command
    lookahead: float = 0.05  # [m] how far ahead of the arm the expert's carrot is
    yaw_lookahead: float = 0.2  # [rad]
    grasp_radius: float = 0.01  # [m] close the gripper when this close to the grasp point
    gripper_tau: float = 0.08  # [s]
    hold_after_lift: float = 0.6  # [s] episode ends this long after the lift is reached
    max_duration: float = 8.0  # [s]
    noise: float = 3.0  # pixel noise (std, grey levels)
    compressed_wrist: bool = False  # wrist camera as CompressedImage (jpeg) on <topic>/compressed
    instruction: str = INSTRUCTION


@dataclass
class EpisodeData:
    """The simulated episode at ``sim_rate``: times (from 0) and the state and commands at each."""

    t: np.ndarray
    ee_pos: np.ndarray  # [N, 3]
    ee_yaw: np.ndarray
    gripper: np.ndarray  # measured opening [0, 1]
    cmd_pos: np.ndarray  # [N, 3]
    cmd_yaw: np.ndarray
    cmd_gripper: np.ndarray
    block_pos: np.ndarray  # [N, 3] block centre (moves with the gripper once grasped)
    phase: np.ndarray  # 0 reach, 1 grasp, 2 lift

    @property
    def duration(self) -> float:
        return float(self.t[-1])

    def index(self, t: float) -> int:
        return int(min(len(self.t) - 1, max(0, round(t / (self.t[1] - self.t[0])))))


def yaw_quat(yaw: float | np.ndarray) -> np.ndarray:
    """Orientation of the gripper: a rotation about z by `yaw` (x, y, z, w)."""
    y = np.asarray(yaw, dtype=np.float64)
    return rotvec_to_quat(np.stack([np.zeros_like(y), np.zeros_like(y), y], axis=-1))


def _carrot(frm: np.ndarray, to: np.ndarray, dist: float) -> np.ndarray:
    d = to - frm
    n = float(np.linalg.norm(d))
    return to.copy() if n <= dist else frm + d * (dist / n)


@dataclass(frozen=True)
class Episode:
    """One scripted pick: where the block is and where the arm starts."""

    block_xy: np.ndarray
    start: np.ndarray  # x, y, z
    start_yaw: float
    seed: int = 0
    brightness: float = 1.0
    tags: dict = field(default_factory=dict)

    @classmethod
    def sample(cls, rng: np.random.Generator, scene: SceneConfig | None = None, seed: int = 0) -> "Episode":
        block = np.array([rng.uniform(*BLOCK_X), rng.uniform(*BLOCK_Y)])
        while True:  # start at least 8 cm away from the block (in x, y)
            start = np.array([rng.uniform(*START_X), rng.uniform(*START_Y), rng.uniform(*START_Z)])
            if np.linalg.norm(start[:2] - block) > 0.08:
                break
        return cls(block, start, float(rng.uniform(*START_YAW)), seed=seed, brightness=float(rng.uniform(0.85, 1.1)))

    def simulate(self, scene: SceneConfig) -> EpisodeData:
        dt = 1.0 / scene.sim_rate
        grasp = np.array([self.block_xy[0], self.block_xy[1], GRASP_Z])
        lift = grasp + np.array([0.0, 0.0, LIFT])
        pos, yaw, grip = self.start.astype(np.float64).copy(), float(self.start_yaw), 1.0
        block = np.array([self.block_xy[0], self.block_xy[1], BLOCK_HALF])
        phase, lifted_at = 0, None
        rows = []
        n_max = int(scene.max_duration * scene.sim_rate)
        for k in range(n_max + 1):
            t = k * dt
            # The expert decides from the current (observable) state.
            if phase == 0 and np.linalg.norm(grasp - pos) < scene.grasp_radius:
                phase = 1
            if phase == 1 and grip < 0.15:
                phase = 2
            if phase == 0:
                cmd, cmd_grip = _carrot(pos, grasp, scene.lookahead), 1.0
            elif phase == 1:
                cmd, cmd_grip = grasp.copy(), 0.0
            else:
                cmd, cmd_grip = _carrot(pos, lift, scene.lookahead), 0.0
            cmd_yaw = yaw + float(np.clip(-yaw, -scene.yaw_lookahead, scene.yaw_lookahead))
            if phase == 2:
                block = pos - np.array([0.0, 0.0, GRASP_Z - BLOCK_HALF])
            rows.append((t, *pos, yaw, grip, *cmd, cmd_yaw, cmd_grip, *block, phase))
            if phase == 2 and lifted_at is None and np.linalg.norm(lift - pos) < 0.005:
                lifted_at = t
            if lifted_at is not None and t - lifted_at >= scene.hold_after_lift:
                break
            # The arm follows (first-order lag); the fingers too.
            a = dt / scene.tau
            pos = pos + a * (cmd - pos)
            yaw = yaw + a * (cmd_yaw - yaw)
            grip = grip + (dt / scene.gripper_tau) * (cmd_grip - grip)
        arr = np.array(rows, dtype=np.float64)
        return EpisodeData(
            t=arr[:, 0], ee_pos=arr[:, 1:4], ee_yaw=arr[:, 4], gripper=arr[:, 5], cmd_pos=arr[:, 6:9],
            cmd_yaw=arr[:, 9], cmd_gripper=arr[:, 10], block_pos=arr[:, 11:14], phase=arr[:, 14].astype(int),
        )


# ------------------------------------------------------------------------------------- rendering
TABLE_RGB = np.array([196, 178, 150], np.float64)
BLOCK_RGB = (215, 35, 30)
GRIPPER_RGB = (40, 60, 160)
FINGER_RGB = (25, 25, 25)


def _scene_px(x: float, y: float, size: int, z: float = 0.0) -> tuple[float, float, float]:
    """Scene camera pixel (u right, v down) of a point and its scale (px per m at that height)."""
    scale = size / (VIEW_X[1] - VIEW_X[0]) * SCENE_CAM_Z / (SCENE_CAM_Z - z)
    cx, cy = (VIEW_X[0] + VIEW_X[1]) / 2, (VIEW_Y[0] + VIEW_Y[1]) / 2
    u = size / 2 + (cy - y) * scale  # image right = -y
    v = size / 2 + (cx - x) * scale  # image up = +x
    return u, v, scale


def _background(size: int, brightness: float) -> np.ndarray:
    img = np.empty((size, size, 3), np.float64)
    img[:] = TABLE_RGB * brightness
    return img


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    if noise > 0:
        img = img + rng.normal(0.0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


SUB = 4  # sub-pixel precision of cv2 drawing (fractional coordinates, shift = 2)


def _pt(u: float, v: float) -> tuple[int, int]:
    return int(round(u * SUB)), int(round(v * SUB))


def _square(img: np.ndarray, u: float, v: float, half_px: float, angle: float, color) -> None:
    c, s = math.cos(angle), math.sin(angle)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * half_px
    rot = corners @ np.array([[c, s], [-s, c]])
    pts = np.array([_pt(u + p[0], v + p[1]) for p in rot], np.int32)
    cv2.fillConvexPoly(img, pts, color, lineType=cv2.LINE_AA, shift=2)


def render_scene(data: EpisodeData, k: int, size: int, brightness: float, rng: np.random.Generator,
                 noise: float) -> np.ndarray:
    """Top-down scene camera at sample k."""
    img = _background(size, brightness)
    b = data.block_pos[k]
    u, v, sc = _scene_px(b[0], b[1], size, b[2] + BLOCK_HALF)
    _square(img, u, v, BLOCK_HALF * sc, 0.0, tuple(c * brightness for c in BLOCK_RGB))
    p, yaw, g = data.ee_pos[k], data.ee_yaw[k], data.gripper[k]
    u, v, sc = _scene_px(p[0], p[1], size, p[2])
    cv2.circle(img, _pt(u, v), int(round(0.016 * sc * SUB)), tuple(c * brightness for c in GRIPPER_RGB), -1,
               cv2.LINE_AA, 2)
    # Fingers: two dots across the gripper's y axis (rotated by yaw), apart by the opening.
    half = (0.008 + 0.022 * g) * sc
    c, s = math.cos(yaw), math.sin(yaw)
    for sign in (-1.0, 1.0):
        du, dv = -sign * half * c, -sign * half * s  # the gripper y axis in the image (u = -y, v = -x)
        cv2.circle(img, _pt(u + du, v + dv), max(1, int(round(0.006 * sc * SUB))), FINGER_RGB, -1, cv2.LINE_AA, 2)
    return _finish(img, rng, noise)


def render_wrist(data: EpisodeData, k: int, size: int, brightness: float, rng: np.random.Generator,
                 noise: float) -> np.ndarray:
    """Camera on the gripper looking down, rotating with the gripper's yaw."""
    img = _background(size, brightness * 0.92)
    p, yaw, g = data.ee_pos[k], data.ee_yaw[k], data.gripper[k]
    b = data.block_pos[k]
    depth = max(0.02, p[2] + WRIST_CAM_HEIGHT - (b[2] + BLOCK_HALF))
    scale = (size / 2) / (depth * math.tan(WRIST_HALF_FOV))  # px per m at the block's top
    d = b[:2] - p[:2]
    c, s = math.cos(-yaw), math.sin(-yaw)
    dx, dy = c * d[0] - s * d[1], s * d[0] + c * d[1]  # block in the gripper frame
    u, v = size / 2 - dy * scale, size / 2 - dx * scale
    half = BLOCK_HALF * scale
    if -half < u < size + half and -half < v < size + half:
        _square(img, u, v, half, yaw, tuple(cc * brightness for cc in BLOCK_RGB))
    # Finger tips at the bottom edge, apart by the opening.
    gap = (0.1 + 0.3 * g) * size
    w, h = max(2, size // 10), max(3, size // 6)
    for x0 in (size / 2 - gap / 2 - w, size / 2 + gap / 2):
        cv2.rectangle(img, _pt(x0, size - h), _pt(x0 + w, size), FINGER_RGB, -1, cv2.LINE_AA, 2)
    return _finish(img, rng, noise)


# ------------------------------------------------------------------------------------- bags
def _robot_units(opening: float) -> float:
    return float(opening) * GRIPPER_OPEN


def _episode_messages(m: MessageFactory, episode: Episode, scene: SceneConfig, data: EpisodeData, t0: float,
                      end: float, rng: np.random.Generator) -> list[tuple[float, str, object]]:
    """(log time, topic, message) of one episode starting at bag time t0, unsorted."""
    out: list[tuple[float, str, object]] = []
    size = scene.image_size
    wrist_topic = TOPICS["wrist"] + ("/compressed" if scene.compressed_wrist else "")
    for t in np.arange(0.0, end + 1e-9, 1.0 / scene.camera_rate):
        k = data.index(t)
        stamp = t0 + t
        prim = render_scene(data, k, size, episode.brightness, rng, scene.noise)
        wrist = render_wrist(data, k, size, episode.brightness, rng, scene.noise)
        out.append((stamp + 0.004, TOPICS["primary"], m.image(stamp, "scene_camera", prim)))
        if scene.compressed_wrist:
            out.append((stamp + 0.004, wrist_topic, m.compressed_image(stamp, "wrist_camera", wrist)))
        else:
            out.append((stamp + 0.004, wrist_topic, m.image(stamp, "wrist_camera", wrist)))
    for t in np.arange(0.0, end + 1e-9, 1.0 / scene.state_rate):
        k = data.index(t)
        stamp = t0 + t
        p, yaw = data.ee_pos[k], data.ee_yaw[k]
        joints = [p[0], p[1], p[2], yaw, _robot_units(data.gripper[k])]
        out.append((stamp + 0.001, TOPICS["joint_states"], m.joint_state(stamp, (*JOINT_NAMES, GRIPPER_JOINT), joints)))
        out.append((stamp + 0.001, TOPICS["ee_pose"], m.pose_stamped(stamp, FRAME, p, yaw_quat(yaw))))
    for t in np.arange(0.0, end + 1e-9, 1.0 / scene.command_rate):
        k = data.index(t)
        stamp = t0 + t
        out.append((stamp, TOPICS["command"], m.pose_stamped(stamp, FRAME, data.cmd_pos[k], yaw_quat(data.cmd_yaw[k]))))
        out.append((stamp, TOPICS["gripper_command"], m.float64(_robot_units(data.cmd_gripper[k]))))
    return out


def write_episode_bag(path: str | Path, episode: Episode, scene: SceneConfig | None = None, *, storage: str = "mcap",
                      t0: float = 100.0, data: EpisodeData | None = None, duration: float | None = None) -> Path:
    """Simulate `episode` and write it as one rosbag2 directory; returns its path.

    Log time = header stamp + a small transport delay (1 ms states, 4 ms images), as a recorder
    on the robot would see it. `duration` cuts the episode (s).
    """
    return write_session_bag(path, [episode], scene, storage=storage, t0=t0, data=[data] if data is not None else None,
                             duration=duration)


def write_session_bag(path: str | Path, episodes: list[Episode], scene: SceneConfig | None = None, *,
                      storage: str = "mcap", t0: float = 100.0, data: list[EpisodeData] | None = None,
                      duration: float | None = None, gap: float = 0.5) -> Path:
    """Several episodes back to back in one bag (`gap` s between them; the arm is reset in between).

    `duration` cuts the whole recording (s). One instruction message at the start (latched).
    """
    scene = scene or SceneConfig()
    datas = data or [ep.simulate(scene) for ep in episodes]
    events: list[tuple[float, str, object]] = []
    with BagWriter(path, storage=storage) as w:
        m: MessageFactory = w.msgs
        w.write(TOPICS["instruction"], t0, m.string(scene.instruction), latched=True)
        start = t0
        for ep, d in zip(episodes, datas):
            end = d.duration
            if duration is not None:
                end = min(end, t0 + duration - start)
            if end < 0:
                break
            events.extend(_episode_messages(m, ep, scene, d, start, end, np.random.default_rng(ep.seed + 7919)))
            start += d.duration + gap
        events.sort(key=lambda e: e[0])
        for t_log, topic, msg in events:
            w.write(topic, t_log, msg)
    return Path(path)


@dataclass(frozen=True)
class GeneratedSet:
    train: list[Path]
    test: list[Path]
    episodes: list[Episode]
    seconds: float  # total recorded time


def generate_episodes(out_dir: str | Path, n_train: int, n_test: int, *, seed: int = 0,
                      scene: SceneConfig | None = None,
                      storage: str = "mcap", progress: bool = False) -> GeneratedSet:
    """`n_train` + `n_test` episode bags under out_dir/train/ep_XXX and out_dir/test/ep_XXX (deterministic)."""
    scene = scene or SceneConfig()
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    episodes = [Episode.sample(rng, scene, seed=seed * 1000 + i) for i in range(n_train + n_test)]
    train, test = [], []
    total = 0.0
    items = list(enumerate(episodes))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc="synthetic bags", unit="bag")
    for i, ep in items:
        split, j = ("train", i) if i < n_train else ("test", i - n_train)
        data = ep.simulate(scene)
        total += data.duration
        path = write_episode_bag(out / split / f"ep_{j:03d}", ep, scene, storage=storage, data=data)
        (train if split == "train" else test).append(path)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return GeneratedSet(train, test, episodes, total)


def with_scene(scene: SceneConfig, **changes) -> SceneConfig:
    return replace(scene, **changes)
