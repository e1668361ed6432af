"""The embedded demo (`make demo` = `vla-ros demo`): expert episodes in the simulator -> a trained tiny policy ->
closed loop.

1. Record demonstrations in the MuJoCo tabletop (`vla_ros.sim`, robot profile ``sim_panda``): the
   task's scripted expert runs closed loop through the executor (`vla-ros sim-eval`'s code) and
   each episode is written as a bag with the topics of a real recording (scene and wrist cameras,
   joint states, EE pose, instruction, the executor's commands). Later seeds are held out.
2. Build a tiny flow-matching checkpoint (`make_tiny_checkpoint`: small images, a small backbone)
   and train it (`vla_ros.policy.training`) on the training bags with the policy's own flow-matching loss
   (`FlowMatchingPolicy.compute_norm_stats` / `make_training_batch` / `compute_loss`), bounded by
   a wall-clock budget (default 150 s on the CPU) with a progress bar; save it (`policy.save`).
3. Closed loop on the held-out seeds (`vla_ros.sim.evaluate.run_sim_eval`): success rates of the
   trained policy, `hold` and the expert, GIFs, plots; and the replay metrics (`vla-ros eval`'s
   code) of the trained policy on the held-out expert bags, next to them.

Everything goes under one directory (default ``out/demo``): ``bags/{train,test}/ep_XXX``,
``checkpoint/``, ``report/index.html`` (closed loop, the main report) and ``replay/index.html``
(offline metrics on the held-out bags), both with metrics.json and plots, and ``demo.json`` (the
numbers). Deterministic for a given seed except for the number of training steps that fit in the
budget (set ``max_steps`` below what the budget allows for a bit-exact rerun).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vla_ros.core.config import ConfigError, VlaConfig, load_config
from vla_ros.core.schema import deep_merge
from vla_ros.policy.training.train import TrainStats, train_policy

SMALL_MODEL = {
    "backbone": {"hidden_size": 64, "intermediate_size": 128, "head_dim": 16},
    "expert": {"hidden_size": 32, "intermediate_size": 64},
}
DEMO_EPISODE_SECONDS = 6.0


@dataclass
class DemoSettings:
    out_dir: str = "out/demo"
    n_train: int = 60  # recorded expert episodes to train on
    n_test: int = 10  # held-out seeds: closed-loop episodes per lane and replayed expert bags
    seed: int = 0
    task: str = "reach"
    train_seconds: float = 150.0  # wall-clock budget of the training loop (capped at 180 s)
    max_steps: int = 2500
    batch_size: int = 32
    lr: float = 1e-3
    image_size: int = 32  # the model's input resolution
    sim_image_size: int = 64  # the simulator's renders (bags and closed loop)
    patch_size: int = 8
    action_mode: str = "delta"
    storage: str = "mcap"
    progress: bool = True
    overrides: dict = field(default_factory=dict)  # config overrides for recording and evaluation
    # Model-config overrides deep-merged over SMALL_MODEL (e.g. {"expert": {"attention": "cross"}}).
    model: dict = field(default_factory=dict)


@dataclass
class DemoResult:
    out_dir: Path
    report: Path  # closed loop (index.html)
    metrics: Path
    replay_report: Path
    checkpoint: Path
    train: TrainStats
    generate_seconds: float
    eval_seconds: float
    numbers: dict[str, Any]
    table: str  # closed-loop summary
    replay_table: str


def _profile(name: str) -> Path:
    """config/robots/<name>.yaml: by name (installed share or source tree)."""
    from vla_ros.core import profiles

    try:
        return profiles.resolve("robot", name)
    except ConfigError:
        # An install made before this profile existed: fall back to the source tree's copy.
        path = Path(__file__).resolve().parents[2] / "config" / "robots" / f"{name}.yaml"
        if path.is_file():
            return path
        raise


def sim_robot_profile() -> Path:
    """config/robots/sim_tabletop.yaml: the synthetic scene's profile (`vla_ros.replay.synthetic` bags)."""
    return _profile("sim_tabletop")


