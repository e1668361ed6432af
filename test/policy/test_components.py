"""Small pieces: config validation, tokenizer, normalisation, preprocessing, action conversions, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla_ros.core.rotations import quat_angle, rotvec_to_quat
from vla_ros.core.types import EEPose
from vla_ros.core.action_modes import absolute_to_delta, delta_to_absolute
from vla_ros.policy.flow_matching.config import ConfigError, FlowMatchingConfig
from vla_ros.policy.flow_matching.tiny import instruction_corpus, tiny_config_dict
from vla_ros.policy.normalization import NormStats, compute_norm_stats
from vla_ros.policy.preprocessing import ImagePreprocessor, resize_with_pad
from vla_ros.policy.tokenizer import TextTokenizer, train_tokenizer


def test_config_round_trip_and_derived_sizes():
    d = tiny_config_dict(vision="siglip_dinov2", cameras=("a", "b", "c"), image_size=64, patch_size=8)
    cfg = FlowMatchingConfig.from_dict(d)
    assert FlowMatchingConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.tokens_per_camera == 8 and cfg.prefix_length == 3 * 8 + 16 and cfg.suffix_length == 11
    assert FlowMatchingConfig.from_dict(tiny_config_dict(image_size=64, patch_size=8)).tokens_per_camera == 64


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["io"].update(cameras=[]), r"io\.cameras: expected at least 1 item\(s\), got 0"),
        (lambda d: d["io"].update(cameras=["a", "a"]), r"io\.cameras: expected unique items, got \['a', 'a'\]"),
        (lambda d: d["io"].update(dt=0), r"io\.dt: expected > 0, got 0"),
        (lambda d: d["io"].update(action_dim=6), r"io\.action_dim: .*expected 7, got 6"),
        (lambda d: d["vision"].update(kind="siglip_dinov2", dinov2=None),
         r"vision\.dinov2: vision kind 'siglip_dinov2' needs"),
        (lambda d: d.update(format_version=3), r"^format_version: this vla_ros reads versions 1 and 2, got 3"),
        (lambda d: d.update(extra=1), r"^extra: unknown key \(known keys here: io, backbone"),
        (lambda d: d["backbone"].update(family="mistral"), r"backbone\.family: expected one of 'gemma', 'llama', got "
                                                           r"'mistral'"),
    ],
)
def test_config_errors_name_the_key(edit, message):
    d = tiny_config_dict()
    edit(d)
    with pytest.raises(ConfigError, match=message):
        FlowMatchingConfig.from_dict(d)


def test_tokenizer_fixed_length_bos_and_padding(tmp_path):
    tok = TextTokenizer(train_tokenizer(instruction_corpus(), vocab_size=400), max_tokens=8)
    ids, mask = tok.encode(["pick up the red cube", "", "stack " * 20])
    assert ids.shape == (3, 8) and mask.dtype == bool
    assert ids[0, 0] == tok.bos_id and mask[0].sum() >= 3 and not mask[0, -1]
    assert mask[1].tolist() == [True] + [False] * 7 and ids[1, 1] == tok.pad_id  # empty: BOS only
    assert mask[2].all()  # long instructions are truncated
    tok.save(tmp_path / "tokenizer.json")
    again = TextTokenizer.load(tmp_path / "tokenizer.json", 8)
    np.testing.assert_array_equal(again.encode(["push the blue block"])[0], tok.encode(["push the blue block"])[0])
    with pytest.raises(ValueError, match=r"special token '<nope>' is not in the vocabulary"):
        TextTokenizer.load(tmp_path / "tokenizer.json", 8, bos_token="<nope>")


@pytest.mark.parametrize("kind", ["mean_std", "quantile", "none"])
def test_normalization_round_trip(kind, tmp_path):
    rng = np.random.default_rng(0)
    states, actions = rng.normal(3, 2, (50, 4)), rng.normal(-1, 0.5, (50, 10, 7))
    stats = compute_norm_stats(states, actions)
    x = actions[:3]
    np.testing.assert_allclose(stats.actions.unnormalize(stats.actions.normalize(x, kind), kind), x, atol=1e-9)
    if kind == "mean_std":
        z = stats.state.normalize(states, kind)
        np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    if kind == "quantile":
        z = stats.actions.normalize(actions, kind).reshape(-1, 7)
        assert np.all(np.quantile(z, 0.01, axis=0) == pytest.approx(-1, abs=1e-4))
    stats.save(tmp_path / "s.json")
    again = NormStats.load(tmp_path / "s.json")
    np.testing.assert_allclose(again.actions.q99, stats.actions.q99)
    with pytest.raises(ValueError, match="NaN"):
        compute_norm_stats(None, np.array([[np.nan] * 7]))


def test_resize_with_pad_preserves_aspect():
    img = torch.full((3, 20, 40), 200, dtype=torch.uint8)  # wide image
    out = resize_with_pad(img, 32)
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    rows = (out[0] > 0).any(dim=1)
    assert rows.sum() == 16 and rows[8:24].all() and not rows[:8].any()  # 40x20 -> 32x16, centred
    assert torch.all(out[:, 8:24, :] == 200)
    tall = resize_with_pad(torch.full((3, 64, 16), 9, dtype=torch.uint8), 32)
    assert (tall[0] > 0).any(dim=0).sum() == 8
    same = torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
    assert torch.equal(resize_with_pad(same, 32), same)


def test_image_preprocessor_orders_cameras_and_masks_missing():
    pre = ImagePreprocessor(("primary", "wrist"), 16)
    imgs, present = pre({"wrist": np.full((8, 8, 3), 7, np.uint8)})
    assert imgs.shape == (2, 3, 16, 16) and present.tolist() == [False, True]
    assert torch.all(imgs[0] == 0) and torch.all(imgs[1] == 7)
    with pytest.raises(ValueError, match=r"observation\.images\['primary'\]: .*uint8"):
        pre({"primary": np.zeros((8, 8, 3), np.float32)})


def test_delta_conversion_round_trip_and_convention():
    ref = EEPose(np.array([0.4, -0.1, 0.3]), rotvec_to_quat(np.array([0.1, -0.2, 0.3])))
    rng = np.random.default_rng(1)
    absolute = np.concatenate([rng.normal(0.4, 0.1, (5, 3)), rng.normal(0, 0.5, (5, 3)), rng.uniform(0, 1, (5, 1))],
                              axis=1)
    delta = absolute_to_delta(absolute, ref)
    np.testing.assert_allclose(delta_to_absolute(delta, ref), absolute, atol=1e-9)
    np.testing.assert_allclose(delta[:, 6], absolute[:, 6])  # gripper stays absolute
    # ActionChunk.msg: rotation = delta * reference (left-multiplied)
    from vla_ros.core.rotations import quat_mul

    q = quat_mul(rotvec_to_quat(delta[0, 3:6]), ref.orientation)
    assert quat_angle(q, rotvec_to_quat(absolute[0, 3:6])) < 1e-9
    np.testing.assert_allclose(absolute_to_delta(np.concatenate([ref.as_vector(), [0.5]]), ref)[:6], 0, atol=1e-12)


def test_cli_make_checkpoint(tmp_path, capsys):
    from vla_ros.cli import main

    out = tmp_path / "cli_ckpt"
    rc = main(["make-checkpoint", str(out), "--family", "llama", "--vision", "siglip_dinov2", "--cameras",
               "primary,wrist",
               "--horizon", "6", "--action-mode", "delta", "--state-source", "joints", "--image-size", "32",
               "--patch-size", "8", "--seed", "3"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "verified: cli_ckpt@" in text and "horizon=6" in text and "mode=delta" in text
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["backbone"]["family"] == "llama" and cfg["vision"]["kind"] == "siglip_dinov2"
    assert cfg["io"]["cameras"] == ["primary", "wrist"] and cfg["io"]["state_source"] == "joints"
    rc = main(["make-checkpoint", str(tmp_path / "bad"), "--cameras", ",", "--no-verify"])
    assert rc == 2 and "--cameras: expected at least one camera name" in capsys.readouterr().err
