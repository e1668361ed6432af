"""A small, honest training loop for flow-matching policies (demos, overfitting checks).

Usage (tiny checkpoint trained on synthetic demonstrations)::

    policy = FlowMatchingPolicy.load(make_tiny_checkpoint(tmp, horizon=10))
    policy.set_norm_stats(policy.compute_norm_stats(observations, actions))   # new data -> new stats
    losses = train(policy, (observations, actions), steps=300, batch_size=32, lr=3e-4)
    policy.save(out_dir)

`samples_or_batches` may be a ``(observations, actions[N, H, 7])`` pair or a list of
``(observation, actions[H, 7])`` samples (converted once with `make_training_batch`), one batch
dict covering the whole dataset (mini-batches are drawn from it, reshuffled every epoch), or a
list of batch dicts (cycled). Train in float32; bfloat16 weights with AdamW lose small updates.

freeze: "none" trains everything; "vision" freezes the vision tower(s) (the projector/router
still train); "backbone" freezes the vision towers and the language backbone, training the
projectors, the action expert and its heads (the design's first stage); "vlm" freezes the whole
VLM, projector / connector included, training only the action expert and its heads (the state
projection among them): LeRobot's ``train_expert_only`` recipe for SmolVLA, whose VLM is
pretrained as a unit.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import numpy as np
import torch

from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy

FREEZE_CHOICES = ("none", "vision", "backbone", "vlm")


def _frozen_prefixes(freeze: str) -> tuple[str, ...]:
    if freeze == "none":
        return ()
    towers = ("vision.tower.", "vision.siglip.tower.", "vision.dinov2.tower.")
    if freeze == "vision":
        return towers
    if freeze == "backbone":
        return towers + ("backbone.",)
    if freeze == "vlm":
        return ("vision.", "backbone.")
    raise ValueError(f"freeze: expected one of {FREEZE_CHOICES}, got {freeze!r}")


def set_trainable(policy: FlowMatchingPolicy, freeze: str) -> list[torch.nn.Parameter]:
    """Mark parameters trainable per `freeze`; returns the trainable ones."""
    frozen = _frozen_prefixes(freeze)
    params = []
    for name, p in policy.model.named_parameters():
        trainable = not name.startswith(frozen)
        p.requires_grad_(trainable)
        if trainable:
            params.append(p)
    return params


def _batches(policy: FlowMatchingPolicy, data, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], dict):
        data = policy.make_training_batch(list(data[0]), np.asarray(data[1]))
    elif isinstance(data, list) and data and isinstance(data[0], tuple):
        obs, acts = zip(*data)
        data = policy.make_training_batch(list(obs), np.stack(acts))
    if isinstance(data, dict):
        n = int(data["actions"].shape[0])
        bs = min(batch_size, n)
        while True:
            perm = torch.randperm(n, generator=generator)
            for i in range(0, n - bs + 1, bs):
                idx = perm[i:i + bs].to(data["actions"].device)
                yield {k: v[idx] for k, v in data.items()}
    elif isinstance(data, Sequence) and data and isinstance(data[0], dict):
        yield from itertools.cycle(data)
    else:
        raise ValueError("samples_or_batches: expected (observations, actions), [(observation, actions)], a batch dict "
                         "or a list of batch dicts")


def train(policy: FlowMatchingPolicy, samples_or_batches, steps: int = 300, batch_size: int = 32, lr: float = 3e-4, *,
          freeze: str = "vision", weight_decay: float = 1e-4, grad_clip: float = 1.0, warmup_steps: int = 10,
          seed: int = 0, progress: bool = True) -> list[float]:
    """Train `policy.model` in place with AdamW; returns the loss of every step.

    The model is left in eval mode with all parameters frozen again (inference needs no grads).
    """
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    model = policy.model
    gen = torch.Generator().manual_seed(seed)
    params = set_trainable(policy, freeze)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))
    batches = _batches(policy, samples_or_batches, batch_size, gen)
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="train", unit="step")
    model.train()
    try:
        with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
            torch.manual_seed(seed)
            for _ in range(steps):
                batch = next(batches)
                loss = policy.compute_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
    finally:
        if bar is not None:
            bar.close()
        model.requires_grad_(False)
        model.eval()
    return losses
