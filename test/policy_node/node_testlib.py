"""Shared pieces of the policy-node tests: test policies (real `Policy` subclasses), the node harness.

The pieces the core tests share live in test/core/core_testlib.py (re-exported here)."""

from __future__ import annotations

import numpy as np

from vla_ros.core.types import ActionChunk, Observation
from vla_ros.policy.base import Policy, PolicyMetadata

from core_testlib import GatedPolicy, executor_status  # noqa: F401 - re-exported


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
