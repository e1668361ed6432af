#!/usr/bin/env python3
"""Generate golden SmolVLA fixtures from the reference implementation (LeRobot).

Like ``scripts/make_lerobot_fixtures.py`` (pi0 / pi05), this script is NOT part of the vla_ros
package and never imports it. It runs in the same throw-away reference venv and writes small
fp32 fixtures under ``test/fixtures/lerobot_smolvla/`` (see ``test/fixtures/README.md``).

Reference pinned
----------------
- LeRobot commit ``7427f31801f944f5ec9ce53cda02862ce7d1638b`` (as for pi0 / pi05), transformers
  5.5.4, torch 2.13.0+cpu, CPython 3.11.7. The venv is made exactly as the docstring of
  ``scripts/make_lerobot_fixtures.py`` says (steps 1-3: source snapshot, venv, ``prepare``);
  SmolVLA needs no extra package beyond it (its ``smolvla`` extra is transformers and
  num2words, and num2words is only imported by the SmolVLM *processor's* video path, which is
  never called here). Then::

      nice -n 19 /tmp/lerobot-venv/bin/python scripts/make_lerobot_smolvla_fixtures.py \\
          --out test/fixtures

What is built
-------------
SmolVLA reads its VLM's config and tokenizer with ``AutoConfig.from_pretrained(vlm_model_name)``
and ``AutoProcessor.from_pretrained(vlm_model_name)``. There is no hub here, so a *tiny* SmolVLM2
directory is written first (``vlm/vla-ros-tests/tiny-smolvlm2/``: a ``SmolVLMConfig`` and a
small byte-level BPE tokenizer trained locally with the SmolVLM special tokens) and the
reference is run with that directory as the relative ``vlm_model_name`` (the working directory is ``vlm/`` while the
model is built, so the saved
``config.json`` names ``vla-ros-tests/tiny-smolvlm2``, not an absolute path). That is also what
a user of ``vla-ros import`` provides: the VLM directory, found under a search path by the
checkpoint's ``vlm_model_name``.

One shim, in this process only: SmolVLA calls ``AutoProcessor.from_pretrained(vlm_model_name)``
only to read two special-token ids off the processor's tokenizer (used when
``add_image_special_tokens`` is true; it is false here). The SmolVLM image processor needs
torchvision and PIL, which the venv does not have, so ``smolvlm_with_expert.AutoProcessor`` is
replaced by an object whose ``from_pretrained`` returns ``tokenizer=AutoTokenizer.from_pretrained``.

Everything else is LeRobot's own code: ``SmolVLAPolicy`` (``load_vlm_weights=False``: the VLM is
built from the config), ``make_smolvla_pre_post_processors``, ``save_pretrained`` /
``from_pretrained``, and the outputs come from the reloaded objects. After construction every
parameter is re-drawn from a seeded generator with non-trivial values (RMSNorm / LayerNorm
weights around 1, biases small), so no layer is an identity.

Tiny sizes (see ``ARCH``): the text model is a Llama with 6 layers of which ``num_vlm_layers``
= 4 are kept (the truncation is exercised), width 48, 4 query / 2 KV heads, head_dim 16 (q_proj
is 48 -> 64: head_dim is not width / heads), RoPE theta 100000 in the VLM config (the reference
ignores it and hard-codes 10000). The expert is 0.75 x 48 = 36 wide with cross-attention layers
every other layer (``self_attn_every_n_layers`` 2). The vision tower takes 64 px images
(SmolVLA's 512 is a config value: ``resize_imgs_with_padding``), patch 8, pixel shuffle 2 ->
16 tokens per camera.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
LEROBOT_COMMIT = "7427f31801f944f5ec9ce53cda02862ce7d1638b"
VLM_NAME = "vla-ros-tests/tiny-smolvlm2"
SEED = 4321

ARCH = {
    "text": {
        "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 6, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
        "max_position_embeddings": 512, "hidden_act": "silu", "tie_word_embeddings": False,
    },
    "vision": {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "patch_size": 8, "image_size": 64, "layer_norm_eps": 1e-6,
    },
    "scale_factor": 2,
    "num_vlm_layers": 4,
    "expert_width_multiplier": 0.75,
    "self_attn_every_n_layers": 2,
    "vocab_size": 384,
}
CHUNK = 10
STATE_DIM = 8  # as the pi0/pi05 fixtures: the 8-joint test profile drives all three
ACTION_DIM = 7
TOKENIZER_MAX_LENGTH = 24
CAMERAS = {  # config order = camera order; raw sizes exercise the top/left padding
    "observation.images.top": (3, 48, 64),  # -> 64 x 48 rows, 16 rows of padding at the top
    "observation.images.wrist": (3, 50, 30),  # -> 64 x 38, 26 columns of padding on the left
}
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>",
           "<global-img>", "<end_of_utterance>"]


def _base_generator():
    """The pi0/pi05 generator's helpers (torchvision stub, stats, manifest): one copy of each."""
    spec = importlib.util.spec_from_file_location("make_lerobot_fixtures", HERE / "make_lerobot_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_tiny_vlm(vlm_dir: Path) -> None:
    """config.json + tokenizer + processor of a tiny SmolVLM2, as a hub snapshot would hold them."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, SmolVLMConfig

    if vlm_dir.exists():
        shutil.rmtree(vlm_dir)
    vlm_dir.mkdir(parents=True)
    words = ("pick up the red green blue block cube bowl plate cup mug and place put it in on into open close "
             "drawer push button left right top bottom stack move grasp lift black white bottle box basket").split()
    import random

    rng = random.Random(SEED)
    corpus = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 10))) + "\n" for _ in range(2000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=ARCH["vocab_size"], special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<end_of_utterance>", pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        extra_special_tokens={"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
                              "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"},
    )
    fast.save_pretrained(str(vlm_dir))
    v = ARCH["vision"]
    text = dict(ARCH["text"], vocab_size=len(fast), model_type="llama", pad_token_id=fast.pad_token_id)
    cfg = SmolVLMConfig(text_config=text, vision_config=dict(v, model_type="smolvlm_vision"),
                        scale_factor=ARCH["scale_factor"], image_token_id=fast.convert_tokens_to_ids("<image>"))
    cfg.save_pretrained(str(vlm_dir))
    print(f"tiny SmolVLM2 ({len(fast)} tokens, transformers {transformers.__version__}) -> {vlm_dir}")


def randomize(module, gen) -> None:
    """Seeded values for every parameter; norm weights (RMSNorm / LayerNorm, applied as w) around 1."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                v = (torch.randn(p.shape, generator=gen) * 0.05 if name.endswith("bias")
                     else 1.0 + torch.randn(p.shape, generator=gen) * 0.1)
            elif "embed_tokens" in name or "lm_head" in name:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1])
            elif "position_embedding" in name:
                v = torch.randn(p.shape, generator=gen) * 0.2
            else:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
            p.copy_(v.to(p.dtype))


