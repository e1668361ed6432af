#!/usr/bin/env python3
"""pi0 / pi05 at their real size: import, load, memory and chunk latency (CPU); vs transformers' pi0 (GPU).

Real pretrained checkpoints are 7-13 GB and cannot be fetched here, so this bench writes random
weights at the real dimensions - SigLIP So400m at 224 px (27 layers, width 1152), Gemma 2B (18
layers, width 2048, vocabulary 257152) and the 300M action expert (width 1024) - in LeRobot's
layout, and then runs what a user runs on a real checkpoint.

CPU part (the default), for pi0 and pi05:
  1. write a LeRobot checkpoint directory: the weights streamed to ``model.safetensors`` in
     bfloat16 (the machine this was written for has 24 GB; fp32 Gemma 2B alone is ~11 GB), with
     the config / processor files and the substitute tokenizer of the golden fixtures;
  2. ``vla-ros import`` it (in a child process: its time and its peak RSS);
  3. load the native checkpoint (another child: load time, peak RSS against the size of the
     loaded weights, goal <= 1.3x), then one 10-step chunk for 1, 2 and 3 cameras.
  Every figure comes from a separate process, so one step's memory never hides another's.

GPU part (``--gpu``; one prepared run, see the README of the device tool): our model in bf16 with
the suffix steps replayed from CUDA graphs, and transformers' `PI0ForConditionalGeneration` with
the *same* weights (mapped by `transformers_pi0_state`, whose table the cross-check test checks
against transformers' own LeRobot conversion) and the same inputs and noise: p50/p99 chunk
latency side by side, their agreement, and the roofline bound of a chunk (FLOPs and bytes of the
prefix pass and of the suffix steps, against the bf16 matmul rate and the copy bandwidth measured
in the same run). ``--device cpu --tiny`` runs that same code at a tiny size as a smoke test.
This part was written without a GPU at hand: on CUDA hardware it has not been run yet (the tiny
CPU smoke test passes, including ours-vs-transformers agreement to 1e-6).

Measured on the 2-core, 24 GB CPU machine (1 torch thread, bf16): the whole default run takes
4-6 minutes; pi0 imports in ~20 s, loads in ~1 s (the weights are mapped; the first chunk reads
them) with a peak RSS of 1.04x the loaded weights, and a 10-step chunk takes 12 / 19 / 28 s for
1 / 2 / 3 cameras.

    python bench/pretrained_bench.py                      # CPU: pi0 + pi05, 1/2/3 cameras (4-6 min, 2 cores)
    python bench/pretrained_bench.py --quick              # CPU: pi0 only, 1 camera
    python bench/pretrained_bench.py --variants pi05 --cameras 2 --threads 1
    python bench/pretrained_bench.py --gpu --iters 50     # GPU side by side (H100/H200)
    python bench/pretrained_bench.py --gpu --device cpu --tiny --iters 2   # smoke test of the GPU code
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a source checkout too

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vla_ros.policy.flow_matching.config import FlowMatchingConfig  # noqa: E402
from vla_ros.policy.imports import keymap  # noqa: E402
from vla_ros.policy.imports.lerobot import GEMMA_VARIANTS, SIGLIP_SO400M  # noqa: E402

FIXTURES = REPO / "test" / "fixtures"
VARIANTS = ("pi0", "pi05")
CAMERA_NAMES = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")  # LeRobot's / openpi's names
REAL_VOCAB = 257152
IMAGE_SIZE = 224
HORIZON = 50
TEXT_TOKENS = {"pi0": 48, "pi05": 200}  # LeRobot's tokenizer_max_length
STATE_DIM, ACTION_DIM = 8, 7  # as the golden fixtures (LIBERO-like); the network pads both to 32
INSTRUCTION = "pick up the black bowl and place it on the plate"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ============================================================================ configurations
def native_config(kind: str, *, cameras: int = 3, tiny: bool = False, horizon: int = HORIZON,
                  vocab: int = REAL_VOCAB) -> FlowMatchingConfig:
    """The native v2 config `vla-ros import` infers for a real LeRobot pi0 / pi05 (``tiny``: toy sizes)."""
    vlm, expert = dict(GEMMA_VARIANTS["gemma_2b"]), dict(GEMMA_VARIANTS["gemma_300m"])
    siglip = {k: v for k, v in SIGLIP_SO400M.items()}
    image = IMAGE_SIZE
    if tiny:  # the golden fixtures' sizes (8 query heads kept, as the reference needs)
        vlm = {"width": 48, "depth": 2, "mlp_dim": 96, "num_heads": 8, "num_kv_heads": 1, "head_dim": 16}
        expert = {**vlm, "width": 32, "mlp_dim": 64}
        siglip = {"hidden_size": 144, "num_hidden_layers": 2, "intermediate_size": 96, "num_attention_heads": 2,
                  "patch_size": 8}
        image, vocab = 32, 1024
    d = {
        "format": "vla_ros.flow_matching", "format_version": 2, "policy_type": "flow_matching",
        "io": {"cameras": list(CAMERA_NAMES[:cameras]), "image_size": image, "state_source": "joints",
               "state_dim": STATE_DIM, "horizon": horizon, "dt": 0.1, "action_mode": "absolute",
               "normalization": "mean_std" if kind == "pi0" else "quantile", "max_text_tokens": TEXT_TOKENS[kind],
               "action_dim": ACTION_DIM, "max_action_dim": 32, "max_state_dim": 32, "prompt": kind,
               "state_token": kind == "pi0", "image_resize": "bilinear", "norm_convention": "lerobot"},
        "backbone": {"family": "gemma", "vocab_size": vocab, "hidden_size": vlm["width"],
                     "intermediate_size": vlm["mlp_dim"],
                     "num_hidden_layers": vlm["depth"], "num_attention_heads": vlm["num_heads"],
                     "num_key_value_heads": vlm["num_kv_heads"], "head_dim": vlm["head_dim"]},
        "expert": {"hidden_size": expert["width"], "intermediate_size": expert["mlp_dim"],
                   "time_conditioning": "fused" if kind == "pi0" else "adarms"},
        "vision": {"kind": "siglip", "siglip": siglip},
        "sampling": {"num_steps": 10, "time_dtype": "float64"},
        "precision": {"float32_modules": ["vision.", "input_layernorm.", "post_attention_layernorm.", "backbone.norm.",
                                          "expert.norm."]},
    }
    return FlowMatchingConfig.from_dict(d)


def parameter_specs(config: FlowMatchingConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(native name, shape) of every tensor of the model, from a build on the meta device (no memory)."""
    from vla_ros.policy.flow_matching.policy import build_model

    model = build_model(config, 0, meta=True)
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


