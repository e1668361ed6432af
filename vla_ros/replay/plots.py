"""PNG plots of an evaluation (matplotlib, no display needed).

Per bag: ``timeseries.png`` (ground truth vs the policy's and hold's commands, and the policy's
chunk predictions, per action dimension over time), ``errors.png`` (error histograms and error vs
horizon step), ``latency.png`` (inference latency and chunk delay). Across bags:
``summary.png`` (headline errors per bag, policy vs hold).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla_ros.core.rotations import quat_to_rotvec
from vla_ros.core.types import ACTION_NAMES
from vla_ros.replay import metrics as M

COLORS = {"truth": "#222222", "policy": "#1f77b4", "hold": "#ff7f0e"}
DPI = 80


def _plt():
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _unwrap_rotvec(q: np.ndarray) -> np.ndarray:
    return quat_to_rotvec(q) if len(q) else np.zeros((0, 3))


def plot_timeseries(result, path: Path, max_chunks: int = 200) -> Path:
    """Ground truth, commands and chunk predictions per dimension over time."""
    plt = _plt()
    t0 = result.start
    fig, axes = plt.subplots(7, 1, figsize=(11, 13), sharex=True)
    gt = result.ground_truth
    if gt.poses is not None and len(gt.poses):
        tt = gt.poses.times - t0
        vals = np.concatenate([gt.poses.positions, _unwrap_rotvec(gt.poses.quats)], axis=1)
        for d in range(6):
            axes[d].plot(tt, vals[:, d], color=COLORS["truth"], lw=2.0, label="recorded (ground truth)")
    if gt.gripper is not None and len(gt.gripper):
        axes[6].plot(gt.gripper.times - t0, gt.gripper.values, color=COLORS["truth"], lw=2.0,
                     label="recorded (ground truth)")
    for name, lane in result.lanes.items():
        arr = lane.arrays()
        if arr["t"].size:
            vals = np.concatenate([arr["position"], _unwrap_rotvec(arr["quat"]), arr["gripper"][:, None]], axis=1)
            for d in range(7):
                axes[d].plot(arr["t"] - t0, vals[:, d], color=COLORS.get(name, "grey"), lw=1.2 if name == "policy"
                             else 1.0,
                             alpha=0.9 if name == "policy" else 0.7, label=f"{name} command")
    pol = result.lanes.get("policy")
    if pol is not None:
        for k, rec in enumerate(pol.records[:max_chunks]):
            acts = M.absolute_actions(rec.chunk)
            tt = rec.chunk.times - t0
            for d in range(7):
                axes[d].plot(tt, acts[:, d], color=COLORS["policy"], lw=0.7, alpha=0.25,
                             label="policy chunks" if k == 0 else None)
    units = ["m", "m", "m", "rad", "rad", "rad", "0..1"]
    for d, ax in enumerate(axes):
        ax.set_ylabel(f"{ACTION_NAMES[d]} [{units[d]}]")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncol=4)
    axes[-1].set_xlabel(f"time since bag start [s]  ({result.name})")
    fig.suptitle(f"{result.name}: predicted vs recorded actions", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_errors(result, path: Path) -> Path:
    """Command position error histograms (policy vs hold) and chunk error vs horizon step."""
    plt = _plt()
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 3.8))
    gt = result.ground_truth
    for name, lane in result.lanes.items():
        color = COLORS.get(name, "grey")
        arr = lane.arrays()
        acc = [r for r in lane.records if r.accepted]
        if gt.poses is not None and len(gt.poses) and arr["t"].size and acc:
            sel = arr["t"] >= acc[0].arrival
            gp, gq, valid = gt.poses.sample(arr["t"][sel])
            e, _ = M.position_errors(arr["position"][sel][valid], gp[valid])
            if e.size:
                a1.hist(e * 100, bins=40, alpha=0.55, color=color, label=f"{name} (mean {e.mean() * 100:.2f} cm)")
        errs = M.chunk_errors([r.chunk for r in lane.records], gt)
        pe = errs["position"]
        if pe.size and np.any(np.isfinite(pe)):
            a2.hist(pe[np.isfinite(pe)] * 100, bins=40, alpha=0.55, color=color,
                    label=f"{name} (mean {np.nanmean(pe) * 100:.2f} cm)")
            by_step = [np.nanmean(pe[:, j]) * 100 if np.any(np.isfinite(pe[:, j])) else np.nan
                       for j in range(pe.shape[1])]
            a3.plot(np.arange(len(by_step)), by_step, "o-", color=color, label=name)
    a1.set_title("executed commands: position error")
    a1.set_xlabel("cm")
    a2.set_title("chunk predictions: position error")
    a2.set_xlabel("cm")
    a3.set_title("chunk position error vs horizon step")
    a3.set_xlabel("step i (time stamp + i * dt)")
    a3.set_ylabel("cm")
    for a in (a1, a2, a3):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_latency(result, path: Path) -> Path:
    """Measured inference latency (wall) and chunk delay on the simulated clock."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.5))
    for name, lane in result.lanes.items():
        recs = lane.records
        if not recs:
            continue
        color = COLORS.get(name, "grey")
        lat = np.array([r.wall_latency for r in recs]) * 1e3
        a1.hist(lat, bins=30, alpha=0.6, color=color, label=f"{name} (p50 {np.median(lat):.1f} ms)")
        a2.plot([r.arrival - result.start for r in recs], [(r.arrival - r.chunk.stamp) * 1e3 for r in recs], ".-",
                color=color, label=name)
    a1.set_title("inference latency (measured, wall clock)")
    a1.set_xlabel("ms")
    a2.set_title("chunk delay at the executor (arrival - observation stamp)")
    a2.set_xlabel("time since bag start [s]")
    a2.set_ylabel("ms")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_summary(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Per bag: chunk and command position error, policy vs hold (cm)."""
    rows = [r for r in rows if r.get("ok")]
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(rows) + 4), 3.8))
    x = np.arange(len(rows))
    for ax, key, title in ((axes[0], "chunk_position_error_m", "chunk predictions"),
                           (axes[1], "command_position_error_m", "executed commands")):
        pol = [r[key]["policy"] * 100 for r in rows]
        hold = [r[key]["hold"] * 100 for r in rows]
        ax.bar(x - 0.2, pol, 0.4, color=COLORS["policy"], label="policy")
        ax.bar(x + 0.2, hold, 0.4, color=COLORS["hold"], label="hold")
        ax.set_xticks(x)
        ax.set_xticklabels([r["name"] for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"mean position error: {title}")
        ax.set_ylabel("cm")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_training(losses: Sequence[float], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    v = np.asarray(losses, np.float64)
    ax.plot(v, color="#999999", lw=0.6, label="loss per step")
    if v.size >= 20:
        k = max(5, v.size // 50)
        smooth = np.convolve(v, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(k - 1, v.size), smooth, color=COLORS["policy"], lw=1.5, label=f"mean of {k}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("flow-matching training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_bag(result, out_dir: Path) -> dict[str, Path]:
    """All per-bag plots into out_dir; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "timeseries": plot_timeseries(result, out_dir / "timeseries.png"),
        "errors": plot_errors(result, out_dir / "errors.png"),
        "latency": plot_latency(result, out_dir / "latency.png"),
    }
