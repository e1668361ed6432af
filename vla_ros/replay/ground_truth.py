"""What was actually commanded in a bag, as time series the predictions are scored against.

Sources (``replay.ground_truth_type``; ``auto`` picks by message type, see `select_sources`):

- ``pose``: geometry_msgs/PoseStamped command targets (e.g. the executor's ``target_pose``, a
  teleoperation target); the sample time is the header stamp.
- ``chunk``: vla_ros/ActionChunk recorded from a policy run. The executed trajectory is rebuilt
  with "replace" semantics: each chunk's actions from its arrival (bag time) until the next
  chunk's arrival; DELTA chunks are made absolute with their reference pose.
- ``twist``: geometry_msgs/TwistStamped (MoveIt Servo): a velocity ground truth, scored against
  the executor's command velocity; positions are then scored against the measured EE poses.
- ``ee_pose``: the measured end-effector poses (robot.ee_pose_topic) - what the arm did.

The gripper comes from a std_msgs/Float64 command topic (robot units, normalised with
robot.gripper_closed / gripper_open), the chunks' gripper values, or the measured gripper joint.
Sampling between two ground-truth samples interpolates (linear position and gripper, slerp
rotation); a time outside the recording or inside a gap longer than ``replay.max_gap`` is
reported invalid and not scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from vla_ros.core import msg_decode
from vla_ros.core.action_modes import absolute_actions
from vla_ros.core.config import VlaConfig
from vla_ros.core.rotations import quat_normalize, quat_slerp, rotvec_to_quat
from vla_ros.replay.bag_io import (
    CHUNK_TYPES, FLOAT64_TYPES, JOINT_STATE_TYPES, POSE_TYPES, TWIST_TYPES, Bag, BagError, TopicInfo,
)

KINDS = ("pose", "twist", "chunk", "ee_pose")
_TYPE_KIND = {POSE_TYPES[0]: "pose", TWIST_TYPES[0]: "twist", CHUNK_TYPES[0]: "chunk"}


def abs_topic(name: str) -> str:
    """Node-relative topic names ("target_pose") as recorded in a bag ("/target_pose")."""
    return name if not name or name.startswith("/") else "/" + name


def _interp_index(times: np.ndarray, t: np.ndarray, max_gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left index, fraction and validity of each t in the sample times (sorted)."""
    t = np.asarray(t, dtype=np.float64)
    n = times.shape[0]
    if n == 0:
        z = np.zeros(t.shape, int)
        return z, np.zeros(t.shape), np.zeros(t.shape, bool)
    if n == 1:
        valid = np.abs(t - times[0]) <= 1e-9
        return np.zeros(t.shape, int), np.zeros(t.shape), valid
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, n - 2)
    span = times[i + 1] - times[i]
    frac = np.where(span > 0, (t - times[i]) / np.where(span > 0, span, 1.0), 0.0)
    eps = 1e-9
    valid = (t >= times[0] - eps) & (t <= times[-1] + eps) & (span <= max_gap + eps)
    return i, np.clip(frac, 0.0, 1.0), valid