def cmd_generate(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    base = _base_generator()
    torch.set_num_threads(1)
    stubbed = base.install_torchvision_stub()
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    os.environ["HF_HUB_OFFLINE"] = "1"

    import safetensors
    import transformers
    from safetensors.torch import load_file, save_file

    out = Path(args.out).resolve()
    fixture_dir = out / "lerobot_smolvla"
    if fixture_dir.exists():
        shutil.rmtree(fixture_dir)
    vlm_root = fixture_dir / "vlm"
    build_tiny_vlm(vlm_root / VLM_NAME)

    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.smolvla import modeling_smolvla, smolvlm_with_expert
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action
    import lerobot.processor.tokenizer_processor as tokproc

    # SmolVLA builds AutoProcessor(vlm_model_name) only to read two special-token ids off its
    # tokenizer (used with add_image_special_tokens, False here). The SmolVLM image processor needs
    # torchvision and PIL, which this venv does not have: hand it the tokenizer alone.
    class _TokenizerOnlyProcessor:
        @staticmethod
        def from_pretrained(name, *a, **k):
            return types.SimpleNamespace(tokenizer=transformers.AutoTokenizer.from_pretrained(name))

    smolvlm_with_expert.AutoProcessor = _TokenizerOnlyProcessor

    gen = torch.Generator().manual_seed(SEED)
    input_features = {k: PolicyFeature(type=FeatureType.VISUAL, shape=s) for k, s in CAMERAS.items()}
    input_features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    size = ARCH["vision"]["image_size"]
    cfg = SmolVLAConfig(
        input_features=input_features, output_features=output_features, chunk_size=CHUNK, n_action_steps=CHUNK,
        resize_imgs_with_padding=(size, size), tokenizer_max_length=TOKENIZER_MAX_LENGTH, vlm_model_name=VLM_NAME,
        load_vlm_weights=False, num_vlm_layers=ARCH["num_vlm_layers"],
        expert_width_multiplier=ARCH["expert_width_multiplier"],
        self_attn_every_n_layers=ARCH["self_attn_every_n_layers"], device="cpu", push_to_hub=False,
    )
    if STATE_DIM != base.STATE_DIM:
        raise SystemExit(f"make_stats of the pi0 generator is sized for {base.STATE_DIM} state dims")
    stats = base.make_stats(gen, "smolvla")

    ckpt = fixture_dir / "checkpoint"
    cwd = os.getcwd()
    os.chdir(vlm_root)  # vlm_model_name is relative to here (the reference reads it at construction)
    try:
        policy = modeling_smolvla.SmolVLAPolicy(cfg)
        randomize(policy, gen)
        policy.eval()
        pre, post = make_smolvla_pre_post_processors(cfg, dataset_stats=stats)
        ckpt.mkdir(parents=True)
        policy.save_pretrained(ckpt)
        pre.save_pretrained(ckpt)
        post.save_pretrained(ckpt)
        policy = modeling_smolvla.SmolVLAPolicy.from_pretrained(str(ckpt))
        policy.eval()
        pre = PolicyProcessorPipeline.from_pretrained(str(ckpt), config_filename="policy_preprocessor.json")
        post = PolicyProcessorPipeline.from_pretrained(
            str(ckpt), config_filename="policy_postprocessor.json",
            to_transition=policy_action_to_transition, to_output=transition_to_policy_action)
    finally:
        os.chdir(cwd)
    # the reference's state dict after reload must be the one it saved (no silent re-init)
    saved = load_file(str(ckpt / "model.safetensors"))
    live = {f"model.{k}" if not k.startswith("model.") else k: v for k, v in policy.state_dict().items()}
    for k, v in saved.items():
        if k in live and not torch.equal(live[k], v):
            raise SystemExit(f"reloaded {k} differs from the saved tensor")

    captured: dict = {}
    orig_tok = tokproc.TokenizerProcessorStep._tokenize_text

    def rec_tok(self, text, _orig=orig_tok):
        captured["tokenizer_texts"] = list(text) if isinstance(text, list) else [text]
        return _orig(self, text)

    tokproc.TokenizerProcessorStep._tokenize_text = rec_tok
    orig_prep = policy.prepare_images

    def rec_images(batch, _orig=orig_prep):
        images, masks = _orig(batch)
        captured["images"] = [i.detach().clone() for i in images]
        return images, masks

    policy.prepare_images = rec_images
    orig_denoise = policy.model.denoise_step

    def rec_denoise(*a, _orig=orig_denoise, **k):
        v = _orig(*a, **k)
        captured.setdefault("x_t", []).append(k["x_t"].detach().clone())
        captured.setdefault("time", []).append(k["timestep"].detach().clone())
        captured.setdefault("v_t", []).append(v.detach().clone())
        return v

    policy.model.denoise_step = rec_denoise

    B = 2
    tasks = ["pick up the red block", "open the drawer and put the cup in it\n"]
    data_gen = torch.Generator().manual_seed(SEED + 100)
    raw_images = {k: torch.rand((B, *s), generator=data_gen) for k, s in CAMERAS.items()}
    st = stats["observation.state"]
    raw_state = st["mean"] + st["std"] * torch.randn((B, STATE_DIM), generator=data_gen)
    at = stats["action"]
    raw_action = at["mean"] + at["std"] * torch.randn((B, CHUNK, ACTION_DIM), generator=data_gen)
    noise = torch.randn((B, CHUNK, cfg.max_action_dim), generator=data_gen)
    train_noise = torch.randn((B, CHUNK, cfg.max_action_dim), generator=data_gen)
    train_time = torch.tensor([0.73, 0.21])

    cases_meta = {}
    for case, cams in {"two_cameras": list(CAMERAS), "missing_wrist_camera": [next(iter(CAMERAS))]}.items():
        captured.clear()
        raw = {k: raw_images[k].clone() for k in cams}
        raw["observation.state"] = raw_state.clone()
        raw["action"] = raw_action.clone()
        raw["task"] = list(tasks)
        batch = pre(raw)
        with torch.no_grad():
            actions_norm = policy.predict_action_chunk({k: v for k, v in batch.items() if k != "action"},
                                                       noise=noise.clone())
        actions = post(actions_norm)
        x_ts, v_ts = torch.stack(captured["x_t"]), torch.stack(captured["v_t"])
        x_final = x_ts[-1] + (-1.0 / cfg.num_steps) * v_ts[-1]
        if not torch.equal(x_final[:, :, :ACTION_DIM], actions_norm):
            raise SystemExit("captured Euler steps do not reproduce the sampled actions")
        with torch.no_grad():
            train_batch = dict(batch)
            losses, loss_dict = policy.forward(train_batch, noise=train_noise.clone(), time=train_time.clone(),
                                               reduction="none")
            elementwise = policy.model.forward(
                captured["images"], [torch.ones(B, dtype=torch.bool)] * len(cams),
                batch["observation.language.tokens"], batch["observation.language.attention_mask"],
                policy.prepare_state(batch), policy.prepare_action(batch), train_noise.clone(), train_time.clone(),
            )[:, :, :ACTION_DIM]
        if (elementwise.mean(dim=(1, 2)) - losses).abs().max() > 1e-7:
            raise SystemExit("elementwise training losses do not average to LeRobot's per-sample loss")
        tensors = {f"raw.{k}": raw_images[k] for k in cams}
        tensors.update({
            "raw.observation.state": raw_state, "raw.action": raw_action,
            "pre.observation.state": batch["observation.state"], "pre.action": batch["action"],
            "pre.observation.language.tokens": batch["observation.language.tokens"],
            "pre.observation.language.attention_mask": batch["observation.language.attention_mask"],
            "sample.noise": noise, "sample.time": torch.stack(captured["time"])[:, 0], "sample.x_t": x_ts,
            "sample.v_t": v_ts, "sample.actions_padded": x_final, "sample.actions_normalized": actions_norm,
            "sample.actions": actions, "train.noise": train_noise, "train.time": train_time,
            "train.losses": elementwise, "train.per_sample_loss": losses,
        })
        for i, img in enumerate(captured["images"]):
            tensors[f"model.images.{i}"] = img
        tensors["model.state"] = policy.prepare_state(batch)
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        fname = f"case_{case}.safetensors"
        save_file(tensors, str(fixture_dir / fname), metadata={"lerobot_commit": LEROBOT_COMMIT})
        cases_meta[case] = {"file": fname, "cameras_present": cams, "tasks": tasks,
                            "tokenizer_texts": captured.get("tokenizer_texts"),
                            "actions_abs_max": actions.abs().max().item(), "tensors": base.tensor_manifest(tensors)}
    tokproc.TokenizerProcessorStep._tokenize_text = orig_tok

    meta = {
        "generator": "scripts/make_lerobot_smolvla_fixtures.py",
        "policy_type": "smolvla",
        "versions": {"lerobot_commit": LEROBOT_COMMIT, "python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                     "numpy": np.__version__, "torchvision": "stubbed (not installed)" if stubbed else "installed"},
        "seed": SEED,
        "architecture": ARCH,
        "vlm_model_name": VLM_NAME,
        "chunk_size": CHUNK, "state_dim": STATE_DIM, "action_dim": ACTION_DIM,
        "max_state_dim": cfg.max_state_dim, "max_action_dim": cfg.max_action_dim, "num_steps": cfg.num_steps,
        "tokenizer_max_length": cfg.tokenizer_max_length, "cameras": {k: list(s) for k, s in CAMERAS.items()},
        "normalization_mapping": {k: v.value for k, v in cfg.normalization_mapping.items()},
        "checkpoint_files": {str(p.relative_to(ckpt)): {"bytes": p.stat().st_size, "sha256": base.file_sha256(p)}
                             for p in sorted(ckpt.rglob("*")) if p.is_file()},
        "model_safetensors_keys": base.tensor_manifest(load_file(str(ckpt / "model.safetensors"))),
        "cases": cases_meta,
    }
    (fixture_dir / "fixture.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(f"smolvla: wrote {fixture_dir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="test/fixtures")
    cmd_generate(ap.parse_args())


if __name__ == "__main__":
    main()
