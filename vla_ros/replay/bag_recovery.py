"""Read what is readable of an interrupted recording: a killed ``ros2 bag record`` leaves an mcap
without its summary and footer, or a ``.db3`` cut inside a page, and rosbags refuses both at open.

- `McapStreamReader`: the `mcap` package's non-seeking `StreamReader` reads records front to back
  (schemas, channels, messages, chunks decompressed whole) up to the last complete chunk; a chunk
  cut by the end of the file is where it stops.
- `Sqlite3RowReader`: a copy of the ``.db3`` whose header claims only the pages the file really
  has, read row by row (rowid = recording order) until the first row whose page is unreadable.

Both look like a rosbags ``Reader`` to `bag_io.Bag` (``connections``, ``message_count``,
``start_time``, ``end_time``, ``messages(connections=)``, ``close()``), so everything downstream is
unchanged; ``covered`` says what they could read, for the warning. They raise `RecoveryError`
with one sentence when nothing is readable, and `NotRos2Error` for an mcap of another profile or
message encoding (JSON / Foxglove, protobuf, ROS 1): that is not a damaged ROS 2 bag at all.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

RECOVERABLE_SUFFIXES = (".mcap", ".db3")


class RecoveryError(ValueError):
    """Nothing of the file is readable; the text says why (one sentence, without the bag name)."""


class NotRos2Error(RecoveryError):
    """An mcap recorded by something other than ROS 2 (profile / message encoding named)."""


def _connection(cid: int, topic: str, msgtype: str, fmt: str, msgdef: str, count: int, serialization: str,
                qos: Any, owner: Any):
    from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat

    try:
        from rosbags.rosbag2.metadata import parse_qos

        profiles = parse_qos(qos) if qos else []
    except Exception:  # noqa: BLE001 - unreadable QoS metadata: play falls back to its defaults
        profiles = []
    fmts = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL}
    definition = MessageDefinition(fmts.get(fmt, MessageDefinitionFormat.NONE), msgdef if fmt in fmts else "")
    return Connection(cid, topic, msgtype, definition, "", count, ConnectionExtRosbag2(serialization, profiles), owner)


def _covered(count: int, start: int, end: int, total: str) -> str:
    return f"{count} messages, t = {start * 1e-9:.3f} .. {end * 1e-9:.3f} s ({(end - start) * 1e-9:.2f} s) {total}"


class _RecoveredBag:
    """What both readers report: the connections found, the messages readable and their time span."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]
        self.connections: list[Any] = []
        self.message_count = 0
        self.start_time = 2**63 - 1
        self.end_time = 0
        self.stopped = ""  # why the scan ended before the end of a file ("" = it did not)


