"""The expert attention styles (config expert.attention: joint | cross | interleaved) and SmolVLA's layout options.

A cross layer reads the backbone's per-layer keys/values through its own k/v projections, so its
numbers can be checked against the definition directly (`test_a_cross_layer_is_attention_to_the_
projected_backbone_keys`); every style must give the same chunk on the naive, cached and traced
paths (the cache holds the projected keys/values of the cross layers); the layout options
(state as a prefix token, causal action blocks) change the mask the way they say; and the
combinations that cannot work are refused by name.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from policy_helpers import SMALL  # noqa: E402

from vla_ros.core.schema import deep_merge  # noqa: E402
from vla_ros.policy.flow_matching.config import ConfigError, FlowMatchingConfig  # noqa: E402
from vla_ros.policy.flow_matching.cross_layer import cross_layer_forward  # noqa: E402
from vla_ros.policy.flow_matching.model import ObservationTensors  # noqa: E402
from vla_ros.policy.flow_matching.sampler import sample_actions  # noqa: E402
from vla_ros.policy.flow_matching.tiny import tiny_config_dict  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STYLES = [("joint", False), ("joint", True), ("cross", False), ("interleaved", False), ("interleaved", True)]


def _policy(policy_factory, attention: str, causal: bool = False, **extra):
    ov = deep_merge(SMALL, {"expert": {"attention": attention, "causal_actions": causal},
                            "backbone": {"num_hidden_layers": 3}, **extra})
    return policy_factory(overrides=ov)


def _obs(policy, seed: int = 0) -> tuple[ObservationTensors, torch.Tensor]:
    io = policy.config.io
    g = torch.Generator().manual_seed(seed)
    b, c, n = 2, len(io.cameras), io.max_text_tokens
    obs = ObservationTensors(
        torch.randint(0, 256, (b, c, 3, io.image_size, io.image_size), dtype=torch.uint8, generator=g),
        torch.tensor([[True] * c, [True] + [False] * (c - 1)]),  # sample 1: a camera missing
        torch.randint(4, 100, (b, n), generator=g),
        torch.arange(n)[None].expand(b, n) < torch.tensor([[3], [n - 2]]),  # padded text
        torch.randn((b, io.max_state_dim), generator=g))
    return obs, torch.randn((b, io.horizon, io.max_action_dim), generator=g)


@pytest.mark.parametrize("attention,causal", STYLES)
def test_naive_cached_and_traced_sampling_agree(policy_factory, attention, causal):
    policy = _policy(policy_factory, attention, causal)
    assert policy.config.layer_kinds == {"joint": ("self",) * 3, "cross": ("cross",) * 3,
                                         "interleaved": ("self", "cross", "self")}[attention]
    obs, noise = _obs(policy)
    naive = sample_actions(policy.model, obs, noise, 4, use_cache=False, traced=False)
    cached = sample_actions(policy.model, obs, noise, 4, traced=False)
    traced = sample_actions(policy.model, obs, noise, 4, traced=True)
    assert policy.model.__dict__["_traced_samplers"] and all(policy.model.__dict__["_traced_samplers"].values())
    assert (naive - cached).abs().max().item() < 1e-5
    assert (naive - traced).abs().max().item() < 1e-5


def test_styles_and_layouts_change_the_numbers(policy_factory):
    """Each option reaches the computation (same weights where shapes allow: different actions)."""
    outs = {}
    for attention, causal in STYLES:
        policy = _policy(policy_factory, attention, causal)
        obs, noise = _obs(policy)
        outs[(attention, causal)] = sample_actions(policy.model, obs, noise, 4, traced=False)
    values = list(outs.values())
    assert all((a - b).abs().max().item() > 1e-3 for i, a in enumerate(values) for b in values[i + 1:])


def test_a_cross_layer_is_attention_to_the_projected_backbone_keys(policy_factory):
    """One cross layer against its definition: softmax(q k'^T / sqrt(d)) v' with k' = k_proj(K), v' = v_proj(V),
    the queries rotated at positions 0..Ls-1, the keys not rotated again, padding masked."""
    policy = _policy(policy_factory, "cross")
    model = policy.model
    obs, noise = _obs(policy)
    with torch.no_grad():
        cache = model.prefix_cache(obs)
        layout = model.suffix_layout(cache)
        # layer 0 of the prefix pass, recomputed by hand
        embs, pad = model.embed_prefix(obs)
        lb, le = model.backbone.layers[0], model.expert.layers[0]
        x = lb.input_layernorm(embs)
        b, lp, _ = x.shape
        hd = lb.self_attn.head_dim
        pos = (torch.cumsum(pad.long(), 1) - 1).clamp_min(0)
        cos, sin = model.backbone.rotary_emb(x, pos)
        from transformers.models.gemma.modeling_gemma import apply_rotary_pos_emb

        k = lb.self_attn.k_proj(x).view(b, lp, -1, hd).transpose(1, 2)
        v = lb.self_attn.v_proj(x).view(b, lp, -1, hd).transpose(1, 2)
        k, _ = apply_rotary_pos_emb(k, k, cos, sin)
        kp = le.self_attn.k_proj(k.transpose(1, 2).reshape(b, lp, -1)).view(b, lp, -1, hd).transpose(1, 2)
        vp = le.self_attn.v_proj(v.transpose(1, 2).reshape(b, lp, -1)).view(b, lp, -1, hd).transpose(1, 2)
        assert torch.allclose(cache.keys[0], kp, atol=1e-5) and torch.allclose(cache.values[0], vp, atol=1e-5)
        # stored contiguous: every Euler step reads them (a strided view made the traced step ~2x slower)
        assert cache.keys[0].is_contiguous() and cache.values[0].is_contiguous()
        # the expert's queries at positions from 0, attention over the valid prefix only
        hs = model.heads.embed(None, noise, torch.full((b,), 0.7))
        ls = hs.shape[1]
        y = le.input_layernorm(hs)
        q = le.self_attn.q_proj(y).view(b, ls, -1, hd).transpose(1, 2)
        qcos, qsin = model.backbone.rotary_emb(y, torch.arange(ls)[None].expand(b, ls))
        q, _ = apply_rotary_pos_emb(q, q, qcos, qsin)
        rep = q.shape[1] // kp.shape[1]
        scores = q @ kp.repeat_interleave(rep, 1).transpose(-1, -2) / math.sqrt(hd)
        scores = scores.masked_fill(~pad[:, None, None, :], float("-inf"))
        att = (scores.softmax(-1) @ vp.repeat_interleave(rep, 1)).transpose(1, 2).reshape(b, ls, -1)
        expected = hs + le.self_attn.o_proj(att)
        expected = expected + le.mlp(le.post_attention_layernorm(expected))
        got = cross_layer_forward(le, hs, cache.keys[0], cache.values[0], layout.cross_rotary, layout.cross_bias)
    assert (got - expected).abs().max().item() < 1e-5
    assert tuple(le.self_attn.k_proj.weight.shape) == (kp.shape[1] * hd,) * 2  # kv_heads * head_dim square


def test_state_in_the_prefix_is_its_own_block_and_causal_actions_see_only_the_past(policy_factory):
    policy = _policy(policy_factory, "interleaved", True)
    cfg, model = policy.config, policy.model
    assert cfg.state_in_prefix and cfg.suffix_length == cfg.io.horizon  # auto: cross layers -> prefix state
    obs, _ = _obs(policy)
    embs, pad = model.embed_prefix(obs)
    assert embs.shape[1] == cfg.prefix_length and bool(pad[:, -1].all())
    blocks = model._prefix_blocks(pad)
    assert blocks[:, -1].eq(1).all() and blocks[:, :-1].eq(0).all()
    _, suffix_blocks = model._suffix_layout_ids(2, pad.device)
    assert suffix_blocks[0].tolist() == list(range(2, 2 + cfg.io.horizon))
    # changing a later action token leaves the earlier tokens' outputs alone (joint layers are causal,
    # cross layers see only the prefix), and moves the later ones
    x = torch.randn(2, cfg.io.horizon, cfg.io.max_action_dim)
    x2 = x.clone()
    x2[:, 5] += 1.0
    with torch.no_grad():
        cache = model.prefix_cache(obs)
        t = torch.full((2,), 0.5)
        a, b = (model.velocity_cached(cache, obs.state, xx, t) for xx in (x, x2))
    assert (a[:, :5] - b[:, :5]).abs().max().item() < 1e-6
    assert (a[:, 5:] - b[:, 5:]).abs().max().item() > 1e-4
    # and the state reaches the actions through the prefix
    with torch.no_grad():
        other = ObservationTensors(obs.images, obs.image_mask, obs.tokens, obs.token_mask, obs.state + 1.0)
        c = model.velocity_cached(model.prefix_cache(other), other.state, x, t)
    assert (a - c).abs().max().item() > 1e-4


def test_impossible_layouts_are_refused_by_name():
    base = tiny_config_dict(overrides={"expert": {"attention": "cross"}, "io": {"state_placement": "suffix"}})
    with pytest.raises(ConfigError, match=r"io\.state_placement: .*'cross' has no joint layer"):
        FlowMatchingConfig.from_dict(base)
    v1 = tiny_config_dict(overrides={"expert": {"attention": "cross"}, "format_version": 1})
    with pytest.raises(ConfigError, match=r"expert\.attention.*format_version 2"):
        FlowMatchingConfig.from_dict(v1)
    smol = tiny_config_dict(image_size=32, patch_size=8, overrides={"vision": {"kind": "smolvlm", "scale_factor": 3}})
    with pytest.raises(ConfigError, match=r"vision\.scale_factor: must divide the patches per side \(4\), got 3"):
        FlowMatchingConfig.from_dict(smol)
    with pytest.raises(ConfigError, match=r"expert\.attention"):
        FlowMatchingConfig.from_dict(tiny_config_dict(overrides={"expert": {"attention": "sideways"}}))
    for overrides, match in (({"expert": {"self_attn_every_n_layers": 3}},
                              r"expert\.self_attn_every_n_layers: only interleaved"),
                             ({"vision": {"scale_factor": 2}}, r"vision\.scale_factor: only the smolvlm vision kind"),
                             ({"io": {"state_placement": "prefix", "state_token": False}},
                              r"io\.state_placement: there is no state token")):
        with pytest.raises(ConfigError, match=match):
            FlowMatchingConfig.from_dict(tiny_config_dict(overrides=overrides))
    causal = tiny_config_dict(overrides={"expert": {"attention": "cross", "causal_actions": True}})
    with pytest.raises(ConfigError, match=r"expert\.causal_actions: .*would change nothing"):
        FlowMatchingConfig.from_dict(causal)


def test_tiny_checkpoints_with_v2_keys_are_written_as_v2(tmp_path):
    assert tiny_config_dict()["format_version"] == 1
    assert tiny_config_dict(overrides={"expert": {"attention": "cross"}})["format_version"] == 2
    assert tiny_config_dict(overrides={"expert": {"hidden_size": 48}})["format_version"] == 1
