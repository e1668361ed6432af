"""One deep-fusion decoder layer: per-stream projections, ONE joint attention, per-stream MLPs.

The prefix (images + text, run by the language backbone's layer) and the suffix (state + noisy
actions, run by the action expert's layer) each apply their own input norm and Q/K/V projections
into the shared head space; the Q/K/V are concatenated along the sequence, RoPE is applied with
the joint positions, ONE attention runs under a block mask, and each stream takes its slice back
through its own o_proj, residual, post-attention norm and MLP. The same function covers the three
uses of the transformer:

- joint pass      streams [prefix, suffix]  (training; the naive sampler)
- prefix pass     streams [prefix, None]    (builds the KV cache once per chunk)
- cached suffix   streams [None, suffix] with the cached prefix K/V prepended (each Euler step)

Masks are boolean "may attend" tensors [B, Lq, Lk]; `attention_bias` turns them into an additive
bias with a large finite negative (not -inf), so a row with nothing to see (a padding query) stays
finite instead of turning into NaN and contaminating later layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vla_ros.policy.flow_matching.adarms import apply_norm, gated_residual


@dataclass
class PrefixCache:
    """Per-layer prefix keys/values (after RoPE, before GQA expansion) and the prefix layout."""

    keys: list[torch.Tensor]  # each [B, n_kv_heads, Lp, head_dim]
    values: list[torch.Tensor]
    pad_mask: torch.Tensor  # [B, Lp] bool, True = real token
    num_valid: torch.Tensor  # [B] long, real prefix tokens (the suffix positions start here)


def block_attention_mask(
    q_blocks: torch.Tensor, k_blocks: torch.Tensor, k_valid: torch.Tensor
) -> torch.Tensor:
    """May-attend mask [B, Lq, Lk]: a query sees valid keys whose block id is <= its own.

    Prefix tokens are block 0 (bidirectional among themselves, blind to the suffix), the state
    token block 1, the action tokens block 2 (they see everything before and each other).
    """
    return k_valid[:, None, :] & (k_blocks[:, None, :] <= q_blocks[:, :, None])


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean [B, Lq, Lk] -> additive [B, 1, Lq, Lk] in `dtype` (0 or the dtype's most negative)."""
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    bias.masked_fill_(~mask, torch.finfo(dtype).min)
    return bias[:, None]


def positions_from_mask(pad_mask: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """RoPE positions: running count of real tokens (padding repeats its neighbour's position)."""
    pos = torch.cumsum(pad_mask.long(), dim=1) - 1
    if offset is not None:
        pos = pos + offset[:, None]
    return pos.clamp_min(0)


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def _sdpa_has_gqa() -> bool:
    """torch >= 2.5 shares K/V heads inside SDPA (no per-step copy of the whole cache)."""
    try:
        q = torch.zeros(1, 2, 1, 2)
        F.scaled_dot_product_attention(q, q[:, :1], q[:, :1], enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


_SDPA_GQA = _sdpa_has_gqa()


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                      scale: float) -> torch.Tensor:
    """SDPA with fewer K/V heads than query heads (GQA/MQA); q [B, Hq, Lq, D], k/v [B, Hkv, Lk, D]."""
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1 and _SDPA_GQA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale, enable_gqa=True)
    return F.scaled_dot_product_attention(q, _repeat_kv(k, n_rep), _repeat_kv(v, n_rep), attn_mask=bias, scale=scale)


def joint_layer_forward(
    layers: Sequence[nn.Module | None],
    hiddens: Sequence[torch.Tensor | None],
    rotary: Sequence[tuple[torch.Tensor, torch.Tensor] | None],
    bias: torch.Tensor,
    apply_rotary_pos_emb: Callable,
    past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    kv_only: bool = False,
    conds: Sequence[torch.Tensor | None] | None = None,
) -> tuple[list[torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]:
    """Run one decoder layer over several streams with one attention.

    layers / hiddens / rotary: per stream (None = stream absent); a layer is a transformers
    ``GemmaDecoderLayer`` / ``LlamaDecoderLayer``. bias: [B, 1, Lq, Lk] additive, Lq = sum of
    present stream lengths, Lk = Lq + cached length. past_kv: cached keys/values prepended to this
    layer's keys/values. Returns the new hidden states per stream and this call's (keys, values)
    of the present streams (what a prefix pass caches). kv_only: stop after the keys/values (the
    last layer of a prefix pass needs nothing else); the hidden states are then returned unchanged.
    conds: per stream, the adaRMS condition of a time-conditioned stream (pi05's expert), else None;
    such a stream's residuals are gated (`adarms`).
    """
    if conds is None:
        conds = [None] * len(layers)
    qs, ks, vs, lengths, gates = [], [], [], [], []
    attn0 = None
    for layer, h, cs, c in zip(layers, hiddens, rotary, conds):
        if h is None:
            lengths.append(0)
            gates.append(None)
            continue
        attn = layer.self_attn
        if attn0 is None:
            attn0 = attn
        x, gate = apply_norm(layer.input_layernorm, h, c)
        gates.append(gate)
        b, n, _ = x.shape
        q = attn.q_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)
        cos, sin = cs
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        qs.append(q)
        ks.append(k)
        vs.append(v)
        lengths.append(n)
    if attn0 is None:
        raise ValueError("joint_layer_forward: no stream to run")
    q = torch.cat(qs, dim=2) if len(qs) > 1 else qs[0]
    k_new = torch.cat(ks, dim=2) if len(ks) > 1 else ks[0]
    v_new = torch.cat(vs, dim=2) if len(vs) > 1 else vs[0]
    if past_kv is not None:
        k = torch.cat([past_kv[0], k_new], dim=2)
        v = torch.cat([past_kv[1], v_new], dim=2)
    else:
        k, v = k_new, v_new
    if kv_only:
        return list(hiddens), (k_new, v_new)
    out = grouped_attention(q, k, v, bias if bias.dtype == q.dtype else bias.to(q.dtype), attn0.scaling)
    out = out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)

    results: list[torch.Tensor | None] = []
    start = 0
    for layer, h, n, c, gate in zip(layers, hiddens, lengths, conds, gates):
        if h is None:
            results.append(None)
            continue
        results.append(layer_tail(layer, h, out[:, start:start + n], gate, c))
        start += n
    return results, (k_new, v_new)


def layer_tail(layer: nn.Module, h: torch.Tensor, attn_out: torch.Tensor, gate: torch.Tensor | None,
               cond: torch.Tensor | None) -> torch.Tensor:
    """The rest of a decoder layer after its attention: o_proj, residual, post-attention norm, MLP, residual.

    attn_out: [B, L, heads * head_dim]; gate: the input norm's adaRMS gate (None for a plain norm)."""
    h = gated_residual(h, layer.self_attn.o_proj(attn_out), gate)
    y, gate2 = apply_norm(layer.post_attention_layernorm, h, cond)
    return gated_residual(h, layer.mlp(y), gate2)
