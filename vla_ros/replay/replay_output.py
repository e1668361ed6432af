"""The output bag of a replay (``replay.output_bag``): the input messages as recorded, plus every
lane's chunks (ActionChunk and a PoseArray of its poses) at their arrival and its commands at each
tick, under ``replay.output_prefix``/<lane>/, in the nodes' message layout over the bag's classes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vla_ros.core.msg_encode import MessageEncoder
from vla_ros.replay.bag_io import STRING_TYPES, Bag, BagWriter
from vla_ros.replay.lane import ChunkRecord, Timing


class ReplayOutput:
    """Writes the output bag; its wall time goes to ``timing.output``."""

    def __init__(self, path: str | Path, bag: Bag, prefix: str, timing: Timing):
        self.writer = BagWriter(path, storage="mcap", store=bag.typestore)
        self.encode = MessageEncoder(self.writer.store.types)  # the nodes' message layout, over the bag's classes
        self.prefix = prefix
        self.timing = timing
        for t in bag.topics.values():
            if t.msgtype not in bag.unknown_types:
                self.writer.add_topic(t.name, t.msgtype, latched=t.msgtype in STRING_TYPES)

    def raw(self, topic: str, t_ns: int, data: Any) -> None:
        """An input message, copied as recorded."""
        t0 = time.perf_counter()
        self.writer.write_raw(topic, t_ns, data)
        self.timing.output += time.perf_counter() - t0

    def chunk(self, lane: str, rec: ChunkRecord) -> None:
        t0 = time.perf_counter()
        self.writer.write(f"{self.prefix}/{lane}/action_chunk", rec.arrival, self.encode.action_chunk(rec.chunk))
        self.writer.write(f"{self.prefix}/{lane}/chunk_poses", rec.arrival, self.encode.chunk_pose_array(rec.chunk))
        self.timing.output += time.perf_counter() - t0

    def command(self, lane: str, now: float, cmd: Any) -> None:
        t0 = time.perf_counter()
        self.writer.write(f"{self.prefix}/{lane}/command", now,
                          self.encode.pose_stamped(now, cmd.frame_id, cmd.position, cmd.orientation))
        self.timing.output += time.perf_counter() - t0

    def close(self) -> None:
        self.writer.close()
