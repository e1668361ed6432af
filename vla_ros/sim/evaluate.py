"""`vla-ros sim-eval`: closed-loop episodes of a policy next to `hold` and the scripted expert.

For each of N seeds (``seed``, ``seed + 1``, ...) every lane runs one episode of the task from the
same start (`closed_loop.run_episode`): the policy under test, the `hold` baseline (the do-nothing
policy with the same horizon and dt) and the scripted expert (`expert.ExpertPolicy`, the ceiling).
Per episode: success, time to success, final distance, path length, jerk, held and clamped ticks;
per lane: the success rate and the means. Writes ``metrics.json``, summary plots, one GIF per
episode of the policy (both cameras, the commanded target drawn in) and ``index.html``;
``record`` writes the recorded lanes' episodes as mcap bags: ``<record>/ep_XXX`` for one lane,
``<record>/<lane>/ep_XXX`` for several.

    out = run_sim_eval(cfg, policy, task="reach", episodes=5, seed=0, out_dir="out/sim_eval")
    out.summary["policy"]["success_rate"]
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vla_ros.core.config import VlaConfig
from vla_ros.policy.base import Policy
from vla_ros.sim.closed_loop import Episode, run_episode, world_for
from vla_ros.sim.expert import ExpertPolicy

POLICY, HOLD, EXPERT = "policy", "hold", "expert"
LANES = (POLICY, HOLD, EXPERT)


@dataclass
class SimEvalOutput:
    episodes: dict[str, list[Episode]]  # lane -> episodes in seed order
    summary: dict[str, dict[str, Any]]  # lane -> aggregate numbers
    out_dir: Path | None
    metrics_path: Path | None
    report_path: Path | None
    table: str


def policy_for(cfg: VlaConfig) -> Policy:
    """The configured policy; ``policy.type sim_expert`` is the scripted expert (no checkpoint)."""
    if cfg.policy.type == ExpertPolicy.policy_type:
        return ExpertPolicy(frame_id=cfg.robot.base_frame)
    from vla_ros.policy.registry import load_configured_policy

    try:
        return load_configured_policy(cfg.policy)
    except RuntimeError as exc:  # the registry's one-sentence "cannot load the policy (...)": bad input, not a crash
        raise ValueError(str(exc)) from exc


def _mean(values: Sequence[float]) -> float:
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    return float(np.mean(v)) if v else float("nan")


def summarize(episodes: Sequence[Episode]) -> dict[str, Any]:
    ms = [e.metrics() for e in episodes]
    n = len(ms)
    total_wall = sum(m["timing_s"]["total"] for m in ms)
    total_sim = sum(m["duration_s"] for m in ms)
    return {
        "episodes": n,
        "successes": sum(1 for m in ms if m["success"]),
        "success_rate": sum(1 for m in ms if m["success"]) / n if n else float("nan"),
        "time_to_success_s": _mean([m["time_to_success_s"] for m in ms if m["success"]]),
        "final_distance_m": _mean([m["final_distance_m"] for m in ms]),
        "path_length_m": _mean([m["path_length_m"] for m in ms]),
        "tool_jerk_rms_mps3": _mean([m["tool_jerk_mps3"]["rmse"] for m in ms]),
        "command_jerk_rms_mps3": _mean([m["command_jerk_mps3"]["rmse"] for m in ms]),
        "held_ticks": sum(m["held_ticks"] for m in ms),
        "clamped_ticks": sum(m["clamped_ticks"] for m in ms),
        "ticks": sum(m["ticks"] for m in ms),
        "workspace_excess_m": max([m["workspace_excess_m"] for m in ms], default=0.0),
        "inference_p50_s": _mean([m["inference_s"].get("p50") for m in ms]),
        "sim_seconds": total_sim,
        "wall_seconds": total_wall,
        "speed_x": total_sim / total_wall if total_wall > 0 else float("nan"),
        "timing_s": {k: sum(m["timing_s"][k] for m in ms) for k in (ms[0]["timing_s"] if ms else {})},
    }


TABLE_COLUMNS = (
    ("success rate", "success_rate", "{:.0%}"),
    ("time to success [s]", "time_to_success_s", "{:.2f}"),
    ("final distance [cm]", "final_distance_m", "{:.1f}", 100.0),
    ("path [m]", "path_length_m", "{:.2f}"),
    ("jerk RMS [m/s^3]", "tool_jerk_rms_mps3", "{:.1f}"),
    ("held ticks", "held_ticks", "{:.0f}"),
    ("clamped ticks", "clamped_ticks", "{:.0f}"),
    ("speed [x real time]", "speed_x", "{:.1f}"),
)


def _fmt(v: Any, fmt: str, scale: float = 1.0) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return fmt.format(float(v) * scale)


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    head = ["lane", "episodes"] + [c[0] for c in TABLE_COLUMNS]
    rows = []
    for lane, s in summary.items():
        rows.append([lane, str(s["episodes"])] + [_fmt(s.get(c[1]), c[2], c[3] if len(c) > 3 else 1.0)
                                                  for c in TABLE_COLUMNS])
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(out)


def _check_request(episodes: int, lanes: Sequence[str]) -> None:
    if episodes < 1:
        raise ValueError(f"episodes: expected at least 1, got {episodes}")
    bad = [x for x in lanes if x not in LANES]
    if bad or POLICY not in lanes:
        raise ValueError(f"lanes: expected the policy lane and any of {', '.join(LANES[1:])}, got {list(lanes)}")


def _lane_makers(cfg: VlaConfig, policy: Policy, lanes: Sequence[str]) -> dict[str, Callable[[], Policy]]:
    """Per lane, the policy of a new episode: the one under test, `hold` with its horizon and dt, the expert."""
    from vla_ros.replay.evaluate import hold_for

    meta = policy.metadata
    makers: dict[str, Callable[[], Policy]] = {POLICY: lambda: policy}
    if HOLD in lanes:
        makers[HOLD] = lambda: hold_for(policy)
    if EXPERT in lanes:
        makers[EXPERT] = lambda: ExpertPolicy(horizon=meta.horizon, dt=meta.dt, frame_id=cfg.robot.base_frame)
    return makers


def _remove_old_bags(rec_root: Path, record_lanes: Sequence[str]) -> None:
    """The bags an earlier run wrote there (``ep_XXX`` directories with a bag's metadata.yaml), removed."""
    for d in [rec_root / lane for lane in record_lanes] + [rec_root]:
        for old in (d.glob("ep_[0-9][0-9][0-9]") if d.is_dir() else ()):
            if (old / "metadata.yaml").is_file():
                shutil.rmtree(old)  # our own bags of an earlier run


def _run_episodes(cfg: VlaConfig, task: str, seeds: list[int], makers: dict[str, Callable[[], Policy]], *,
                  rec_root: Path | None, record_lanes: Sequence[str], gif: bool, after_success: float,
                  progress: bool) -> dict[str, list[Episode]]:
    """Every lane's episode for every seed, in one world (the policy lane with GIF frames when `gif`)."""
    results: dict[str, list[Episode]] = {lane: [] for lane in makers}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds) * len(makers), desc=f"sim-eval {task}", unit="episode")
    world = world_for(cfg, task, seeds[0])
    try:
        for s in seeds:
            for lane, make in makers.items():
                pol = make()
                bag = None
                if rec_root is not None and lane in record_lanes:
                    bag = (rec_root if len(record_lanes) == 1 else rec_root / lane) / f"ep_{s - seeds[0]:03d}"
                ep = run_episode(world, cfg, pol, lane=lane, seed=s, record=bag, after_success=after_success,
                                 gif=gif and lane == POLICY)
                results[lane].append(ep)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(lane=lane, success=sum(e.success for e in results[POLICY]))
    finally:
        world.close()
        if bar is not None:
            bar.close()
    return results