def sim_panda_profile() -> Path:
    """config/robots/sim_panda.yaml: the MuJoCo tabletop's profile (the demo, `vla-ros sim-eval`)."""
    return _profile("sim_panda")


def _config(profile: Path, checkpoint: str | Path, overrides: dict | None, base: list[str] | None) -> VlaConfig:
    from vla_ros.core import profiles

    files = base if base is not None else [str(profiles.resolve("config", "default"))]
    ov: dict[str, Any] = {"policy.type": "flow_matching", "policy.checkpoint": str(checkpoint)}
    ov.update(overrides or {})
    return load_config([*files, str(profile)], ov)


def demo_config(checkpoint: str | Path = "", overrides: dict | None = None, base: list[str] | None = None) -> VlaConfig:
    """default + sim_tabletop robot profile (the synthetic bags), the flow_matching policy at `checkpoint`,
    + overrides."""
    return _config(sim_robot_profile(), checkpoint, overrides, base)


def sim_demo_config(checkpoint: str | Path = "", overrides: dict | None = None,
                    base: list[str] | None = None) -> VlaConfig:
    """default + sim_panda robot profile (the simulator), the flow_matching policy at `checkpoint`, + overrides."""
    return _config(sim_panda_profile(), checkpoint, overrides, base)


def _clean_out(out: Path) -> None:
    """Remove the parts of an earlier demo run (only the directories the demo writes)."""
    for sub in ("bags", "checkpoint", "checkpoint_init", "report", "replay"):
        p = out / sub
        if p.is_dir():
            shutil.rmtree(p)
    for f in ("demo.json", "training_loss.png"):
        (out / f).unlink(missing_ok=True)


def record_demonstrations(cfg: VlaConfig, out: Path, task: str, episodes: int, seed: int, *, horizon: int, dt: float,
                          progress: bool = True) -> tuple[list[Path], dict[str, Any]]:
    """The scripted expert's closed-loop episodes as bags ``out/ep_XXX`` (sim-eval's code, ``--record``);
    each goes on for a second after its success (staying at the goal is part of the task)."""
    from vla_ros.sim.evaluate import POLICY, run_sim_eval
    from vla_ros.sim.expert import ExpertPolicy

    res = run_sim_eval(cfg, ExpertPolicy(horizon=horizon, dt=dt, frame_id=cfg.robot.base_frame), task=task,
                       episodes=episodes, seed=seed, record=out, record_lanes=(POLICY,), lanes=(POLICY,), gifs=False,
                       plots=False, progress=progress, after_success=1.0, log=lambda _: None)
    return sorted(p for p in out.glob("ep_[0-9][0-9][0-9]") if p.is_dir()), res.summary[POLICY]


def _record_phase(s: DemoSettings, out: Path, overrides: dict, train_seed: int, test_seed: int, *, horizon: int,
                  dt: float, log: Callable[[str], None]) -> tuple[list[Path], list[Path], float]:
    """1/4: the expert's training and held-out bags; and the seconds it took."""
    log(f"[1/4] simulator ({s.task}): scripted expert, {s.n_train} training + {s.n_test} held-out episodes -> "
        f"{out / 'bags'}")
    t0 = time.perf_counter()
    rec_cfg = sim_demo_config("", overrides)
    train_bags, train_sum = record_demonstrations(rec_cfg, out / "bags" / "train", s.task, s.n_train, train_seed,
                                                  horizon=horizon, dt=dt, progress=s.progress)
    test_bags, _ = record_demonstrations(rec_cfg, out / "bags" / "test", s.task, s.n_test, test_seed,
                                         horizon=horizon, dt=dt, progress=s.progress)
    t_gen = time.perf_counter() - t0
    log(f"      {len(train_bags) + len(test_bags)} bags, expert success {train_sum['success_rate']:.0%} on the "
        f"training seeds, {train_sum['sim_seconds']:.0f} s of training recordings, in {t_gen:.1f} s")
    return train_bags, test_bags, t_gen


