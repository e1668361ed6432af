"""FlowMatchingPolicy.infer: the chunk it returns, what it demands of an observation, registry."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from policy_helpers import fixed_noise, make_observation

from vla_ros.core.types import ActionMode
from vla_ros.policy.base import Policy
from vla_ros.core.action_modes import delta_to_absolute
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
from vla_ros.policy.registry import load_policy


def test_chunk_fields_and_metadata(policy_factory, family):
    policy = policy_factory(family=family)
    meta = policy.metadata
    assert isinstance(policy, Policy) and meta.policy_type == "flow_matching"
    assert meta.cameras == ("primary", "wrist") and meta.state_source == "ee_pose" and meta.state_dim == 7
    assert meta.horizon == 10 and meta.dt == pytest.approx(0.1) and meta.action_mode == ActionMode.ABSOLUTE
    assert meta.image_size == (32, 32) and meta.device == "cpu" and meta.dtype == "float32"
    assert meta.extra["family"] == family and meta.extra["parameters"] > 0
    obs = make_observation(1)
    chunk = policy.infer(obs, noise=fixed_noise(policy))
    assert chunk.stamp == obs.stamp and chunk.dt == pytest.approx(0.1)
    assert chunk.actions.shape == (10, 7) and np.all(np.isfinite(chunk.actions))
    assert chunk.mode == ActionMode.ABSOLUTE and chunk.reference_pose is None and chunk.frame_id == "base_link"
    assert chunk.policy_id == "flow_matching"
    assert chunk.checkpoint_id == meta.checkpoint_id and "@" in chunk.checkpoint_id
    assert np.all((chunk.actions[:, 6] >= 0) & (chunk.actions[:, 6] <= 1))


def test_noise_makes_chunks_deterministic(policy_factory):
    policy = policy_factory()
    obs = make_observation(2)
    a = policy.infer(obs, noise=fixed_noise(policy, 1)).actions
    b = policy.infer(obs, noise=fixed_noise(policy, 1)).actions
    c = policy.infer(obs, noise=fixed_noise(policy, 2)).actions
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    # Without explicit noise: the seeded generator replays after reset(), and advances otherwise.
    policy.reset()
    d = policy.infer(obs).actions
    e = policy.infer(obs).actions
    policy.reset()
    np.testing.assert_array_equal(policy.infer(obs).actions, d)
    assert np.abs(d - e).max() > 1e-3


def test_num_steps_and_seed_are_settable(ckpt_factory):
    policy = FlowMatchingPolicy.load(ckpt_factory())
    obs, noise = make_observation(3), fixed_noise(policy, 3)
    ten = policy.infer(obs, noise=noise).actions
    policy.num_steps = 2
    assert policy.metadata.extra["num_steps"] == 2
    two = policy.infer(obs, noise=noise).actions
    np.testing.assert_array_equal(two, policy.infer(obs, noise=noise, num_steps=2).actions)
    assert np.abs(ten - two).max() > 1e-4
    with pytest.raises(ValueError, match="num_steps: expected >= 1"):
        policy.num_steps = 0
    policy.set_seed(5)
    a = policy.infer(obs).actions
    policy.set_seed(6)
    assert np.abs(policy.infer(obs).actions - a).max() > 1e-4
    policy.set_seed(5)
    np.testing.assert_array_equal(policy.infer(obs).actions, a)


def test_the_image_and_instruction_condition_the_chunk(policy_factory):
    policy = policy_factory()
    noise = fixed_noise(policy)
    base = policy.infer(make_observation(1), noise=noise).actions
    other_image = policy.infer(make_observation(2), noise=noise).actions
    other_text = policy.infer(make_observation(1, instruction="open the drawer"), noise=noise).actions
    assert np.abs(base - other_image).max() > 1e-4
    assert np.abs(base - other_text).max() > 1e-4


def test_missing_camera_is_masked_and_still_finite(policy_factory, family):
    policy = policy_factory(family=family)
    noise = fixed_noise(policy)
    both = policy.infer(make_observation(4), noise=noise)
    primary_only = policy.infer(make_observation(4, cameras=("primary",)), noise=noise)
    wrist_only = policy.infer(make_observation(4, cameras=("wrist",)), noise=noise)
    for chunk in (primary_only, wrist_only):
        assert chunk.actions.shape == (10, 7) and np.all(np.isfinite(chunk.actions))
    assert np.abs(both.actions - primary_only.actions).max() > 1e-5
    # Unknown extra cameras are ignored.
    obs = make_observation(4)
    extra = dataclasses.replace(obs, images={**obs.images, "overhead": np.zeros((8, 8, 3), np.uint8)})
    np.testing.assert_array_equal(policy.infer(extra, noise=noise).actions, both.actions)


def test_missing_camera_equals_a_checkpoint_without_that_camera(ckpt_factory, tmp_path):
    """Masking is complete: the same weights configured with only the primary camera agree."""
    src = ckpt_factory()
    dst = tmp_path / "primary_only"
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["io"]["cameras"] = ["primary"]
    (dst / "config.json").write_text(json.dumps(cfg))
    two, one = FlowMatchingPolicy.load(src), FlowMatchingPolicy.load(dst)
    obs = make_observation(8, cameras=("primary",))
    noise = fixed_noise(two, 8)
    np.testing.assert_allclose(two.infer(obs, noise=noise).actions, one.infer(obs, noise=noise).actions, atol=2e-5)


def test_observation_errors_name_the_problem(policy_factory):
    policy = policy_factory()
    with pytest.raises(ValueError, match=r"observation\.images: none of this policy's cameras \['primary', 'wrist'\]"):
        policy.infer(make_observation(cameras=("overhead",)))
    with pytest.raises(ValueError, match=r"observation\.ee_pose: .*state_source 'ee_pose'.* missing"):
        policy.infer(make_observation(ee_pose=False))
    with pytest.raises(ValueError, match=r"noise: expected shape \(10, 7\) or \(10, 8\), got \(9, 7\)"):
        policy.infer(make_observation(), noise=np.zeros((9, 7)))


def test_empty_instruction_is_allowed(policy_factory):
    policy = policy_factory()
    chunk = policy.infer(make_observation(instruction=""), noise=fixed_noise(policy))
    assert np.all(np.isfinite(chunk.actions))


def test_joint_state_and_delta_mode(policy_factory):
    policy = policy_factory(state_source="joints", action_mode="delta", family="llama")
    meta = policy.metadata
    assert meta.state_source == "joints" and meta.state_dim == 7 and len(meta.joint_names) == 6
    assert meta.action_mode == ActionMode.DELTA
    obs = make_observation(5, joints=6)
    chunk = policy.infer(obs, noise=fixed_noise(policy))
    assert chunk.mode == ActionMode.DELTA and chunk.reference_pose is obs.ee_pose
    # Tiny delta stats: offsets of a few centimetres around the reference pose.
    absolute = delta_to_absolute(chunk.actions, chunk.reference_pose)
    assert np.abs(absolute[:, :3] - obs.ee_pose.position).max() < 0.5
    with pytest.raises(ValueError,
                       match=r"observation\.joint_positions: this policy expects 6 joints \(joint_1, .*\), got 5"):
        policy.infer(make_observation(joints=5))
    with pytest.raises(ValueError, match=r"observation\.joint_positions: .*missing"):
        policy.infer(make_observation())
    with pytest.raises(ValueError, match=r"observation\.gripper: .*missing"):
        policy.infer(make_observation(joints=6, gripper=None))
    with pytest.raises(ValueError, match=r"observation\.ee_pose: .*DELTA"):
        policy.infer(make_observation(joints=6, ee_pose=False))


def test_stateless_checkpoint(policy_factory):
    policy = policy_factory(state_source="none")
    assert policy.metadata.state_dim == 0 and policy.config.suffix_length == 10
    chunk = policy.infer(make_observation(ee_pose=True, gripper=None), noise=fixed_noise(policy))
    assert np.all(np.isfinite(chunk.actions))


def test_bfloat16_inference(ckpt_factory):
    policy = FlowMatchingPolicy.load(ckpt_factory(), dtype="bfloat16")
    assert policy.metadata.dtype == "bfloat16" and policy.model.dtype == torch.bfloat16
    assert policy.model.backbone.rotary_emb.inv_freq.dtype == torch.float32  # RoPE tables stay exact
    ref = FlowMatchingPolicy.load(ckpt_factory())
    obs, noise = make_observation(6), fixed_noise(policy)
    a, b = policy.infer(obs, noise=noise).actions, ref.infer(obs, noise=noise).actions
    assert np.all(np.isfinite(a))
    assert np.abs(a - b).max() < 0.25  # same model at lower precision, not a different one


def test_hold_and_flow_matching_load_through_the_registry(ckpt_factory):
    fm = load_policy("flow_matching", str(ckpt_factory()))
    hold = load_policy("hold", None)
    obs = make_observation(7)
    assert isinstance(fm, FlowMatchingPolicy) and fm.metadata.policy_type == "flow_matching"
    assert hold.metadata.policy_type == "hold"
    assert fm.infer(obs).actions.shape == (10, 7)
    np.testing.assert_allclose(hold.infer(obs).actions[0], obs.ee_state())
    fm.close()


def test_configure_sampling_sets_steps_and_seed(ckpt_factory):
    from vla_ros.policy.registry import load_policy

    policy = load_policy("flow_matching", str(ckpt_factory()))
    obs = make_observation()
    policy.configure_sampling(num_steps=3, seed=7)
    assert policy.num_steps == 3
    first = policy.infer(obs).actions
    policy.reset()  # re-seeds with the configured seed: the same noise again
    np.testing.assert_array_equal(policy.infer(obs).actions, first)
    policy.configure_sampling(seed=8)
    assert not np.allclose(policy.infer(obs).actions, first)


def test_describe_reads_metadata_without_loading(ckpt_factory):
    from vla_ros.policy.registry import describe_policy, load_policy

    path = ckpt_factory(cameras=("primary", "wrist_left", "wrist_right"))
    described = describe_policy("flow_matching", str(path))
    loaded = load_policy("flow_matching", str(path)).metadata
    assert described.cameras == ("primary", "wrist_left", "wrist_right")
    for field in ("cameras", "state_source", "state_dim", "horizon", "dt", "action_mode", "image_size"):
        assert getattr(described, field) == getattr(loaded, field), field
    assert loaded.checkpoint_id.startswith(described.checkpoint_id + "@")