def _report_info(cfg: VlaConfig, task: str, episodes: int, seeds: list[int], meta: Any,
                 extra: dict[str, Any] | None) -> dict:
    """The run's settings at the top of the report."""
    p = cfg.policy
    return {"task": task, "episodes": episodes, "seeds": f"{seeds[0]}..{seeds[-1]}", "policy": meta.policy_type,
            "checkpoint": meta.checkpoint_id or "-", "robot": cfg.robot.name,
            "trigger": f"{p.trigger} ({p.rate_hz:g} Hz)" if p.trigger == "rate" else p.trigger,
            "executor": f"{cfg.executor.strategy} @ {cfg.executor.control_rate:g} Hz", "rtc": p.rtc,
            "latency": cfg.replay.latency, "image_size": cfg.sim.image_size, **(extra or {})}


def run_sim_eval(cfg: VlaConfig, policy: Policy | None = None, *, task: str | None = None, episodes: int = 5,
                 seed: int | None = None, out_dir: str | Path | None = None, record: str | Path | None = None,
                 record_lanes: Sequence[str] = (POLICY,), lanes: Sequence[str] = LANES, gifs: bool = True,
                 plots: bool = True, progress: bool = True, after_success: float = 0.0,
                 title: str = "vla_ros closed-loop evaluation (MuJoCo)",
                 extra_info: dict[str, Any] | None = None, extra_html: str = "",
                 log: Callable[[str], None] = print) -> SimEvalOutput:
    """Run the lanes' episodes and (with `out_dir`) write metrics.json, plots, GIFs and index.html."""
    from vla_ros.policy.compat import check_compatible, compatibility_report

    task = task or cfg.sim.task
    seed = cfg.sim.seed if seed is None else int(seed)
    _check_request(episodes, lanes)
    own = policy is None
    policy = policy or policy_for(cfg)
    try:
        meta = policy.metadata
        if meta.policy_type != ExpertPolicy.policy_type:
            for line in compatibility_report(meta, cfg.robot, cfg.policy, timing=False):
                log(line)
            check_compatible(meta, cfg.robot, cfg.policy, timing=False)
        policy.warmup()
        makers = _lane_makers(cfg, policy, lanes)
        rec_root = Path(record) if record else None
        if rec_root is not None:
            _remove_old_bags(rec_root, record_lanes)
        out = Path(out_dir) if out_dir else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        seeds = [seed + i for i in range(episodes)]
        results = _run_episodes(cfg, task, seeds, makers, rec_root=rec_root, record_lanes=record_lanes,
                                gif=gifs and out is not None, after_success=after_success, progress=progress)
        summary = {lane: summarize(eps) for lane, eps in results.items()}
        table = format_table(summary)
        metrics_path = report_path = None
        if out is not None:
            from vla_ros.sim import report as SR

            info = _report_info(cfg, task, episodes, seeds, meta, extra_info)
            metrics_path, report_path = SR.write_report(out, results, summary, info, cfg, title=title, plots=plots,
                                                        extra_html=extra_html)
        return SimEvalOutput(results, summary, out, metrics_path, report_path, table)
    finally:
        if own:
            policy.close()
