"""The second vision backbone (design seed 003): SigLIP + DINOv2, FiLM-conditioned, aggregated, routed.

Each camera image goes through two stock transformers towers on the same pixels: SigLIP for
semantics and DINOv2 for geometry. Inside both, every block is FiLM-modulated by the mean
instruction embedding after its attention residual, before its MLP (``x * (1 + gamma) + beta``,
gamma/beta zero-initialised so an untrained FiLM is the identity). K learned aggregation tokens
are appended to the patch tokens and, after the last block, only they are kept (K tokens per
camera instead of all patches). Each tower's K tokens are projected into the language width and a
text-conditioned router (MLP on the mean instruction embedding -> softmax over the two towers)
mixes them into the camera's K prefix tokens.

We drive the towers' blocks ourselves (to insert FiLM and the aggregation tokens) but use their
transformers sub-modules and parameter names, so pretrained SigLIP / DINOv2 weights map by name.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Dinov2Config, Dinov2Model, SiglipVisionModel

from vla_ros.policy.flow_matching.config import VisionConfig, VisionTowerConfig
from vla_ros.policy.flow_matching.vision import siglip_config


def dinov2_config(tower: VisionTowerConfig, image_size: int) -> Dinov2Config:
    cfg = Dinov2Config(
        hidden_size=tower.hidden_size,
        mlp_ratio=tower.intermediate_size // tower.hidden_size,
        num_hidden_layers=tower.num_hidden_layers,
        num_attention_heads=tower.num_attention_heads,
        patch_size=tower.patch_size,
        image_size=image_size,
        layer_norm_eps=tower.layer_norm_eps,
        use_mask_token=False,
    )
    cfg._attn_implementation = "sdpa"
    return cfg


class FiLM(nn.Module):
    """x * (1 + gamma(lang)) + beta(lang), identity at initialisation."""

    def __init__(self, lang_dim: int, dim: int):
        super().__init__()
        self.gamma = nn.Linear(lang_dim, dim)
        self.beta = nn.Linear(lang_dim, dim)
        for lin in (self.gamma, self.beta):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        return x * (1.0 + self.gamma(lang)[:, None]) + self.beta(lang)[:, None]


class _AggregatingTower(nn.Module):
    """Shared logic: embeddings -> + aggregation tokens -> FiLM'd blocks -> final norm -> keep tokens."""

    def __init__(self, hidden: int, lang_dim: int, num_layers: int, num_tokens: int):
        super().__init__()
        self.aggregation_tokens = nn.Parameter(torch.randn(1, num_tokens, hidden) * 0.02)
        self.film = nn.ModuleList([FiLM(lang_dim, hidden) for _ in range(num_layers)])
        self.num_tokens = num_tokens

    def _append(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h, self.aggregation_tokens.to(h.dtype).expand(h.shape[0], -1, -1)], dim=1)


class FiLMedSiglip(_AggregatingTower):
    def __init__(self, tower: VisionTowerConfig, image_size: int, lang_dim: int, num_tokens: int):
        super().__init__(tower.hidden_size, lang_dim, tower.num_hidden_layers, num_tokens)
        self.tower = SiglipVisionModel(siglip_config(tower, image_size))

    def forward(self, pixels: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        t = self.tower
        h = self._append(t.embeddings(pixels))
        for layer, film in zip(t.encoder.layers, self.film):
            a = layer.self_attn(layer.layer_norm1(h))[0]
            h = film(h + a, lang)
            h = h + layer.mlp(layer.layer_norm2(h))
        return t.post_layernorm(h)[:, -self.num_tokens:]


class FiLMedDinov2(_AggregatingTower):
    def __init__(self, tower: VisionTowerConfig, image_size: int, lang_dim: int, num_tokens: int):
        super().__init__(tower.hidden_size, lang_dim, tower.num_hidden_layers, num_tokens)
        self.tower = Dinov2Model(dinov2_config(tower, image_size))

    def forward(self, pixels: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        t = self.tower
        h = self._append(t.embeddings(pixels.to(t.embeddings.patch_embeddings.projection.weight.dtype)))
        for layer, film in zip(t.encoder.layer, self.film):
            a = layer.attention(layer.norm1(h))[0]
            h = film(h + layer.layer_scale1(a), lang)
            h = h + layer.layer_scale2(layer.mlp(layer.norm2(h)))
        return t.layernorm(h)[:, -self.num_tokens:]


class TextRouter(nn.Module):
    """Mixing weights over the two towers from the mean instruction embedding: [N, 2], rows sum to 1."""

    def __init__(self, lang_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(lang_dim, hidden), nn.GELU(), nn.Linear(hidden, 2))

    def forward(self, lang: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(lang).float(), dim=-1).to(lang.dtype)


class DualImageEncoder(nn.Module):
    """Images [N, 3, S, S] + mean instruction embedding [N, D] -> tokens [N, K, out_dim]."""

    def __init__(self, vision: VisionConfig, image_size: int, out_dim: int):
        super().__init__()
        assert vision.dinov2 is not None
        k = vision.num_aggregation_tokens
        self.siglip = FiLMedSiglip(vision.siglip, image_size, out_dim, k)
        self.dinov2 = FiLMedDinov2(vision.dinov2, image_size, out_dim, k)
        self.siglip_projector = nn.Linear(vision.siglip.hidden_size, out_dim)
        self.dinov2_projector = nn.Linear(vision.dinov2.hidden_size, out_dim)
        self.router = TextRouter(out_dim, vision.router_hidden_size)
        self.num_tokens = k

    def forward(self, pixels: torch.Tensor, lang: torch.Tensor | None) -> torch.Tensor:
        if lang is None:
            raise ValueError("DualImageEncoder needs the mean instruction embedding")
        dt = self.siglip_projector.weight.dtype  # float32 when config precision keeps the vision path there
        pixels, lang = pixels.to(dt), lang.to(dt)
        a = self.siglip_projector(self.siglip(pixels, lang))
        b = self.dinov2_projector(self.dinov2(pixels, lang))
        w = self.router(lang)
        return w[:, 0, None, None] * a + w[:, 1, None, None] * b

    def routing_weights(self, lang: torch.Tensor) -> torch.Tensor:
        return self.router(lang)
