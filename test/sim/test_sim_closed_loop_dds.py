"""Real nodes closed loop on sim time: sim_node, policy_node and executor_node over DDS (issue 14).

The graph is what `vla-ros run --sim` starts, from the same plan (`build_sim_plan`) and the same
starters: sim_node in its own process (`vla_ros.cli.run.start_sim_process`), the executor node in
its own process and the policy node in this one (`vla_ros.ros.composed.start_split`), every node
with use_sim_time. The policy is `ScriptedReach`, registered in the policy registry as
``test_sim_reach``: from each observation's EE pose it plans a straight line towards the reach
target at 0.15 m/s (the target is the seeded episode's, read from a physics-only `SimWorld` with the
same seed and handed over as its "checkpoint"). It sees both cameras, so every observation went
through the synchroniser with real renders.

- dry_run off: the simulated arm reaches the target (sim_node's task state says success);
- dry_run left at its default (on): the policy runs and the executor streams to preview/ topics,
  but the arm does not move;
- a policy heading for a point outside the workspace (dry_run off): the arm follows it while its
  chunks stay inside the box; every chunk that leaves it is refused (by the policy node's check,
  before it is even published) and the executor, out of chunks, holds: the arm stops inside.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from vla_ros.core.types import ActionChunk
from vla_ros.msg import ActionChunk as ActionChunkMsg
from vla_ros.msg import ExecutorStatus
from vla_ros.policy import registry
from vla_ros.policy.hold import HoldPolicy

SEED = 3
RTF = 1.5  # faster than real time; the nodes keep up on 2 busy cores at this rate
SPEED = 0.15  # [m/s] of the scripted reach (safety.max_linear_speed of sim_panda: 0.3)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class ScriptedReach(HoldPolicy):
    """Straight to the target (its checkpoint: a directory with target.json) from the observed EE pose."""

    policy_type = "test_sim_reach"

    def __init__(self, target, **kwargs):
        super().__init__(horizon=10, dt=0.1, **kwargs)
        self.target = np.asarray(target, dtype=float)
        self._meta = dataclasses.replace(self._meta, policy_type=self.policy_type, cameras=("primary", "wrist"))
        self.calls = 0

    @classmethod
    def load(cls, checkpoint, device="cpu", dtype="float32"):
        target = json.loads((Path(checkpoint) / "target.json").read_text())["target"]
        return cls(target, device=device, dtype=dtype)

    def infer(self, observation, *, noise=None, guidance=None) -> ActionChunk:
        self.calls += 1
        assert set(observation.images) == {"primary", "wrist"}
        state = observation.ee_state()
        h, dt = self._meta.horizon, self._meta.dt
        rows = np.repeat(state[None, :], h, axis=0)
        rows[:, 6] = 1.0  # open
        to_go = self.target - state[:3]
        dist = float(np.linalg.norm(to_go))
        if dist > 1e-6:
            steps = np.minimum(dist, SPEED * dt * np.arange(1, h + 1))
            rows[:, :3] = state[:3] + np.outer(steps, to_go / dist)
        return ActionChunk(stamp=observation.stamp, dt=dt, actions=rows, frame_id=observation.ee_pose.frame_id,
                           policy_id=self.policy_type)


def scripted_checkpoint(directory: Path, target) -> Path:
    ckpt = directory / "scripted_reach"
    ckpt.mkdir()
    (ckpt / "target.json").write_text(json.dumps({"target": list(map(float, target))}))
    return ckpt


@pytest.fixture
def reach_target(tmp_path, render_ok):
    from vla_ros.sim.world import SimSpec, SimWorld

    with SimWorld(SimSpec(task="reach", seed=SEED, render=False)) as world:
        state = world.task_state()
    return scripted_checkpoint(tmp_path, state["target"]), np.array(state["target"]), np.array(state["tool"])


class Graph:
    """The `vla-ros run --sim` graph + a listener node (task state, executor status, chunks, preview commands)."""

    def __init__(self, context, tmp_path: Path, checkpoint: Path, **arguments: str):
        from vla_ros.cli.run import start_sim_process
        from vla_ros.ros.composed import start_split
        from vla_ros.ros.launch_plan import build_sim_plan

        self.plan = build_sim_plan({"policy": "test_sim_reach", "checkpoint": str(checkpoint), "seed": str(SEED),
                                    "real_time_factor": str(RTF), "image_size": "64", **arguments})
        self.sim = start_sim_process(self.plan.node("vla_sim"), str(tmp_path), stdout=open(tmp_path / "sim.log", "w"),
                                     stderr=open(tmp_path / "sim.err", "w"))
        self.sim_log = tmp_path / "sim.err"
        self.graph = None
        self.test = Node("sim_closed_loop_test", context=context)
        self.states: list[dict] = []
        self.status: list[ExecutorStatus] = []
        self.chunks: list[ActionChunkMsg] = []
        self.preview: list[PoseStamped] = []
        self.commands: list[PoseStamped] = []
        self.test.create_subscription(String, "sim/task_state",
                                      lambda m: self.states.append(json.loads(m.data)), RELIABLE)
        self.test.create_subscription(ExecutorStatus, "executor_status", self.status.append, RELIABLE)
        self.test.create_subscription(ActionChunkMsg, "action_chunk", self.chunks.append, RELIABLE)
        self.test.create_subscription(PoseStamped, "/preview/target_pose", self.preview.append, RELIABLE)
        self.test.create_subscription(PoseStamped, "target_pose", self.commands.append, RELIABLE)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.test)
        self.graph = start_split(self.plan, context=context)

    def spin_until(self, cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            self.executor.spin_once(timeout_sec=0.02)
            for name, alive in (("sim_node", self.sim.poll() is None), ("executor node", self.graph.executor_alive())):
                if not alive:
                    pytest.fail(f"{name} exited; sim stderr:\n{self.sim_log.read_text()[-3000:]}")
        if not cond():
            pytest.fail(f"timed out ({timeout:g} s) waiting for {what}; {self.describe()}")

    def sim_time(self) -> float:
        return self.states[-1]["sim_time"] if self.states else 0.0

    def describe(self) -> str:
        last = self.status[-1] if self.status else None
        return (f"task state {self.states[-1] if self.states else None}; chunks {len(self.chunks)}, commands "
                f"{len(self.commands)}, preview {len(self.preview)}; executor "
                f"{(last.state_name, last.message, last.dry_run) if last else None}")

    def close(self) -> None:
        from vla_ros.cli.run import stop_sim_process

        try:
            if self.graph is not None:
                self.graph.stop()
        finally:
            code = stop_sim_process(self.sim)
            self.executor.shutdown()
            self.test.destroy_node()
        assert code == 0, f"sim_node exit code {code}:\n{self.sim_log.read_text()[-3000:]}"


@pytest.fixture
def graph_factory(rclpy_context, tmp_path, monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_POLICIES, ScriptedReach.policy_type, f"{__name__}:ScriptedReach")
    graphs = []

    def make(checkpoint, **arguments) -> Graph:
        g = Graph(rclpy_context, tmp_path, checkpoint, **arguments)
        graphs.append(g)
        return g

    yield make
    for g in graphs:
        g.close()


@pytest.mark.timeout(90)
def test_scripted_policy_completes_the_reach_through_the_real_nodes(graph_factory, reach_target):
    ckpt, target, start = reach_target
    assert np.linalg.norm(target - start) > 0.1  # a real reach, not a success at the start
    g = graph_factory(ckpt, dry_run="false")
    assert all(n.parameters["use_sim_time"] is True for n in g.plan.nodes)
    wall0 = time.monotonic()
    g.spin_until(lambda: g.states and g.states[-1]["success"], 60.0, "the reach to succeed")
    state = g.states[-1]
    print(f"reach succeeded at sim t={state['sim_time']:.2f} s ({time.monotonic() - wall0:.1f} s wall from the "
          f"start of the graph), achieved real-time factor {state['real_time_factor']}")
    assert state["distance"] < 0.03 and state["episode"] == 0 and state["seed"] == SEED
    # It got there in sim time through chunks and commands, on the sim clock (stamps are sim time).
    assert len(g.chunks) >= 3 and len(g.commands) >= 50 and not g.preview
    assert state["sim_time"] < 30.0
    stamps = [c.header.stamp.sec + c.header.stamp.nanosec * 1e-9 for c in g.commands]
    assert max(stamps) <= state["sim_time"] + 0.5 and min(stamps) >= 1.0, "commands not stamped in sim time"
    assert g.status and not g.status[-1].dry_run


@pytest.mark.timeout(90)
def test_with_dry_run_at_its_default_the_arm_does_not_move(graph_factory, reach_target):
    ckpt, target, start = reach_target
    g = graph_factory(ckpt)  # no dry_run argument: the profile's (and the schema's) default, on
    assert g.plan.node("vla_executor").parameters["executor.dry_run"] is True
    g.spin_until(lambda: len(g.chunks) >= 5 and len(g.preview) >= 50, 60.0, "chunks and preview commands")
    t0 = g.sim_time()
    g.spin_until(lambda: g.sim_time() >= t0 + 2.0, 30.0, "2 more sim seconds")
    tools = np.array([s["tool"] for s in g.states])
    assert np.linalg.norm(tools - tools[0], axis=1).max() < 0.003, g.describe()
    assert not g.states[-1]["success"] and not g.commands
    # ... although the preview commands do head for the target: only dry_run held the arm.
    closest = min(np.linalg.norm(np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]) - target)
                  for m in g.preview)
    assert closest < np.linalg.norm(tools[0] - target) - 0.02, g.describe()
    assert g.status and g.status[-1].dry_run


@pytest.mark.timeout(90)
def test_a_policy_heading_out_of_the_workspace_stops_the_arm_at_its_edge(graph_factory, tmp_path, render_ok):
    from vla_ros.core.config import load_config
    from vla_ros.core.profiles import resolve

    safety = load_config([resolve("config", "default"), resolve("robot", "sim_panda")]).safety
    hi = np.array(safety.workspace_max)
    g = graph_factory(scripted_checkpoint(tmp_path, [hi[0] + 0.4, 0.0, 0.3]), dry_run="false")  # 40 cm beyond +x
    g.spin_until(lambda: len(g.chunks) >= 3, 60.0, "the first chunks")
    # The arm follows the chunks that stay inside and stops at the +x edge (the safety filter's box).
    g.spin_until(lambda: g.states and g.states[-1]["tool"][0] >= hi[0] - 0.01, 40.0, "the arm at the +x edge")
    t0 = g.sim_time()
    g.spin_until(lambda: g.sim_time() >= t0 + 2.0, 30.0, "2 more sim seconds")
    # The policy node refused the chunks that leave the box (workspace + margin), before publishing;
    # every chunk that did go out stays inside. (Not "no chunk after t0": under load the policy node
    # may still publish a late chunk of an old observation, inside the box, which the executor refuses.)
    lo, margin = np.array(safety.workspace_min), safety.workspace_margin
    assert g.graph.policy_node.chunk_problems.get("workspace", 0) >= 1, g.describe()
    for c in g.chunks:
        pos = np.array([[p.position.x, p.position.y, p.position.z] for p in c.poses])
        assert np.all(pos <= hi + margin + 1e-9) and np.all(pos >= lo - margin - 1e-9), (
            f"a chunk leaving the box was published (seq {c.seq}, max {pos.max(axis=0)}): {g.describe()}")
    tools = np.array([s["tool"] for s in g.states])
    assert tools[:, 0].max() > tools[0, 0] + 0.05, f"the arm never followed the policy: {g.describe()}"
    assert np.all(tools <= hi + 0.005) and np.all(tools >= np.array(safety.workspace_min) - 0.005), (
        f"the arm left the workspace {safety.workspace_min}..{safety.workspace_max}: max {tools.max(axis=0)}")
    late = np.array([s["tool"] for s in g.states if s["sim_time"] >= t0])
    assert np.linalg.norm(late - late[0], axis=1).max() < 0.01, f"the arm did not hold at the edge: {g.describe()}"
    assert g.status[-1].state_name != "running", g.describe()
