"""The transformers model families the deep-fusion transformer is built from.

The language backbone and the action expert are both stock transformers decoders of one family
(``GemmaModel`` / ``LlamaModel``: ``embed_tokens``, ``layers`` of ``*DecoderLayer``, ``norm``,
``rotary_emb``), so their parameter names and initialisation are the ones pretrained VLM weights
use. We never call their ``forward``; `joint_layer` drives the layers' sub-modules itself so that
prefix and suffix share ONE attention per layer. The expert has the backbone's number of layers,
heads and head dim (the joint attention needs a common head space) but its own hidden width.
A cross-attention expert layer (``expert.attention``, `cross_layer`) projects the backbone's
keys/values instead of its own stream, so its k/v projections are ``kv_heads * head_dim`` square.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn
from transformers import GemmaConfig, LlamaConfig, PretrainedConfig
from transformers.models.gemma import modeling_gemma
from transformers.models.llama import modeling_llama

from vla_ros.policy.flow_matching.config import BackboneConfig, ExpertConfig


@dataclass(frozen=True)
class Family:
    """What differs between decoder families; everything else is the same code path."""

    name: str
    config_cls: type[PretrainedConfig]
    model_cls: type[nn.Module]
    apply_rotary_pos_emb: Callable
    default_act: str


FAMILIES: dict[str, Family] = {
    "gemma": Family("gemma", GemmaConfig, modeling_gemma.GemmaModel, modeling_gemma.apply_rotary_pos_emb,
                    "gelu_pytorch_tanh"),
    "llama": Family("llama", LlamaConfig, modeling_llama.LlamaModel, modeling_llama.apply_rotary_pos_emb, "silu"),
}


def _hf_config(family: Family, cfg: BackboneConfig, hidden_size: int, intermediate_size: int, vocab_size: int,
               pad_token_id: int | None) -> PretrainedConfig:
    return family.config_cls(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.head_dim,
        rope_theta=cfg.rope_theta,
        rms_norm_eps=cfg.rms_norm_eps,
        max_position_embeddings=cfg.max_position_embeddings,
        hidden_act=cfg.hidden_act or family.default_act,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        eos_token_id=None,
        attention_bias=False,
        attention_dropout=0.0,
        tie_word_embeddings=False,
    )


def build_backbone(cfg: BackboneConfig, pad_token_id: int | None) -> nn.Module:
    """The language model (``GemmaModel`` / ``LlamaModel``) with token embeddings and final norm."""
    family = FAMILIES[cfg.family]
    return family.model_cls(_hf_config(family, cfg, cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size,
                                       pad_token_id))


def build_expert(cfg: BackboneConfig, expert: ExpertConfig) -> nn.Module:
    """The action expert: the same family and layer geometry at its own width, without embeddings."""
    family = FAMILIES[cfg.family]
    model = family.model_cls(_hf_config(family, cfg, expert.hidden_size, expert.intermediate_size, 1, None))
    model.embed_tokens = None  # the suffix is embedded by the expert heads, not by tokens
    kv_width = cfg.num_key_value_heads * cfg.head_dim
    for layer, kind in zip(model.layers, expert.layer_kinds(cfg.num_hidden_layers)):
        if kind == "cross":  # reads the backbone's keys/values (kv_heads * head_dim wide), not its own stream
            layer.self_attn.k_proj = nn.Linear(kv_width, kv_width, bias=False)
            layer.self_attn.v_proj = nn.Linear(kv_width, kv_width, bias=False)
    if expert.time_conditioning == "adarms":
        from vla_ros.policy.flow_matching.adarms import make_adaptive

        make_adaptive(model, expert.hidden_size, cfg.rms_norm_eps)
    return model
