"""Read a LeRobot SmolVLA checkpoint directory (``type: smolvla``) into this package's native pieces.

A SmolVLA directory holds LeRobot's ``config.json`` (features, chunk size, ``vlm_model_name``,
``num_vlm_layers``, ``attention_mode``, ``self_attn_every_n_layers``, ``expert_width_multiplier``,
no layer sizes), ``model.safetensors`` (``model.vlm_with_expert.{vlm.model.*, lm_expert.*}`` and
the suffix heads), the pre/post processor files with the normaliser statistics, and usually the
tokenizer the preprocessor used (``tokenizer/``). Head counts and the vision tower's geometry are
not in the checkpoint: they are in the VLM's own ``config.json`` (SmolVLM2), which the reference
reads from the hub by ``vlm_model_name``. Here nothing comes from the hub: the VLM directory is
given (``--vlm DIR``) or found by that name under a search path (`resolve_vlm_dir`):
``--vlm-path`` roots, then ``$VLA_ROS_VLM_PATH`` (``os.pathsep``-separated), then
``~/.cache/vla_ros/vlm``; under each root ``<root>/<vlm_model_name>`` and then
``<root>/<last part of the name>``. Only its ``config.json`` (and, when the checkpoint has none,
its tokenizer) is read; its weights are not needed.

What the reference does to numbers is written into the v2 config: SmolVLM vision + pixel-shuffle
connector, sqrt(width) image and text embeddings, RoPE base 10000 for every layer (the reference
hard-codes it; the VLM config's ``rope_theta`` is not used), the state as the last prefix token,
causal action tokens, interleaved / cross expert layers, 512 px (``resize_imgs_with_padding``)
images padded on the top and left, LeRobot's normalisation, float64 time angles.
"""

from __future__ import annotations

import os
from pathlib import Path

from vla_ros.policy.checkpoint import read_state_dict, sha256_files, weight_files
from vla_ros.policy.imports.lerobot import (
    PREPROCESSOR,
    TOKENIZER_STEP,
    CheckpointImportError,
    SourceCheckpoint,
    _layer_count,
    _read_json,
    _shape,
    find_step,
    read_features,
    read_normalization,
)

VLM_PATH_ENV = "VLA_ROS_VLM_PATH"
DEFAULT_VLM_ROOT = Path("~/.cache/vla_ros/vlm")
NEW_LINE_STEP = "smolvla_new_line_processor"

# checkpoint prefix (without LeRobot's "model.") -> native prefix; first match wins.
SMOLVLA_PREFIXES: tuple[tuple[str, str], ...] = (
    ("vlm_with_expert.vlm.model.vision_model.", "vision.tower."),
    ("vlm_with_expert.vlm.vision_model.", "vision.tower."),
    ("vlm_with_expert.vlm.model.connector.", "vision.connector."),
    ("vlm_with_expert.vlm.connector.", "vision.connector."),
    ("vlm_with_expert.vlm.model.text_model.", "backbone."),
    ("vlm_with_expert.vlm.text_model.", "backbone."),
    ("vlm_with_expert.lm_expert.", "expert."),
    ("state_proj.", "heads.state_proj."),
    ("action_in_proj.", "heads.action_in_proj."),
    ("action_out_proj.", "heads.action_out_proj."),
    ("action_time_mlp_in.", "heads.action_time_mlp_in."),
    ("action_time_mlp_out.", "heads.action_time_mlp_out."),
)
# The VLM's language-model head and the expert's unused embeddings / head: never used by the policy.
SMOLVLA_DROPPED = ("vlm_with_expert.vlm.lm_head.weight", "vlm_with_expert.lm_expert.lm_head.weight",
                   "vlm_with_expert.lm_expert.embed_tokens.weight")


def smolvla_key(key: str) -> str | None:
    """A SmolVLA checkpoint key (without ``model.``) -> the native key, or None if unknown."""
    for src, dst in SMOLVLA_PREFIXES:
        if key.startswith(src):
            return dst + key[len(src):]
    return None


def vlm_search_roots(vlm_path: list[str | Path] | None = None) -> list[Path]:
    """Where a VLM directory is looked up, in order: the given roots, $VLA_ROS_VLM_PATH, ~/.cache/vla_ros/vlm."""
    roots = [Path(p) for p in (vlm_path or [])]
    roots += [Path(p) for p in os.environ.get(VLM_PATH_ENV, "").split(os.pathsep) if p]
    roots.append(DEFAULT_VLM_ROOT.expanduser())
    return roots


