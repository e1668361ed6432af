"""The flow-matching checkpoint's ``config.json``: the full architecture and I/O specification.

A checkpoint must be loadable without any code-side defaults that could silently disagree with
the weights, so every architecture number lives here, and every key is validated when read: a
missing, unknown or invalid key is a `ConfigError` that names the key (``io.horizon``), so a
hand-edited or truncated config fails at load time with a message a person can act on.

Layout (see docs/policy.md for the meaning of each key)::

    {"format": "vla_ros.flow_matching", "format_version": 1,
     "io": {...cameras, image size, state, actions, horizon, dt, mode, normalization, text length},
     "backbone": {...transformers Gemma/Llama decoder hyper-parameters},
     "expert": {...action-expert width},
     "vision": {"kind": "siglip" | "siglip_dinov2", "siglip": {...}, "dinov2": {...} | null, ...},
     "sampling": {...Euler steps, time-embedding periods},
     "training": {...time distribution},
     "tokenizer": {...file, special tokens}}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

FORMAT = "vla_ros.flow_matching"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"

FAMILIES = ("gemma", "llama")
VISION_KINDS = ("siglip", "siglip_dinov2")
STATE_SOURCES = ("ee_pose", "joints", "none")
ACTION_MODES = ("absolute", "delta")
NORMALIZATION_KINDS = ("mean_std", "quantile", "none")
EE_STATE_DIM = 7  # x, y, z, rx, ry, rz, gripper
EE_ACTION_DIM = 7


class ConfigError(ValueError):
    """An invalid checkpoint config; the message names the key."""


# ---------------------------------------------------------------------------------------------
# Field checkers: each turns a JSON value into the typed value or raises with a short reason.


def _int(min_value: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {v!r}")
        if min_value is not None and v < min_value:
            raise ValueError(f"expected an integer >= {min_value}, got {v}")
        return int(v)

    return check


def _float(positive: bool = False, min_value: float | None = None) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"expected a finite number, got {v!r}")
        if positive and not v > 0:
            raise ValueError(f"expected a number > 0, got {v}")
        if min_value is not None and v < min_value:
            raise ValueError(f"expected a number >= {min_value}, got {v}")
        return float(v)

    return check


def _str(choices: tuple[str, ...] | None = None, nonempty: bool = False) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"expected a string, got {v!r}")
        if choices is not None and v not in choices:
            raise ValueError(f"expected one of {', '.join(map(repr, choices))}, got {v!r}")
        if nonempty and not v:
            raise ValueError("expected a non-empty string")
        return v

    return check


def _opt_str(v: Any) -> str | None:
    if v is None:
        return None
    return _str(nonempty=True)(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _str_tuple(nonempty: bool = False, unique: bool = True) -> Callable[[Any], tuple[str, ...]]:
    def check(v: Any) -> tuple[str, ...]:
        if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) and s for s in v):
            raise ValueError(f"expected a list of non-empty strings, got {v!r}")
        if nonempty and not v:
            raise ValueError("expected at least one name")
        if unique and len(set(v)) != len(v):
            raise ValueError(f"expected unique names, got {list(v)}")
        return tuple(v)

    return check


def _float_tuple(n: int) -> Callable[[Any], tuple[float, ...]]:
    def check(v: Any) -> tuple[float, ...]:
        if not isinstance(v, (list, tuple)) or len(v) != n:
            raise ValueError(f"expected a list of {n} numbers, got {v!r}")
        return tuple(_float()(x) for x in v)

    return check


def _spec(check: Callable[[Any], Any], doc: str, **kwargs) -> Any:
    """A dataclass field with its JSON checker and one-line documentation."""
    return field(metadata={"check": check, "doc": doc}, **kwargs)


def _section_from_dict(cls: type, data: Any, path: str) -> Any:
    """Build dataclass `cls` from JSON object `data`, naming ``path.key`` in every error."""
    if not isinstance(data, dict):
        raise ConfigError(f"key {path!r}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {path + '.' + unknown[0]!r} (known keys of {path!r}: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{path}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise ConfigError(f"missing key {key!r} ({f.metadata.get('doc', '')})")
            continue
        sub = f.metadata.get("section")
        try:
            if sub is not None:
                kwargs[name] = None if data[name] is None and f.metadata.get("nullable") else _section_from_dict(
                    sub, data[name], key
                )
            else:
                kwargs[name] = f.metadata["check"](data[name])
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"key {key!r}: {exc}") from None
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(path)
    return obj


def _section_to_dict(obj: Any) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = _section_to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def _sub(cls: type, doc: str, nullable: bool = False, **kwargs) -> Any:
    return field(metadata={"section": cls, "doc": doc, "nullable": nullable}, **kwargs)


def _fail(key: str, msg: str) -> None:
    raise ConfigError(f"key {key!r}: {msg}")


# ---------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class IOConfig:
    """What the policy reads from an Observation and what it returns."""

    cameras: tuple[str, ...] = _spec(_str_tuple(nonempty=True), "camera names in prefix order, primary first")
    image_size: int = _spec(_int(8), "square side (pixels) the vision tower sees")
    state_source: str = _spec(_str(STATE_SOURCES), "ee_pose, joints or none")
    state_dim: int = _spec(_int(0), "length of the state vector (7 for ee_pose, 0 for none)")
    horizon: int = _spec(_int(1), "actions per chunk")
    dt: float = _spec(_float(positive=True), "seconds between actions")
    action_mode: str = _spec(_str(ACTION_MODES), "absolute or delta")
    normalization: str = _spec(_str(NORMALIZATION_KINDS), "mean_std, quantile or none")
    max_text_tokens: int = _spec(_int(1), "instruction length in tokens (padded/truncated)")
    joint_names: tuple[str, ...] = _spec(_str_tuple(), "joint order for state_source joints ([] = any)", default=())
    state_includes_gripper: bool = _spec(_bool, "joints state: append the gripper opening", default=False)
    action_dim: int = _spec(_int(1), "valid action dims (7: x y z rx ry rz gripper)", default=EE_ACTION_DIM)
    max_action_dim: int = _spec(_int(1), "action dims of the model (padded)", default=32)
    max_state_dim: int = _spec(_int(1), "state dims of the model (padded)", default=32)
    image_mean: tuple[float, ...] = _spec(_float_tuple(3), "per-channel mean on [0,1] pixels", default=(0.5, 0.5, 0.5))
    image_std: tuple[float, ...] = _spec(_float_tuple(3), "per-channel std on [0,1] pixels", default=(0.5, 0.5, 0.5))

    def validate(self, path: str) -> None:
        if self.action_dim != EE_ACTION_DIM:
            _fail(f"{path}.action_dim", f"vla_ros action chunks are 7-DoF end-effector actions; expected 7, got {self.action_dim}")
        if self.max_action_dim < self.action_dim:
            _fail(f"{path}.max_action_dim", f"expected >= action_dim ({self.action_dim}), got {self.max_action_dim}")
        if self.state_dim > self.max_state_dim:
            _fail(f"{path}.max_state_dim", f"expected >= state_dim ({self.state_dim}), got {self.max_state_dim}")
        if self.state_source == "ee_pose" and self.state_dim != EE_STATE_DIM:
            _fail(f"{path}.state_dim", f"state_source 'ee_pose' gives a 7-vector; expected 7, got {self.state_dim}")
        if self.state_source == "none" and self.state_dim != 0:
            _fail(f"{path}.state_dim", f"state_source 'none' has no state; expected 0, got {self.state_dim}")
        if self.state_source == "joints":
            if self.state_dim < 1:
                _fail(f"{path}.state_dim", "state_source 'joints' needs state_dim >= 1")
            if self.joint_names and len(self.joint_names) + int(self.state_includes_gripper) != self.state_dim:
                _fail(
                    f"{path}.state_dim",
                    f"{len(self.joint_names)} joint_names{' + gripper' if self.state_includes_gripper else ''}"
                    f" make {len(self.joint_names) + int(self.state_includes_gripper)} values, got state_dim {self.state_dim}",
                )
        if any(s <= 0 for s in self.image_std):
            _fail(f"{path}.image_std", "expected positive values")

    @property
    def uses_state(self) -> bool:
        return self.state_source != "none"


@dataclass(frozen=True)
class BackboneConfig:
    """The language backbone: a transformers Gemma or Llama decoder (embeddings + layers + norm)."""

    family: str = _spec(_str(FAMILIES), "gemma or llama")
    vocab_size: int = _spec(_int(2), "token embedding rows")
    hidden_size: int = _spec(_int(1), "language width")
    intermediate_size: int = _spec(_int(1), "MLP width")
    num_hidden_layers: int = _spec(_int(1), "decoder layers (the expert has as many)")
    num_attention_heads: int = _spec(_int(1), "query heads (shared with the expert)")
    num_key_value_heads: int = _spec(_int(1), "key/value heads (shared with the expert)")
    head_dim: int = _spec(_int(2), "per-head width (shared with the expert)")
    rope_theta: float = _spec(_float(positive=True), "RoPE base", default=10000.0)
    rms_norm_eps: float = _spec(_float(positive=True), "RMSNorm epsilon", default=1e-6)
    max_position_embeddings: int = _spec(_int(1), "longest joint sequence", default=8192)
    hidden_act: str | None = _spec(_opt_str, "MLP activation (null = family default)", default=None)

    def validate(self, path: str) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            _fail(
                f"{path}.num_key_value_heads",
                f"must divide num_attention_heads ({self.num_attention_heads}), got {self.num_key_value_heads}",
            )
        if self.head_dim % 2:
            _fail(f"{path}.head_dim", f"RoPE needs an even head_dim, got {self.head_dim}")


@dataclass(frozen=True)
class ExpertConfig:
    """The action expert's own width; layers, heads and head_dim come from the backbone."""

    hidden_size: int = _spec(_int(1), "expert width (usually narrower than the backbone)")
    intermediate_size: int = _spec(_int(1), "expert MLP width")


