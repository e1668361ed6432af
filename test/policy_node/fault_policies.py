"""Faulty policies (real `Policy` subclasses) for the policy-node fault tests, and a process entry.

- `StuckPolicy`: every infer() blocks until `StuckPolicy.release` is set (a hung driver / CUDA call).
- `GarbagePolicy`: plausible-looking but wrong output - targets 10 m away (checkpoint "far") or a
  gripper of 5.0 (checkpoint "gripper"); `good = True` makes it behave like `hold` again.
- `BadClosePolicy`: `hold` whose close() raises.

Run as a script it is ``policy_node`` with these policies registered (type names ``test_stuck``,
``test_garbage``), so a test can signal a real node process whose inference is stuck:

    python test/policy_node/fault_policies.py --policy test_stuck --ros-args ...
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np

from vla_ros.policy.hold import HoldPolicy

REGISTERED = {"test_stuck": "fault_policies:StuckPolicy", "test_garbage": "fault_policies:GarbagePolicy"}


class StuckPolicy(HoldPolicy):
    """`hold` whose infer() never returns until `release` is set (class-wide, so a test can free it)."""

    policy_type = "test_stuck"
    release = threading.Event()
    entered = threading.Event()

    @classmethod
    def load(cls, checkpoint, device="cpu", dtype="float32"):
        return cls(device=device, dtype=dtype)

    def self_check(self) -> None:
        """Not run: the synthetic inference would hang the load itself (the hang starts on the robot)."""

    def infer(self, observation, *, noise=None, guidance=None):
        StuckPolicy.entered.set()
        StuckPolicy.release.wait()
        return super().infer(observation)


class GarbagePolicy(HoldPolicy):
    """`hold`, but its chunks are 10 m away ("far") or have a gripper of 5.0 ("gripper") while `good` is False."""

    policy_type = "test_garbage"

    def __init__(self, fault: str = "far", **kwargs):
        super().__init__(**kwargs)
        self.fault = fault
        self.good = False
        self.calls = 0

    @classmethod
    def load(cls, checkpoint, device="cpu", dtype="float32"):
        return cls(checkpoint or "far", device=device, dtype=dtype)

    def infer(self, observation, *, noise=None, guidance=None):
        self.calls += 1
        chunk = super().infer(observation)
        if self.good:
            return chunk
        actions = chunk.actions.copy()
        if self.fault == "gripper":
            actions[:, 6] = 5.0
        else:
            actions[:, 0] += 10.0
        return chunk.with_fields(actions=actions)


class BadClosePolicy(HoldPolicy):
    """`hold` whose close() raises (a plugin that fails to release its device)."""

    def close(self):
        raise RuntimeError("device busy (simulated)")


def nan_weights(checkpoint) -> str:
    """Overwrite every floating-point weight of a checkpoint directory with NaN (in place); its path."""
    import torch
    from safetensors.torch import load_file, save_file

    path = Path(checkpoint) / "model.safetensors"
    tensors = load_file(str(path))
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()},
              str(path))
    return str(checkpoint)


def register(builtin: dict) -> None:
    """Add the fault policies to a registry table (``registry.BUILTIN_POLICIES``)."""
    builtin.update(REGISTERED)


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # `fault_policies:...` resolves in the registry
    from vla_ros.policy import registry
    from vla_ros.ros.policy_node import main as policy_node_main

    register(registry.BUILTIN_POLICIES)
    return policy_node_main()


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
