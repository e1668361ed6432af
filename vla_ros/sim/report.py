"""sim-eval's outputs: ``metrics.json``, summary plots, a GIF per episode and ``index.html``.

The page uses the replay report's style, image embedding and JSON writer
(`vla_ros.replay.report`) and the replay plots' matplotlib set-up and colours
(`vla_ros.replay.plots`), so both reports look and read alike.
"""

from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path
from typing import Any

import numpy as np

from vla_ros.core.config import VlaConfig
from vla_ros.replay import plots as P
from vla_ros.replay import report as R
from vla_ros.sim.closed_loop import GIF_CAMERA_NOTE, Episode

LANE_COLORS = {"policy": P.COLORS["policy"], "hold": P.COLORS["hold"], "expert": "#2ca02c"}


def write_gif(frames: list[np.ndarray], path: Path, fps: float = 5.0) -> Path | None:
    if not frames:
        return None
    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=int(round(1000 / fps)), loop=0)
    return path


def plot_summary(summary: dict[str, dict[str, Any]], results: dict[str, list[Episode]], path: Path) -> Path:
    """Success rate per lane, final distance per episode and lane."""
    plt = P._plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    lanes = list(summary)
    axes[0].bar(lanes, [summary[x]["success_rate"] * 100 for x in lanes],
                color=[LANE_COLORS.get(x, "grey") for x in lanes])
    axes[0].set_ylabel("success rate [%]")
    axes[0].set_ylim(0, 105)
    axes[0].set_title("success rate")
    width = 0.8 / max(1, len(lanes))
    for i, lane in enumerate(lanes):
        d = [e.final_distance * 100 for e in results[lane]]
        axes[1].bar(np.arange(len(d)) + i * width, d, width, label=lane, color=LANE_COLORS.get(lane, "grey"))
    axes[1].set_xlabel("episode")
    axes[1].set_ylabel("final distance [cm]")
    axes[1].set_title("final distance to the goal")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=P.DPI)
    plt.close(fig)
    return path


def plot_episode(results: dict[str, list[Episode]], index: int, path: Path) -> Path:
    """Task distance over time and the tool's x, y, z per lane for one episode."""
    plt = P._plt()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.0))
    for lane, eps in results.items():
        e = eps[index]
        c = LANE_COLORS.get(lane, "grey")
        axes[0].plot(e.t, e.distance * 100, color=c, label=lane)
        for d in range(3):
            axes[d + 1].plot(e.t, e.tool[:, d], color=c, label=f"{lane} tool")
            if lane == "policy":
                axes[d + 1].plot(e.t, e.command[:, d], color=c, ls=":", lw=1.0, label="policy command")
    axes[0].set_ylabel("distance [cm]")
    for d, name in enumerate("xyz"):
        axes[d + 1].set_ylabel(f"{name} [m]")
    for ax in axes:
        ax.set_xlabel("sim time [s]")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=P.DPI)
    plt.close(fig)
    return path


def _gif_html(path: Path | None, alt: str) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/gif;base64,{data}"></p>'


def _summary_table(summary: dict[str, dict[str, Any]]) -> str:
    from vla_ros.sim.evaluate import TABLE_COLUMNS, _fmt

    head = "".join(f"<th>{html.escape(c[0])}</th>" for c in TABLE_COLUMNS)
    rows = [f"<table><tr><th>lane</th><th>episodes</th>{head}</tr>"]
    for lane, s in summary.items():
        cells = "".join(f"<td>{html.escape(_fmt(s.get(c[1]), c[2], c[3] if len(c) > 3 else 1.0))}</td>"
                        for c in TABLE_COLUMNS)
        rows.append(f"<tr><td>{html.escape(lane)}</td><td>{s['episodes']}</td>{cells}</tr>")
    rows.append("</table>")
    return "\n".join(rows)


