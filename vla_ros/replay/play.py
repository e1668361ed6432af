"""Publish a bag into a live ROS graph with ``/clock`` - `ros2 bag play` for machines without rosbag2.

Each topic gets an rclpy publisher of its real message class (looked up from the bag's type name,
e.g. ``sensor_msgs/msg/Image``); every `rosbags` message is copied into the rclpy message field by
field (`to_rclpy`), so any type both sides know plays, including the vla_ros messages. Messages
go out at their recorded bag (receive) times scaled by ``rate``, and ``/clock``
(rosgraph_msgs/Clock) carries the bag time, before every message and at ``clock_rate`` Hz in
between - run the nodes with ``use_sim_time:=true``. ``loop`` starts over (the clock jumps back;
the nodes treat that as a bag loop). QoS: the bag's recorded reliability / durability when it has
them, else reliable + volatile; std_msgs/String (latched instructions) is always transient-local.

    stats = play_bag("run1", rate=2.0, loop=False)      # blocks until done (or stop_event is set)
"""

from __future__ import annotations

import array
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from vla_ros.replay.bag_io import STRING_TYPES, Bag

_TYPECODES = {
    "float": "f", "double": "d", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
    "int64": "q", "uint64": "Q",
}
_DTYPES = {
    "float": np.float32, "double": np.float64, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
    "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
}
_PRIMITIVES = {"bool", "boolean", "byte", "octet", "char", "string", "wstring", *_TYPECODES}


def _base_and_kind(typ: str) -> tuple[str, str, int | None]:
    """'sequence<uint8>' -> ('uint8', 'sequence', None); 'double[36]' -> ('double', 'array', 36);
    'sequence<uint8, 5>' bounded."""
    if typ.startswith("sequence<") and typ.endswith(">"):
        inner = typ[len("sequence<"):-1].split(",")[0].strip()
        return inner, "sequence", None
    if typ.endswith("]") and "[" in typ:
        base, _, n = typ[:-1].partition("[")
        return base, "array", int(n) if n.strip().isdigit() else None
    if typ.startswith(("string<", "wstring<")):
        return "string", "scalar", None
    return typ, "scalar", None


def _message_class(name: str):
    """rclpy message class of 'pkg/msg/Name' (or 'pkg/Name'): `vla_ros.ros.conversions.rclpy_type`,
    imported on use so that importing this module needs no ROS."""
    from vla_ros.ros.conversions import rclpy_type

    return rclpy_type(name)


_FIELD_CACHE: dict[type, list[tuple[str, str, str, Any]]] = {}


def _fields(cls: type) -> list[tuple[str, str, str, Any]]:
    """(field, base type, kind, nested class or None) of an rclpy message class, cached."""
    cached = _FIELD_CACHE.get(cls)
    if cached is None:
        cached = []
        for name, typ in cls.get_fields_and_field_types().items():
            base, kind, _ = _base_and_kind(typ)
            sub = None if base in _PRIMITIVES or base.startswith(("string", "wstring")) else _message_class(base)
            cached.append((name, base, kind, sub))
        _FIELD_CACHE[cls] = cached
    return cached


def to_rclpy(obj: Any, cls: type) -> Any:
    """Copy a `rosbags` message (or any object with the same field names) into an rclpy message of `cls`."""
    msg = cls()
    for name, base, kind, sub in _fields(cls):
        val = getattr(obj, name)
        if sub is not None:
            value = [to_rclpy(v, sub) for v in val] if kind != "scalar" else to_rclpy(val, sub)
        elif kind == "scalar":
            value = val
        elif base in _TYPECODES:
            arr = np.ascontiguousarray(val, dtype=_DTYPES[base])
            value = array.array(_TYPECODES[base], arr.tobytes()) if kind == "sequence" else arr
        elif base in ("byte", "octet"):
            value = [bytes([int(b)]) for b in np.asarray(val, np.uint8)] if not isinstance(val, (bytes, list)) else val
        else:
            value = list(val)
        setattr(msg, name, value)
    return msg


@dataclass
class PlayStats:
    published: int = 0
    loops: int = 0
    clock_messages: int = 0
    skipped_topics: dict[str, str] = field(default_factory=dict)
    per_topic: dict[str, int] = field(default_factory=dict)


TF_STATIC_DEPTH = 100  # latched static transforms: a late joiner gets every /tf_static message, not the last one


def _qos_for(conn, msgtype: str, depth: int = 10, topic: str = ""):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability, durability = ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE
    profiles = list(getattr(conn.ext, "offered_qos_profiles", []) or [])
    if profiles:
        q = profiles[0]
        name_r, name_d = getattr(q.reliability, "name", ""), getattr(q.durability, "name", "")
        if name_r == "BEST_EFFORT":
            reliability = ReliabilityPolicy.BEST_EFFORT
        if name_d == "TRANSIENT_LOCAL":
            durability = DurabilityPolicy.TRANSIENT_LOCAL
    if msgtype in STRING_TYPES:
        reliability, durability = ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL
    if msgtype == "tf2_msgs/msg/TFMessage":  # tf2_ros's QoS, whatever the recorder wrote
        reliability = ReliabilityPolicy.RELIABLE
        if topic.endswith("tf_static"):
            durability, depth = DurabilityPolicy.TRANSIENT_LOCAL, max(depth, TF_STATIC_DEPTH)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=durability)