@dataclass(frozen=True)
class VisionTowerConfig:
    """One ViT (transformers SiglipVisionModel or Dinov2Model); image size comes from io.image_size."""

    hidden_size: int = _spec(_int(1), "ViT width")
    intermediate_size: int = _spec(_int(1), "ViT MLP width")
    num_hidden_layers: int = _spec(_int(1), "ViT blocks")
    num_attention_heads: int = _spec(_int(1), "ViT heads")
    patch_size: int = _spec(_int(1), "patch side in pixels")
    layer_norm_eps: float = _spec(_float(positive=True), "LayerNorm epsilon", default=1e-6)

    def validate(self, path: str) -> None:
        if self.hidden_size % self.num_attention_heads:
            _fail(f"{path}.num_attention_heads", f"must divide hidden_size ({self.hidden_size})")


@dataclass(frozen=True)
class VisionConfig:
    """Image encoder: SigLIP alone, or SigLIP + DINOv2 with FiLM, aggregation tokens and a router."""

    kind: str = _spec(_str(VISION_KINDS), "siglip or siglip_dinov2")
    siglip: VisionTowerConfig = _sub(VisionTowerConfig, "the SigLIP tower")
    dinov2: VisionTowerConfig | None = _sub(VisionTowerConfig, "the DINOv2 tower (siglip_dinov2; null otherwise)", nullable=True, default=None)
    num_aggregation_tokens: int = _spec(_int(1), "siglip_dinov2: learned tokens kept per camera", default=64)
    router_hidden_size: int = _spec(_int(1), "siglip_dinov2: router MLP width", default=256)

    def validate(self, path: str) -> None:
        if self.kind == "siglip_dinov2" and self.dinov2 is None:
            _fail(f"{path}.dinov2", "vision kind 'siglip_dinov2' needs a dinov2 section")
        if self.dinov2 is not None and self.dinov2.intermediate_size % self.dinov2.hidden_size:
            _fail(
                f"{path}.dinov2.intermediate_size",
                f"DINOv2 sizes its MLP by an integer ratio; expected a multiple of hidden_size ({self.dinov2.hidden_size})",
            )


