"""ROS 2 bag I/O for the replay, with `rosbags` (pure Python; no rosbag2 / ``ros2 bag`` needed).

Reads rosbag2 directories (mcap or sqlite3 storage) and single ``.mcap`` / ``.db3`` files; writes
rosbag2 directories (mcap by default, viewable in Foxglove). The vla_ros message types
(``msg/*.msg``: ActionChunk, PolicyStatus, ExecutorStatus) are registered from their .msg files,
found through the ament index (``share/vla_ros/msg``) or the source tree; types a bag carries
definitions for (mcap embeds them) are registered from the bag.

Everything that can go wrong with a bag becomes one `BagError` whose text names the bag and the
problem (missing path, not a bag, unreadable or truncated file, no messages, missing topic,
unknown type), never a stack trace from deep inside the reader:

    with Bag("run1") as bag:                          # BagError if unusable
        bag.require({"/joint_states": ("sensor_msgs/msg/JointState",)}, why="robot.joint_state_topic")
        for m in bag.messages(["/joint_states"]):     # BagMessage(topic, msgtype, t, t_ns, msg)
            ...
        if bag.truncated: print(bag.truncated)        # a read that stopped early, explained

    with BagWriter("out/bag", storage="mcap") as w:   # rosbag2 directory
        w.write("/ee_pose", t, w.msgs.pose_stamped(t, "base_link", position, quaternion))
"""

from __future__ import annotations

import functools
import os
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from vla_ros.core.msg_decode import sec_to_sec_nanosec
from vla_ros.core.rotations import rotvec_to_quat
from vla_ros.core.types import ActionChunk, ActionMode

VLA_MSG_TYPES = ("ActionChunk", "PolicyStatus", "ExecutorStatus")
STORAGES = ("mcap", "sqlite3")

# Message types of the inputs the replay reads, by role.
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
JOINT_STATE_TYPES = ("sensor_msgs/msg/JointState",)
POSE_TYPES = ("geometry_msgs/msg/PoseStamped",)
TWIST_TYPES = ("geometry_msgs/msg/TwistStamped",)
STRING_TYPES = ("std_msgs/msg/String",)
CHUNK_TYPES = ("vla_ros/msg/ActionChunk",)
FLOAT64_TYPES = ("std_msgs/msg/Float64",)


class BagError(ValueError):
    """A bag cannot be read or used; the text names the bag and what is wrong."""


# ---------------------------------------------------------------------------------------- types
def msg_dirs() -> list[Path]:
    """Directories that may hold vla_ros .msg files: the ament index share, then the source tree."""
    dirs: list[Path] = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            dirs.append(Path(get_package_share_directory("vla_ros")) / "msg")
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    dirs.append(Path(os.path.realpath(__file__)).parents[2] / "msg")
    return [d for d in dirs if d.is_dir()]


def vla_msg_definitions() -> dict[str, str]:
    """'vla_ros/msg/Name' -> .msg text for every vla_ros message."""
    found: dict[str, str] = {}
    for d in msg_dirs():
        for name in VLA_MSG_TYPES:
            key = f"vla_ros/msg/{name}"
            path = d / f"{name}.msg"
            if key not in found and path.is_file():
                found[key] = path.read_text(encoding="utf-8")
    missing = [n for n in VLA_MSG_TYPES if f"vla_ros/msg/{n}" not in found]
    if missing:
        raise BagError(
            f"vla_ros message definitions {', '.join(missing)} not found (looked in share/vla_ros/msg via the ament "
            f"index and the source tree's msg/); source setup.bash"
        )
    return found


@functools.lru_cache(maxsize=1)
def _base_fielddefs() -> dict:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.LATEST)
    typs: dict = {}
    for name, text in vla_msg_definitions().items():
        typs.update(get_types_from_msg(text, name))
    store.register(typs)
    return typs


