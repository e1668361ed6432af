"""`vla-ros demo` (= `make demo`): synthetic bags -> train a tiny flow-matching policy -> offline eval report.

Generates a synthetic tabletop dataset (a scripted expert picking a red block: rendered scene and
wrist cameras, joint states, EE poses, commands, instruction), trains a tiny flow-matching policy
on it for a bounded time (default 150 s on the CPU), evaluates it on held-out episodes against the
`hold` baseline and prints where the HTML report is. See docs/replay.md.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthetic bags -> train a tiny policy -> evaluation report (make demo)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output directory (default: out/demo)")
    p.add_argument("--episodes", type=int, default=40, help="training episodes (default: 40)")
    p.add_argument("--test-episodes", type=int, default=4, help="held-out episodes evaluated (default: 4)")
    p.add_argument("--train-seconds", type=float, default=150.0,
                   help="wall-clock training budget, at most 180 (default: 150)")
    p.add_argument("--max-steps", type=int, default=2500, help="training steps at most (default: 2500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene and the training (default: 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the evaluation, e.g. --set replay.latency=measured (repeatable)")
    p.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                   help="tiny-model config override, e.g. --model-set expert.attention=cross (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _nested(flat: dict) -> dict:
    """{"expert.attention": "cross"} -> {"expert": {"attention": "cross"}} (model-config keys)."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def run(args: argparse.Namespace) -> int:
    from vla_ros.core.schema import parse_override
    from vla_ros.replay.demo import DemoSettings, run_demo

    if args.episodes < 1 or args.test_episodes < 1:
        raise ValueError("--episodes and --test-episodes: expected at least 1")
    if not 0 < args.train_seconds <= 180:
        raise ValueError(f"--train-seconds: expected a number in (0, 180], got {args.train_seconds}")
    settings = DemoSettings(
        out_dir=args.out, n_train=args.episodes, n_test=args.test_episodes, seed=args.seed,
        train_seconds=args.train_seconds, max_steps=args.max_steps, progress=not args.no_progress,
        overrides=dict(parse_override(s) for s in args.set),
        model=_nested(dict(parse_override(s) for s in args.model_set)),
    )
    res = run_demo(settings)
    n = res.numbers
    print()
    print(res.table)
    print()
    print(f"training: {res.train.steps} steps in {res.train.seconds:.0f} s, final loss {res.train.final_loss:.4f}")
    for key, label in (("chunk_position_error_m", "chunk position error"), ("command_position_error_m", "command position error")):
        if key in n and n[key]["policy"] is not None:
            pol, hold, ratio = n[key]["policy"], n[key]["hold"], n[key]["hold_over_policy"]
            verdict = ""
            if ratio:
                verdict = f" ({ratio:.1f}x lower)" if ratio >= 1 else f" (NOT better than hold: {1 / ratio:.1f}x higher)"
            print(f"{label}: trained {pol * 100:.2f} cm vs hold {hold * 100:.2f} cm{verdict}")
    if "command_gripper_accuracy" in n:
        g = n["command_gripper_accuracy"]
        print(f"gripper accuracy: trained {g['policy'] * 100:.1f} % vs hold {g['hold'] * 100:.1f} %")
    print(f"report: {res.report}")
    return 0