def resolve_vlm_dir(name: str, src: Path, vlm: str | Path | None = None,
                    vlm_path: list[str | Path] | None = None) -> Path:
    """The local directory of the checkpoint's VLM (holding its config.json); one sentence if absent."""
    if vlm is not None:
        d = Path(vlm)
        if not (d / "config.json").is_file():
            raise CheckpointImportError(f"--vlm {d}: no config.json there; give the directory of the VLM {name!r} "
                                        "(its config.json and tokenizer files)")
        return d
    roots = vlm_search_roots(vlm_path)
    tried = []
    for root in roots:
        for cand in dict.fromkeys((root / name, root / Path(name).name)):
            tried.append(str(cand))
            if (cand / "config.json").is_file():
                return cand
    raise CheckpointImportError(
        f"{src / 'config.json'}: the VLM {name!r} (vlm_model_name) was not found locally (looked in "
        f"{', '.join(tried)}); put its config.json and tokenizer files (from the hub repo {name}) in one of "
        f"those, or pass --vlm DIR / --vlm-path ROOT or set {VLM_PATH_ENV}"
    )


def _vlm_sizes(vlm_dir: Path) -> tuple[dict, dict, int]:
    """(text config, vision config, scale_factor) from a SmolVLM config.json."""
    path = vlm_dir / "config.json"
    data = _read_json(path, "VLM config.json")
    text, vision = data.get("text_config"), data.get("vision_config")
    if not isinstance(text, dict) or not isinstance(vision, dict):
        raise CheckpointImportError(f"{path}: not a SmolVLM config (expected text_config and vision_config sections)")
    for sec, keys, what in ((text, ("hidden_size", "num_hidden_layers", "num_attention_heads"), "text_config"),
                            (vision, ("hidden_size", "num_attention_heads", "patch_size", "image_size"),
                             "vision_config")):
        for k in keys:
            if not isinstance(sec.get(k), int):
                raise CheckpointImportError(f"{path}: {what}.{k} missing or not an integer")
    act = vision.get("hidden_act", "gelu_pytorch_tanh")
    if act != "gelu_pytorch_tanh":
        raise CheckpointImportError(f"{path}: vision_config.hidden_act {act!r} is not supported (gelu_pytorch_tanh)")
    return text, vision, int(data.get("scale_factor", 2))


def _find_tokenizer(src: Path, given: str | Path | None, vlm_dir: Path) -> Path:
    """--tokenizer, else the preprocessor's saved tokenizer artifact, else the VLM directory's tokenizer.json."""
    if given is not None:
        g = Path(given)
        cand = g / "tokenizer.json" if g.is_dir() else g
        if cand.is_file():
            return cand
        raise CheckpointImportError(f"--tokenizer {g}: no tokenizer.json there; give the SmolVLM tokenizer.json or its "
                                    "directory")
    step = find_step(src, PREPROCESSOR, TOKENIZER_STEP) or {}
    art = (step.get("artifacts") or {}).get("tokenizer_name")
    dirs = ([src / art] if isinstance(art, str) else []) + [src / "tokenizer", vlm_dir]
    for d in dirs:
        if (d / "tokenizer.json").is_file():
            return d / "tokenizer.json"
    raise CheckpointImportError(
        f"{src}: no tokenizer.json in the checkpoint (tokenizer/) nor in the VLM directory {vlm_dir}; "
        "put the VLM's tokenizer.json there or pass --tokenizer PATH"
    )


