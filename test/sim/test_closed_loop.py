"""Closed loop through the real core objects: the expert solves every task; bad commands never move the arm out."""

from __future__ import annotations

import numpy as np
import pytest

from sim_testlib import NaNAfterPolicy, OutsideWorkspacePolicy
from vla_ros.policy.hold import HoldPolicy
from vla_ros.sim.closed_loop import run_episode, world_for
from vla_ros.sim.expert import ExpertPolicy


@pytest.mark.parametrize("task", ["reach", "push", "pick"])
def test_expert_solves_the_task(task, panda_cfg, render_ok):
    world = world_for(panda_cfg, task)
    try:
        for seed in (0, 1):
            ep = run_episode(world, panda_cfg, ExpertPolicy(), lane="expert", seed=seed)
            assert ep.success, f"{task} seed {seed}: final distance {ep.final_distance:.3f} m"
            assert ep.time_to_success < {"reach": 4.0, "push": 8.0, "pick": 8.0}[task]
            assert ep.chunks >= 3 and ep.workspace_excess < 1e-3
        hold = run_episode(world, panda_cfg, HoldPolicy(), lane="hold", seed=0, max_seconds=2.0)
        assert not hold.success and hold.duration == pytest.approx(2.0)
        assert np.linalg.norm(hold.tool[-1] - hold.tool[0]) < 0.005  # hold stays put
    finally:
        world.close()


def test_chunks_far_outside_the_workspace_are_refused_and_the_arm_holds(panda_cfg, render_ok):
    world = world_for(panda_cfg, "reach")
    try:
        policy = OutsideWorkspacePolicy()
        ep = run_episode(world, panda_cfg, policy, lane="policy", seed=0, max_seconds=3.0)
    finally:
        world.close()
    # it kept asking; every chunk was refused by the policy node's check, before it was sent (as on the robot)
    assert policy.calls >= 10 and ep.chunks_refused == ep.chunks and ep.chunks_rejected == 0
    assert np.asarray(ep.commands["hold"], bool).all()
    assert np.linalg.norm(ep.tool - ep.tool[0], axis=1).max() < 0.003
    assert ep.workspace_excess == 0.0


def test_targets_past_the_workspace_edge_are_clamped_to_it(panda_cfg, render_ok):
    lo, hi = np.array(panda_cfg.safety.workspace_min), np.array(panda_cfg.safety.workspace_max)
    margin = panda_cfg.safety.workspace_margin
    goal = np.array([0.55, 0.0, lo[2] - 0.8 * margin])  # below the floor of the box, inside the plausibility margin
    world = world_for(panda_cfg, "reach")
    try:
        policy = OutsideWorkspacePolicy(goal=goal)
        ep = run_episode(world, panda_cfg, policy, lane="policy", seed=0, max_seconds=5.0)
    finally:
        world.close()
    assert ep.chunks_rejected == 0 and ep.metrics()["clamped_ticks"] > 50
    assert ep.tool[:, 2].min() < lo[2] + 0.01  # the arm went down to the floor of the box ...
    # ... not past it
    assert ep.workspace_excess < 0.003, f"tool {ep.workspace_excess * 100:.2f} cm outside the workspace"
    assert np.all(ep.tool >= lo - 0.003) and np.all(ep.tool <= hi + 0.003)


def test_nan_chunks_never_reach_the_arm_and_the_executor_holds(panda_cfg, render_ok):
    world = world_for(panda_cfg, "reach")
    try:
        policy = NaNAfterPolicy()
        ep = run_episode(world, panda_cfg, policy, lane="policy", seed=1, max_seconds=3.0)
    finally:
        world.close()
    assert ep.chunks == 2 and ep.inference_errors >= 5  # NaN chunks are errors, never chunks
    assert ep.rejected_by_world == 0  # nothing non-finite got as far as the simulator
    hold = np.asarray(ep.commands["hold"], bool)
    t = ep.commands["t"] - ep.commands["t"][0]
    assert hold[t > 2.0].all()  # after the last good chunk ran out (+ watchdog): holding
    settled = ep.tool[ep.t > 2.5]
    assert np.ptp(settled, axis=0).max() < 0.002  # and the arm stands still
    assert ep.tool[-1][2] == pytest.approx(ep.tool[0][2] - 0.05, abs=0.01)  # where the good chunks took it


def test_twist_output_drives_the_arm_too(panda_cfg, render_ok):
    cfg = panda_cfg.with_overrides({"executor.output_mode": "twist"})
    world = world_for(cfg, "reach")
    try:
        ep = run_episode(world, cfg, ExpertPolicy(), lane="expert", seed=2)
    finally:
        world.close()
    assert ep.success and np.abs(ep.commands["linear"]).max() > 0.02  # velocity commands did the moving


def test_measured_latency_passes_in_sim_time(panda_cfg, sim_checkpoint, render_ok):
    from vla_ros.policy.registry import load_configured_policy

    cfg = panda_cfg.with_overrides({"policy.type": "flow_matching", "policy.checkpoint": str(sim_checkpoint),
                                    "replay.latency": "measured"})
    policy = load_configured_policy(cfg.policy)
    world = world_for(cfg, "reach")
    try:
        ep = run_episode(world, cfg, policy, seed=0, max_seconds=2.0)
    finally:
        world.close()
        policy.close()
    assert ep.injected and min(ep.injected) > 0  # inferences ran, each with its own wall time as delay
    for triggered, arrival, wall in ep.chunk_times:  # every chunk arrived its measured latency after its trigger
        assert arrival - triggered == pytest.approx(wall, abs=1e-9) and wall > 0
