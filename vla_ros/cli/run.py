"""`vla-ros run`: the whole graph (policy node + executor node) without `ros2 launch`.

The options are the launch file's arguments (same names, same meaning, same validation through
`vla_ros.ros.launch_plan`), so `vla-ros run --robot franka --policy hold` starts what
`ros2 launch vla_ros vla.launch.py robot:=franka policy:=hold` starts, without `ros2 launch`.

By default the executor node runs in its own process, as under the launch file: in one process
the control loop shares the GIL with decoding and inference and misses ticks under camera load
(bench/soak_bench.py). `--composed` puts both nodes in this process (one thing to start, chunks
never leave the process). Ctrl-C (SIGINT) or SIGTERM stops both; if the executor process dies the
runner says so and exits 1; shutdown is bounded (`SHUTDOWN_TIMEOUT`), even with an inference stuck.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from vla_ros.ros.launch_plan import LAUNCH_ARGUMENTS

# After Ctrl-C the runner leaves within this many seconds whatever hangs (a stuck inference, a DDS
# teardown), with exit code 1, so a supervisor (launch respawn, systemd) can start it again.
SHUTDOWN_TIMEOUT = 15.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run policy node + executor node (no ros2 launch needed)",
                       description=__doc__.split("\n\n")[0])
    for a in LAUNCH_ARGUMENTS:
        p.add_argument(f"--{a.name.replace('_', '-')}", dest=a.name, default=a.default, metavar="VALUE",
                       help=f"{a.description} (default: {a.default!r})")
    p.add_argument("--composed", action="store_true",
                   help="run both nodes in this one process (default: the executor node in its own process, "
                        "which keeps the control loop steady under camera/inference load)")
    p.set_defaults(func=run)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _bound_shutdown(timeout: float) -> None:
    """Leave the process `timeout` s from now if the clean shutdown has not finished by then."""
    def force() -> None:
        print(f"vla-ros run: shutdown did not finish within {timeout:g} s; exiting", file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(timeout, force)
    timer.daemon = True
    timer.start()


def run(args: argparse.Namespace) -> int:
    from vla_ros.ros.composed import start_graph, start_split
    from vla_ros.ros.launch_plan import build_plan

    plan = build_plan({a.name: getattr(args, a.name) for a in LAUNCH_ARGUMENTS})
    # SIGTERM (systemd, a supervisor) stops as cleanly as Ctrl-C: the executor process is stopped too.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    graph = start_graph(plan) if args.composed else start_split(plan)
    cfg = plan.config
    where = "one process" if args.composed else f"executor in process {graph.executor_pid}"
    print(f"vla-ros run: {cfg.policy.type} on robot {cfg.robot.name} ({where}); commands "
          f"{'PREVIEW ONLY (dry_run)' if cfg.executor.dry_run else 'TO THE ROBOT'}; Ctrl-C to stop", flush=True)
    code = 0
    try:
        code = graph.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _bound_shutdown(SHUTDOWN_TIMEOUT)
        try:
            graph.stop()
        except KeyboardInterrupt:  # a second Ctrl-C: leave now
            code = 1
    problem = getattr(graph.policy_node, "shutdown_problem", "")
    if problem:  # e.g. an inference stuck in a driver was abandoned: exit non-zero so a supervisor restarts
        print(f"vla-ros run: unclean shutdown: {problem}", file=sys.stderr, flush=True)
        os._exit(1)
    return code
