"""Read an openpi PyTorch pi0 / pi05 checkpoint directory into this package's native pieces.

openpi's ``examples/convert_jax_model_to_pytorch.py`` writes ``model.safetensors`` (its
``PI0Pytorch`` module saved with ``safetensors.torch.save_model``: bf16 by default, tied weights
deduplicated, no ``model.`` prefix), a small ``config.json`` (``action_dim``, ``action_horizon``,
``paligemma_variant``, ``action_expert_variant``, ``precision``; no pi05 flag) and the training
run's ``assets/<asset_id>/norm_stats.json`` (``{"norm_stats": {"state": {...}, "actions": {...}}}``;
an asset id may hold a slash, e.g. ``physical-intelligence/libero``). No tokenizer is stored:
openpi downloads PaliGemma's SentencePiece model at run time, so it must be given here.

The module tree is the one LeRobot ported, so the key table, the size inference, the tied
``lm_head`` rule and the named key errors are the LeRobot importer's (`lerobot`). What differs,
and is written into the v2 config: pi05 is told by its keys (``time_mlp_*``, adaRMS ``dense``
norms); openpi's normalisation (eps 1e-6 both ways; z-score for pi0, quantiles for pi05, as
openpi's data configs choose); the pi0 prompt, cleaned (strip, ``_`` -> space) before the
newline; openpi's three camera slots; openpi's Euler times, accumulated in float32 (t += dt
from 1, so the 3rd step is at 0.79999995, not 0.8: with periods down to 4e-3 that moves the
actions by ~5e-5); fp32 in bf16 for the vision tower and the norms. The weights keep their
stored dtype; the loader converts them.

Two of these need config keys this vla_ros may not have yet: the cleaned pi0 prompt
(``io.prompt: openpi_pi0``) and the accumulated times (``sampling.time_schedule: openpi``). Each
is written when the installed config knows it, and otherwise named in a note.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vla_ros.policy.checkpoint import read_state_dict, sha256_files, weight_files
from vla_ros.policy.imports import keymap
from vla_ros.policy.imports.lerobot import (
    CheckpointImportError,
    architecture_sections,
    SourceCheckpoint,
    _check_variant,
    _find_tokenizer,
    _gemma_sizes,
    _map_keys,
    _read_json,
    _shape,
    _siglip_sizes,
    _stats,
)
from vla_ros.policy.normalization import NormStats

ASSETS = "assets"
NORM_STATS = "norm_stats.json"
# openpi's model input slots (models_pytorch/preprocessing_pytorch.IMAGE_KEYS), in this order.
IMAGE_KEYS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
# Pi0Config.max_token_len when unset.
MAX_TOKEN_LEN = {"pi0": 48, "pi05": 200}
# openpi's data configs: use_quantile_norm = model_type != PI0.
NORMALIZATION = {"pi0": "mean_std", "pi05": "quantile"}
CONFIG_KEYS = ("action_dim", "action_horizon", "paligemma_variant", "action_expert_variant")
# In bf16, openpi keeps the SigLIP patch / position embeddings and the norms in fp32
# (gemma_pytorch.to_bfloat16_for_selected_params) and runs the SigLIP encoder in bf16 through its
# patched transformers. This package's vision tower runs in one dtype, so the whole of it stays fp32
# (as LeRobot keeps it): more precise than openpi's bf16, never less.
FLOAT32_MODULES = ("vision.", "input_layernorm.", "post_attention_layernorm.", "backbone.norm.", "expert.norm.")
PI0_HEADS = ("heads.state_proj.weight", "heads.action_time_mlp_in.weight")
PI05_HEADS = ("heads.time_mlp_in.weight", "heads.time_mlp_out.weight")


def looks_like_openpi(config: dict) -> bool:
    """An openpi config.json: no LeRobot ``type``, and openpi's model keys."""
    return "type" not in config and any(k in config for k in CONFIG_KEYS)


