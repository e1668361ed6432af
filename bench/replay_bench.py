#!/usr/bin/env python3
"""Offline evaluation speed: how many times faster than real time does `vla-ros eval` replay a bag?

One run: a synthetic 20 s bag (2 cameras at 30 Hz, joint states and EE pose at 100 Hz, commands at
50 Hz, several pick episodes back to back) is replayed through the tiny flow-matching policy of the
demo (random weights; 32 px input, 10 Euler steps) and the `hold` baseline in one pass, with the
executor ticking at 100 Hz and inference at 5 Hz (the sim_tabletop profile), with the default
replay settings (batched inference, executors in a second process). Printed: the replay speed as a
multiple of the bag's duration (goal >= 20x) and where the time goes - bag I/O (reading +
deserialising), input handling (validation, sync), policy (image decode + inference), executor
(ticks, chunk submits; both lanes, in this process or in the second one, where it runs in parallel
and only the final wait counts) and the rest (event loop). The same bag is then replayed one
inference at a time with the executors in process, and the ratio of the two is printed.

    python bench/replay_bench.py                   # defaults above
    python bench/replay_bench.py --image-size 640  # 640x640 camera images
    python bench/replay_bench.py --storage sqlite3 --seconds 30 --rate-hz 10
    python bench/replay_bench.py --batch-size 1 --in-process   # one inference at a time, executors in process
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout too


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="bag duration (default: 20)")
    ap.add_argument("--image-size", type=int, default=128, help="camera image size in px, square (default: 128)")
    ap.add_argument("--camera-rate", type=float, default=30.0, help="camera rate (default: 30 Hz)")
    ap.add_argument("--state-rate", type=float, default=100.0, help="joint state / EE pose rate (default: 100 Hz)")
    ap.add_argument("--rate-hz", type=float, default=5.0, help="inference rate (policy.rate_hz, default: 5)")
    ap.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    ap.add_argument("--latency", choices=("none", "measured", "fixed"), default="none", help="replay.latency")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--batch-size", type=int, default=None, help="replay.batch_size (default: the config's)")
    ap.add_argument("--in-process", action="store_true", help="replay.parallel_executor = false")
    ap.add_argument("--no-compare", action="store_true",
                    help="skip the second replay (one inference at a time, executors in process)")
    args = ap.parse_args(argv)

    import torch

    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint
    from vla_ros.replay.demo import SMALL_MODEL, demo_config
    from vla_ros.replay.evaluate import evaluate_bag
    from vla_ros.replay.synthetic import Episode, SceneConfig, write_session_bag

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="replay_bench_") as tmp:
        tmp = Path(tmp)
        scene = SceneConfig(image_size=args.image_size, camera_rate=args.camera_rate, state_rate=args.state_rate,
                            command_rate=50.0)
        rng = np.random.default_rng(0)
        episodes, total = [], 0.0
        while total < args.seconds + 1.0:
            ep = Episode.sample(rng, scene, seed=len(episodes))
            episodes.append(ep)
            total += ep.simulate(scene).duration + 0.5
        t0 = time.perf_counter()
        bag = write_session_bag(tmp / "bag", episodes, scene, storage=args.storage, duration=args.seconds)
        t_write = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in bag.iterdir()) / 1e6
        ckpt = make_tiny_checkpoint(tmp / "ckpt", cameras=("primary", "wrist"), image_size=32, patch_size=8, horizon=10,
                                    dt=0.1, action_mode="delta", max_text_tokens=8, overrides=SMALL_MODEL)
        overrides = {"policy.rate_hz": args.rate_hz, "replay.latency": args.latency}
        if args.batch_size is not None:
            overrides["replay.batch_size"] = args.batch_size
        if args.in_process:
            overrides["replay.parallel_executor"] = False
        cfg = demo_config(ckpt, overrides)
        policy = FlowMatchingPolicy.load(ckpt)
        policy.configure_sampling(num_steps=cfg.policy.num_steps, seed=0)
        # warm-up (first torch calls, imports) outside the measurement
        evaluate_bag(bag, cfg.with_overrides({"replay.max_duration": 1.0}), policy, progress=False)

        t0 = time.perf_counter()
        res = evaluate_bag(bag, cfg, policy, progress=True)
        t_call = time.perf_counter() - t0
        base = None
        if not args.no_compare:  # the same bag one inference at a time, executors in process
            seq = cfg.with_overrides({"replay.batch_size": 1, "replay.parallel_executor": False})
            evaluate_bag(bag, seq.with_overrides({"replay.max_duration": 1.0}), policy, progress=False)
            base = evaluate_bag(bag, seq, policy, progress=True)
        policy.close()
    tm = res.timing.as_dict()
    total_s = tm["total"]
    n_chunks = len(res.lanes["policy"].records)
    print(f"bag: {res.duration:.1f} s, {res.messages} messages ({size:.0f} MB, {args.storage}), 2 cameras "
          f"{args.image_size}x{args.image_size} @ {args.camera_rate:g} Hz, states @ {args.state_rate:g} Hz "
          f"(written in {t_write:.1f} s)")
    print(f"replay: policy ({n_chunks} chunks @ {args.rate_hz:g} Hz, 10 Euler steps) + hold baseline, executor @ "
          f"{cfg.executor.control_rate:g} Hz, latency {args.latency}; torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs")
    batch = res.metrics["inference_batch"]
    print(f"inference batched by {batch}; executors "
          f"{'in a second process' if tm['executor_remote'] > 0 else 'in this process'}")
    print(f"wall time {total_s:.2f} s -> replay speed {res.duration / total_s:.1f}x real time (goal >= 20x); "
          f"the whole call incl. warm-up check and metrics {t_call:.2f} s = {res.duration / t_call:.1f}x")
    print("time shares (of the replay's wall time):")
    for key, label in (("bag_io", "bag I/O (read + deserialise)"), ("inputs", "inputs (validation, sync)"),
                       ("policy", "policy (decode + inference)"), ("executor", "executor in this process"),
                       ("executor_wait", "waiting for the executor process"), ("output", "output bag"),
                       ("other", "other (event loop)")):
        print(f"  {label:32s} {tm[key]:7.3f} s  {100 * tm[key] / total_s:5.1f} %")
    if tm["executor_remote"] > 0:
        print(f"  (executor in the second process  {tm['executor_remote']:7.3f} s, in parallel)")
    rest = total_s - tm["policy"]
    print(f"  -> inference alone caps the speed at {res.duration / max(tm['policy'], 1e-9):.1f}x; the replay machinery "
          f"without inference runs at {res.duration / max(rest, 1e-9):.1f}x")
    lat = res.metrics["policy"]["latency"]["inference_s"]
    what = f"per chunk (share of a batch of {batch})" if batch > 1 else "per chunk"
    print(f"inference time {what}: p50 {lat['p50'] * 1e3:.1f} ms, p99 {lat['p99'] * 1e3:.1f} ms")
    if base is not None:
        bt = base.timing.as_dict()
        blat = base.metrics["policy"]["latency"]["inference_s"]
        print(f"same bag, one inference at a time, executors in process: {bt['total']:.2f} s = "
              f"{base.duration / bt['total']:.1f}x real time (policy {bt['policy']:.2f} s, executor "
              f"{bt['executor']:.2f} s; inference p50 {blat['p50'] * 1e3:.1f} ms) -> this run's settings are "
              f"{bt['total'] / total_s:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
