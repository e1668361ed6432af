"""The vla_ros node graph for `vla-ros run`: two processes (default) or one (`--composed`).

Both start the node plan of `vla_ros.ros.launch_plan` - the same plan `vla.launch.py` starts.

- `start_split` (the default of `vla-ros run`): the policy node runs in this process and the
  executor node in its own, fresh interpreter (``python -m vla_ros.ros.composed --executor-child``,
  never a fork: torch threads may be live here), with the plan's executor parameters in a ROS
  parameter file, exactly as the launch file starts it. Why: in one process the control loop
  shares the GIL with image decoding and inference; at 2 cameras x 640x480 x 30 Hz on 2 cores
  11.6 % of the 100 Hz ticks went missing (gaps up to 794 ms) against a worst gap of 80 ms in two
  processes (issue 11, bench/soak_bench.py). The child gets SIGINT when this process dies
  (PR_SET_PDEATHSIG on Linux), so it never outlives the runner.
- `start_graph` (`vla-ros run --composed`): both nodes in ONE process (manual composition), each
  spinning in its own thread on its own executor; chunks never leave the process and there is one
  thing to start and stop, but the control loop competes with the policy for the GIL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.parameter import Parameter

from vla_ros.ros.executor_node import GIL_SWITCH_INTERVAL, ExecutorNode, set_realtime_priority
from vla_ros.ros.launch_plan import LaunchPlan, NodeSpec

if TYPE_CHECKING:  # imported where used: the executor child process never loads the policy side
    from vla_ros.ros.policy_node import PolicyNode


# How long the executor process gets to leave after SIGINT before it is killed (its DDS teardown
# can hang, issue 11); the whole runner must stop within a bound so a supervisor's respawn works.
CHILD_STOP_TIMEOUT = 5.0
CHILD_FLAG = "--child"
# Nodes that run as children of the runner: name -> module with ``main(argv)``.
CHILD_MAINS = {"executor": "vla_ros.ros.executor_node", "sim": "vla_ros.ros.sim_node"}


def _overrides(params: dict) -> list[Parameter]:
    # The node declares its parameters from the plan's config; only use_sim_time is extra.
    return [Parameter("use_sim_time", value=bool(params.get("use_sim_time", False)))]


def _spin_in_thread(ex, node, realtime: int) -> threading.Thread:
    def spin() -> None:
        if realtime > 0:
            err = set_realtime_priority(realtime)
            if err:
                node.get_logger().warning(f"executor.realtime_priority={realtime} not applied: {err}")
        try:
            ex.spin()
        except ExternalShutdownException:
            pass

    t = threading.Thread(target=spin, name=f"spin-{node.get_name()}", daemon=True)
    t.start()
    return t


def _start_policy_node(plan: LaunchPlan, context: Context) -> PolicyNode:
    from vla_ros.ros.policy_node import PolicyNode

    pol_spec = plan.nodes[0]
    node = PolicyNode(plan.config, node_name=pol_spec.name, namespace=pol_spec.namespace,
                      context=context, parameter_overrides=_overrides(pol_spec.parameters))
    # Configure + activate before anything spins: no callback runs during the transitions.
    if not node.start():
        node.get_logger().error("policy node did not become active; see the error above")
    return node


@dataclass
class ComposedGraph:
    """The running nodes of a plan in one process; `stop()` (or leaving the `with` block) shuts them down."""

    plan: LaunchPlan
    context: Context
    policy_node: PolicyNode
    executor_node: ExecutorNode
    _executors: list = field(default_factory=list)
    _threads: list = field(default_factory=list)
    _owns_context: bool = False

    def __enter__(self) -> "ComposedGraph":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait(self) -> int:
        """Block until the context shuts down (Ctrl-C in `vla-ros run`); 0."""
        for t in self._threads:
            while t.is_alive():
                t.join(timeout=0.5)
        return 0

    def stop(self) -> None:
        for ex in self._executors:
            ex.shutdown(timeout_sec=2.0)
        for t in self._threads:
            t.join(timeout=5.0)
        for node in (self.policy_node, self.executor_node):
            node.destroy_node()
        if self._owns_context and self.context.ok():
            rclpy.shutdown(context=self.context)


def start_graph(plan: LaunchPlan, context: Context | None = None, args: list[str] | None = None) -> ComposedGraph:
    """Create both nodes of `plan` in this process, activate the policy node, spin each in a thread."""
    owns = context is None
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
    if context is None:
        context = Context()
        rclpy.init(args=args, context=context)
    ex_spec = plan.nodes[1]
    policy_node = _start_policy_node(plan, context)
    executor_node = ExecutorNode(plan.config, node_name=ex_spec.name, namespace=ex_spec.namespace,
                                 context=context, parameter_overrides=_overrides(ex_spec.parameters))
    graph = ComposedGraph(plan, context, policy_node, executor_node, _owns_context=owns)
    # Each node on its own single-threaded executor (the policy node's ~/load_policy has its own thread).
    for node, realtime in ((executor_node, plan.config.executor.realtime_priority), (policy_node, 0)):
        ex = SingleThreadedExecutor(context=context)
        ex.add_node(node)
        graph._executors.append(ex)
        graph._threads.append(_spin_in_thread(ex, node, realtime))
    return graph


# ---------------------------------------------------------------------------- two processes
def node_command(spec: NodeSpec, params_file: str, child: str) -> list[str]:
    """A child node's command line (`child` in CHILD_MAINS): what launch_ros runs for `spec`, through
    our child entry, which makes the child die with the runner."""
    cmd = [sys.executable, "-m", "vla_ros.ros.composed", CHILD_FLAG, child, str(os.getpid()),
           "--ros-args", "--params-file", params_file, "-r", f"__node:={spec.name}"]
    if spec.namespace:
        cmd += ["-r", f"__ns:=/{spec.namespace.strip('/')}"]
    cmd += list(spec.ros_arguments)
    for old, new in spec.remappings:
        cmd += ["-r", f"{old}:={new}"]
    return cmd


def executor_command(spec: NodeSpec, params_file: str) -> list[str]:
    """The executor process's command line."""
    return node_command(spec, params_file, "executor")


