"""The vla_ros node graph in ONE process (manual composition), for `vla-ros run`.

It starts the node plan of `vla_ros.ros.launch_plan` - the same plan `vla.launch.py` starts as
separate processes - where `ros2 launch` is not installed, or where one process is wanted (chunks
never leave the process; one thing to start and stop). Each node spins in its own thread on its
own single-threaded executor, so the control loop never waits behind policy callbacks and can run
at a realtime priority (``executor.realtime_priority``); the policy node's inference runs on its
own worker thread as always.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter

from vla_ros.ros.executor_node import ExecutorNode, set_realtime_priority
from vla_ros.ros.launch_plan import LaunchPlan
from vla_ros.ros.policy_node import PolicyNode


# The control loop shares one interpreter with policy inference here: a thread that wants the GIL
# waits up to the switch interval for a busy thread to yield it (CPython default 5 ms, half a
# control period at 100 Hz). 0.5 ms bounds that wait (measured in bench/executor_bench.py).
GIL_SWITCH_INTERVAL = 0.0005


def _overrides(params: dict) -> list[Parameter]:
    # The node declares its parameters from the plan's config; only use_sim_time is extra.
    return [Parameter("use_sim_time", value=bool(params.get("use_sim_time", False)))]


@dataclass
class ComposedGraph:
    """The running nodes of a plan; `stop()` (or leaving the `with` block) shuts them down."""

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

    def wait(self) -> None:
        """Block until the context shuts down (Ctrl-C in `vla-ros run`)."""
        for t in self._threads:
            while t.is_alive():
                t.join(timeout=0.5)

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
    pol_spec, ex_spec = plan.nodes
    policy_node = PolicyNode(plan.config, node_name=pol_spec.name, namespace=pol_spec.namespace,
                             context=context, parameter_overrides=_overrides(pol_spec.parameters))
    executor_node = ExecutorNode(plan.config, node_name=ex_spec.name, namespace=ex_spec.namespace,
                                 context=context, parameter_overrides=_overrides(ex_spec.parameters))
    graph = ComposedGraph(plan, context, policy_node, executor_node, _owns_context=owns)
    # Configure + activate before anything spins: no callback runs during the transitions.
    if not policy_node.start():
        policy_node.get_logger().error("policy node did not become active; see the error above")
    # The policy node gets two threads: its ~/load_policy callback group runs beside the rest.
    for node, realtime, threads in ((executor_node, plan.config.executor.realtime_priority, 1), (policy_node, 0, 2)):
        ex = SingleThreadedExecutor(context=context) if threads == 1 else MultiThreadedExecutor(threads, context=context)
        ex.add_node(node)
        graph._executors.append(ex)

        def spin(ex=ex, node=node, realtime=realtime) -> None:  # noqa: B023 - bound by the defaults
            if realtime > 0:
                err = set_realtime_priority(realtime)
                if err:
                    node.get_logger().warning(f"executor.realtime_priority={realtime} not applied: {err}")
            try:
                ex.spin()
            except ExternalShutdownException:
                pass

        t = threading.Thread(target=spin, name=f"spin-{node.get_name()}", daemon=True)
        graph._threads.append(t)
        t.start()
    return graph