def make_typestore():
    """A fresh rosbags typestore: ROS 2 (latest distro) standard types + the vla_ros messages."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    store.register(_base_fielddefs())
    return store


@functools.lru_cache(maxsize=1)
def shared_typestore():
    """One process-wide typestore (standard + vla_ros types) for writing and the common case."""
    return make_typestore()


def _register_from_bag(store, connections) -> dict[str, str]:
    """Register the types of `connections` the store lacks from their embedded definitions.

    Returns msgtype -> why it could not be registered (no definition, unparsable).
    """
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    problems: dict[str, str] = {}
    for conn in connections:
        if conn.msgtype in store.types or conn.msgtype in problems:
            continue
        fmt, data = conn.msgdef.format, conn.msgdef.data
        if fmt == MessageDefinitionFormat.NONE or not data:
            problems[conn.msgtype] = "not a standard ROS 2 or vla_ros type, and the bag carries no definition of it"
            continue
        try:
            typs: dict = {}
            if fmt == MessageDefinitionFormat.MSG:
                typs.update(get_types_from_msg(data, conn.msgtype))
            else:
                sep = "=" * 80 + "\n"
                parts = data.split(sep)[1:] if data.startswith(f"{sep}IDL: ") else [data]
                for part in parts:
                    typs.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
            store.register(typs)
        except Exception as exc:  # noqa: BLE001 - any parser failure = an unknown type, explained
            problems[conn.msgtype] = f"its definition in the bag cannot be parsed ({type(exc).__name__}: {exc})"
    return problems


# ---------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int  # -1 when the bag does not say (an mcap file without summary)


@dataclass(frozen=True)
class BagMessage:
    """One message: topic, type, bag (receive) time in s and ns, and the deserialised message."""

    topic: str
    msgtype: str
    t: float
    t_ns: int
    msg: Any
    raw: bytes | memoryview | None = None


_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AssertionError, struct.error,
                sqlite3.Error, RuntimeError)


def _read_errors() -> tuple[type[BaseException], ...]:
    from rosbags.rosbag2 import ReaderError

    errs: list[type[BaseException]] = [ReaderError, *_READ_ERRORS]
    try:
        from rosbags.serde import SerdeError

        errs.append(SerdeError)
    except ImportError:  # pragma: no cover - older rosbags
        pass
    return tuple(errs)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in text else f"{text} ({type(exc).__name__})"


class Bag:
    """A bag opened for reading (see the module docstring). Use as a context manager."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.notes: list[str] = []  # things worth telling the user (e.g. read without metadata.yaml)
        self.truncated = ""  # why the last `messages` pass stopped early ("" = it did not)
        self.storage = ""
        target = self._locate()
        from rosbags.rosbag2 import Reader

        errors = _read_errors()
        try:
            self._reader = Reader(target)
            self._reader.open()
        except FileNotFoundError as exc:
            raise BagError(f"bag {self.path}: {exc}") from None
        except errors as exc:
            raise BagError(f"bag {self.path}: cannot open: {_describe(exc)} (truncated or corrupt file?)") from None
        self.typestore = make_typestore()
        conns = list(self._reader.connections)
        self.unknown_types = _register_from_bag(self.typestore, conns)
        self._conns = conns
        counts: dict[str, int] = {}
        types: dict[str, str] = {}
        for c in conns:
            types.setdefault(c.topic, c.msgtype)
            counts[c.topic] = counts.get(c.topic, 0) + int(c.msgcount or 0)
        self.topics: dict[str, TopicInfo] = {
            t: TopicInfo(t, types[t], counts[t] if counts[t] or self.storage != "mcap-file" else -1) for t in types
        }
        self.message_count = int(self._reader.message_count or 0)
        if self.message_count == 0:
            self.message_count = self._count_if_unknown()
        if self.message_count == 0:
            self.close()
            raise BagError(f"bag {self.path}: contains no messages")
        self.start_ns = int(self._reader.start_time)
        self.end_ns = int(self._reader.end_time)
        if self.end_ns <= 0 or self.start_ns >= 2**63 - 1:
            self.start_ns, self.end_ns = self._scan_times()

    def _locate(self) -> Path:
        p = self.path
        if not p.exists():
            raise BagError(f"bag {p}: does not exist")
        if p.is_dir():
            if (p / "metadata.yaml").is_file():
                self.storage = "directory"
                return p
            files = sorted(p.glob("*.mcap")) + sorted(p.glob("*.db3"))
            if len(files) == 1:
                self.notes.append(
                    f"bag {p}: no metadata.yaml (recording interrupted?); reading {files[0].name} directly"
                )
                self.storage = "mcap-file" if files[0].suffix == ".mcap" else "db3-file"
                return files[0]
            what = f"{len(files)} storage files" if files else "no .mcap or .db3 file"
            raise BagError(f"bag {p}: not a rosbag2 directory (no metadata.yaml, {what})")
        if p.suffix == ".mcap":
            self.storage = "mcap-file"
            return p
        if p.suffix == ".db3":
            self.storage = "db3-file"
            return p
        if p.suffix == ".bag":
            raise BagError(f"bag {p}: ROS 1 bags are not supported; expected a rosbag2 directory or a .mcap file")
        raise BagError(f"bag {p}: unrecognised file type {p.suffix!r}; expected a rosbag2 directory or a .mcap file")

    def _count_if_unknown(self) -> int:
        """Files without a summary report 0 messages: count by reading (0 = really empty)."""
        n = 0
        try:
            for _ in self._reader.messages():
                n += 1
        except _read_errors() as exc:
            if n == 0:
                self.close()
                raise BagError(f"bag {self.path}: cannot read any message: {_describe(exc)} (truncated or corrupt file?)") from None
        return n

    def _scan_times(self) -> tuple[int, int]:
        lo, hi = 2**63 - 1, 0
        try:
            for _, t, _ in self._reader.messages():
                lo, hi = min(lo, t), max(hi, t)
        except _read_errors():
            pass
        return lo, hi

    # -------------------------------------------------------------------- info
    @property
    def start(self) -> float:
        return self.start_ns * 1e-9

    @property
    def end(self) -> float:
        return self.end_ns * 1e-9

    @property
    def duration(self) -> float:
        return max(0.0, (self.end_ns - self.start_ns) * 1e-9)

    def topic_list(self) -> str:
        return ", ".join(f"{t.name} ({t.msgtype})" for t in sorted(self.topics.values(), key=lambda x: x.name)) or "none"

    def require(self, wanted: Mapping[str, tuple[Sequence[str], str]]) -> None:
        """Check topics exist with an accepted type and are deserialisable; one BagError lists every problem.

        `wanted`: topic -> (accepted msg types (empty = any), what needs it, e.g. "robot.joint_state_topic").
        """
        problems = []
        for topic, (types, why) in wanted.items():
            info = self.topics.get(topic)
            if info is None:
                problems.append(f"topic {topic} ({why}) is not in the bag")
            elif info.msgtype in self.unknown_types:
                problems.append(f"topic {topic} ({why}) has unknown type {info.msgtype}: {self.unknown_types[info.msgtype]}")
            elif types and info.msgtype not in types:
                problems.append(f"topic {topic} ({why}) has type {info.msgtype}, expected {' or '.join(types)}")
            elif info.count == 0:
                problems.append(f"topic {topic} ({why}) has no messages")
        if problems:
            raise BagError(f"bag {self.path}: " + "; ".join(problems) + f". Bag topics: {self.topic_list()}")

    # -------------------------------------------------------------------- messages
    def messages(self, topics: Iterable[str] | None = None, *, raw: bool = False) -> Iterator[BagMessage]:
        """Messages of `topics` (all if None) in bag-time order, deserialised.

        A read failure before the first message raises BagError; a failure later (a truncated
        file) ends the iteration and sets ``self.truncated`` to the reason, so what was readable
        is still used (the caller reports it).
        """
        wanted = None if topics is None else set(topics)
        conns = [c for c in self._conns if (wanted is None or c.topic in wanted) and c.msgtype not in self.unknown_types]
        self.truncated = ""
        if not conns:
            return
        errors = _read_errors()
        store = self.typestore
        n = 0
        last_t = 0
        it = self._reader.messages(connections=conns)
        while True:
            try:
                conn, t_ns, data = next(it)
                msg = store.deserialize_cdr(data, conn.msgtype)
            except StopIteration:
                return
            except errors as exc:
                if n == 0:
                    raise BagError(f"bag {self.path}: cannot read messages: {_describe(exc)} (truncated or corrupt file?)") from None
                self.truncated = (
                    f"bag {self.path}: reading stopped after {n} messages at t = {last_t * 1e-9:.3f} s: "
                    f"{_describe(exc)} (truncated file?); the rest of the bag is skipped"
                )
                return
            n += 1
            last_t = t_ns
            yield BagMessage(conn.topic, conn.msgtype, t_ns * 1e-9, int(t_ns), msg, data if raw else None)

    def connection_for(self, topic: str):
        for c in self._conns:
            if c.topic == topic:
                return c
        raise KeyError(topic)

    def close(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - closing a broken bag must not hide the real error
                pass
            self._reader = None

    def __enter__(self) -> "Bag":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------- messages
def _time_fields(t: float) -> tuple[int, int]:
    return sec_to_sec_nanosec(t)


class MessageFactory:
    """Builds rosbags message objects of the standard and vla_ros types (for writing bags)."""

    def __init__(self, store=None):
        self.store = store or shared_typestore()
        self.T = self.store.types

    def time(self, t: float):
        sec, nsec = _time_fields(t)
        return self.T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)

    def header(self, t: float, frame_id: str = ""):
        return self.T["std_msgs/msg/Header"](stamp=self.time(t), frame_id=frame_id)

    def image(self, t: float, frame_id: str, rgb: np.ndarray, encoding: str = "rgb8"):
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = rgb.shape[:2]
        ch = 1 if rgb.ndim == 2 else rgb.shape[2]
        if encoding == "bgr8":
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        return self.T["sensor_msgs/msg/Image"](
            header=self.header(t, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0, step=w * ch,
            data=rgb.reshape(-1),
        )

    def compressed_image(self, t: float, frame_id: str, rgb: np.ndarray, fmt: str = "jpeg"):
        import cv2

        ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(rgb[..., ::-1]))
        if not ok:
            raise ValueError("cannot encode image")
        return self.T["sensor_msgs/msg/CompressedImage"](header=self.header(t, frame_id), format=fmt, data=buf.reshape(-1))

    def joint_state(self, t: float, names: Sequence[str], positions: Sequence[float], frame_id: str = ""):
        return self.T["sensor_msgs/msg/JointState"](
            header=self.header(t, frame_id), name=list(names), position=np.ascontiguousarray(positions, np.float64),
            velocity=np.zeros(0), effort=np.zeros(0),
        )

    def pose(self, position: Sequence[float], quaternion: Sequence[float]):
        p, q = position, quaternion
        return self.T["geometry_msgs/msg/Pose"](
            position=self.T["geometry_msgs/msg/Point"](x=float(p[0]), y=float(p[1]), z=float(p[2])),
            orientation=self.T["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
        )

    def pose_stamped(self, t: float, frame_id: str, position, quaternion):
        return self.T["geometry_msgs/msg/PoseStamped"](header=self.header(t, frame_id), pose=self.pose(position, quaternion))

    def pose_array(self, t: float, frame_id: str, positions, quaternions):
        return self.T["geometry_msgs/msg/PoseArray"](
            header=self.header(t, frame_id), poses=[self.pose(p, q) for p, q in zip(positions, quaternions)]
        )

    def twist_stamped(self, t: float, frame_id: str, linear, angular):
        V = self.T["geometry_msgs/msg/Vector3"]
        twist = self.T["geometry_msgs/msg/Twist"](
            linear=V(x=float(linear[0]), y=float(linear[1]), z=float(linear[2])),
            angular=V(x=float(angular[0]), y=float(angular[1]), z=float(angular[2])),
        )
        return self.T["geometry_msgs/msg/TwistStamped"](header=self.header(t, frame_id), twist=twist)

    def string(self, text: str):
        return self.T["std_msgs/msg/String"](data=str(text))

    def float64(self, value: float):
        return self.T["std_msgs/msg/Float64"](data=float(value))

    def clock(self, t: float):
        return self.T["rosgraph_msgs/msg/Clock"](clock=self.time(t))

    def action_chunk(self, chunk: ActionChunk):
        """vla_ros/ActionChunk from an ActionChunk (same layout as the policy node publishes)."""
        quats = rotvec_to_quat(chunk.actions[:, 3:6])
        ref = chunk.reference_pose
        ref_pose = self.pose(ref.position, ref.orientation) if ref is not None else self.pose((0, 0, 0), (0, 0, 0, 1))
        return self.T["vla_ros/msg/ActionChunk"](
            header=self.header(chunk.stamp, chunk.frame_id),
            seq=int(chunk.seq),
            policy_id=chunk.policy_id,
            checkpoint_id=chunk.checkpoint_id,
            action_mode=int(ActionMode(chunk.mode)),
            dt=float(chunk.dt),
            poses=[self.pose(chunk.actions[i, :3], quats[i]) for i in range(chunk.horizon)],
            gripper=np.ascontiguousarray(chunk.actions[:, 6], np.float64),
            reference_pose=ref_pose,
            inference_latency=float(chunk.inference_latency),
            observation_age=float(chunk.observation_age),
        )


# ---------------------------------------------------------------------------------------- writing
def _qos(transient_local: bool = False):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST, 10 if not transient_local else 1, QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        zero, zero, QosLiveliness.AUTOMATIC, zero, False,
    )


