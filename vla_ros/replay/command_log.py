"""A lane's executor commands, one row per control tick, as the arrays the scores and plots read.

Its own module (numpy only) because both sides of a replay write it: the lane's in-process executor
(`vla_ros.replay.execution`) and the second executor process (`vla_ros.replay.executor_process`),
which imports no more than it needs; both then produce the same arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class CommandLog:
    """A lane's executor commands, one row per tick, as the arrays the metrics read (`Lane.arrays`)."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, now: float, cmd: Any) -> None:
        self.rows.append((now, cmd.position, cmd.orientation, np.nan if cmd.gripper is None else float(cmd.gripper),
                          cmd.linear, cmd.angular, bool(cmd.hold), bool(cmd.limits)))

    def __len__(self) -> int:
        return len(self.rows)

    def arrays(self) -> dict[str, np.ndarray]:
        n = len(self.rows)
        cols = list(zip(*self.rows)) if n else [()] * 8
        return {
            "t": np.asarray(cols[0], np.float64),
            "position": np.asarray(cols[1], np.float64).reshape(n, 3),
            "quat": np.asarray(cols[2], np.float64).reshape(n, 4),
            "gripper": np.asarray(cols[3], np.float64),
            "linear": np.asarray(cols[4], np.float64).reshape(n, 3),
            "angular": np.asarray(cols[5], np.float64).reshape(n, 3),
            "hold": np.asarray(cols[6], bool),
            "clamped": np.asarray(cols[7], bool),
        }
