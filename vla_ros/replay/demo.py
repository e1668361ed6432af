"""The embedded demo (`make demo` = `vla-ros demo`): synthetic bags -> a trained tiny policy -> an eval report.

1. Generate a synthetic tabletop dataset (`vla_ros.replay.synthetic`): one bag per episode of a
   scripted expert picking a red block, rendered scene + wrist cameras, joint states, EE poses,
   the expert's commands and the instruction. Some episodes are held out for evaluation.
2. Build a tiny flow-matching checkpoint (`make_tiny_checkpoint`: small images, a small backbone)
   and train it briefly on the training episodes with the policy's own flow-matching loss
   (`FlowMatchingPolicy.compute_norm_stats` / `make_training_batch` / `compute_loss`), bounded by
   a wall-clock budget (default 150 s on the CPU) with a progress bar; save it (`policy.save`).
3. Evaluate the saved checkpoint on the held-out episodes with `vla-ros eval`'s code (simulated
   clock, executor, ground truth = the expert's commands, `hold` baseline) and print where the
   report is, with the trained-vs-hold numbers.

Everything goes under one directory (default ``out/demo``): ``bags/{train,test}/ep_XXX``,
``checkpoint/``, ``report/index.html`` + ``metrics.json`` + plots, and ``demo.json`` (the numbers).
Deterministic for a given seed except for the number of training steps that fit in the budget
(set ``max_steps`` below what the budget allows for a bit-exact rerun).
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

SMALL_MODEL = {
    "backbone": {"hidden_size": 64, "intermediate_size": 128, "head_dim": 16},
    "expert": {"hidden_size": 32, "intermediate_size": 64},
}
MAX_TRAIN_SECONDS = 180.0


@dataclass
class DemoSettings:
    out_dir: str = "out/demo"
    n_train: int = 40
    n_test: int = 4
    seed: int = 0
    train_seconds: float = 150.0  # wall-clock budget of the training loop (capped at 180 s)
    max_steps: int = 2500
    batch_size: int = 32
    lr: float = 1e-3
    image_size: int = 32  # the model's input resolution (the bags hold 64 px images)
    patch_size: int = 8
    action_mode: str = "delta"
    storage: str = "mcap"
    progress: bool = True
    overrides: dict = field(default_factory=dict)  # config overrides for the evaluation
    # Model-config overrides deep-merged over SMALL_MODEL (e.g. {"expert": {"attention": "cross"}}).
    model: dict = field(default_factory=dict)


@dataclass
class TrainStats:
    steps: int
    seconds: float
    losses: list[float]
    samples: int

    @property
    def final_loss(self) -> float:
        tail = self.losses[-50:]
        return float(np.mean(tail)) if tail else float("nan")


@dataclass
class DemoResult:
    out_dir: Path
    report: Path
    metrics: Path
    checkpoint: Path
    train: TrainStats
    generate_seconds: float
    eval_seconds: float
    numbers: dict[str, Any]
    table: str


def sim_robot_profile() -> Path:
    """config/robots/sim_tabletop.yaml: by name (installed share or source tree)."""
    from vla_ros.core import profiles

    try:
        return profiles.resolve("robot", "sim_tabletop")
    except ConfigError:
        # An install made before this profile existed: fall back to the source tree's copy.
        path = Path(__file__).resolve().parents[2] / "config" / "robots" / "sim_tabletop.yaml"
        if path.is_file():
            return path
        raise


def demo_config(checkpoint: str | Path = "", overrides: dict | None = None, base: list[str] | None = None) -> VlaConfig:
    """default + sim_tabletop robot profile, the flow_matching policy at `checkpoint`, + overrides."""
    from vla_ros.core import profiles

    files = base if base is not None else [str(profiles.resolve("config", "default"))]
    ov: dict[str, Any] = {"policy.type": "flow_matching", "policy.checkpoint": str(checkpoint)}
    ov.update(overrides or {})
    return load_config([*files, str(sim_robot_profile())], ov)


def train_policy(policy, observations, actions, *, seconds: float, max_steps: int, batch_size: int = 32,
                 lr: float = 1e-3, seed: int = 0, progress: bool = True) -> TrainStats:
    """Train all of `policy.model` with AdamW on the flow-matching loss until `seconds` or `max_steps`.

    Learning rate: linear warm-up over 20 steps, then cosine decay over the budget (time or steps,
    whichever runs out first). The model is left in eval mode with gradients off.
    """
    import torch

    from vla_ros.policy.flow_matching.train import set_trainable

    seconds = min(float(seconds), MAX_TRAIN_SECONDS)
    policy.set_norm_stats(policy.compute_norm_stats(observations, actions))
    batch = policy.make_training_batch(observations, actions)
    n = int(batch["actions"].shape[0])
    bs = min(batch_size, n)
    params = set_trainable(policy, "none")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, desc=f"train (<= {seconds:.0f} s)", unit="step")
    model = policy.model
    model.train()
    t0 = time.perf_counter()
    step = 0
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            while step < max_steps:
                elapsed = time.perf_counter() - t0
                if elapsed >= seconds:
                    break
                frac = max(elapsed / seconds, step / max_steps)
                for g in opt.param_groups:
                    g["lr"] = lr * min(1.0, (step + 1) / 20) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
                idx = torch.randint(0, n, (bs,), generator=gen).to(batch["actions"].device)
                loss = policy.compute_loss({k: v[idx] for k, v in batch.items()})
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                losses.append(float(loss.detach()))
                step += 1
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}", s=f"{elapsed:.0f}")
    finally:
        if bar is not None:
            bar.close()
        model.requires_grad_(False)
        model.eval()
    return TrainStats(step, time.perf_counter() - t0, losses, n)


def _clean_out(out: Path) -> None:
    """Remove the parts of an earlier demo run (only the directories the demo writes)."""
    for sub in ("bags", "checkpoint", "checkpoint_init", "report"):
        p = out / sub
        if p.is_dir():
            shutil.rmtree(p)
    for f in ("demo.json", "training_loss.png"):
        (out / f).unlink(missing_ok=True)


def run_demo(settings: DemoSettings | None = None, log: Callable[[str], None] = print) -> DemoResult:
    """The whole demo (see the module docstring); returns the paths and the numbers."""
    import torch

    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint
    from vla_ros.replay import plots as P
    from vla_ros.replay.dataset import samples_from_bags
    from vla_ros.policy.registry import load_configured_policy
    from vla_ros.replay.evaluate import run_evaluation
    from vla_ros.replay.synthetic import SceneConfig, generate_episodes

    s = settings or DemoSettings()
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clean_out(out)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    log(f"[1/3] synthetic scene: {s.n_train} training + {s.n_test} held-out episodes -> {out / 'bags'}")
    t0 = time.perf_counter()
    scene = SceneConfig()
    gen = generate_episodes(out / "bags", s.n_train, s.n_test, seed=s.seed, scene=scene, storage=s.storage,
                            progress=s.progress)
    t_gen = time.perf_counter() - t0
    log(f"      {len(gen.train) + len(gen.test)} bags, {gen.seconds:.0f} s of recordings, in {t_gen:.1f} s")

    log(f"[2/3] tiny flow-matching policy ({s.image_size} px, {s.action_mode} actions), training <= {s.train_seconds:.0f} s")
    init = make_tiny_checkpoint(out / "checkpoint_init", seed=s.seed, cameras=("primary", "wrist"),
                                image_size=s.image_size, patch_size=s.patch_size, horizon=10, dt=0.1,
                                action_mode=s.action_mode, max_text_tokens=8,
                                overrides=deep_merge(SMALL_MODEL, s.model))
    policy = FlowMatchingPolicy.load(init)
    cfg = demo_config(init, s.overrides)
    obs, acts = samples_from_bags(gen.train, cfg, policy.metadata, progress=s.progress)
    stats = train_policy(policy, obs, acts, seconds=s.train_seconds, max_steps=s.max_steps, batch_size=s.batch_size,
                         lr=s.lr, seed=s.seed, progress=s.progress)
    ckpt = policy.save(out / "checkpoint")
    policy.close()
    shutil.rmtree(out / "checkpoint_init", ignore_errors=True)
    log(f"      {stats.steps} steps on {stats.samples} samples in {stats.seconds:.1f} s; final loss {stats.final_loss:.4f}"
        f" (first steps {np.mean(stats.losses[:10]):.3f}); checkpoint {ckpt}")

    log(f"[3/3] evaluating the trained checkpoint on {len(gen.test)} held-out episodes (vs hold)")
    t0 = time.perf_counter()
    cfg = demo_config(ckpt, s.overrides)
    loss_png = P.plot_training(stats.losses, out / "training_loss.png") if stats.losses else None
    from vla_ros.replay.report import _img

    extra = (f"<h2>Training</h2><p>{stats.steps} steps (batch {s.batch_size}) on {stats.samples} samples from "
             f"{len(gen.train)} synthetic episodes in {stats.seconds:.1f} s; final loss {stats.final_loss:.4f}. "
             f"Evaluated on {len(gen.test)} held-out episodes.</p>" + (_img(loss_png, "training loss") if loss_png else ""))
    trained = load_configured_policy(cfg.policy)  # the checkpoint as saved on disk
    try:
        ev = run_evaluation(gen.test, cfg, policy=trained, out_dir=out / "report", progress=s.progress,
                            title="vla_ros demo: tiny flow-matching policy vs hold on held-out synthetic episodes",
                            extra_info={"train_steps": stats.steps, "train_s": f"{stats.seconds:.0f}"},
                            extra_html=extra, log=log)
    finally:
        trained.close()
    t_eval = time.perf_counter() - t0
    from vla_ros.replay.report import mean_row

    mean = mean_row(ev.rows) or {}
    numbers = {
        "train_steps": stats.steps, "train_seconds": stats.seconds, "train_samples": stats.samples,
        "final_loss": stats.final_loss, "first_loss": float(np.mean(stats.losses[:10])) if stats.losses else None,
        "generate_seconds": t_gen, "eval_seconds": t_eval, "episodes": {"train": len(gen.train), "test": len(gen.test)},
    }
    for key in ("chunk_position_error_m", "command_position_error_m", "command_gripper_accuracy"):
        if key in mean:
            pol, hold = mean[key]["policy"], mean[key]["hold"]
            numbers[key] = {"policy": pol, "hold": hold,
                            "hold_over_policy": hold / pol if pol and math.isfinite(pol) and pol > 0 else None}
    from vla_ros.replay.report import clean

    (out / "demo.json").write_text(json.dumps(clean({"settings": asdict(s), "numbers": numbers}), indent=2, default=str) + "\n")
    return DemoResult(out, ev.report_path, ev.metrics_path, Path(ckpt), stats, t_gen, t_eval, numbers, ev.table)