def _publishers(node: Any, bag: Bag, topics: Iterable[str] | None, depth: int, stats: PlayStats,
                log: Callable[[str], None]) -> dict[str, tuple[Any, type]]:
    """One publisher per topic to play (of `topics`, else all) with its rclpy class and QoS; the topics that
    cannot play go to ``stats.skipped_topics`` with the reason, logged."""
    wanted = set(topics) if topics else None
    pubs: dict[str, tuple[Any, type]] = {}
    for info in bag.topics.values():
        if wanted is not None and info.name not in wanted:
            continue
        if info.msgtype in bag.unknown_types:
            stats.skipped_topics[info.name] = f"unknown type {info.msgtype}"
            continue
        try:
            cls = _message_class(info.msgtype)
        except (ModuleNotFoundError, AttributeError, ValueError) as exc:
            hint = "; install tf2_msgs (ros-<distro>-tf2-msgs)" if info.msgtype.startswith("tf2_msgs/") else ""
            stats.skipped_topics[info.name] = f"no rclpy message class for {info.msgtype} ({exc}){hint}"
            continue
        qos = _qos_for(bag.connection_for(info.name), info.msgtype, depth, info.name)
        pubs[info.name] = (node.create_publisher(cls, info.name, qos), cls)
    if wanted:
        for t in sorted(wanted - set(bag.topics)):
            stats.skipped_topics[t] = "not in the bag"
    for t, why in stats.skipped_topics.items():
        log(f"play: not publishing {t}: {why}")
    return pubs


class _ClockPublisher:
    """/clock (rosgraph_msgs/Clock) carrying the bag time; does nothing without a publisher."""

    def __init__(self, node: Any, cls: type, enabled: bool, stats: PlayStats):
        self.cls = cls
        self.pub = node.create_publisher(cls, "/clock", 10) if enabled else None
        self.stats = stats

    def __call__(self, t_bag: float) -> None:
        if self.pub is None:
            return
        sec = int(t_bag)
        msg = self.cls()
        msg.clock.sec, msg.clock.nanosec = sec, int(round((t_bag - sec) * 1e9)) % 1_000_000_000
        self.pub.publish(msg)
        self.stats.clock_messages += 1


def _play_once(bag: Bag, pubs: dict[str, tuple[Any, type]], rate: float, period: float | None,
               stop_event: threading.Event, publish_clock: _ClockPublisher, stats: PlayStats) -> None:
    """One pass over the bag: each message at its bag time / `rate`, /clock before it and every `period` s."""
    t_bag0 = None
    wall0 = time.monotonic()
    for m in bag.messages(list(pubs)):
        if stop_event.is_set():
            break
        if t_bag0 is None:
            t_bag0 = m.t
        target = wall0 + (m.t - t_bag0) / rate
        while True:  # wait for the message's time, ticking /clock meanwhile
            now = time.monotonic()
            if now >= target or stop_event.is_set():
                break
            nxt = min(target, now + period) if period else target
            stop_event.wait(max(0.0, nxt - now))
            if period and time.monotonic() < target:
                publish_clock(t_bag0 + (time.monotonic() - wall0) * rate)
        publish_clock(m.t)
        pub, cls = pubs[m.topic]
        pub.publish(to_rclpy(m.msg, cls))
        stats.published += 1
        stats.per_topic[m.topic] = stats.per_topic.get(m.topic, 0) + 1


def play_bag(path: str | Path, *, rate: float = 1.0, loop: bool = False, topics: Iterable[str] | None = None,
             clock: bool = True, clock_rate: float = 100.0, delay: float = 0.5, context: Any = None,
             stop_event: threading.Event | None = None, node_name: str = "vla_ros_player",
             log: Callable[[str], None] = print, progress: bool = False, depth: int = 10) -> PlayStats:
    """Publish the bag (see the module docstring); returns what was published. rclpy is initialised if needed.

    `depth`: history depth of every publisher (/tf_static keeps at least `TF_STATIC_DEPTH`)."""
    import rclpy
    from rosgraph_msgs.msg import Clock

    if not (rate > 0):
        raise ValueError(f"rate: expected a positive factor, got {rate}")
    if not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f"depth: expected a publisher history depth >= 1, got {depth!r}")
    stop_event = stop_event or threading.Event()
    stats = PlayStats()
    owns_context = False
    if context is None:
        if not rclpy.ok():
            rclpy.init()
            owns_context = True
    node = rclpy.create_node(node_name, context=context) if context is not None else rclpy.create_node(node_name)
    try:
        with Bag(path) as bag:
            for note in bag.notes:
                log(note)
            pubs = _publishers(node, bag, topics, depth, stats, log)
            if not pubs:
                raise ValueError(f"bag {path}: nothing to publish")
            publish_clock = _ClockPublisher(node, Clock, clock, stats)
            period = 1.0 / clock_rate if clock and clock_rate > 0 else None
            log(f"play: {bag.path} ({bag.duration:.1f} s, {len(pubs)} topics) at "
                f"{rate:g}x{' in a loop' if loop else ''}{', with /clock' if clock else ''}")
            if delay > 0:
                stop_event.wait(delay)  # let discovery match the publishers first
            while not stop_event.is_set():
                _play_once(bag, pubs, rate, period, stop_event, publish_clock, stats)
                if bag.truncated:
                    log(bag.truncated)
                stats.loops += 1
                if not loop:
                    break
            stop_event.wait(0.2)  # let reliable messages drain before the publishers go
    finally:
        node.destroy_node()
        if owns_context and rclpy.ok():
            rclpy.shutdown()
    return stats