EPISODE_ROWS = (
    ("success", "success", "{}"), ("time to success [s]", "time_to_success_s", "{:.2f}"),
    ("final distance [cm]", "final_distance_m", "{:.2f}", 100.0),
    ("min distance [cm]", "min_distance_m", "{:.2f}", 100.0),
    ("path length [m]", "path_length_m", "{:.3f}"), ("held ticks", "held_ticks", "{:.0f}"),
    ("clamped ticks", "clamped_ticks", "{:.0f}"), ("chunks", "chunks", "{:.0f}"),
    ("outside the workspace, max [cm]", "workspace_excess_m", "{:.2f}", 100.0),
)


def _episode_html(index: int, results: dict[str, list[Episode]], metrics: dict[str, dict], gif: Path | None,
                  plot: Path | None) -> str:
    from vla_ros.sim.evaluate import _fmt

    e0 = results["policy"][index]
    out = [f"<h2 id='ep-{index}'>episode {index} (seed {e0.seed})</h2>",
           "<table><tr><th>metric</th>" + "".join(f"<th>{html.escape(x)}</th>" for x in results) + "</tr>"]
    for label, key, fmt, *scale in EPISODE_ROWS:
        vals = []
        for lane in results:
            v = metrics[lane][key]
            vals.append(str(v) if isinstance(v, bool) else _fmt(v, fmt, scale[0] if scale else 1.0))
        out.append(f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{html.escape(v)}</td>" for v in vals) + "</tr>")
    out.append("</table>")
    if gif is not None:
        out.append(f"<p class='muted'>policy episode: {html.escape(GIF_CAMERA_NOTE)} (one frame per observation)</p>")
        out.append(_gif_html(gif, f"episode {index}"))
    out.append(R._img(plot, f"episode {index}"))
    return "\n".join(out)


def write_report(out: Path, results: dict[str, list[Episode]], summary: dict[str, dict[str, Any]], info: dict[str, Any],
                 cfg: VlaConfig, *, title: str, plots: bool = True, extra_html: str = "") -> tuple[Path, Path]:
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "gifs").mkdir(parents=True, exist_ok=True)
    n = len(results["policy"])
    per_episode = []
    sections = []
    for i in range(n):
        metrics = {lane: eps[i].metrics() for lane, eps in results.items()}
        gif = write_gif(results["policy"][i].frames, out / "gifs" / f"ep_{i:03d}.gif", fps=cfg.policy.rate_hz)
        plot = plot_episode(results, i, out / "plots" / f"ep_{i:03d}.png") if plots else None
        per_episode.append({"index": i, "seed": results["policy"][i].seed, "lanes": metrics,
                            "gif": str(gif) if gif else ""})
        sections.append(_episode_html(i, results, metrics, gif, plot))
    summary_png = plot_summary(summary, results, out / "plots" / "summary.png") if plots else None
    doc = {"format": "vla_ros.sim_eval", "version": 1, "info": info, "summary": summary, "episodes": per_episode,
           "config": cfg.to_dict()}
    metrics_path = R.write_json(out / "metrics.json", doc)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{R._CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             "<p class='muted'>" + " | ".join(f"{html.escape(str(k))}: "
                                              f"<code>{html.escape(str(v))}</code>" for k, v in info.items())
             + f" | generated {when}</p>", extra_html,
             "<h2>Summary</h2><p class='muted'>Closed loop: the policy sees the consequences of its own actions. Every "
             "lane starts each episode from the same seeded scene. <code>hold</code> repeats the current pose (the "
             "do-nothing baseline); <code>expert</code> is the task's scripted expert through the same executor (the "
             "ceiling). Held / clamped ticks: control ticks where the executor held the pose or a safety limit changed "
             "the command.</p>",
             _summary_table(summary), R._img(summary_png, "summary"), *sections,
             "<p class='muted'>Raw numbers: <a href='metrics.json'>metrics.json</a>.</p></body></html>"]
    report_path = out / "index.html"
    report_path.write_text("\n".join(parts), encoding="utf-8")
    return metrics_path, report_path
