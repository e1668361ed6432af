"""`vla-ros demo` (= `make demo`): expert episodes in the simulator -> train a tiny flow-matching policy -> closed loop.

Records the MuJoCo tabletop's scripted expert (closed loop through the executor; scene and wrist
cameras, joint states, EE pose, commands, instruction) as bags, trains a tiny flow-matching policy
on them for a bounded time (default 150 s on the CPU), then runs it closed loop in the simulator
on held-out seeds next to `hold` and the expert (success rates), replays it on the held-out expert
bags (offline metrics vs hold) and prints where the HTML reports are. See docs/sim.md.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulator demonstrations -> train a tiny policy -> closed-loop report (make demo)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output directory (default: out/demo)")
    p.add_argument("--task", choices=("reach", "push", "pick"), default="reach", help="simulated task (default: reach)")
    p.add_argument("--episodes", type=int, default=60, help="recorded expert episodes to train on (default: 60)")
    p.add_argument("--test-episodes", type=int, default=10,
                   help="held-out seeds: closed-loop episodes per lane and replayed bags (default: 10)")
    p.add_argument("--train-seconds", type=float, default=150.0,
                   help="wall-clock training budget, at most 180 (default: 150)")
    p.add_argument("--max-steps", type=int, default=2500, help="training steps at most (default: 2500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene and the training (default: 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for recording and evaluation, e.g. --set replay.latency=measured (repeatable)")
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
        out_dir=args.out, n_train=args.episodes, n_test=args.test_episodes, seed=args.seed, task=args.task,
        train_seconds=args.train_seconds, max_steps=args.max_steps, progress=not args.no_progress,
        overrides=dict(parse_override(s) for s in args.set),
        model=_nested(dict(parse_override(s) for s in args.model_set)),
    )
    res = run_demo(settings)
    n = res.numbers
    print()
    print("replay on the held-out expert bags (open loop):")
    print(res.replay_table)
    print()
    print(f"closed loop in the simulator ({n['task']}, held-out seeds):")
    print(res.table)
    print()
    print(f"training: {res.train.steps} steps in {res.train.seconds:.0f} s, final loss {res.train.final_loss:.4f}")
    for key, label in (("chunk_position_error_m", "chunk position error"),
                       ("command_position_error_m", "command position error")):
        if key in n and n[key]["policy"] is not None:
            pol, hold, ratio = n[key]["policy"], n[key]["hold"], n[key]["hold_over_policy"]
            verdict = ""
            if ratio:
                verdict = (f" ({ratio:.1f}x lower)" if ratio >= 1
                           else f" (NOT better than hold: {1 / ratio:.1f}x higher)")
            print(f"replay {label}: trained {pol * 100:.2f} cm vs hold {hold * 100:.2f} cm{verdict}")
    cl = n["closed_loop"]
    print(f"closed-loop success rate: trained {cl['policy']['success_rate'] * 100:.0f} % vs hold "
          f"{cl['hold']['success_rate'] * 100:.0f} % vs expert {cl['expert']['success_rate'] * 100:.0f} % "
          f"({cl['policy']['episodes']} episodes each)")
    print(f"replay report: {res.replay_report}")
    print(f"report: {res.report}")
    return 0
