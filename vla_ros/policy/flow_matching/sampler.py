"""Euler sampling of an action chunk, with the prefix KV cache and Real-Time Chunking guidance.

Integration runs from t = 1 (noise) to t = 0 (data) in `num_steps` equal Euler steps,
``x <- x - v(x, t) / num_steps``. With ``use_cache`` (the default) the prefix (vision tower,
text, backbone layers) runs once and every step runs only the suffix against its cached
keys/values; ``use_cache=False`` is the naive reference that recomputes everything, vision tower
included, at every step (same numbers, used by tests and the benchmark).

Real-Time Chunking (Black, Galliker & Levine 2025, "Real-Time Execution of Action Chunking Flow
Policies"): the new chunk is inpainted toward the actions the executor has already committed
to. At each step, with the one-step clean estimate x0_hat = x_t - t * v(x_t) (this file's time
convention: t = 1 noise, t = 0 data), the weighted error e = W * (Y - x0_hat) is pulled back
through the velocity network with a vector-Jacobian product g = e^T d x0_hat / d x_t
(PiGDM-style guidance), and the velocity becomes v - w(t) * g, where

    w(t) = min(beta, (1 - tau) / (tau * r^2)),  r^2 = (1 - tau)^2 / (tau^2 + (1 - tau)^2),  tau = 1 - t

(tau is the paper's time, 0 = noise). The paper adds +w * g to its velocity; ours points the
other way (d x / d t with t running 1 -> 0), hence the minus sign; both move x so that x0_hat
approaches Y where W > 0. At the ends where the formula diverges the weight is clipped to beta.

On CUDA, the suffix-only step is replayed from a CUDA graph (`GraphedSuffixStep`): a tiny
per-step workload is otherwise bound by kernel-launch overhead, not by the GPU. The graph is
captured once per model and batch size against static buffers that each chunk's prefix cache is
copied into (the prefix length is fixed by the config), so replaying it gives the eager numbers.
Guided (RTC) sampling runs eagerly: it needs autograd.

Elsewhere (CPU), a small model is dominated by per-op Python overhead (a suffix step is ~100 tiny
ops through nn.Module and transformers' layer code), so the prefix pass and the cached Euler step
are traced once into TorchScript graphs (`TracedSampler`) that each chunk runs without the Python
layer code: 2-3x less time per chunk, and the graphs run without holding the GIL. A trace is
keyed by what it bakes in (shapes, which cameras are present)
and re-recorded when a parameter is replaced or updated in place (training); if tracing fails for
an input layout, sampling falls back to the eager steps (same numbers, tested).

Why TorchScript tracing although torch 2.13 marks it deprecated: measured on this workload (tiny
model, 2 CPU cores), `torch.compile` took ~30 s to compile and ran a step in ~1.0 ms against
~0.6 ms traced (its guards and Python wrapper dominate at this size), and `torch.export` +
AOTInductor needs a C++ toolchain at run time. Should a future torch drop tracing, the except
clause below turns that into the eager path with one warning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from vla_ros.policy.flow_matching.joint_layer import PrefixCache
from vla_ros.policy.flow_matching.model import FlowMatchingVLA, ObservationTensors, SuffixLayout


@dataclass
class GuidanceTensors:
    """RTC guidance in the model's space: target Y and soft mask W (both [B, H, max_action_dim])."""

    target: torch.Tensor
    weights: torch.Tensor  # step weight in [0, 1] times the valid-dimension mask
    max_weight: float


def guidance_weight(t: float, max_weight: float) -> float:
    """min(beta, (1 - tau) / (tau * r_tau^2)) with tau = 1 - t; beta at the singular ends."""
    tau = 1.0 - t
    if tau <= 0.0 or tau >= 1.0:
        return float(max_weight)
    r2 = (1.0 - tau) ** 2 / (tau**2 + (1.0 - tau) ** 2)
    w = (1.0 - tau) / (tau * r2)
    return float(min(max_weight, w)) if math.isfinite(w) else float(max_weight)


