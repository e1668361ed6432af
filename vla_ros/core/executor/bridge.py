"""Bridge segments: a slow straight move from the last command to where a new plan starts.

When a plan begins far from the last command (first chunk after idle or a hold, a ``replace``
that disagrees with the old plan, ...), following it would be a jump the step limits could only
chop into a fast lunge. Instead the executor inserts bridge steps: a straight line (slerp for the
rotation, linear gripper) at ``executor.bridge_speed`` / ``executor.bridge_angular_speed`` to the
plan's pose at that instant, and delays the whole plan by the bridge's duration so it resumes
exactly where the bridge ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_ros.core.config import ExecutorConfig
from vla_ros.core.executor.interpolation import PoseBatch, PoseSample, blend, blend_many, quat_angle


@dataclass(frozen=True)
class Bridge:
    start_time: float
    end_time: float
    start: PoseSample
    end: PoseSample

    def sample(self, t: float) -> PoseSample:
        return blend(self.start, self.end, self._u(t))

    def _u(self, t: float) -> float:
        span = self.end_time - self.start_time
        return 1.0 if span <= 0.0 else min(1.0, max(0.0, (t - self.start_time) / span))

    def sample_many(self, ts: np.ndarray) -> PoseBatch:
        k = ts.shape[0]
        a = PoseBatch(np.tile(self.start.position, (k, 1)), np.tile(self.start.quaternion, (k, 1)),
                      np.full(k, self.start.gripper))
        b = PoseBatch(np.tile(self.end.position, (k, 1)), np.tile(self.end.quaternion, (k, 1)),
                      np.full(k, self.end.gripper))
        span = self.end_time - self.start_time
        u = np.ones(k) if span <= 0.0 else np.clip((ts - self.start_time) / span, 0.0, 1.0)
        return blend_many(a, b, u)


def plan_bridge(last: PoseSample, target: PoseSample, now: float, cfg: ExecutorConfig) -> Bridge | None:
    """A bridge from `last` to `target` starting at `now`, or None when they are close enough.

    Close enough = within ``bridge_distance`` (m) and ``bridge_angle`` (rad). The duration is
    the longer of distance / bridge_speed and angle / bridge_angular_speed.
    """
    d = float(np.linalg.norm(target.position - last.position))
    a = quat_angle(last.quaternion, target.quaternion)
    if d <= cfg.bridge_distance and a <= cfg.bridge_angle:
        return None
    duration = max(d / cfg.bridge_speed, a / cfg.bridge_angular_speed)
    if not math.isfinite(duration):
        return None
    start = PoseSample(last.position, last.quaternion, target.gripper if last.gripper is None else last.gripper)
    return Bridge(now, now + duration, start, target)