# ============================================================================ key tables
def lerobot_key(native: str) -> str:
    """Native name -> the name LeRobot saves (with its ``model.`` prefix); the inverse of `keymap.lerobot_key`."""
    if native.startswith("vision.tower."):
        src = keymap.VISION_ROOTS[0] + keymap.siglip_key(native[len("vision.tower."):], flat=False)
    else:
        src = next((s + native[len(d):] for s, d in keymap.LEROBOT_PREFIXES if native.startswith(d)), None)
        if src is None:
            raise KeyError(f"{native}: no LeRobot name")
    return "model." + src


# native prefix -> transformers `PI0ForConditionalGeneration` prefix (transformers >= 5.5, models/pi0).
# Its SigLIP tower is the installed SiglipVisionModel, as ours, so the rest of a vision name is equal.
TRANSFORMERS_PI0_PREFIXES: tuple[tuple[str, str], ...] = (
    ("vision.tower.", "model.vlm.vision_tower."),
    ("vision.projector.", "model.vlm.multi_modal_projector.linear."),
    ("backbone.", "model.vlm.language_model."),
    ("expert.", "model.dit."),
    ("heads.state_proj.", "embed_action_time.state_proj."),
    ("heads.action_in_proj.", "embed_action_time.action_in_proj."),
    ("heads.action_time_mlp_in.", "embed_action_time.action_time_mlp_in."),
    ("heads.action_time_mlp_out.", "embed_action_time.action_time_mlp_out."),
    ("heads.action_out_proj.", "action_out_proj."),
)
# transformers' DiT is a whole GemmaModel: it has token embeddings the policy never uses.
TRANSFORMERS_UNUSED = ("model.dit.embed_tokens.weight",)


def transformers_pi0_key(native: str) -> str:
    for src, dst in TRANSFORMERS_PI0_PREFIXES:
        if native.startswith(src):
            return dst + native[len(src):]
    raise KeyError(f"{native}: no transformers PI0 name (pi05's adaRMS expert has no transformers model)")


def transformers_pi0_config(config: FlowMatchingConfig, attn_implementation: str = "sdpa"):
    """A transformers `PI0Config` with the sizes of a native pi0 config (image token = one past the vocabulary)."""
    from transformers import GemmaConfig, PaliGemmaConfig, PI0Config, SiglipVisionConfig

    b, e, v, io = config.backbone, config.expert, config.vision.siglip, config.io
    if config.expert.time_conditioning != "fused" or not io.state_token:
        raise ValueError("transformers' PI0ForConditionalGeneration is pi0 only (a state token, no adaRMS)")
    gemma = dict(num_hidden_layers=b.num_hidden_layers, num_attention_heads=b.num_attention_heads,
                 num_key_value_heads=b.num_key_value_heads, head_dim=b.head_dim, rms_norm_eps=b.rms_norm_eps,
                 rope_theta=b.rope_theta, max_position_embeddings=b.max_position_embeddings,
                 hidden_act="gelu_pytorch_tanh")
    text = GemmaConfig(vocab_size=b.vocab_size, hidden_size=b.hidden_size, intermediate_size=b.intermediate_size,
                       **gemma)
    vision = SiglipVisionConfig(hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
                                num_hidden_layers=v.num_hidden_layers, num_attention_heads=v.num_attention_heads,
                                patch_size=v.patch_size, image_size=io.image_size, layer_norm_eps=v.layer_norm_eps,
                                vision_use_head=False)
    vlm = PaliGemmaConfig(text_config=text, vision_config=vision, projection_dim=b.hidden_size,
                          image_token_id=b.vocab_size)
    dit = GemmaConfig(vocab_size=b.vocab_size, hidden_size=e.hidden_size, intermediate_size=e.intermediate_size,
                      **gemma)
    cfg = PI0Config(vlm_config=vlm, dit_config=dit, chunk_size=io.horizon, max_state_dim=io.max_state_dim,
                    max_action_dim=io.max_action_dim, num_inference_steps=config.sampling.num_steps,
                    min_period=config.sampling.min_period, max_period=config.sampling.max_period)
    cfg._attn_implementation = attn_implementation
    for sub in (cfg.vlm_config, cfg.vlm_config.text_config, cfg.vlm_config.vision_config, cfg.dit_config):
        sub._attn_implementation = attn_implementation
    return cfg


