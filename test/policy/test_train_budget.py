"""The demo's time-budgeted training loop (`vla_ros.policy.training.train.train_policy`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from policy_helpers import make_observation

from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
from vla_ros.policy.training.train import TrainStats, train_policy


def _samples(n: int, horizon: int = 10):
    obs = [make_observation(i, instruction="push the red cube") for i in range(n)]
    acts = np.zeros((n, horizon, 7))
    for i, ob in enumerate(obs):
        acts[i, :, :3] = ob.ee_pose.position + 0.01 * np.arange(horizon)[:, None] * np.array([1.0, 0.0, -0.5])
        acts[i, :, 3:6] = ob.ee_pose.as_vector()[3:]
        acts[i, :, 6] = i % 2
    return obs, acts


def test_steps_bounded_model_left_frozen_and_rerun_identical(ckpt_factory):
    torch.set_num_threads(1)
    obs, acts = _samples(6)
    runs = []
    for _ in range(2):
        policy = FlowMatchingPolicy.load(ckpt_factory())
        before = policy.model.expert.layers[0].mlp.up_proj.weight.clone()
        stats = train_policy(policy, obs, acts, seconds=120, max_steps=5, batch_size=4, lr=1e-3, seed=3,
                             progress=False)
        assert isinstance(stats, TrainStats)
        assert stats.steps == 5 and len(stats.losses) == 5 and stats.samples == 6
        assert all(math.isfinite(v) for v in stats.losses) and stats.final_loss == np.mean(stats.losses)
        assert not torch.equal(policy.model.expert.layers[0].mlp.up_proj.weight, before)
        assert not policy.model.training
        assert not any(p.requires_grad for p in policy.model.parameters())
        np.testing.assert_allclose(policy.norm_stats.actions.mean, acts.reshape(-1, 7).mean(0))
        runs.append(stats.losses)
    assert runs[0] == runs[1]  # same seed, same step count: the same run


def test_zero_seconds_budget_trains_nothing(ckpt_factory):
    policy = FlowMatchingPolicy.load(ckpt_factory())
    obs, acts = _samples(4)
    before = {n: p.clone() for n, p in policy.model.named_parameters()}
    stats = train_policy(policy, obs, acts, seconds=0.0, max_steps=100, progress=False)
    assert stats.steps == 0 and stats.losses == [] and math.isnan(stats.final_loss)
    assert all(torch.equal(p, before[n]) for n, p in policy.model.named_parameters())
    assert not policy.model.training
