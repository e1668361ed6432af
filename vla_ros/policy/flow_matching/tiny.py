"""Tiny flow-matching checkpoints with random weights, for tests, demos and benchmarks.

`make_tiny_checkpoint` writes a complete checkpoint directory (config.json, model.safetensors,
tokenizer.json trained locally with `tokenizers`, plausible norm_stats.json) in well under a
second of compute, with the same code path as a real one: it is read back by
`FlowMatchingPolicy.load`. The architecture is a scaled-down pi0 (both decoder families, both
vision backbones); `overrides` deep-merges into the config dict to change any number.
"""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vla_ros.policy.flow_matching.config import FlowMatchingConfig
from vla_ros.policy.normalization import NormStats, Stats
from vla_ros.policy.tokenizer import TextTokenizer, train_tokenizer

_VERBS = ("pick up", "put", "push", "move", "open", "close", "stack", "place", "grab", "slide")
_COLORS = ("red", "green", "blue", "yellow", "black", "white", "orange")
_OBJECTS = ("cube", "block", "cup", "bowl", "drawer", "bottle", "sponge", "lid", "box", "marker")
_PLACES = ("on the table", "in the bin", "to the left", "to the right", "into the drawer", "on the plate")


def instruction_corpus() -> list[str]:
    """Deterministic robot instructions the tiny tokenizer is trained on."""
    return [f"{v} the {c} {o} {p}" for v, c, o, p in itertools.product(_VERBS, _COLORS, _OBJECTS, _PLACES)]


def _plausible_stats(mean: Sequence[float], std: Sequence[float]) -> Stats:
    m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return Stats(m, s, m - 2.33 * s, m + 2.33 * s)


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_config_dict(*, family: str = "gemma", vision: str = "siglip", cameras: Sequence[str] = ("primary",),
                     horizon: int = 10, action_mode: str = "absolute", state_source: str = "ee_pose",
                     joint_names: Sequence[str] | None = None, dt: float = 0.1, image_size: int = 224,
                     patch_size: int = 16,
                     normalization: str = "mean_std", max_text_tokens: int = 16, vocab_size: int = 512,
                     overrides: dict | None = None) -> dict:
    """The config.json dict of a tiny checkpoint (validated when written)."""
    joints: tuple[str, ...] = ()
    if state_source == "joints":
        joints = tuple(joint_names) if joint_names else tuple(f"joint_{i + 1}" for i in range(6))
    state_dim = {"ee_pose": 7, "joints": len(joints) + 1, "none": 0}.get(state_source, 7)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "patch_size": patch_size}
    cfg: dict[str, Any] = {
        "format": "vla_ros.flow_matching",
        "format_version": 1,
        "policy_type": "flow_matching",
        "io": {
            "cameras": list(cameras),
            "image_size": image_size,
            "state_source": state_source,
            "state_dim": state_dim,
            "joint_names": list(joints),
            "state_includes_gripper": state_source == "joints",
            "horizon": horizon,
            "dt": dt,
            "action_mode": action_mode,
            "normalization": normalization,
            "max_text_tokens": max_text_tokens,
            "action_dim": 7,
            "max_action_dim": 8,
            "max_state_dim": max(8, state_dim),
        },
        "backbone": {
            "family": family, "vocab_size": vocab_size, "hidden_size": 128, "intermediate_size": 256,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
            "max_position_embeddings": 2048,
        },
        "expert": {"hidden_size": 64, "intermediate_size": 128},
        "vision": {
            "kind": vision,
            "siglip": dict(tower),
            "dinov2": dict(tower) if vision == "siglip_dinov2" else None,
            "num_aggregation_tokens": 8,
            "router_hidden_size": 32,
        },
        "sampling": {"num_steps": 10, "min_period": 4e-3, "max_period": 4.0},
    }
    if overrides:
        cfg = _deep_merge(cfg, overrides)
        if "format_version" not in overrides:  # v2 keys (e.g. expert.attention) make it a v2 config
            cfg["format_version"] = 2 if _uses_v2_keys(cfg) else 1
    return cfg


def _uses_v2_keys(cfg: dict) -> bool:
    """Whether a config dict sets a format-version-2 key to other than its v1 behaviour (read by key path,
    so an invalid value still counts: validation then names it)."""
    from vla_ros.policy.flow_matching.config import _V2_DEFAULTS

    for key, default in _V2_DEFAULTS.items():
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part, default) if isinstance(node, dict) else default
        if node != default and not (isinstance(default, tuple) and list(default) == node):
            return True
    return (cfg.get("vision") or {}).get("kind") == "smolvlm"


def tiny_norm_stats(config: FlowMatchingConfig) -> NormStats:
    """Plausible statistics for a table-top arm (metres, radians, gripper in [0, 1])."""
    io = config.io
    if io.action_mode == "delta":
        actions = _plausible_stats([0, 0, 0, 0, 0, 0, 0.5], [0.02, 0.02, 0.02, 0.05, 0.05, 0.05, 0.4])
    else:
        actions = _plausible_stats([0.45, 0.0, 0.3, 0, 0, 0, 0.5], [0.1, 0.15, 0.1, 0.3, 0.3, 0.3, 0.4])
    state = None
    if io.state_source == "ee_pose":
        state = _plausible_stats([0.45, 0.0, 0.3, 0, 0, 0, 0.5], [0.1, 0.15, 0.1, 0.3, 0.3, 0.3, 0.4])
    elif io.state_source == "joints":
        n = io.state_dim - int(io.state_includes_gripper)
        state = _plausible_stats([0.0] * n + [0.5] * int(io.state_includes_gripper),
                                 [0.5] * n + [0.4] * int(io.state_includes_gripper))
    return NormStats(actions=actions, state=state)


def make_tiny_checkpoint(out_dir: str | os.PathLike, *, seed: int = 0, **options: Any) -> Path:
    """Write a tiny random checkpoint to `out_dir` and return its path.

    Options (all keyword): family ('gemma' | 'llama'), vision ('siglip' | 'siglip_dinov2'),
    cameras (names, primary first), horizon, action_mode ('absolute' | 'delta'), state_source
    ('ee_pose' | 'joints' | 'none'), joint_names, dt, image_size (224), patch_size (16; 196 tokens
    per camera at 224 px, SigLIP-B/16's layout), normalization, max_text_tokens,
    overrides (dict deep-merged into config.json). `seed` fixes the weights.
    """
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy, build_model  # torch-heavy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(instruction_corpus(), vocab_size=400)
    options.setdefault("vocab_size", int(-(-tok.get_vocab_size() // 64) * 64))
    config = FlowMatchingConfig.from_dict(tiny_config_dict(**options))
    tokenizer = TextTokenizer(tok, config.io.max_text_tokens, config.tokenizer.pad_token, config.tokenizer.bos_token)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config, tokenizer.pad_id, "cpu", torch.float32)
        # Random (not identity) FiLM so the instruction visibly conditions the dual vision tower.
        for name, p in model.named_parameters():
            if ".film." in name:
                p.data.normal_(0.0, 0.02)
    policy = FlowMatchingPolicy(model, config, tokenizer, tiny_norm_stats(config))
    return policy.save(out)
