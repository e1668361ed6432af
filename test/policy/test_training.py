"""The training API the demo uses: norm stats from data, training batches, train(), save()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_helpers import fixed_noise, make_observation

from vla_ros.core.action_modes import absolute_to_delta
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
from vla_ros.policy.flow_matching.train import train
from vla_ros.policy.normalization import NormStats


def _dataset(n: int, horizon: int = 10, joints: int | None = None):
    rng = np.random.default_rng(0)
    obs = [make_observation(i, instruction="push the red cube", joints=joints) for i in range(n)]
    steps = np.arange(horizon)[None, :, None]
    acts = np.zeros((n, horizon, 7))
    for i, ob in enumerate(obs):
        acts[i, :, :3] = ob.ee_pose.position + 0.01 * steps[0] * np.array([1.0, 0.0, -0.5])
        acts[i, :, 3:6] = ob.ee_pose.as_vector()[3:]
        acts[i, :, 6] = rng.uniform(0, 1)
    return obs, acts


def test_training_batch_and_norm_stats(policy_factory):
    policy = policy_factory()
    obs, acts = _dataset(6)
    stats = policy.compute_norm_stats(obs, acts)
    assert isinstance(stats, NormStats) and stats.actions.dim == 7 and stats.state.dim == 7
    np.testing.assert_allclose(stats.actions.mean, acts.reshape(-1, 7).mean(0))
    np.testing.assert_allclose(stats.state.mean, np.mean([o.ee_state() for o in obs], axis=0))
    batch = policy.make_training_batch(obs, acts)
    io = policy.config.io
    assert batch["images"].shape == (6, 2, 3, 32, 32) and batch["images"].dtype == torch.uint8
    assert batch["image_mask"].all() and batch["tokens"].shape == (6, io.max_text_tokens)
    assert batch["state"].shape == (6, io.max_state_dim) and batch["actions"].shape == (6, 10, io.max_action_dim)
    assert torch.all(batch["actions"][..., 7:] == 0)  # padded action dims
    expected = policy.norm_stats.actions.normalize(acts, io.normalization)
    np.testing.assert_allclose(batch["actions"][..., :7].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"actions: expected shape \(6, 10, 7\)"):
        policy.make_training_batch(obs, acts[:, :5])


def test_delta_checkpoint_trains_on_deltas(policy_factory):
    policy = policy_factory(action_mode="delta", state_source="joints", family="llama")
    obs, acts = _dataset(4, joints=6)
    stats = policy.compute_norm_stats(obs, acts)
    deltas = np.stack([absolute_to_delta(a, o.ee_pose) for a, o in zip(acts, obs)])
    np.testing.assert_allclose(stats.actions.mean, deltas.reshape(-1, 7).mean(0), atol=1e-12)
    assert stats.state.dim == 7  # 6 joints + gripper


def test_train_then_save_and_reload(ckpt_factory, tmp_path):
    policy = FlowMatchingPolicy.load(ckpt_factory(family="llama"))
    obs, acts = _dataset(8)
    policy.set_norm_stats(policy.compute_norm_stats(obs, acts))
    frozen_before = policy.model.vision.tower.embeddings.patch_embedding.weight.clone()
    expert_before = policy.model.expert.layers[0].mlp.up_proj.weight.clone()
    losses = train(policy, (obs, acts), steps=12, batch_size=4, lr=1e-3, freeze="vision", progress=False)
    assert len(losses) == 12 and all(np.isfinite(losses))
    assert torch.equal(policy.model.vision.tower.embeddings.patch_embedding.weight, frozen_before)
    assert not torch.equal(policy.model.expert.layers[0].mlp.up_proj.weight, expert_before)
    out = policy.save(tmp_path / "trained")
    loaded = FlowMatchingPolicy.load(out)
    np.testing.assert_allclose(loaded.norm_stats.actions.mean, policy.norm_stats.actions.mean)
    noise = fixed_noise(policy)
    np.testing.assert_array_equal(loaded.infer(obs[0], noise=noise).actions, policy.infer(obs[0], noise=noise).actions)


def test_freeze_backbone_trains_only_the_expert_side(ckpt_factory):
    policy = FlowMatchingPolicy.load(ckpt_factory())
    obs, acts = _dataset(4)
    batch = policy.make_training_batch(obs, acts)
    snap = {n: p.clone() for n, p in policy.model.named_parameters()}
    train(policy, [batch], steps=3, batch_size=4, lr=1e-3, freeze="backbone", progress=False)
    changed = {n for n, p in policy.model.named_parameters() if not torch.equal(p, snap[n])}
    assert changed and all(n.startswith(("expert.", "heads.", "vision.projector.")) for n in changed)
    assert any(n.startswith("expert.") for n in changed) and any(n.startswith("heads.") for n in changed)
    with pytest.raises(ValueError, match="freeze: expected one of"):
        train(policy, [batch], steps=1, freeze="everything", progress=False)
