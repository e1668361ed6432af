"""Safety limits every plan command passes through (``safety.*``); always on.

Order, per command, relative to the previous *safe* command:

1. non-finite guard: any NaN/inf -> the command is replaced by a hold of the previous one;
2. workspace box: the position is clipped into ``[workspace_min, workspace_max]``;
3. translation: the jump from the previous command is limited to
   ``min(max_translation_step, max_linear_speed * dt)`` (straight-line shortening);
4. rotation: the same with ``min(max_rotation_step, max_angular_speed * dt)`` (slerp shortening);
5. gripper: clipped to ``[gripper_min, gripper_max]``.

Twist outputs are limited to the same speeds, and `keep_inside` cuts the components that would
carry the twist's own integral out of the workspace box. A limit that acts is counted by name
(`counts`), so the status shows *which* limit is working, not just that one is. Because step 3
starts from the previous safe command, a limited command is always reachable from the last one;
if the arm starts outside the workspace box, the commands walk it back in at the allowed speed
rather than jumping. Holds (repeating the previous safe command) are not filtered again: they
are, by construction, already safe - unless the limits were tightened at run time, when a held
pose outside the new box walks back in the same way.
"""

from __future__ import annotations

import math

import numpy as np

from vla_ros.core.config import SafetyConfig
from vla_ros.core.executor.interpolation import PoseSample, quat_angle, slerp

LIMIT_NAMES = (
    "nonfinite",
    "workspace",
    "translation_step",
    "linear_speed",
    "rotation_step",
    "angular_speed",
    "gripper",
    "twist_linear",
    "twist_angular",
)


class SafetyFilter:
    """Clamps commands to `SafetyConfig` limits and counts every intervention by limit name."""

    def __init__(self, cfg: SafetyConfig):
        self.set_config(cfg)
        self.counts: dict[str, int] = dict.fromkeys(LIMIT_NAMES, 0)
        # How far past each limit a command was, at most, by config key ("safety.workspace_min z": 0.05 m):
        # a report can then say which limit shaped the commands and by how much.
        self.excess: dict[str, float] = {}

    def set_config(self, cfg: SafetyConfig) -> None:
        """New limits from the next command on (counters kept)."""
        self.cfg = cfg
        self._lo = np.asarray(cfg.workspace_min, np.float64)
        self._hi = np.asarray(cfg.workspace_max, np.float64)

    def _hit(self, flags: list[str], name: str) -> None:
        flags.append(name)
        self.counts[name] += 1

    def _over(self, key: str, amount: float) -> None:
        if amount > self.excess.get(key, 0.0):
            self.excess[key] = float(amount)

    def filter_pose(self, raw: PoseSample, prev: PoseSample, dt: float) -> tuple[PoseSample, list[str], bool]:
        """(safe command, limits that acted, hold) for a plan command `raw` after `prev`.

        ``hold`` is True when the command could not be repaired (non-finite values): the result
        is then `prev` itself (gripper included).
        """
        cfg = self.cfg
        flags: list[str] = []
        if not raw.is_finite():
            self._hit(flags, "nonfinite")
            return prev, flags, True
        dt = max(0.0, dt)

        pos = raw.position
        clipped = np.minimum(np.maximum(pos, self._lo), self._hi)
        if (clipped != pos).any():
            self._hit(flags, "workspace")
            for i, axis in enumerate("xyz"):
                if pos[i] < self._lo[i]:
                    self._over(f"safety.workspace_min {axis}", float(self._lo[i] - pos[i]))
                elif pos[i] > self._hi[i]:
                    self._over(f"safety.workspace_max {axis}", float(pos[i] - self._hi[i]))
            pos = clipped

        step_lim = min(cfg.max_translation_step, cfg.max_linear_speed * dt)
        delta = pos - prev.position
        dist = math.sqrt(float(delta @ delta))
        if dist > step_lim:
            by_step = cfg.max_translation_step <= cfg.max_linear_speed * dt
            self._hit(flags, "translation_step" if by_step else "linear_speed")
            self._over("safety.max_translation_step" if by_step else "safety.max_linear_speed", dist - step_lim)
            pos = prev.position + delta * (step_lim / dist)

        quat = raw.quaternion
        rot_lim = min(cfg.max_rotation_step, cfg.max_angular_speed * dt)
        angle = quat_angle(prev.quaternion, quat)
        if angle > rot_lim:
            by_step = cfg.max_rotation_step <= cfg.max_angular_speed * dt
            self._hit(flags, "rotation_step" if by_step else "angular_speed")
            self._over("safety.max_rotation_step" if by_step else "safety.max_angular_speed", float(angle - rot_lim))
            quat = slerp(prev.quaternion, quat, rot_lim / angle)

        grip = raw.gripper
        if grip is not None:
            g = min(max(grip, cfg.gripper_min), cfg.gripper_max)
            if g != grip:
                self._hit(flags, "gripper")
                self._over("safety.gripper_min" if grip < g else "safety.gripper_max", abs(grip - g))
                grip = g
        return PoseSample(pos, quat, grip), flags, False

    def filter_twist(self, linear: np.ndarray, angular: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
        """(linear, angular, limits that acted, hold) with speeds capped; non-finite -> zero twist."""
        flags: list[str] = []
        if not (np.all(np.isfinite(linear)) and np.all(np.isfinite(angular))):
            self._hit(flags, "nonfinite")
            return np.zeros(3), np.zeros(3), flags, True
        v = math.sqrt(float(linear @ linear))
        if v > self.cfg.max_linear_speed:
            self._hit(flags, "twist_linear")
            linear = linear * (self.cfg.max_linear_speed / v)
        w = math.sqrt(float(angular @ angular))
        if w > self.cfg.max_angular_speed:
            self._hit(flags, "twist_angular")
            angular = angular * (self.cfg.max_angular_speed / w)
        return linear, angular, flags, False

    def outside(self, position: np.ndarray) -> bool:
        """True if `position` is outside the workspace box."""
        return bool((position < self._lo).any() or (position > self._hi).any())

    def keep_inside(self, position: np.ndarray, linear: np.ndarray, horizon: float, flags: list[str]) -> np.ndarray:
        """`linear` with the components cut that would carry `position` out of the box within `horizon` s.

        Outside the box already (within the plausibility margin), only motion back inwards (or none)
        is left on that axis; nothing is ever pushed faster inwards than commanded.
        """
        if horizon <= 0.0:
            return linear
        upper = np.maximum((self._hi - position) / horizon, 0.0)
        lower = np.minimum((self._lo - position) / horizon, 0.0)
        cut = np.minimum(np.maximum(linear, lower), upper)
        if (cut != linear).any():
            self._hit(flags, "workspace")
        return cut