def _train_phase(s: DemoSettings, out: Path, overrides: dict, train_bags: list[Path], *, horizon: int, dt: float,
                 log: Callable[[str], None]) -> tuple[Any, TrainStats]:
    """2/4: a tiny flow-matching checkpoint trained on the training bags, saved to ``out/checkpoint``."""
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint
    from vla_ros.policy.training.dataset import samples_from_bags

    log(f"[2/4] tiny flow-matching policy ({s.image_size} px, {s.action_mode} actions), training <= "
        f"{s.train_seconds:.0f} s")
    init = make_tiny_checkpoint(out / "checkpoint_init", seed=s.seed, cameras=("primary", "wrist"),
                                image_size=s.image_size, patch_size=s.patch_size, horizon=horizon, dt=dt,
                                action_mode=s.action_mode, max_text_tokens=8,
                                overrides=deep_merge(SMALL_MODEL, s.model))
    policy = FlowMatchingPolicy.load(init)
    cfg = sim_demo_config(init, overrides)
    obs, acts = samples_from_bags(train_bags, cfg, policy.metadata, progress=s.progress)
    stats = train_policy(policy, obs, acts, seconds=s.train_seconds, max_steps=s.max_steps, batch_size=s.batch_size,
                         lr=s.lr, seed=s.seed, progress=s.progress)
    ckpt = policy.save(out / "checkpoint")
    policy.close()
    shutil.rmtree(out / "checkpoint_init", ignore_errors=True)
    log(f"      {stats.steps} steps on {stats.samples} samples in {stats.seconds:.1f} s; final loss "
        f"{stats.final_loss:.4f} (first steps {np.mean(stats.losses[:10]):.3f}); checkpoint {ckpt}")
    return ckpt, stats


def _closed_loop_intro(s: DemoSettings, stats: TrainStats, n_train_bags: int, train_seed: int, test_seed: int,
                       loss_png: Path | None, replay_rows: list) -> str:
    """The closed-loop report's extra HTML: the training, and the replay summary on the held-out bags."""
    from vla_ros.replay.report import _img, _summary_html

    return (f"<h2>Training</h2><p>{stats.steps} steps (batch {s.batch_size}) on {stats.samples} samples from "
            f"{n_train_bags} recorded expert episodes (seeds {train_seed}..{train_seed + s.n_train - 1}) in "
            f"{stats.seconds:.1f} s; final loss {stats.final_loss:.4f}. Closed loop on the held-out seeds "
            f"{test_seed}..{test_seed + s.n_test - 1}.</p>" + (_img(loss_png, "training loss") if loss_png else "")
            + "<h2>Replay on the held-out expert bags (open loop)</h2><p class='muted'>What the trained policy "
            "would have commanded on the expert's recordings, vs hold (details: <a href='../replay/index.html'>"
            "replay/index.html</a>).</p>" + _summary_html(replay_rows))


def _evaluate_phase(s: DemoSettings, out: Path, overrides: dict, ckpt: Any, stats: TrainStats,
                    train_bags: list[Path], test_bags: list[Path], train_seed: int, test_seed: int,
                    log: Callable[[str], None]) -> tuple[Any, Any, float]:
    """3/4 and 4/4: the saved checkpoint replayed on the held-out bags, then closed loop on the held-out
    seeds; the replay's and the closed loop's outputs and the seconds both took."""
    from vla_ros.policy.registry import load_configured_policy
    from vla_ros.replay import plots as P
    from vla_ros.replay.evaluate import run_evaluation
    from vla_ros.sim.evaluate import run_sim_eval

    t0 = time.perf_counter()
    cfg = sim_demo_config(ckpt, overrides)
    loss_png = P.plot_training(stats.losses, out / "training_loss.png") if stats.losses else None
    trained = load_configured_policy(cfg.policy)  # the checkpoint as saved on disk
    try:
        log(f"[3/4] replay: the trained checkpoint on the {len(test_bags)} held-out expert bags (vs hold)")
        ev = run_evaluation(test_bags, cfg, policy=trained, out_dir=out / "replay", progress=s.progress,
                            title="vla_ros demo: tiny flow-matching policy vs hold on held-out expert bags (open loop)",
                            extra_info={"train_steps": stats.steps, "train_s": f"{stats.seconds:.0f}"}, log=log)
        log(f"[4/4] closed loop: trained vs hold vs expert on the {s.n_test} held-out seeds")
        extra = _closed_loop_intro(s, stats, len(train_bags), train_seed, test_seed, loss_png, ev.rows)
        sim = run_sim_eval(cfg, trained, task=s.task, episodes=s.n_test, seed=test_seed, out_dir=out / "report",
                           progress=s.progress, extra_html=extra, log=log,
                           title=f"vla_ros demo: tiny flow-matching policy, closed loop in the simulator ({s.task})",
                           extra_info={"train_steps": stats.steps, "train_s": f"{stats.seconds:.0f}"})
    finally:
        trained.close()
    return ev, sim, time.perf_counter() - t0


