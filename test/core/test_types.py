"""Core types refuse malformed data at construction, so nothing malformed travels further."""

import numpy as np
import pytest

from vla_ros.core.types import ActionChunk, ActionMode, ChunkGuidance, EEPose, Observation


def test_observation_validates_images_and_joints():
    ok = Observation(stamp=1.0, images={"primary": np.zeros((4, 4, 3), np.uint8)}, joint_positions=[0.1, 0.2])
    assert ok.joint_positions.dtype == np.float64
    with pytest.raises(ValueError,
                       match=r"observation\.images\['wrist'\]: expected HxWx3 uint8 RGB, got \(4, 4\) uint8"):
        Observation(stamp=1.0, images={"wrist": np.zeros((4, 4), np.uint8)})
    with pytest.raises(ValueError, match=r"observation\.joint_positions: contains NaN or inf"):
        Observation(stamp=1.0, joint_positions=[0.0, float("inf")])
    with pytest.raises(ValueError, match="observation.stamp"):
        Observation(stamp=float("nan"))


def test_ee_state_layout():
    obs = Observation(stamp=0.0, ee_pose=EEPose([0.1, 0.2, 0.3], [0, 0, np.sin(0.25), np.cos(0.25)]), gripper=0.7)
    np.testing.assert_allclose(obs.ee_state(), [0.1, 0.2, 0.3, 0, 0, 0.5, 0.7], atol=1e-12)
    with pytest.raises(ValueError, match="ee_pose: required"):
        Observation(stamp=0.0).ee_state()


def test_chunk_validation_and_timeline():
    acts = np.zeros((4, 7))
    c = ActionChunk(stamp=10.0, dt=0.5, actions=acts, mode="absolute")
    assert c.mode == ActionMode.ABSOLUTE and c.horizon == 4
    np.testing.assert_allclose(c.times, [10.0, 10.5, 11.0, 11.5])
    assert not c.actions.flags.writeable  # a chunk cannot be changed behind the executor's back
    with pytest.raises(ValueError, match=r"action_chunk\.actions: expected shape \(\.\.\., 7\), got \(4, 6\)"):
        ActionChunk(stamp=0.0, dt=0.1, actions=np.zeros((4, 6)))
    with pytest.raises(ValueError, match="action_chunk.dt"):
        ActionChunk(stamp=0.0, dt=-0.1, actions=acts)
    with pytest.raises(ValueError, match="reference_pose: required in DELTA mode"):
        ActionChunk(stamp=0.0, dt=0.1, actions=acts, mode=ActionMode.DELTA)
    with pytest.raises(ValueError, match="action_mode: expected 'absolute' or 'delta'"):
        ActionChunk(stamp=0.0, dt=0.1, actions=acts, mode="relative")


def test_guidance_validation():
    g = ChunkGuidance(actions=np.zeros((5, 7)), weights=[1, 1, 0.5, 0.1, 0])
    assert g.committed_steps == 2
    with pytest.raises(ValueError, match=r"guidance\.weights: expected 5 weights"):
        ChunkGuidance(actions=np.zeros((5, 7)), weights=[1, 1])
    with pytest.raises(ValueError, match=r"guidance\.weights: expected values in \[0, 1\]"):
        ChunkGuidance(actions=np.zeros((2, 7)), weights=[1.5, 0])