def tokenizer_specials(path: Path, text_config: dict) -> tuple[str, str | None]:
    """(pad token, BOS token or None) of a transformers tokenizer.json: the BOS is what its
    post-processor puts in front (the reference tokenizes with add_special_tokens); anything else
    it adds is refused. The pad token comes from tokenizer_config.json, else the VLM's pad id."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises its own exception type
        raise CheckpointImportError(f"{path}: not a valid tokenizers JSON file: {exc}") from None
    probe = "pick up the cube\n"
    with_special = tok.encode(probe, add_special_tokens=True).ids
    plain = tok.encode(probe, add_special_tokens=False).ids
    bos = None
    if with_special != plain:
        if len(with_special) == len(plain) + 1 and with_special[1:] == plain:
            bos = tok.id_to_token(with_special[0])
        else:
            raise CheckpointImportError(f"{path}: the tokenizer adds special tokens other than a leading BOS; not "
                                        "supported")
    pad = None
    cfg_file = path.parent / "tokenizer_config.json"
    if cfg_file.is_file():
        raw = _read_json(cfg_file, "tokenizer_config.json").get("pad_token")
        pad = raw.get("content") if isinstance(raw, dict) else raw
    if pad is None and isinstance(text_config.get("pad_token_id"), int):
        pad = tok.id_to_token(text_config["pad_token_id"])
    if pad is None or tok.token_to_id(pad) is None:
        raise CheckpointImportError(f"{path}: no pad token (tokenizer_config.json pad_token or the VLM's pad_token_id)")
    return pad, bos


def _refuse_unsupported(src: Path, cfg: dict) -> None:
    where = src / "config.json"
    for key in ("add_image_special_tokens", "adapt_to_pi_aloha", "use_delta_joint_actions_aloha"):
        if cfg.get(key):
            raise CheckpointImportError(f"{where}: {key} = true is not supported yet")
    if int(cfg.get("empty_cameras", 0) or 0):
        raise CheckpointImportError(f"{where}: empty_cameras = {cfg['empty_cameras']} is not supported yet")
    if int(cfg.get("n_obs_steps", 1) or 1) != 1:
        raise CheckpointImportError(f"{where}: n_obs_steps = {cfg['n_obs_steps']}; only 1 is supported")
    if cfg.get("attention_mode", "cross_attn") not in ("cross_attn", "self_attn"):
        raise CheckpointImportError(f"{where}: attention_mode {cfg.get('attention_mode')!r}; expected cross_attn or "
                                    "self_attn")


def _expert_attention(cfg: dict) -> tuple[str, int]:
    """(expert.attention, self_attn_every_n_layers) for the reference's attention_mode."""
    if "cross" not in str(cfg.get("attention_mode", "cross_attn")):
        return "joint", 2
    n = int(cfg.get("self_attn_every_n_layers", 2) or 0)
    return ("interleaved", n) if n > 0 else ("cross", 2)


