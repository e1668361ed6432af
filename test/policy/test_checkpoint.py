"""Checkpoint directories: round trip, identity, and clear failures for bad ones."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from policy_helpers import fixed_noise, make_observation
from safetensors.torch import load_file, save_file

from vla_ros.policy.checkpoint import CheckpointError
from vla_ros.policy.flow_matching.config import ConfigError
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy


@pytest.fixture
def ckpt_copy(ckpt_factory, tmp_path):
    """A private copy of the default tiny checkpoint that a test may damage."""
    dst = tmp_path / "tiny_ckpt"
    shutil.copytree(ckpt_factory(), dst)
    return dst


def test_save_load_round_trip_gives_identical_chunks(policy_factory, family, tmp_path):
    policy = policy_factory(family=family)
    obs = make_observation(3)
    noise = fixed_noise(policy, 3)
    before = policy.infer(obs, noise=noise)
    out = policy.save(tmp_path / "saved")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "norm_stats.json",
                                                     "tokenizer.json"]
    again = FlowMatchingPolicy.load(out)
    after = again.infer(obs, noise=noise)
    np.testing.assert_array_equal(before.actions, after.actions)
    assert again.metadata.checkpoint_id.split("@")[1] == before.checkpoint_id.split("@")[1]  # same weights, same hash
    assert again.metadata.checkpoint_id.startswith("saved@")


def test_checkpoint_id_tracks_the_weights(ckpt_copy):
    a = FlowMatchingPolicy.load(ckpt_copy).metadata.checkpoint_id
    name, digest = a.split("@")
    assert name == "tiny_ckpt" and len(digest) == 8 and int(digest, 16) >= 0
    weights = load_file(ckpt_copy / "model.safetensors")
    weights["heads.action_out_proj.bias"] = weights["heads.action_out_proj.bias"] + 1.0
    save_file(weights, ckpt_copy / "model.safetensors")
    assert FlowMatchingPolicy.load(ckpt_copy).metadata.checkpoint_id != a


def test_pickle_weights_are_refused(ckpt_copy):
    (ckpt_copy / "model.safetensors").unlink()
    (ckpt_copy / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin.*only safetensors"):
        FlowMatchingPolicy.load(ckpt_copy)


def test_missing_weights_file(ckpt_copy):
    (ckpt_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: weights not found"):
        FlowMatchingPolicy.load(ckpt_copy)


def test_missing_tensor_is_named(ckpt_copy):
    weights = load_file(ckpt_copy / "model.safetensors")
    del weights["expert.layers.1.mlp.down_proj.weight"]
    save_file(weights, ckpt_copy / "model.safetensors")
    with pytest.raises(CheckpointError,
                       match=r"model\.safetensors: missing tensor 'expert\.layers\.1\.mlp\.down_proj\.weight'"):
        FlowMatchingPolicy.load(ckpt_copy)


def test_unexpected_tensor_is_named(ckpt_copy):
    weights = load_file(ckpt_copy / "model.safetensors")
    weights["lm_head.weight"] = torch.zeros(2, 2)
    save_file(weights, ckpt_copy / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'lm_head\.weight'"):
        FlowMatchingPolicy.load(ckpt_copy)


def test_shape_mismatch_is_named(ckpt_copy):
    weights = load_file(ckpt_copy / "model.safetensors")
    name = "heads.action_in_proj.weight"
    weights[name] = torch.zeros(weights[name].shape[0], weights[name].shape[1] + 1)
    save_file(weights, ckpt_copy / "model.safetensors")
    with pytest.raises(CheckpointError,
                       match=r"model\.safetensors: tensor 'heads\.action_in_proj\.weight' has shape \(32, 9\), "
                             r"config\.json implies \(32, 8\)"):
        FlowMatchingPolicy.load(ckpt_copy)


def test_corrupt_safetensors_file(ckpt_copy):
    (ckpt_copy / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        FlowMatchingPolicy.load(ckpt_copy)


def _edit_config(ckpt, edit):
    path = ckpt / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["io"].pop("horizon"), r"config\.json: io\.horizon: missing key \(actions per chunk\)"),
        (lambda c: c["io"].update(horizon="ten"), r"config\.json: io\.horizon: expected integer, got str 'ten'"),
        (lambda c: c["io"].update(action_mode="sideways"), r"io\.action_mode: expected one of 'absolute', 'delta', got "
                                                           r"'sideways'"),
        (lambda c: c["backbone"].update(hiden_size=3), r"backbone\.hiden_size: unknown key \(known keys here: family, "
                                                       r"vocab_size, hidden_size"),
        (lambda c: c.pop("expert"), r"config\.json: expert: missing key \(action expert\)"),
        (lambda c: c["vision"]["siglip"].update(patch_size=5), r"vision\.siglip\.patch_size: must divide "
                                                               r"io\.image_size \(32\), got 5"),
        (lambda c: c["io"].update(state_dim=6), r"io\.state_dim: state_source 'ee_pose' gives a 7-vector"),
        (lambda c: c["backbone"].update(num_key_value_heads=3), r"backbone\.num_key_value_heads: must divide"),
    ],
)
def test_bad_config_names_the_key(ckpt_copy, edit, message):
    _edit_config(ckpt_copy, edit)
    with pytest.raises(ConfigError, match=message):
        FlowMatchingPolicy.load(ckpt_copy)


def test_architecture_change_in_config_is_caught_by_the_weights(ckpt_copy):
    _edit_config(ckpt_copy, lambda c: c["expert"].update(hidden_size=48))
    with pytest.raises(CheckpointError, match=r"has shape .* config\.json implies"):
        FlowMatchingPolicy.load(ckpt_copy)


def test_missing_files_and_bad_paths(ckpt_copy, tmp_path):
    with pytest.raises(ValueError, match="needs a checkpoint directory"):
        FlowMatchingPolicy.load(None)
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        FlowMatchingPolicy.load(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="a checkpoint is a directory"):
        FlowMatchingPolicy.load(ckpt_copy / "config.json")
    (ckpt_copy / "norm_stats.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"norm_stats\.json: normalization stats not found"):
        FlowMatchingPolicy.load(ckpt_copy)
    (ckpt_copy / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json: tokenizer file not found"):
        FlowMatchingPolicy.load(ckpt_copy)
    (ckpt_copy / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json: checkpoint config not found"):
        FlowMatchingPolicy.load(ckpt_copy)


def test_norm_stats_of_the_wrong_size(ckpt_copy):
    path = ckpt_copy / "norm_stats.json"
    stats = json.loads(path.read_text())
    for k in stats["actions"]:
        stats["actions"][k] = stats["actions"][k][:6]
    path.write_text(json.dumps(stats))
    with pytest.raises(ValueError, match=r"norm_stats\.json: actions stats have 6 dims, the policy has 7"):
        FlowMatchingPolicy.load(ckpt_copy)


def test_bad_device_and_dtype(ckpt_copy):
    with pytest.raises(ValueError, match="dtype: expected float32, bfloat16 or float16"):
        FlowMatchingPolicy.load(ckpt_copy, dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            FlowMatchingPolicy.load(ckpt_copy, device="cuda")
