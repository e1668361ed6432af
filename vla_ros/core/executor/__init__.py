"""The ROS-free action-chunk executor (see `vla_ros.core.executor.executor` and docs/executor.md).

Modules, one job each: `timeline` (placing chunks, latency compensation), `blending` (replace /
crossfade / temporal_ensemble), `interpolation` (poses between steps), `bridge` (entering a
far plan slowly), `safety` (limits and counters), `watchdog`, `stats` (loop period, chunk delay),
`command` (Command / status values) and `executor` (`ChunkExecutor`, tying them together).
Real-Time Chunking's policy side (`guidance_from_plan`) is in `vla_ros.core.executor.rtc`.
"""

from vla_ros.core.executor.command import Command, ExecutorState, ExecutorStatusData
from vla_ros.core.executor.executor import ChunkExecutor, SubmitResult
from vla_ros.core.executor.safety import LIMIT_NAMES
from vla_ros.core.executor.rtc import ExecutionPlan

__all__ = [
    "LIMIT_NAMES",
    "ChunkExecutor",
    "Command",
    "ExecutionPlan",
    "ExecutorState",
    "ExecutorStatusData",
    "SubmitResult",
]