def find_norm_stats(src: Path, asset_id: str | None) -> tuple[str, Path]:
    """``assets/<asset_id>/norm_stats.json``: the one present, or the one asked for; else one sentence."""
    assets = src / ASSETS
    if not assets.is_dir():
        raise CheckpointImportError(
            f"{src}: no {ASSETS}/ directory; an openpi checkpoint keeps its normalisation statistics in "
            f"{ASSETS}/<asset_id>/{NORM_STATS} (copy the training run's assets/ next to model.safetensors)"
        )
    found = sorted(p.parent.relative_to(assets).as_posix() for p in assets.rglob(NORM_STATS) if p.is_file())
    if asset_id is not None:
        if not asset_id or Path(asset_id).is_absolute() or ".." in Path(asset_id).parts:
            raise CheckpointImportError(f"--asset-id: expected a path inside {assets}, such as "
                                        f"'physical-intelligence/libero', got {asset_id!r}")
        path = assets / asset_id / NORM_STATS
        if not path.is_file():
            have = ", ".join(found) if found else "none"
            raise CheckpointImportError(f"{path}: not found; --asset-id must be one of this checkpoint's asset ids "
                                        f"({have})")
        return asset_id, path
    if not found:
        raise CheckpointImportError(f"{assets}: no <asset_id>/{NORM_STATS}; the normalisation statistics are missing")
    if len(found) > 1:
        raise CheckpointImportError(
            f"{assets}: {len(found)} asset ids ({', '.join(found)}); choose the robot's with --asset-id"
        )
    return found[0], assets / found[0] / NORM_STATS


