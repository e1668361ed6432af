"""`vla-ros run`: the whole graph (policy node + executor node [+ sim_node]) without `ros2 launch`.

The options are the launch file's arguments (same names, same meaning, same validation through
`vla_ros.ros.launch_plan`), so `vla-ros run --robot franka --policy hold` starts what
`ros2 launch vla_ros vla.launch.py robot:=franka policy:=hold` starts, without `ros2 launch`.
`vla-ros run --sim --policy hold` starts what `sim.launch.py` starts: the same two nodes plus
sim_node (a MuJoCo arm, in its own process) with every node on sim time. The executor's dry run
stays on there too: `--dry-run false` lets the policy move the simulated arm.

By default the executor node runs in its own process, as under the launch file: in one process
the control loop shares the GIL with decoding and inference and misses ticks under camera load
(bench/soak_bench.py). `--composed` puts both nodes in this process (one thing to start, chunks
never leave the process). Ctrl-C (SIGINT) or SIGTERM stops both; if the executor process dies the
runner says so and exits 1 (the sim process likewise); shutdown is bounded (`SHUTDOWN_TIMEOUT`),
even with an inference stuck.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading

from vla_ros.ros.launch_plan import LAUNCH_ARGUMENTS, SIM_ARGUMENTS, SIM_LAUNCH_ARGUMENTS, NodeSpec

# After Ctrl-C the runner leaves within this many seconds whatever hangs (a stuck inference, a DDS
# teardown), with exit code 1, so a supervisor (launch respawn, systemd) can start it again.
SHUTDOWN_TIMEOUT = 15.0
SIM_STOP_TIMEOUT = 5.0  # [s] the sim process gets this long after SIGINT before it is killed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run policy node + executor node (no ros2 launch needed)",
                       description=__doc__.split("\n\n")[0])
    sim_help = {a.name: a for a in SIM_LAUNCH_ARGUMENTS}
    # default None: only the options given reach the plan, which fills in its own defaults (those of
    # vla.launch.py, or of sim.launch.py with --sim, where e.g. --use-sim-time false is refused).
    for a in LAUNCH_ARGUMENTS:
        text = a.description if sim_help[a.name].description == a.description else (
            f"{a.description} With --sim: {sim_help[a.name].description}")
        p.add_argument(f"--{a.name.replace('_', '-')}", dest=a.name, default=None, metavar="VALUE",
                       help=f"{text} (default: {a.default!r})")
    p.add_argument("--composed", action="store_true",
                   help="run both nodes in this one process (default: the executor node in its own process, "
                        "which keeps the control loop steady under camera/inference load)")
    sim = p.add_argument_group("simulation (--sim)")
    sim.add_argument("--sim", action="store_true",
                     help="also start sim_node (a simulated Panda in MuJoCo, in its own process) and run every node "
                          "on its /clock, as sim.launch.py does. dry_run stays ON: the arm moves only with "
                          "--dry-run false")
    for a in SIM_ARGUMENTS:
        sim.add_argument(f"--{a.name.replace('_', '-')}", dest=a.name, default=None, metavar="VALUE",
                         help=f"--sim only: {a.description}")
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


def start_sim_process(spec: NodeSpec, directory: str, **popen_kwargs) -> subprocess.Popen:
    """sim_node of a sim plan in its own process, which dies with the runner (`composed.start_child`)."""
    from vla_ros.ros.composed import start_child

    return start_child(spec, directory, "sim", **popen_kwargs)


def stop_sim_process(proc: subprocess.Popen, timeout: float = SIM_STOP_TIMEOUT) -> int:
    """SIGINT the sim process, kill it after `timeout` s; its exit code."""
    from vla_ros.ros.composed import stop_child

    return stop_child(proc, timeout, "sim")


def _wait_graph_and_sim(graph, sim: subprocess.Popen) -> int:
    """`graph.wait()`, but also 1 (said on stderr) as soon as the sim process exits."""
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(graph.wait()), name="graph-wait", daemon=True)
    waiter.start()
    while waiter.is_alive():
        code = sim.poll()
        if code is not None:
            print(f"vla-ros run: the sim process (pid {sim.pid}) exited with code {code}; stopping",
                  file=sys.stderr, flush=True)
            return 1
        waiter.join(timeout=0.1)
    return result[0] if result else 1


def run(args: argparse.Namespace) -> int:
    import tempfile

    from vla_ros.ros.composed import start_graph, start_split
    from vla_ros.ros.node_main import handle_sigint
    from vla_ros.ros.launch_plan import build_plan, build_sim_plan

    given = {a.name: getattr(args, a.name) for a in LAUNCH_ARGUMENTS if getattr(args, a.name) is not None}
    sim_given = {a.name: getattr(args, a.name) for a in SIM_ARGUMENTS if getattr(args, a.name) is not None}
    if sim_given and not args.sim:
        raise ValueError(f"--{next(iter(sim_given)).replace('_', '-')}: only with --sim")
    plan = build_sim_plan({**given, **sim_given}) if args.sim else build_plan(given)
    # SIGTERM (systemd, a supervisor) stops as cleanly as Ctrl-C: the executor process is stopped too;
    # SIGINT stops it even when this process was started with SIGINT ignored (`vla-ros run &` in a script).
    signal.signal(signal.SIGTERM, _raise_interrupt)
    handle_sigint()
    tmpdir = sim = None
    if args.sim:  # first: its /clock is what the other nodes run on
        tmpdir = tempfile.TemporaryDirectory(prefix="vla_ros_sim_")
        sim = start_sim_process(plan.nodes[2], tmpdir.name)
    try:
        graph = start_graph(plan) if args.composed else start_split(plan)
    except BaseException:
        if sim is not None:
            stop_sim_process(sim)
            tmpdir.cleanup()
        raise
    cfg = plan.config
    where = "one process" if args.composed else f"executor in process {graph.executor_pid}"
    if sim is not None:
        where += f", sim_node in process {sim.pid} ({cfg.sim.task}, seed {cfg.sim.seed})"
    target = "THE SIMULATED ARM" if sim is not None else "THE ROBOT"
    print(f"vla-ros run: {cfg.policy.type} on robot {cfg.robot.name} ({where}); commands "
          f"{'PREVIEW ONLY (dry_run)' if cfg.executor.dry_run else 'TO ' + target}; Ctrl-C to stop", flush=True)
    code = 0
    try:
        code = graph.wait() if sim is None else _wait_graph_and_sim(graph, sim)
    except KeyboardInterrupt:
        pass
    finally:
        _bound_shutdown(SHUTDOWN_TIMEOUT)
        try:
            graph.stop()
            if sim is not None:
                stop_sim_process(sim)
                tmpdir.cleanup()
        except KeyboardInterrupt:  # a second Ctrl-C: leave now
            code = 1
    problem = getattr(graph.policy_node, "shutdown_problem", "")
    if problem:  # e.g. an inference stuck in a driver was abandoned: exit non-zero so a supervisor restarts
        print(f"vla-ros run: unclean shutdown: {problem}", file=sys.stderr, flush=True)
        os._exit(1)
    return code
