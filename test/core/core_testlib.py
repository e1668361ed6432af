"""Shared pieces of the core tests (and the policy-node tests): a gated test policy, an observation,
an ExecutorStatus as the executor publishes it."""

from __future__ import annotations

import threading

import numpy as np

from vla_ros.core.types import EEPose, Observation
from vla_ros.msg import ExecutorStatus
from vla_ros.policy.hold import HoldPolicy
from vla_ros.ros.conversions import header, pose_msg, time_msg


class GatedPolicy(HoldPolicy):
    """`hold`, but every infer() is recorded and waits for `gate` (so a test can keep one in flight)."""

    def __init__(self, name: str = "gated", fail_first: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.name = name
        self.calls: list[tuple[Observation, object]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.resets = 0
        self.closed = False
        self.fail_first = fail_first

    def infer(self, observation, *, noise=None, guidance=None):
        self.calls.append((observation, guidance))
        self.entered.set()
        assert self.gate.wait(30.0), "test gate never opened"
        if self.fail_first > 0:
            self.fail_first -= 1
            raise RuntimeError("CUDA error: out of memory (simulated)")
        return super().infer(observation)

    def reset(self):
        self.resets += 1

    def close(self):
        self.closed = True


def observation(stamp: float, x: float = 0.4, instruction: str = "pick") -> Observation:
    return Observation(
        stamp=stamp,
        images={"primary": np.zeros((4, 4, 3), np.uint8)},
        ee_pose=EEPose(np.array([x, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]), "base_link"),
        gripper=0.5,
        instruction=instruction,
    )


def executor_status(stamp: float, *, remaining: float = 0.0, received: int = 0,
                    state: int = ExecutorStatus.STATE_RUNNING,
                    plan_start: float | None = None, plan_x=(), plan_dt: float = 0.1, committed: int = 0,
                    frame: str = "base_link") -> ExecutorStatus:
    """An ExecutorStatus as the executor publishes it; `plan_x` = x of each plan pose (y=0, z=0.3)."""
    msg = ExecutorStatus(header=header(stamp, frame), state=state, remaining_time=remaining, chunks_received=received)
    msg.plan_start = time_msg(stamp if plan_start is None else plan_start)
    msg.plan_dt = plan_dt
    msg.committed_steps = committed
    msg.plan_poses = [pose_msg(np.array([x, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0])) for x in plan_x]
    msg.plan_gripper = [1.0 for _ in plan_x]
    return msg
