"""The default image encoder: a transformers SigLIP vision tower and a projector into the LM width.

PaliGemma-style: every patch becomes one prefix token (``(image_size / patch_size)^2`` per camera),
the tower's final LayerNorm output goes through a linear projector into the language backbone's
width. The tower is a stock ``SiglipVisionModel`` (no pooling head), so pretrained SigLIP weights
map onto ``vision.tower.*`` by name.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel

from vla_ros.policy.flow_matching.config import VisionTowerConfig


def siglip_config(tower: VisionTowerConfig, image_size: int) -> SiglipVisionConfig:
    cfg = SiglipVisionConfig(
        hidden_size=tower.hidden_size,
        intermediate_size=tower.intermediate_size,
        num_hidden_layers=tower.num_hidden_layers,
        num_attention_heads=tower.num_attention_heads,
        patch_size=tower.patch_size,
        image_size=image_size,
        layer_norm_eps=tower.layer_norm_eps,
        vision_use_head=False,
    )
    cfg._attn_implementation = "sdpa"
    return cfg


class SiglipImageEncoder(nn.Module):
    """Images [N, 3, S, S] (normalised) -> tokens [N, (S/p)^2, out_dim]."""

    def __init__(self, tower: VisionTowerConfig, image_size: int, out_dim: int):
        super().__init__()
        self.tower = SiglipVisionModel(siglip_config(tower, image_size))
        self.projector = nn.Linear(tower.hidden_size, out_dim)
        self.num_tokens = (image_size // tower.patch_size) ** 2

    def forward(self, pixels: torch.Tensor, lang: torch.Tensor | None = None) -> torch.Tensor:
        """`lang` (mean instruction embedding) is unused here; the signature matches the dual encoder."""
        feats = self.tower(pixel_values=pixels.to(self.projector.weight.dtype)).last_hidden_state
        return self.projector(feats)