def transformers_pi0_state(native: dict[str, torch.Tensor],
                           dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Our state dict under transformers' PI0 names (shared tensors unless `dtype` converts); its unused
    DiT embeddings as zeros."""
    out = {transformers_pi0_key(k): (v if dtype is None else v.to(dtype)) for k, v in native.items()}
    ref = native["backbone.embed_tokens.weight"]
    width = native["expert.layers.0.input_layernorm.weight"].shape[0]
    out["model.dit.embed_tokens.weight"] = torch.zeros((ref.shape[0], width), dtype=dtype or ref.dtype,
                                                       device=ref.device)
    return out


def transformers_pi0_model(config: FlowMatchingConfig, native: dict[str, torch.Tensor], dtype: torch.dtype,
                           device: torch.device, attn_implementation: str = "sdpa"):
    """`PI0ForConditionalGeneration` built on the meta device and assigned our weights (no copy where dtypes agree)."""
    from transformers import PI0ForConditionalGeneration

    from vla_ros.policy.checkpoint import parameters_on_meta

    with parameters_on_meta():  # parameters on meta; buffers (RoPE, sinusoid frequencies, embed scale) real
        model = PI0ForConditionalGeneration(transformers_pi0_config(config, attn_implementation))
    state = transformers_pi0_state(native, dtype)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise RuntimeError(f"transformers PI0: missing {missing[:5]}, unexpected {unexpected[:5]}")
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:
        raise RuntimeError(f"transformers PI0: parameters left on meta: {left[:5]}")
    return model.to(device).eval()


# ============================================================================ random LeRobot checkpoint
_ST_DTYPES = {torch.bfloat16: ("BF16", 2), torch.float32: ("F32", 4), torch.float16: ("F16", 2)}


def _init_range(name: str) -> tuple[float, float]:
    """Uniform init: LayerNorm weights around 1 (SigLIP), everything else small around 0."""
    if "vision" in name and ("layernorm" in name or "layer_norm" in name) and name.endswith("weight"):
        return 0.9, 1.1
    if name.endswith("embed_tokens.weight"):
        return -0.05, 0.05
    return -0.03, 0.03


def write_random_safetensors(path: Path, specs: list[tuple[str, tuple[int, ...]]], dtype: torch.dtype, *, seed: int = 0,
                             progress: Callable[[int, int], None] | None = None) -> int:
    """Stream random tensors into one safetensors file (header, then each tensor as it is drawn), so
    writing N GB needs one tensor's memory, not N GB. Returns the file size."""
    tag, item = _ST_DTYPES[dtype]
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in specs:
        n = math.prod(shape) * item
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    gen = torch.Generator().manual_seed(seed)
    done = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape in specs:
            lo, hi = _init_range(name)
            t = torch.empty(shape, dtype=dtype).uniform_(lo, hi, generator=gen)
            f.write(memoryview(t.view(torch.uint8 if item == 1 else torch.int16 if item == 2 else torch.int32)
                               .numpy()).cast("B"))
            done += t.numel() * item
            del t
            if progress is not None:
                progress(done, offset)
    return path.stat().st_size


def write_lerobot_checkpoint(out: Path, kind: str, *, cameras: int = 3, dtype: torch.dtype = torch.bfloat16,
                             tiny: bool = False, seed: int = 0, show: bool = True) -> tuple[Path, int]:
    """A LeRobot ``save_pretrained``-style directory at the real size, random weights; -> (dir, weight bytes)."""
    fixture = FIXTURES / f"lerobot_{kind}" / "checkpoint"
    shutil.copytree(fixture, out, ignore=shutil.ignore_patterns("model.safetensors"))
    cfg = json.loads((fixture / "config.json").read_text())
    config = native_config(kind, cameras=cameras, tiny=tiny)
    image = config.io.image_size
    feats = {f"observation.images.{c}": {"type": "VISUAL", "shape": [3, image, image]} for c in config.io.cameras}
    feats["observation.state"] = cfg["input_features"]["observation.state"]
    cfg.update(input_features=feats, image_resolution=[image, image], chunk_size=config.io.horizon,
               n_action_steps=config.io.horizon)
    (out / "config.json").write_text(json.dumps(cfg, indent=4))
    specs = [(lerobot_key(k), s) for k, s in parameter_specs(config)]
    start = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if show and (now - last[0] > 2.0 or done == total):
            last[0] = now
            log(f"  [{kind}] random weights {done / 1e9:5.2f} / {total / 1e9:.2f} GB  ({now - start:4.0f} s)")

    size = write_random_safetensors(out / "model.safetensors", specs, dtype, seed=seed, progress=progress)
    return out, size


# ============================================================================ child processes (CPU part)
def _peak_rss() -> int:
    """VmHWM of this process in bytes (peak resident set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return -1


def _current_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return -1


def child_import(src: str, out: str) -> dict:
    from vla_ros.policy.imports import import_checkpoint

    base = _current_rss()
    t0 = time.perf_counter()
    result = import_checkpoint(src, out)
    return {"seconds": time.perf_counter() - t0, "peak_rss": _peak_rss(), "baseline_rss": base,
            "parameters": result.parameters, "notes": result.notes}


def observation_batch(policy, cameras: int, seed: int = 0):
    """One observation with `cameras` of the checkpoint's cameras (the vision tower and the prefix
    then see exactly that many; the model does not fix the camera count)."""
    from vla_ros.policy.flow_matching.model import ObservationTensors

    io = policy.config.io
    g = torch.Generator().manual_seed(seed)
    images = {c: torch.rand((1, 3, 480, 640), generator=g) for c in io.cameras}
    state = torch.rand((1, io.state_dim), generator=g).numpy() if io.uses_state else None
    full = policy.batch_tensors(images, state, [INSTRUCTION])
    return ObservationTensors(full.images[:, :cameras], full.image_mask[:, :cameras], full.tokens, full.token_mask,
                              full.state)


def child_load(ckpt: str, dtype: str, cameras: list[int], steps: int) -> dict:
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
    from vla_ros.policy.flow_matching.sampler import sample_actions

    base = _current_rss()
    t0 = time.perf_counter()
    policy = FlowMatchingPolicy.load(ckpt, dtype=dtype)
    load_s = time.perf_counter() - t0
    peak = _peak_rss()
    param_bytes = sum(p.numel() * p.element_size() for p in policy.model.parameters())
    buffer_bytes = sum(b.numel() * b.element_size() for b in policy.model.buffers())
    chunks = {}
    io = policy.config.io
    for c in cameras:
        obs = observation_batch(policy, c)
        noise = torch.randn((1, io.horizon, io.max_action_dim), generator=torch.Generator().manual_seed(c))
        t1 = time.perf_counter()
        x = sample_actions(policy.model, obs, noise, steps, traced=False)  # eager cached: what dominates is the matmuls
        chunks[str(c)] = {"seconds": time.perf_counter() - t1, "finite": bool(torch.isfinite(x).all()),
                          "prefix_tokens": int(obs.image_mask.shape[1] * policy.config.tokens_per_camera
                                               + obs.tokens.shape[1])}
        log(f"    {c} camera(s): {chunks[str(c)]['seconds']:.1f} s")
    # safetensors maps the file: pages are resident once read, so the peak that counts is after the
    # chunks have touched every weight (VmHWM includes the file-backed pages)
    return {"seconds": load_s, "peak_rss_load": peak, "peak_rss": _peak_rss(), "baseline_rss": base,
            "param_bytes": param_bytes,
            "buffer_bytes": buffer_bytes, "dtype": str(policy.model.dtype).replace("torch.", ""), "chunks": chunks,
            "checkpoint_id": policy.metadata.checkpoint_id}


def run_child(args: list[str], threads: int) -> dict:
    """This script in a fresh process (`--child ...`); its last stdout line is the JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(threads), "--child", *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(args[:1])} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_part(args: argparse.Namespace) -> dict:
    results = {}
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pretrained_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    dtype = torch.bfloat16 if args.disk_dtype == "bfloat16" else torch.float32
    for kind in args.variants:
        log(f"[{kind}] writing a LeRobot checkpoint with random weights at the real size ({args.disk_dtype} on disk)")
        src, dst = root / f"lerobot_{kind}", root / f"native_{kind}"
        for p in (src, dst):
            if p.exists():
                shutil.rmtree(p)
        t0 = time.perf_counter()
        _, size = write_lerobot_checkpoint(src, kind, cameras=max(args.cameras), dtype=dtype, tiny=args.tiny)
        write_s = time.perf_counter() - t0
        log(f"[{kind}] vla-ros import ({size / 1e9:.2f} GB)")
        imp = run_child(["import", str(src), str(dst)], args.threads)
        log(f"[{kind}] import {imp['seconds']:.1f} s; loading ({args.dtype}) and one {args.steps}-step chunk per "
            "camera count")
        if not args.keep:
            shutil.rmtree(src)
        load = run_child(["load", str(dst), args.dtype, ",".join(map(str, args.cameras)), str(args.steps)],
                         args.threads)
        if not args.keep:
            shutil.rmtree(dst)
        results[kind] = {"weights_file_bytes": size, "write_seconds": write_s, "import": imp, "load": load}
    if not args.keep and not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return results


