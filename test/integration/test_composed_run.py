"""`vla-ros run`: synthetic sensors (another process) -> policy -> executor -> commands.

Real rclpy nodes over DDS, the real launch plan, a tiny flow-matching checkpoint loaded through the
registry. The composed graph (`--composed`, both nodes in one process) runs in the test process;
also the runtime policy swap: `~/load_policy` between two checkpoints changes the policy id of the
chunks while the executor keeps streaming (its watchdog never trips). The default `vla-ros run`
runs as a real command: its executor node lives in a child process, Ctrl-C stops both, and a dead
executor process makes the runner say so and exit non-zero.
"""

import os
import signal
import subprocess
import sys

import pytest
from geometry_msgs.msg import PoseStamped
from policy_helpers import make_checkpoint
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ros_helpers import children_of, pid_alive, spin_until, start_process, stop_process
from vla_ros.msg import ActionChunk
from vla_ros.ros.composed import start_graph
from vla_ros.ros.launch_plan import build_plan

SENSORS = ("vla_ros.ros.sensor_sim", "--camera", "primary=/camera/primary/image_raw",
           "--camera", "wrist=/camera/wrist/image_raw", "--instruction", "pick up the red cube",
           "--state-rate", "30", "--camera-rate", "15", "--duration", "120")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two 2-camera checkpoints and one 3-camera one, built before any graph runs (building one
    while the composed graph runs in this process would starve it of CPU and the GIL)."""
    two = [str(make_checkpoint(tmp_path_factory.mktemp(f"ckpt{i}"), seed=i)) for i in range(2)]
    three = str(make_checkpoint(tmp_path_factory.mktemp("three"), cameras=("primary", "wrist", "side")))
    return [*two, three]


@pytest.mark.timeout(180)
def test_chunks_flow_from_sensors_to_executor_commands(rclpy_context, checkpoints):
    plan = build_plan({"policy": "flow_matching", "checkpoint": checkpoints[0], "dry_run": "false",
                       "set": "policy.rate_hz=4;policy.num_steps=3"})
    sensors = start_process(*SENSORS)
    graph = start_graph(plan, context=rclpy_context)
    probe = Node("run_probe", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(probe)
    chunks, commands = [], []
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    probe.create_subscription(ActionChunk, "action_chunk", chunks.append, reliable)
    probe.create_subscription(PoseStamped, "target_pose", commands.append,
                              QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
    try:
        assert graph.policy_node.lifecycle_state == "active"
        ok = spin_until(ex, lambda: len(chunks) >= 3 and len(commands) >= 50, timeout=90)
        assert ok, f"chunks={len(chunks)} commands={len(commands)}\n" + stop_process(sensors)
        assert {c.policy_id for c in chunks} == {"flow_matching"}
        assert [c.seq for c in chunks[:3]] == sorted(c.seq for c in chunks[:3])
        assert chunks[0].checkpoint_id.startswith(checkpoints[0].rstrip("/").split("/")[-1] + "@")
        assert all(c.header.frame_id == "base_link" for c in commands)
        status = graph.executor_node.core.status(graph.executor_node.now())
        assert status.chunks_received >= 1 and status.chunks_rejected == 0
    finally:
        ex.shutdown()
        probe.destroy_node()
        graph.stop()
        stop_process(sensors)


@pytest.mark.timeout(180)
def test_runtime_swap_changes_policy_without_tripping_the_watchdog(rclpy_context, checkpoints):
    from vla_ros.srv import LoadPolicy

    plan = build_plan({"policy": "flow_matching", "checkpoint": checkpoints[0], "dry_run": "false",
                       "set": "policy.rate_hz=5;policy.num_steps=3"})
    sensors = start_process(*SENSORS)
    graph = start_graph(plan, context=rclpy_context)
    probe = Node("swap_probe", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(probe)
    chunks = []
    probe.create_subscription(ActionChunk, "action_chunk", chunks.append,
                              QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    client = probe.create_client(LoadPolicy, "/vla_policy/load_policy")

    def call(**fields):
        future = client.call_async(LoadPolicy.Request(**fields))
        assert spin_until(ex, future.done, timeout=60), "load_policy did not answer"
        return future.result()

    try:
        assert spin_until(ex, lambda: len(chunks) >= 2, timeout=60), stop_process(sensors)
        assert client.wait_for_service(timeout_sec=10)
        first_id = chunks[-1].checkpoint_id

        # A policy that does not fit (3 cameras on this 2-camera robot): refused, the old one keeps going.
        bad = call(checkpoint=checkpoints[2])
        assert not bad.success and "expects 3 camera(s)" in bad.message and "missing: side" in bad.message
        assert bad.checkpoint_id == first_id
        n = len(chunks)
        assert spin_until(ex, lambda: len(chunks) >= n + 2, timeout=30)
        assert chunks[-1].checkpoint_id == first_id

        trips_before = graph.executor_node.core.status(graph.executor_node.now()).watchdog_trips
        ok = call(checkpoint=checkpoints[1])
        assert ok.success, ok.message
        assert ok.checkpoint_id != first_id
        assert ok.checkpoint_id.startswith(checkpoints[1].rstrip("/").split("/")[-1] + "@")
        n = len(chunks)
        assert spin_until(ex, lambda: len(chunks) >= n + 3, timeout=30)
        assert chunks[-1].checkpoint_id == ok.checkpoint_id and chunks[-1].policy_id == "flow_matching"
        assert graph.policy_node.get_parameter("policy.checkpoint").value == checkpoints[1]
        status = graph.executor_node.core.status(graph.executor_node.now())
        assert status.watchdog_trips == trips_before  # the executor never ran dry during the swap

        # Another policy type altogether: the policy_id of the chunks changes too.
        held = call(policy_type="hold", checkpoint="")
        assert held.success and held.policy_id == "hold", held.message
        n = len(chunks)
        assert spin_until(ex, lambda: len(chunks) >= n + 2, timeout=30)
        assert chunks[-1].policy_id == "hold" and chunks[-1].checkpoint_id == ""
    finally:
        ex.shutdown()
        probe.destroy_node()
        graph.stop()
        stop_process(sensors)


# ----------------------------------------------------------------------------- default: two processes
RUN = (sys.executable, "-c", "import sys; from vla_ros.cli import main; sys.exit(main())", "run")


class RunProcess:
    """`vla-ros run ...` as a real command (output in a file: a full pipe would block it)."""

    def __init__(self, tmp_path, *args: str, sigint_ignored: bool = False):
        self.log = tmp_path / "run.log"
        self._f = open(self.log, "w")
        # sigint_ignored: started as `vla-ros run &` from a script is (SIGINT inherited as SIG_IGN).
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        self.proc = subprocess.Popen([*RUN, *args], stdout=self._f, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=ignore)

    def output(self) -> str:
        self._f.flush()
        return self.log.read_text()

    def executor_child(self) -> int | None:
        kids = [pid for pid, cmd in children_of(self.proc.pid).items() if "--child executor" in cmd]
        return kids[0] if kids else None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._f.close()


def _probe(context, name):
    probe = Node(name, context=context)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(probe)
    commands = []
    probe.create_subscription(PoseStamped, "target_pose", commands.append,
                              QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
    return probe, ex, commands


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["plain", "started_with_sigint_ignored"])
def test_default_run_has_the_executor_in_its_own_process_and_ctrl_c_stops_both(rclpy_context, tmp_path,
                                                                               sigint_ignored):
    sensors = start_process(*SENSORS)
    run = RunProcess(tmp_path, "--policy", "hold", "--dry-run", "false", sigint_ignored=sigint_ignored)
    probe, ex, commands = _probe(rclpy_context, "run_default_probe")
    try:
        ok = spin_until(ex, lambda: len(commands) >= 30 or run.proc.poll() is not None, timeout=60)
        assert ok and run.proc.poll() is None, run.output()
        child = run.executor_child()
        assert child is not None and child != run.proc.pid, (
            f"no executor child of {run.proc.pid}: {children_of(run.proc.pid)}")
        assert f"executor in process {child}" in run.output()
        names = [n for n, _ in probe.get_node_names_and_namespaces()]
        assert "vla_executor" in names and "vla_policy" in names
        assert all(c.header.frame_id == "base_link" for c in commands)

        run.proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert run.proc.wait(timeout=30) == 0, run.output()
        assert not pid_alive(child), "the executor process outlived the runner"
    finally:
        ex.shutdown()
        probe.destroy_node()
        run.close()
        stop_process(sensors)


@pytest.mark.timeout(120)
def test_default_run_exits_nonzero_and_says_so_when_the_executor_process_dies(rclpy_context, tmp_path):
    sensors = start_process(*SENSORS)
    run = RunProcess(tmp_path, "--policy", "hold", "--dry-run", "false")
    probe, ex, commands = _probe(rclpy_context, "run_death_probe")
    try:
        ok = spin_until(ex, lambda: len(commands) >= 10 or run.proc.poll() is not None, timeout=60)
        assert ok and run.proc.poll() is None, run.output()
        child = run.executor_child()
        assert child is not None, run.output()
        os.kill(child, signal.SIGKILL)
        assert run.proc.wait(timeout=30) == 1, run.output()
        assert f"executor process (pid {child}) exited with code -9" in run.output()
    finally:
        ex.shutdown()
        probe.destroy_node()
        run.close()
        stop_process(sensors)
