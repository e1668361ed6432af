"""One cross-attention expert layer: the action expert reads the backbone's per-layer keys/values.

SmolVLA's second expert style (design document 004, section 7.1): instead of one joint attention
over prefix and suffix, the expert layer's queries attend to the backbone layer's keys and values
(after the backbone's RoPE) passed through the expert's OWN ``k_proj`` / ``v_proj``, which map the
backbone's ``kv_heads * head_dim`` to the expert's (``build_expert`` sizes them so). The suffix
tokens do not attend to each other in such a layer; only the queries get RoPE, at positions that
start again at 0 for the first suffix token (the keys keep the prefix positions they were rotated
with). The rest of the layer (o_proj, residual, norms, MLP, adaRMS gates) is the joint layer's.

Because the projected keys/values depend on the prefix alone, a cached sampler projects them once
per observation (`project_prefix_kv`, in the prefix pass) and every Euler step only runs
`cross_layer_forward` on them.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.llama.modeling_llama import rotate_half

from vla_ros.policy.flow_matching.adarms import apply_norm
from vla_ros.policy.flow_matching.joint_layer import grouped_attention, layer_tail


def project_prefix_kv(layer: nn.Module, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone keys/values [B, kv_heads, Lp, head_dim] (after RoPE) -> the expert layer's
    [B, kv_heads', Lp, head_dim]."""
    attn = layer.self_attn
    b, _, lp, _ = keys.shape

    def proj(x: torch.Tensor, lin: nn.Linear) -> torch.Tensor:
        flat = x.transpose(1, 2).reshape(b, lp, -1).to(lin.weight.dtype)
        # contiguous: the cached keys/values are read by every Euler step (a strided view would be
        # copied inside each attention call, and its strides would re-specialise the traced step)
        return lin(flat).view(b, lp, -1, attn.head_dim).transpose(1, 2).contiguous()

    return proj(keys, attn.k_proj), proj(values, attn.v_proj)


def rotate_queries(q: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """RoPE on the queries alone (transformers' rotate-half convention); q [B, H, L, D], cos/sin [B, L, D]."""
    cos, sin = rotary
    cos, sin = cos.unsqueeze(1).to(q.dtype), sin.unsqueeze(1).to(q.dtype)
    return q * cos + rotate_half(q) * sin


def cross_layer_forward(layer: nn.Module, h: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                        rotary: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor,
                        cond: torch.Tensor | None = None) -> torch.Tensor:
    """The suffix stream h [B, Ls, De] through one cross-attention expert layer.

    keys / values: this layer's projected prefix keys/values (`project_prefix_kv`); rotary: the
    queries' (cos, sin) for positions 0..Ls-1; bias: additive [B, 1, Ls, Lp] (padding masked out);
    cond: the adaRMS condition of a time-conditioned expert, else None."""
    attn = layer.self_attn
    x, gate = apply_norm(layer.input_layernorm, h, cond)
    b, n, _ = x.shape
    q = rotate_queries(attn.q_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2), rotary)
    out = grouped_attention(q, keys, values, bias if bias.dtype == q.dtype else bias.to(q.dtype), attn.scaling)
    return layer_tail(layer, h, out.transpose(1, 2).reshape(b, n, -1), gate, cond)
