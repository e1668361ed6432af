"""Read a LeRobot pi0 / pi05 checkpoint directory into this package's native pieces.

A LeRobot directory holds ``config.json`` (``type: pi0 | pi05``, features, chunk size, variant
names, no layer sizes), ``model.safetensors`` (keys with or without LeRobot's ``model.`` prefix),
``policy_preprocessor.json`` / ``policy_postprocessor.json`` whose steps name their state files,
and, for recent saves, the tokenizer the preprocessor used (``tokenizer/``). Processor steps are
found by ``registry_name``, never by index (the index changed between LeRobot versions).

Everything the reference does to numbers is written into the v2 config instead of being
assumed: pi0's newline prompt or pi05's discretised-state prompt, the float bilinear resize,
LeRobot's normalisation epsilons, float64 time angles, pi05's adaRMS expert without a state token.
Sizes come from tensor shapes; the variant names only cross-check them (a mismatch is a note,
because fine-tunes and test models shrink them), except SigLIP's head count, which shapes cannot
tell: head_dim 72 (So400m's) when it divides the width, else the variant's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from vla_ros.policy.checkpoint import CheckpointError, read_state_dict, sha256_files, weight_files
from vla_ros.policy.imports import keymap
from vla_ros.policy.normalization import LEROBOT_EPS, NormStats, Stats

TYPES = ("pi0", "pi05", "smolvla")  # smolvla: `vla_ros.policy.imports.smolvla`
PREPROCESSOR = "policy_preprocessor.json"
POSTPROCESSOR = "policy_postprocessor.json"
NORMALIZER = "normalizer_processor"
UNNORMALIZER = "unnormalizer_processor"
TOKENIZER_STEP = "tokenizer_processor"
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
NORM_KINDS = {"MEAN_STD": "mean_std", "QUANTILES": "quantile", "IDENTITY": "none"}

# Real sizes of the variant names LeRobot / openpi store (the reference hard-codes them).
GEMMA_VARIANTS = {
    "gemma_2b": {"width": 2048, "depth": 18, "mlp_dim": 16384, "num_heads": 8, "num_kv_heads": 1, "head_dim": 256},
    "gemma_300m": {"width": 1024, "depth": 18, "mlp_dim": 4096, "num_heads": 8, "num_kv_heads": 1, "head_dim": 256},
}
SIGLIP_SO400M = {"hidden_size": 1152, "num_hidden_layers": 27, "intermediate_size": 4304, "num_attention_heads": 16,
                 "patch_size": 14}
SIGLIP_HEAD_DIM = 72  # So400m: 1152 / 16
REFERENCE_QUERY_HEADS = 8  # openpi / LeRobot reshape attention with 8 query heads, whatever the size


class CheckpointImportError(CheckpointError):
    """A source checkpoint that cannot be imported; the message names the file and what to do."""


@dataclass
class SourceCheckpoint:
    """What an importer read: native config dict, native tensors, stats, tokenizer file, notes."""

    config: dict
    state: dict[str, torch.Tensor]
    origin: dict[str, Path]
    norm_stats: NormStats
    tokenizer_file: Path
    source_sha256: str
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointImportError(f"{path}: {what} not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointImportError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointImportError(f"{path}: expected a JSON object")
    return data


def read_type(src: Path) -> str:
    """config.json's ``type``; an unknown one is refused by name."""
    cfg = _read_json(src / "config.json", "LeRobot config.json")
    kind = cfg.get("type")
    if kind not in TYPES:
        raise CheckpointImportError(
            f"{src / 'config.json'}: unknown policy type {kind!r}; vla-ros import reads LeRobot pi0 and pi05 "
            "checkpoints, and smolvla ones"
        )
    return kind


