"""Import pretrained checkpoints from other implementations into native flow_matching checkpoints.

`import_checkpoint(src, out)` reads a local directory (nothing comes from a model hub), maps its
tensors onto `FlowMatchingVLA`'s names, infers the sizes from their shapes, checks every name and
shape against a model built on the ``meta`` device (a missing, unexpected or mis-shaped tensor is
a `CheckpointImportError` naming the first offenders), and writes a native directory
(config.json v2, model.safetensors, tokenizer.json, norm_stats.json) that
`FlowMatchingPolicy.load` reads as it is. The weights' sha256 is computed once here, streaming,
and stored in config.json, so loading never re-hashes multi-GB files.

Formats: ``lerobot`` (`lerobot.read_lerobot`: pi0, pi05; smolvla through `smolvla.read_smolvla`,
which also needs the VLM's local config directory) and ``openpi`` (`openpi.read_openpi`: its
PyTorch pi0 / pi05 directories, with ``assets/<asset_id>/norm_stats.json``). Only safetensors are
read; a pickle-only directory is refused unopened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vla_ros.policy.imports.lerobot import CheckpointImportError

FORMATS = ("auto", "lerobot", "openpi")

__all__ = ["CheckpointImportError", "FORMATS", "ImportResult", "detect_format", "import_checkpoint"]


@dataclass
class ImportResult:
    path: Path
    policy_type: str
    weights_sha256: str
    source_sha256: str
    parameters: int
    notes: list[str] = field(default_factory=list)


def detect_format(src: Path) -> str:
    import json

    cfg = src / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointImportError(f"{cfg}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and "type" in data:
            return "lerobot"
        from vla_ros.policy.imports.openpi import looks_like_openpi

        if isinstance(data, dict) and looks_like_openpi(data):
            return "openpi"  # its reader names a missing assets/ directory
    if (src / "assets").is_dir():
        return "openpi"
    if cfg.is_file():
        return "lerobot"  # its reader names what is wrong with the config
    raise CheckpointImportError(f"{src}: not a LeRobot (config.json with 'type') or openpi (assets/) checkpoint "
                                "directory")


def _installed_siglip_flat() -> bool:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from vla_ros.policy.checkpoint import parameters_on_meta
    from vla_ros.policy.imports.keymap import siglip_flat

    with parameters_on_meta():
        m = SiglipVisionModel(SiglipVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                                 num_attention_heads=1, patch_size=4, image_size=8))
    return siglip_flat(m.state_dict())


def _offenders(keys: list[str], n: int = 5) -> str:
    more = f" (and {len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(repr(k) for k in keys[:n]) + more


def check_against_model(state: dict, origin: dict, expected: dict, where: Path) -> None:
    """Names and shapes of `state` against the model's `expected` state dict; raises naming the first offenders."""
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointImportError(f"{where}: missing tensors {_offenders(missing)} (native names); the checkpoint is "
                                    "incomplete")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise CheckpointImportError(f"{origin.get(unexpected[0], where)}: unexpected tensors {_offenders(unexpected)} "
                                    "(native names)")
    bad = [f"{k} {tuple(state[k].shape)} != "
           f"{tuple(v.shape)}" for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise CheckpointImportError(f"{where}: mis-shaped tensors {'; '.join(bad[:5])}{more} (checkpoint != inferred "
                                    "config)")


def import_checkpoint(src: str | Path, out: str | Path, *, tokenizer: str | Path | None = None,
                      fmt: str = "auto", dt: float = 0.1, asset_id: str | None = None, vlm: str | Path | None = None,
                      vlm_path: list[str | Path] | None = None) -> ImportResult:
    """Import `src` into the native checkpoint directory `out` (created; must be empty or absent).

    asset_id: openpi only, which ``assets/<asset_id>/norm_stats.json`` to use when there are several.
    vlm / vlm_path: LeRobot smolvla only, the VLM directory, or roots to find it under by the
    checkpoint's ``vlm_model_name`` (`smolvla.resolve_vlm_dir`)."""
    import dataclasses

    from safetensors.torch import save_file

    from vla_ros.core.schema import ConfigError
    from vla_ros.policy.checkpoint import WEIGHTS_FILE, checkpoint_dir, sha256_files
    from vla_ros.policy.flow_matching.config import CONFIG_FILE, FlowMatchingConfig, WeightsConfig
    from vla_ros.policy.flow_matching.policy import build_model
    from vla_ros.policy.imports.lerobot import read_lerobot
    from vla_ros.policy.normalization import NORM_STATS_FILE
    from vla_ros.policy.tokenizer import TextTokenizer

    src = checkpoint_dir(src)
    out = Path(out)
    if fmt not in FORMATS:
        raise CheckpointImportError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointImportError(f"{out}: already exists and is not an empty directory; choose a new --out")
    kind = detect_format(src) if fmt == "auto" else fmt
    if kind == "openpi":
        from vla_ros.policy.imports.openpi import read_openpi

        if vlm is not None or vlm_path:
            raise CheckpointImportError("--vlm / --vlm-path: only LeRobot SmolVLA checkpoints name a VLM directory")
        source = read_openpi(src, tokenizer, dt=dt, flat_siglip=_installed_siglip_flat(), asset_id=asset_id)
    else:
        if asset_id is not None:
            raise CheckpointImportError("--asset-id: only openpi checkpoints have asset ids (assets/<asset_id>/)")
        source = read_lerobot(src, tokenizer, dt=dt, flat_siglip=_installed_siglip_flat(), vlm=vlm, vlm_path=vlm_path)
    try:
        config = FlowMatchingConfig.from_dict(source.config)
    except ConfigError as exc:
        raise CheckpointImportError(f"{src}: the inferred config is invalid: {exc}") from None
    try:
        tok = TextTokenizer.load(source.tokenizer_file, config.io.max_text_tokens, config.tokenizer.pad_token,
                                 config.tokenizer.bos_token)
    except (ValueError, FileNotFoundError) as exc:
        raise CheckpointImportError(f"{exc}") from None
    if tok.vocab_size > config.backbone.vocab_size:
        raise CheckpointImportError(
            f"{source.tokenizer_file}: {tok.vocab_size} tokens but the checkpoint embeds {config.backbone.vocab_size}; "
            "wrong tokenizer?"
        )
    model = build_model(config, tok.pad_id, meta=True)
    check_against_model(source.state, source.origin, model.state_dict(), src / WEIGHTS_FILE)
    parameters = sum(p.numel() for p in model.parameters())
    del model

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in source.state.items()}, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    source.state.clear()
    sha = sha256_files([out / WEIGHTS_FILE])
    config = dataclasses.replace(config, weights=WeightsConfig(sha, (out / WEIGHTS_FILE).stat().st_size))
    tok.save(out / config.tokenizer.file)
    source.norm_stats.save(out / NORM_STATS_FILE)
    config.to_json(out / CONFIG_FILE)
    return ImportResult(out, str(source.config["source"]["policy_type"]), sha, source.source_sha256, parameters,
                        source.notes)
