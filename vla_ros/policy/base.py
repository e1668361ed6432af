"""The policy protocol: what the policy node, the replay and the tests call.

A policy turns one `Observation` into one `ActionChunk`. Concrete policies (the flow-matching VLA,
the `hold` baseline, third-party plugins) subclass `Policy` and are found by name through
`vla_ros.policy.registry`, so swapping policies is a parameter change, not a code change.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np

from vla_ros.core.types import ActionChunk, ActionMode, ChunkGuidance, EEPose, Observation

STATE_SOURCES = ("ee_pose", "joints", "none")


@dataclass(frozen=True)
class PolicyMetadata:
    """What a loaded policy needs from the robot and what it produces.

    The node and `vla-ros` check it against the robot profile before running (cameras present,
    state available, dims agree), so a mismatch is an error at start-up, not a bad command later.
    """

    policy_type: str
    checkpoint_id: str = ""
    cameras: tuple[str, ...] = ()  # camera names the policy was trained with, in prefix order
    state_source: str = "ee_pose"  # "ee_pose": (x,y,z,rx,ry,rz,gripper); "joints": joint positions (+gripper)
    state_dim: int = 7
    joint_names: tuple[str, ...] = ()  # for state_source == "joints": expected joint order ("" = any)
    horizon: int = 10
    dt: float = 0.1
    action_mode: ActionMode = ActionMode.ABSOLUTE
    image_size: tuple[int, int] = (224, 224)  # (height, width) the model sees
    device: str = "cpu"
    dtype: str = "float32"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state_source not in STATE_SOURCES:
            raise ValueError(f"policy metadata state_source: expected one of {STATE_SOURCES}, got "
                             f"{self.state_source!r}")
        if self.horizon < 1:
            raise ValueError(f"policy metadata horizon: expected >= 1, got {self.horizon}")
        if not self.dt > 0:
            raise ValueError(f"policy metadata dt: expected > 0 s, got {self.dt}")
        object.__setattr__(self, "action_mode", ActionMode.parse(self.action_mode))

    @property
    def policy_id(self) -> str:
        return self.policy_type


class Policy(abc.ABC):
    """Base class of every policy. Thread-compatible: one `infer` at a time per instance."""

    policy_type: ClassVar[str] = ""

    @classmethod
    @abc.abstractmethod
    def load(cls, checkpoint: str | None, device: str = "cpu", dtype: str = "float32") -> "Policy":
        """Load from a checkpoint directory (offline, safetensors only) onto `device` in `dtype`."""

    @classmethod
    def describe(cls, checkpoint: str | None) -> PolicyMetadata:
        """Metadata of a checkpoint without preparing it for inference (launch-time checks).

        The default loads the policy on the CPU; policies with heavy weights override it to read
        only their config.
        """
        policy = cls.load(checkpoint, device="cpu", dtype="float32")
        try:
            return policy.metadata
        finally:
            policy.close()

    @property
    @abc.abstractmethod
    def metadata(self) -> PolicyMetadata:
        """Static description of the loaded policy."""

    @abc.abstractmethod
    def infer(
        self,
        observation: Observation,
        *,
        noise: np.ndarray | None = None,
        guidance: ChunkGuidance | None = None,
    ) -> ActionChunk:
        """Predict one chunk for `observation`.

        `noise` ([horizon, 7], optional) makes stochastic policies deterministic; `guidance`
        asks for Real-Time Chunking (policies that cannot do it ignore it). The returned chunk is
        stamped with `observation.stamp`; the caller fills in seq and latency.
        """

    def infer_batch(self, observations: Sequence[Observation]) -> list[ActionChunk]:
        """Chunks for several observations at once, as `infer` called on each in order would give.

        Offline evaluation batches the observations whose chunks cannot depend on each other
        (`vla_ros.replay.evaluate`); a policy that can run them as one batch (the flow-matching
        VLA: one forward pass for all) overrides this. The default calls `infer` in order.
        A stochastic policy draws each observation's noise in order, as `infer` would, so the
        batch matches the sequential chunks up to floating-point rounding.
        """
        return [self.infer(ob) for ob in observations]

    def configure_sampling(self, num_steps: int | None = None, seed: int | None = None) -> None:
        """Apply the node's ``policy.num_steps`` / ``policy.seed``. Deterministic policies ignore it."""

    def warmup(self, batch_size: int = 1) -> None:
        """Pay one-time costs (graph tracing / capture, first-call allocations) before the first real
        chunk, so it does not arrive late on a running robot. Called after `configure_sampling` by
        the node (also before a runtime swap) and the replay (``batch_size`` > 1: also for
        `infer_batch` of that many). Must not change what later calls return (no noise drawn from
        the policy's generator). Default: nothing to warm up."""

    def self_check(self) -> None:
        """Refuse a policy that cannot produce a usable chunk, before it drives anything: called
        after `warmup` by every load path (configure and runtime swap). Raises ValueError saying
        what is wrong. A checkpoint whose weights are NaN loads and warms up without complaint;
        only its output shows it.

        Default: one `infer` on `probe_observation(metadata)` with zero noise (the policy's noise
        generator is not touched), checked for finite values, the metadata's horizon and dt. An
        error about the probe itself (``observation...``: it does not fit this policy's inputs)
        proves nothing and is not held against the policy; a policy that cannot run on synthetic
        inputs at all overrides this.
        """
        meta = self.metadata
        try:
            chunk = self.infer(probe_observation(meta), noise=np.zeros((meta.horizon, 7)))
        except Exception as exc:  # noqa: BLE001 - judged below
            if str(exc).startswith("observation"):
                return  # the synthetic observation does not fit; the real ones are checked per message
            raise ValueError(f"self-check: inference on a synthetic observation failed: {type(exc).__name__}: {exc} "
                             f"(broken weights or norm stats?)") from exc
        check_chunk_output(chunk, meta)

    def reset(self) -> None:
        """Forget any episode state (new instruction, new episode). Default: nothing to forget."""

    def close(self) -> None:
        """Release devices/memory. Default: nothing to release."""