def start_child(spec: NodeSpec, directory: str, child: str, **popen_kwargs) -> subprocess.Popen:
    """`spec` as a child process (`child` in CHILD_MAINS) in its own session, so a terminal's Ctrl-C
    reaches only the runner, which then stops it with exactly one SIGINT (`stop_child`)."""
    return subprocess.Popen(node_command(spec, write_params_file(spec, directory), child), start_new_session=True,
                            **popen_kwargs)


def stop_child(proc: subprocess.Popen, timeout: float, what: str) -> int | None:
    """SIGINT a child process, kill it after `timeout` s (saying so); its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"vla-ros run: the {what} process did not stop within {timeout:g} s of SIGINT; killing it",
                  file=sys.stderr, flush=True)
            proc.kill()
            proc.wait()
    return proc.returncode


def write_params_file(spec: NodeSpec, directory: str) -> str:
    """`spec.parameters` as a ROS 2 parameter file (``/**: ros__parameters: {dotted.key: value}``),
    the file launch_ros writes for ``Node(parameters=[dict])``."""
    path = os.path.join(directory, f"{spec.name}.params.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump({"/**": {"ros__parameters": dict(spec.parameters)}}, f, sort_keys=True)
    return path


@dataclass
class SplitGraph:
    """The policy node in this process, the executor node in `executor_process`."""

    plan: LaunchPlan
    context: Context
    policy_node: PolicyNode
    executor_process: subprocess.Popen
    _executor: object = None
    _thread: threading.Thread | None = None
    _tmpdir: tempfile.TemporaryDirectory | None = None
    _owns_context: bool = False
    _stopped: bool = False

    def __enter__(self) -> "SplitGraph":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def executor_pid(self) -> int:
        return self.executor_process.pid

    def executor_alive(self) -> bool:
        return self.executor_process.poll() is None

    def wait(self) -> int:
        """Block until Ctrl-C (KeyboardInterrupt propagates), the context shuts down (0) or the executor
        process exits (1, after saying so on stderr: a runner without its executor must not look alive)."""
        while True:
            code = self.executor_process.poll()
            if code is not None:
                print(f"vla-ros run: the executor process (pid {self.executor_pid}) exited with code {code}; "
                      "no commands reach the robot any more, stopping", file=sys.stderr, flush=True)
                return 1
            if self._thread is None or not self._thread.is_alive():
                return 0
            time.sleep(0.1)

    def stop_executor(self, timeout: float = CHILD_STOP_TIMEOUT) -> int | None:
        """SIGINT the executor process, kill it after `timeout` s; its exit code."""
        return stop_child(self.executor_process, timeout, "executor")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.stop_executor()  # first: the robot side must not outlive the runner
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=2.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.policy_node.destroy_node()
        if self._owns_context and self.context.ok():
            rclpy.shutdown(context=self.context)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()


def start_split(plan: LaunchPlan, context: Context | None = None, args: list[str] | None = None) -> SplitGraph:
    """Start the executor node of `plan` in its own process, then the policy node here (spinning in a thread).

    The executor process is started first so its start-up overlaps the policy's loading; it holds
    the measured end-effector pose until chunks come. If the policy node cannot be created, the
    executor process is stopped before the error propagates.
    """
    owns = context is None
    tmpdir = tempfile.TemporaryDirectory(prefix="vla_ros_run_")
    ex_spec = plan.nodes[1]
    # Its own session: a terminal's Ctrl-C reaches only this process, which then stops the executor
    # with exactly one SIGINT (a second one would interrupt its shutdown half-way).
    proc = start_child(ex_spec, tmpdir.name, "executor")
    try:
        if context is None:
            context = Context()
            rclpy.init(args=args, context=context)
        policy_node = _start_policy_node(plan, context)
    except BaseException:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=CHILD_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
        tmpdir.cleanup()
        raise
    graph = SplitGraph(plan, context, policy_node, proc, _tmpdir=tmpdir, _owns_context=owns)
    ex = SingleThreadedExecutor(context=context)  # ~/load_policy runs beside it (policy_node.ServiceThread)
    ex.add_node(policy_node)
    graph._executor = ex
    graph._thread = _spin_in_thread(ex, policy_node, 0)
    return graph


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGINT this process when the runner dies (even by SIGKILL), so no executor or sim is orphaned."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the runner's stop() still stops us
        return
    if os.getppid() != parent_pid:  # the runner died before prctl took effect
        sys.exit(1)


def _child_main(argv: Sequence[str]) -> int:
    """``python -m vla_ros.ros.composed --child executor|sim PARENT_PID --ros-args ...``: that node's main."""
    import importlib

    if len(argv) < 4 or argv[1] != CHILD_FLAG or argv[2] not in CHILD_MAINS or not argv[3].isdigit():
        print(f"usage: python -m vla_ros.ros.composed {CHILD_FLAG} {{{'|'.join(CHILD_MAINS)}}} PARENT_PID --ros-args "
              "...",
              file=sys.stderr)
        return 2
    _die_with_parent(int(argv[3]))
    node = importlib.import_module(CHILD_MAINS[argv[2]])
    return node.main([f"{argv[2]}_node", *argv[4:]])


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv))