@dataclass(frozen=True)
class SamplingConfig:
    """Inference: Euler steps and the sinusoidal time embedding."""

    num_steps: int = _spec(_int(1), "Euler steps from t=1 (noise) to t=0 (data)", default=10)
    min_period: float = _spec(_float(positive=True), "time embedding: shortest period", default=4e-3)
    max_period: float = _spec(_float(positive=True), "time embedding: longest period", default=4.0)


@dataclass(frozen=True)
class TrainingConfig:
    """Flow-matching time distribution: t = time_min + (1 - time_min) * Beta(alpha, beta)."""

    time_beta_alpha: float = _spec(_float(positive=True), "Beta alpha", default=1.5)
    time_beta_beta: float = _spec(_float(positive=True), "Beta beta", default=1.0)
    time_min: float = _spec(_float(min_value=0.0), "smallest t", default=0.001)


@dataclass(frozen=True)
class TokenizerConfig:
    """The instruction tokenizer (a `tokenizers` JSON file in the checkpoint)."""

    file: str = _spec(_str(nonempty=True), "tokenizer file in the checkpoint", default="tokenizer.json")
    pad_token: str = _spec(_str(nonempty=True), "padding token", default="<pad>")
    bos_token: str | None = _spec(_opt_str, "token prepended to every instruction (null = none)", default="<bos>")


