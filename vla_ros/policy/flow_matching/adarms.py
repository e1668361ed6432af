"""pi05's adaptive RMSNorm: the action expert's norms conditioned on the flow time.

Each norm of the expert (both per-layer norms and the final one) holds a ``dense`` Linear from the
conditioning vector to 3 x width outputs: scale, shift and gate. It computes
``rms(x) * (1 + scale) + shift`` (in float32, cast back to x's dtype), and the residual that
follows it adds ``y * gate`` instead of ``y`` (`gated_residual`); the final norm ignores its gate.
This is openpi's / LeRobot's ``PiGemmaRMSNorm``, with the same parameter name (``dense``), so
their weights map by name. Without a condition it is an ordinary Gemma RMSNorm, ``apply_norm``
lets the joint layer call either kind the same way.
"""

from __future__ import annotations

import torch
from torch import nn


class AdaRMSNorm(nn.Module):
    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.dense = nn.Linear(cond_dim, 3 * dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, L, D], cond [B, cond_dim] -> (normed x [B, L, D], gate [B, 1, D])."""
        var = torch.mean(torch.square(x.float()), dim=-1, keepdim=True)
        normed = x * torch.rsqrt(var + self.eps)
        w = self.dense.weight
        scale, shift, gate = self.dense(cond.to(w.dtype)).unsqueeze(1).chunk(3, dim=-1)
        normed = normed * (1 + scale.float()) + shift.float()
        return normed.to(x.dtype), gate.to(x.dtype)


def apply_norm(norm: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(normed, gate): an AdaRMSNorm with its condition, or a plain norm with gate None."""
    if isinstance(norm, AdaRMSNorm):
        if cond is None:
            raise ValueError("this expert's norms are time-conditioned (adaRMS); a condition is required")
        return norm(x, cond)
    return norm(x), None


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    return x + y if gate is None else x + y * gate


def make_adaptive(model: nn.Module, width: int, eps: float) -> nn.Module:
    """Replace every RMSNorm of a GemmaModel/LlamaModel expert (layers + final) by an AdaRMSNorm."""
    for layer in model.layers:
        layer.input_layernorm = AdaRMSNorm(width, width, eps)
        layer.post_attention_layernorm = AdaRMSNorm(width, width, eps)
    model.norm = AdaRMSNorm(width, width, eps)
    return model