PROBE_POSITION = (0.4, 0.0, 0.3)  # [m] a pose in front of the robot base, inside every shipped workspace


def probe_observation(meta: PolicyMetadata, stamp: float = 1.0) -> Observation:
    """A synthetic observation that fits `meta` (every camera a mid-grey image of the policy's size,
    an EE pose in front of the base, zero joints, half-open gripper, a short instruction), for
    `Policy.self_check`. Not a meaningful scene: only the finiteness of the answer is judged."""
    h, w = meta.image_size
    cameras = meta.cameras or ("primary",)
    n_joints = len(meta.joint_names) or meta.state_dim
    return Observation(
        stamp=stamp,
        images={c: np.full((h, w, 3), 128, np.uint8) for c in cameras},
        joint_positions=np.zeros(n_joints) if meta.state_source == "joints" else None,
        ee_pose=EEPose(np.array(PROBE_POSITION), np.array([0.0, 0.0, 0.0, 1.0]), ""),
        gripper=0.5,
        instruction="self check",
    )


def check_chunk_output(chunk: ActionChunk, meta: PolicyMetadata) -> None:
    """ValueError unless `chunk` has finite actions, ``meta.horizon`` steps and ``meta.dt``."""
    actions = np.asarray(chunk.actions, dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(actions)))
    if bad:
        raise ValueError(f"self-check: {bad} of {actions.size} action values are NaN or inf; expected finite actions "
                         f"(broken weights or norm stats?)")
    if chunk.horizon != meta.horizon:
        raise ValueError(f"self-check: chunk of {chunk.horizon} steps, expected the metadata's horizon {meta.horizon}")
    if abs(chunk.dt - meta.dt) > 1e-9:
        raise ValueError(f"self-check: chunk dt {chunk.dt:g} s, expected the metadata's dt {meta.dt:g} s")