def find_step(src: Path, processor_file: str, registry_name: str) -> dict | None:
    """The processor step with this registry name (never by index), or None."""
    path = src / processor_file
    if not path.is_file():
        return None
    steps = _read_json(path, processor_file).get("steps")
    if not isinstance(steps, list):
        raise CheckpointImportError(f"{path}: expected a 'steps' list")
    for step in steps:
        if isinstance(step, dict) and step.get("registry_name") == registry_name:
            return step
    return None


def _read_stats_file(path: Path) -> dict[str, np.ndarray]:
    try:
        with safe_open(str(path), framework="np") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointImportError(f"{path}: not a readable safetensors file (truncated or corrupt: {exc})") from None


def _stats(flat: dict[str, np.ndarray], key: str, kind: str, where: Path) -> Stats:
    """LeRobot's flat ``<key>.{mean,std,q01,q99,...}`` -> Stats; the kind in use must be present."""
    get = {s: flat.get(f"{key}.{s}") for s in ("mean", "std", "q01", "q99")}
    need = {"mean_std": ("mean", "std"), "quantile": ("q01", "q99"), "none": ()}[kind]
    for s in need:
        if get[s] is None:
            raise CheckpointImportError(f"{where}: '{key}.{s}' missing; {kind} normalisation needs it")
    dim = next((v.shape[0] for v in get.values() if v is not None), None)
    if dim is None:
        raise CheckpointImportError(f"{where}: no statistics for '{key}'")
    vals = {s: (np.asarray(v, dtype=np.float64).reshape(-1) if v is not None else None) for s, v in get.items()}
    # unused statistics may be absent: fill them plausibly (never used by this kind)
    if vals["mean"] is None:
        vals["mean"] = (vals["q01"] + vals["q99"]) / 2 if vals["q01"] is not None else np.zeros(dim)
    if vals["std"] is None:
        vals["std"] = (vals["q99"] - vals["q01"]) / 4.66 if vals["q01"] is not None else np.ones(dim)
    if vals["q01"] is None:
        vals["q01"] = vals["mean"] - 2.33 * vals["std"]
    if vals["q99"] is None:
        vals["q99"] = vals["mean"] + 2.33 * vals["std"]
    return Stats(vals["mean"], vals["std"], vals["q01"], vals["q99"])


