"""`vla-ros run --sim` as a real command: three nodes on sim time, dry run by default, clean stop.

The plan itself is tested in test/test_launch_plan.py and the closed loop in
test_sim_closed_loop_dds.py; this checks the runner's processes: sim_node in its own child process
whose /clock every node follows, the commands on preview/ topics unless ``--dry-run false``,
Ctrl-C stopping every process with exit code 0, and a dead sim process ending the runner with 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from ros_helpers import children_of, pid_alive, spin_until

RUN = (sys.executable, "-c", "import sys; from vla_ros.cli import main; sys.exit(main())", "run", "--sim",
       "--policy", "hold", "--real-time-factor", "2", "--image-size", "32")
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


class Run:
    def __init__(self, tmp_path, context, *args: str):
        self.log = tmp_path / "run.log"
        self._f = open(self.log, "w")
        self.proc = subprocess.Popen([*RUN, *args], stdout=self._f, stderr=subprocess.STDOUT, text=True)
        self.node = Node("sim_run_probe", context=context)
        self.clock: list[float] = []
        self.preview: list[PoseStamped] = []
        self.commands: list[PoseStamped] = []
        self.node.create_subscription(Clock, "/clock",
                                      lambda m: self.clock.append(m.clock.sec + m.clock.nanosec * 1e-9),
                                      RELIABLE)
        self.node.create_subscription(PoseStamped, "/preview/target_pose", self.preview.append, RELIABLE)
        self.node.create_subscription(PoseStamped, "/target_pose", self.commands.append, RELIABLE)
        self.ex = SingleThreadedExecutor(context=context)
        self.ex.add_node(self.node)

    def output(self) -> str:
        self._f.flush()
        return self.log.read_text()

    def child(self, marker: str) -> int | None:
        kids = [pid for pid, cmd in children_of(self.proc.pid).items() if marker in cmd]
        return kids[0] if kids else None

    def close(self) -> None:
        self.ex.shutdown()
        self.node.destroy_node()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for marker in ("--child sim", "--child executor"):
            pid = self.child(marker)
            if pid:
                os.kill(pid, signal.SIGKILL)
        self._f.close()


@pytest.fixture
def run_factory(rclpy_context, tmp_path, render_ok):
    runs = []

    def make(*args: str) -> Run:
        r = Run(tmp_path, rclpy_context, *args)
        runs.append(r)
        return r

    yield make
    for r in runs:
        r.close()


@pytest.mark.timeout(120)
def test_run_sim_starts_three_nodes_on_sim_time_in_dry_run_and_ctrl_c_stops_all(run_factory):
    run = run_factory()
    ok = spin_until(run.ex, lambda: len(run.preview) >= 30 or run.proc.poll() is not None, timeout=60)
    assert ok and run.proc.poll() is None, run.output()
    sim, executor = run.child("--child sim"), run.child("--child executor")
    assert sim and executor, f"children of the runner: {children_of(run.proc.pid)}"
    out = run.output()
    assert f"sim_node in process {sim}" in out and "PREVIEW ONLY (dry_run)" in out
    wanted = {"vla_sim", "vla_policy", "vla_executor"}  # (node names are discovered apart from the data)
    assert spin_until(run.ex, lambda: wanted <= {n for n, _ in run.node.get_node_names_and_namespaces()}, timeout=15), (
        run.node.get_node_names_and_namespaces())
    assert not run.commands, "dry run: nothing may reach the simulated arm's command topic"
    # The executor runs on the simulator's clock: its command stamps are sim time, far from the wall clock.
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in run.preview]
    assert run.clock and max(stamps) <= run.clock[-1] + 0.5 and min(stamps) >= 1.0

    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(timeout=30) == 0, run.output()
    assert not pid_alive(sim) and not pid_alive(executor), "a child process outlived the runner"


@pytest.mark.timeout(120)
def test_run_sim_exits_nonzero_and_says_so_when_the_sim_process_dies(run_factory):
    run = run_factory("--dry-run", "false")
    ok = spin_until(run.ex, lambda: len(run.commands) >= 10 or run.proc.poll() is not None, timeout=60)
    assert ok and run.proc.poll() is None, run.output()
    sim = run.child("--child sim")
    assert sim, run.output()
    os.kill(sim, signal.SIGKILL)
    assert run.proc.wait(timeout=30) == 1, run.output()
    assert f"the sim process (pid {sim}) exited with code -9" in run.output()
