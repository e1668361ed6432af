#!/usr/bin/env python3
"""Generate golden pi0 / pi05 fixtures from the reference implementation (openpi, PyTorch).

This script is NOT part of the vla_ros package and never imports it. It runs in a separate,
throw-away virtual environment that holds openpi's PyTorch model code, and writes small
fixtures under ``test/fixtures/openpi_pi0/`` and ``test/fixtures/openpi_pi05/`` (see the
openpi section of ``test/fixtures/README.md`` for every key and shape).

Reference pinned
----------------
- openpi: github.com/Physical-Intelligence/openpi at commit
  ``15a9616a00943ada6c20a0f158e3adb39df2ccac`` ("update output objects to support batching (#975)").
- transformers 4.53.2 with openpi's ``src/openpi/models_pytorch/transformers_replace/*`` copied
  over the installed package (openpi's README, "PyTorch Support / Setup"), torch 2.13.0+cpu,
  CPython 3.11.7, numpy 2.4.6, safetensors 0.8.0, sentencepiece 0.2.3, pydantic 2.14.4,
  numpydantic 2.0.0, pillow 13.0.0, tokenizers 0.21.4. Full ``pip freeze`` of the venv: annotated-types 0.8.0,
  certifi 2026.10.19.post1, charset-normalizer 3.5.3, filelock 4.3.1, fsspec 2026.9.0, hf-xet 1.8.0,
  huggingface_hub 0.36.2, idna 3.20, Jinja2 3.1.6, MarkupSafe 3.0.4, mpmath 1.3.0, networkx 3.6.1,
  packaging 26.4, pydantic_core 2.50.5, PyYAML 6.0.4, regex 2026.11.19, requests 2.34.2, sympy 1.14.0,
  tqdm 4.70.1, typing-inspection 0.4.5, typing_extensions 4.16.0, urllib3 2.8.0. The versions are also
  written to each ``fixture.json`` (``versions``). Running it again gives byte-identical files.

How the venv was made (exactly)
-------------------------------
::

    # 1. the pinned source (stored snapshot of Physical-Intelligence/openpi), unpacked to /tmp/openpi-src
    mkdir -p /tmp/openpi-src
    git --git-dir=<mirror>/Physical-Intelligence+openpi/repo archive 15a9616a | tar -x -C /tmp/openpi-src
    # 2. the venv, outside the repo
    python3.11 -m venv /tmp/openpi-venv
    /tmp/openpi-venv/bin/pip install torch==2.13.0            # the local CPU wheel
    /tmp/openpi-venv/bin/pip install transformers==4.53.2 safetensors numpy sentencepiece \\
        pydantic numpydantic pillow
    # 3. openpi's transformers patches (adaRMS, activation precision, the read-only KV cache)
    cp -r /tmp/openpi-src/src/openpi/models_pytorch/transformers_replace/* \\
        /tmp/openpi-venv/lib/python3.11/site-packages/transformers/
    # 4. the fixtures (openpi itself is NOT pip-installed: its src/ is put on sys.path)
    nice -n 19 /tmp/openpi-venv/bin/python scripts/make_openpi_fixtures.py \\
        --openpi-src /tmp/openpi-src --out test/fixtures

What is used from openpi, and what is stubbed (only in this process)
--------------------------------------------------------------------
Imported unchanged from the pinned tree: ``models_pytorch/pi0_pytorch.py`` (``PI0Pytorch``:
prefix / suffix embedding, masks, the Euler loop, ``denoise_step``, the training loss),
``models_pytorch/gemma_pytorch.py`` (``PaliGemmaWithExpertModel``: the joint attention with the
fixed 8 heads, adaRMS, fp32 islands), ``models_pytorch/preprocessing_pytorch.py`` and
``shared/normalize.py`` (``NormStats``, ``save``: the ``norm_stats.json`` format).

Several openpi modules import jax / flax / orbax at the top even where the code used here is plain
numpy or torch. Those are not installed. Instead the needed definitions are compiled from the
pinned source files themselves (``reference_defs``: their AST nodes, unchanged, executed in a
namespace that supplies their imports):

- ``models/tokenizer.py``: ``PaligemmaTokenizer`` (prompt cleaning, pi05 state digitising,
  BOS, the separate ``"\\n"``, padding). Its ``download.maybe_download`` of
  ``gs://big_vision/paligemma_tokenizer.model`` returns the substitute tokenizer instead;
- ``transforms.py``: ``Normalize``, ``Unnormalize``, ``PadStatesAndActions``, ``pad_to_dim``;
- ``shared/image_tools.py``: ``resize_with_pad_torch`` (as the module ``openpi.shared.image_tools``,
  for ``preprocessing_pytorch``);
- ``packages/openpi-client/src/openpi_client/image_tools.py``: ``resize_with_pad`` (PIL), what
  openpi's ``ResizeImages`` transform applies to camera frames that are not at the model size;
- ``models/gemma.py``: replaced by a tiny ``get_config`` (openpi hard-codes the real sizes), like
  ``get_gemma_config`` in ``make_lerobot_fixtures.py``.

Also replaced in this process, to build *tiny* models without editing openpi:
``gemma_pytorch.PaliGemmaForConditionalGeneration`` / ``GemmaForCausalLM`` by subclasses whose
``__init__`` first overwrites the sizes openpi hard-codes (vocabulary 257152 -> 1024, SigLIP
``intermediate_size`` 4304, ``projection_dim`` 2048, 224 px), and
``preprocessing_pytorch.preprocess_observation_pytorch`` by the same function with
``image_resolution`` set to the tiny 32 px (its default is 224). The training loss is computed
with ``train=False`` preprocessing (no random augmentation); everything else is openpi's code.

The checkpoint is written as ``examples/convert_jax_model_to_pytorch.py`` writes one: the whole
model cast to bfloat16 (its default ``--precision``) and saved with
``safetensors.torch.save_model`` (tied weights deduplicated), ``config.json`` with the same five
keys, and ``assets/<asset_id>/norm_stats.json`` written by openpi's ``normalize.save``. The
reference outputs come from a fresh ``PI0Pytorch`` built in float32 that loads that file with
``safetensors.torch.load_model`` (as ``BaseModelConfig.load_pytorch`` does), i.e. float32
arithmetic on the bf16-representable weights.

Tokenizer: the substitute PaliGemma-layout SentencePiece model of the LeRobot fixtures
(``test/fixtures/lerobot_tokenizer/tokenizer.model``, see the README): openpi's tokenizer is
SentencePiece, so that file is what ``PaligemmaTokenizer`` loads. Its ids are not PaliGemma's.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import math
import shutil
import sys
import types
from pathlib import Path

OPENPI_COMMIT = "15a9616a00943ada6c20a0f158e3adb39df2ccac"

# Tiny sizes: the LeRobot fixtures' (8 query heads / 1 KV head, because openpi reshapes the joint
# attention output with a hard-coded 8 heads; SigLIP head_dim 72 as in So400m).
ARCH = {
    "vlm": {"width": 48, "depth": 2, "mlp_dim": 96, "num_heads": 8, "num_kv_heads": 1, "head_dim": 16},
    "expert": {"width": 32, "depth": 2, "mlp_dim": 64, "num_heads": 8, "num_kv_heads": 1, "head_dim": 16},
    "siglip": {
        "hidden_size": 144,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 96,
        "patch_size": 8,
        "image_size": 32,
        "projection_dim": 48,  # = vlm width
        "projector_hidden_act": "gelu_fast",
    },
    "vocab_size": 1024,
    "image_token_index": 1024,
}
MODEL_ACTION_DIM = 32  # openpi's Pi0Config.action_dim (state and actions are padded to it)
CHUNK = 10  # action_horizon
STATE_DIM = 8
ACTION_DIM = 7
NUM_STEPS = 10
MAX_TOKEN_LEN = {"pi0": 48, "pi05": 200}  # Pi0Config's defaults
IMAGE_KEYS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")  # openpi's slots, in order
ASSET_ID = "tiny/libero_like"  # a slash, as in physical-intelligence/libero
SEED = 4321
B = 2

CASES = {
    # name: (cameras present, tasks)
    "two_cameras": (("base_0_rgb", "left_wrist_0_rgb"),
                    ["pick up the red block", "open the top drawer and put the cup in it"]),
    "three_cameras": (IMAGE_KEYS, ["pick up the red block", "open the top drawer and put the cup in it"]),
    # openpi cleans the text (strip, '_' -> ' ', '\n' -> ' ') before tokenizing
    "raw_prompt": (("base_0_rgb", "left_wrist_0_rgb"),
                   ["  pick_up the red block\n", "open_the top drawer\nand put the cup in it "]),
    # the base camera at 45x70: openpi's ResizeImages (PIL bilinear, black padding) brings it to 32x32
    "resized_base_camera": (("base_0_rgb", "left_wrist_0_rgb"),
                            ["pick up the red block", "open the top drawer and put the cup in it"]),
}
RAW_BASE_SHAPE = (45, 70)  # resized_base_camera: H, W; a ratio of 2.1875, so 45 rows become int(20.57) = 20


# =======================================================================================
# the reference, loaded from the pinned tree
# =======================================================================================
def reference_defs(path: Path, names: list[str], namespace: dict) -> dict:
    """Compile the top-level definitions `names` of a reference source file, unchanged, into `namespace`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    picked, found = [], set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined = {node.name}
        elif isinstance(node, ast.Assign):
            defined = {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined = {node.target.id}
        else:
            continue
        if defined & set(names):
            picked.append(node)
            found |= defined
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"{path}: definitions {missing} not found (wrong openpi commit?)")
    exec(compile(ast.Module(body=picked, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace


@dataclasses.dataclass(frozen=True)
class TinyGemmaConfig:
    """The fields of openpi's ``gemma.Config`` that the PyTorch model reads."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


def load_openpi(src: Path, tokenizer_model: Path) -> types.SimpleNamespace:
    """Import openpi's PyTorch model with the stubs described in the module docstring."""
    import logging
    import os

    import numpy as np
    import sentencepiece
    import torch
    import torch.nn.functional as F  # noqa: N812

    root = src / "src" / "openpi"
    sys.path.insert(0, str(src / "src"))
    import openpi.models
    import openpi.shared

    # models/gemma.py (flax): the tiny sizes for both variant names
    gemma = types.ModuleType("openpi.models.gemma")
    gemma.Config = TinyGemmaConfig
    gemma.get_config = lambda variant: TinyGemmaConfig(**(ARCH["vlm"] if variant == "gemma_2b" else ARCH["expert"]))
    sys.modules["openpi.models.gemma"] = gemma
    openpi.models.gemma = gemma

    # shared/image_tools.py (jax at the top): its torch function, from the pinned file
    image_tools = types.ModuleType("openpi.shared.image_tools")
    ns = {"torch": torch, "F": F}
    reference_defs(root / "shared" / "image_tools.py", ["resize_with_pad_torch"], ns)
    image_tools.resize_with_pad_torch = ns["resize_with_pad_torch"]
    sys.modules["openpi.shared.image_tools"] = image_tools
    openpi.shared.image_tools = image_tools

    import openpi.shared.normalize as normalize
    from openpi.models_pytorch import gemma_pytorch, pi0_pytorch, preprocessing_pytorch

    # tokenizer.py (jax, orbax at the top): PaligemmaTokenizer, loading the substitute model
    download = types.SimpleNamespace(maybe_download=lambda url, **kw: Path(tokenizer_model))
    tok_ns = reference_defs(root / "models" / "tokenizer.py", ["PaligemmaTokenizer"],
                            {"logging": logging, "os": os, "np": np, "sentencepiece": sentencepiece,
                             "download": download})

    # transforms.py (flax, jax at the top): normalisation and padding
    class _PyTree:
        def __class_getitem__(cls, item):
            return object

    at = types.SimpleNamespace(PyTree=_PyTree)
    tr_ns = reference_defs(
        root / "transforms.py", ["pad_to_dim", "Normalize", "Unnormalize", "PadStatesAndActions"],
        {"dataclasses": dataclasses, "np": np, "at": at, "DataTransformFn": object, "DataDict": dict,
         "NormStats": normalize.NormStats, "Sequence": list},
    )

    # tiny sizes in place of the ones gemma_pytorch hard-codes
    orig_pali, orig_causal = gemma_pytorch.PaliGemmaForConditionalGeneration, gemma_pytorch.GemmaForCausalLM

    class TinyPali(orig_pali):
        def __init__(self, config):
            vc = config.vision_config
            for k, v in ARCH["siglip"].items():
                setattr(vc, k, v)
            config.projection_dim = ARCH["siglip"]["projection_dim"]
            config.hidden_size = ARCH["vlm"]["width"]
            config.text_config.num_image_tokens = (vc.image_size // vc.patch_size) ** 2
            config._vocab_size = ARCH["vocab_size"]  # noqa: SLF001
            try:
                config.vocab_size = ARCH["vocab_size"]
            except AttributeError:  # a read-only property in some transformers versions
                pass
            config.text_config.vocab_size = ARCH["vocab_size"]
            config.image_token_index = ARCH["image_token_index"]
            super().__init__(config)

    class TinyCausal(orig_causal):
        def __init__(self, config, **kwargs):
            config.vocab_size = ARCH["vocab_size"]
            super().__init__(config, **kwargs)

    gemma_pytorch.PaliGemmaForConditionalGeneration = TinyPali
    gemma_pytorch.GemmaForCausalLM = TinyCausal
    orig_pre = preprocessing_pytorch.preprocess_observation_pytorch
    size = (ARCH["siglip"]["image_size"],) * 2

    def tiny_preprocess(observation, *, train=False, **kw):
        return orig_pre(observation, train=train, image_resolution=size, **kw)

    preprocessing_pytorch.preprocess_observation_pytorch = tiny_preprocess
    import PIL.Image

    client_ns = reference_defs(src / "packages" / "openpi-client" / "src" / "openpi_client" / "image_tools.py",
                               ["resize_with_pad", "_resize_with_pad_pil"], {"np": np, "Image": PIL.Image})
    return types.SimpleNamespace(pi0_pytorch=pi0_pytorch, normalize=normalize,
                                 resize_with_pad=client_ns["resize_with_pad"],
                                 PaligemmaTokenizer=tok_ns["PaligemmaTokenizer"], transforms=types.SimpleNamespace(**{
                                     k: tr_ns[k] for k in ("pad_to_dim", "Normalize", "Unnormalize",
                                                           "PadStatesAndActions")}))


# =======================================================================================
# data
# =======================================================================================
def randomize_parameters(module, gen) -> None:
    """Seeded, non-trivial values for every parameter (the rule of make_lerobot_fixtures.py).

    openpi / transformers init puts zeros in the norms and the adaRMS ``dense`` layers, which
    would hide bugs."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                if name.endswith("bias"):
                    v = torch.randn(p.shape, generator=gen) * 0.05
                elif "vision_tower" in name:  # SigLIP LayerNorm weight (applied directly)
                    v = 1.0 + torch.randn(p.shape, generator=gen) * 0.1
                else:  # Gemma RMSNorm weight, applied as (1 + w)
                    v = torch.randn(p.shape, generator=gen) * 0.1
            elif "embed_tokens" in name or "lm_head" in name:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1])
            elif "position_embedding" in name:
                v = torch.randn(p.shape, generator=gen) * 0.2
            else:
                fan_in = p[0].numel()
                gain = 0.5 if ".dense." in name else 1.0  # adaRMS modulation (scale, shift, gate)
                v = torch.randn(p.shape, generator=gen) * gain / math.sqrt(fan_in)
            p.copy_(v.to(p.dtype))


def make_stats(gen, normalize):
    """Non-trivial per-dim stats (all four fields, as openpi's compute_norm_stats writes them)."""
    import torch

    out = {}
    for key, dim in (("state", STATE_DIM), ("actions", ACTION_DIM)):
        mean = torch.rand(dim, generator=gen, dtype=torch.float64) * 2 - 1
        std = 0.5 + torch.rand(dim, generator=gen, dtype=torch.float64) * 1.5
        q01 = mean - (1.5 + torch.rand(dim, generator=gen, dtype=torch.float64)) * std
        q99 = mean + (1.5 + torch.rand(dim, generator=gen, dtype=torch.float64)) * std
        out[key] = normalize.NormStats(mean=mean.numpy(), std=std.numpy(), q01=q01.numpy(), q99=q99.numpy())
    return out


def tensor_manifest(tensors: dict) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in tensors.items()}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# =======================================================================================
# generate
# =======================================================================================
def generate(args: argparse.Namespace) -> None:
    import numpy as np
    import safetensors
    import safetensors.torch
    import torch
    import transformers

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    tok_model = Path(args.tokenizer)
    ref = load_openpi(Path(args.openpi_src), tok_model)
    T = ref.transforms
    from transformers.models.siglip import check

    if not check.check_whether_transformers_replace_is_installed_correctly():
        raise SystemExit("openpi's transformers_replace files are not installed in this venv (see the docstring)")
    versions = {
        "openpi_commit": OPENPI_COMMIT,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__ + " + openpi transformers_replace",
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "tokenizer": f"substitute SentencePiece model, sha256 {file_sha256(tok_model)}",
    }

    for kind in ("pi0", "pi05"):
        pi05 = kind == "pi05"
        gen = torch.Generator().manual_seed(SEED + (0 if kind == "pi0" else 1))
        model_cfg = types.SimpleNamespace(
            pi05=pi05, paligemma_variant="gemma_2b", action_expert_variant="gemma_300m", dtype="float32",
            action_dim=MODEL_ACTION_DIM, action_horizon=CHUNK, max_token_len=MAX_TOKEN_LEN[kind],
            pytorch_compile_mode=None,
        )
        model = ref.pi0_pytorch.PI0Pytorch(model_cfg)
        randomize_parameters(model, gen)
        stats = make_stats(gen, ref.normalize)
        use_quantiles = pi05  # openpi's data configs: use_quantile_norm = model_type != PI0

        fixture_dir = out / f"openpi_{kind}"
        ckpt = fixture_dir / "checkpoint"
        if fixture_dir.exists():
            shutil.rmtree(fixture_dir)
        ckpt.mkdir(parents=True)
        # exactly what convert_jax_model_to_pytorch.py writes (default precision bfloat16)
        model = model.to(torch.bfloat16)
        safetensors.torch.save_model(model, str(ckpt / "model.safetensors"))
        config_dict = {
            "action_dim": MODEL_ACTION_DIM,
            "action_horizon": CHUNK,
            "paligemma_variant": "gemma_2b",
            "action_expert_variant": "gemma_300m",
            "precision": "bfloat16",
        }
        with open(ckpt / "config.json", "w") as f:
            json.dump(config_dict, f, indent=2)
        ref.normalize.save(ckpt / "assets" / ASSET_ID, stats)
        del model

        # Reload as openpi does (BaseModelConfig.load_pytorch), in float32 for the fp32 reference.
        model = ref.pi0_pytorch.PI0Pytorch(model_cfg)
        safetensors.torch.load_model(model, str(ckpt / "model.safetensors"))
        model.eval()
        norm_stats = ref.normalize.load(ckpt / "assets" / ASSET_ID)
        tokenizer = ref.PaligemmaTokenizer(MAX_TOKEN_LEN[kind])

        # ---- hooks: SigLIP inputs, prefix masks, per-step velocities -----------------------
        captured: dict = {}
        pwe = model.paligemma_with_expert
        orig_embed_image = pwe.embed_image

        def rec_image(img, _orig=orig_embed_image):
            captured.setdefault("images", []).append(img.detach().clone())
            return _orig(img)

        pwe.embed_image = rec_image
        orig_prefix = model.embed_prefix

        def rec_prefix(*a, _orig=orig_prefix, **k):
            embs, pad, att = _orig(*a, **k)
            captured["prefix_pad_masks"] = pad.detach().clone()
            captured["prefix_att_masks"] = att.detach().clone()
            return embs, pad, att

        model.embed_prefix = rec_prefix
        orig_denoise = model.denoise_step

        def rec_denoise(state, prefix_pad_masks, past_key_values, x_t, timestep, _orig=orig_denoise):
            v = _orig(state, prefix_pad_masks, past_key_values, x_t, timestep)
            captured.setdefault("x_t", []).append(x_t.detach().clone())
            captured.setdefault("time", []).append(timestep.detach().clone())
            captured.setdefault("v_t", []).append(v.detach().clone())
            return v

        model.denoise_step = rec_denoise

        data_gen = torch.Generator().manual_seed(SEED + 100 + (0 if kind == "pi0" else 1))
        s = norm_stats["state"]
        size = ARCH["siglip"]["image_size"]
        # uint8 HWC at the model size, as openpi's ResizeImages leaves them (no resize here)
        raw_images = {k: torch.randint(0, 256, (B, size, size, 3), generator=data_gen, dtype=torch.uint8)
                      for k in IMAGE_KEYS}
        u = torch.rand((B, STATE_DIM), generator=data_gen, dtype=torch.float64).numpy()
        raw_state = (s.q01 + u * (s.q99 - s.q01)).astype(np.float32)
        raw_state[1, 0] = np.float32(s.q01[0] - 0.3 * s.std[0])  # below q01 (pi05 bin -1)
        raw_state[1, 1] = np.float32(s.q99[1] + 0.3 * s.std[1])  # above q99
        a = norm_stats["actions"]
        raw_actions = (a.mean + a.std * torch.randn((B, CHUNK, ACTION_DIM), generator=data_gen,
                                                    dtype=torch.float64).numpy()
                       ).astype(np.float32)
        noise = torch.randn((B, CHUNK, MODEL_ACTION_DIM), generator=data_gen)
        train_noise = torch.randn((B, CHUNK, MODEL_ACTION_DIM), generator=data_gen)
        train_time = torch.tensor([0.73, 0.21])
        # smooth (so that resampling is meaningful), drawn last so the other cases' data stay as they were
        yy, xx = torch.meshgrid(torch.linspace(0, 1, RAW_BASE_SHAPE[0]), torch.linspace(0, 1, RAW_BASE_SHAPE[1]),
                                indexing="ij")
        phase = torch.rand((B, 1, 1, 3), generator=data_gen) * 6.28
        big_base = ((torch.sin(9 * xx[None, :, :, None] + 5 * yy[None, :, :, None] + phase) * 0.45 + 0.5) * 255).round()
        big_base = (big_base + torch.randint(-12, 13, big_base.shape, generator=data_gen)).clamp(0, 255).to(torch.uint8)

        normalize_fn = T.Normalize._normalize_quantile if use_quantiles else T.Normalize._normalize
        unnormalize_fn = T.Unnormalize._unnormalize_quantile if use_quantiles else T.Unnormalize._unnormalize
        cases_meta = {}
        for case, (cams, tasks) in CASES.items():
            captured.clear()
            case_raw = dict(raw_images)
            if case == "resized_base_camera":
                case_raw["base_0_rgb"] = big_base
            # ---- openpi's input transforms (Normalize, TokenizePrompt, PadStatesAndActions) ---
            norm_state = normalize_fn(None, raw_state, s)  # float64, unpadded
            norm_actions = normalize_fn(None, raw_actions, a)
            toks, masks = zip(*(tokenizer.tokenize(t, norm_state[i] if pi05 else None) for i, t in enumerate(tasks)))
            tokens = torch.from_numpy(np.stack(toks).astype(np.int64))
            token_mask = torch.from_numpy(np.stack(masks).astype(bool))
            padded = T.PadStatesAndActions(MODEL_ACTION_DIM)({"state": norm_state, "actions": norm_actions})
            state_t = torch.from_numpy(np.asarray(padded["state"]))  # float64, as Policy.infer passes it
            actions_t = torch.from_numpy(np.asarray(padded["actions"])).to(torch.float32)
            images, image_masks = {}, {}
            for k in IMAGE_KEYS:
                present = k in cams
                u8 = case_raw[k] if present else torch.zeros_like(raw_images[k])  # absent: black, masked
                # ResizeImages(224, 224) in openpi's model transforms; here the tiny model size
                u8 = torch.from_numpy(ref.resize_with_pad(u8.numpy(), size, size))
                # Observation.from_dict (models/model.py), torch uint8 branch
                images[k] = u8.to(torch.float32).permute(0, 3, 1, 2) / 255.0 * 2.0 - 1.0
                image_masks[k] = torch.full((B,), present, dtype=torch.bool)
            observation = types.SimpleNamespace(
                images=images, image_masks=image_masks, state=state_t, tokenized_prompt=tokens,
                tokenized_prompt_mask=token_mask, token_ar_mask=None, token_loss_mask=None,
            )
            with torch.no_grad():
                x = model.sample_actions(torch.device("cpu"), observation, noise=noise.clone(), num_steps=NUM_STEPS)
            x_ts, v_ts = torch.stack(captured["x_t"]), torch.stack(captured["v_t"])
            times = torch.stack(captured["time"])[:, 0]
            # openpi's output transforms: Unnormalize (stats padded to 32), then the robot's first 7 dims
            actions = unnormalize_fn(None, x.numpy(), a)[..., :ACTION_DIM]
            seen_images = captured["images"]
            prefix_pad, prefix_att = captured["prefix_pad_masks"], captured["prefix_att_masks"]

            # ---- training loss (openpi's forward, train=False preprocessing: no augmentation) ---
            orig_pp = model._preprocess_observation  # noqa: SLF001
            model._preprocess_observation = lambda obs, train=True, _o=orig_pp: _o(obs, train=False)  # noqa: SLF001
            with torch.no_grad():
                losses = model.forward(observation, actions_t, noise=train_noise.clone(), time=train_time.clone())
            del model._preprocess_observation  # noqa: SLF001

            tensors = {f"raw.images.{k}": case_raw[k] for k in cams}
            tensors["raw.state"] = torch.from_numpy(raw_state)
            tensors["raw.actions"] = torch.from_numpy(raw_actions)
            tensors["pre.state"] = torch.from_numpy(np.asarray(norm_state))
            tensors["pre.actions"] = torch.from_numpy(np.asarray(norm_actions))
            tensors["pre.tokenized_prompt"] = tokens
            tensors["pre.tokenized_prompt_mask"] = token_mask
            for i, k in enumerate(IMAGE_KEYS):
                tensors[f"model.images.{i}"] = seen_images[i]
                tensors[f"model.image_masks.{i}"] = image_masks[k]
            tensors["model.state"] = state_t
            tensors["model.prefix_pad_masks"] = prefix_pad
            tensors["model.prefix_att_masks"] = prefix_att
            tensors["sample.noise"] = noise
            tensors["sample.time"] = times
            tensors["sample.x_t"] = x_ts
            tensors["sample.v_t"] = v_ts
            tensors["sample.actions_padded"] = x
            tensors["sample.actions"] = torch.from_numpy(np.asarray(actions))
            tensors["train.noise"] = train_noise
            tensors["train.time"] = train_time
            tensors["train.actions_padded"] = actions_t
            tensors["train.losses"] = losses
            tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            fname = f"case_{case}.safetensors"
            safetensors.torch.save_file(tensors, str(fixture_dir / fname), metadata={"openpi_commit": OPENPI_COMMIT})
            cases_meta[case] = {
                "file": fname,
                "cameras_present": list(cams),
                "tasks": tasks,
                "loss": losses.mean().item(),
                "loss_first_7_dims": losses[..., :ACTION_DIM].mean().item(),
                "actions_abs_max": float(np.abs(actions).max()),
                "tensors": tensor_manifest(tensors),
            }

        saved = safetensors.torch.load_file(str(ckpt / "model.safetensors"))
        meta = {
            "generator": "scripts/make_openpi_fixtures.py",
            "policy_type": kind,
            "versions": versions,
            "seed": SEED,
            "architecture": ARCH,
            "action_horizon": CHUNK,
            "state_dim": STATE_DIM,
            "action_dim": ACTION_DIM,
            "model_action_dim": MODEL_ACTION_DIM,
            "num_inference_steps": NUM_STEPS,
            "max_token_len": MAX_TOKEN_LEN[kind],
            "image_keys": list(IMAGE_KEYS),
            "asset_id": ASSET_ID,
            "normalization": "quantile" if use_quantiles else "mean_std",
            "checkpoint_config": config_dict,
            "checkpoint_files": {
                p.relative_to(ckpt).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
                for p in sorted(ckpt.rglob("*")) if p.is_file()
            },
            "model_safetensors_keys": tensor_manifest(saved),
            "cases": cases_meta,
        }
        (fixture_dir / "fixture.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        print(f"{kind}: wrote {fixture_dir} ({len(saved)} tensors)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--openpi-src", required=True, help="pristine openpi tree at the pinned commit")
    ap.add_argument("--out", default="test/fixtures")
    ap.add_argument("--tokenizer", default="test/fixtures/lerobot_tokenizer/tokenizer.model",
                    help="SentencePiece model handed to openpi's PaligemmaTokenizer")
    generate(ap.parse_args())


if __name__ == "__main__":
    main()
