"""A ROS-free transform buffer with tf2's semantics, for the replay and the live nodes alike.

tf2_ros is not installable from PyPI, and the replay has no ROS graph at all, so both read
``/tf`` and ``/tf_static`` into this one buffer (the nodes through `vla_ros.ros.tf_listener`, the
replay straight from the bag) and ask it the same question:

    buf = TransformBuffer(cache_time=10.0, max_extrapolation=0.05)
    buf.add_message(tf_msg, static=False)              # tf2_msgs/TFMessage (rclpy or rosbags), duck-typed
    tf = buf.lookup_transform("base_link", "tool0", t)  # T_base_tool0 at time t (0 = latest common time)
    pose = tf.apply(position, quaternion)              # a pose given in tool0, expressed in base_link

tf2's rules, kept here:

- every frame has at most one parent; a ``TransformStamped`` gives ``child_frame_id`` in
  ``header.frame_id`` (the parent);
- static transforms hold at every time; dynamic ones are kept for ``cache_time`` seconds behind
  the newest stamp of their link, and a lookup between two stamps interpolates (linear
  translation, slerp rotation);
- ``time`` 0 means "the latest time every link of the chain is known at";
- a time before a link's first stamp or after its last one is an extrapolation: allowed up to
  ``max_extrapolation`` seconds (the nearest sample is used), refused beyond it.

Every refusal is a `TransformError` whose text names the missing link (or the frame and the
times known) and the frames present, never a bare KeyError.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from vla_ros.core.rotations import quat_conj, quat_mul, quat_normalize, quat_slerp, quat_to_matrix

_EPS = 1e-9


class TransformError(LookupError):
    """No transform can be given; the text names the missing link and the frames present."""


class ConnectivityError(TransformError):
    """The two frames are not connected (a frame or a link is missing)."""


class ExtrapolationError(TransformError):
    """The frames are connected, but not at the requested time (beyond ``max_extrapolation``)."""


@dataclass(frozen=True)
class Transform:
    """A rigid transform T_target_source: maps coordinates in the source frame into the target frame."""

    translation: np.ndarray  # (3,)
    rotation: np.ndarray  # (4,) unit quaternion (x, y, z, w)

    @classmethod
    def identity(cls) -> "Transform":
        return cls(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))

    def __mul__(self, other: "Transform") -> "Transform":
        """self * other: apply `other` first (T_a_b * T_b_c = T_a_c)."""
        r = quat_to_matrix(self.rotation)
        rotation = quat_normalize(quat_mul(self.rotation, other.rotation))
        return Transform(self.translation + r @ other.translation, rotation)

    def inverse(self) -> "Transform":
        q = quat_conj(self.rotation)
        return Transform(-(quat_to_matrix(q) @ self.translation), quat_normalize(q))

    def apply(self, position: Sequence[float],
              orientation: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A pose (position, quaternion) given in the source frame, expressed in the target frame."""
        p = np.asarray(position, np.float64)
        q = np.array([0.0, 0.0, 0.0, 1.0]) if orientation is None else np.asarray(orientation, np.float64)
        return self.translation + quat_to_matrix(self.rotation) @ p, quat_normalize(quat_mul(self.rotation, q))

    def apply_rotation(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate free vectors [..., 3] (no translation)."""
        return np.asarray(vectors, np.float64) @ quat_to_matrix(self.rotation).T


class _Link:
    """The samples of one child frame: parent, sorted stamps, translations, rotations."""

    __slots__ = ("parent", "static", "times", "translations", "rotations")

    def __init__(self, parent: str, static: bool):
        self.parent = parent
        self.static = static
        self.times: list[float] = []
        self.translations: list[np.ndarray] = []
        self.rotations: list[np.ndarray] = []

    def insert(self, t: float, translation: np.ndarray, rotation: np.ndarray, cache_time: float) -> None:
        if self.static:  # a static link has one value, valid at every time (the newest wins)
            self.times, self.translations, self.rotations = [t], [translation], [rotation]
            return
        i = bisect.bisect_left(self.times, t)
        if i < len(self.times) and abs(self.times[i] - t) <= _EPS:  # same stamp again: replace
            self.translations[i], self.rotations[i] = translation, rotation
        else:
            self.times.insert(i, t)
            self.translations.insert(i, translation)
            self.rotations.insert(i, rotation)
        # keep the newest cache_time seconds, plus the sample before them (interpolation up to the edge)
        drop = bisect.bisect_right(self.times, self.times[-1] - cache_time) - 1
        if drop > 0:
            del self.times[:drop], self.translations[:drop], self.rotations[:drop]

    def at(self, t: float, max_extrapolation: float, child: str) -> Transform:
        """T_parent_child at `t` (interpolated; ExtrapolationError outside the known times + limit)."""
        if self.static:
            return Transform(self.translations[0], self.rotations[0])
        times = self.times
        if t < times[0] - _EPS or t > times[-1] + _EPS:
            off = times[0] - t if t < times[0] else t - times[-1]
            if off > max_extrapolation + _EPS:
                when = "before the first" if t < times[0] else "after the newest"
                raise ExtrapolationError(
                    f"transform {self.parent} -> {child} is not known at t = {t:.6f} s: {off:.3f} s {when} sample "
                    f"(known {times[0]:.6f} .. {times[-1]:.6f} s; tf max_extrapolation = {max_extrapolation:g} s)"
                )
            k = 0 if t < times[0] else len(times) - 1
            return Transform(self.translations[k], self.rotations[k])
        i = bisect.bisect_right(times, t) - 1
        i = min(max(i, 0), len(times) - 1)
        if i == len(times) - 1 or abs(times[i] - t) <= _EPS:
            return Transform(self.translations[i], self.rotations[i])
        f = (t - times[i]) / (times[i + 1] - times[i])
        trans = self.translations[i] + f * (self.translations[i + 1] - self.translations[i])
        rot = quat_slerp(self.rotations[i], self.rotations[i + 1], f)
        return Transform(trans, quat_normalize(rot))


class TransformBuffer:
    """Static and dynamic transforms by child frame (see the module docstring)."""

    def __init__(self, cache_time: float = 10.0, max_extrapolation: float = 0.0):
        if not cache_time > 0:
            raise ValueError(f"cache_time: expected > 0 s, got {cache_time}")
        if not max_extrapolation >= 0:
            raise ValueError(f"max_extrapolation: expected >= 0 s, got {max_extrapolation}")
        self.cache_time = float(cache_time)
        self.max_extrapolation = float(max_extrapolation)
        self._links: dict[str, _Link] = {}
        self.problems = 0  # transforms refused by add_message (malformed)
        self.last_problem = ""

    # ------------------------------------------------------------------ input
    def set_transform(self, parent: str, child: str, stamp: float, translation: Sequence[float],
                      rotation: Sequence[float], *, static: bool = False) -> None:
        """Add one transform parent -> child at `stamp`; ValueError on bad input (named)."""
        parent, child = _strip(parent), _strip(child)
        if not parent or not child:
            raise ValueError(f"transform {parent!r} -> {child!r}: header.frame_id and child_frame_id must be non-empty")
        if parent == child:
            raise ValueError(f"transform {parent} -> {child}: a frame cannot be its own parent")
        tr = np.asarray(translation, np.float64).reshape(3)
        q = np.asarray(rotation, np.float64).reshape(4)
        if not (np.all(np.isfinite(tr)) and np.all(np.isfinite(q))):
            raise ValueError(f"transform {parent} -> {child}: translation/rotation: expected finite values")
        n = float(np.linalg.norm(q))
        if abs(n - 1.0) > 1e-3:
            raise ValueError(f"transform {parent} -> {child}: rotation: expected a unit quaternion, got norm {n:.6g}")
        link = self._links.get(child)
        if link is None or link.static != static or link.parent != parent:
            # tf2: a child has one parent; a re-parented (or static <-> dynamic) link starts afresh
            link = self._links[child] = _Link(parent, static)
        link.insert(float(stamp), tr, quat_normalize(q), self.cache_time)

    def add_message(self, msg: Any, *, static: bool = False) -> int:
        """Every transform of a tf2_msgs/TFMessage (or any object with ``.transforms``); returns how
        many were taken. A malformed transform is counted in ``problems``, the others are kept."""
        n = 0
        for ts in getattr(msg, "transforms", ()):
            try:
                self.add_transform_stamped(ts, static=static)
                n += 1
            except (ValueError, AttributeError, TypeError) as exc:
                self.problems += 1
                self.last_problem = str(exc)
        return n

    def add_transform_stamped(self, ts: Any, *, static: bool = False) -> None:
        """One geometry_msgs/TransformStamped (rclpy or rosbags)."""
        st = ts.header.stamp
        t, r = ts.transform.translation, ts.transform.rotation
        self.set_transform(str(ts.header.frame_id), str(ts.child_frame_id), float(st.sec) + float(st.nanosec) * 1e-9,
                           (t.x, t.y, t.z), (r.x, r.y, r.z, r.w), static=static)

    def clear(self) -> None:
        """Forget the dynamic transforms (the clock jumped back: a bag loop); static ones stay."""
        self._links = {c: link for c, link in self._links.items() if link.static}

    # ------------------------------------------------------------------ queries
    @property
    def frames(self) -> list[str]:
        """Every frame the buffer knows (children and parents), sorted."""
        out = set(self._links)
        out.update(link.parent for link in self._links.values())
        return sorted(out)

    def parent(self, frame: str) -> str | None:
        link = self._links.get(_strip(frame))
        return link.parent if link is not None else None

    def is_static(self, frame: str) -> bool:
        link = self._links.get(_strip(frame))
        return bool(link is not None and link.static)

    def _chain(self, frame: str) -> list[str]:
        """frame, its parent, ... up to the root (a cycle ends the walk)."""
        chain = [frame]
        seen = {frame}
        while frame in self._links:
            frame = self._links[frame].parent
            if frame in seen:
                break
            chain.append(frame)
            seen.add(frame)
        return chain

    def _path(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """(source up to the common ancestor, target up to it); ConnectivityError naming the gap."""
        up_s, up_t = self._chain(source), self._chain(target)
        common = next((f for f in up_s if f in set(up_t)), None)
        if common is None:
            known = set(self.frames)
            present = ", ".join(self.frames) or "none"
            if source not in known or target not in known:
                missing = " and ".join(repr(f) for f in (source, target) if f not in known)
                raise ConnectivityError(
                    f"no transform from {source!r} to {target!r}: frame {missing} is not in the transform tree "
                    f"(frames present: {present})"
                )
            raise ConnectivityError(
                f"no transform from {source!r} to {target!r}: the chain is broken between {up_s[-1]!r} and "
                f"{up_t[-1]!r}: {' -> '.join(reversed(up_s))} and {' -> '.join(reversed(up_t))} have no common "
                f"parent (frames present: {present})"
            )
        return up_s[: up_s.index(common) + 1], up_t[: up_t.index(common) + 1]

    def latest_common_time(self, target: str, source: str) -> float:
        """The newest time every dynamic link between the frames is known at (inf if all are static)."""
        down, up = self._path(_strip(target), _strip(source))
        t = math.inf
        for chain in (down, up):
            for child in chain[:-1]:
                link = self._links[child]
                if not link.static:
                    t = min(t, link.times[-1])
        return t

    def lookup_transform(self, target: str, source: str, time: float = 0.0) -> Transform:
        """T_target_source at `time` (s; 0 = the latest common time); TransformError if unknown."""
        target, source = _strip(target), _strip(source)
        if target == source:
            return Transform.identity()
        up_s, up_t = self._path(target, source)
        if time == 0.0:
            time = self.latest_common_time(target, source)
            if not math.isfinite(time):
                time = 0.0
        root_from_source = Transform.identity()
        for child in reversed(up_s[:-1]):  # from the common ancestor down to the source
            root_from_source = root_from_source * self._links[child].at(time, self.max_extrapolation, child)
        root_from_target = Transform.identity()
        for child in reversed(up_t[:-1]):
            root_from_target = root_from_target * self._links[child].at(time, self.max_extrapolation, child)
        return root_from_target.inverse() * root_from_source

    def can_transform(self, target: str, source: str, time: float = 0.0) -> tuple[bool, str]:
        """(True, "") or (False, why) without raising."""
        try:
            self.lookup_transform(target, source, time)
        except TransformError as exc:
            return False, str(exc)
        return True, ""

    def chain_links(self, target: str, source: str) -> list[tuple[str, str]]:
        """The (parent, child) links between the frames (ConnectivityError if not connected)."""
        up_s, up_t = self._path(_strip(target), _strip(source))
        return [(self._links[c].parent, c) for c in up_s[:-1]] + [(self._links[c].parent, c) for c in up_t[:-1]]


def _strip(frame: str) -> str:
    """tf2 ignores a leading '/' (a ROS 1 habit still found in bags)."""
    frame = str(frame)
    return frame[1:] if frame.startswith("/") else frame


def frames_in(messages: Iterable[Any]) -> set[str]:
    """Every frame named by the transforms of some TFMessages (for hints)."""
    out: set[str] = set()
    for msg in messages:
        for ts in getattr(msg, "transforms", ()):
            out.add(_strip(ts.header.frame_id))
            out.add(_strip(ts.child_frame_id))
    return out


def tf_pose_topic(base_frame: str, ee_frame: str) -> str:
    """The name the TF-derived end-effector pose goes by (observation inputs, reports, problem counts)."""
    return f"/tf[{base_frame}->{ee_frame}]"


def ee_pose_from_tf(robot: Any, topics: Iterable[str] | None = None) -> bool:
    """Whether the end-effector pose comes from TF (``robot.ee_pose_source``): ``tf``; ``topic``: never;
    ``auto``: when no PoseStamped topic is configured, or (a bag's `topics` known) the bag lacks it but
    has /tf or /tf_static."""
    if robot.ee_pose_source in ("tf", "topic", "fk"):
        return robot.ee_pose_source == "tf"
    ee = robot.ee_pose_topic
    if topics is None:  # a live node: TF when no topic is configured
        return not ee
    topics = set(topics)
    has_tf = robot.tf_topic in topics or robot.tf_static_topic in topics
    ee = ee if not ee or ee.startswith("/") else "/" + ee
    return has_tf and (not ee or ee not in topics)


class ChainPoses:
    """The pose of `child` in `parent` each time the chain becomes known at a newer time.

    After every TF update, `update` returns (stamp, T_parent_child) at the latest time every dynamic
    link of the chain is known at, if that time advanced (None otherwise): the end-effector pose
    stream a driver's PoseStamped topic would have given. An all-static chain gives one pose, at `now`.
    """

    def __init__(self, buffer: TransformBuffer, parent: str, child: str):
        self.buffer, self.parent, self.child = buffer, parent, child
        self.last_time = -math.inf
        self.emitted = 0
        self.failures = 0
        self.last_error = ""

    def update(self, now: float) -> tuple[float, Transform] | None:
        try:
            t = self.buffer.latest_common_time(self.parent, self.child)
            if not math.isfinite(t):
                if self.emitted:
                    return None
                t = now
            if t <= self.last_time + _EPS:
                return None
            tf = self.buffer.lookup_transform(self.parent, self.child, t)
        except TransformError as exc:
            self.failures += 1
            self.last_error = str(exc)
            return None
        self.last_time = t
        self.emitted += 1
        return t, tf

    def why_none(self) -> str:
        """Why no pose came out (for one clear sentence)."""
        if self.last_error:
            return self.last_error
        return (f"the transform tree never connected {self.parent!r} (robot.base_frame) to {self.child!r} "
                f"(robot.ee_frame); frames present: {', '.join(self.buffer.frames) or 'none'}")
