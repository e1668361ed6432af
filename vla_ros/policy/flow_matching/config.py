"""The flow-matching checkpoint's ``config.json``: the full architecture and I/O specification.

A checkpoint must be loadable without any code-side defaults that could silently disagree with
the weights, so every architecture number lives here, and every key is validated when read: a
missing, unknown or invalid key is a `ConfigError` that names the key (``io.horizon``), so a
hand-edited or truncated config fails at load time with a message a person can act on.

Layout (see docs/policy.md for the meaning of each key)::

    {"format": "vla_ros.flow_matching", "format_version": 1 | 2,
     "io": {...cameras, image size, state, actions, horizon, dt, mode, normalization, text length},
     "backbone": {...transformers Gemma/Llama decoder hyper-parameters},
     "expert": {...action-expert width},
     "vision": {"kind": "siglip" | "siglip_dinov2" | "smolvlm", "siglip": {...}, "dinov2": {...} | null, ...},
     "sampling": {...Euler steps, time-embedding periods},
     "training": {...time distribution},
     "tokenizer": {...file, special tokens},
     "weights": {"sha256", "bytes"} | null, "source": {...} | null}      (v2)

Version 2 adds the keys pretrained pi0 / pi05 checkpoints need (prompt form, state token, image
resize, normalisation epsilons, adaRMS time conditioning, float64 time angles, stored weights hash,
import source) and those of SmolVLA (the SmolVLM vision kind, embedding scaling, the state as the
last prefix token, causal action tokens, cross-attention / interleaved expert layers). Each
defaults to the version-1 behaviour, so every v1 file still loads unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

from vla_ros.core import schema
from vla_ros.core.schema import REQUIRED, ConfigError, FieldError, param, section  # ConfigError: what loading raises

FORMAT = "vla_ros.flow_matching"
FORMAT_VERSION = 2  # what this vla_ros writes for new (imported) checkpoints
FORMAT_VERSIONS = (1, 2)  # what it reads: every v2 key defaults to the v1 behaviour
CONFIG_FILE = "config.json"

FAMILIES = ("gemma", "llama")
VISION_KINDS = ("siglip", "siglip_dinov2", "smolvlm")
STATE_SOURCES = ("ee_pose", "joints", "none")
ACTION_MODES = ("absolute", "delta")
NORMALIZATION_KINDS = ("mean_std", "quantile", "none")
NORM_CONVENTIONS = ("openpi", "lerobot")
PROMPT_FORMS = ("plain", "pi0", "pi05", "openpi_pi0")
TIME_SCHEDULES = ("exact", "openpi")
IMAGE_RESIZES = ("antialias", "bilinear", "bilinear_top_left")
STATE_PLACEMENTS = ("auto", "suffix", "prefix")
EXPERT_ATTENTIONS = ("joint", "cross", "interleaved")
TIME_CONDITIONINGS = ("fused", "adarms")
TIME_DTYPES = ("float32", "float64")
EE_STATE_DIM = 7  # x, y, z, rx, ry, rz, gripper
EE_ACTION_DIM = 7


@dataclass(frozen=True)
class IOConfig:
    """What the policy reads from an Observation and what it returns."""

    cameras: tuple[str, ...] = param(
        REQUIRED, "camera names in prefix order, primary first", min_length=1, nonempty=True, unique=True
    )
    image_size: int = param(REQUIRED, "square side (pixels) the vision tower sees", min=8)
    state_source: str = param(REQUIRED, "ee_pose, joints or none", choices=STATE_SOURCES)
    state_dim: int = param(REQUIRED, "length of the state vector (7 for ee_pose, 0 for none)", min=0)
    horizon: int = param(REQUIRED, "actions per chunk", min=1)
    dt: float = param(REQUIRED, "seconds between actions", gt=0)
    action_mode: str = param(REQUIRED, "absolute or delta", choices=ACTION_MODES)
    normalization: str = param(REQUIRED, "mean_std, quantile or none", choices=NORMALIZATION_KINDS)
    max_text_tokens: int = param(REQUIRED, "instruction length in tokens (padded/truncated)", min=1)
    joint_names: tuple[str, ...] = param((), "joint order for state_source joints ([] = any)", nonempty=True,
                                         unique=True)
    state_includes_gripper: bool = param(False, "joints state: append the gripper opening")
    action_dim: int = param(EE_ACTION_DIM, "valid action dims (7: x y z rx ry rz gripper)", min=1)
    max_action_dim: int = param(32, "action dims of the model (padded)", min=1)
    max_state_dim: int = param(32, "state dims of the model (padded)", min=1)
    image_mean: tuple[float, ...] = param((0.5, 0.5, 0.5), "per-channel mean on [0,1] pixels", length=3)
    image_std: tuple[float, ...] = param((0.5, 0.5, 0.5), "per-channel std on [0,1] pixels", length=3, gt=0)
    # -- v2 (pretrained pi0 / pi05); each default is the v1 behaviour --
    prompt: str = param(
        "plain",
        "text the tokenizer sees: plain (the instruction), pi0 (instruction + a newline unless it ends with one), "
        "pi05 ('Task: ..., State: <binned normalised state>;\\nAction: '), openpi_pi0 (openpi's pi0: the instruction "
        "stripped, '_' and newlines made spaces, then a newline)",
        choices=PROMPT_FORMS,
    )
    state_token: bool = param(True,
                              "the state enters the expert as one suffix token (pi0); false for pi05 (state in the "
                              "prompt)")
    state_bins: int = param(256, "prompt pi05: bins of the normalised state over [-1, 1]", min=2)
    image_resize: str = param(
        "antialias",
        "antialias (uint8, antialiased when shrinking), bilinear (float, no antialias, clamped to [0,1], padded "
        "centred: openpi/LeRobot pi0) or bilinear_top_left (float, no antialias, not clamped, padded on the top and "
        "left: SmolVLA)",
        choices=IMAGE_RESIZES,
    )
    state_placement: str = param(
        "auto",
        "where the state token goes: suffix (pi0: first expert token), prefix (SmolVLA: last prefix token, run by the "
        "backbone in its own block, so every expert layer style can read it) or auto (prefix when the expert has "
        "cross-attention layers, else suffix)",
        choices=STATE_PLACEMENTS,
    )
    norm_convention: str = param(
        "openpi",
        "normalisation epsilons: openpi (eps 1e-6 both ways) or lerobot (mean_std: /(std+1e-8), inverse x*std+mean; "
        "float32)",
        choices=NORM_CONVENTIONS,
    )

    def check(self) -> None:
        if self.prompt == "pi05" and not self.uses_state:
            raise FieldError("prompt",
                             "prompt 'pi05' writes the state into the text; it needs a state_source other than 'none'")
        if self.action_dim != EE_ACTION_DIM:
            raise FieldError("action_dim",
                             f"vla_ros action chunks are 7-DoF end-effector actions; expected 7, got {self.action_dim}")
        if self.max_action_dim < self.action_dim:
            raise FieldError("max_action_dim", f"expected >= action_dim ({self.action_dim}), got {self.max_action_dim}")
        if self.state_dim > self.max_state_dim:
            raise FieldError("max_state_dim", f"expected >= state_dim ({self.state_dim}), got {self.max_state_dim}")
        if self.state_source == "ee_pose" and self.state_dim != EE_STATE_DIM:
            raise FieldError("state_dim", f"state_source 'ee_pose' gives a 7-vector; expected 7, got {self.state_dim}")
        if self.state_source == "none" and self.state_dim != 0:
            raise FieldError("state_dim", f"state_source 'none' has no state; expected 0, got {self.state_dim}")
        if self.state_source == "joints":
            if self.state_dim < 1:
                raise FieldError("state_dim", "state_source 'joints' needs state_dim >= 1")
            values = len(self.joint_names) + int(self.state_includes_gripper)
            if self.joint_names and values != self.state_dim:
                gripper = " + gripper" if self.state_includes_gripper else ""
                raise FieldError(
                    "state_dim", f"{len(self.joint_names)} joint_names{gripper} make {values} values, got state_dim "
                                 f"{self.state_dim}"
                )

    @property
    def uses_state(self) -> bool:
        return self.state_source != "none"

    @property
    def uses_state_token(self) -> bool:
        return self.uses_state and self.state_token


@dataclass(frozen=True)
class BackboneConfig:
    """The language backbone: a transformers Gemma or Llama decoder (embeddings + layers + norm)."""

    family: str = param(REQUIRED, "gemma or llama", choices=FAMILIES)
    vocab_size: int = param(REQUIRED, "token embedding rows", min=2)
    hidden_size: int = param(REQUIRED, "language width", min=1)
    intermediate_size: int = param(REQUIRED, "MLP width", min=1)
    num_hidden_layers: int = param(REQUIRED, "decoder layers (the expert has as many)", min=1)
    num_attention_heads: int = param(REQUIRED, "query heads (shared with the expert)", min=1)
    num_key_value_heads: int = param(REQUIRED, "key/value heads (shared with the expert)", min=1)
    head_dim: int = param(REQUIRED, "per-head width (shared with the expert)", min=2)
    rope_theta: float = param(10000.0, "RoPE base", gt=0)
    rms_norm_eps: float = param(1e-6, "RMSNorm epsilon", gt=0)
    max_position_embeddings: int = param(8192, "longest joint sequence", min=1)
    hidden_act: str | None = param(None, "MLP activation (null = family default)", nonempty=True)
    scale_embeddings: bool = param(
        False, "multiply the image and text embeddings by sqrt(hidden_size) before the first layer (SmolVLA); "
        "Gemma's text embeddings already scale themselves")

    def check(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise FieldError(
                "num_key_value_heads",
                f"must divide num_attention_heads ({self.num_attention_heads}), got {self.num_key_value_heads}",
            )
        if self.head_dim % 2:
            raise FieldError("head_dim", f"RoPE needs an even head_dim, got {self.head_dim}")


@dataclass(frozen=True)
class ExpertConfig:
    """The action expert's own width; layers, heads and head_dim come from the backbone."""

    hidden_size: int = param(REQUIRED, "expert width (usually narrower than the backbone)", min=1)
    intermediate_size: int = param(REQUIRED, "expert MLP width", min=1)
    time_conditioning: str = param(
        "fused",
        "fused (pi0: time embedding fused into each action token by an MLP) or adarms "
        "(pi05: every expert norm gets scale/shift/gate from the time embedding, gated residuals)",
        choices=TIME_CONDITIONINGS,
    )
    attention: str = param(
        "joint",
        "joint (pi0: every expert layer attends jointly over the prefix and the suffix), cross (every layer "
        "cross-attends to the backbone's per-layer keys/values through its own k/v projections) or interleaved "
        "(SmolVLA: layer i is joint when i % self_attn_every_n_layers == 0, else cross)",
        choices=EXPERT_ATTENTIONS,
    )
    self_attn_every_n_layers: int = param(2, "interleaved: every n-th layer (from layer 0) is a joint-attention layer",
                                          min=1)
    causal_actions: bool = param(
        False, "each action token is its own causal block (SmolVLA: action i sees actions <= i); false: the action "
        "tokens attend to each other both ways (pi0)")

    def layer_kinds(self, num_layers: int) -> tuple[str, ...]:
        """'self' or 'cross' for each expert layer."""
        if self.attention == "joint":
            return ("self",) * num_layers
        if self.attention == "cross":
            return ("cross",) * num_layers
        n = self.self_attn_every_n_layers
        return tuple("self" if i % n == 0 else "cross" for i in range(num_layers))


