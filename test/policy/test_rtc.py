"""Real-Time Chunking guidance in the sampler (Black, Galliker & Levine 2025)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from policy_helpers import fixed_noise, make_observation

from vla_ros.core.types import ChunkGuidance
from vla_ros.core.action_modes import absolute_actions
from vla_ros.policy.flow_matching.sampler import guidance_weight

COMMITTED = 4
WEIGHTS = np.array([1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0], dtype=float)


def _absolute(chunk):
    return absolute_actions(chunk)


@pytest.mark.parametrize("options", [{"family": "gemma"}, {"family": "llama"}, {"action_mode": "delta"}], ids=str)
def test_guidance_inpaints_the_committed_actions(policy_factory, options):
    policy = policy_factory(**options)
    obs = make_observation(11)
    previous = _absolute(policy.infer(obs, noise=fixed_noise(policy, 1)))  # what the executor committed to
    noise = fixed_noise(policy, 2)  # the new chunk starts from different noise
    scale = policy.norm_stats.actions.std  # compare in units of the action spread

    def committed_error(chunk):
        return float(np.max(np.abs(_absolute(chunk)[:COMMITTED] - previous[:COMMITTED]) / scale))

    free = policy.infer(obs, noise=noise)
    guided = policy.infer(obs, noise=noise, guidance=ChunkGuidance(previous, WEIGHTS, max_guidance_weight=5.0))
    assert committed_error(free) > 1.0, "unguided chunks should disagree (different noise)"
    assert committed_error(guided) < 0.1
    assert guided.actions.shape == (10, 7) and np.all(np.isfinite(guided.actions))
    # Beyond the overlap (weight 0) the chunk is left to the policy; it is not copied from the plan.
    assert np.max(np.abs(_absolute(guided)[-1] - previous[-1]) / scale) > 0.2


def test_zero_weights_or_zero_beta_change_nothing(policy_factory):
    policy = policy_factory()
    obs, noise = make_observation(12), fixed_noise(policy, 3)
    free = policy.infer(obs, noise=noise).actions
    target = free + 0.3
    off = policy.infer(obs, noise=noise, guidance=ChunkGuidance(target, np.zeros(10))).actions
    no_beta = policy.infer(obs, noise=noise, guidance=ChunkGuidance(target, WEIGHTS, max_guidance_weight=0.0)).actions
    np.testing.assert_allclose(off, free, atol=1e-6)
    np.testing.assert_allclose(no_beta, free, atol=1e-6)


def test_shorter_guidance_than_horizon(policy_factory):
    policy = policy_factory()
    obs = make_observation(13)
    previous = policy.infer(obs, noise=fixed_noise(policy, 1)).actions
    guided = policy.infer(obs, noise=fixed_noise(policy, 2), guidance=ChunkGuidance(previous[:5], np.ones(5)))
    assert np.max(np.abs(guided.actions[:3] - previous[:3]) / policy.norm_stats.actions.std) < 0.1


def test_guidance_weight_schedule():
    beta = 5.0
    assert guidance_weight(1.0, beta) == beta  # pure noise: the formula diverges -> clipped
    assert guidance_weight(0.0, beta) == beta
    # tau = 1 - t; (1 - tau) / (tau * r^2) with r^2 = (1 - tau)^2 / (tau^2 + (1 - tau)^2)
    t = 0.5
    assert guidance_weight(t, beta) == pytest.approx(2.0)
    t = 0.3
    tau = 1 - t
    expected = (1 - tau) / (tau * ((1 - tau) ** 2 / (tau**2 + (1 - tau) ** 2)))
    assert guidance_weight(t, 100.0) == pytest.approx(expected)
    assert guidance_weight(t, 1.0) == 1.0
    assert all(math.isfinite(guidance_weight(i / 10, beta)) for i in range(11))
