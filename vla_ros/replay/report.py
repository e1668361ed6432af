"""The evaluation's outputs: ``metrics.json``, the summary table (printed) and ``index.html``.

``index.html`` is self-contained (plots embedded as data URIs) so it can be mailed or attached to
a pull request; the PNG files are written next to it too.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

from vla_ros.replay.scoring import HEADLINES, _mean

HEADLINE_LABELS = (
    ("chunk_position_error_m", "chunk position error [cm]", 100.0, "{:.2f}"),
    ("command_position_error_m", "command position error [cm]", 100.0, "{:.2f}"),
    ("chunk_rotation_error_rad", "chunk rotation error [rad]", 1.0, "{:.3f}"),
    ("command_gripper_accuracy", "gripper accuracy [%]", 100.0, "{:.1f}"),
)


def clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists, paths -> str."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(clean(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _fmt(v: Any, scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return fmt.format(float(v) * scale)


def summary_row(name: str, path: str, metrics: dict | None = None, error: str = "",
                notes: Sequence[str] = ()) -> dict[str, Any]:
    """One line of the summary table (from a bag's metrics, or a skipped bag's reason and notes)."""
    row: dict[str, Any] = {"name": name, "bag": path, "ok": metrics is not None, "error": error}
    if metrics is None:
        if notes:
            row["notes"] = list(notes)
        return row
    pol = metrics.get("policy", {})
    row["duration_s"] = metrics.get("duration_s")
    row["chunks"] = pol.get("inference", {}).get("chunks")
    if "hold" in metrics:
        row["chunks_hold"] = metrics["hold"].get("inference", {}).get("chunks")
    row["inference_p50_s"] = pol.get("latency", {}).get("inference_s", {}).get("p50")
    row["speed_x"] = metrics.get("timing_s", {}).get("speed_x")
    vs = metrics.get("vs_hold")
    for key, *_ in HEADLINE_LABELS:
        if vs is not None:
            row[key] = {"policy": vs[key]["policy"], "hold": vs[key]["hold"]}
        else:
            keys = dict(HEADLINES)[key]
            row[key] = {"policy": _mean(pol, *keys), "hold": float("nan")}
    row["warnings"] = len(metrics.get("warnings", []))
    return row


def mean_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r.get("ok")]
    if not ok:
        return None
    out: dict[str, Any] = {"name": f"mean of {len(ok)}", "ok": True, "bag": ""}
    for key, *_ in HEADLINE_LABELS:
        for side in ("policy", "hold"):
            vals = [r[key][side] for r in ok if r[key][side] is not None and math.isfinite(r[key][side])]
            out.setdefault(key, {})[side] = sum(vals) / len(vals) if vals else float("nan")
    out["duration_s"] = sum(r.get("duration_s") or 0.0 for r in ok)
    out["chunks"] = sum(r.get("chunks") or 0 for r in ok)
    if any("chunks_hold" in r for r in ok):
        out["chunks_hold"] = sum(r.get("chunks_hold") or 0 for r in ok)
    lat = [r["inference_p50_s"] for r in ok if r.get("inference_p50_s") is not None]
    out["inference_p50_s"] = sum(lat) / len(lat) if lat else None
    sp = [r["speed_x"] for r in ok if r.get("speed_x")]
    out["speed_x"] = sum(sp) / len(sp) if sp else None
    return out


def _chunk_counts(r: dict[str, Any]) -> str:
    """'policy / hold' chunk counts of a row (every chunk; the scores use the common samples)."""
    hold = r.get("chunks_hold")
    return f"{r.get('chunks', '-')} / {hold if hold is not None else '-'}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as aligned text (printed by `vla-ros eval` / `demo`)."""
    head = ["bag", "dur [s]", "chunks policy / hold"] + [f"{label} policy / hold"
                                                         for _, label, *_ in HEADLINE_LABELS] + \
           ["infer p50 [ms]", "speed [x]"]
    lines = []
    all_rows = list(rows)
    m = mean_row(rows)
    if m is not None and len([r for r in rows if r.get("ok")]) > 1:
        all_rows.append(m)
    for r in all_rows:
        if not r.get("ok"):
            lines.append([r["name"], "-", "-"] + ["skipped"] + [""] * (len(HEADLINE_LABELS) + 1))
            continue
        cells = [r["name"], _fmt(r.get("duration_s"), 1, "{:.1f}"), _chunk_counts(r)]
        for key, _, scale, fmt in HEADLINE_LABELS:
            cells.append(f"{_fmt(r[key]['policy'], scale, fmt)} / {_fmt(r[key]['hold'], scale, fmt)}")
        cells.append(_fmt(r.get("inference_p50_s"), 1e3, "{:.1f}"))
        cells.append(_fmt(r.get("speed_x"), 1, "{:.1f}"))
        lines.append(cells)
    widths = [max(len(head[i]), *(len(c[i]) for c in lines)) if lines else len(head[i]) for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    for c in lines:
        out.append("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
    for r in rows:
        if not r.get("ok"):
            out.append(f"skipped {r['name']}: {r['error']}")
            out.extend(f"  note: {n}" for n in r.get("notes", ()))
    return "\n".join(out)


# ------------------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left} .bad{color:#b00} .good{color:#070}
.warn{background:#fff6e0;border:1px solid #f0d090;padding:6px 10px;font-size:12px;margin:4px 0}
img{max-width:100%;border:1px solid #eee}
code{background:#f4f4f4;padding:1px 4px} .muted{color:#777;font-size:12px}
"""


def _img(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _cell(v: Any, scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    return html.escape(_fmt(v, scale, fmt))


def _summary_html(rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(label)}<br>policy / hold</th>" for _, label, *_ in HEADLINE_LABELS)
    out = [f"<table><tr><th>bag</th><th>duration [s]</th><th>chunks<br>policy / hold</th>{head}<th>inference p50 "
           f"[ms]</th><th>replay speed [x real time]</th></tr>"]
    all_rows = list(rows)
    m = mean_row(rows)
    if m is not None and len([r for r in rows if r.get("ok")]) > 1:
        all_rows.append(m)
    for r in all_rows:
        if not r.get("ok"):
            out.append(f"<tr><td>{html.escape(r['name'])}</td><td colspan='{len(HEADLINE_LABELS) + 4}' class='bad' "
                       f"style='text-align:left'>skipped: {html.escape(r['error'])}"
                       + "".join(f"<br><span class='muted'>note: {html.escape(n)}</span>" for n in r.get("notes", ()))
                       + "</td></tr>")
            continue
        cells = []
        for key, _, scale, fmt in HEADLINE_LABELS:
            p, h = r[key]["policy"], r[key]["hold"]
            better = p is not None and h is not None and math.isfinite(p) and math.isfinite(h) and (
                p > h if "accuracy" in key else p < h)
            cls = "good" if better else ""
            cells.append(f"<td class='{cls}'>{_cell(p, scale, fmt)} / {_cell(h, scale, fmt)}</td>")
        name = html.escape(r["name"])
        link = f"<a href='#bag-{name}'>{name}</a>" if r.get("bag") else f"<b>{name}</b>"
        if r.get("warnings"):  # the flag: numbers that may be shaped by more than the policy
            link += f" <span class='bad' title='see the warnings of this bag'>&#9888; {int(r['warnings'])}</span>"
        out.append(f"<tr><td>{link}</td><td>{_cell(r.get('duration_s'), 1, '{:.1f}')}</td>"
                   f"<td>{html.escape(_chunk_counts(r))}</td>"
                   f"{''.join(cells)}<td>{_cell(r.get('inference_p50_s'), 1e3, '{:.1f}')}</td>"
                   f"<td>{_cell(r.get('speed_x'), 1, '{:.1f}')}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


_DETAIL = (
    ("chunks: position error mean [cm]", ("chunks", "position_error_m", "mean"), 100, "{:.2f}"),
    ("chunks: position error p95 [cm]", ("chunks", "position_error_m", "p95"), 100, "{:.2f}"),
    ("chunks: rotation error mean [rad]", ("chunks", "rotation_error_rad", "mean"), 1, "{:.3f}"),
    ("chunks: gripper accuracy [%]", ("chunks", "gripper", "accuracy"), 100, "{:.1f}"),
    ("commands: position error mean [cm]", ("commands", "position_error_m", "mean"), 100, "{:.2f}"),
    ("commands: position error p95 [cm]", ("commands", "position_error_m", "p95"), 100, "{:.2f}"),
    ("commands: x error mean [cm]", ("commands", "position_error_per_axis_m", "x", "mean"), 100, "{:.2f}"),
    ("commands: y error mean [cm]", ("commands", "position_error_per_axis_m", "y", "mean"), 100, "{:.2f}"),
    ("commands: z error mean [cm]", ("commands", "position_error_per_axis_m", "z", "mean"), 100, "{:.2f}"),
    ("commands: rotation error mean [rad]", ("commands", "rotation_error_rad", "mean"), 1, "{:.3f}"),
    ("commands: gripper MAE", ("commands", "gripper", "mae"), 1, "{:.3f}"),
    ("commands: gripper accuracy [%]", ("commands", "gripper", "accuracy"), 100, "{:.1f}"),
    ("commands: velocity error mean [m/s]", ("commands", "velocity", "linear_error_mps", "mean"), 1, "{:.3f}"),
    ("chunk-to-chunk jump mean [cm]", ("chunks", "discontinuity", "position_m", "mean"), 100, "{:.2f}"),
    ("chunk-to-chunk jump max [cm]", ("chunks", "discontinuity", "position_m", "max"), 100, "{:.2f}"),
    ("command jerk RMS [m/s^3]", ("smoothness", "command_jerk_mps3", "rmse"), 1, "{:.1f}"),
    ("command step max [cm]", ("smoothness", "command_step_m", "max"), 100, "{:.2f}"),
    ("executor: hold ticks", ("executor", "hold_ticks"), 1, "{:.0f}"),
    ("executor: clamped ticks", ("executor", "clamped_ticks"), 1, "{:.0f}"),
    ("executor: bridges", ("executor", "bridges"), 1, "{:.0f}"),
    ("executor: stale chunks", ("executor", "chunks_stale"), 1, "{:.0f}"),
    ("executor: skipped steps (latency comp.)", ("executor", "skipped_steps"), 1, "{:.0f}"),
    ("inference latency p50 [ms]", ("latency", "inference_s", "p50"), 1e3, "{:.1f}"),
    ("inference latency p99 [ms]", ("latency", "inference_s", "p99"), 1e3, "{:.1f}"),
    ("injected latency mean [ms]", ("latency", "injected_s", "mean"), 1e3, "{:.1f}"),
    ("chunk delay mean [ms]", ("latency", "chunk_delay_s", "mean"), 1e3, "{:.1f}"),
    ("chunks / triggers skipped busy", ("inference", "skipped_busy"), 1, "{:.0f}"),
    ("chunks refused by the chunk check (not sent)", ("inference", "refused_by_chunk_check"), 1, "{:.0f}"),
)


def _get(d: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _bag_html(name: str, metrics: dict[str, Any], plots: dict[str, Path]) -> str:
    lanes = [k for k in ("policy", "hold") if k in metrics]
    out = [f"<h2 id='bag-{html.escape(name)}'>{html.escape(name)}</h2>",
           f"<p class='muted'>{html.escape(str(metrics.get('bag', '')))} - {metrics.get('duration_s', 0):.1f} s, "
           f"{metrics.get('messages', 0)} messages; ground truth: "
           f"{html.escape(metrics['ground_truth']['description'])}; "
           f"latency injection: {html.escape(str(metrics.get('latency_mode')))}"
           + (f"; inference batched by {metrics['inference_batch']} (latency = each chunk's share of its batch)"
              if metrics.get("inference_batch", 1) > 1 else "") + "</p>"]
    for w in metrics.get("warnings", [])[:20]:
        out.append(f"<div class='warn'>{html.escape(w)}</div>")
    out.append("<table><tr><th>metric</th>" + "".join(f"<th>{k}</th>" for k in lanes) + "</tr>")
    for label, keys, scale, fmt in _DETAIL:
        vals = [_get(metrics[k], keys) for k in lanes]
        if all(v is None for v in vals):
            continue
        out.append(f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{_cell(v, scale, fmt)}</td>"
                                                                  for v in vals) + "</tr>")
    out.append("</table>")
    for key, alt in (("timeseries", "predicted vs recorded"), ("errors", "errors"), ("latency", "latency")):
        out.append(_img(plots.get(key), f"{name} {alt}"))
    return "\n".join(out)


def write_html(path: Path, *, title: str, rows: Sequence[dict[str, Any]], bags: Sequence[tuple[str, dict, dict]],
               summary_plot: Path | None, info: dict[str, Any], extra_html: str = "") -> Path:
    """index.html: summary table + plot, then one section per bag (metrics table, warnings, plots)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    parts.append("<p class='muted'>" + " | ".join(f"{html.escape(str(k))}: <code>{html.escape(str(v))}</code>"
                                                   for k, v in info.items()) + f" | generated {when}</p>")
    parts.append(extra_html)
    parts.append("<h2>Summary</h2><p class='muted'>Position errors are means over every scored sample: <b>chunk</b> = "
                 "each predicted chunk over its whole horizon vs the recorded commands at the same times; "
                 "<b>command</b> = the executor's command at every control tick vs the recorded command. "
                 "<code>hold</code> repeats the current end-effector pose (the do-nothing baseline). Green = the "
                 "policy beats hold.</p>")
    parts.append(_summary_html(rows))
    parts.append(_img(summary_plot, "summary"))
    for name, metrics, plots in bags:
        parts.append(_bag_html(name, metrics, plots))
    parts.append("<p class='muted'>Raw numbers: <a href='metrics.json'>metrics.json</a>.</p></body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