def _layer_count(state: dict[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"layers\.(\d+)\.")
    ids = {int(m.group(1)) for k in state for m in [pat.match(k)] if m}
    return max(ids) + 1 if ids else 0


def _shape(state: dict[str, torch.Tensor], key: str, where: Path) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointImportError(f"{where}: tensor {key!r} missing; cannot infer the architecture without it")
    return tuple(state[key].shape)


def _gemma_sizes(state: dict, prefix: str, where: Path) -> dict:
    q = _shape(state, f"{prefix}layers.0.self_attn.q_proj.weight", where)
    k = _shape(state, f"{prefix}layers.0.self_attn.k_proj.weight", where)
    mlp = _shape(state, f"{prefix}layers.0.mlp.gate_proj.weight", where)
    heads = REFERENCE_QUERY_HEADS
    if q[0] % heads:
        raise CheckpointImportError(f"{where}: {prefix}q_proj has {q[0]} rows, not a multiple of {heads} heads")
    head_dim = q[0] // heads
    if k[0] % head_dim:
        raise CheckpointImportError(f"{where}: {prefix}k_proj rows {k[0]} are not whole heads of {head_dim}")
    return {"width": q[1], "depth": _layer_count(state, prefix), "mlp_dim": mlp[0], "num_heads": heads,
            "num_kv_heads": k[0] // head_dim, "head_dim": head_dim}


def _check_variant(sizes: dict, variant: str | None, what: str, notes: list[str]) -> None:
    ref = GEMMA_VARIANTS.get(str(variant))
    if ref is None:
        notes.append(f"{what}: variant {variant!r} unknown; sizes taken from the tensor shapes")
        return
    diff = [f"{k} {sizes[k]} (variant {ref[k]})" for k in ref if sizes[k] != ref[k]]
    if diff:
        notes.append(f"{what}: sizes differ from {variant}: {', '.join(diff)}; using the tensor shapes")


def _siglip_sizes(state: dict, where: Path, notes: list[str]) -> dict:
    root = "vision.tower."
    flat = not any(k.startswith(root + "vision_model.") for k in state)
    pre = root if flat else root + "vision_model."
    patch = _shape(state, f"{pre}embeddings.patch_embedding.weight", where)
    pos = _shape(state, f"{pre}embeddings.position_embedding.weight", where)
    fc1 = _shape(state, f"{pre}encoder.layers.0.mlp.fc1.weight", where)
    hidden = patch[0]
    if hidden % SIGLIP_HEAD_DIM == 0:
        heads = hidden // SIGLIP_HEAD_DIM
    else:
        heads = SIGLIP_SO400M["num_attention_heads"]
        notes.append(f"SigLIP: width {hidden} is not a multiple of head_dim {SIGLIP_HEAD_DIM}; using So400m's {heads} "
                     "heads")
    side = int(round(pos[0] ** 0.5))
    if side * side != pos[0]:
        raise CheckpointImportError(f"{where}: SigLIP has {pos[0]} position embeddings, not a square grid")
    return {"hidden_size": hidden, "intermediate_size": fc1[0],
            "num_hidden_layers": _layer_count(state, pre + "encoder."),
            "num_attention_heads": heads, "patch_size": patch[2], "image_size": side * patch[2]}


def _map_keys(raw: dict[str, torch.Tensor], raw_origin: dict[str, Path], flat_siglip: bool,
              notes: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, Path], list[str]]:
    strip = keymap.strip_model_prefix(raw)
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, Path] = {}
    unknown: list[str] = []
    lm_head = None
    for key, tensor in raw.items():
        k = key[len("model."):] if strip else key
        if k in keymap.DROPPED:
            continue
        if k in keymap.VLM_LM_HEADS:
            lm_head = (key, tensor)
            continue
        native = keymap.lerobot_key(k, flat_siglip)
        if native is None:
            unknown.append(key)
            continue
        state[native] = tensor
        origin[native] = raw_origin[key]
    if keymap.EMBED_TOKENS not in state and lm_head is not None:
        state[keymap.EMBED_TOKENS] = lm_head[1]  # tied weights: the lm_head is the embedding table
        origin[keymap.EMBED_TOKENS] = raw_origin[lm_head[0]]
        notes.append("embed_tokens absent: using the tied lm_head as the token embeddings")
    return state, origin, unknown


def read_features(src: Path, cfg: dict) -> tuple[list[str], int, int]:
    """(camera names in config order, state dim, action dim) from ``input_features`` /
    ``output_features``; a non-7-DoF action space is refused (vla_ros publishes end-effector chunks)."""
    feats = cfg.get("input_features") or {}
    cameras = [k[len(IMAGE_PREFIX):] for k, v in feats.items()
               if k.startswith(IMAGE_PREFIX) and (v or {}).get("type") == "VISUAL"]
    if not cameras:
        raise CheckpointImportError(f"{src / 'config.json'}: input_features has no observation.images.* camera")
    state_dim = int(((feats.get(STATE_KEY) or {}).get("shape") or [0])[0])
    action_dim = int((((cfg.get("output_features") or {}).get(ACTION_KEY) or {}).get("shape") or [0])[0])
    if action_dim != 7:
        from vla_ros.policy.adapters import joint_space_message

        raise CheckpointImportError(joint_space_message(action_dim, str(src / "config.json"), importing=True))
    return cameras, state_dim, action_dim