def read_norm_stats(path: Path, kind: str) -> tuple[NormStats, int, int]:
    """openpi's norm_stats.json -> (NormStats, state dim, action dim); ``state`` / ``actions`` naming."""
    data = _read_json(path, "openpi norm_stats.json")
    stats = data.get("norm_stats")
    if not isinstance(stats, dict):
        raise CheckpointImportError(f"{path}: expected {{\"norm_stats\": {{\"state\": ..., \"actions\": ...}}}}")
    flat: dict[str, np.ndarray] = {}
    for key in ("state", "actions"):
        entry = stats.get(key)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise CheckpointImportError(f"{path}: norm_stats.{key} must be an object with mean, std, q01, q99")
        for s in ("mean", "std", "q01", "q99"):
            v = entry.get(s)
            if v is None:
                continue
            try:
                arr = np.asarray(v, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise CheckpointImportError(f"{path}: norm_stats.{key}.{s} must be a list of numbers") from None
            if not np.all(np.isfinite(arr)):
                raise CheckpointImportError(f"{path}: norm_stats.{key}.{s} holds NaN or inf")
            flat[f"{key}.{s}"] = arr
    if not any(k.startswith("actions.") for k in flat):
        raise CheckpointImportError(f"{path}: norm_stats.actions missing; the actions cannot be un-normalised")
    kind_norm = NORMALIZATION[kind]
    actions = _stats(flat, "actions", kind_norm, path)
    state = _stats(flat, "state", kind_norm, path) if any(k.startswith("state.") for k in flat) else None
    for name, st in (("actions", actions), ("state", state)):
        if st is not None and len({len(st.mean), len(st.std), len(st.q01), len(st.q99)}) != 1:
            raise CheckpointImportError(f"{path}: norm_stats.{name}: mean/std/q01/q99 lengths differ")
    return NormStats(actions=actions, state=state), (state.dim if state is not None else 0), actions.dim


def policy_kind(state: dict, where: Path) -> str:
    """pi05 has ``time_mlp_*`` and adaRMS ``dense`` expert norms; pi0 ``state_proj`` / ``action_time_mlp_*``.

    A checkpoint with signs of both is refused; one with a sign of only one kind is that kind, and
    any tensor of it that is missing is then named by the shape check."""
    pi05 = [k for k in PI05_HEADS if k in state]
    pi0 = [k for k in PI0_HEADS if k in state]
    dense = any(k.startswith("expert.") and "layernorm.dense." in k for k in state)
    if (pi05 or dense) and not pi0:
        return "pi05"
    if pi0 and not pi05 and not dense:
        return "pi0"
    raise CheckpointImportError(
        f"{where}: neither a pi0 (state_proj, action_time_mlp_*, plain expert norms) nor a pi05 (time_mlp_*, adaRMS "
        f"'dense' expert norms) checkpoint: found {', '.join(pi0 + pi05) or 'no head tensors'}"
        f"{' and dense norms' if dense else ''}"
    )


def _variant(name: object) -> str | None:
    return None if name is None else str(name).removesuffix("_lora")


def _pi0_prompt_form(notes: list[str]) -> str:
    from vla_ros.policy.flow_matching.config import PROMPT_FORMS

    if "openpi_pi0" in PROMPT_FORMS:
        return "openpi_pi0"
    notes.append("prompt: openpi cleans pi0 instructions (strip, '_' -> space); this vla_ros's 'pi0' prompt does not")
    return "pi0"


def _time_schedule(notes: list[str]) -> dict:
    from dataclasses import fields

    from vla_ros.policy.flow_matching.config import SamplingConfig

    if "time_schedule" in {f.name for f in fields(SamplingConfig)}:
        return {"time_schedule": "openpi"}
    notes.append("sampling: openpi accumulates the Euler times in float32 (t += dt); this vla_ros uses 1 - i/N, "
                 "which moves the actions by ~5e-5 (normalised)")
    return {}


def read_openpi(src: str | Path, tokenizer: str | Path | None = None, *, dt: float = 0.1, flat_siglip: bool = True,
                asset_id: str | None = None) -> SourceCheckpoint:
    """Read and check an openpi PyTorch pi0 / pi05 directory (nothing is written)."""
    src = Path(src)
    cfg_path = src / "config.json"
    cfg = _read_json(cfg_path, "openpi config.json")
    if "type" in cfg:
        raise CheckpointImportError(f"{cfg_path}: has a LeRobot 'type' ({cfg['type']!r}); import it with --format "
                                    "lerobot")
    notes: list[str] = []
    found_id, stats_path = find_norm_stats(src, asset_id)
    if tokenizer is None and not any((src / n).is_file() for n in ("tokenizer.json", "tokenizer.model")):
        raise CheckpointImportError(
            f"{src}: openpi checkpoints carry no tokenizer; pass PaliGemma's with --tokenizer PATH (the SentencePiece "
            "paligemma_tokenizer.model that openpi downloads, or a tokenizer.model / tokenizer.json)"
        )
    tok_file = _find_tokenizer(src, Path(tokenizer) if tokenizer else None)
    files = weight_files(src)  # refuses pickle-only directories without opening them
    raw, raw_origin = read_state_dict(files, "cpu")
    source_sha = sha256_files(files)
    state, origin, unknown = _map_keys(raw, raw_origin, flat_siglip, notes)
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in raw.values()})
    del raw
    where = files[0] if len(files) == 1 else src
    if unknown:
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise CheckpointImportError(
            f"{where}: unexpected tensors {', '.join(repr(k) for k in unknown[:5])}{more}; not part of an openpi pi0 / "
            "pi05 model"
        )
    kind = policy_kind(state, where)
    norm_stats, state_dim, action_dim = read_norm_stats(stats_path, kind)

    vlm = _gemma_sizes(state, "backbone.", where)
    expert = _gemma_sizes(state, "expert.", where)
    _check_variant(vlm, _variant(cfg.get("paligemma_variant")), "VLM", notes)
    _check_variant(expert, _variant(cfg.get("action_expert_variant")), "action expert", notes)
    for k in ("depth", "num_heads", "num_kv_heads", "head_dim"):
        if vlm[k] != expert[k]:
            raise CheckpointImportError(f"{where}: the expert's {k} ({expert[k]}) differs from the VLM's ({vlm[k]}); "
                                        "the joint attention needs them equal")
    vocab = _shape(state, keymap.EMBED_TOKENS, where)[0]
    siglip = _siglip_sizes(state, where, notes)
    model_action_dim = _shape(state, "heads.action_in_proj.weight", where)[1]
    stated = cfg.get("action_dim", model_action_dim)
    if stated != model_action_dim:
        raise CheckpointImportError(f"{cfg_path}: action_dim {stated!r} but action_in_proj takes {model_action_dim}")
    horizon = cfg.get("action_horizon", 50)
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise CheckpointImportError(f"{cfg_path}: action_horizon must be a positive integer, got {horizon!r}")
    if kind == "pi0":
        max_state_dim = _shape(state, "heads.state_proj.weight", where)[1]
    else:
        max_state_dim = model_action_dim  # openpi pads the state to action_dim
    if state_dim > max_state_dim:
        raise CheckpointImportError(f"{stats_path}: the state has {state_dim} dims, more than the model's "
                                    f"{max_state_dim}")
    if action_dim > model_action_dim:
        raise CheckpointImportError(f"{stats_path}: the actions have {action_dim} dims, more than the model's "
                                    f"{model_action_dim}")
    if action_dim != 7:  # e.g. openpi's DROID (8: joint velocities + gripper) or ALOHA (14)
        from vla_ros.policy.adapters import joint_space_message

        raise CheckpointImportError(joint_space_message(action_dim, f"{stats_path} (norm_stats.actions)",
                                                        importing=True))
    if "precision" in cfg and cfg["precision"] not in ("bfloat16", "float32", "float16"):
        raise CheckpointImportError(f"{cfg_path}: precision must be bfloat16, float32 or float16, got "
                                    f"{cfg['precision']!r}")
    if dtypes != ["float32"]:
        notes.append(f"weights stored as {', '.join(dtypes)}; kept as stored, loaded in the dtype asked for")
    notes.append(f"norm stats from {ASSETS}/{found_id}/{NORM_STATS} ({NORMALIZATION[kind]}, openpi eps 1e-6)")
    notes.append(f"cameras: openpi's slots {', '.join(IMAGE_KEYS)}; text length {MAX_TOKEN_LEN[kind]} (openpi's "
                 "default)")

    config = {
        "format": "vla_ros.flow_matching",
        "format_version": 2,
        "policy_type": "flow_matching",
        "io": {
            "cameras": list(IMAGE_KEYS),
            "image_size": siglip["image_size"],
            # the state's meaning (joints, end-effector, gripper) is the robot's; adapters are future work
            "state_source": "joints" if state_dim else "none",
            "state_dim": state_dim,
            "horizon": horizon,
            "dt": float(dt),
            "action_mode": "absolute",
            "normalization": NORMALIZATION[kind],
            "max_text_tokens": MAX_TOKEN_LEN[kind],
            "action_dim": action_dim,
            "max_action_dim": model_action_dim,
            "max_state_dim": max_state_dim,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "prompt": "pi05" if kind == "pi05" else _pi0_prompt_form(notes),
            "state_token": kind == "pi0",
            "state_bins": 256,
            # openpi resizes uint8 images with PIL (bilinear, antialiased when shrinking) and pads with black
            "image_resize": "antialias",
            "norm_convention": "openpi",
        },
        **architecture_sections(kind, vocab, vlm, expert, siglip),
        # openpi: sample_actions(num_steps=10), periods 4e-3 .. 4.0, angles in float64 on the CPU
        "sampling": {"num_steps": 10, "min_period": 4e-3, "max_period": 4.0, "time_dtype": "float64",
                     **_time_schedule(notes)},
        # openpi: time = Beta(1.5, 1.0) * 0.999 + 0.001
        "training": {"time_beta_alpha": 1.5, "time_beta_beta": 1.0, "time_min": 0.001},
        "tokenizer": {"file": "tokenizer.json", "pad_token": "<pad>", "bos_token": "<bos>"},
        "precision": {"float32_modules": list(FLOAT32_MODULES)},
        "source": {"format": "openpi", "policy_type": kind, "path": str(src.resolve()), "weights_sha256": source_sha},
    }
    return SourceCheckpoint(config, state, origin, norm_stats, tok_file, source_sha, notes)


def read_openpi_config(src: Path) -> dict | None:
    """config.json as a dict when it parses, else None (format detection only)."""
    try:
        data = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