@dataclass
class PoseSeries:
    """Absolute target poses over time (sorted, unique times)."""

    times: np.ndarray
    positions: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4]
    max_gap: float

    @classmethod
    def build(cls, times: Sequence[float], positions, quats, max_gap: float) -> "PoseSeries":
        t = np.asarray(times, np.float64)
        p = np.asarray(positions, np.float64).reshape(-1, 3)
        q = quat_normalize(np.asarray(quats, np.float64).reshape(-1, 4)) if len(t) else np.zeros((0, 4))
        order = np.argsort(t, kind="stable")
        t, p, q = t[order], p[order], q[order]
        if len(t) > 1:  # a repeated time: the later sample wins
            keep = np.append(np.diff(t) > 0, True)
            t, p, q = t[keep], p[keep], q[keep]
        return cls(t, p, q, float(max_gap))

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions [M, 3], quaternions [M, 4], valid [M]) at times t."""
        t = np.atleast_1d(np.asarray(t, np.float64))
        i, f, valid = _interp_index(self.times, t, self.max_gap)
        if len(self) == 0:
            return np.full((t.size, 3), np.nan), np.tile([0.0, 0.0, 0.0, 1.0], (t.size, 1)), valid
        j = np.minimum(i + 1, len(self) - 1)
        pos = self.positions[i] + f[:, None] * (self.positions[j] - self.positions[i])
        quat = quat_slerp(self.quats[i], self.quats[j], f)
        return pos, quat, valid


@dataclass
class ScalarSeries:
    """A scalar over time (gripper opening in [0, 1])."""

    times: np.ndarray
    values: np.ndarray
    max_gap: float

    @classmethod
    def build(cls, times: Sequence[float], values: Sequence[float], max_gap: float) -> "ScalarSeries":
        t, v = np.asarray(times, np.float64), np.asarray(values, np.float64)
        order = np.argsort(t, kind="stable")
        return cls(t[order], v[order], float(max_gap))

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.atleast_1d(np.asarray(t, np.float64))
        i, f, valid = _interp_index(self.times, t, self.max_gap)
        if len(self) == 0:
            return np.full(t.size, np.nan), valid
        j = np.minimum(i + 1, len(self) - 1)
        return self.values[i] + f * (self.values[j] - self.values[i]), valid


@dataclass
class VectorSeries:
    """Twist samples: linear [N, 3] (m/s) and angular [N, 3] (rad/s)."""

    times: np.ndarray
    linear: np.ndarray
    angular: np.ndarray
    max_gap: float

    def __len__(self) -> int:
        return int(self.times.shape[0])


@dataclass(frozen=True)
class GroundTruthSources:
    """Which topics the ground truth is read from, and how."""

    kind: str  # pose | twist | chunk | ee_pose
    topic: str
    pose_topic: str  # topic of the pose ground truth (the same as topic, or the EE pose for twist)
    pose_kind: str  # pose | chunk | ee_pose | "" (no pose ground truth)
    gripper_topic: str = ""
    gripper_kind: str = ""  # float64 | chunk | joint | ""

    def topics(self) -> list[str]:
        return sorted({t for t in (self.topic, self.pose_topic, self.gripper_topic) if t})

    def describe(self) -> str:
        text = f"{self.kind} on {self.topic}"
        if self.pose_topic and self.pose_topic != self.topic:
            text += f"; positions from {self.pose_kind} on {self.pose_topic}"
        if self.gripper_topic:
            text += f"; gripper from {self.gripper_kind} on {self.gripper_topic}"
        return text


def select_sources(bag: Bag, cfg: VlaConfig, virtual: dict[str, str] | None = None) -> GroundTruthSources:
    """The ground-truth topics of `bag` per ``replay.*`` (BagError if the configured one is unusable).

    `virtual`: topics the replay derives itself (topic -> message type), e.g. the EE pose from TF
    (`vla_ros.replay.tf_poses`): usable as if the bag had them.
    """
    r, ex, robot = cfg.replay, cfg.executor, cfg.robot
    topics = dict(bag.topics)
    topics.update({t: TopicInfo(t, msgtype, -1) for t, msgtype in (virtual or {}).items()})
    ee = abs_topic(robot.ee_pose_topic)

    def kind_of(topic: str) -> str:
        info = topics[topic]
        if r.ground_truth_type != "auto":
            return r.ground_truth_type
        if info.msgtype in _TYPE_KIND:
            return _TYPE_KIND[info.msgtype]
        raise BagError(
            f"bag {bag.path}: ground truth topic {topic} has type {info.msgtype}; expected PoseStamped, TwistStamped "
            f"or vla_ros/ActionChunk (replay.ground_truth_type)"
        )

    expected = {"pose": POSE_TYPES, "ee_pose": POSE_TYPES, "twist": TWIST_TYPES, "chunk": CHUNK_TYPES}
    if r.ground_truth_topic:
        topic = abs_topic(r.ground_truth_topic)
        if topic not in topics:
            raise BagError(
                f"bag {bag.path}: ground truth topic {topic} (replay.ground_truth_topic) is not in the bag. "
                f"Bag topics: {bag.topic_list()}"
            )
        kind = kind_of(topic)
    else:
        candidates = [
            abs_topic(ex.pose_topic), abs_topic(f"{ex.preview_prefix}/{ex.pose_topic}"),
            abs_topic(ex.twist_topic), abs_topic(f"{ex.preview_prefix}/{ex.twist_topic}"),
            abs_topic(cfg.policy.chunk_topic),
        ]
        topic = next((t for t in candidates if t in topics and topics[t].msgtype in _TYPE_KIND), "")
        if topic:
            kind = _TYPE_KIND[topics[topic].msgtype]
        elif ee in topics:
            topic, kind = ee, "ee_pose"
        else:
            raise BagError(
                f"bag {bag.path}: no ground truth: none of the command topics {', '.join(dict.fromkeys(candidates))} "
                f"nor the EE pose {ee or '(robot.ee_pose_topic empty)'} is in the bag; set replay.ground_truth_topic. "
                f"Bag topics: {bag.topic_list()}"
            )
    if kind not in KINDS:
        raise BagError(f"replay.ground_truth_type: expected one of {', '.join(KINDS)}, got {kind!r}")
    if topics[topic].msgtype not in expected[kind]:
        raise BagError(
            f"bag {bag.path}: ground truth topic {topic} has type {topics[topic].msgtype}, but "
            f"replay.ground_truth_type {kind!r} expects {expected[kind][0]}"
        )
    pose_topic, pose_kind = topic, kind
    if kind == "twist":
        pose_topic, pose_kind = (ee, "ee_pose") if ee in topics else ("", "")

    gtopic, gkind = "", ""
    for cand in (abs_topic(r.gripper_topic), abs_topic(ex.gripper_topic)):
        if cand and cand in topics and topics[cand].msgtype in FLOAT64_TYPES:
            gtopic, gkind = cand, "float64"
            break
    else:
        if r.gripper_topic:
            raise BagError(
                f"bag {bag.path}: gripper ground truth {abs_topic(r.gripper_topic)} (replay.gripper_topic) is not a "
                f"std_msgs/Float64 topic in the bag. Bag topics: {bag.topic_list()}"
            )
        js = abs_topic(robot.joint_state_topic)
        if kind == "chunk":
            gtopic, gkind = topic, "chunk"
        elif robot.gripper_joint and js in topics and topics[js].msgtype in JOINT_STATE_TYPES:
            gtopic, gkind = js, "joint"
    return GroundTruthSources(kind, topic, pose_topic, pose_kind, gtopic, gkind)


@dataclass
class GroundTruthCollector:
    """Collects ground-truth samples from bag messages during the replay pass; `build()` at the end."""

    sources: GroundTruthSources
    cfg: VlaConfig
    pose_t: list = field(default_factory=list)
    pose_p: list = field(default_factory=list)
    pose_q: list = field(default_factory=list)
    grip_t: list = field(default_factory=list)
    grip_v: list = field(default_factory=list)
    twist_t: list = field(default_factory=list)
    twist_l: list = field(default_factory=list)
    twist_a: list = field(default_factory=list)
    chunks: list = field(default_factory=list)  # (arrival, chunk)
    problems: int = 0
    last_problem: str = ""

    def add(self, topic: str, t_log: float, msg: Any) -> None:
        s = self.sources
        try:
            if topic == s.pose_topic and s.pose_kind in ("pose", "ee_pose"):
                self.pose_t.append(msg_decode.stamp_to_sec(msg.header.stamp))
                p, q = msg.pose.position, msg.pose.orientation
                self.pose_p.append((p.x, p.y, p.z))
                self.pose_q.append((q.x, q.y, q.z, q.w))
            if topic == s.topic and s.kind == "twist":
                self.twist_t.append(msg_decode.stamp_to_sec(msg.header.stamp))
                lin, ang = msg.twist.linear, msg.twist.angular
                self.twist_l.append((lin.x, lin.y, lin.z))
                self.twist_a.append((ang.x, ang.y, ang.z))
            if topic == s.topic and s.kind == "chunk":
                self.chunks.append((t_log, msg_decode.chunk_from_msg(msg, topic)))
            if topic == s.gripper_topic:
                if s.gripper_kind == "float64":
                    self.grip_t.append(t_log)
                    self.grip_v.append(self._normalise(float(msg.data)))
                elif s.gripper_kind == "joint":
                    g = self.cfg.robot.gripper_joint
                    try:
                        names = msg_decode.joint_names_of(msg, self.cfg.robot.joint_names, topic)
                    except msg_decode.MessageError:
                        names = []
                    if g in names:
                        self.grip_t.append(msg_decode.stamp_to_sec(msg.header.stamp))
                        self.grip_v.append(self._normalise(float(msg.position[names.index(g)])))
        except (ValueError, AttributeError, TypeError, IndexError) as exc:
            self.problems += 1
            self.last_problem = f"{topic}: {exc}"

    def _normalise(self, raw: float) -> float:
        r = self.cfg.robot
        span = r.gripper_open - r.gripper_closed
        return float(min(1.0, max(0.0, (raw - r.gripper_closed) / span))) if span else float("nan")

    def build(self) -> "GroundTruth":
        gap = self.cfg.replay.max_gap
        s = self.sources
        poses = None
        if s.pose_kind in ("pose", "ee_pose") and self.pose_t:
            poses = PoseSeries.build(self.pose_t, self.pose_p, self.pose_q, gap)
        elif s.pose_kind == "chunk" and self.chunks:
            t, p, q, g = chunk_trajectory(self.chunks)
            poses = PoseSeries.build(t, p, q, max(gap, _max_chunk_dt(self.chunks) * 1.01))
            if s.gripper_kind == "chunk":
                self.grip_t, self.grip_v = list(t), list(g)
        grip_gap = max(gap, 1.01 * _max_chunk_dt(self.chunks)) if s.gripper_kind == "chunk" else gap
        gripper = ScalarSeries.build(self.grip_t, self.grip_v, grip_gap) if self.grip_t else None
        twist = None
        if self.twist_t:
            order = np.argsort(self.twist_t, kind="stable")
            twist = VectorSeries(np.asarray(self.twist_t)[order], np.asarray(self.twist_l)[order],
                                 np.asarray(self.twist_a)[order], gap)
        return GroundTruth(s, poses, gripper, twist, self.problems, self.last_problem)


def _max_chunk_dt(chunks) -> float:
    return max((c.dt for _, c in chunks), default=0.0)


def chunk_trajectory(chunks: Sequence[tuple[float, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Executed trajectory of recorded chunks ((arrival, ActionChunk), in arrival order), replace semantics.

    Chunk k contributes its actions timed in [arrival_k, arrival_{k+1}) (the first chunk from its
    stamp), plus the last action before that window so the piece starts at the switch.
    """
    ts, ps, qs, gs = [], [], [], []
    items = sorted(chunks, key=lambda x: x[0])
    for k, (arrival, ch) in enumerate(items):
        acts = absolute_actions(ch)
        times = ch.times
        start = ch.stamp if k == 0 else arrival
        end = items[k + 1][0] if k + 1 < len(items) else math.inf
        sel = (times >= start - 1e-9) & (times < end - 1e-9)
        if not np.any(sel):
            continue
        ts.extend(times[sel])
        ps.extend(acts[sel, :3])
        qs.extend(rotvec_to_quat(acts[sel, 3:6]))
        gs.extend(acts[sel, 6])
    return np.asarray(ts), np.asarray(ps).reshape(-1, 3), np.asarray(qs).reshape(-1, 4), np.asarray(gs)


@dataclass
class GroundTruth:
    sources: GroundTruthSources
    poses: PoseSeries | None
    gripper: ScalarSeries | None
    twist: VectorSeries | None
    problems: int = 0
    last_problem: str = ""

    @property
    def empty(self) -> bool:
        return (self.poses is None or len(self.poses) == 0) and (self.twist is None or len(self.twist) == 0)