def _demo_numbers(s: DemoSettings, stats: TrainStats, t_gen: float, t_eval: float, n_bags: tuple[int, int],
                  sim: Any, replay_rows: list) -> dict[str, Any]:
    """demo.json's numbers: the training, the closed-loop success per lane, the replay errors vs hold."""
    from vla_ros.replay.report import mean_row
    from vla_ros.sim.evaluate import EXPERT, HOLD, POLICY

    mean = mean_row(replay_rows) or {}
    numbers: dict[str, Any] = {
        "task": s.task, "train_steps": stats.steps, "train_seconds": stats.seconds, "train_samples": stats.samples,
        "final_loss": stats.final_loss, "first_loss": float(np.mean(stats.losses[:10])) if stats.losses else None,
        "generate_seconds": t_gen, "eval_seconds": t_eval,
        "episodes": {"train": n_bags[0], "test": n_bags[1]},
        "closed_loop": {lane: {k: sim.summary[lane][k] for k in ("success_rate", "successes", "episodes",
                                                                  "time_to_success_s", "final_distance_m")}
                        for lane in (POLICY, HOLD, EXPERT)},
    }
    for key in ("chunk_position_error_m", "command_position_error_m", "command_gripper_accuracy"):
        if key in mean:
            pol, hold = mean[key]["policy"], mean[key]["hold"]
            numbers[key] = {"policy": pol, "hold": hold,
                            "hold_over_policy": hold / pol if pol and math.isfinite(pol) and pol > 0 else None}
    return numbers


def run_demo(settings: DemoSettings | None = None, log: Callable[[str], None] = print) -> DemoResult:
    """The whole demo (see the module docstring); returns the paths and the numbers."""
    import torch

    from vla_ros.replay.report import clean

    s = settings or DemoSettings()
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clean_out(out)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    horizon, dt = 10, 0.1
    # Episodes of 6 s: the expert reaches in ~1-2.5 s; a policy that has not arrived by then is scored as failed.
    overrides = {"sim.task": s.task, "sim.image_size": s.sim_image_size, "sim.episode_seconds": DEMO_EPISODE_SECONDS,
                 **s.overrides}
    train_seed, test_seed = s.seed * 1000, s.seed * 1000 + s.n_train
    train_bags, test_bags, t_gen = _record_phase(s, out, overrides, train_seed, test_seed, horizon=horizon, dt=dt,
                                                 log=log)
    ckpt, stats = _train_phase(s, out, overrides, train_bags, horizon=horizon, dt=dt, log=log)
    ev, sim, t_eval = _evaluate_phase(s, out, overrides, ckpt, stats, train_bags, test_bags, train_seed, test_seed,
                                      log)
    numbers = _demo_numbers(s, stats, t_gen, t_eval, (len(train_bags), len(test_bags)), sim, ev.rows)
    (out / "demo.json").write_text(
        json.dumps(clean({"settings": asdict(s), "numbers": numbers}), indent=2, default=str) + "\n")
    return DemoResult(out, sim.report_path, sim.metrics_path, ev.report_path, Path(ckpt), stats, t_gen, t_eval, numbers,
                      sim.table, ev.table)