@dataclass(frozen=True)
class VisionTowerConfig:
    """One ViT (transformers SiglipVisionModel or Dinov2Model); image size comes from io.image_size."""

    hidden_size: int = param(REQUIRED, "ViT width", min=1)
    intermediate_size: int = param(REQUIRED, "ViT MLP width", min=1)
    num_hidden_layers: int = param(REQUIRED, "ViT blocks", min=1)
    num_attention_heads: int = param(REQUIRED, "ViT heads", min=1)
    patch_size: int = param(REQUIRED, "patch side in pixels", min=1)
    layer_norm_eps: float = param(1e-6, "LayerNorm epsilon", gt=0)

    def check(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise FieldError("num_attention_heads", f"must divide hidden_size ({self.hidden_size})")


@dataclass(frozen=True)
class VisionConfig:
    """Image encoder: SigLIP alone, or SigLIP + DINOv2 with FiLM, aggregation tokens and a router."""

    kind: str = param(REQUIRED,
                      "siglip, siglip_dinov2 or smolvlm (v2: SmolVLM's vision transformer + pixel-shuffle connector; "
                     "its tower sizes in the siglip section)", choices=VISION_KINDS)
    siglip: VisionTowerConfig = section(VisionTowerConfig, "the SigLIP tower", default=REQUIRED)
    dinov2: VisionTowerConfig | None = section(VisionTowerConfig, "the DINOv2 tower (siglip_dinov2; null otherwise)",
                                               default=None)
    num_aggregation_tokens: int = param(64, "siglip_dinov2: learned tokens kept per camera", min=1)
    router_hidden_size: int = param(256, "siglip_dinov2: router MLP width", min=1)
    scale_factor: int = param(4, "smolvlm: pixel-shuffle factor of the connector (scale_factor^2 patches -> one token)",
                              min=1)

    def check(self) -> None:
        if self.kind == "siglip_dinov2" and self.dinov2 is None:
            raise FieldError("dinov2", "vision kind 'siglip_dinov2' needs a dinov2 section")
        if self.dinov2 is not None and self.dinov2.intermediate_size % self.dinov2.hidden_size:
            raise FieldError(
                "dinov2.intermediate_size",
                "DINOv2 sizes its MLP by an integer ratio; expected a multiple of hidden_size "
                f"({self.dinov2.hidden_size})",
            )


@dataclass(frozen=True)
class SamplingConfig:
    """Inference: Euler steps and the sinusoidal time embedding."""

    num_steps: int = param(10, "Euler steps from t=1 (noise) to t=0 (data)", min=1)
    min_period: float = param(4e-3, "time embedding: shortest period", gt=0)
    max_period: float = param(4.0, "time embedding: longest period", gt=0)
    time_dtype: str = param("float32", "dtype of the time embedding's angles and sin/cos (float64: as openpi/LeRobot)",
                            choices=TIME_DTYPES)
    time_schedule: str = param("exact",
                               "Euler times: exact (t = 1 - i/N) or openpi (t accumulated in float32 from 1 by "
                               "dt = -1/N while t >= -dt/2, as openpi's sample_actions)", choices=TIME_SCHEDULES)


@dataclass(frozen=True)
class TrainingConfig:
    """Flow-matching time distribution: t = time_min + (1 - time_min) * Beta(alpha, beta)."""

    time_beta_alpha: float = param(1.5, "Beta alpha", gt=0)
    time_beta_beta: float = param(1.0, "Beta beta", gt=0)
    time_min: float = param(0.001, "smallest t", min=0.0)


@dataclass(frozen=True)
class TokenizerConfig:
    """The instruction tokenizer (a `tokenizers` JSON file in the checkpoint)."""

    file: str = param("tokenizer.json", "tokenizer file in the checkpoint", nonempty=True)
    pad_token: str = param("<pad>", "padding token", nonempty=True)
    bos_token: str | None = param("<bos>", "token prepended to every instruction (null = none)", nonempty=True)


@dataclass(frozen=True)
class PrecisionConfig:
    """Per-module dtype: what stays float32 when the policy runs in bfloat16 / float16."""

    float32_modules: tuple[str, ...] = param(
        (), "parameter-name parts kept in float32 under a 16-bit policy.dtype (LeRobot: the vision tower, "
        "projector and norms); [] = none", nonempty=True, unique=True)


@dataclass(frozen=True)
class WeightsConfig:
    """The weights file's sha256, computed once when the checkpoint was written (no re-hash at load)."""

    sha256: str = param(REQUIRED, "hex sha256 of model.safetensors", nonempty=True)
    bytes: int = param(REQUIRED, "its size; a different size means the stored hash is stale", min=0)


@dataclass(frozen=True)
class SourceConfig:
    """Where an imported checkpoint came from (`vla-ros import`)."""

    format: str = param(REQUIRED, "lerobot or openpi", nonempty=True)
    policy_type: str = param(REQUIRED, "the source's type, e.g. pi0 or pi05", nonempty=True)
    path: str = param("", "the source directory at import time")
    weights_sha256: str = param("", "hex sha256 of the source weights file(s)")


@dataclass(frozen=True)
class FlowMatchingConfig:
    """The whole ``config.json``; `from_dict` / `from_json` validate every key (`vla_ros.core.schema`)."""

    io: IOConfig = section(IOConfig, "I/O spec", default=REQUIRED)
    backbone: BackboneConfig = section(BackboneConfig, "language backbone", default=REQUIRED)
    expert: ExpertConfig = section(ExpertConfig, "action expert", default=REQUIRED)
    vision: VisionConfig = section(VisionConfig, "vision encoder", default=REQUIRED)
    sampling: SamplingConfig = section(SamplingConfig, "sampling")
    training: TrainingConfig = section(TrainingConfig, "training")
    tokenizer: TokenizerConfig = section(TokenizerConfig, "tokenizer")
    precision: PrecisionConfig = section(PrecisionConfig, "v2: per-module dtype")
    weights: WeightsConfig | None = section(WeightsConfig, "v2: the stored weights hash (null: hashed at load)",
                                            default=None)
    source: SourceConfig | None = section(SourceConfig, "v2: the imported source (null: made by vla_ros)", default=None)
    format: str = param(FORMAT, "file format tag", choices=(FORMAT,))
    format_version: int = param(FORMAT_VERSION, "file format version", min=1)
    policy_type: str = param("flow_matching", "registry name", choices=("flow_matching",))

    def check(self) -> None:
        if self.format_version not in FORMAT_VERSIONS:
            raise FieldError("format_version", f"this vla_ros reads versions 1 and 2, got {self.format_version}")
        v2_keys = _v2_keys_set(self) if self.format_version == 1 else []
        if v2_keys:
            raise FieldError(v2_keys[0], "is a format_version 2 key; set format_version to 2")
        for name in ("siglip", "dinov2"):
            tower = getattr(self.vision, name)
            if tower is not None and self.io.image_size % tower.patch_size:
                raise FieldError(
                    f"vision.{name}.patch_size",
                    f"must divide io.image_size ({self.io.image_size}), got {tower.patch_size}"
                )
        if (self.vision.kind == "smolvlm"
                and (self.io.image_size // self.vision.siglip.patch_size) % self.vision.scale_factor):
            raise FieldError("vision.scale_factor", f"must divide the patches per side "
                             f"({self.io.image_size // self.vision.siglip.patch_size}), got {self.vision.scale_factor}")
        if self.io.state_placement == "suffix" and self.io.uses_state_token and self.expert.attention == "cross":
            raise FieldError("io.state_placement",
                             "expert.attention 'cross' has no joint layer, so a suffix state token "
                             "would never reach the action tokens; use prefix (or auto)")
        if self.expert.attention != "interleaved" and self.expert.self_attn_every_n_layers != 2:
            raise FieldError("expert.self_attn_every_n_layers", f"only interleaved experts alternate layer kinds; "
                             f"expert.attention is {self.expert.attention!r}")
        if self.vision.kind != "smolvlm" and self.vision.scale_factor != 4:
            raise FieldError("vision.scale_factor", f"only the smolvlm vision kind has a pixel-shuffle connector; "
                             f"vision.kind is {self.vision.kind!r}")
        if self.io.state_placement == "prefix" and not self.io.uses_state_token:
            raise FieldError("io.state_placement",
                             "there is no state token to place (state_source 'none' or state_token false)")
        if self.expert.attention == "cross" and self.expert.causal_actions:
            raise FieldError("expert.causal_actions",
                             "expert.attention 'cross' has no joint layer, so the action tokens "
                             "never attend to each other and causal_actions would change nothing; use interleaved")

    # -- (de)serialisation ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> "FlowMatchingConfig":
        """Build from parsed JSON; a missing, unknown or invalid key raises ConfigError naming it."""
        return schema.from_dict(cls, data)

    def to_dict(self) -> dict:
        return schema.to_dict(self)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "FlowMatchingConfig":
        """Read and validate; errors name the file and the key."""
        path = os.fspath(path)
        data = schema.read_json(path, "checkpoint config", f"a flow_matching checkpoint needs {CONFIG_FILE}")
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
        return FlowMatchingConfig.from_dict(schema.to_dict(dataclasses.replace(self, **sections)))

    # -- derived numbers -----------------------------------------------------------------------

    @property
    def tokens_per_camera(self) -> int:
        if self.vision.kind == "siglip_dinov2":
            return self.vision.num_aggregation_tokens
        side = self.io.image_size // self.vision.siglip.patch_size
        if self.vision.kind == "smolvlm":
            side //= self.vision.scale_factor
        return side ** 2

    @property
    def uses_state_token(self) -> bool:
        return self.io.uses_state_token

    @property
    def state_in_prefix(self) -> bool:
        """The state token is the last prefix token (io.state_placement, 'auto' resolved)."""
        if not self.io.uses_state_token:
            return False
        placement = self.io.state_placement
        if placement == "auto":
            return "cross" in self.layer_kinds
        return placement == "prefix"

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        """'self' (joint attention) or 'cross' for each expert layer."""
        return self.expert.layer_kinds(self.backbone.num_hidden_layers)

    @property
    def prefix_length(self) -> int:
        return len(self.io.cameras) * self.tokens_per_camera + self.io.max_text_tokens + int(self.state_in_prefix)

    @property
    def suffix_length(self) -> int:
        return int(self.io.uses_state_token and not self.state_in_prefix) + self.io.horizon


_V2_DEFAULTS = {
    "io.prompt": "plain", "io.state_token": True, "io.state_bins": 256, "io.image_resize": "antialias",
    "io.norm_convention": "openpi", "io.state_placement": "auto", "backbone.scale_embeddings": False,
    "expert.time_conditioning": "fused", "expert.attention": "joint", "expert.self_attn_every_n_layers": 2,
    "expert.causal_actions": False, "vision.scale_factor": 4, "sampling.time_dtype": "float32",
    "sampling.time_schedule": "exact", "precision.float32_modules": (),
    "weights": None, "source": None,
}


def _v2_keys_set(config: "FlowMatchingConfig") -> list[str]:
    """The v2 keys that differ from their v1 behaviour (a v1 file may not use them)."""
    out = []
    for key, default in _V2_DEFAULTS.items():
        obj: Any = config
        for part in key.split("."):
            obj = getattr(obj, part)
        if obj != default:
            out.append(key)
    if config.vision.kind == "smolvlm":
        out.append("vision.kind")
    return out


def reference_markdown() -> str:
    """The config.json keys as a Markdown table (docs/policy.md embeds this), from `schema.describe`."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for row in schema.describe(FlowMatchingConfig):
        d = row["default"]
        default = "required" if d is REQUIRED else json.dumps(list(d) if isinstance(d, tuple) else d)
        same = f"; same keys as `{row['same_as']}`" if row.get("same_as") else ""
        rows.append(f"| `{row['key']}` | {default} | {row['doc']}{same} |")
    return "\n".join(rows) + "\n"
