#!/usr/bin/env python3
"""Closed-loop simulation speed: sim seconds per wall second of `vla-ros sim-eval`, and where the time goes.

One run: the tiny flow-matching policy of the demo (random weights; 32 px input, 10 Euler steps)
drives the MuJoCo tabletop (profile sim_panda, task reach) closed loop for a fixed episode length
(no early stop), inference at 5 Hz, executor at 100 Hz, 2 cameras rendered at 128 px only when an
observation is taken (software EGL on a CPU machine). Printed: sim seconds per wall second (goal
>= 2x real time) and the split into render, physics (MuJoCo steps + the Cartesian controller),
policy (observation decode + inference), executor (ticks, chunk submits), inputs (messages and the
observation builder) and the rest; then the same episode with rendering every control tick
(what a naive loop would do), and the ratio of the two, measured in the same run.

    python bench/sim_bench.py                       # defaults above
    python bench/sim_bench.py --seconds 20 --image-size 224 --task pick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout too


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="sim seconds per episode (default: 10)")
    ap.add_argument("--episodes", type=int, default=2, help="episodes (default: 2)")
    ap.add_argument("--task", choices=("reach", "push", "pick"), default="reach")
    ap.add_argument("--image-size", type=int, default=128, help="render size in px, square (default: 128)")
    ap.add_argument("--rate-hz", type=float, default=5.0, help="inference rate (policy.rate_hz, default: 5)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--no-compare", action="store_true", help="skip the render-every-tick comparison")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint
    from vla_ros.policy.registry import load_configured_policy
    from vla_ros.replay.demo import SMALL_MODEL, sim_demo_config
    from vla_ros.sim.closed_loop import run_episode, world_for
    from vla_ros.sim.world import SimWorld, rendering_problem

    why = rendering_problem()
    if why:
        print(f"sim_bench: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_tiny_checkpoint(Path(tmp) / "tiny", cameras=("primary", "wrist"), image_size=32, patch_size=8,
                                    horizon=10, dt=0.1, action_mode="delta", max_text_tokens=8, overrides=SMALL_MODEL)
        cfg = sim_demo_config(ckpt, {"sim.image_size": args.image_size, "policy.rate_hz": args.rate_hz,
                                     "sim.episode_seconds": args.seconds})
        policy = load_configured_policy(cfg.policy)
        world = world_for(cfg, args.task)
        try:
            run_episode(world, cfg, policy, seed=0, max_seconds=1.0)  # warm-up: GL context, first inferences

            def measure(label: str) -> tuple[float, dict[str, float]]:
                parts: dict[str, float] = {}
                sim = 0.0
                for i in range(args.episodes):
                    ep = run_episode(world, cfg, policy, seed=i, stop_on_success=False)
                    sim += ep.duration
                    for k, v in ep.timing.as_dict().items():
                        parts[k] = parts.get(k, 0.0) + v
                speed = sim / parts["total"]
                print(f"\n{label}: {sim:.1f} sim s in {parts['total']:.2f} wall s = {speed:.2f}x real time"
                      f" ({args.episodes} episodes of {args.task}, {args.image_size} px, policy at {args.rate_hz:g} Hz,"
                      f" torch threads {torch.get_num_threads()})")
                for k in ("render", "physics", "policy", "executor", "inputs", "other"):
                    print(f"  {k:<9} {parts[k]:7.2f} s  {parts[k] / parts['total'] * 100:5.1f} %  "
                          f"{parts[k] / sim * 1e3:7.1f} ms per sim s")
                return speed, parts

            speed, parts = measure("rendered when an observation is taken")
            frames = int(round(args.episodes * args.seconds * args.rate_hz)) * 2
            print(f"  per frame: {parts['render'] / max(1, frames) * 1e3:.1f} ms (2 cameras x {frames // 2} "
                  "observations)")
            verdict = "meets" if speed >= 2.0 else "MISSES"
            print(f"goal >= 2x real time: {verdict} ({speed:.2f}x)")
            if not args.no_compare:
                # The same episodes rendering both cameras at every control tick (a naive sensor loop).
                original = SimWorld.step

                def step_and_render(self, seconds):
                    original(self, seconds)
                    t0 = time.perf_counter()
                    self.render("primary")
                    self.render("wrist")
                    step_and_render.render += time.perf_counter() - t0

                step_and_render.render = 0.0
                SimWorld.step = step_and_render
                try:
                    naive, nparts = measure("rendered at every control tick (comparison)")
                finally:
                    SimWorld.step = original
                print(f"  of which extra renders: {step_and_render.render:.2f} s")
                print(f"rendering only at observations is {speed / naive:.1f}x faster than at every tick")
        finally:
            world.close()
            policy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