def read_smolvla(src: Path, tokenizer: str | Path | None = None, *, dt: float = 0.1, vlm: str | Path | None = None,
                 vlm_path: list[str | Path] | None = None) -> SourceCheckpoint:
    """Read and check a LeRobot SmolVLA directory (nothing is written)."""
    src = Path(src)
    cfg = _read_json(src / "config.json", "LeRobot config.json")
    _refuse_unsupported(src, cfg)
    notes: list[str] = []
    name = cfg.get("vlm_model_name")
    if not isinstance(name, str) or not name:
        raise CheckpointImportError(f"{src / 'config.json'}: vlm_model_name missing; SmolVLA names its VLM there")
    vlm_dir = resolve_vlm_dir(name, src, vlm, vlm_path)
    text, vision, scale_factor = _vlm_sizes(vlm_dir)
    vlm_layers = int(text["num_hidden_layers"])
    n_layers = int(cfg.get("num_vlm_layers", -1) or -1)
    if n_layers > vlm_layers:
        raise CheckpointImportError(
            f"{src / 'config.json'}: num_vlm_layers = {n_layers} but the VLM {name!r} ({vlm_dir / 'config.json'}) has "
            f"only {vlm_layers} text layers; wrong VLM directory?"
        )
    n_layers = vlm_layers if n_layers <= 0 else n_layers
    n_expert = int(cfg.get("num_expert_layers", -1) or -1)
    if n_expert > 0 and n_expert != n_layers:
        raise CheckpointImportError(
            f"{src / 'config.json'}: num_expert_layers = {n_expert} differs from num_vlm_layers ({n_layers}); "
            "an expert with fewer layers than the VLM is not supported yet"
        )
    tok_file = _find_tokenizer(src, tokenizer, vlm_dir)
    pad_token, bos_token = tokenizer_specials(tok_file, text)

    files = weight_files(src)  # refuses pickle-only directories without opening them
    raw, raw_origin = read_state_dict(files, "cpu")
    source_sha = sha256_files(files)
    strip = all(k.startswith("model.") for k in raw) and bool(raw)
    state, origin, unknown = {}, {}, []
    for key, tensor in raw.items():
        k = key[len("model."):] if strip else key
        if k in SMOLVLA_DROPPED:
            continue
        native = smolvla_key(k)
        if native is None:
            unknown.append(key)
            continue
        state[native], origin[native] = tensor, raw_origin[key]
    del raw
    where = files[0] if len(files) == 1 else src
    if unknown:
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise CheckpointImportError(f"{where}: unexpected tensors {', '.join(repr(k) for k in unknown[:5])}{more}; "
                                    "not part of a LeRobot smolvla model")
    stored_layers = _layer_count(state, "backbone.")
    if stored_layers != n_layers:
        raise CheckpointImportError(f"{where}: {stored_layers} VLM text layers stored, but num_vlm_layers is "
                                    f"{n_layers}")

    cameras, state_dim, action_dim = read_features(src, cfg)
    if not state_dim:
        raise CheckpointImportError(f"{src / 'config.json'}: SmolVLA needs an observation.state feature (its state "
                                    "token)")
    normalization, norm_stats = read_normalization(src, cfg, state_dim, action_dim)
    image_size = int(vision["image_size"])
    res = cfg.get("resize_imgs_with_padding")
    if res is not None and (len(res) != 2 or res[0] != res[1] or int(res[0]) != image_size):
        raise CheckpointImportError(f"{src / 'config.json'}: resize_imgs_with_padding {res} does not match the VLM's "
                                    f"{image_size} px square input ({vlm_dir / 'config.json'})")
    if int(cfg.get("prefix_length", -1) or -1) > 0:
        notes.append("prefix_length > 0 pads the prefix with masked tokens; that changes no number, so it is not "
                     "reproduced")
    attention, every_n = _expert_attention(cfg)
    heads = int(text["num_attention_heads"])
    head_dim = int(text.get("head_dim") or text["hidden_size"] // heads)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    expert_q = _shape(state, "expert.layers.0.self_attn.q_proj.weight", where)
    tok_step = find_step(src, PREPROCESSOR, TOKENIZER_STEP) or {}
    max_len = int((tok_step.get("config") or {}).get("max_length") or cfg.get("tokenizer_max_length") or 48)
    theta = text.get("rope_theta", (text.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    if theta != 10000.0:
        notes.append(f"RoPE base 10000, as the reference hard-codes it (the VLM config says {theta})")
    offset = 0.001  # the reference's sample_time: Beta(1.5, 1.0) * 0.999 + 0.001, hard-coded
    config = {
        "format": "vla_ros.flow_matching",
        "format_version": 2,
        "policy_type": "flow_matching",
        "io": {
            "cameras": cameras, "image_size": image_size, "state_source": "joints", "state_dim": state_dim,
            "horizon": int(cfg.get("chunk_size", 50)), "dt": float(dt), "action_mode": "absolute",
            "normalization": normalization, "max_text_tokens": max_len, "action_dim": action_dim,
            "max_action_dim": _shape(state, "heads.action_in_proj.weight", where)[1],
            "max_state_dim": max(_shape(state, "heads.state_proj.weight", where)[1], state_dim),
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
            "prompt": "pi0" if find_step(src, PREPROCESSOR, NEW_LINE_STEP) is not None else "plain",
            "state_token": True, "state_placement": "prefix", "image_resize": "bilinear_top_left",
            "norm_convention": "lerobot",
        },
        "backbone": {
            "family": "llama", "vocab_size": _shape(state, "backbone.embed_tokens.weight", where)[0],
            "hidden_size": int(text["hidden_size"]),
            "intermediate_size": _shape(state, "backbone.layers.0.mlp.gate_proj.weight", where)[0],
            "num_hidden_layers": n_layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
            "head_dim": head_dim, "rope_theta": 10000.0, "rms_norm_eps": float(text.get("rms_norm_eps", 1e-5)),
            "max_position_embeddings": int(text.get("max_position_embeddings", 8192)),
            "hidden_act": str(text.get("hidden_act", "silu")), "scale_embeddings": True,
        },
        "expert": {
            "hidden_size": expert_q[1],
            "intermediate_size": _shape(state, "expert.layers.0.mlp.gate_proj.weight", where)[0],
            "time_conditioning": "fused", "attention": attention, "self_attn_every_n_layers": every_n,
            "causal_actions": True,
        },
        "vision": {
            "kind": "smolvlm", "scale_factor": scale_factor,
            "siglip": {"hidden_size": int(vision["hidden_size"]),
                       "intermediate_size": int(vision.get("intermediate_size", 3072)),
                       "num_hidden_layers": int(vision.get("num_hidden_layers", 12)),
                       "num_attention_heads": int(vision["num_attention_heads"]),
                       "patch_size": int(vision["patch_size"]),
                       "layer_norm_eps": float(vision.get("layer_norm_eps", 1e-6))},
        },
        "sampling": {"num_steps": int(cfg.get("num_steps", 10)), "min_period": float(cfg.get("min_period", 4e-3)),
                     "max_period": float(cfg.get("max_period", 4.0)), "time_dtype": "float64"},
        "training": {"time_beta_alpha": 1.5, "time_beta_beta": 1.0, "time_min": offset},
        "tokenizer": {"file": "tokenizer.json", "pad_token": pad_token, "bos_token": bos_token},
        "source": {"format": "lerobot", "policy_type": "smolvla", "path": str(src.resolve()),
                   "weights_sha256": source_sha},
    }
    notes.append(f"VLM config from {vlm_dir}")
    return SourceCheckpoint(config, state, origin, norm_stats, tok_file, source_sha, notes)

