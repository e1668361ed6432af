"""The traced CPU sampling path, batched inference and warm-up give the eager numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from policy_helpers import make_observation

from vla_ros.policy.flow_matching import sampler
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
from vla_ros.policy.flow_matching.sampler import sample_actions


def _noise(policy, batch: int = 1, seed: int = 0) -> torch.Tensor:
    io = policy.config.io
    return torch.randn(batch, io.horizon, io.max_action_dim, generator=torch.Generator().manual_seed(seed))


def _traces(policy) -> dict:
    return policy.model.__dict__.get("_traced_samplers", {})


@pytest.mark.parametrize("vision", ["siglip", "siglip_dinov2"])
def test_traced_sampling_equals_eager_and_is_reused_per_layout(ckpt_factory, family, vision):
    policy = FlowMatchingPolicy.load(ckpt_factory(family=family, vision=vision))
    both = policy.observation_tensors([make_observation(0)])
    one = policy.observation_tensors([make_observation(1, cameras=("primary",))])  # a camera missing
    noise = _noise(policy)
    for obs in (both, one, both):
        traced = sample_actions(policy.model, obs, noise, 10, traced=True)
        eager = sample_actions(policy.model, obs, noise, 10, traced=False)
        assert (traced - eager).abs().max().item() < 1e-5
        assert (traced - noise).abs().max().item() > 1e-2  # the network moved the sample
    traces = _traces(policy)
    assert len(traces) == 2 and all(t is not None for t in traces.values())  # one per camera layout, reused
    policy.close()


def test_trace_is_recorded_again_after_an_in_place_weight_update(ckpt_factory):
    policy = FlowMatchingPolicy.load(ckpt_factory())
    obs = policy.observation_tensors([make_observation(0)])
    noise = _noise(policy)
    before = sample_actions(policy.model, obs, noise, 10, traced=True)
    with torch.no_grad():
        policy.model.heads.action_out_proj.weight.add_(0.05)  # what an optimizer step does
    after = sample_actions(policy.model, obs, noise, 10, traced=True)
    eager = sample_actions(policy.model, obs, noise, 10, traced=False)
    assert (after - before).abs().max().item() > 1e-3
    assert (after - eager).abs().max().item() < 1e-5
    policy.close()


def test_tracing_failure_falls_back_to_eager_with_a_warning(ckpt_factory, monkeypatch):
    policy = FlowMatchingPolicy.load(ckpt_factory())
    obs = policy.observation_tensors([make_observation(0)])
    noise = _noise(policy)
    eager = sample_actions(policy.model, obs, noise, 10, traced=False)

    def broken_trace(*args, **kwargs):
        raise RuntimeError("unsupported op")

    monkeypatch.setattr(torch.jit, "trace", broken_trace)
    with pytest.warns(RuntimeWarning, match="tracing the sampling failed .*unsupported op.*sampling eagerly"):
        first = sample_actions(policy.model, obs, noise, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # remembered: no second attempt, no second warning
        second = sample_actions(policy.model, obs, noise, 10)
    assert torch.equal(first, eager) and torch.equal(second, eager)
    policy.close()


def test_infer_batch_equals_sequential_infer(ckpt_factory):
    policy = FlowMatchingPolicy.load(ckpt_factory())
    observations = [make_observation(i, stamp=10.0 + i) for i in range(3)]  # 3 -> padded to a batch of 4
    sequential = [policy.infer(o) for o in observations]
    policy.reset()  # re-seeds the noise: the batch draws the same noise in the same order
    batched = policy.infer_batch(observations)
    assert len(batched) == 3
    for s, b in zip(sequential, batched):
        assert b.stamp == s.stamp and b.mode == s.mode and b.reference_pose is s.reference_pose
        np.testing.assert_allclose(b.actions, s.actions, atol=1e-5)
    assert np.abs(sequential[0].actions - sequential[1].actions).max() > 1e-3  # different inputs and noise
    assert policy.infer_batch([]) == []
    with pytest.raises(ValueError, match="observation.ee_pose"):
        policy.infer_batch([observations[0], make_observation(5, ee_pose=False)])
    policy.close()


def test_warmup_records_the_trace_without_changing_the_chunks(ckpt_factory):
    policy = FlowMatchingPolicy.load(ckpt_factory())
    ob = make_observation(0)
    cold = policy.infer(ob)
    fresh = FlowMatchingPolicy.load(ckpt_factory())
    fresh.warmup()
    keys = set(_traces(fresh))
    assert len(keys) == 1
    warm = fresh.infer(ob)
    assert set(_traces(fresh)) == keys  # the real observation reused the warm-up's trace
    np.testing.assert_array_equal(warm.actions, cold.actions)  # no noise drawn by the warm-up
    fresh.warmup(3)  # infer_batch runs 3 observations as a batch of 4
    keys = set(_traces(fresh))
    assert len(keys) == 2
    fresh.infer_batch([make_observation(i) for i in range(3)])
    assert set(_traces(fresh)) == keys
    policy.close()
    fresh.close()


def test_eager_and_traced_paths_agree_through_the_policy(ckpt_factory, monkeypatch):
    policy = FlowMatchingPolicy.load(ckpt_factory())
    ob = make_observation(3)
    traced = policy.infer(ob)
    policy.reset()
    original = sampler.sample_actions
    monkeypatch.setattr("vla_ros.policy.flow_matching.policy.sample_actions",
                        lambda *a, **k: original(*a, **{**k, "traced": False}))
    eager = policy.infer(ob)
    np.testing.assert_allclose(traced.actions, eager.actions, atol=1e-5)
    policy.close()