# ------------------------------------------------------------------------------------------ mcap
class McapStreamReader(_RecoveredBag):
    """Sequential reader of mcap files without summary (see the module docstring)."""

    def __init__(self, paths: Sequence[Path]):
        super().__init__(paths)
        self._ids: dict[tuple[int, int], Any] = {}  # (file index, channel id) -> Connection
        self._scan()

    def _records(self, index: int) -> Iterator[Any]:
        from mcap.stream_reader import StreamReader

        with open(self.paths[index], "rb") as f:
            yield from StreamReader(f, emit_chunks=False).records

    def _scan(self) -> None:
        from mcap.records import Channel, Footer, Header, Message, Schema

        by_topic: dict[tuple[str, str], Any] = {}
        counts: dict[int, int] = {}
        for index, path in enumerate(self.paths):
            schemas: dict[int, Schema] = {}
            try:
                for rec in self._records(index):
                    if isinstance(rec, Header):
                        if rec.profile not in ("ros2", ""):
                            raise NotRos2Error(f"{path.name} is an mcap of profile {rec.profile!r}, not a ROS 2 "
                                               "recording (profile 'ros2', CDR messages)")
                    elif isinstance(rec, Schema):
                        schemas[rec.id] = rec
                    elif isinstance(rec, Channel):
                        self._add_channel(index, path, rec, schemas, by_topic)
                    elif isinstance(rec, Message):
                        conn = self._ids.get((index, rec.channel_id))
                        if conn is None:
                            continue
                        counts[conn.id] = counts.get(conn.id, 0) + 1
                        self.start_time = min(self.start_time, rec.log_time)
                        self.end_time = max(self.end_time, rec.log_time)
                    elif isinstance(rec, Footer):
                        break
            except NotRos2Error:
                raise
            except Exception as exc:  # noqa: BLE001 - the cut: everything before it is kept
                detail = f": {exc}" if str(exc) else ""
                self.stopped = f"{path.name} ends inside a record ({type(exc).__name__}{detail})"
                if index + 1 < len(self.paths):
                    continue
        self.connections = [c._replace(msgcount=counts.get(c.id, 0)) for c in self.connections]
        self._ids = {k: next(c for c in self.connections if c.id == v.id) for k, v in self._ids.items()}
        self.message_count = sum(counts.values())
        if self.message_count == 0:
            where = self.stopped or "the file holds no message record"
            raise RecoveryError(f"no complete message: {where} (an mcap cut before its first complete chunk)")

    def _add_channel(self, index: int, path: Path, rec: Any, schemas: dict, by_topic: dict) -> None:
        schema = schemas.get(rec.schema_id)
        if rec.message_encoding != "cdr":
            raise NotRos2Error(
                f"{path.name}: topic {rec.topic} has message encoding {rec.message_encoding!r}"
                + (f" (schema encoding {schema.encoding!r})" if schema is not None and schema.encoding else "")
                + "; ROS 2 bags carry CDR messages, this is not a ROS 2 recording"
            )
        msgtype = schema.name if schema is not None else ""
        key = (rec.topic, msgtype)
        conn = by_topic.get(key)
        if conn is None:
            conn = _connection(len(self.connections) + 1, rec.topic, msgtype, schema.encoding if schema else "",
                               schema.data.decode("utf-8", "replace") if schema else "", 0, "cdr",
                               rec.metadata.get("offered_qos_profiles", ""), self)
            by_topic[key] = conn
            self.connections.append(conn)
        self._ids[(index, rec.id)] = conn

    @property
    def covered(self) -> str:
        return _covered(self.message_count, self.start_time, self.end_time, "read sequentially")

    def messages(self, connections: Sequence[Any] = ()) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, log time ns, CDR bytes) in file order, up to the cut."""
        from mcap.records import Channel, Footer, Message

        wanted = {c.id for c in connections} if connections else None
        for index in range(len(self.paths)):
            try:
                for rec in self._records(index):
                    if isinstance(rec, Message):
                        conn = self._ids.get((index, rec.channel_id))
                        if conn is not None and (wanted is None or conn.id in wanted):
                            yield conn, rec.log_time, rec.data
                    elif isinstance(rec, Channel):
                        continue
                    elif isinstance(rec, Footer):
                        break
            except Exception:  # noqa: BLE001 - the cut found by the scan: stop quietly, as the scan did
                continue

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------ sqlite3
def _page_count_fixed_copy(path: Path) -> Path:
    """A temporary copy of the .db3 holding its whole pages, with the header's page count set to them."""
    raw = path.read_bytes()
    if len(raw) < 100 or not raw.startswith(b"SQLite format 3\x00"):
        raise RecoveryError(f"{path.name} is not an SQLite database (no SQLite header)")
    (page_size,) = struct.unpack(">H", raw[16:18])
    page_size = 65536 if page_size == 1 else page_size
    pages = len(raw) // page_size
    if pages < 1:
        raise RecoveryError(f"{path.name} is cut inside its first page")
    fixed = bytearray(raw[: pages * page_size])
    fixed[28:32] = struct.pack(">I", pages)
    fd, name = tempfile.mkstemp(suffix=".db3", prefix="vla_ros_recovered_")
    with os.fdopen(fd, "wb") as f:
        f.write(fixed)
    return Path(name)


