"""Shared pieces of the policy-node tests: test policies (real `Policy` subclasses), message builders."""

from __future__ import annotations

import threading

import numpy as np

from vla_ros.core.types import ActionChunk, EEPose, Observation
from vla_ros.msg import ExecutorStatus
from vla_ros.policy.base import Policy, PolicyMetadata
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


def executor_status(stamp: float, *, remaining: float = 0.0, received: int = 0, state: int = ExecutorStatus.STATE_RUNNING,
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


class JointsPolicy(Policy):
    """A plugin-style policy whose state is the joint positions: x of every action = 0.4 + 0.01 * q[0]."""

    policy_type = "test_joints"

    def __init__(self, name: str = "joints"):
        self.name = name
        self.calls: list[Observation] = []
        self._meta = PolicyMetadata(policy_type=self.policy_type, checkpoint_id=name, cameras=("primary",),
                                    state_source="joints", state_dim=7, horizon=5, dt=0.1)

    @classmethod
    def load(cls, checkpoint, device="cpu", dtype="float32"):
        return cls(checkpoint or "joints")

    @property
    def metadata(self) -> PolicyMetadata:
        return self._meta

    def infer(self, observation, *, noise=None, guidance=None) -> ActionChunk:
        self.calls.append(observation)
        row = [0.4 + 0.01 * observation.joint_positions[0], 0.0, 0.3, 0.0, 0.0, 0.0, 1.0]
        return ActionChunk(stamp=observation.stamp, dt=0.1, actions=np.tile(row, (5, 1)), policy_id=self.policy_type,
                           checkpoint_id=self.name)


class NodeHarness:
    """A PolicyNode, optional in-process synthetic sensors and a test node listening to its outputs,
    all spun by one executor in the test thread (real rclpy, real DDS inside one process)."""

    def __init__(self, context, params: dict, *, sensors: dict | None = None, status_rate: float = 10.0):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from vla_ros.msg import ActionChunk as ActionChunkMsg
        from vla_ros.msg import PolicyStatus
        from vla_ros.ros.policy_node import PolicyNode
        from vla_ros.ros.sensor_sim import SensorSim

        params = {"policy.type": "hold", "policy.instruction": "pick up the red cube", "policy.rate_hz": 20.0,
                  "policy.status_rate_hz": status_rate, **params}
        self.node = PolicyNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.test = Node("policy_node_test", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.test)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.chunks: list = []
        self.status: list = []
        self.test.create_subscription(ActionChunkMsg, "action_chunk", self.chunks.append, reliable)
        self.test.create_subscription(PolicyStatus, "policy_status", self.status.append, reliable)
        self.sim = None
        if sensors is not None:
            opts = {"cameras": {"primary": "/camera/primary/image_raw", "wrist": "/camera/wrist/image_raw"}, **sensors}
            self.sim = SensorSim(context=context, **opts)
            self.executor.add_node(self.sim)

    def now(self) -> float:
        return self.test.get_clock().now().nanoseconds * 1e-9

    def spin_until(self, cond, timeout: float = 15.0) -> bool:
        from ros_helpers import spin_until

        return spin_until(self.executor, cond, timeout=timeout, step=0.01)

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, timeout=seconds)

    def close(self) -> None:
        self.executor.shutdown()
        for n in (self.sim, self.test, self.node):
            if n is not None:
                n.destroy_node()
