"""`vla-ros sim-eval`: closed-loop evaluation in the MuJoCo tabletop, next to hold and the scripted expert
(docs/sim.md).

One process on a simulated clock: the simulator publishes what a robot would, the policy node's
observation builder, the inference worker, the executor and its safety limits run as on the
robot, and the executor's commands move the simulated arm. Writes metrics.json, plots, a GIF per
episode and index.html; --record writes each episode as an mcap bag that `vla-ros eval` reads.

    vla-ros sim-eval --policy flow_matching --checkpoint ckpt/ --task reach --episodes 10 --seed 0
    vla-ros sim-eval --policy sim_expert --task pick --episodes 20 --record out/pick_bags   # expert demonstrations
"""

from __future__ import annotations

import argparse

from vla_ros.cli.common import add_config_arguments, config_from_args

TASK_CHOICES = ("reach", "push", "pick")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim-eval",
                       help="closed-loop evaluation in the MuJoCo tabletop (success rates vs hold and expert)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=TASK_CHOICES, help="task (sim.task; default reach)")
    p.add_argument("--episodes", type=int, default=5, help="episodes per lane (default: 5)")
    p.add_argument("--seed", type=int, help="seed of the first episode; episode i uses seed + i (sim.seed)")
    p.add_argument("--latency", choices=("none", "measured"),
                   help="none: chunks arrive at once; measured: the inference's wall time passes in sim time first "
                        "(replay.latency)")
    p.add_argument("--out", default="out/sim_eval", metavar="DIR", help="report directory (default: out/sim_eval)")
    p.add_argument("--record", metavar="DIR",
                   help="write each episode of the recorded lanes as an mcap bag: DIR/ep_XXX (one lane) or "
                        "DIR/LANE/ep_XXX")
    p.add_argument("--record-lanes", default="policy", metavar="LANES",
                   help="comma-separated lanes to record with --record: policy, hold, expert (default: policy)")
    p.add_argument("--no-baselines", action="store_true", help="only the policy (no hold / expert lanes)")
    p.add_argument("--no-gifs", action="store_true", help="no GIFs (faster: fewer renders)")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vla_ros.sim.evaluate import LANES, run_sim_eval

    if args.episodes < 1:
        raise ValueError(f"--episodes: expected at least 1, got {args.episodes}")
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed: expected a non-negative integer, got {args.seed}")
    lanes_rec = tuple(x.strip() for x in args.record_lanes.split(",") if x.strip())
    bad = [x for x in lanes_rec if x not in LANES]
    if bad or not lanes_rec:
        raise ValueError(f"--record-lanes: expected a comma-separated list of {', '.join(LANES)}, got "
                         f"{args.record_lanes!r}")
    if args.robot is None:
        args.robot = "sim_panda"
    cfg = config_from_args(args)
    shortcuts: dict[str, object] = {}
    if args.task:
        shortcuts["sim.task"] = args.task
    if args.seed is not None:
        shortcuts["sim.seed"] = args.seed
    if args.latency:
        shortcuts["replay.latency"] = args.latency
    if shortcuts:
        cfg = cfg.with_overrides(shortcuts)
    from vla_ros.sim.world import CAMERAS

    missing = [c for c in cfg.robot.camera_names if c not in CAMERAS]
    if missing:
        raise ValueError(f"robot.camera_names: the simulator renders {', '.join(CAMERAS)}; the profile "
                         f"{cfg.robot.name!r} names {', '.join(missing)} (use --robot sim_panda)")
    lanes = ("policy",) if args.no_baselines else LANES
    if args.record and any(x not in lanes for x in lanes_rec):
        raise ValueError(f"--record-lanes: {args.record_lanes!r} names a lane that does not run (--no-baselines runs "
                         "only policy)")
    out = run_sim_eval(cfg, task=cfg.sim.task, episodes=args.episodes, seed=cfg.sim.seed, out_dir=args.out,
                       record=args.record, record_lanes=lanes_rec, lanes=lanes, gifs=not args.no_gifs,
                       plots=not args.no_plots, progress=not args.no_progress)
    print(out.table)
    if args.record:
        print(f"bags: {args.record}/ep_XXX" if len(lanes_rec) == 1
              else f"bags: {args.record}/{{{','.join(lanes_rec)}}}/ep_XXX")
    print(f"report: {out.report_path}\nmetrics: {out.metrics_path}")
    return 0