def guided_velocity(velocity_fn: Callable[[torch.Tensor], torch.Tensor], x_t: torch.Tensor, t: float,
                    guidance: GuidanceTensors) -> torch.Tensor:
    """v(x_t) corrected toward the guidance target (see the module docstring)."""
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        v = velocity_fn(x)
        x0_hat = x - t * v
        err = (guidance.target - x0_hat.detach()) * guidance.weights
        (g,) = torch.autograd.grad(x0_hat, x, grad_outputs=err)
    return (v - guidance_weight(t, guidance.max_weight) * g).detach()


class GraphedSuffixStep:
    """One cached Euler-step velocity v(x, t) as a CUDA graph, for a fixed batch size.

    `load` copies a chunk's prefix cache, suffix layout and state into the graph's static input
    buffers; calling the object copies (x, t) in, replays the graph and returns the static output
    (overwritten by the next call: use it before calling again).
    """

    def __init__(self, model: FlowMatchingVLA, cache: PrefixCache, layout: SuffixLayout, state: torch.Tensor | None,
                 x: torch.Tensor):
        self.params = list(model.parameters())
        self.param_ptrs = _param_ptrs(self.params)
        self.cache = PrefixCache([k.clone() for k in cache.keys], [v.clone() for v in cache.values],
                                 cache.pad_mask.clone(), cache.num_valid.clone())
        self.layout = SuffixLayout(layout.bias.clone(), (layout.rotary[0].clone(), layout.rotary[1].clone()),
                                   layout.cross_bias.clone(),
                                   (layout.cross_rotary[0].clone(), layout.cross_rotary[1].clone()))
        self.state = None if state is None else state.clone()
        self.x = x.clone()
        self.t = torch.ones(x.shape[0], dtype=torch.float32, device=x.device)

        def step() -> torch.Tensor:
            return model.velocity_cached(self.cache, self.state, self.x, self.t, self.layout)

        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm up kernels / allocator outside the capture
                step()
        torch.cuda.current_stream(x.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.v = step()

    def load(self, cache: PrefixCache, layout: SuffixLayout, state: torch.Tensor | None) -> None:
        for dst, src in zip(self.cache.keys + self.cache.values, cache.keys + cache.values):
            dst.copy_(src)
        self.cache.pad_mask.copy_(cache.pad_mask)
        self.cache.num_valid.copy_(cache.num_valid)
        self.layout.bias.copy_(layout.bias)
        self.layout.rotary[0].copy_(layout.rotary[0])
        self.layout.rotary[1].copy_(layout.rotary[1])
        self.layout.cross_bias.copy_(layout.cross_bias)
        self.layout.cross_rotary[0].copy_(layout.cross_rotary[0])
        self.layout.cross_rotary[1].copy_(layout.cross_rotary[1])
        if self.state is not None and state is not None:
            self.state.copy_(state)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.t.copy_(t)
        self.graph.replay()
        return self.v


def _param_ptrs(params: list[torch.Tensor]) -> tuple[int, ...]:
    """Changes when a parameter's storage moves (the graph reads parameters in place, so in-place updates are fine)."""
    return tuple(p.data_ptr() for p in params)


def _graphed_step(model: FlowMatchingVLA, cache: PrefixCache, layout: SuffixLayout, state: torch.Tensor | None,
                  x: torch.Tensor) -> GraphedSuffixStep:
    """The model's graph for this batch size, captured on first use (and again if weights moved)."""
    graphs: dict = model.__dict__.setdefault("_cuda_graph_steps", {})
    key = (x.shape[0], cache.keys[0].shape[2])
    g = graphs.get(key)
    if g is None or g.param_ptrs != _param_ptrs(g.params):
        g = graphs[key] = GraphedSuffixStep(model, cache, layout, state, x)
    g.load(cache, layout, state)
    return g


class _PrefixPass(nn.Module):
    """Observation -> prefix K/V cache and suffix layout, as flat tensors (what `TracedSampler` traces)."""

    def __init__(self, model: FlowMatchingVLA, has_state: bool):
        super().__init__()
        self.model = model
        self.has_state = has_state  # the state is a prefix token of a state_in_prefix model

    def forward(self, images: torch.Tensor, image_mask: torch.Tensor, tokens: torch.Tensor,
                token_mask: torch.Tensor, state: torch.Tensor) -> tuple:
        obs = ObservationTensors(images, image_mask, tokens, token_mask, state if self.has_state else None)
        cache = self.model.prefix_cache(obs)
        layout = self.model.suffix_layout(cache)
        return (tuple(cache.keys), tuple(cache.values), cache.pad_mask, cache.num_valid, layout.bias, *layout.rotary,
                layout.cross_bias, *layout.cross_rotary)


class _SuffixStep(nn.Module):
    """One cached velocity v(x, t) from the flat prefix tensors (what `TracedSampler` traces)."""

    def __init__(self, model: FlowMatchingVLA, has_state: bool):
        super().__init__()
        self.model = model
        self.has_state = has_state

    def forward(self, keys: tuple, values: tuple, pad_mask: torch.Tensor, num_valid: torch.Tensor,
                bias: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cross_bias: torch.Tensor,
                cross_cos: torch.Tensor, cross_sin: torch.Tensor, state: torch.Tensor, x: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        cache = PrefixCache(list(keys), list(values), pad_mask, num_valid)
        layout = SuffixLayout(bias, (cos, sin), cross_bias, (cross_cos, cross_sin))
        return self.model.velocity_cached(cache, state if self.has_state else None, x, t, layout)


class TracedSampler:
    """A chunk's cached sampling as two TorchScript graphs - the prefix pass and one Euler step -
    for one input layout (see the module doc). Two small graphs instead of one unrolled over the
    steps: recording them (and TorchScript's first optimising runs) costs a few times less, and
    one step graph serves every step count."""

    def __init__(self, model: FlowMatchingVLA, obs: ObservationTensors, x: torch.Tensor):
        self.params = list(model.parameters())
        self.param_key = param_key(self.params)
        self.has_state = obs.state is not None
        self.schedule = model.config.sampling.time_schedule
        with warnings.catch_warnings():
            # shape-derived Python values (head counts, lengths, which cameras are present) are
            # constants of these traces by design: they are part of their key
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecated properties, read by the tracer
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace itself: see the module docstring
            self.prefix = torch.jit.trace(_PrefixPass(model, self.has_state).eval(),
                                          (obs.images, obs.image_mask, obs.tokens, obs.token_mask, self._state(obs, x)),
                                          check_trace=False)
            prefix = self.prefix(obs.images, obs.image_mask, obs.tokens, obs.token_mask, self._state(obs, x))
            t = torch.ones(x.shape[0], dtype=torch.float32, device=x.device)
            self.step = torch.jit.trace(_SuffixStep(model, self.has_state).eval(),
                                        (*prefix, self._state(obs, x), x, t), check_trace=False)

    @staticmethod
    def _state(obs: ObservationTensors, x: torch.Tensor) -> torch.Tensor:
        return obs.state if obs.state is not None else x.new_zeros(())

    def __call__(self, obs: ObservationTensors, x: torch.Tensor, num_steps: int) -> torch.Tensor:
        state = self._state(obs, x)
        prefix = self.prefix(obs.images, obs.image_mask, obs.tokens, obs.token_mask, state)
        b = x.shape[0]
        for ti in euler_times(num_steps, self.schedule):
            t = torch.full((b,), ti, dtype=torch.float32, device=x.device)
            x = x - self.step(*prefix, state, x, t) / num_steps
        return x


def euler_times(num_steps: int, schedule: str = "exact") -> list[float]:
    """The time of each Euler step (config sampling.time_schedule).

    exact: t = 1 - i/N. openpi: t starts at 1 and adds dt = float32(-1/N) in float32 while
    t >= -dt/2 (openpi's sample_actions), so the 3rd of 10 steps is at 0.79999995, not 0.8; with
    time-embedding periods down to 4e-3 that difference moves the actions by ~5e-5.
    """
    if schedule == "exact":
        return [1.0 - i / num_steps for i in range(num_steps)]
    if schedule != "openpi":
        raise ValueError(f"time_schedule: expected exact or openpi, got {schedule!r}")
    dt, t, out = np.float32(-1.0 / num_steps), np.float32(1.0), []
    while t >= -dt / np.float32(2):
        out.append(float(t))
        t = np.float32(t + dt)
    return out


def param_key(params: list[torch.Tensor]) -> tuple:
    """Changes when a parameter's storage is replaced (``.to``, ``.data = ``) or updated in place
    (an optimizer step, ``load_state_dict``). Reads a list kept from trace time: walking the module
    tree on every chunk would cost about a millisecond."""
    return tuple((p.data_ptr(), p._version) for p in params)


def _trace_key(obs: ObservationTensors, x: torch.Tensor) -> tuple:
    """What a trace bakes in: shapes, which cameras are present, state or not, device."""
    return (tuple(obs.images.shape), tuple(obs.image_mask.flatten().tolist()), tuple(obs.tokens.shape),
            tuple(x.shape), obs.state is not None, x.device)


def _traced_sampler(model: FlowMatchingVLA, obs: ObservationTensors, x: torch.Tensor) -> TracedSampler | None:
    """The model's trace for this input layout, recorded on first use; None (eager) where tracing failed."""
    traces: dict = model.__dict__.setdefault("_traced_samplers", {})
    key = _trace_key(obs, x)
    if key in traces and traces[key] is None:
        return None  # failed before for this layout
    tr = traces.get(key)
    if tr is not None and tr.param_key == param_key(tr.params):
        return tr
    try:
        tr = traces[key] = TracedSampler(model, obs, x)
    except Exception as exc:  # noqa: BLE001 - any tracing problem means "run eagerly", never a failed chunk
        traces[key] = None
        warnings.warn(f"flow_matching: tracing the sampling failed ({type(exc).__name__}: {exc}); sampling eagerly",
                      RuntimeWarning, stacklevel=3)
        return None
    return tr


def sample_actions(model: FlowMatchingVLA, obs: ObservationTensors, noise: torch.Tensor, num_steps: int,
                   *, use_cache: bool = True, guidance: GuidanceTensors | None = None,
                   cuda_graph: bool | None = None, traced: bool | None = None) -> torch.Tensor:
    """Integrate from `noise` [B, H, max_action_dim] (t = 1) to actions (t = 0); returns float32.

    cuda_graph: replay the cached suffix step from a CUDA graph (default: on CUDA, cached,
    unguided sampling). traced: run the cached steps as one TorchScript graph (default: off CUDA,
    cached, unguided sampling). Runs without building an autograd graph except inside the guidance VJP.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps: expected >= 1, got {num_steps}")
    x = noise.to(device=model.device, dtype=torch.float32)
    b = x.shape[0]
    if cuda_graph is None:
        cuda_graph = model.device.type == "cuda"
    cuda_graph = cuda_graph and use_cache and guidance is None and model.device.type == "cuda"
    if traced is None:
        traced = model.device.type != "cuda"
    traced = traced and use_cache and guidance is None and not cuda_graph
    # inference_mode is cheaper per op; the guidance VJP, graph capture and tracing need ordinary tensors.
    with torch.inference_mode() if (guidance is None and not cuda_graph and not traced) else torch.no_grad():
        if traced and (obs.state is not None or not model.config.uses_state_token):  # else: eager names the problem
            tr = _traced_sampler(model, obs, x)
            if tr is not None:
                return tr(obs, x, num_steps)
        cache = model.prefix_cache(obs) if use_cache else None
        layout = model.suffix_layout(cache) if cache is not None else None
        graphed = _graphed_step(model, cache, layout, obs.state, x) if cuda_graph else None
        for t in euler_times(num_steps, model.config.sampling.time_schedule):
            tt = torch.full((b,), t, dtype=torch.float32, device=x.device)
            if graphed is not None:
                x = x - graphed(x, tt) / num_steps
                continue
            if cache is not None:
                def fn(xx: torch.Tensor, tt: torch.Tensor = tt) -> torch.Tensor:
                    return model.velocity_cached(cache, obs.state, xx, tt, layout)
            else:
                def fn(xx: torch.Tensor, tt: torch.Tensor = tt) -> torch.Tensor:
                    return model.velocity_naive(obs, xx, tt)
            v = fn(x) if guidance is None else guided_velocity(fn, x, t, guidance)
            x = x - v / num_steps
    return x.clone() if (guidance is None and not cuda_graph) else x