def read_normalization(src: Path, cfg: dict, state_dim: int, action_dim: int) -> tuple[str, NormStats]:
    """The normalisation kind and statistics of a LeRobot directory: ``normalization_mapping`` from
    config.json, the stats from the ``normalizer_processor`` / ``unnormalizer_processor`` steps'
    state files (found by registry name; LeRobot's eps checked). Shared by every LeRobot policy type."""
    mapping = cfg.get("normalization_mapping") or {}
    kinds = {t: NORM_KINDS.get(str(mapping.get(t, "IDENTITY"))) for t in ("STATE", "ACTION")}
    for t, k in kinds.items():
        if k is None:
            raise CheckpointImportError(f"{src / 'config.json'}: normalization_mapping.{t} = {mapping.get(t)!r} is not "
                                        "supported (MEAN_STD, QUANTILES, IDENTITY)")
    if state_dim and kinds["STATE"] != kinds["ACTION"]:
        raise CheckpointImportError(
            f"{src / 'config.json'}: state is {mapping['STATE']} but action {mapping['ACTION']}; one kind for both is "
            "supported"
        )
    normalization = kinds["ACTION"]
    pre = find_step(src, PREPROCESSOR, NORMALIZER)
    post = find_step(src, POSTPROCESSOR, UNNORMALIZER)
    if normalization != "none":
        for step, name, proc in ((pre, NORMALIZER, PREPROCESSOR), (post, UNNORMALIZER, POSTPROCESSOR)):
            if step is None or not step.get("state_file"):
                raise CheckpointImportError(f"{src / proc}: no '{name}' step with a state_file; the normalisation "
                                            "statistics are missing")
            eps = (step.get("config") or {}).get("eps", LEROBOT_EPS)
            if eps != LEROBOT_EPS:
                raise CheckpointImportError(f"{src / proc}: '{name}' eps {eps} is not LeRobot's {LEROBOT_EPS}; not "
                                            "supported")
        pre_file, post_file = src / pre["state_file"], src / post["state_file"]
        state_stats = _stats(_read_stats_file(pre_file), STATE_KEY, normalization, pre_file) if state_dim else None
        action_stats = _stats(_read_stats_file(post_file), ACTION_KEY, normalization, post_file)
    else:
        z = np.zeros
        action_stats = Stats(z(action_dim), np.ones(action_dim), -np.ones(action_dim), np.ones(action_dim))
        state_stats = (Stats(z(state_dim), np.ones(state_dim), -np.ones(state_dim), np.ones(state_dim))
                       if state_dim else None)
    if state_stats is not None and state_stats.dim != state_dim:
        raise CheckpointImportError(f"{src / pre['state_file']}: state statistics have {state_stats.dim} dims, "
                                    f"config.json says {state_dim}")
    if action_stats.dim != action_dim:
        raise CheckpointImportError(f"{src / post['state_file']}: action statistics have {action_stats.dim} dims, "
                                    f"config.json says {action_dim}")
    return normalization, NormStats(actions=action_stats, state=state_stats)


def _find_tokenizer(src: Path, given: Path | None) -> Path:
    if given is not None:
        given = Path(given)
        candidates = [given / "tokenizer.json", given / "tokenizer.model"] if given.is_dir() else [given]
        for c in candidates:
            if c.is_file():
                return c
        raise CheckpointImportError(f"{given}: tokenizer not found; give a tokenizer.json or a SentencePiece "
                                    "tokenizer.model")
    step = find_step(src, PREPROCESSOR, TOKENIZER_STEP) or {}
    art = (step.get("artifacts") or {}).get("tokenizer_name") or (step.get("config") or {}).get("tokenizer_name")
    dirs = ([src / art] if isinstance(art, str) and (src / art).is_dir() else []) + [src / "tokenizer", src]
    for d in dirs:
        for name in ("tokenizer.json", "tokenizer.model"):
            if (d / name).is_file():
                return d / name
    raise CheckpointImportError(
        f"{src}: no tokenizer in the checkpoint; pass the PaliGemma tokenizer with --tokenizer PATH "
        "(its tokenizer.json, or the SentencePiece tokenizer.model)"
    )


