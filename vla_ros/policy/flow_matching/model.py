"""`FlowMatchingVLA`: the pi0-style deep-fusion flow-matching network (torch only, no I/O).

Sequence = prefix ``[camera_1 tokens, ..., camera_C tokens, instruction tokens]`` (language
backbone, bidirectional, padding and missing cameras masked out) followed by the suffix
``[state token?, H action tokens]`` (action expert). Every layer runs ONE attention over both
streams (`joint_layer`); the prefix never sees the suffix, so its keys/values can be computed once
per observation and cached while the Euler steps run the suffix alone (`build_prefix_cache`,
`forward_suffix_cached`). Time convention: t = 1 is pure noise, t = 0 is data;
x_t = t * noise + (1 - t) * actions and the network predicts the velocity u = noise - actions.

Expert styles (config ``expert.attention``): ``joint`` runs every layer as above; a ``cross``
layer (`cross_layer`) runs the prefix through the backbone layer alone and lets the suffix
attend to that layer's prefix keys/values through the expert's own k/v projections (SmolVLA);
``interleaved`` alternates. The prefix cache holds, for a cross layer, the keys/values already
projected, so the Euler steps of every style run the suffix alone. SmolVLA's layout is also
here: the state as the last prefix token in its own block (``io.state_placement``), each action
token its own causal block (``expert.causal_actions``), sqrt(width)-scaled image and text
embeddings (``backbone.scale_embeddings``), SmolVLM's vision encoder (``vision.kind: smolvlm``).

Everything here works in the model's normalised, padded action/state space; `policy` converts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vla_ros.policy.flow_matching.adarms import apply_norm
from vla_ros.policy.flow_matching.backbone import FAMILIES, build_backbone, build_expert
from vla_ros.policy.flow_matching.config import FlowMatchingConfig
from vla_ros.policy.flow_matching.cross_layer import cross_layer_forward, project_prefix_kv
from vla_ros.policy.flow_matching.dual_vision import DualImageEncoder
from vla_ros.policy.flow_matching.expert import SuffixHeads
from vla_ros.policy.flow_matching.joint_layer import (
    PrefixCache,
    attention_bias,
    block_attention_mask,
    joint_layer_forward,
    positions_from_mask,
)
from vla_ros.policy.flow_matching.vision import SiglipImageEncoder

PREFIX_BLOCK, STATE_BLOCK, ACTION_BLOCK = 0, 1, 2


@dataclass
class SuffixLayout:
    """What a suffix-only pass needs besides the embeddings: additive masks and RoPE (cos, sin).

    bias / rotary serve the joint layers (prefix + suffix keys, positions after the prefix);
    cross_bias / cross_rotary the cross layers (prefix keys only, positions from 0)."""

    bias: torch.Tensor  # [B, 1, Ls, Lp + Ls]
    rotary: tuple[torch.Tensor, torch.Tensor]
    cross_bias: torch.Tensor  # [B, 1, Ls, Lp]
    cross_rotary: tuple[torch.Tensor, torch.Tensor]


@dataclass
class ObservationTensors:
    """One batch of model inputs, already on the model's device.

    images: uint8 [B, C, 3, S, S] (resized + padded, not normalised), or float32 in [0, 1] (the
    'bilinear' resize of pretrained checkpoints); image_mask: bool [B, C]
    (False = camera missing); tokens / token_mask: [B, L] long / bool; state: float32
    [B, max_state_dim] normalised and zero-padded, or None for a model without a state token.
    """

    images: torch.Tensor
    image_mask: torch.Tensor
    tokens: torch.Tensor
    token_mask: torch.Tensor
    state: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])


class FlowMatchingVLA(nn.Module):
    def __init__(self, config: FlowMatchingConfig, pad_token_id: int | None = None):
        super().__init__()
        self.config = config
        io = config.io
        self.family = FAMILIES[config.backbone.family]
        self.backbone = build_backbone(config.backbone, pad_token_id)
        self.expert = build_expert(config.backbone, config.expert)
        self.layer_kinds = config.layer_kinds
        width = config.backbone.hidden_size
        if config.vision.kind == "siglip":
            self.vision = SiglipImageEncoder(config.vision.siglip, io.image_size, width)
        elif config.vision.kind == "smolvlm":
            from vla_ros.policy.flow_matching.smolvlm_vision import SmolVLMImageEncoder

            self.vision = SmolVLMImageEncoder(config.vision.siglip, io.image_size, config.vision.scale_factor, width)
        else:
            self.vision = DualImageEncoder(config.vision, io.image_size, width)
        self.state_in_prefix = config.state_in_prefix
        self.heads = SuffixHeads(
            config.expert.hidden_size, io.max_action_dim, io.max_state_dim, io.uses_state_token,
            config.sampling.min_period, config.sampling.max_period,
            config.expert.time_conditioning, config.sampling.time_dtype,
            state_width=width if self.state_in_prefix else None,
        )
        self.embedding_scale = float(width) ** 0.5 if config.backbone.scale_embeddings else None
        self.register_buffer("image_mean", torch.tensor(io.image_mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("image_std", torch.tensor(io.image_std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        valid = torch.zeros(io.max_action_dim, dtype=torch.bool)
        valid[: io.action_dim] = True
        self.register_buffer("action_dim_mask", valid, persistent=False)

    # -- properties ------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the transformer streams (norms and vision may stay float32: config precision)."""
        return self.backbone.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.backbone.norm.weight.device

    @property
    def horizon(self) -> int:
        return self.config.io.horizon

    # -- embeddings ------------------------------------------------------------------------------

    def normalize_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float [0, 1]) [N, 3, S, S] -> normalised float in the model dtype (math in float32).

        With the default mean = std = 0.5 this is bitwise x * 2 - 1 (SigLIP's [-1, 1] input)."""
        x = images.to(torch.float32) / 255.0 if images.dtype == torch.uint8 else images.to(torch.float32)
        return ((x - self.image_mean) / self.image_std).to(self.dtype)

    def embed_prefix(self, obs: ObservationTensors) -> tuple[torch.Tensor, torch.Tensor]:
        """-> prefix embeddings [B, Lp, D] and its pad mask [B, Lp] (True = real token).

        Only the present cameras go through the vision tower; a missing camera's token slots are
        zeros with pad mask False, so nothing attends to them. A state_in_prefix model appends the
        state token (its block id comes from `_prefix_blocks`).
        """
        text = self.backbone.embed_tokens(obs.tokens)  # Gemma scales by sqrt(D) inside
        b, c = obs.image_mask.shape
        lang = None
        if isinstance(self.vision, DualImageEncoder):
            m = obs.token_mask.to(text.dtype)[..., None]
            lang = (text * m).sum(1) / m.sum(1).clamp_min(1.0)  # mean instruction embedding [B, D]
        n_tok = self.config.tokens_per_camera
        img = text.new_zeros(b, c, n_tok, text.shape[-1])
        present = obs.image_mask
        if bool(present.any()):
            pixels = self.normalize_images(obs.images[present])
            img_lang = None if lang is None else lang[:, None].expand(b, c, -1)[present]
            img[present] = self.vision(pixels, img_lang).to(text.dtype)
        img_pad = present[:, :, None].expand(b, c, n_tok).reshape(b, c * n_tok)
        img = img.reshape(b, c * n_tok, -1)
        if self.embedding_scale is not None:  # SmolVLA: sqrt(width) on both, in the embeddings' dtype
            img = img * torch.tensor(self.embedding_scale, dtype=img.dtype, device=img.device)
            text = text * self.embedding_scale
        parts, pads = [img, text], [img_pad, obs.token_mask.bool()]
        if self.state_in_prefix:
            parts.append(self.heads.state_token(obs.state).to(text.dtype))
            pads.append(torch.ones((b, 1), dtype=torch.bool, device=text.device))
        return torch.cat(parts, dim=1), torch.cat(pads, dim=1)

    def _prefix_blocks(self, prefix_pad: torch.Tensor) -> torch.Tensor:
        """Prefix block ids [B, Lp]: 0, and STATE_BLOCK for a prefix state token (the last one)."""
        blocks = torch.full_like(prefix_pad, PREFIX_BLOCK, dtype=torch.long)
        if self.state_in_prefix:
            blocks[:, -1] = STATE_BLOCK
        return blocks

    def _suffix_layout_ids(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Suffix pad mask (all real) and block ids [B, Ls]: a suffix state token block 1, the actions
        block 2 (or 2, 3, ... with expert.causal_actions: each action its own causal block)."""
        n = self.config.suffix_length
        h = self.config.io.horizon
        if self.config.expert.causal_actions:
            actions = ACTION_BLOCK + torch.arange(h, dtype=torch.long, device=device)
        else:
            actions = torch.full((h,), ACTION_BLOCK, dtype=torch.long, device=device)
        blocks = torch.full((n,), STATE_BLOCK, dtype=torch.long, device=device)
        blocks[n - h:] = actions
        return torch.ones((batch_size, n), dtype=torch.bool, device=device), blocks[None].expand(batch_size, n)

    def embed_suffix(self, state: torch.Tensor | None, x_t: torch.Tensor, t: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> suffix embeddings [B, Ls, De], pad mask [B, Ls], block ids [B, Ls]."""
        embs = self.heads.embed(state if self.config.uses_state_token else None, x_t, t)  # a prefix state is skipped
        return (embs, *self._suffix_layout_ids(embs.shape[0], embs.device))

    # -- transformer passes ----------------------------------------------------------------------

    def _rotary(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone.rotary_emb(x, positions)

    def forward_joint(self, prefix_embs: torch.Tensor, prefix_pad: torch.Tensor, suffix_embs: torch.Tensor,
                      suffix_pad: torch.Tensor, suffix_blocks: torch.Tensor, cond: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix and suffix through all layers together (no cache) -> (prefix_out, suffix_out), final-normed.

        cond: the expert's adaRMS condition (pi05), else None."""
        lp = prefix_embs.shape[1]
        pad = torch.cat([prefix_pad, suffix_pad], dim=1)
        blocks = torch.cat([self._prefix_blocks(prefix_pad), suffix_blocks], dim=1)
        pos = positions_from_mask(pad)
        bias = attention_bias(block_attention_mask(blocks, blocks, pad), self.dtype)
        hp, hs = prefix_embs.to(self.dtype), suffix_embs.to(self.dtype)
        rot = [self._rotary(hp, pos[:, :lp]), self._rotary(hs, pos[:, lp:])]
        if "cross" in self.layer_kinds:
            prefix_bias = bias[:, :, :lp, :lp]
            cross_bias = bias[:, :, lp:, :lp]  # the suffix sees the valid prefix, not itself
            cross_rot = self._rotary(hs, positions_from_mask(suffix_pad))  # positions from 0
        for kind, lb, le in zip(self.layer_kinds, self.backbone.layers, self.expert.layers):
            if kind == "self":
                (hp, hs), _ = joint_layer_forward([lb, le], [hp, hs], rot, bias, self.family.apply_rotary_pos_emb,
                                                  conds=[None, cond])
                continue
            (hp, _), (k, v) = joint_layer_forward([lb, None], [hp, None], rot, prefix_bias,
                                                  self.family.apply_rotary_pos_emb)
            k, v = project_prefix_kv(le, k, v)
            hs = cross_layer_forward(le, hs, k, v, cross_rot, cross_bias, cond)
        return self.backbone.norm(hp), apply_norm(self.expert.norm, hs, cond)[0]

    def build_prefix_cache(self, prefix_embs: torch.Tensor, prefix_pad: torch.Tensor) -> PrefixCache:
        """Prefix alone through all layers, keeping each layer's keys/values (a cross layer's already
        projected by the expert's k/v projections: they depend on the prefix alone)."""
        pos = positions_from_mask(prefix_pad)
        blocks = self._prefix_blocks(prefix_pad)
        bias = attention_bias(block_attention_mask(blocks, blocks, prefix_pad), self.dtype)
        h = prefix_embs.to(self.dtype)
        rot = [self._rotary(h, pos), None]
        keys, values = [], []
        n = len(self.backbone.layers)
        for i, (lb, le) in enumerate(zip(self.backbone.layers, self.expert.layers)):
            (h, _), (k, v) = joint_layer_forward(
                [lb, le], [h, None], rot, bias, self.family.apply_rotary_pos_emb, kv_only=(i == n - 1)
            )
            if self.layer_kinds[i] == "cross":
                k, v = project_prefix_kv(le, k, v)
            keys.append(k)
            values.append(v)
        return PrefixCache(keys, values, prefix_pad, prefix_pad.long().sum(dim=1))

    def suffix_layout(self, cache: PrefixCache) -> SuffixLayout:
        """Mask bias and RoPE tables of a suffix-only pass; they do not change between Euler steps."""
        b = cache.pad_mask.shape[0]
        suffix_pad, suffix_blocks = self._suffix_layout_ids(b, cache.pad_mask.device)
        pos = positions_from_mask(suffix_pad, offset=cache.num_valid)
        k_blocks = torch.cat([self._prefix_blocks(cache.pad_mask), suffix_blocks], dim=1)
        k_valid = torch.cat([cache.pad_mask, suffix_pad], dim=1)
        bias = attention_bias(block_attention_mask(suffix_blocks, k_blocks, k_valid), self.dtype)
        probe = cache.keys[0].new_zeros((), dtype=self.dtype)
        lp = cache.pad_mask.shape[1]
        return SuffixLayout(bias, self._rotary(probe, pos), bias[:, :, :, :lp].contiguous(),
                            self._rotary(probe, positions_from_mask(suffix_pad)))

    def forward_suffix_cached(self, cache: PrefixCache, suffix_embs: torch.Tensor,
                              layout: SuffixLayout | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Suffix alone against the cached prefix keys/values -> suffix_out (final-normed)."""
        if layout is None:
            layout = self.suffix_layout(cache)
        h = suffix_embs.to(self.dtype)
        rot = [None, layout.rotary]
        for i, (lb, le) in enumerate(zip(self.backbone.layers, self.expert.layers)):
            if self.layer_kinds[i] == "cross":
                h = cross_layer_forward(le, h, cache.keys[i], cache.values[i], layout.cross_rotary, layout.cross_bias,
                                        cond)
                continue
            (_, h), _ = joint_layer_forward(
                [lb, le], [None, h], rot, layout.bias, self.family.apply_rotary_pos_emb,
                past_kv=(cache.keys[i], cache.values[i]), conds=[None, cond],
            )
        return apply_norm(self.expert.norm, h, cond)[0]

    # -- velocity --------------------------------------------------------------------------------

    def prefix_cache(self, obs: ObservationTensors) -> PrefixCache:
        return self.build_prefix_cache(*self.embed_prefix(obs))

    def velocity_cached(self, cache: PrefixCache, state: torch.Tensor | None, x_t: torch.Tensor,
                        t: torch.Tensor, layout: SuffixLayout | None = None) -> torch.Tensor:
        """v(x_t, t) [B, H, max_action_dim] float32, reusing the prefix cache (and the suffix layout)."""
        embs = self.heads.embed(state if self.config.uses_state_token else None, x_t, t)
        cond = self.heads.condition(t)
        return self.heads.velocity(self.forward_suffix_cached(cache, embs, layout, cond), self.horizon)

    def velocity_naive(self, obs: ObservationTensors, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v(x_t, t) recomputing everything: vision tower, text embedding, joint pass."""
        prefix_embs, prefix_pad = self.embed_prefix(obs)
        _, suffix_out = self.forward_joint(prefix_embs, prefix_pad, *self.embed_suffix(obs.state, x_t, t),
                                           self.heads.condition(t))
        return self.heads.velocity(suffix_out, self.horizon)

    # -- training --------------------------------------------------------------------------------

    def sample_time(self, batch_size: int) -> torch.Tensor:
        """t = time_min + (1 - time_min) * Beta(alpha, beta), float32 [B] (more mass near t = 1, the noisy end)."""
        tr = self.config.training
        dist = torch.distributions.Beta(torch.tensor(tr.time_beta_alpha), torch.tensor(tr.time_beta_beta))
        t = dist.sample((batch_size,))
        return (tr.time_min + (1.0 - tr.time_min) * t).to(device=self.device, dtype=torch.float32)

    def compute_loss(self, obs: ObservationTensors, actions: torch.Tensor, *, noise: torch.Tensor | None = None,
                     time: torch.Tensor | None = None, step_mask: torch.Tensor | None = None,
                     reduce: bool = True) -> torch.Tensor:
        """Flow-matching loss: MSE between predicted and target velocity over valid action dims.

        actions: [B, H, max_action_dim] normalised, zero-padded; noise: same shape (default N(0, I));
        time: [B] in (0, 1] (default the Beta schedule); step_mask: [B, H] bool (False = padded step).
        reduce=False returns the per-sample loss [B].
        """
        actions = actions.to(device=self.device, dtype=torch.float32)
        b = actions.shape[0]
        if noise is None:
            noise = torch.randn_like(actions)
        if time is None:
            time = self.sample_time(b)
        t = time.to(actions)[:, None, None]
        x_t = t * noise + (1.0 - t) * actions
        target = noise - actions
        prefix_embs, prefix_pad = self.embed_prefix(obs)
        _, suffix_out = self.forward_joint(prefix_embs, prefix_pad, *self.embed_suffix(obs.state, x_t, time),
                                           self.heads.condition(time.to(device=self.device, dtype=torch.float32)))
        v = self.heads.velocity(suffix_out, self.horizon)
        mask = self.action_dim_mask[None, None, :].expand_as(v).to(torch.float32)
        if step_mask is not None:
            mask = mask * step_mask.to(mask)[:, :, None]
        err = (v - target).pow(2) * mask
        per_sample = err.sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp_min(1.0)
        return per_sample.mean() if reduce else per_sample
