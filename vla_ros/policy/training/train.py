"""The time-budgeted training loop of the demo: AdamW on the policy's own flow-matching loss.

Training produces a policy, so it lives under `vla_ros.policy` (not with the replay, which only
evaluates). Bounded by wall-clock seconds as well as steps (capped at `MAX_TRAIN_SECONDS`) so that
`make demo` finishes in minutes on a CPU, with a progress bar; the loss curve comes back in
`TrainStats` for the demo's plot and report. Samples come from `vla_ros.policy.training.dataset`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

MAX_TRAIN_SECONDS = 180.0


@dataclass
class TrainStats:
    """What one `train_policy` run did: steps taken, wall-clock seconds, the loss of every step, samples."""

    steps: int
    seconds: float
    losses: list[float]
    samples: int

    @property
    def final_loss(self) -> float:
        tail = self.losses[-50:]
        return float(np.mean(tail)) if tail else float("nan")


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
