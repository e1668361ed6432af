#!/usr/bin/env python3
"""Flow-matching policy latency: KV-cached vs naive Euler sampling, 1 and 3 cameras.

Naive sampling recomputes the whole prefix (vision tower, text embedding, backbone layers) at
every Euler step; cached sampling runs the prefix once and only the action expert's suffix per
step. The ratio of their p50 latencies is the speed-up of the cache (goal: >= 4x at 10 steps on
the tiny config). Also printed: the full `infer()` latency (image preprocessing, tokenising and
un-normalising included), the Real-Time-Chunking-guided latency (one extra VJP per step), on CUDA
the eager cached latency (the default there replays the suffix step from a CUDA graph),
parameter count and peak memory (CPU: peak RSS of the process and the Python-heap peak from
tracemalloc during one infer(); CUDA: torch.cuda.max_memory_allocated per configuration).

    python bench/policy_bench.py                       # CPU, float32, tiny random checkpoint
    python bench/policy_bench.py --device cuda --dtype bfloat16 --iters 50
    python bench/policy_bench.py --checkpoint DIR      # a real checkpoint (its own cameras)
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout too

import torch  # noqa: E402

from vla_ros.core.types import ChunkGuidance, EEPose, Observation  # noqa: E402
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy  # noqa: E402
from vla_ros.policy.flow_matching.sampler import sample_actions  # noqa: E402
from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fns: dict, device: torch.device, warmup: int, iters: int) -> dict[str, np.ndarray]:
    """Latency samples (ms) per function; the functions are interleaved so load changes hit all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(iters):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out[k].append((time.perf_counter() - t0) * 1000.0)
    return {k: np.asarray(v) for k, v in out.items()}


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _observation(policy: FlowMatchingPolicy, rng: np.random.Generator) -> Observation:
    meta = policy.metadata
    joints = None
    if meta.state_source == "joints":
        joints = np.zeros(meta.state_dim - int(policy.config.io.state_includes_gripper))
    return Observation(
        stamp=0.0,
        images={c: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for c in meta.cameras},
        joint_positions=joints,
        ee_pose=EEPose(np.array([0.45, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]), "base_link"),
        gripper=1.0,
        instruction="pick up the red cube and put it in the bin",
    )


def bench_one(path: Path, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _rss_mb()
    policy = FlowMatchingPolicy.load(path, device=args.device, dtype=args.dtype)
    rng = np.random.default_rng(0)
    obs = _observation(policy, rng)
    inputs = policy.observation_tensors([obs])
    io = policy.config.io
    noise = torch.randn(1, io.horizon, io.max_action_dim, device=device,
                        generator=torch.Generator(device).manual_seed(0))
    guide_actions = policy.infer(obs, noise=noise[0, :, :7].cpu().numpy()).actions
    guidance = ChunkGuidance(guide_actions if policy.metadata.action_mode.name == "ABSOLUTE" else
                             np.repeat(obs.ee_state()[None], io.horizon, 0),
                             np.clip(1.0 - np.arange(io.horizon) / max(1, io.horizon // 2), 0, 1))

    fns = {
        "cached": lambda: sample_actions(policy.model, inputs, noise, args.steps, use_cache=True),
        "naive": lambda: sample_actions(policy.model, inputs, noise, args.steps, use_cache=False),
        "infer": lambda: policy.infer(obs, num_steps=args.steps),
        "rtc": lambda: policy.infer(obs, guidance=guidance, num_steps=args.steps),
    }
    if device.type == "cuda":  # the default there replays the suffix step from a CUDA graph
        fns["eager"] = lambda: sample_actions(policy.model, inputs, noise, args.steps, use_cache=True, cuda_graph=False)
    times = _timed(fns, device, args.warmup, args.iters)
    a = sample_actions(policy.model, inputs, noise, args.steps, use_cache=True)
    b = sample_actions(policy.model, inputs, noise, args.steps, use_cache=False)
    # Memory after timing: tracemalloc slows every Python allocation and would distort latencies.
    tracemalloc.start()
    policy.infer(obs, num_steps=args.steps)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "cameras": len(io.cameras),
        "prefix_tokens": policy.config.prefix_length,
        "suffix_tokens": policy.config.suffix_length,
        "params": sum(p.numel() for p in policy.model.parameters()),
        **times,
        "max_diff": float((a - b).abs().max()),
        "py_peak_mb": py_peak / 2**20,
        "rss_delta_mb": _rss_mb() - rss0,
    }
    if device.type == "cuda":
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    policy.close()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--steps", type=int, default=10, help="Euler steps per chunk (default 10)")
    p.add_argument("--cameras", default="1,3", help="camera counts to compare (tiny checkpoints; default 1,3)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default 10 on CPU, 50 on CUDA)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--family", default="gemma", choices=("gemma", "llama"))
    p.add_argument("--vision", default="siglip", choices=("siglip", "siglip_dinov2"))
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--checkpoint", default=None, help="benchmark this checkpoint directory instead of tiny ones")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.iters is None:
        args.iters = 50 if args.device.startswith("cuda") else 10
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"policy_bench: device={args.device} dtype={args.dtype} steps={args.steps} iters={args.iters} "
          f"torch={torch.__version__} threads={torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            paths = [Path(args.checkpoint)]
        else:
            paths = []
            for n in (int(x) for x in args.cameras.split(",") if x.strip()):
                cams = ("primary",) + tuple(f"wrist_{i}" for i in range(1, n))
                paths.append(make_tiny_checkpoint(Path(tmp) / f"tiny_{n}cam", family=args.family, vision=args.vision,
                                                  cameras=cams, image_size=args.image_size, patch_size=args.patch_size))
        for path in paths:
            rows.append(bench_one(path, args))

    mem_col = "cuda_peak_MB" if args.device.startswith("cuda") else "RSS growth MB / py heap peak KB"
    print(f"{'cams':>4} {'prefix':>6} {'suffix':>6} {'params':>9} | {'cached p50/p90 ms':>18} | "
          f"{'naive p50/p90 ms':>18} | {'ratio':>6} | {'infer p50':>9} | {'rtc p50':>8} | {'eager p50':>9} | "
          f"{'max|diff|':>9} | {mem_col}")
    for r in rows:
        c50, c90 = np.percentile(r["cached"], [50, 90])
        n50, n90 = np.percentile(r["naive"], [50, 90])
        mem = (f"{r['cuda_peak_mb']:.1f}" if "cuda_peak_mb" in r
               else f"{r['rss_delta_mb']:.1f} / {r['py_peak_mb'] * 1024:.0f}")
        print(f"{r['cameras']:>4} {r['prefix_tokens']:>6} {r['suffix_tokens']:>6} {r['params']:>9,} | "
              f"{c50:>8.2f} / {c90:>7.2f} | {n50:>8.2f} / {n90:>7.2f} | {n50 / c50:>5.1f}x | "
              f"{np.percentile(r['infer'], 50):>9.2f} | {np.percentile(r['rtc'], 50):>8.2f} | "
              f"{(format(np.percentile(r['eager'], 50), '.2f') if 'eager' in r else '-'):>9} | {r['max_diff']:>9.1e} | "
              f"{mem}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS: {peak:.0f} MB (includes torch/transformers import)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
