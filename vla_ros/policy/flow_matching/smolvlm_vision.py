"""SmolVLM's image encoder: transformers' SmolVLM vision transformer and its pixel-shuffle connector.

SmolVLA (and SmolVLM2) encode each camera with ``SmolVLMVisionTransformer`` (a SigLIP-style ViT,
512 px and patch 16 for SmolVLM2: 1024 patches) and ``SmolVLMConnector``, which folds every
``scale_factor x scale_factor`` block of patches into one token (pixel shuffle: 1024 -> 64 tokens
at factor 4) and projects it linearly (no bias) to the language width. Both are transformers' own
modules, so the reference's weights map by name onto ``vision.tower.*`` and
``vision.connector.modality_projection.proj.*``. The sqrt(width) scaling SmolVLA applies to the
image tokens is the model's (``backbone.scale_embeddings``), not the encoder's.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import SmolVLMConfig
from transformers.models.smolvlm.modeling_smolvlm import SmolVLMConnector, SmolVLMVisionTransformer

from vla_ros.policy.flow_matching.config import VisionTowerConfig


def smolvlm_config(tower: VisionTowerConfig, image_size: int, scale_factor: int, out_dim: int) -> SmolVLMConfig:
    cfg = SmolVLMConfig(
        vision_config={
            "model_type": "smolvlm_vision", "hidden_size": tower.hidden_size,
            "intermediate_size": tower.intermediate_size, "num_hidden_layers": tower.num_hidden_layers,
            "num_attention_heads": tower.num_attention_heads, "patch_size": tower.patch_size, "image_size": image_size,
            "layer_norm_eps": tower.layer_norm_eps,
        },
        text_config={"model_type": "llama", "hidden_size": out_dim, "num_hidden_layers": 1, "num_attention_heads": 1,
                     "intermediate_size": 1, "vocab_size": 1, "bos_token_id": None, "eos_token_id": None,
                     "pad_token_id": None},
        scale_factor=scale_factor,
    )
    cfg.vision_config._attn_implementation = "sdpa"
    return cfg


class SmolVLMImageEncoder(nn.Module):
    """Images [N, 3, S, S] (normalised to [-1, 1]) -> tokens [N, ((S/p)/scale_factor)^2, out_dim]."""

    def __init__(self, tower: VisionTowerConfig, image_size: int, scale_factor: int, out_dim: int):
        super().__init__()
        cfg = smolvlm_config(tower, image_size, scale_factor, out_dim)
        self.tower = SmolVLMVisionTransformer(cfg.vision_config)
        self.connector = SmolVLMConnector(cfg)
        self.num_tokens = ((image_size // tower.patch_size) // scale_factor) ** 2

    def forward(self, pixels: torch.Tensor, lang: torch.Tensor | None = None) -> torch.Tensor:
        """`lang` is unused; the signature matches the other encoders."""
        w = self.connector.modality_projection.proj.weight
        feats = self.tower(pixel_values=pixels.to(self.tower.post_layernorm.weight.dtype)).last_hidden_state
        return self.connector(feats.to(w.dtype))
