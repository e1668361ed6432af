"""`vla-ros import` of a LeRobot SmolVLA checkpoint, and numerical parity with the reference.

The golden fixture (test/fixtures/lerobot_smolvla; see test/fixtures/README.md) was made by
LeRobot's own `SmolVLAPolicy` at a tiny size, with a tiny SmolVLM2 directory (config.json +
tokenizer) saved beside it under ``vlm/`` and named by the checkpoint's ``vlm_model_name``. Here
the checkpoint is imported with the real command (the VLM found under ``--vlm-path``), loaded by
the real loader, fed the reference's inputs and noise, and compared: tokens, state and images
bitwise, the per-step velocity and the actions to 1e-5 (fp32) on the naive, cached and traced
paths, for both cameras present and the wrist camera missing, and the training loss. The rest
checks the refusals (missing VLM directory or tokenizer, too many VLM layers: one sentence, exit
code 2) and fine-tuning the imported expert with the VLM frozen.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from golden import GoldenFixtures  # noqa: E402

from vla_ros.cli import main as cli_main  # noqa: E402
from vla_ros.policy.flow_matching.config import FlowMatchingConfig  # noqa: E402
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy  # noqa: E402
from vla_ros.policy.flow_matching.sampler import sample_actions  # noqa: E402

GOLDEN = GoldenFixtures("lerobot")
FIXTURE = GOLDEN.dir("smolvla")
CHECKPOINT, VLM_ROOT = FIXTURE / "checkpoint", FIXTURE / "vlm"
CASES = ("two_cameras", "missing_wrist_camera")
PATHS = {"naive": dict(use_cache=False, traced=False), "cached": dict(traced=False), "traced": dict(traced=True)}
TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    dst = tmp_path_factory.mktemp("imported_smolvla") / "ckpt"
    assert cli_main(["import", str(CHECKPOINT), "--out", str(dst), "--vlm-path", str(VLM_ROOT)]) == 0
    return dst


@pytest.fixture(scope="module")
def policy(imported):
    return FlowMatchingPolicy.load(imported)


def _inputs(policy: FlowMatchingPolicy, case: str):
    c, d = GOLDEN.case("smolvla", case)
    images = {k[len("raw.observation.images."):]: v for k, v in d.items() if k.startswith("raw.observation.images.")}
    return c, d, policy.batch_tensors(images, d["raw.observation.state"].numpy(), c["tasks"])


# -- the imported checkpoint ------------------------------------------------------------------


def test_import_writes_the_smolvla_layout_into_a_v2_config(imported):
    cfg = FlowMatchingConfig.from_json(imported / "config.json")
    arch = GOLDEN.meta("smolvla")["architecture"]
    assert cfg.source.policy_type == "smolvla" and cfg.format_version == 2
    # sizes: the VLM's config.json for heads, truncated to num_vlm_layers; RoPE base 10000, not the VLM's 1e5
    assert (cfg.backbone.family, cfg.backbone.num_hidden_layers) == ("llama", arch["num_vlm_layers"])
    assert (cfg.backbone.num_attention_heads, cfg.backbone.num_key_value_heads, cfg.backbone.head_dim) == (4, 2, 16)
    assert cfg.backbone.rope_theta == 10000.0 and arch["text"]["rope_theta"] != 10000.0
    assert cfg.backbone.scale_embeddings
    assert cfg.expert.hidden_size == int(arch["text"]["hidden_size"] * arch["expert_width_multiplier"])
    assert ((cfg.expert.attention, cfg.expert.self_attn_every_n_layers, cfg.expert.causal_actions)
            == ("interleaved", 2, True))
    assert cfg.layer_kinds == ("self", "cross", "self", "cross")
    assert cfg.vision.kind == "smolvlm" and cfg.vision.scale_factor == 2 and cfg.tokens_per_camera == 16
    assert (cfg.io.image_size, cfg.io.image_resize, cfg.io.prompt) == (64, "bilinear_top_left", "pi0")
    assert cfg.state_in_prefix and cfg.suffix_length == cfg.io.horizon
    assert cfg.prefix_length == 2 * 16 + cfg.io.max_text_tokens + 1
    assert cfg.tokenizer.pad_token == "<|im_end|>" and cfg.tokenizer.bos_token is None  # the tiny SmolVLM adds none
    # the cross layers' k/v projections read the VLM's kv_heads * head_dim
    weights = json.loads((FIXTURE / "fixture.json").read_text())["model_safetensors_keys"]
    assert weights["model.vlm_with_expert.lm_expert.layers.1.self_attn.k_proj.weight"]["shape"] == [32, 32]


def test_vlm_directory_is_found_by_name_on_the_search_path(tmp_path, monkeypatch):
    monkeypatch.setenv("VLA_ROS_VLM_PATH", str(VLM_ROOT))
    assert cli_main(["import", str(CHECKPOINT), "--out", str(tmp_path / "a"), "--no-verify"]) == 0
    monkeypatch.delenv("VLA_ROS_VLM_PATH")
    vlm = VLM_ROOT / "vla-ros-tests" / "tiny-smolvlm2"
    assert cli_main(["import", str(CHECKPOINT), "--out", str(tmp_path / "b"), "--no-verify", "--vlm", str(vlm)]) == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


# -- parity with LeRobot ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_preprocessing_matches_bitwise(policy, case):
    c, d, obs = _inputs(policy, case)
    norm = policy.norm_stats.state.normalize(d["raw.observation.state"].numpy(), "mean_std", "lerobot")
    assert np.array_equal(norm, d["pre.observation.state"].numpy())
    assert policy.prompts(c["tasks"], norm) == c["tokenizer_texts"]
    n = d["pre.observation.language.tokens"].shape[1]  # the reference pads to the longest; we to max_text_tokens
    assert torch.equal(obs.tokens[:, :n], d["pre.observation.language.tokens"])
    assert torch.equal(obs.token_mask[:, :n], d["pre.observation.language.attention_mask"].bool())
    assert not bool(obs.token_mask[:, n:].any())
    assert torch.equal(obs.state, d["model.state"])
    present = [k[len("raw.observation.images."):] for k in d if k.startswith("raw.observation.images.")]
    for i, cam in enumerate(policy.config.io.cameras):
        assert bool(obs.image_mask[:, i].all()) == (cam in present)
    for i in range(len(present)):  # top/left padding at 64 px, no clamp, [-1, 1]
        assert torch.equal(policy.model.normalize_images(obs.images[:, i]), d[f"model.images.{i}"])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES)
def test_sampling_matches_the_reference(policy, case, path):
    _, d, obs = _inputs(policy, case)
    x = sample_actions(policy.model, obs, d["sample.noise"], policy.num_steps, **PATHS[path])
    assert (x - d["sample.actions_padded"]).abs().max().item() <= TOL
    actions = policy.unnormalize_actions(x[:, :, :7].numpy())
    assert np.abs(actions - d["sample.actions"].numpy()).max() <= TOL * max(1.0, float(d["sample.actions"].abs().max()))


@pytest.mark.parametrize("case", CASES)
def test_every_euler_velocity_matches(policy, case):
    _, d, obs = _inputs(policy, case)
    cache = policy.model.prefix_cache(obs)
    layout = policy.model.suffix_layout(cache)
    for i, t in enumerate(d["sample.time"].tolist()):
        tt = torch.full((2,), t)
        with torch.no_grad():
            v_cached = policy.model.velocity_cached(cache, obs.state, d["sample.x_t"][i], tt, layout)
            v_naive = policy.model.velocity_naive(obs, d["sample.x_t"][i], tt)
        assert (v_cached - d["sample.v_t"][i]).abs().max().item() <= TOL, i
        assert (v_naive - d["sample.v_t"][i]).abs().max().item() <= TOL, i


@pytest.mark.parametrize("case", CASES)
def test_training_loss_matches(policy, case):
    _, d, obs = _inputs(policy, case)
    actions = torch.zeros(2, policy.config.io.horizon, policy.config.io.max_action_dim)
    actions[:, :, :7] = d["pre.action"]
    with torch.no_grad():
        loss = policy.model.compute_loss(obs, actions, noise=d["train.noise"], time=d["train.time"], reduce=False)
    assert (loss - d["train.per_sample_loss"]).abs().max().item() <= TOL


def test_the_reference_rope_base_matters(imported, tmp_path):
    """The VLM config's RoPE base (1e5) instead of the reference's hard-coded 10000 moves the actions."""
    cfg = json.loads((imported / "config.json").read_text())
    cfg["backbone"]["rope_theta"] = 100000.0
    other = Path(shutil.copytree(imported, tmp_path / "theta"))
    (other / "config.json").write_text(json.dumps(cfg))
    policy = FlowMatchingPolicy.load(other)
    _, d, obs = _inputs(policy, "two_cameras")
    x = sample_actions(policy.model, obs, d["sample.noise"], policy.num_steps, traced=False)
    assert (x - d["sample.actions_padded"]).abs().max().item() > 100 * TOL


# -- refusals: one sentence, exit code 2 ----------------------------------------------------------


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("vla-ros import: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_missing_vlm_directory_says_what_to_provide(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VLA_ROS_VLM_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/vla_ros/vlm either
    assert cli_main(["import", str(CHECKPOINT), "--out", str(tmp_path / "o"), "--vlm-path", str(tmp_path)]) == 2
    err = _one_sentence(capsys)
    assert "vla-ros-tests/tiny-smolvlm2" in err and "vlm_model_name" in err and "config.json" in err
    assert "--vlm" in err and "VLA_ROS_VLM_PATH" in err
    assert not (tmp_path / "o").exists()


def test_missing_tokenizer_is_one_sentence(tmp_path, capsys):
    src = Path(shutil.copytree(CHECKPOINT, tmp_path / "src"))
    shutil.rmtree(src / "tokenizer")
    vlm = Path(shutil.copytree(VLM_ROOT, tmp_path / "vlm"))
    (vlm / "vla-ros-tests" / "tiny-smolvlm2" / "tokenizer.json").unlink()
    assert cli_main(["import", str(src), "--out", str(tmp_path / "o"), "--vlm-path", str(vlm)]) == 2
    err = _one_sentence(capsys)
    assert "tokenizer.json" in err and "--tokenizer" in err
    # the VLM directory's tokenizer serves when the checkpoint has none
    assert cli_main(["import", str(src), "--out", str(tmp_path / "o2"), "--vlm-path", str(VLM_ROOT),
                     "--no-verify"]) == 0


def test_more_vlm_layers_than_the_vlm_has_is_one_sentence(tmp_path, capsys):
    src = Path(shutil.copytree(CHECKPOINT, tmp_path / "src"))
    cfg = json.loads((src / "config.json").read_text())
    cfg["num_vlm_layers"] = 7  # the tiny SmolVLM2 has 6 text layers
    (src / "config.json").write_text(json.dumps(cfg))
    assert cli_main(["import", str(src), "--out", str(tmp_path / "o"), "--vlm-path", str(VLM_ROOT)]) == 2
    err = _one_sentence(capsys)
    assert "num_vlm_layers = 7" in err and "only 6" in err


def test_vlm_options_are_refused_for_other_checkpoints(tmp_path, capsys):
    pi0 = GOLDEN.dir("pi0") / "checkpoint"
    assert cli_main(["import", str(pi0), "--out", str(tmp_path / "o"), "--vlm-path", str(VLM_ROOT)]) == 2
    assert "only SmolVLA" in _one_sentence(capsys)