def print_cpu(results: dict, args: argparse.Namespace) -> None:
    gb = 1e9
    print(f"\nCPU ({os.cpu_count()} cores, {args.threads} torch thread(s)), weights {args.disk_dtype} on disk, "
          f"loaded as {args.dtype}, {args.steps} Euler steps, eager cached sampling")
    print(f"{'':6} {'file GB':>8} {'import s':>9} {'import peak GB':>15} {'load s':>7} {'weights GB':>11} "
          f"{'run peak GB':>12} {'peak/weights':>13}  chunk s by cameras")
    for kind, r in results.items():
        imp, load = r["import"], r["load"]
        w = load["param_bytes"] + load["buffer_bytes"]
        ratio = load["peak_rss"] / w
        chunks = "  ".join(f"{c}: {v['seconds']:.1f}" for c, v in load["chunks"].items())
        print(f"{kind:6} {r['weights_file_bytes'] / gb:8.2f} {imp['seconds']:9.1f} {imp['peak_rss'] / gb:15.2f} "
              f"{load['seconds']:7.1f} {w / gb:11.2f} {load['peak_rss'] / gb:12.2f} {ratio:12.2f}x  {chunks}")
        print(f"{'':6} peak RSS right after load {load['peak_rss_load'] / gb:.2f} GB (weights mapped, not all read "
              f"yet); process baseline before loading {load['baseline_rss'] / gb:.2f} GB (Python, torch, "
              f"transformers); peak minus baseline / weights = {(load['peak_rss'] - load['baseline_rss']) / w:.2f}x; "
              f"import peak / file = {imp['peak_rss'] / r['weights_file_bytes']:.2f}x; "
              f"{imp['parameters'] / 1e9:.2f} B parameters; goal peak/weights <= 1.30x: "
              f"{'met' if ratio <= 1.3 else 'NOT met'}")


# ============================================================================ roofline
@dataclasses.dataclass
class Cost:
    flops: float
    bytes: float

    def __add__(self, o: "Cost") -> "Cost":
        return Cost(self.flops + o.flops, self.bytes + o.bytes)

    def scaled(self, k: float) -> "Cost":
        return Cost(self.flops * k, self.bytes * k)


def _decoder_cost(tokens: int, keys: int, width: int, mlp: int, layers: int, heads: int, kv_heads: int, head_dim: int,
                  wbytes: int, abytes: int) -> Cost:
    """Matmul FLOPs and weight + KV bytes of `tokens` queries through a Gemma decoder attending to `keys` keys."""
    proj = width * heads * head_dim * 2 + width * kv_heads * head_dim * 2  # q, o; k, v
    per_layer_params = proj + 3 * width * mlp  # gated MLP
    flops = layers * (2 * tokens * per_layer_params + 2 * 2 * tokens * keys * heads * head_dim)
    kv = layers * keys * kv_heads * head_dim * 2 * abytes
    return Cost(flops, layers * per_layer_params * wbytes + kv)


