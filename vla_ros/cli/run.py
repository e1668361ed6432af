"""`vla-ros run`: the whole graph (policy node + executor node) in one process.

The options are the launch file's arguments (same names, same meaning, same validation through
`vla_ros.ros.launch_plan`), so `vla-ros run --robot franka --policy hold` starts what
`ros2 launch vla_ros vla.launch.py robot:=franka policy:=hold` starts, without `ros2 launch`.
"""

from __future__ import annotations

import argparse

from vla_ros.ros.launch_plan import LAUNCH_ARGUMENTS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run policy node + executor node in one process (no ros2 launch needed)",
                       description=__doc__.splitlines()[0])
    for a in LAUNCH_ARGUMENTS:
        p.add_argument(f"--{a.name.replace('_', '-')}", dest=a.name, default=a.default, metavar="VALUE",
                       help=f"{a.description} (default: {a.default!r})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vla_ros.ros.composed import start_graph
    from vla_ros.ros.launch_plan import build_plan

    plan = build_plan({a.name: getattr(args, a.name) for a in LAUNCH_ARGUMENTS})
    graph = start_graph(plan)
    cfg = plan.config
    print(f"vla-ros run: {cfg.policy.type} on robot {cfg.robot.name}; commands "
          f"{'PREVIEW ONLY (dry_run)' if cfg.executor.dry_run else 'TO THE ROBOT'}; Ctrl-C to stop", flush=True)
    try:
        graph.wait()
    except KeyboardInterrupt:
        pass
    finally:
        graph.stop()
    return 0
