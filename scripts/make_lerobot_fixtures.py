#!/usr/bin/env python3
"""Generate golden pi0 / pi05 fixtures from the reference implementation (LeRobot).

This script is NOT part of the vla_ros package and never imports it. It runs in a
separate, throw-away virtual environment that holds the reference implementation, and
writes small fp32 fixtures under ``test/fixtures/lerobot_pi0/`` and
``test/fixtures/lerobot_pi05/`` (see ``test/fixtures/README.md`` for every key and shape).

Reference pinned
----------------
- LeRobot: github.com/huggingface/lerobot at commit
  ``7427f31801f944f5ec9ce53cda02862ce7d1638b`` (2026-08-23, "fix(tests): fix peft cli test (#4477)").
- transformers 5.5.4 (LeRobot pins ``transformers>=5.4,<5.6``), torch 2.13.0+cpu,
  safetensors 0.8.0, numpy 2.2.6, tokenizers 0.22.2, sentencepiece 0.2.3, protobuf 7.36.2,
  draccus 0.11.6, einops 0.8.2, huggingface-hub 1.33.0, gymnasium 1.4.0; CPython 3.11.7.
  Full ``pip freeze`` of the venv: annotated-doc 0.0.7, annotated-types 0.8.0, anyio 4.16.0,
  certifi 2026.10.19.post1, click 8.5.1, cloudpickle 3.1.3, Farama-Notifications 0.0.6,
  filelock 4.3.1, fsspec 2026.9.0, h11 0.16.0, hf-xet 1.8.0, httpcore 1.0.9, httpx 0.28.1,
  idna 3.20, Jinja2 3.1.6, markdown-it-py 4.3.0, MarkupSafe 3.0.4, mdurl 0.1.2, mergedeep 1.3.4,
  mpmath 1.3.0, mypy_extensions 1.2.0, networkx 3.6.1, packaging 25.0, pydantic 2.14.4,
  pydantic_core 2.50.5, Pygments 2.21.0, PyYAML 6.0.4, regex 2026.11.19, rich 15.0.0,
  shellingham 1.5.4, sympy 1.14.0, termcolor 3.3.0, toml 0.10.2, tqdm 4.70.1, typer 0.29.2,
  typing-inspect 0.9.0, typing-inspection 0.4.5, typing_extensions 4.16.0.

How the venv was made (exactly)
-------------------------------
LeRobot at that commit declares ``requires-python >= 3.12``; the only torch wheel available
here is cp311, so the reference runs on 3.11 after a mechanical rewrite of the 8 lines of
3.12-only syntax (PEP 695 generics / ``type`` aliases; no behaviour change)::

    # 1. the pinned source (stored snapshot of huggingface/lerobot), unpacked to /tmp/lerobot-src
    git --git-dir=<mirror>/huggingface+lerobot/repo archive 7427f318 | tar -x -C /tmp/lerobot-src
    # 2. the venv, outside the repo
    python3.11 -m venv /tmp/lerobot-venv
    /tmp/lerobot-venv/bin/pip install torch==2.13.0            # the local CPU wheel
    /tmp/lerobot-venv/bin/pip install "transformers>=5.5,<5.6" safetensors "numpy>=2.0,<2.3" \
        einops "draccus>=0.11.6,<0.12" "packaging<26" termcolor tqdm sentencepiece protobuf \
        "gymnasium>=1.1.1,<2"   # LeRobot's save_pretrained imports lerobot.envs -> gymnasium
    # 3. a patched copy of the source, put on the venv's path (LeRobot itself is NOT pip-installed)
    /tmp/lerobot-venv/bin/python scripts/make_lerobot_fixtures.py prepare \
        --src /tmp/lerobot-src --dst /tmp/lerobot-py311
    echo /tmp/lerobot-py311/src > /tmp/lerobot-venv/lib/python3.11/site-packages/lerobot_src.pth
    # 4. the fixtures
    nice -n 19 /tmp/lerobot-venv/bin/python scripts/make_lerobot_fixtures.py generate \
        --lerobot-src /tmp/lerobot-src --out test/fixtures

``prepare`` copies the tree, rewrites the 8 lines (see ``PY311_REWRITES``) and empties
``src/lerobot/policies/__init__.py`` (it eagerly imports every policy's config, several of
which need packages that are not installed). torchvision is not installed (PyPI torchvision
does not load beside the local torch wheel); ``generate`` installs an import-time stub for it
(``lerobot.transforms`` imports it at module level; pi0/pi05 never call it).

What is changed at run time (and only in this process)
------------------------------------------------------
LeRobot hard-codes the real sizes. To build *tiny* reference models without editing LeRobot,
``generate`` replaces three names inside ``modeling_pi0`` / ``modeling_pi05``:

- ``get_gemma_config``: returns the tiny Gemma sizes below for both variants names;
- ``PaliGemmaForConditionalGenerationWithPiGemma``: a subclass whose ``__init__`` first
  overwrites the SigLIP sizes (LeRobot hard-codes intermediate_size 4304 and
  projection_dim 2048) and shrinks the vocabulary (257152 -> 1024 rows);
- ``PiGemmaForCausalLM``: a subclass that shrinks the expert's (unused) vocabulary.

Everything else (attention with the fixed 8 heads, masks, adaRMS, Euler loop, processors,
``save_pretrained``) is LeRobot's own code. After construction every parameter is
re-drawn from a seeded generator with non-trivial values (LeRobot / transformers init puts
zeros in the norms and the adaRMS ``dense`` layers, which would hide bugs).

Tokenizer
---------
LeRobot's pi0/pi05 preprocessors load ``google/paligemma-3b-pt-224`` (gated; no hub here).
Instead a *substitute* Gemma-layout SentencePiece BPE model is trained here (1024 pieces:
``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3, ``<mask>``=4, ``"\\n"``=5, byte fallback,
split digits, no dummy prefix, identity normalisation: the PaliGemma/Gemma settings), converted
by transformers into its ``GemmaTokenizer`` (tokenizer.json), and handed to LeRobot's unmodified
``TokenizerProcessorStep(tokenizer_name="google/paligemma-3b-pt-224", ...)`` through a shim of
``AutoTokenizer.from_pretrained`` for that one name. LeRobot then saves it itself as the
``tokenizer/`` artifact of the preprocessor. The SentencePiece ``.model`` is kept in
``test/fixtures/lerobot_tokenizer/`` so both formats can be tested for identical ids.

Transformers' own pi0
---------------------
For pi0, ``generate`` also builds ``transformers.PI0ForConditionalGeneration`` with the same
tiny sizes, loads the LeRobot ``model.safetensors`` through its conversion mapping, runs the
same inputs and noise, and records the result in ``fixture.json`` (``transformers_pi0``).
Found with transformers 5.5.4: (1) LeRobot's own save (keys prefixed ``model.``) does not map:
79 missing / 80 unexpected keys, because the mapping is anchored at ``^paligemma_with_expert``;
(2) with the prefix stripped every key loads, but the mapping renames ``paligemma.lm_head``
onto the VLM ``embed_tokens``, and LeRobot saves an *untied* lm_head, so the actions differ
(~1.0); (3) with that lm_head also dropped, 10-step actions agree to ~1.6e-5 max abs and the
elementwise training losses to ~1e-4 (not investigated; presumably float32 vs float64
time angles and sdpa vs eager attention).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

LEROBOT_COMMIT = "7427f31801f944f5ec9ce53cda02862ce7d1638b"
PALIGEMMA_TOKENIZER_NAME = "google/paligemma-3b-pt-224"

# (file relative to src/lerobot, old text, new text). 8 changed source lines in all.
PY311_REWRITES = [
    (
        "processor/pipeline.py",
        "@dataclass\nclass DataProcessorPipeline[TInput, TOutput](HubMixin):",
        "from typing import TypeVar, Generic\nTInput = TypeVar('TInput'); TOutput = TypeVar('TOutput')\n"
        "@dataclass\nclass DataProcessorPipeline(HubMixin, Generic[TInput, TOutput]):",
    ),
    (
        "datasets/streaming_dataset.py",
        "class Backtrackable[T]:",
        "from typing import TypeVar, Generic\nT = TypeVar('T')\nclass Backtrackable(Generic[T]):",
    ),
    (
        "utils/io_utils.py",
        "def deserialize_json_into_object[T: JsonLike](fpath: Path, obj: T) -> T:",
        "from typing import TypeVar\nT = TypeVar('T', bound=JsonLike)\n"
        "def deserialize_json_into_object(fpath: Path, obj: T) -> T:",
    ),
    ("motors/motors_bus.py", "type NameOrID = str | int", "NameOrID = str | int"),
    ("motors/motors_bus.py", "type Value = int | float", "Value = int | float"),
    ("datasets/aggregate.py", "type FeatureDict =", "FeatureDict ="),
    ("datasets/aggregate.py", "type ChunkFile =", "ChunkFile ="),
    ("datasets/aggregate.py", "type VideoIndexState =", "VideoIndexState ="),
]

# ---------------------------------------------------------------------------------------
# Tiny architecture. 8 query heads / 1 KV head are kept because LeRobot reshapes the joint
# attention output with a hard-coded 8 heads. SigLIP keeps So400m's head_dim 72 so that
# "heads = hidden // 72" holds for the tiny model as for the real one. The VLM width 48 is
# not a power of two so that the sqrt(width) embedding scale is not exact in binary.
# ---------------------------------------------------------------------------------------
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
CHUNK = 10
STATE_DIM = 8
ACTION_DIM = 7
CAMERAS = {  # JSON / config order = camera order. Raw sizes differ from 32x32 on purpose.
    "observation.images.base_0_rgb": (3, 48, 64),  # resized with pad to 32x32 (pad rows top/bottom)
    "observation.images.left_wrist_0_rgb": (3, 32, 32),  # already at the model size
}
SEED = 1234


# =======================================================================================
# prepare
# =======================================================================================
def cmd_prepare(args: argparse.Namespace) -> None:
    src, dst = Path(args.src), Path(args.dst)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    root = dst / "src" / "lerobot"
    for rel, old, new in PY311_REWRITES:
        p = root / rel
        text = p.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{rel}: expected exactly one {old!r}")
        p.write_text(text.replace(old, new))
    (root / "policies" / "__init__.py").write_text("")
    print(f"prepared {dst} ({len(PY311_REWRITES)} rewrites, policies/__init__.py emptied)")


# =======================================================================================
# generate
# =======================================================================================
def install_torchvision_stub() -> bool:
    """Make ``import torchvision[.x]`` succeed with inert placeholders (only if it is absent)."""
    import importlib.machinery
    import types

    try:
        import torchvision  # noqa: F401

        return False
    except Exception:
        pass

    class _Any:
        def __init__(self, *a, **k):
            pass

        def __call__(self, *a, **k):
            raise RuntimeError("torchvision stub called")

    class _Mod(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Any

    class _Finder:
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "torchvision" or fullname.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            m = _Mod(spec.name)
            m.__path__ = []
            return m

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, _Finder())
    return True


def build_substitute_tokenizer(lerobot_src: Path, workdir: Path, keep_dir: Path):
    """Train a tiny Gemma-layout SentencePiece model and convert it with transformers."""
    import random

    import sentencepiece as spm
    import transformers

    rng = random.Random(SEED)
    words = (
        "pick up the red green blue block cube bowl plate cup mug and place put it in on into "
        "open close drawer microwave stove turn knob push button left right top bottom middle "
        "stack move grasp lift the black white yellow bottle box basket"
    ).split()
    lines = []
    for _ in range(3000):
        t = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        st = " ".join(str(rng.randint(-1, 255)) for _ in range(STATE_DIM))
        lines.append(f"Task: {t}, State: {st};\nAction: ")
        lines.append(t + "\n")
    # Plain English from the pinned LeRobot docs so that BPE has enough material for 1024 pieces.
    for f in sorted((lerobot_src / "docs" / "source").glob("*.md*"))[:40]:
        lines += [ln for ln in f.read_text(encoding="utf-8").split("\n") if ln.strip()]
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = workdir / "paligemma_substitute"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(prefix),
        vocab_size=ARCH["vocab_size"],
        model_type="bpe",
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=False,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=["<mask>", "\n"],
        num_threads=1,
        minloglevel=2,
    )
    # Drop the absolute work path that the trainer records, so the file does not depend on it.
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(Path(f"{prefix}.model").read_bytes())
    proto.trainer_spec.model_prefix = "paligemma_substitute"
    Path(f"{prefix}.model").write_bytes(proto.SerializeToString())
    spdir = workdir / "spdir"
    spdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(f"{prefix}.model", spdir / "tokenizer.model")
    tok_cfg = {
        "tokenizer_class": "GemmaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "padding_side": "right",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    }
    (spdir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
    converted = transformers.AutoTokenizer.from_pretrained(str(spdir))
    converted.init_kwargs.pop("vocab_file", None)
    clean = workdir / "hf_tokenizer"
    converted.save_pretrained(str(clean))
    tok = transformers.AutoTokenizer.from_pretrained(str(clean))  # tokenizer.json only
    if len(tok) != ARCH["vocab_size"]:
        raise SystemExit(f"substitute tokenizer has {len(tok)} ids, expected {ARCH['vocab_size']}")

    # Keep the SentencePiece model and prove both formats give identical ids (bos + pieces).
    keep_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(f"{prefix}.model", keep_dir / "tokenizer.model")
    shutil.copy(clean / "tokenizer.json", keep_dir / "tokenizer.json")
    shutil.copy(clean / "tokenizer_config.json", keep_dir / "tokenizer_config.json")
    sp = spm.SentencePieceProcessor(model_file=f"{prefix}.model")
    probes = [
        "pick up the red block\n",
        "Task: open the drawer, State: 0 12 255 -1 128 7 99 3;\nAction: ",
        "  two  spaces, Ünïcode ✓ and_underscores\n\n",
    ]
    same = []
    for p in probes:
        a = [sp.bos_id()] + sp.encode(p)
        b = tok(p)["input_ids"]
        same.append({"text": p, "ids": b, "sentencepiece_equal": a == b})
        if a != b:
            raise SystemExit(f"tokenizer.json and tokenizer.model disagree on {p!r}: {a} vs {b}")
    (keep_dir / "probes.json").write_text(json.dumps(same, indent=1, ensure_ascii=False))
    return tok


def make_stats(gen, mode: str):
    """Non-trivial per-dim dataset stats, for state (8) and action (7)."""
    import torch

    stats = {}
    for key, dim in (("observation.state", STATE_DIM), ("action", ACTION_DIM)):
        mean = torch.rand(dim, generator=gen) * 2 - 1
        std = 0.5 + torch.rand(dim, generator=gen) * 1.5
        q01 = mean - (1.5 + torch.rand(dim, generator=gen)) * std
        q99 = mean + (1.5 + torch.rand(dim, generator=gen)) * std
        stats[key] = {
            "mean": mean,
            "std": std,
            "min": q01 - 0.5 * std,
            "max": q99 + 0.5 * std,
            "q01": q01,
            "q99": q99,
            "q10": mean - std,
            "q50": mean + 0.1 * std,
            "q90": mean + std,
        }
    return stats


def randomize_parameters(module, gen) -> None:
    """Seeded, non-trivial values for every parameter (buffers untouched)."""
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


def patch_tiny_sizes(modeling_module) -> None:
    """Swap the size-bearing names in a LeRobot modeling module for tiny versions."""
    orig_pali = modeling_module.PaliGemmaForConditionalGenerationWithPiGemma
    orig_expert = modeling_module.PiGemmaForCausalLM
    GemmaConfig = modeling_module.GemmaConfig

    def tiny_gemma_config(variant: str):
        a = ARCH["vlm"] if variant == "gemma_2b" else ARCH["expert"]
        return GemmaConfig(**a)

    class TinyPali(orig_pali):
        def __init__(self, config):
            vc = config.vision_config
            for k, v in ARCH["siglip"].items():
                setattr(vc, k, v)
            config.projection_dim = ARCH["siglip"]["projection_dim"]
            config.hidden_size = ARCH["vlm"]["width"]
            config.text_config.num_image_tokens = (vc.image_size // vc.patch_size) ** 2
            config._vocab_size = ARCH["vocab_size"]  # noqa: SLF001
            config.vocab_size = ARCH["vocab_size"]
            config.text_config.vocab_size = ARCH["vocab_size"]
            config.image_token_index = ARCH["image_token_index"]
            super().__init__(config)

    class TinyExpert(orig_expert):
        def __init__(self, config, **kwargs):
            config.vocab_size = ARCH["vocab_size"]
            super().__init__(config, **kwargs)

    modeling_module.get_gemma_config = tiny_gemma_config
    modeling_module.PaliGemmaForConditionalGenerationWithPiGemma = TinyPali
    modeling_module.PiGemmaForCausalLM = TinyExpert


def tensor_manifest(tensors: dict) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in tensors.items()}


def file_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def cmd_generate(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    stubbed = install_torchvision_stub()
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    import random

    random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    import safetensors
    import transformers
    from safetensors.torch import load_file, save_file

    import lerobot.processor.tokenizer_processor as tokproc
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi0.processor_pi0 import make_pi0_pre_post_processors
    from lerobot.policies.pi05 import modeling_pi05
    from lerobot.policies.pi05.configuration_pi05 import PI05Config
    from lerobot.policies.pi05.processor_pi05 import make_pi05_pre_post_processors
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action

    out = Path(args.out)
    lerobot_src = Path(args.lerobot_src)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    # ---- tokenizer substitute, injected for the one gated name -------------------------
    substitute = build_substitute_tokenizer(lerobot_src, workdir / "tok", out / "lerobot_tokenizer")
    real_auto = tokproc.AutoTokenizer

    class _AutoTokenizerShim:
        @staticmethod
        def from_pretrained(name, *a, **k):
            if name == PALIGEMMA_TOKENIZER_NAME:
                return substitute
            return real_auto.from_pretrained(name, *a, **k)

    tokproc.AutoTokenizer = _AutoTokenizerShim

    patch_tiny_sizes(modeling_pi0)
    patch_tiny_sizes(modeling_pi05)

    versions = {
        "lerobot_commit": LEROBOT_COMMIT,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "torchvision": "stubbed (not installed)" if stubbed else "installed",
    }

    for kind in ("pi0", "pi05"):
        gen = torch.Generator().manual_seed(SEED + (0 if kind == "pi0" else 1))
        input_features = {k: PolicyFeature(type=FeatureType.VISUAL, shape=s) for k, s in CAMERAS.items()}
        input_features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
        output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
        common = dict(
            input_features=input_features,
            output_features=output_features,
            chunk_size=CHUNK,
            n_action_steps=CHUNK,
            image_resolution=(ARCH["siglip"]["image_size"],) * 2,
            device="cpu",
            dtype="float32",
            push_to_hub=False,
        )
        if kind == "pi0":
            cfg = PI0Config(**common)
            PolicyCls = modeling_pi0.PI0Policy
            make_processors = make_pi0_pre_post_processors
        else:
            cfg = PI05Config(**common)
            PolicyCls = modeling_pi05.PI05Policy
            make_processors = make_pi05_pre_post_processors
        stats = make_stats(gen, kind)

        policy = PolicyCls(cfg)
        randomize_parameters(policy, gen)
        policy.eval()
        pre, post = make_processors(cfg, dataset_stats=stats)

        fixture_dir = out / f"lerobot_{kind}"
        ckpt = fixture_dir / "checkpoint"
        if fixture_dir.exists():
            shutil.rmtree(fixture_dir)
        ckpt.mkdir(parents=True)
        policy.save_pretrained(ckpt)
        pre.save_pretrained(ckpt)
        post.save_pretrained(ckpt)

        # Reload exactly as a user would, and use the reloaded objects for every output.
        policy = PolicyCls.from_pretrained(str(ckpt))
        policy.eval()
        pre = PolicyProcessorPipeline.from_pretrained(str(ckpt), config_filename="policy_preprocessor.json")
        post = PolicyProcessorPipeline.from_pretrained(
            str(ckpt),
            config_filename="policy_postprocessor.json",
            to_transition=policy_action_to_transition,
            to_output=transition_to_policy_action,
        )

        # ---- hooks: texts fed to the tokenizer, model-level images, per-step velocities --
        captured: dict = {}
        orig_tok = tokproc.TokenizerProcessorStep._tokenize_text

        def rec_tok(self, text, _orig=orig_tok):
            captured["tokenizer_texts"] = list(text) if isinstance(text, list) else [text]
            return _orig(self, text)

        tokproc.TokenizerProcessorStep._tokenize_text = rec_tok

        orig_pre_img = policy._preprocess_images

        def rec_images(batch, _orig=orig_pre_img):
            images, masks = _orig(batch)
            captured["images"] = [i.detach().clone() for i in images]
            captured["img_masks"] = [m.detach().clone() for m in masks]
            return images, masks

        policy._preprocess_images = rec_images

        orig_denoise = policy.model.denoise_step

        def rec_denoise(*a, _orig=orig_denoise, **k):
            v = _orig(*a, **k)
            captured.setdefault("x_t", []).append(k["x_t"].detach().clone())
            captured.setdefault("time", []).append(k["timestep"].detach().clone())
            captured.setdefault("v_t", []).append(v.detach().clone())
            return v

        policy.model.denoise_step = rec_denoise

        orig_prefix = policy.model.embed_prefix

        def rec_prefix(*a, _orig=orig_prefix, **k):
            embs, pad, att = _orig(*a, **k)
            captured["prefix_pad_masks"] = pad.detach().clone()
            captured["prefix_att_masks"] = att.detach().clone()
            return embs, pad, att

        policy.model.embed_prefix = rec_prefix

        cases_meta = {}
        B = 2
        tasks = ["pick up the red block", "open_the top drawer and put the cup in it\n"]
        data_gen = torch.Generator().manual_seed(SEED + 100 + (0 if kind == "pi0" else 1))
        raw_images = {k: torch.rand((B, *s), generator=data_gen) for k, s in CAMERAS.items()}
        st = stats["observation.state"]
        # Mostly inside [q01, q99]; two entries outside it (below q01 / above q99) on purpose.
        u = torch.rand((B, STATE_DIM), generator=data_gen)
        raw_state = st["q01"] + u * (st["q99"] - st["q01"])
        raw_state[1, 0] = st["q01"][0] - 0.3 * st["std"][0]
        raw_state[1, 1] = st["q99"][1] + 0.3 * st["std"][1]
        at = stats["action"]
        raw_action = at["mean"] + at["std"] * torch.randn((B, CHUNK, ACTION_DIM), generator=data_gen)
        noise = torch.randn((B, CHUNK, cfg.max_action_dim), generator=data_gen)
        train_noise = torch.randn((B, CHUNK, cfg.max_action_dim), generator=data_gen)
        train_time = torch.tensor([0.73, 0.21])

        case_defs = {
            "two_cameras": list(CAMERAS),
            "missing_wrist_camera": [next(iter(CAMERAS))],
        }
        for case, cams in case_defs.items():
            captured.clear()
            raw = {k: raw_images[k].clone() for k in cams}
            raw["observation.state"] = raw_state.clone()
            raw["action"] = raw_action.clone()
            raw["task"] = list(tasks)
            batch = pre(raw)
            tok_texts = captured.get("tokenizer_texts")

            # ---- inference with injected noise -----------------------------------------
            infer_batch = {k: v for k, v in batch.items() if k != "action"}
            with torch.no_grad():
                actions_norm = policy.predict_action_chunk(infer_batch, noise=noise.clone())
            actions = post(actions_norm)
            x_ts = torch.stack(captured["x_t"])
            times = torch.stack(captured["time"])[:, 0]
            v_ts = torch.stack(captured["v_t"])
            x_final = x_ts[-1] + (-1.0 / cfg.num_inference_steps) * v_ts[-1]
            if not torch.equal(x_final[:, :, :ACTION_DIM], actions_norm):
                raise SystemExit("captured Euler steps do not reproduce the sampled actions")
            images = captured["images"]
            img_masks = captured["img_masks"]
            prefix_pad = captured["prefix_pad_masks"]
            prefix_att = captured["prefix_att_masks"]

            # ---- training loss with fixed noise / time ---------------------------------
            policy.model.sample_noise = lambda shape, device: train_noise.clone()
            policy.model.sample_time = lambda bsize, device: train_time.clone()
            with torch.no_grad():
                per_sample, loss_dict = policy.forward(batch, reduction="none")
                loss_mean, _ = policy.forward(batch, reduction="mean")
                # elementwise losses, truncated to the action dim exactly as LeRobot does
                if kind == "pi0":
                    losses = policy.model.forward(
                        images, img_masks, batch["observation.language.tokens"],
                        batch["observation.language.attention_mask"], policy.prepare_state(batch),
                        policy.prepare_action(batch), train_noise.clone(), train_time.clone(),
                    )[:, :, :ACTION_DIM]
                else:
                    losses = policy.model.forward(
                        images, img_masks, batch["observation.language.tokens"],
                        batch["observation.language.attention_mask"], policy.prepare_action(batch),
                        train_noise.clone(), train_time.clone(),
                    )[:, :, :ACTION_DIM]
            del policy.model.sample_noise, policy.model.sample_time
            if abs(losses.mean().item() - loss_mean.item()) > 1e-7:
                raise SystemExit("elementwise training losses do not average to LeRobot's loss")

            tensors = {}
            for k in cams:
                tensors[f"raw.{k}"] = raw_images[k]
            tensors["raw.observation.state"] = raw_state
            tensors["raw.action"] = raw_action
            tensors["pre.observation.state"] = batch["observation.state"]
            tensors["pre.action"] = batch["action"]
            tensors["pre.observation.language.tokens"] = batch["observation.language.tokens"]
            tensors["pre.observation.language.attention_mask"] = batch["observation.language.attention_mask"]
            for i, (img, m) in enumerate(zip(images, img_masks, strict=True)):
                tensors[f"model.images.{i}"] = img
                tensors[f"model.image_masks.{i}"] = m
            if kind == "pi0":
                tensors["model.state"] = policy.prepare_state(batch)
            tensors["model.prefix_pad_masks"] = prefix_pad
            tensors["model.prefix_att_masks"] = prefix_att
            tensors["sample.noise"] = noise
            tensors["sample.time"] = times
            tensors["sample.x_t"] = x_ts
            tensors["sample.v_t"] = v_ts
            tensors["sample.actions_padded"] = x_final
            tensors["sample.actions_normalized"] = actions_norm
            tensors["sample.actions"] = actions
            tensors["train.noise"] = train_noise
            tensors["train.time"] = train_time
            tensors["train.losses"] = losses
            tensors["train.per_sample_loss"] = per_sample
            tensors["train.loss"] = loss_mean.reshape(())
            tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            fname = f"case_{case}.safetensors"
            save_file(tensors, str(fixture_dir / fname), metadata={"lerobot_commit": LEROBOT_COMMIT})
            cases_meta[case] = {
                "file": fname,
                "cameras_present": cams,
                "tasks": tasks,
                "tokenizer_texts": tok_texts,
                "loss": loss_mean.item(),
                "loss_per_dim": loss_dict["loss_per_dim"],
                "actions_abs_max": actions.abs().max().item(),
                "tensors": tensor_manifest(tensors),
            }

        # ---- transformers' own pi0 ------------------------------------------------------
        hf_report = None
        if kind == "pi0":
            hf_report = transformers_pi0_crosscheck(ckpt, fixture_dir / "case_two_cameras.safetensors")

        meta = {
            "generator": "scripts/make_lerobot_fixtures.py",
            "policy_type": kind,
            "versions": versions,
            "seed": SEED,
            "architecture": ARCH,
            "chunk_size": CHUNK,
            "state_dim": STATE_DIM,
            "action_dim": ACTION_DIM,
            "max_state_dim": cfg.max_state_dim,
            "max_action_dim": cfg.max_action_dim,
            "num_inference_steps": cfg.num_inference_steps,
            "tokenizer_max_length": cfg.tokenizer_max_length,
            "cameras": {k: list(s) for k, s in CAMERAS.items()},
            "normalization_mapping": {k: v.value for k, v in cfg.normalization_mapping.items()},
            "checkpoint_files": {
                str(p.relative_to(ckpt)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
                for p in sorted(ckpt.rglob("*"))
                if p.is_file()
            },
            "model_safetensors_keys": tensor_manifest(load_file(str(ckpt / "model.safetensors"))),
            "cases": cases_meta,
            "transformers_pi0": hf_report,
        }
        (fixture_dir / "fixture.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        tokproc.TokenizerProcessorStep._tokenize_text = orig_tok
        print(f"{kind}: wrote {fixture_dir}")


def transformers_pi0_crosscheck(ckpt: Path, case_file: Path) -> dict:
    """Load the LeRobot pi0 checkpoint into transformers' PI0ForConditionalGeneration."""
    import torch
    import transformers
    from safetensors.torch import load_file, save_file

    report: dict = {"transformers": transformers.__version__}
    try:
        from transformers import GemmaConfig, PaliGemmaConfig, PI0Config, PI0ForConditionalGeneration
    except Exception as e:  # pragma: no cover - older transformers
        report["available"] = False
        report["error"] = repr(e)
        return report
    report["available"] = True
    s = ARCH["siglip"]
    vlm = PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": s["hidden_size"],
            "num_hidden_layers": s["num_hidden_layers"],
            "num_attention_heads": s["num_attention_heads"],
            "intermediate_size": s["intermediate_size"],
            "patch_size": s["patch_size"],
            "image_size": s["image_size"],
            "vision_use_head": False,
        },
        text_config={
            "model_type": "gemma",
            "hidden_size": ARCH["vlm"]["width"],
            "num_hidden_layers": ARCH["vlm"]["depth"],
            "intermediate_size": ARCH["vlm"]["mlp_dim"],
            "num_attention_heads": ARCH["vlm"]["num_heads"],
            "num_key_value_heads": ARCH["vlm"]["num_kv_heads"],
            "head_dim": ARCH["vlm"]["head_dim"],
            "hidden_activation": "gelu_pytorch_tanh",
            "vocab_size": ARCH["vocab_size"],
        },
        projection_dim=s["projection_dim"],
        hidden_size=ARCH["vlm"]["width"],
        vocab_size=ARCH["vocab_size"],
        image_token_index=ARCH["image_token_index"],
    )
    vlm.vision_config.projector_hidden_act = s["projector_hidden_act"]
    dit = GemmaConfig(
        hidden_size=ARCH["expert"]["width"],
        num_hidden_layers=ARCH["expert"]["depth"],
        intermediate_size=ARCH["expert"]["mlp_dim"],
        num_attention_heads=ARCH["expert"]["num_heads"],
        num_key_value_heads=ARCH["expert"]["num_kv_heads"],
        head_dim=ARCH["expert"]["head_dim"],
        hidden_activation="gelu_pytorch_tanh",
        vocab_size=ARCH["vocab_size"],
    )
    cfg = PI0Config(vlm_config=vlm, dit_config=dit, chunk_size=CHUNK)
    # transformers' from_pretrained wants its own config.json; the LeRobot one says "type": "pi0".
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="hf_pi0_"))
    try:
        cfg.save_pretrained(str(tmp))
        sd = load_file(str(ckpt / "model.safetensors"))

        def try_load(state_dict, label):
            save_file(state_dict, str(tmp / "model.safetensors"))
            try:
                m, info = PI0ForConditionalGeneration.from_pretrained(
                    str(tmp), output_loading_info=True, dtype=torch.float32
                )
            except Exception as e:
                report[label] = {"loads": False, "error": repr(e)}
                return None
            report[label] = {
                "loads": True,
                **{f"n_{k}": len(v) for k, v in info.items()},
                **{k: sorted(map(str, v))[:8] for k, v in info.items() if v},
            }
            ok = not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
            return m if ok else None

        t = load_file(str(case_file))
        n_img = (s["image_size"] // s["patch_size"]) ** 2
        B = t["pre.observation.language.tokens"].shape[0]
        ncam = len(CAMERAS)
        img_ids = torch.full((B, n_img * ncam), ARCH["image_token_index"], dtype=torch.long)
        input_ids = torch.cat([img_ids, t["pre.observation.language.tokens"]], dim=1)
        attn = torch.cat(
            [torch.ones(B, n_img * ncam, dtype=torch.long), t["pre.observation.language.attention_mask"].long()],
            dim=1,
        )
        pixel_values = torch.stack([t[f"model.images.{i}"] for i in range(ncam)], dim=1)
        pixel_mask = torch.stack([t[f"model.image_masks.{i}"] for i in range(ncam)], dim=1)
        padded_action = torch.nn.functional.pad(t["pre.action"], (0, 32 - ACTION_DIM))

        def compare(model, label):
            model.eval()
            with torch.no_grad():
                out = model.sample_actions(
                    state=t["model.state"],
                    input_ids=input_ids,
                    pixel_values=pixel_values,
                    noise=t["sample.noise"].clone(),
                    attention_mask=attn,
                    pixel_attention_mask=pixel_mask,
                    num_steps=10,
                )
                o = model(
                    state=t["model.state"],
                    noise=t["train.noise"].clone(),
                    timestep=t["train.time"].clone(),
                    input_ids=input_ids,
                    pixel_values=pixel_values,
                    pixel_attention_mask=pixel_mask,
                    attention_mask=attn,
                    actions=padded_action,
                )
            # transformers' loss averages over all 32 padded dims; compare the truncated part.
            hf_losses = (((t["train.noise"] - padded_action) - o.logits) ** 2)[:, :, :ACTION_DIM]
            report[label]["case"] = case_file.name
            report[label]["sample_actions_max_abs_diff_vs_lerobot"] = (
                (out - t["sample.actions_padded"]).abs().max().item()
            )
            report[label]["train_losses_max_abs_diff_vs_lerobot"] = (
                (hf_losses - t["train.losses"]).abs().max().item()
            )

        # 1) LeRobot's save_pretrained output as it is (keys carry a "model." prefix).
        try_load(sd, "as_saved_by_lerobot")
        # 2) Without the "model." prefix (the layout of the hub checkpoints). transformers' mapping
        #    renames paligemma.lm_head onto the VLM's embed_tokens, so the (different, untied)
        #    lm_head that LeRobot also saved overwrites the real embeddings.
        stripped = {k.removeprefix("model."): v for k, v in sd.items()}
        m = try_load(stripped, "model_prefix_stripped")
        if m is not None:
            compare(m, "model_prefix_stripped")
        # 3) Also without the VLM lm_head: embed_tokens is then loaded as it is.
        stripped.pop("paligemma_with_expert.paligemma.lm_head.weight")
        m = try_load(stripped, "model_prefix_and_vlm_lm_head_stripped")
        if m is not None:
            compare(m, "model_prefix_and_vlm_lm_head_stripped")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="copy LeRobot and rewrite its 3.12-only lines for 3.11")
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    g = sub.add_parser("generate", help="build, save and run the tiny reference policies")
    g.add_argument("--lerobot-src", required=True, help="pristine LeRobot tree (docs used for the tokenizer corpus)")
    g.add_argument("--out", default="test/fixtures")
    g.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp") + "/lerobot_fixture_work")
    args = ap.parse_args()
    {"prepare": cmd_prepare, "generate": cmd_generate}[args.cmd](args)


if __name__ == "__main__":
    main()