def roofline(config: FlowMatchingConfig, cameras: int, text_tokens: int, steps: int, wbytes: int = 2, abytes: int = 2,
             vision_wbytes: int | None = None) -> dict[str, Cost]:
    """Analytic cost of one chunk: the prefix pass (vision tower per camera, projector, backbone) and
    one suffix step (expert over the cached prefix). Bytes = weights read once per pass + KV cache;
    activations are left out (a lower bound)."""
    b, e, v = config.backbone, config.expert, config.vision.siglip
    vw = vision_wbytes or wbytes
    n_img = config.tokens_per_camera
    smolvlm = config.vision.kind == "smolvlm"
    patches = (config.io.image_size // v.patch_size) ** 2 if smolvlm else n_img  # SmolVLM: pixel shuffle after the ViT
    proj_in = v.hidden_size * config.vision.scale_factor ** 2 if smolvlm else v.hidden_size
    patch = 3 * v.patch_size ** 2 * v.hidden_size
    vit_layer = 4 * v.hidden_size ** 2 + 2 * v.hidden_size * v.intermediate_size
    vit = Cost(cameras * (2 * patches * (patch + v.num_hidden_layers * vit_layer)
                          + v.num_hidden_layers * 4 * patches * patches * v.hidden_size),
               (patch + v.num_hidden_layers * vit_layer) * vw)
    proj = Cost(2 * cameras * n_img * proj_in * b.hidden_size, proj_in * b.hidden_size * vw)
    lp = cameras * n_img + text_tokens + int(config.state_in_prefix)
    ls = config.suffix_length
    backbone = _decoder_cost(lp, lp, b.hidden_size, b.intermediate_size, b.num_hidden_layers, b.num_attention_heads,
                             b.num_key_value_heads, b.head_dim, wbytes, abytes)
    kinds = config.layer_kinds
    n_self, n_cross = kinds.count("self"), kinds.count("cross")
    expert = _decoder_cost(ls, lp + ls, e.hidden_size, e.intermediate_size, n_self, b.num_attention_heads,
                           b.num_key_value_heads, b.head_dim, wbytes, abytes)
    # cross layers: the suffix attends to the prefix only; their k/v projections run once, in the prefix pass
    if n_cross:
        expert = expert + _decoder_cost(ls, lp, e.hidden_size, e.intermediate_size, n_cross, b.num_attention_heads,
                                        b.num_key_value_heads, b.head_dim, wbytes, abytes)
        kv_w = b.num_key_value_heads * b.head_dim
        backbone = backbone + Cost(n_cross * 2 * 2 * lp * kv_w * kv_w, n_cross * 2 * kv_w * kv_w * wbytes)
    heads = Cost(2 * ls * (2 * e.hidden_size * e.hidden_size + 2 * 32 * e.hidden_size), 4 * e.hidden_size ** 2 * wbytes)
    prefix = vit + proj + backbone
    step = expert + heads
    return {"prefix": prefix, "step": step, "chunk": prefix + step.scaled(steps)}


def measured_rates(device: torch.device, dtype: torch.dtype, quick: bool = False,
                   n: int | None = None) -> tuple[float, float]:
    """(matmul FLOP/s in `dtype`, copy bandwidth in bytes/s) measured now on `device` (n: matmul side)."""
    n = n or (1024 if quick else 8192)
    a = torch.randn((n, n), device=device, dtype=dtype)
    bm = torch.randn((n, n), device=device, dtype=dtype)
    for _ in range(3):
        a @ bm
    _sync(device)
    reps = 2 if quick else 20
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ bm
    _sync(device)
    flops = 2 * n ** 3 * reps / (time.perf_counter() - t0)
    m = (1 << 22) if quick else (1 << 30)  # elements (2 GiB of bf16 on the GPU)
    src = torch.empty(m, device=device, dtype=dtype)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    _sync(device)
    bw = 2 * m * src.element_size() * reps / (time.perf_counter() - t0)  # read + write
    del a, bm, src, dst
    return flops, bw


# ============================================================================ GPU part
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_model(config: FlowMatchingConfig, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """Our model with random weights made on `device` (meta build, then each parameter drawn there):
    seconds on a GPU for the real size, no disk."""
    from vla_ros.policy.checkpoint import load_into
    from vla_ros.policy.flow_matching.policy import build_model

    model = build_model(config, 0, meta=True)
    g = torch.Generator(device=device).manual_seed(seed)
    keep = config.precision.float32_modules
    state = {}
    for name, ref in model.state_dict().items():
        want = torch.float32 if any(p in name for p in keep) else dtype
        lo, hi = _init_range(name)
        state[name] = torch.empty(ref.shape, device=device, dtype=want).uniform_(lo, hi, generator=g)
    load_into(model, state, {k: Path("random") for k in state}, Path("random"), assign=True, dtype=dtype, device=device,
              keep_float32=keep)
    return model.requires_grad_(False).eval()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _time_chunks(fn: Callable[[], torch.Tensor], device: torch.device, warmup: int,
                 iters: int) -> tuple[list[float], torch.Tensor]:
    out = None
    for _ in range(warmup):
        out = fn()
    _sync(device)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        samples.append(time.perf_counter() - t0)
    return samples, out


def side_by_side(args: argparse.Namespace) -> dict:
    """pi0 (ours vs transformers) and pi05 (ours) on one device, bf16, same weights/inputs/noise."""
    from vla_ros.policy.flow_matching.model import ObservationTensors
    from vla_ros.policy.flow_matching.sampler import sample_actions

    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.device != "cpu" or not args.tiny else torch.float32
    log(f"[gpu] device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), {dtype}")
    flops_rate, bandwidth = measured_rates(device, torch.bfloat16 if device.type == "cuda" else torch.float32,
                                           quick=args.tiny)
    log(f"[gpu] measured: matmul {flops_rate / 1e12:.1f} TFLOP/s, copy {bandwidth / 1e9:.0f} GB/s")
    out: dict = {"device": str(device), "dtype": str(dtype), "matmul_flops": flops_rate, "copy_bandwidth": bandwidth,
                 "runs": []}
    for kind in args.variants:
        config = native_config(kind, cameras=max(args.cameras), tiny=args.tiny)
        io = config.io
        log(f"[gpu] {kind}: random weights on the device")
        model = random_model(config, device, dtype)
        tf_model = None
        if kind == "pi0" and not args.no_transformers:
            native = {k: v for k, v in model.state_dict().items()}
            tf_model = transformers_pi0_model(config, native, dtype, device)
        g = torch.Generator(device="cpu").manual_seed(1)
        tokens = torch.randint(5, config.backbone.vocab_size, (1, io.max_text_tokens), generator=g)
        n_text = io.max_text_tokens if kind == "pi05" else min(io.max_text_tokens, 20)
        token_mask = torch.zeros((1, io.max_text_tokens), dtype=torch.bool)
        token_mask[:, :n_text] = True
        tokens[:, 0] = 2
        tokens[~token_mask] = 0
        for cams in args.cameras:
            images01 = torch.rand((1, cams, 3, io.image_size, io.image_size), generator=g)
            state = torch.zeros((1, io.max_state_dim))
            state[:, :io.state_dim] = torch.rand((1, io.state_dim), generator=g) * 2 - 1
            noise = torch.randn((1, io.horizon, io.max_action_dim), generator=g)
            obs = ObservationTensors(images01.to(device), torch.ones((1, cams), dtype=torch.bool, device=device),
                                     tokens.to(device), token_mask.to(device),
                                     state.to(device) if io.state_token else None)
            noise_d = noise.to(device)

            def ours() -> torch.Tensor:
                return sample_actions(model, obs, noise_d, args.steps)

            log(f"[gpu] {kind} {cams} camera(s): ours")
            ours_s, ours_x = _time_chunks(ours, device, args.warmup, args.iters)
            run = {"variant": kind, "cameras": cams, "ours_ms": _percentiles(ours_s), "prefix_tokens":
                   cams * config.tokens_per_camera + io.max_text_tokens}
            if tf_model is not None:
                n_img = config.tokens_per_camera * cams
                ids = torch.cat([torch.full((1, n_img), config.backbone.vocab_size), tokens], dim=1).to(device)
                att = torch.cat([torch.ones((1, n_img), dtype=torch.long), token_mask.long()], dim=1).to(device)
                pixels = (images01 * 2 - 1).to(device=device, dtype=dtype)
                pmask = torch.ones((1, cams), dtype=torch.bool, device=device)
                st = state.to(device=device, dtype=dtype)
                nz = noise.to(device=device, dtype=dtype)

                def theirs() -> torch.Tensor:
                    with torch.no_grad():
                        return tf_model.sample_actions(state=st, input_ids=ids, pixel_values=pixels, noise=nz,
                                                       attention_mask=att, pixel_attention_mask=pmask,
                                                       num_steps=args.steps)

                log(f"[gpu] {kind} {cams} camera(s): transformers PI0ForConditionalGeneration")
                tf_s, tf_x = _time_chunks(theirs, device, args.warmup, args.iters)
                run["transformers_ms"] = _percentiles(tf_s)
                run["speedup_p50"] = run["transformers_ms"][0] / run["ours_ms"][0]
                run["max_abs_diff"] = float((ours_x.float() - tf_x.float()).abs().max())
                run["ours_abs_max"] = float(ours_x.float().abs().max())
            cost = roofline(config, cams, io.max_text_tokens, args.steps, wbytes=torch.finfo(dtype).bits // 8,
                            abytes=torch.finfo(dtype).bits // 8, vision_wbytes=4)
            bound = {k: max(c.flops / flops_rate, c.bytes / bandwidth) for k, c in cost.items()}
            run["roofline"] = {k: {"gflop": c.flops / 1e9, "mb": c.bytes / 1e6, "bound_ms": bound[k] * 1000.0}
                               for k, c in cost.items()}
            run["roofline"]["chunk_bound_ms"] = (bound["prefix"] + args.steps * bound["step"]) * 1000.0
            run["ratio_to_bound"] = run["ours_ms"][0] / run["roofline"]["chunk_bound_ms"]
            out["runs"].append(run)
        # Drop the weights before empty_cache; `ours` / `theirs` close over these names, so rebind them
        # instead of deleting them.
        model = tf_model = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def print_gpu(res: dict, steps: int) -> None:
    print(f"\nGPU side by side on {res['device']} ({res['dtype']}), {steps} Euler steps; measured matmul "
          f"{res['matmul_flops'] / 1e12:.1f} TFLOP/s, copy {res['copy_bandwidth'] / 1e9:.0f} GB/s")
    print(f"{'':6} {'cams':>4} {'ours p50/p99 ms':>16} {'transformers p50/p99 ms':>24} {'speed-up':>9} "
          f"{'max|diff|':>10} {'prefix GFLOP/MB':>16} {'step GFLOP/MB':>14} {'bound ms':>9} {'ours/bound':>10}")
    for r in res["runs"]:
        tf = r.get("transformers_ms")
        rf = r["roofline"]
        theirs = f"{tf[0]:.2f}/{tf[1]:.2f}" if tf else "-"
        speedup = f"{r['speedup_p50']:.2f}x" if tf else "-"
        diff = f"{r['max_abs_diff']:.3g}" if tf else "-"
        print(f"{r['variant']:6} {r['cameras']:4d} {r['ours_ms'][0]:7.2f}/{r['ours_ms'][1]:<8.2f} {theirs:>24} "
              f"{speedup:>9} {diff:>10} {rf['prefix']['gflop']:8.0f}/{rf['prefix']['mb']:<7.0f} "
              f"{rf['step']['gflop']:6.1f}/{rf['step']['mb']:<7.0f} {rf['chunk_bound_ms']:9.2f} "
              f"{r['ratio_to_bound']:9.2f}x")
    print("goals: >= 2x faster than transformers' PI0; a 2-camera pi0 chunk <= 20 ms on an H100/H200 "
          "(anchor: 27.3 ms for 2 views on an RTX 4090, Dexmal realtime-vla)")


# ============================================================================ SmolVLA
# smolvla_base: SmolVLM2-500M-Video-Instruct truncated to 16 of its 32 text layers, expert 0.75x wide,
# cross-attention every other layer, 512 px cameras (pixel shuffle 4: 64 tokens each), chunk 50.
SMOLVLA_BASE = {
    "text": {"hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 16, "num_attention_heads": 15,
             "num_key_value_heads": 5, "head_dim": 64, "vocab_size": 49280},
    "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
               "patch_size": 16, "image_size": 512},
    "scale_factor": 4, "expert_width": 720, "expert_mlp": 2048, "text_tokens": 48, "horizon": 50,
}
SMOLVLA_CAMERAS = ("top", "wrist", "side")


def smolvla_config(cameras: int = 2, tiny: bool = False) -> FlowMatchingConfig:
    """The native config `vla-ros import` writes for smolvla_base (``tiny``: the golden fixture's sizes)."""
    a = SMOLVLA_BASE
    t, v = dict(a["text"]), dict(a["vision"])
    sf, ew, em, text, horizon = a["scale_factor"], a["expert_width"], a["expert_mlp"], a["text_tokens"], a["horizon"]
    if tiny:
        t = {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 384}
        v = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "patch_size": 8, "image_size": 64}
        sf, ew, em, text, horizon = 2, 36, 256, 24, 10
    d = {
        "format": "vla_ros.flow_matching", "format_version": 2, "policy_type": "flow_matching",
        "io": {"cameras": list(SMOLVLA_CAMERAS[:cameras]), "image_size": v["image_size"], "state_source": "joints",
               "state_dim": STATE_DIM, "horizon": horizon, "dt": 0.1, "action_mode": "absolute",
               "normalization": "mean_std", "max_text_tokens": text, "action_dim": ACTION_DIM, "max_action_dim": 32,
               "max_state_dim": 32, "prompt": "pi0", "state_token": True, "state_placement": "prefix",
               "image_resize": "bilinear_top_left", "norm_convention": "lerobot"},
        "backbone": {"family": "llama", "vocab_size": t["vocab_size"], "hidden_size": t["hidden_size"],
                     "intermediate_size": t["intermediate_size"], "num_hidden_layers": t["num_hidden_layers"],
                     "num_attention_heads": t["num_attention_heads"], "num_key_value_heads": t["num_key_value_heads"],
                     "head_dim": t["head_dim"], "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "hidden_act": "silu",
                     "scale_embeddings": True},
        "expert": {"hidden_size": ew, "intermediate_size": em, "attention": "interleaved",
                   "self_attn_every_n_layers": 2,
                   "causal_actions": True},
        "vision": {"kind": "smolvlm", "scale_factor": sf,
                   "siglip": {k: v[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                "num_attention_heads", "patch_size")}},
        "sampling": {"num_steps": 10, "time_dtype": "float64"},
        "tokenizer": {"pad_token": "<|im_end|>", "bos_token": None},
    }
    return FlowMatchingConfig.from_dict(d)


def _smolvla_inputs(config: FlowMatchingConfig, cameras: int, device: torch.device):
    from vla_ros.policy.flow_matching.model import ObservationTensors

    io = config.io
    g = torch.Generator(device="cpu").manual_seed(1)
    tokens = torch.randint(5, config.backbone.vocab_size, (1, io.max_text_tokens), generator=g)
    token_mask = torch.zeros((1, io.max_text_tokens), dtype=torch.bool)
    token_mask[:, :12] = True
    state = torch.zeros((1, io.max_state_dim))
    state[:, :io.state_dim] = torch.randn((1, io.state_dim), generator=g)
    obs = ObservationTensors(torch.rand((1, cameras, 3, io.image_size, io.image_size), generator=g).to(device),
                             torch.ones((1, cameras), dtype=torch.bool, device=device), tokens.to(device),
                             token_mask.to(device), state.to(device))
    return obs, torch.randn((1, io.horizon, io.max_action_dim), generator=g).to(device)


def smolvla_bench(args: argparse.Namespace) -> dict:
    """SmolVLA at smolvla_base dimensions, random weights: chunk latency of the default path (CPU:
    traced cached steps; CUDA: bf16 with the suffix step replayed from a CUDA graph), the naive path
    (everything recomputed every step) on the CPU, and the roofline bound of a chunk."""
    from vla_ros.policy.flow_matching.sampler import sample_actions

    device = torch.device(args.device if args.gpu else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cams = max(args.cameras) if args.cameras else 2
    config = smolvla_config(cams, tiny=args.tiny)
    log(f"[smolvla] {'tiny' if args.tiny else 'smolvla_base'} sizes, {cams} camera(s), {args.steps} steps, {device} "
        f"{dtype}, {torch.get_num_threads()} thread(s)")
    model = random_model(config, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    obs, noise = _smolvla_inputs(config, cams, device)
    iters = args.iters if device.type == "cuda" else args.cpu_iters
    res: dict = {"device": str(device), "dtype": str(dtype), "cameras": cams, "steps": args.steps, "parameters": params,
                 "prefix_tokens": config.prefix_length, "suffix_tokens": config.suffix_length}

    def cached() -> torch.Tensor:
        return sample_actions(model, obs, noise, args.steps)

    warm = args.warmup if device.type == "cuda" else 2  # CPU: the trace is recorded, then optimised, on the first two
    t_cached, x_cached = _time_chunks(cached, device, warm, iters)
    res["cached_ms"] = _percentiles(t_cached)
    log(f"[smolvla] cached p50/p99 {res['cached_ms'][0]:.1f}/{res['cached_ms'][1]:.1f} ms")
    if device.type == "cpu":
        def naive() -> torch.Tensor:
            return sample_actions(model, obs, noise, args.steps, use_cache=False)

        t_naive, x_naive = _time_chunks(naive, device, 0, args.naive_iters)
        res["naive_ms"] = _percentiles(t_naive)
        res["cached_vs_naive"] = res["naive_ms"][0] / res["cached_ms"][0]
        res["max_abs_diff_cached_naive"] = float((x_cached - x_naive).abs().max())
        log(f"[smolvla] naive p50 {res['naive_ms'][0]:.1f} ms")
    # CPU: a 2048-wide matmul (a 1024 one under-reports a loaded CPU's rate by ~2x; 8192 takes minutes)
    flops_rate, bandwidth = measured_rates(device, dtype, quick=device.type == "cpu",
                                           n=2048 if device.type == "cpu" and not args.tiny else None)
    bytes_ = torch.finfo(dtype).bits // 8
    cost = roofline(config, cams, config.io.max_text_tokens, args.steps, wbytes=bytes_, abytes=bytes_)
    bound = {k: max(c.flops / flops_rate, c.bytes / bandwidth) for k, c in cost.items()}
    res["roofline"] = {k: {"gflop": c.flops / 1e9, "mb": c.bytes / 1e6, "bound_ms": bound[k] * 1000.0}
                       for k, c in cost.items()}
    res["roofline"]["chunk_bound_ms"] = (bound["prefix"] + args.steps * bound["step"]) * 1000.0
    res["matmul_flops"], res["copy_bandwidth"] = flops_rate, bandwidth
    res["ratio_to_bound"] = res["cached_ms"][0] / res["roofline"]["chunk_bound_ms"]
    return res


def print_smolvla(r: dict) -> None:
    rf = r["roofline"]
    print(f"\nSmolVLA ({r['parameters'] / 1e6:.0f}M parameters, random weights) on {r['device']} ({r['dtype']}), "
          f"{r['cameras']} cameras, {r['steps']} Euler steps, prefix {r['prefix_tokens']} + suffix "
          f"{r['suffix_tokens']} tokens")
    print(f"  chunk, cached (default path) p50/p99: {r['cached_ms'][0]:.1f}/{r['cached_ms'][1]:.1f} ms")
    if "naive_ms" in r:
        print(f"  chunk, naive (prefix recomputed every step) p50/p99: {r['naive_ms'][0]:.1f}/{r['naive_ms'][1]:.1f} "
              f"ms; cached is {r['cached_vs_naive']:.1f}x faster (goal >= 4x); max|cached - naive| "
              f"{r['max_abs_diff_cached_naive']:.2g}")
    print(f"  roofline: prefix {rf['prefix']['gflop']:.0f} GFLOP / {rf['prefix']['mb']:.0f} MB, step "
          f"{rf['step']['gflop']:.1f} GFLOP / {rf['step']['mb']:.0f} MB -> chunk bound {rf['chunk_bound_ms']:.2f} ms "
          f"at the measured {r['matmul_flops'] / 1e12:.2f} TFLOP/s and {r['copy_bandwidth'] / 1e9:.0f} GB/s; "
          f"measured / bound {r['ratio_to_bound']:.1f}x"
          + (" (CPU: the rate is measured once, under whatever else loads the machine; the bound is a GPU figure)"
             if r["device"] == "cpu" else ""))
    if r["device"].startswith("cuda"):
        print(f"  goal: a 2-camera chunk <= 33 ms (one 30 Hz frame) on an H100/H200: "
              f"{'met' if r['cached_ms'][0] <= 33.0 else 'NOT met'}")


# ============================================================================ main
def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="pi0,pi05", help="comma list of pi0, pi05 (default: both)")
    ap.add_argument("--cameras", default="1,2,3", help="camera counts, comma list (default: 1,2,3)")
    ap.add_argument("--steps", type=int, default=10, help="Euler steps per chunk (default: 10)")
    ap.add_argument("--quick", action="store_true", help="pi0 only, 1 camera (a few minutes on the CPU)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                    help="CPU: dtype the checkpoint is loaded in (default bfloat16; vision and norms stay float32)")
    ap.add_argument("--disk-dtype", default="bfloat16", choices=("bfloat16", "float32"),
                    help="dtype of the random weights written to disk (default bfloat16: 6-7 GB instead of 13)")
    ap.add_argument("--workdir", help="where the checkpoints are written (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the written checkpoints")
    ap.add_argument("--gpu", action="store_true", help="run the GPU side-by-side part (instead of the CPU part)")
    ap.add_argument("--device", default="cuda", help="--gpu: the device (default cuda; cpu with --tiny = smoke test)")
    ap.add_argument("--iters", type=int, default=50, help="--gpu: timed chunks per configuration (default 50)")
    ap.add_argument("--warmup", type=int, default=5,
                    help="--gpu: untimed chunks first (default 5; captures the graphs)")
    ap.add_argument("--no-transformers", action="store_true", help="--gpu: skip transformers' PI0")
    ap.add_argument("--tiny", action="store_true",
                    help="the golden fixtures' toy sizes instead of the real ones (smoke test)")
    ap.add_argument("--smolvla", action="store_true",
                    help="SmolVLA at smolvla_base dimensions instead of pi0/pi05: CPU latency and cached-vs-naive "
                         "ratio; with --gpu bf16 + CUDA graphs vs the roofline (--cameras: its largest count, default "
                         "2)")
    ap.add_argument("--cpu-iters", type=int, default=5, help="--smolvla on the CPU: timed cached chunks (default 5)")
    ap.add_argument("--naive-iters", type=int, default=2, help="--smolvla on the CPU: timed naive chunks (default 2)")
    ap.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    if args.child:
        what, *rest = args.child
        res = (child_import(*rest) if what == "import"
               else child_load(rest[0], rest[1], [int(c) for c in rest[2].split(",")], int(rest[3])))
        print(json.dumps(res))
        return 0
    args.variants = ["pi0"] if args.quick else [v for v in args.variants.split(",") if v]
    args.cameras = [1] if args.quick else [int(c) for c in args.cameras.split(",") if c]
    if args.smolvla and args.cameras == [1, 2, 3]:
        args.cameras = [2]  # the figure: 2 cameras
    for v in args.variants:
        if v not in VARIANTS:
            ap.error(f"--variants: expected pi0 and/or pi05, got {v!r}")
    if not args.cameras or any(not 1 <= c <= len(CAMERA_NAMES) for c in args.cameras):
        ap.error(f"--cameras: expected counts between 1 and {len(CAMERA_NAMES)}, got {args.cameras}")
    if args.smolvla:
        if args.gpu and args.device.startswith("cuda") and not torch.cuda.is_available():
            ap.error("--gpu: no CUDA device here")
        res = {"smolvla": smolvla_bench(args)}
        print_smolvla(res["smolvla"])
    elif args.gpu:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            ap.error("--gpu: no CUDA device here (use --device cpu --tiny for a smoke test of this code)")
        res = {"gpu": side_by_side(args)}
        print_gpu(res["gpu"], args.steps)
    else:
        t0 = time.perf_counter()
        res = {"cpu": cpu_part(args)}
        print_cpu(res["cpu"], args)
        print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