class BagWriter:
    """Writes a rosbag2 directory (``storage`` mcap or sqlite3); topics are added on first write."""

    def __init__(self, path: str | os.PathLike, storage: str = "mcap", store=None):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"storage: expected one of {', '.join(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"bag {self.path}: exists already; choose a new output path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store = store or shared_typestore()
        self.msgs = MessageFactory(self.store)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self.count = 0

    def add_topic(self, topic: str, msgtype: str, *, latched: bool = False, msgdef: str | None = None,
                  digest: str | None = None):
        if topic in self._conns:
            return self._conns[topic]
        kwargs: dict[str, Any] = {"offered_qos_profiles": [_qos(latched)]}
        if msgdef is not None and digest:
            kwargs.update(msgdef=msgdef, rihs01=digest)
        else:
            kwargs["typestore"] = self.store
        conn = self._writer.add_connection(topic, msgtype, **kwargs)
        self._conns[topic] = conn
        return conn

    def write(self, topic: str, t: float, msg: Any, *, latched: bool = False) -> None:
        """Serialise and write `msg` at bag time `t` (s); the topic's type is the message's."""
        msgtype = msg.__msgtype__
        conn = self._conns.get(topic) or self.add_topic(topic, msgtype, latched=latched)
        self._writer.write(conn, int(round(t * 1e9)), self.store.serialize_cdr(msg, msgtype))
        self.count += 1

    def write_raw(self, topic: str, t_ns: int, data: bytes | memoryview) -> None:
        """Write already-serialised CDR bytes on a topic added with `add_topic`."""
        self._writer.write(self._conns[topic], int(t_ns), data)
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, exc_type, *exc: Any) -> None:
        self.close()
