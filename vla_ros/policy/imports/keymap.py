"""Checkpoint key names -> this package's module names (the one table for each renaming).

SigLIP: checkpoints (PaliGemma, openpi, LeRobot) store the vision tower as
``vision_tower.vision_model.{embeddings,encoder,post_layernorm}.*``. transformers 5.x flattened
``SiglipVisionModel`` to ``{embeddings,encoder,post_layernorm}.*``; 4.x keeps ``vision_model.``.
`siglip_key` maps either form onto the form of the installed transformers (`SIGLIP_RENAMES`),
so a manual ``load_state_dict`` (which, unlike ``from_pretrained``, does not rename) works on both.

LeRobot / openpi pi0 and pi05: `LEROBOT_PREFIXES` maps each root of their module tree onto ours.
Keys may carry LeRobot's extra ``model.`` prefix (stripped first). Both the current
(``paligemma.model.language_model.*``) and the older transformers 4.x PaliGemma layout
(``paligemma.language_model.model.*``) are accepted.
"""

from __future__ import annotations

from typing import Iterable

# (checkpoint form, transformers-5 form) of the SigLIP tower's top-level names.
SIGLIP_RENAMES: tuple[tuple[str, str], ...] = (
    ("vision_model.embeddings.", "embeddings."),
    ("vision_model.encoder.", "encoder."),
    ("vision_model.post_layernorm.", "post_layernorm."),
    ("vision_model.head.", "head."),
)


def siglip_flat(native_keys: Iterable[str]) -> bool:
    """True when the installed SiglipVisionModel uses the flat (transformers 5) names."""
    return not any(k.startswith("vision_model.") for k in native_keys)


def siglip_key(key: str, flat: bool) -> str:
    """A SigLIP tower key (relative to the tower) in either form -> the installed form."""
    for nested, flat_form in SIGLIP_RENAMES:
        if flat and key.startswith(nested):
            return flat_form + key[len(nested):]
        if not flat and key.startswith(flat_form):
            return nested + key[len(flat_form):]
    return key


VISION_ROOTS = (
    "paligemma_with_expert.paligemma.model.vision_tower.",
    "paligemma_with_expert.paligemma.vision_tower.",
)

# checkpoint prefix -> native prefix (first match wins; order matters: longer first).
LEROBOT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("paligemma_with_expert.paligemma.model.language_model.", "backbone."),
    ("paligemma_with_expert.paligemma.language_model.model.", "backbone."),
    ("paligemma_with_expert.paligemma.model.multi_modal_projector.linear.", "vision.projector."),
    ("paligemma_with_expert.paligemma.multi_modal_projector.linear.", "vision.projector."),
    ("paligemma_with_expert.gemma_expert.model.", "expert."),
    ("state_proj.", "heads.state_proj."),
    ("action_in_proj.", "heads.action_in_proj."),
    ("action_out_proj.", "heads.action_out_proj."),
    ("action_time_mlp_in.", "heads.action_time_mlp_in."),
    ("action_time_mlp_out.", "heads.action_time_mlp_out."),
    ("time_mlp_in.", "heads.time_mlp_in."),
    ("time_mlp_out.", "heads.time_mlp_out."),
)

# The VLM's lm_head: tied to the embeddings in the reference; used only when embed_tokens is absent.
VLM_LM_HEADS = (
    "paligemma_with_expert.paligemma.lm_head.weight",
    "paligemma_with_expert.paligemma.language_model.lm_head.weight",
)
# Unused by the policy (the expert never decodes tokens): dropped.
DROPPED = (
    "paligemma_with_expert.gemma_expert.lm_head.weight",
    "paligemma_with_expert.gemma_expert.model.embed_tokens.weight",
)
EMBED_TOKENS = "backbone.embed_tokens.weight"


def strip_model_prefix(keys: Iterable[str]) -> bool:
    """LeRobot's own saves prefix every key with ``model.``; hub conversions do not."""
    keys = list(keys)
    return bool(keys) and all(k.startswith("model.") for k in keys)


def lerobot_key(key: str, flat_siglip: bool) -> str | None:
    """A pi0/pi05 checkpoint key (without ``model.``) -> the native key, or None if unknown."""
    for root in VISION_ROOTS:
        if key.startswith(root):
            return "vision.tower." + siglip_key(key[len(root):], flat_siglip)
    for src, dst in LEROBOT_PREFIXES:
        if key.startswith(src):
            return dst + key[len(src):]
    return None
