"""State/action normalisation statistics: computed from data, stored as ``norm_stats.json``.

Learned policies see states and actions scaled to roughly unit range. Two kinds (chosen per
checkpoint in its config): ``mean_std`` maps x to (x - mean) / std, ``quantile`` maps the 1st..99th
percentile range [q01, q99] to [-1, 1] (robust to outliers, pi0's choice for actions); ``none`` is
the identity. The stats file always holds mean, std, q01 and q99 so either kind can be chosen
later without recomputing.

Two conventions for the epsilons (config ``io.norm_convention``), because a pretrained policy
only reproduces its reference's numbers with the reference's arithmetic:
``openpi`` (this package's own, and openpi's): eps 1e-6 in both directions, float64;
``lerobot``: mean_std is (x - mean) / (std + 1e-8) and its inverse x * std + mean (no eps),
quantile has no eps unless q99 == q01; computed in float32, as LeRobot's processors do.

File format::

    {"state":   {"mean": [...], "std": [...], "q01": [...], "q99": [...]} | null,
     "actions": {"mean": [...], "std": [...], "q01": [...], "q99": [...]}}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from vla_ros.core.schema import read_json

NORM_STATS_FILE = "norm_stats.json"
KINDS = ("mean_std", "quantile", "none")
CONVENTIONS = ("openpi", "lerobot")
_EPS = 1e-6
LEROBOT_EPS = 1e-8
_KEYS = ("mean", "std", "q01", "q99")


@dataclass(frozen=True)
class Stats:
    """Per-dimension statistics of one quantity (float64 vectors of equal length)."""

    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q99: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def from_data(cls, x: np.ndarray) -> "Stats":
        """x: [N, D] samples (any leading shape is flattened)."""
        x = np.asarray(x, dtype=np.float64)
        x = x.reshape(-1, x.shape[-1])
        if x.shape[0] == 0:
            raise ValueError("norm stats: no samples")
        if not np.all(np.isfinite(x)):
            raise ValueError("norm stats: data contains NaN or inf")
        return cls(x.mean(0), x.std(0), np.quantile(x, 0.01, axis=0), np.quantile(x, 0.99, axis=0))

    def to_dict(self) -> dict:
        return {k: [float(v) for v in getattr(self, k)] for k in _KEYS}

    @classmethod
    def from_dict(cls, data: object, where: str) -> "Stats":
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object with {', '.join(_KEYS)}")
        vals = {}
        for k in _KEYS:
            if k not in data:
                raise ValueError(f"{where}.{k}: missing")
            v = data[k]
            if not isinstance(v, list) or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
                raise ValueError(f"{where}.{k}: expected a list of finite numbers")
            vals[k] = np.asarray(v, dtype=np.float64)
        dims = {k: v.shape[0] for k, v in vals.items()}
        if len(set(dims.values())) != 1:
            raise ValueError(f"{where}: mean/std/q01/q99 lengths differ: {dims}")
        return cls(**vals)

    # -- transforms ----------------------------------------------------------------------------

    def _f32(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self, name), dtype=np.float32)

    def _lerobot_quantile_range(self) -> np.ndarray:
        d = self._f32("q99") - self._f32("q01")
        return np.where(d == 0, np.float32(LEROBOT_EPS), d).astype(np.float32)

    def normalize(self, x: np.ndarray, kind: str, convention: str = "openpi") -> np.ndarray:
        if convention == "lerobot":
            x = np.asarray(x, dtype=np.float32)
            if kind == "mean_std":
                return (x - self._f32("mean")) / (self._f32("std") + np.float32(LEROBOT_EPS))
            if kind == "quantile":
                return np.float32(2.0) * (x - self._f32("q01")) / self._lerobot_quantile_range() - np.float32(1.0)
        elif convention != "openpi":
            raise ValueError(f"norm_convention: expected one of {CONVENTIONS}, got {convention!r}")
        x = np.asarray(x, dtype=np.float64)
        if kind == "mean_std":
            return (x - self.mean) / (self.std + _EPS)
        if kind == "quantile":
            return 2.0 * (x - self.q01) / (self.q99 - self.q01 + _EPS) - 1.0
        if kind == "none":
            return x
        raise ValueError(f"normalization: expected one of {KINDS}, got {kind!r}")

    def unnormalize(self, x: np.ndarray, kind: str, convention: str = "openpi") -> np.ndarray:
        if convention == "lerobot":
            x = np.asarray(x, dtype=np.float32)
            if kind == "mean_std":
                return x * self._f32("std") + self._f32("mean")
            if kind == "quantile":
                return (x + np.float32(1.0)) * self._lerobot_quantile_range() / np.float32(2.0) + self._f32("q01")
        elif convention != "openpi":
            raise ValueError(f"norm_convention: expected one of {CONVENTIONS}, got {convention!r}")
        x = np.asarray(x, dtype=np.float64)
        if kind == "mean_std":
            return x * (self.std + _EPS) + self.mean
        if kind == "quantile":
            return (x + 1.0) * 0.5 * (self.q99 - self.q01 + _EPS) + self.q01
        if kind == "none":
            return x
        raise ValueError(f"normalization: expected one of {KINDS}, got {kind!r}")


@dataclass(frozen=True)
class NormStats:
    """Statistics of the model-space state (None when the policy has no state) and actions."""

    actions: Stats
    state: Stats | None = None

    def to_dict(self) -> dict:
        return {"state": None if self.state is None else self.state.to_dict(), "actions": self.actions.to_dict()}

    @classmethod
    def from_dict(cls, data: object, where: str = NORM_STATS_FILE) -> "NormStats":
        if not isinstance(data, dict) or "actions" not in data:
            raise ValueError(f"{where}: expected an object with 'actions' (and 'state')")
        state = data.get("state")
        return cls(
            actions=Stats.from_dict(data["actions"], f"{where}: actions"),
            state=None if state is None else Stats.from_dict(state, f"{where}: state"),
        )

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NormStats":
        path = os.fspath(path)
        return cls.from_dict(read_json(path, "normalization stats"), path)

    def check_dims(self, state_dim: int, action_dim: int, where: str = NORM_STATS_FILE) -> None:
        """Raise unless the stats match the policy's state/action sizes."""
        if self.actions.dim != action_dim:
            raise ValueError(f"{where}: actions stats have {self.actions.dim} dims, the policy has {action_dim}")
        if state_dim > 0:
            if self.state is None:
                raise ValueError(f"{where}: state stats missing; the policy has a {state_dim}-dim state")
            if self.state.dim != state_dim:
                raise ValueError(f"{where}: state stats have {self.state.dim} dims, the policy has {state_dim}")


def compute_norm_stats(states: np.ndarray | None, actions: np.ndarray) -> NormStats:
    """Stats from model-space data: states [N, Ds] (or None), actions [N, H, A] or [N, A].

    For a DELTA-mode policy pass delta actions (``FlowMatchingPolicy.compute_norm_stats`` does the
    conversion from observations and absolute actions for you).
    """
    return NormStats(
        actions=Stats.from_data(actions),
        state=None if states is None else Stats.from_data(states),
    )
