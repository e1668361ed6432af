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

from vla_ros.core.msg_encode import MessageEncoder

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
    """A bag cannot be read or used; the text names the bag and what is wrong. ``notes``: what the
    bag's reading noticed before the error (e.g. no metadata.yaml), kept for the skip report."""

    notes: tuple[str, ...] = ()


TOPIC_LIST_LIMIT = 12  # topics named in an error; the rest are counted


def modern_type_name(msgtype: str) -> str:
    """'sensor_msgs/Image' (ROS 2 before Eloquent, ROS 1 habits) -> 'sensor_msgs/msg/Image'; others unchanged."""
    parts = msgtype.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 and all(parts) else msgtype


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


def _no_database(text: str, mcap: bool) -> str:
    """rosbags calls every storage file a database; an mcap is not one."""
    return text.replace("database files", "storage files").replace("database", "file") if mcap else text


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
        self.recovered = False  # read by bag_recovery (an interrupted recording), see `notes`
        try:
            self._open()
        except BagError as exc:  # what was noticed before the error stays with it (skip report)
            exc.notes = tuple(self.notes)
            raise

    def _open(self) -> None:
        target = self._locate()
        from rosbags.rosbag2 import Reader

        errors = _read_errors()
        try:
            self._reader = Reader(target)
            self._reader.open()
        except FileNotFoundError as exc:
            raise BagError(f"bag {self.path}: {exc}") from None
        except errors as exc:
            self._reader = self._recover(target, exc)
        self._check_serialization()
        self.typestore = make_typestore()
        conns = list(self._reader.connections)
        # Pre-Eloquent type names ("sensor_msgs/Image") read as their modern ones ("sensor_msgs/msg/Image").
        self._msgtypes = {c.msgtype: modern_type_name(c.msgtype) for c in conns}
        self.unknown_types = _register_from_bag(self.typestore, [c._replace(msgtype=modern_type_name(c.msgtype))
                                                                 for c in conns])
        self._conns = conns
        counts: dict[str, int] = {}
        types: dict[str, str] = {}
        for c in conns:
            types.setdefault(c.topic, self._msgtypes[c.msgtype])
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

    def _storage_files(self, target: Path) -> list[Path]:
        """The storage files of `target`; for a directory those metadata.yaml names (BagError if missing)."""
        if not target.is_dir():
            return [target]
        import yaml

        try:
            meta = yaml.safe_load((target / "metadata.yaml").read_text(encoding="utf-8")) or {}
            info = meta["rosbag2_bagfile_information"]
            names = [str(n) for n in info.get("relative_file_paths", [])]
            storage = str(info.get("storage_identifier", ""))
            formats = {str(t.get("topic_metadata", {}).get("serialization_format", "cdr"))
                       for t in info.get("topics_with_message_count", [])}
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise BagError(f"bag {self.path}: metadata.yaml cannot be read: {_describe(exc)}") from None
        if formats - {"cdr"}:
            raise BagError(f"bag {self.path}: unsupported serialization format {', '.join(sorted(formats - {'cdr'}))} "
                           "(metadata.yaml); only cdr, ROS 2's own, can be read")
        files = [target / n for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            present = sorted(p.name for p in target.iterdir() if p.suffix in (".mcap", ".db3"))
            raise BagError(
                f"bag {self.path}: metadata.yaml names the storage file{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} ({storage or 'unknown'} storage), which {'are' if len(missing) > 1 else 'is'} "
                f"not in the directory (it has {', '.join(present) or 'no .mcap or .db3 file'})"
            )
        return files

    def _recover(self, target: Path, exc: BaseException):
        """rosbags refused to open `target`: say exactly why, or read what an interrupted recording holds."""
        from vla_ros.replay.bag_recovery import NotRos2Error, RecoveryError, recovery_reader, sniff_mcap_profile

        text = _describe(exc)
        files = self._storage_files(target)
        if "serialization format" in text.lower():
            raise BagError(f"bag {self.path}: unsupported serialization format: {text}; only cdr (ROS 2) is supported")
        mcaps = [f for f in files if f.suffix == ".mcap"]
        for f in mcaps:
            profile = sniff_mcap_profile(f)
            if profile is not None and profile != "ros2":
                raise BagError(f"bag {self.path}: {f.name} is not a ROS 2 recording: its mcap profile is "
                               f"{profile or 'empty'!r} (e.g. a JSON / Foxglove recording), not 'ros2' with CDR "
                               "messages")
        kind = "mcap file" if mcaps else "sqlite3 database"
        try:
            reader = recovery_reader(files)
        except NotRos2Error as err:
            raise BagError(f"bag {self.path}: not a ROS 2 recording: {err}") from None
        except RecoveryError as err:
            raise BagError(f"bag {self.path}: cannot open the {kind}: {_no_database(text, bool(mcaps))}; nothing "
                           f"readable: {err} (truncated or corrupt file?)") from None
        except (OSError, sqlite3.Error, ValueError) as err:
            raise BagError(f"bag {self.path}: cannot open the {kind}: {_no_database(text, bool(mcaps))} "
                           f"(corrupt file? {_describe(err)})") from None
        cut = f"; {reader.stopped}" if reader.stopped else ""
        self.notes.append(
            f"bag {self.path}: the {kind} is incomplete ({_no_database(text, bool(mcaps))}; recording interrupted, "
            f"truncated file?): evaluated up to the cut, {reader.covered}{cut}; the rest of the bag is skipped"
        )
        self.recovered = True
        return reader

    def _check_serialization(self) -> None:
        bad = {c.topic: getattr(c.ext, "serialization_format", "cdr") for c in self._reader.connections}
        bad = {t: f for t, f in bad.items() if f != "cdr"}
        if bad:
            self.close()
            topic, fmt = next(iter(bad.items()))
            raise BagError(f"bag {self.path}: unsupported serialization format {fmt!r} (topic {topic}"
                           f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); only cdr (ROS 2) is supported")

    def _count_if_unknown(self) -> int:
        """Files without a summary report 0 messages: count by reading (0 = really empty)."""
        n = 0
        try:
            for _ in self._reader.messages():
                n += 1
        except _read_errors() as exc:
            if n == 0:
                self.close()
                raise BagError(f"bag {self.path}: cannot read any message: {_describe(exc)} (truncated or corrupt "
                               "file?)") from None
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

    def topic_list(self, limit: int = TOPIC_LIST_LIMIT) -> str:
        """'name (type), ...' of the bag's topics, at most `limit` of them (a real bag has hundreds)."""
        items = [f"{t.name} ({t.msgtype})" for t in sorted(self.topics.values(), key=lambda x: x.name)]
        more = f", and {len(items) - limit} more" if len(items) > limit else ""
        return ", ".join(items[:limit]) + more if items else "none"

    def image_like_topics(self, limit: int = 5) -> list[str]:
        """Topics that look like camera streams by name or type (for the no-camera hint)."""
        words = ("image", "camera", "rgb", "color", "depth", "compressed", "video")
        found = [t.name + f" ({t.msgtype})" for t in sorted(self.topics.values(), key=lambda x: x.name)
                 if any(w in t.name.lower() or w in t.msgtype.lower() for w in words)]
        return found[:limit] + ([f"and {len(found) - limit} more"] if len(found) > limit else [])

    def require(self, wanted: Mapping[str, tuple[Sequence[str], str]]) -> None:
        """Check topics exist with an accepted type and are deserialisable; one BagError lists every problem.

        `wanted`: topic -> (accepted msg types (empty = any), what needs it, e.g. "robot.joint_state_topic").
        """
        cams = [t for t, (types, _) in wanted.items() if set(types) & set(IMAGE_TYPES)]
        if cams and not any(t.msgtype in IMAGE_TYPES for t in self.topics.values()):
            like = self.image_like_topics()
            raise BagError(
                f"bag {self.path}: this bag has no sensor_msgs/Image or CompressedImage topic (robot.camera_topics: "
                f"{', '.join(cams)}); " + (f"image-like topics: {', '.join(like)}" if like else
                                           f"{len(self.topics)} topics, none image-like")
            )
        problems = []
        for topic, (types, why) in wanted.items():
            info = self.topics.get(topic)
            if info is None:
                problems.append(f"topic {topic} ({why}) is not in the bag")
            elif info.msgtype in self.unknown_types:
                problems.append(f"topic {topic} ({why}) has unknown type {info.msgtype}: "
                                f"{self.unknown_types[info.msgtype]}")
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
        modern = self._msgtypes
        conns = [c for c in self._conns if (wanted is None or c.topic in wanted)
                 and modern[c.msgtype] not in self.unknown_types]
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
                msgtype = modern[conn.msgtype]
                msg = store.deserialize_cdr(data, msgtype)
            except StopIteration:
                return
            except errors as exc:
                if n == 0:
                    raise BagError(f"bag {self.path}: cannot read messages: {_describe(exc)} (truncated or corrupt "
                                   "file?)") from None
                self.truncated = (
                    f"bag {self.path}: reading stopped after {n} messages at t = {last_t * 1e-9:.3f} s: "
                    f"{_describe(exc)} (truncated file?); the rest of the bag is skipped"
                )
                return
            n += 1
            last_t = t_ns
            yield BagMessage(conn.topic, msgtype, t_ns * 1e-9, int(t_ns), msg, data if raw else None)

    def connection_for(self, topic: str):
        for c in self._conns:
            if c.topic == topic:
                return c._replace(msgtype=self._msgtypes[c.msgtype])
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
class MessageFactory(MessageEncoder):
    """`MessageEncoder` bound to a rosbags typestore (for writing bags).

    Only the image builders differ: they keep the bag writers' argument order (stamp, frame first).
    """

    def __init__(self, store=None):
        self.store = store or shared_typestore()
        self.T = self.store.types
        super().__init__(self.T)

    def image(self, t: float, frame_id: str, rgb: np.ndarray, encoding: str = "rgb8"):
        return super().image(rgb, t, frame_id, encoding)

    def compressed_image(self, t: float, frame_id: str, rgb: np.ndarray, fmt: str = "jpeg"):
        return super().compressed_image(rgb, t, frame_id, fmt)


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