class Sqlite3RowReader(_RecoveredBag):
    """Row-by-row reader of cut .db3 files (see the module docstring)."""

    def __init__(self, paths: Sequence[Path]):
        super().__init__(paths)
        self._copies: list[Path] = []
        self._dbs: list[sqlite3.Connection] = []
        self._topic_ids: list[dict[int, Any]] = []
        try:
            self._scan()
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path) -> sqlite3.Connection:
        copy = _page_count_fixed_copy(path)
        self._copies.append(copy)
        db = sqlite3.connect(f"file:{copy}?mode=ro&immutable=1", uri=True)
        self._dbs.append(db)
        return db

    def _scan(self) -> None:
        by_topic: dict[tuple[str, str], Any] = {}
        counts: dict[int, int] = {}
        for path in self.paths:
            db = self._open(path)
            try:
                cols = [r[1] for r in db.execute("PRAGMA table_info(topics)")]
                defs = {}
                if db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'message_definitions'").fetchone()[0]:
                    for name, enc, text in db.execute(
                            "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"):
                        defs[name] = (enc, text)
                qos_col = "offered_qos_profiles" if "offered_qos_profiles" in cols else "''"
                topics = db.execute(f"SELECT id, name, type, serialization_format, {qos_col} FROM topics").fetchall()
            except sqlite3.Error as exc:
                raise RecoveryError(f"{path.name} is cut before its topics table can be read ({exc})") from None
            ids: dict[int, Any] = {}
            for tid, name, msgtype, ser, qos in topics:
                if ser != "cdr":
                    raise NotRos2Error(f"{path.name}: topic {name} has serialization format {ser!r}; only cdr "
                                       "(ROS 2's) is supported")
                key = (name, msgtype)
                conn = by_topic.get(key)
                if conn is None:
                    enc, text = defs.get(msgtype, ("", ""))
                    conn = _connection(len(self.connections) + 1, name, msgtype, enc, text, 0, ser, qos, self)
                    by_topic[key] = conn
                    self.connections.append(conn)
                ids[tid] = conn
            self._topic_ids.append(ids)
            cur = db.execute("SELECT topic_id, timestamp FROM messages")
            try:
                for tid, ts in cur:
                    conn = ids.get(tid)
                    if conn is None:
                        continue
                    counts[conn.id] = counts.get(conn.id, 0) + 1
                    self.start_time = min(self.start_time, int(ts))
                    self.end_time = max(self.end_time, int(ts))
            except sqlite3.Error as exc:
                self.stopped = f"{path.name} is cut inside its messages table ({exc})"
        self.connections = [c._replace(msgcount=counts.get(c.id, 0)) for c in self.connections]
        remap = {c.id: c for c in self.connections}
        self._topic_ids = [{k: remap[v.id] for k, v in ids.items()} for ids in self._topic_ids]
        self.message_count = sum(counts.values())
        if self.message_count == 0:
            raise RecoveryError(f"no readable message: {self.stopped or 'the messages table is empty'}")

    @property
    def covered(self) -> str:
        return _covered(self.message_count, self.start_time, self.end_time, "read row by row")

    def messages(self, connections: Sequence[Any] = ()) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, timestamp ns, CDR bytes) in recording (rowid) order, up to the first bad page."""
        wanted = {c.id for c in connections} if connections else None
        for db, ids in zip(self._dbs, self._topic_ids):
            cur = db.execute("SELECT topic_id, timestamp, data FROM messages")
            try:
                for tid, ts, data in cur:
                    conn = ids.get(tid)
                    if conn is not None and (wanted is None or conn.id in wanted):
                        yield conn, int(ts), data
            except sqlite3.Error:
                return

    def close(self) -> None:
        for db in self._dbs:
            try:
                db.close()
            except sqlite3.Error:
                pass
        self._dbs = []
        for copy in self._copies:
            try:
                copy.unlink()
            except OSError:
                pass
        self._copies = []


def recovery_reader(paths: Sequence[Path]):
    """The reader for these storage files (all .mcap or all .db3)."""
    suffixes = {Path(p).suffix for p in paths}
    if suffixes == {".mcap"}:
        return McapStreamReader(paths)
    if suffixes == {".db3"}:
        return Sqlite3RowReader(paths)
    raise RecoveryError(f"cannot recover storage files {', '.join(Path(p).name for p in paths)}")


def sniff_mcap_profile(path: Path) -> str | None:
    """The profile in an mcap's header record, or None if unreadable (cheap: reads the first bytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if not head.startswith(b"\x89MCAP0\r\n") or len(head) < 8 + 9 + 4 or head[8] != 0x01:
        return None
    try:
        (n,) = struct.unpack_from("<I", head, 17)
        return head[21:21 + n].decode("utf-8", "replace")
    except struct.error:
        return None

