"""Policy.self_check through the real load path (registry.load_configured_policy): a checkpoint
whose weights are all NaN loads and warms up without complaint, and must still be refused before
it runs on a robot (issue 11, list 11). A healthy checkpoint passes, and the check draws no noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from policy_helpers import make_checkpoint, make_observation
from vla_ros.core.config import PolicyConfig
from vla_ros.policy.registry import load_configured_policy


def nan_checkpoint(directory):
    path = make_checkpoint(directory)
    weights = Path(path) / "model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()},
              str(weights))
    return path


def test_a_checkpoint_with_nan_weights_is_refused_at_load(tmp_path):
    ckpt = nan_checkpoint(tmp_path / "nan")
    with pytest.raises(RuntimeError) as err:
        load_configured_policy(PolicyConfig(type="flow_matching", checkpoint=str(ckpt)))
    text = str(err.value)
    assert text.startswith(f"cannot warm up the policy (policy.type='flow_matching', policy.checkpoint='{ckpt}'")
    assert "NaN or inf" in text, text


def test_a_healthy_checkpoint_passes_and_the_check_draws_no_sampling_noise(ckpt_factory):
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy

    ckpt = str(ckpt_factory())
    checked = load_configured_policy(PolicyConfig(type="flow_matching", checkpoint=ckpt))
    plain = FlowMatchingPolicy.load(ckpt)
    obs = make_observation()
    # Same first chunk as a policy that was never checked: the noise generator was not touched.
    np.testing.assert_allclose(checked.infer(obs).actions, plain.infer(obs).actions, atol=1e-5)
