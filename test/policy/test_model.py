"""The deep-fusion network: shapes, masks, prefix/suffix isolation, KV cache, loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from policy_helpers import make_observation

from vla_ros.policy.flow_matching.joint_layer import block_attention_mask
from vla_ros.policy.flow_matching.model import ACTION_BLOCK, PREFIX_BLOCK, STATE_BLOCK
from vla_ros.policy.flow_matching.sampler import sample_actions


def _inputs(policy, **obs_kwargs):
    return policy.observation_tensors([make_observation(**obs_kwargs)])


def _suffix(policy, seed: int, t: float = 0.6):
    g = torch.Generator().manual_seed(seed)
    io = policy.config.io
    x = torch.randn(1, io.horizon, io.max_action_dim, generator=g)
    state = torch.randn(1, io.max_state_dim, generator=g)
    return state, x, torch.tensor([t])


def test_block_mask_prefix_bidirectional_suffix_block_causal():
    blocks = torch.tensor([[PREFIX_BLOCK, PREFIX_BLOCK, PREFIX_BLOCK, STATE_BLOCK, ACTION_BLOCK, ACTION_BLOCK]])
    valid = torch.tensor([[True, False, True, True, True, True]])  # token 1 is padding
    m = block_attention_mask(blocks, blocks, valid)[0].int().tolist()
    assert m == [
        [1, 0, 1, 0, 0, 0],  # prefix: other valid prefix tokens only
        [1, 0, 1, 0, 0, 0],  # (a padding query still sees the valid prefix: no empty rows)
        [1, 0, 1, 0, 0, 0],
        [1, 0, 1, 1, 0, 0],  # state: prefix + itself
        [1, 0, 1, 1, 1, 1],  # actions: everything valid
        [1, 0, 1, 1, 1, 1],
    ]


def test_shapes_and_pad_masks(policy_factory, family):
    policy = policy_factory(family=family)
    m, cfg = policy.model, policy.config
    obs = _inputs(policy, cameras=("primary",), instruction="push the cube")  # wrist missing
    embs, pad = m.embed_prefix(obs)
    per_cam = cfg.tokens_per_camera
    assert per_cam == (32 // 8) ** 2
    assert embs.shape == (1, 2 * per_cam + cfg.io.max_text_tokens, cfg.backbone.hidden_size)
    assert pad[0, :per_cam].all() and not pad[0, per_cam:2 * per_cam].any()  # wrist camera masked
    n_text = int(obs.token_mask.sum())
    assert 2 <= n_text < cfg.io.max_text_tokens  # BOS + words, then padding
    assert pad[0, 2 * per_cam:].tolist() == obs.token_mask[0].tolist()
    state, x, t = _suffix(policy, 0)
    s_embs, s_pad, s_blocks = m.embed_suffix(state, x, t)
    assert s_embs.shape == (1, 1 + cfg.io.horizon, cfg.expert.hidden_size)
    assert s_blocks[0].tolist() == [STATE_BLOCK] + [ACTION_BLOCK] * cfg.io.horizon and s_pad.all()
    p_out, s_out = m.forward_joint(embs, pad, s_embs, s_pad, s_blocks)
    assert p_out.shape == embs.shape and s_out.shape == s_embs.shape
    v = m.heads.velocity(s_out, cfg.io.horizon)
    assert v.shape == (1, cfg.io.horizon, cfg.io.max_action_dim) and v.dtype == torch.float32


@torch.no_grad()
def test_prefix_cannot_see_suffix_but_suffix_sees_prefix(policy_factory, family):
    m = policy_factory(family=family).model
    policy = policy_factory(family=family)
    embs, pad = m.embed_prefix(_inputs(policy))
    p1, s1 = m.forward_joint(embs, pad, *m.embed_suffix(*_suffix(policy, 1, 0.9)))
    p2, s2 = m.forward_joint(embs, pad, *m.embed_suffix(*_suffix(policy, 2, 0.2)))
    assert torch.equal(p1, p2), "prefix outputs changed when only the suffix changed"
    assert not torch.allclose(s1, s2)
    embs3, pad3 = m.embed_prefix(_inputs(policy, seed=7, instruction="open the drawer"))
    _, s3 = m.forward_joint(embs3, pad3, *m.embed_suffix(*_suffix(policy, 1, 0.9)))
    assert (s3 - s1).abs().max() > 1e-4, "suffix outputs ignore the prefix"


@torch.no_grad()
def test_padding_and_missing_cameras_are_masked(policy_factory, family):
    policy = policy_factory(family=family)
    m = policy.model
    obs = _inputs(policy, cameras=("primary",), instruction="grab the cup")
    suffix = m.embed_suffix(*_suffix(policy, 3))
    p1, s1 = m.forward_joint(*m.embed_prefix(obs), *suffix)
    tokens = obs.tokens.clone()
    tokens[~obs.token_mask] = 17  # garbage in the padded text slots
    images = obs.images.clone()
    images[0, 1] = 255  # garbage in the missing wrist camera's slot
    other = dataclasses.replace(obs, tokens=tokens, images=images)
    p2, s2 = m.forward_joint(*m.embed_prefix(other), *suffix)
    valid = m.embed_prefix(obs)[1][0]
    assert torch.equal(s1, s2)
    assert torch.equal(p1[0, valid], p2[0, valid])
    # Control: the same garbage in a present camera does change the result.
    images_present = obs.images.clone()
    images_present[0, 0] = 255
    _, s3 = m.forward_joint(*m.embed_prefix(dataclasses.replace(obs, images=images_present)), *suffix)
    assert not torch.allclose(s1, s3)


@pytest.mark.parametrize("vision", ["siglip", "siglip_dinov2"])
def test_cached_sampling_equals_uncached(policy_factory, family, vision):
    policy = policy_factory(family=family, vision=vision)
    obs = _inputs(policy, cameras=("primary",))  # one camera missing: masks matter too
    noise = torch.randn(1, policy.config.io.horizon, policy.config.io.max_action_dim,
                        generator=torch.Generator().manual_seed(0))
    cached = sample_actions(policy.model, obs, noise, 10, use_cache=True)
    naive = sample_actions(policy.model, obs, noise, 10, use_cache=False)
    assert cached.shape == noise.shape
    assert (cached - naive).abs().max().item() < 1e-5
    # Not trivially equal to the noise: the network did move the sample.
    assert (cached - noise).abs().max().item() > 1e-2


@torch.no_grad()
def test_dual_vision_is_text_conditioned(policy_factory):
    policy = policy_factory(vision="siglip_dinov2")
    m = policy.model
    k = policy.config.vision.num_aggregation_tokens
    assert policy.config.tokens_per_camera == k
    a = _inputs(policy, instruction="pick up the red cube")
    b = dataclasses.replace(_inputs(policy, instruction="close the drawer"), images=a.images)
    ea, pa = m.embed_prefix(a)
    eb, _ = m.embed_prefix(b)
    assert ea.shape[1] == 2 * k + policy.config.io.max_text_tokens and pa[0, : 2 * k].all()
    # Same pixels, different instruction -> different vision tokens (FiLM + router).
    assert (ea[0, :k] - eb[0, :k]).abs().max() > 1e-5
    lang = torch.randn(3, policy.config.backbone.hidden_size)
    w = m.vision.routing_weights(lang)
    assert w.shape == (3, 2) and torch.allclose(w.sum(-1), torch.ones(3))


def test_compute_loss_decreases_when_overfitting_one_batch(ckpt_factory, family):
    from policy_helpers import make_observation as mk

    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
    from vla_ros.policy.flow_matching.train import train

    policy = FlowMatchingPolicy.load(ckpt_factory(family=family))  # own copy: training mutates it
    obs = [mk(seed=i, instruction=f"push the {c} cube") for i, c in enumerate(("red", "blue", "green", "black"))]
    rng = torch.Generator().manual_seed(0)
    base = torch.tensor([0.45, 0.0, 0.3, 0.0, 0.0, 0.0, 0.5])
    acts = (base + 0.1 * torch.randn(4, policy.config.io.horizon, 7, generator=rng)).numpy()
    batch = policy.make_training_batch(obs, acts)
    noise = torch.randn(batch["actions"].shape, generator=rng)
    time = torch.tensor([0.9, 0.7, 0.5, 0.3])

    def fixed_loss():
        with torch.no_grad():
            return float(policy.compute_loss(batch, noise=noise, time=time))

    before = fixed_loss()
    losses = train(policy, batch, steps=40, batch_size=4, lr=3e-3, freeze="vision", progress=False)
    after = fixed_loss()
    assert len(losses) == 40 and all(torch.isfinite(torch.tensor(losses)))
    assert after < 0.75 * before, (before, after)
    assert not any(p.requires_grad for p in policy.model.parameters())  # left frozen for inference
