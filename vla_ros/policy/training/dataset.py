"""Training samples from recorded bags: (observation, the commanded future) pairs.

Training data, so it lives with the training code (`vla_ros.policy.training`); it reads bags with
the replay's `Bag` reader and ground truth, which need `rosbags` only (no ROS).
The observations are assembled by the same `ObservationBuilder` the node and the replay use (same
synchronisation, same decoding), so a policy trained on them sees at evaluation exactly what it
saw in training. The label of an observation at stamp s is the ground truth
(`vla_ros.replay.ground_truth`: the recorded commands) at ``s + i * dt`` for the policy's horizon;
past the end of the recording the last command is repeated (the robot stays there).

    observations, actions = samples_from_bags(bags, cfg, policy.metadata)   # actions [N, H, 7]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla_ros.core.config import VlaConfig
from vla_ros.core.observation_builder import ObservationBuilder, ObservationSpec
from vla_ros.core.rotations import quat_to_rotvec
from vla_ros.core.types import Observation
from vla_ros.replay.bag_io import Bag, BagError
from vla_ros.replay.ground_truth import GroundTruthCollector, abs_topic, select_sources


def samples_from_bag(path: str | Path, cfg: VlaConfig, metadata: Any) -> tuple[list[Observation], np.ndarray]:
    """Every synchronized observation of one bag and its [H, 7] ground-truth future."""
    spec = ObservationSpec.from_config(cfg.robot, metadata)
    builder = ObservationBuilder.from_config(spec, cfg)
    horizon, dt = int(metadata.horizon), float(metadata.dt)
    cams = {c.topic: c.name for c in spec.cameras}
    instr = abs_topic(cfg.robot.instruction_topic)
    observations: list[Observation] = []
    with Bag(path) as bag:
        bag.require({t: ((), "observation input") for t in spec.inputs().values()})
        sources = select_sources(bag, cfg)
        gt = GroundTruthCollector(sources, cfg)
        topics = set(spec.inputs().values()) | set(sources.topics()) | ({instr} if instr else set())
        for m in bag.messages([t for t in topics if t in bag.topics]):
            if m.topic in sources.topics():
                gt.add(m.topic, m.t, m.msg)
            if m.topic in cams:
                builder.add_image(cams[m.topic], m.msg, m.t)
            if m.topic == spec.joint_state_topic:
                builder.add_joint_state(m.msg, m.t)
            if m.topic == spec.ee_pose_topic:
                builder.add_ee_pose(m.msg, m.t)
            if m.topic == instr:
                builder.set_instruction(str(m.msg.data))
            if builder.has_pending():
                sample = builder.take(m.t)
                if sample is not None:
                    observations.append(sample.observation)
    truth = gt.build()
    if truth.poses is None or len(truth.poses) == 0:
        raise BagError(f"bag {path}: no pose ground truth ({sources.describe()}) to learn from")
    if not observations:
        raise BagError(f"bag {path}: no synchronized observation ({builder.waiting_for(0.0) or 'inputs missing'})")
    t_end = float(truth.poses.times[-1])
    actions = np.zeros((len(observations), horizon, 7))
    for k, ob in enumerate(observations):
        times = np.minimum(ob.stamp + dt * np.arange(horizon), t_end)
        pos, quat, _ = truth.poses.sample(times)
        actions[k, :, :3] = pos
        actions[k, :, 3:6] = quat_to_rotvec(quat)
        if truth.gripper is not None and len(truth.gripper):
            g, ok = truth.gripper.sample(np.minimum(times, float(truth.gripper.times[-1])))
            actions[k, :, 6] = np.where(ok, g, ob.gripper if ob.gripper is not None else 1.0)
        else:
            actions[k, :, 6] = ob.gripper if ob.gripper is not None else 1.0
    keep = np.all(np.isfinite(actions.reshape(len(observations), -1)), axis=1)
    return [o for o, k in zip(observations, keep) if k], actions[keep]


def samples_from_bags(paths: Sequence[str | Path], cfg: VlaConfig, metadata: Any,
                      progress: bool = False) -> tuple[list[Observation], np.ndarray]:
    obs: list[Observation] = []
    acts: list[np.ndarray] = []
    it: Any = paths
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(paths, desc="training samples", unit="bag")
    for p in it:
        o, a = samples_from_bag(p, cfg, metadata)
        obs.extend(o)
        acts.append(a)
    return obs, np.concatenate(acts, axis=0) if acts else np.zeros((0, int(metadata.horizon), 7))
