"""`vla-ros eval`: what would the policy have done on recorded bags? (offline evaluation, docs/replay.md)

Replays each bag through the policy node's observation builder, the policy and the executor on the
bag's own clock (simulated, no sleeping), scores predicted chunks and executed commands against
what was actually commanded, always next to the `hold` baseline, and writes metrics.json, PNG
plots and index.html (plus, with --output-bag, an mcap bag with the predictions for Foxglove).

    vla-ros eval --bag run1 --bag run2.mcap --robot franka --policy flow_matching --checkpoint ckpt/ --out out/eval
"""

from __future__ import annotations

import argparse

from vla_ros.cli.common import add_config_arguments, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a policy offline on recorded bags (metrics, plots, HTML report)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--bag", action="append", required=True, metavar="PATH",
                   help="rosbag2 directory (mcap or sqlite3 storage), or a single .mcap or .db3 file (repeatable)")
    p.add_argument("--out", metavar="DIR", help="output directory (replay.out_dir, default out/eval)")
    p.add_argument("--ground-truth", metavar="TOPIC",
                   help="topic of the commands actually sent (replay.ground_truth_topic)")
    p.add_argument("--latency", choices=("none", "measured", "fixed"),
                   help="inject inference latency on the simulated clock (replay.latency)")
    p.add_argument("--fixed-latency", type=float, metavar="S",
                   help="latency for --latency fixed (replay.fixed_latency)")
    p.add_argument("--instruction", help="instruction when the bag has none (policy.instruction)")
    p.add_argument("--output-bag", action="store_true",
                   help="also write an mcap bag with predictions (replay.output_bag)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (metrics.json and index.html only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(p)
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The shortcut flags as config overrides (applied after --config/--robot/--set)."""
    out: dict[str, object] = {}
    for flag, key in (("out", "replay.out_dir"), ("ground_truth", "replay.ground_truth_topic"),
                      ("latency", "replay.latency"), ("fixed_latency", "replay.fixed_latency"),
                      ("instruction", "policy.instruction")):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    if getattr(args, "output_bag", False):
        out["replay.output_bag"] = True
    return out


BAG_FORMS = "a rosbag2 directory (mcap or sqlite3), a .mcap or a .db3 file"


def check_before_loading(args: argparse.Namespace, cfg) -> None:
    """What can be refused in a second is refused before the policy loads (torch, weights: many seconds):
    the bags' existence, the policy choice, the checkpoint path, topics configured for two roles.
    Raises ValueError with one sentence (the CLI prints it and exits 2)."""
    from pathlib import Path

    missing = [b for b in args.bag if not Path(b).exists()]
    if len(missing) == len(args.bag):
        raise ValueError(f"no bag to evaluate: {', '.join(missing)} does not exist (expected {BAG_FORMS})")
    p = cfg.policy
    if args.policy is None and p.type != "hold" and not p.checkpoint:
        raise ValueError(
            f"which policy? no --policy given and the configuration's policy.type {p.type!r} has no policy.checkpoint; "
            f"pass --policy NAME (e.g. --policy flow_matching --checkpoint DIR, or --policy hold for the baseline)"
        )
    if p.checkpoint and not Path(p.checkpoint).exists():
        raise ValueError(f"--checkpoint {p.checkpoint} (policy.checkpoint) does not exist; expected a checkpoint "
                         "directory (vla-ros make-checkpoint or vla-ros import writes one)")
    from vla_ros.core.observation_builder import ObservationSpec
    from vla_ros.replay.bag_inputs import required_topics

    required_topics([ObservationSpec.from_config(cfg.robot, None)])  # ConfigError: one topic in two roles


def load_policy_for_eval(cfg):
    """The configured policy, or ValueError with one sentence (no traceback) when it cannot be loaded."""
    from vla_ros.policy.registry import load_configured_policy

    try:
        return load_configured_policy(cfg.policy)
    except (RuntimeError, OSError, ImportError, TypeError) as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    shortcuts = overrides_from_args(args)
    if shortcuts:
        cfg = cfg.with_overrides(shortcuts)
    check_before_loading(args, cfg)
    from vla_ros.replay.evaluate import run_evaluation

    policy = load_policy_for_eval(cfg)
    try:
        out = run_evaluation(args.bag, cfg, policy=policy, progress=not args.no_progress, plots=not args.no_plots)
    finally:
        policy.close()
    print(out.table)
    print(f"report: {out.report_path}\nmetrics: {out.metrics_path}")
    if out.evaluated == 0:
        return 2
    return 1 if out.skipped else 0
