"""The same policy on a CUDA device (skipped where there is none, e.g. CI): fp32 and bfloat16."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_helpers import fixed_noise, make_observation

from vla_ros.core.types import ChunkGuidance
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
from vla_ros.policy.flow_matching.sampler import sample_actions
from vla_ros.policy.flow_matching.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("vision", ["siglip", "siglip_dinov2"])
def test_cuda_float32_matches_cpu_and_cache_is_exact(ckpt_factory, family, vision):
    path = ckpt_factory(family=family, vision=vision)
    cpu, gpu = FlowMatchingPolicy.load(path), FlowMatchingPolicy.load(path, device="cuda")
    assert gpu.metadata.device.startswith("cuda") and gpu.model.backbone.rotary_emb.inv_freq.is_cuda
    obs, noise = make_observation(1, cameras=("primary",)), fixed_noise(cpu, 1)
    np.testing.assert_allclose(gpu.infer(obs, noise=noise).actions, cpu.infer(obs, noise=noise).actions, atol=2e-3)
    inputs = gpu.observation_tensors([obs])
    assert inputs.images.is_cuda and inputs.images.dtype == torch.uint8
    n = torch.randn(1, 10, 8, device="cuda")
    a = sample_actions(gpu.model, inputs, n, 10, use_cache=True)
    b = sample_actions(gpu.model, inputs, n, 10, use_cache=False)
    assert (a - b).abs().max().item() < 1e-4  # TF32/kernel choice may differ by shape on GPU


def test_cuda_bfloat16_infer_rtc_and_training(ckpt_factory):
    path = ckpt_factory()
    policy = FlowMatchingPolicy.load(path, device="cuda", dtype="bfloat16")
    ref = FlowMatchingPolicy.load(path)
    assert policy.model.dtype == torch.bfloat16 and policy.metadata.dtype == "bfloat16"
    obs = make_observation(2)
    chunk = policy.infer(obs, noise=fixed_noise(policy, 2))
    assert np.all(np.isfinite(chunk.actions))
    assert np.abs(chunk.actions - ref.infer(obs, noise=fixed_noise(policy, 2)).actions).max() < 0.25
    previous = policy.infer(obs, noise=fixed_noise(policy, 3)).actions
    weights = np.array([1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0], dtype=float)
    guided = policy.infer(obs, noise=fixed_noise(policy, 4), guidance=ChunkGuidance(previous, weights))
    free = policy.infer(obs, noise=fixed_noise(policy, 4))
    scale = policy.norm_stats.actions.std
    assert np.max(np.abs(guided.actions[:4] - previous[:4]) / scale) < 0.15
    assert np.max(np.abs(free.actions[:4] - previous[:4]) / scale) > 1.0
    trainee = FlowMatchingPolicy.load(path, device="cuda")
    acts = np.repeat(obs.ee_state()[None, None], 10, axis=1)
    losses = train(trainee, ([obs, make_observation(3)], np.concatenate([acts, acts])), steps=5, batch_size=2,
                   progress=False)
    assert len(losses) == 5 and all(np.isfinite(losses))


def test_cuda_graph_replay_equals_eager_steps(ckpt_factory, family):
    policy = FlowMatchingPolicy.load(ckpt_factory(family=family), device="cuda")
    for seed in (1, 2):  # the second chunk reuses the captured graph with new prefix buffers
        inputs = policy.observation_tensors([make_observation(seed, instruction=f"task {seed}")])
        n = torch.randn(1, 10, 8, device="cuda", generator=torch.Generator("cuda").manual_seed(seed))
        graphed = sample_actions(policy.model, inputs, n, 10, cuda_graph=True)
        eager = sample_actions(policy.model, inputs, n, 10, cuda_graph=False)
        assert (graphed - eager).abs().max().item() < 1e-5
    assert len(policy.model.__dict__["_cuda_graph_steps"]) == 1


@pytest.mark.parametrize("attention", ["cross", "interleaved"])
def test_cuda_graph_replay_equals_eager_steps_for_the_cross_attention_styles(ckpt_factory, attention):
    """The graphed step of a cross / interleaved expert (projected prefix K/V in the cache, state as a
    prefix token, causal actions for interleaved) replays the eager numbers, chunk after chunk."""
    from policy_helpers import SMALL

    from vla_ros.core.schema import deep_merge

    ov = deep_merge(SMALL, {"expert": {"attention": attention, "causal_actions": attention == "interleaved"},
                            "backbone": {"num_hidden_layers": 3}})
    policy = FlowMatchingPolicy.load(ckpt_factory(overrides=ov), device="cuda")
    assert policy.config.state_in_prefix
    for seed in (1, 2):
        inputs = policy.observation_tensors([make_observation(seed, instruction=f"task {seed}")])
        n = torch.randn(1, 10, 8, device="cuda", generator=torch.Generator("cuda").manual_seed(seed))
        graphed = sample_actions(policy.model, inputs, n, 10, cuda_graph=True)
        eager = sample_actions(policy.model, inputs, n, 10, cuda_graph=False, traced=False)
        naive = sample_actions(policy.model, inputs, n, 10, use_cache=False)
        assert (graphed - eager).abs().max().item() < 1e-5
        assert (graphed - naive).abs().max().item() < 1e-4
