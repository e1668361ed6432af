"""The action expert's input and output heads: state token, action+time tokens, velocity readout.

Suffix layout (pi0): ``[state token (optional), H action tokens]``; a SmolVLA-style model puts
the state token at the end of the prefix instead (`state_token`, projected to the backbone width). Each noisy action
(padded to ``max_action_dim``) is projected to the expert width and fused with a sinusoidal
embedding of the flow time t through a two-layer MLP (``swish(W_in [a; time]) -> W_out``), so every
action token knows the noise level. After the transformer, ``action_out_proj`` reads the velocity
off the last H suffix positions.

pi05 (``time_conditioning: adarms``) does not fuse time into the tokens: the action tokens are
just ``action_in_proj(a)``, and ``condition(t) = swish(time_mlp_out(swish(time_mlp_in(time))))``
modulates every expert norm instead (`adarms`). With ``time_dtype: float64`` the embedding's
angles and sin/cos are computed in float64, exactly as openpi / LeRobot do (at t = 1 the fastest
angle is ~1570 rad, where float32 angles are off by ~1e-4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def time_frequencies(dim: int, min_period: float, max_period: float,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Angular frequencies [dim // 2] (float32) for periods log-spaced in [min_period, max_period]."""
    if dim % 2:
        raise ValueError(f"time embedding width must be even, got {dim}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=device)
    period = min_period * (max_period / min_period) ** fraction
    return (2.0 * math.pi / period).to(torch.float32)


def time_frequencies_f64(dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """openpi's float64 factors ``1 / period * 2 * pi`` [dim // 2], in its order of operations."""
    if dim % 2:
        raise ValueError(f"time embedding width must be even, got {dim}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64)
    period = min_period * (max_period / min_period) ** fraction
    return 1.0 / period * 2 * math.pi


def sinusoidal_time_embedding(t: torch.Tensor, dim: int, min_period: float, max_period: float,
                              frequencies: torch.Tensor | None = None) -> torch.Tensor:
    """[B] times -> [B, dim] float32 [sin, cos] features with periods log-spaced in [min_period, max_period].

    A float64 `frequencies` table makes the angles and sin/cos float64 (then cast to float32)."""
    freq = frequencies if frequencies is not None else time_frequencies(dim, min_period, max_period, t.device)
    angle = t.to(torch.float32)[:, None] * freq[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).to(torch.float32)


class SuffixHeads(nn.Module):
    """Embeds the suffix and reads the velocity out of the expert's output."""

    def __init__(self, width: int, max_action_dim: int, max_state_dim: int, use_state: bool,
                 min_period: float, max_period: float, time_conditioning: str = "fused", time_dtype: str = "float32",
                 state_width: int | None = None):
        """state_width: the state token's width when it is a prefix token (the backbone's; SmolVLA),
        None when it is the first suffix token (the expert's width; pi0)."""
        super().__init__()
        self.width = width
        self.min_period = min_period
        self.max_period = max_period
        self.adarms = time_conditioning == "adarms"
        self.state_in_prefix = state_width is not None
        self.state_proj = nn.Linear(max_state_dim, state_width or width) if use_state else None
        self.action_in_proj = nn.Linear(max_action_dim, width)
        if self.adarms:
            self.time_mlp_in = nn.Linear(width, width)
            self.time_mlp_out = nn.Linear(width, width)
        else:
            self.action_time_mlp_in = nn.Linear(2 * width, width)
            self.action_time_mlp_out = nn.Linear(width, width)
        self.action_out_proj = nn.Linear(width, max_action_dim)
        freq = (time_frequencies_f64(width, min_period, max_period) if time_dtype == "float64"
                else time_frequencies(width, min_period, max_period))
        self.register_buffer("time_frequencies", freq, persistent=False)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        return sinusoidal_time_embedding(t, self.width, self.min_period, self.max_period, self.time_frequencies)

    def condition(self, t: torch.Tensor) -> torch.Tensor | None:
        """adaRMS conditioning [B, width] for flow time t [B] (None unless time_conditioning is adarms)."""
        if not self.adarms:
            return None
        dtype = self.action_in_proj.weight.dtype
        return F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(self.time_embedding(t).to(dtype)))))

    def embed(self, state: torch.Tensor | None, noisy_actions: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """state [B, max_state_dim] | None, noisy_actions [B, H, max_action_dim], t [B] -> [B, Ls, width]."""
        dtype = self.action_in_proj.weight.dtype
        a = self.action_in_proj(noisy_actions.to(dtype))
        if self.adarms:
            x = a
        else:
            te = self.time_embedding(t).to(dtype)
            te = te[:, None, :].expand_as(a)
            x = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(torch.cat([a, te], dim=-1))))
        if self.state_proj is not None and not self.state_in_prefix:
            if state is None:
                raise ValueError("this model has a state token; state is required")
            x = torch.cat([self.state_proj(state.to(dtype))[:, None, :], x], dim=1)
        return x

    def state_token(self, state: torch.Tensor | None) -> torch.Tensor:
        """The prefix state token [B, 1, state_width] (state_in_prefix models)."""
        if state is None:
            raise ValueError("this model has a state token; state is required")
        return self.state_proj(state.to(self.state_proj.weight.dtype))[:, None, :]

    def velocity(self, suffix_out: torch.Tensor, horizon: int) -> torch.Tensor:
        """Expert output [B, Ls, width] -> velocity [B, H, max_action_dim] in float32."""
        return self.action_out_proj(suffix_out[:, -horizon:]).float()