def read_lerobot(src: str | Path, tokenizer: str | Path | None = None, *, dt: float = 0.1,
                 flat_siglip: bool = True, vlm: str | Path | None = None,
                 vlm_path: "list[str | Path] | None" = None) -> SourceCheckpoint:
    """Read and check a LeRobot pi0 / pi05 / smolvla directory (nothing is written).

    vlm / vlm_path: smolvla only, the VLM directory itself or the roots it is looked up under by
    the checkpoint's ``vlm_model_name`` (`smolvla.resolve_vlm_dir`)."""
    src = Path(src)
    kind = read_type(src)
    if kind == "smolvla":
        from vla_ros.policy.imports.smolvla import read_smolvla

        return read_smolvla(src, tokenizer, dt=dt, vlm=vlm, vlm_path=vlm_path)
    if vlm is not None or vlm_path:
        raise CheckpointImportError(f"--vlm / --vlm-path: only SmolVLA checkpoints name a VLM directory; {src} is "
                                    f"{kind}")
    cfg = _read_json(src / "config.json", "LeRobot config.json")
    notes: list[str] = []
    tok_file = _find_tokenizer(src, Path(tokenizer) if tokenizer else None)
    files = weight_files(src)  # refuses pickle-only directories without opening them
    raw, raw_origin = read_state_dict(files, "cpu")
    source_sha = sha256_files(files)
    state, origin, unknown = _map_keys(raw, raw_origin, flat_siglip, notes)
    del raw
    where = files[0] if len(files) == 1 else src
    if unknown:
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise CheckpointImportError(
            f"{where}: unexpected tensors {', '.join(repr(k) for k in unknown[:5])}{more}; not part of a LeRobot "
            f"{kind} model"
        )

    vlm = _gemma_sizes(state, "backbone.", where)
    expert = _gemma_sizes(state, "expert.", where)
    _check_variant(vlm, cfg.get("paligemma_variant"), "VLM", notes)
    _check_variant(expert, cfg.get("action_expert_variant"), "action expert", notes)
    for k in ("depth", "num_heads", "num_kv_heads", "head_dim"):
        if vlm[k] != expert[k]:
            raise CheckpointImportError(f"{where}: the expert's {k} ({expert[k]}) differs from the VLM's ({vlm[k]}); "
                                        "the joint attention needs them equal")
    vocab = _shape(state, keymap.EMBED_TOKENS, where)[0]
    siglip = _siglip_sizes(state, where, notes)
    max_action_dim = _shape(state, "heads.action_in_proj.weight", where)[1]
    if kind == "pi0":
        max_state_dim = _shape(state, "heads.state_proj.weight", where)[1]
    else:
        max_state_dim = int(cfg.get("max_state_dim", 32))

    # -- settings whose numbers this package does not reproduce yet: refused by name --
    for key in ("use_visual_memory", "use_proprioceptive_memory", "use_relative_actions"):
        if cfg.get(key):
            raise CheckpointImportError(f"{src / 'config.json'}: {key} = true is not supported yet")
    if int(cfg.get("n_obs_steps", 1) or 1) != 1:
        raise CheckpointImportError(f"{src / 'config.json'}: n_obs_steps = {cfg['n_obs_steps']}; only 1 is supported")
    state_step = find_step(src, PREPROCESSOR, "pi05_prepare_state_tokenizer_processor_step")
    if state_step is not None and (state_step.get("config") or {}).get("include_state_in_prompt", True) is False:
        raise CheckpointImportError(f"{src / PREPROCESSOR}: include_state_in_prompt = false is not supported yet")

    # -- features --
    cameras, state_dim, action_dim = read_features(src, cfg)
    if int(cfg.get("empty_cameras", 0) or 0):
        raise CheckpointImportError(f"{src / 'config.json'}: empty_cameras = {cfg['empty_cameras']} is not supported "
                                    "yet")
    res = cfg.get("image_resolution") or [siglip["image_size"]] * 2
    if len(res) != 2 or res[0] != res[1] or res[0] != siglip["image_size"]:
        raise CheckpointImportError(
            f"{src / 'config.json'}: image_resolution {res} does not match SigLIP's {siglip['image_size']} px square "
            "input"
        )
    normalization, norm_stats = read_normalization(src, cfg, state_dim, action_dim)

    tok_step = find_step(src, PREPROCESSOR, TOKENIZER_STEP) or {}
    max_len = int((tok_step.get("config") or {}).get("max_length") or cfg.get("tokenizer_max_length") or 48)
    offset = float(cfg.get("time_sampling_offset", 0.001))
    config = {
        "format": "vla_ros.flow_matching",
        "format_version": 2,
        "policy_type": "flow_matching",
        "io": {
            "cameras": cameras,
            "image_size": siglip["image_size"],
            # the state's meaning (joints, end-effector, gripper) is the robot's; adapters are future work
            "state_source": "joints" if state_dim else "none",
            "state_dim": state_dim,
            "horizon": int(cfg.get("chunk_size", 50)),
            "dt": float(dt),
            "action_mode": "absolute",
            "normalization": normalization,
            "max_text_tokens": max_len,
            "action_dim": action_dim,
            "max_action_dim": max_action_dim,
            "max_state_dim": max(max_state_dim, state_dim),
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "prompt": kind,
            "state_token": kind == "pi0",
            "state_bins": 256,
            "image_resize": "bilinear",
            "norm_convention": "lerobot",
        },
        **architecture_sections(kind, vocab, vlm, expert, siglip),
        "sampling": {"num_steps": int(cfg.get("num_inference_steps", 10)),
                     "min_period": float(cfg.get("min_period", 4e-3)),
                     "max_period": float(cfg.get("max_period", 4.0)), "time_dtype": "float64"},
        "training": {"time_beta_alpha": float(cfg.get("time_sampling_beta_alpha", 1.5)),
                     "time_beta_beta": float(cfg.get("time_sampling_beta_beta", 1.0)), "time_min": offset},
        "tokenizer": {"file": "tokenizer.json", "pad_token": "<pad>", "bos_token": "<bos>"},
        # LeRobot's params_to_keep_float32 (vision_tower, multi_modal_projector, the norms), in our names
        "precision": {"float32_modules": ["vision.", "input_layernorm.", "post_attention_layernorm.", "backbone.norm.",
                                          "expert.norm."]},
        "source": {"format": "lerobot", "policy_type": kind, "path": str(src.resolve()), "weights_sha256": source_sha},
    }
    if abs(float(cfg.get("time_sampling_scale", 1 - offset)) - (1 - offset)) > 1e-9:
        notes.append("time_sampling_scale != 1 - offset: training times follow vla_ros's time_min rule")
    return SourceCheckpoint(config, state, origin, norm_stats, tok_file, source_sha, notes)


def architecture_sections(kind: str, vocab: int, vlm: dict, expert: dict, siglip: dict) -> dict:
    """The backbone / expert / vision sections of a native config for a pi0-family model (LeRobot and
    openpi alike): Gemma widths from the tensor shapes, pi05's adaRMS expert, SigLIP as inferred."""
    return {
        "backbone": {
            "family": "gemma", "vocab_size": vocab, "hidden_size": vlm["width"], "intermediate_size": vlm["mlp_dim"],
            "num_hidden_layers": vlm["depth"], "num_attention_heads": vlm["num_heads"],
            "num_key_value_heads": vlm["num_kv_heads"], "head_dim": vlm["head_dim"],
            "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 8192,
        },
        "expert": {"hidden_size": expert["width"], "intermediate_size": expert["mlp_dim"],
                   "time_conditioning": "fused" if kind == "pi0" else "adarms"},
        "vision": {"kind": "siglip", "siglip": {k: v for k, v in siglip.items() if k != "image_size"}},
    }