@dataclass(frozen=True)
class FlowMatchingConfig:
    """The whole ``config.json``."""

    io: IOConfig = _sub(IOConfig, "I/O spec")
    backbone: BackboneConfig = _sub(BackboneConfig, "language backbone")
    expert: ExpertConfig = _sub(ExpertConfig, "action expert")
    vision: VisionConfig = _sub(VisionConfig, "vision encoder")
    sampling: SamplingConfig = _sub(SamplingConfig, "sampling", default_factory=SamplingConfig)
    training: TrainingConfig = _sub(TrainingConfig, "training", default_factory=TrainingConfig)
    tokenizer: TokenizerConfig = _sub(TokenizerConfig, "tokenizer", default_factory=TokenizerConfig)
    format: str = _spec(_str((FORMAT,)), "file format tag", default=FORMAT)
    format_version: int = _spec(_int(1), "file format version", default=FORMAT_VERSION)
    policy_type: str = _spec(_str(("flow_matching",)), "registry name", default="flow_matching")

    def validate(self, path: str) -> None:
        if self.format_version != FORMAT_VERSION:
            _fail(f"{path}format_version", f"this vla_ros reads version {FORMAT_VERSION}, got {self.format_version}")
        for name in ("siglip", "dinov2"):
            tower = getattr(self.vision, name)
            if tower is not None and self.io.image_size % tower.patch_size:
                _fail(
                    f"{path}vision.{name}.patch_size",
                    f"must divide io.image_size ({self.io.image_size}), got {tower.patch_size}",
                )

    # -- (de)serialisation ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> "FlowMatchingConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object at the top level, got {type(data).__name__}")
        # Top-level keys are reported without a leading dot ("io.horizon", not ".io.horizon").
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} (known top-level keys: {', '.join(fields)})")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                    raise ConfigError(f"missing key {name!r} ({f.metadata.get('doc', '')})")
                continue
            sub = f.metadata.get("section")
            if sub is not None:
                kwargs[name] = _section_from_dict(sub, data[name], name)
            else:
                try:
                    kwargs[name] = f.metadata["check"](data[name])
                except ValueError as exc:
                    raise ConfigError(f"key {name!r}: {exc}") from None
        obj = cls(**kwargs)
        obj.validate("")
        return obj

    def to_dict(self) -> dict:
        return _section_to_dict(self)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "FlowMatchingConfig":
        """Read and validate; errors name the file and the key."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: checkpoint config not found (a flow_matching checkpoint needs {CONFIG_FILE})") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    def replace(self, **sections: Any) -> "FlowMatchingConfig":
        """Copy with whole sections replaced (e.g. ``io=dataclasses.replace(cfg.io, horizon=8)``), re-validated."""
        return FlowMatchingConfig.from_dict(_section_to_dict(dataclasses.replace(self, **sections)))

    # -- derived numbers -----------------------------------------------------------------------

    @property
    def tokens_per_camera(self) -> int:
        if self.vision.kind == "siglip_dinov2":
            return self.vision.num_aggregation_tokens
        return (self.io.image_size // self.vision.siglip.patch_size) ** 2

    @property
    def prefix_length(self) -> int:
        return len(self.io.cameras) * self.tokens_per_camera + self.io.max_text_tokens

    @property
    def suffix_length(self) -> int:
        return int(self.io.uses_state) + self.io.horizon


def reference_markdown() -> str:
    """The config.json keys as a Markdown table (docs/policy.md embeds this)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]

    def walk(cls: type, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            sub = f.metadata.get("section")
            if sub is not None:
                walk(sub, key + ".")
                continue
            if f.default is not dataclasses.MISSING:
                default = json.dumps(list(f.default) if isinstance(f.default, tuple) else f.default)
            else:
                default = "required"
            rows.append(f"| `{key}` | {default} | {f.metadata.get('doc', '')} |")

    walk(FlowMatchingConfig, "")
    return "\n".join(rows) + "\n"
