"""`vla-ros import` of openpi PyTorch pi0 / pi05 checkpoints, and numerical parity with openpi.

The golden fixtures (test/fixtures/openpi_pi0, openpi_pi05; see test/fixtures/README.md) were
made by openpi's own PI0Pytorch at a tiny size (scripts/make_openpi_fixtures.py): a checkpoint
laid out as openpi's converter writes it (bf16 model.safetensors, config.json,
assets/<asset_id>/norm_stats.json), the inputs, the injected noise, the per-step velocities, the
actions and the elementwise training losses. Here each checkpoint is imported with the real
command, loaded with the real loader in float32, fed the reference's inputs and noise, and
compared: tokens and masks bitwise, images to float rounding, velocities / actions to 1e-5 on
the naive, cached and traced paths. The second half checks the openpi-specific refusals.

Three openpi behaviours need runtime options that this vla_ros may not have yet; the tests that
depend on them xfail, by name, until it does: the cleaned pi0 prompt (io.prompt 'openpi_pi0'),
openpi's float32-accumulated Euler times (sampling.time_schedule 'openpi'; meanwhile
test_actions_match_with_openpis_euler_times integrates the model's own velocities with them),
and openpi's truncated resize size.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from golden import GoldenFixtures  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from vla_ros.cli import main as cli_main  # noqa: E402
from vla_ros.policy.checkpoint import sha256_files  # noqa: E402
from vla_ros.policy.flow_matching.config import FlowMatchingConfig  # noqa: E402
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy  # noqa: E402
from vla_ros.policy.flow_matching.sampler import sample_actions  # noqa: E402
from vla_ros.policy.imports import CheckpointImportError, detect_format, import_checkpoint  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKENIZER = FIXTURES / "lerobot_tokenizer" / "tokenizer.model"
KINDS = ("pi0", "pi05")
CASES = ("two_cameras", "three_cameras", "raw_prompt")
PATHS = {"naive": dict(use_cache=False, traced=False), "cached": dict(traced=False), "traced": dict(traced=True)}
TOL = 1e-5
LM_HEAD = "paligemma_with_expert.paligemma.lm_head.weight"
EMBED = "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"


GOLDEN = GoldenFixtures("openpi")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each fixture checkpoint imported once with the real command (format auto-detected)."""
    out = {}
    for kind in KINDS:
        dst = tmp_path_factory.mktemp(f"imported_openpi_{kind}") / "ckpt"
        assert cli_main(["import", str(GOLDEN.dir(kind) / "checkpoint"), "--out", str(dst), "--tokenizer",
                         str(TOKENIZER)]) == 0
        out[kind] = dst
    return out


@pytest.fixture(scope="module")
def policies(imported):
    return {kind: FlowMatchingPolicy.load(path) for kind, path in imported.items()}


def _inputs(policy: FlowMatchingPolicy, kind: str, case: str):
    c, d = GOLDEN.case(kind, case)
    images = {k[len("raw.images."):]: v.permute(0, 3, 1, 2).to(torch.float32) / 255.0
              for k, v in d.items() if k.startswith("raw.images.")}
    return c, d, policy.batch_tensors(images, d["raw.state"].numpy(), c["tasks"])


def _needs_clean_pi0_prompt(policy, kind: str, case: str) -> None:
    if kind == "pi0" and case == "raw_prompt" and policy.config.io.prompt == "pi0":
        pytest.xfail("openpi cleans pi0 prompts (strip, '_' -> space); needs an io.prompt form that does (see the "
                     "importer's note)")


def _openpi_euler(fn, noise: torch.Tensor, num_steps: int = 10) -> torch.Tensor:
    """openpi's sample_actions loop: t from 1 by dt = float32(-1/N), accumulated in float32; x += dt * v."""
    dt = torch.tensor(-1.0 / num_steps, dtype=torch.float32)
    t = torch.tensor(1.0, dtype=torch.float32)
    x = noise.clone()
    while t >= -dt / 2:
        x = x + dt * fn(x, t.expand(x.shape[0]))
        t = t + dt
    return x


# -- the imported checkpoint ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_import_writes_a_native_v2_checkpoint(imported, kind):
    path = imported[kind]
    meta = GOLDEN.meta(kind)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "norm_stats.json",
                                                      "tokenizer.json"]
    cfg = FlowMatchingConfig.from_json(path / "config.json")
    assert cfg.format_version == 2 and cfg.source.format == "openpi" and cfg.source.policy_type == kind
    assert cfg.source.weights_sha256 == meta["checkpoint_files"]["model.safetensors"]["sha256"]
    assert cfg.weights.sha256 == sha256_files([path / "model.safetensors"])
    arch = meta["architecture"]
    assert (cfg.backbone.hidden_size, cfg.backbone.num_hidden_layers, cfg.backbone.intermediate_size) == (
        arch["vlm"]["width"], arch["vlm"]["depth"], arch["vlm"]["mlp_dim"])
    assert (cfg.backbone.num_attention_heads, cfg.backbone.num_key_value_heads, cfg.backbone.head_dim) == (8, 1, 16)
    assert (cfg.expert.hidden_size, cfg.expert.intermediate_size) == (arch["expert"]["width"],
                                                                      arch["expert"]["mlp_dim"])
    assert cfg.backbone.vocab_size == arch["vocab_size"]
    assert cfg.vision.siglip.num_attention_heads == arch["siglip"]["num_attention_heads"]
    io = cfg.io
    assert io.cameras == tuple(meta["image_keys"]) and io.image_size == arch["siglip"]["image_size"]
    assert (io.state_dim, io.action_dim, io.max_action_dim, io.max_state_dim) == (8, 7, 32, 32)
    assert io.horizon == meta["action_horizon"] and io.max_text_tokens == meta["max_token_len"]
    assert io.normalization == meta["normalization"] and io.norm_convention == "openpi"
    assert cfg.expert.time_conditioning == ("fused" if kind == "pi0" else "adarms")
    assert io.state_token == (kind == "pi0") and cfg.sampling.time_dtype == "float64"
    # openpi's converter stores bf16; the import keeps the stored dtype (the loader converts)
    assert {str(t.dtype) for t in load_file(str(path / "model.safetensors")).values()} == {"torch.bfloat16"}


@pytest.mark.parametrize("kind", KINDS)
def test_format_is_detected_and_can_be_named(kind, tmp_path):
    src = GOLDEN.dir(kind) / "checkpoint"
    assert detect_format(src) == "openpi"
    out = tmp_path / "out"
    assert cli_main(["import", str(src), "--out", str(out), "--format", "openpi", "--tokenizer", str(TOKENIZER),
                     "--no-verify"]) == 0
    assert FlowMatchingConfig.from_json(out / "config.json").source.policy_type == kind


@pytest.mark.parametrize("kind", KINDS)
def test_norm_stats_are_openpis(policies, kind):
    policy = policies[kind]
    raw = json.loads((GOLDEN.dir(kind) / "checkpoint" / "assets" / GOLDEN.meta(kind)["asset_id"]
                      / "norm_stats.json").read_text())
    for ours, theirs in ((policy.norm_stats.state, raw["norm_stats"]["state"]),
                         (policy.norm_stats.actions, raw["norm_stats"]["actions"])):
        for k in ("mean", "std", "q01", "q99"):
            assert np.array_equal(getattr(ours, k), np.asarray(theirs[k], dtype=np.float64)), k
    _, d = GOLDEN.case(kind, "two_cameras")
    io = policy.config.io
    norm = policy.norm_stats.state.normalize(d["raw.state"].numpy(), io.normalization, io.norm_convention)
    np.testing.assert_allclose(norm, d["pre.state"].numpy(), rtol=0, atol=1e-12)
    act = policy.norm_stats.actions.normalize(d["raw.actions"].numpy(), io.normalization, io.norm_convention)
    np.testing.assert_allclose(act, d["pre.actions"].numpy(), rtol=0, atol=1e-12)


# -- parity with openpi ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_preprocessing_matches(policies, kind, case):
    policy = policies[kind]
    _needs_clean_pi0_prompt(policy, kind, case)
    c, d, obs = _inputs(policy, kind, case)
    assert torch.equal(obs.tokens, d["pre.tokenized_prompt"])
    assert torch.equal(obs.token_mask, d["pre.tokenized_prompt_mask"])
    for i in range(3):
        assert torch.equal(obs.image_mask[:, i], d[f"model.image_masks.{i}"])
        if bool(d[f"model.image_masks.{i}"].all()):
            seen = policy.model.normalize_images(obs.images[:, i])
            assert (seen - d[f"model.images.{i}"]).abs().max().item() <= 1e-6  # x/255*2-1 vs (x/255-0.5)/0.5
    if kind == "pi0":
        assert torch.equal(obs.state, d["model.state"].to(torch.float32))
    else:
        assert obs.state is None  # pi05: the state is in the prompt
    _, pad = policy.model.embed_prefix(obs)
    assert torch.equal(pad, d["model.prefix_pad_masks"])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_per_step_velocities_match(policies, kind, case):
    policy = policies[kind]
    _needs_clean_pi0_prompt(policy, kind, case)
    _, d, obs = _inputs(policy, kind, case)
    with torch.no_grad():
        cache = policy.model.prefix_cache(obs)
        for i in range(10):
            t = d["sample.time"][i].expand(2)
            v = policy.model.velocity_cached(cache, obs.state, d["sample.x_t"][i], t)
            assert (v - d["sample.v_t"][i]).abs().max().item() <= TOL, f"step {i}"
            if i in (0, 9):
                vn = policy.model.velocity_naive(obs, d["sample.x_t"][i], t)
                assert (vn - d["sample.v_t"][i]).abs().max().item() <= TOL, f"naive step {i}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_actions_match(policies, kind, case, path):
    policy = policies[kind]
    _needs_clean_pi0_prompt(policy, kind, case)
    _, d, obs = _inputs(policy, kind, case)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed trace would fall back to eager silently
        x = sample_actions(policy.model, obs, d["sample.noise"], 10, **PATHS[path])
    if path == "traced":
        assert any(t is not None for t in policy.model.__dict__["_traced_samplers"].values())
    actions = policy.unnormalize_actions(x[..., :7].numpy())
    err_padded = (x - d["sample.actions_padded"]).abs().max().item()
    err = float(np.abs(actions - d["sample.actions"].numpy()).max())
    print(f"openpi {kind} {case} {path}: actions {err:.3g}, padded {err_padded:.3g}")
    if getattr(policy.config.sampling, "time_schedule", None) != "openpi":
        assert err_padded <= 2e-4  # only the Euler times differ (see the next test)
        pytest.xfail("openpi accumulates the Euler times in float32; needs sampling.time_schedule 'openpi' (importer "
                     "note)")
    assert err_padded <= TOL and err <= TOL


@pytest.mark.parametrize("path", ("naive", "cached"))
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_actions_match_with_openpis_euler_times(policies, kind, case, path):
    """The model's own velocities, integrated with openpi's time accumulation, give openpi's actions."""
    policy = policies[kind]
    _needs_clean_pi0_prompt(policy, kind, case)
    _, d, obs = _inputs(policy, kind, case)
    with torch.no_grad():
        if path == "cached":
            cache = policy.model.prefix_cache(obs)
            x = _openpi_euler(lambda xx, t: policy.model.velocity_cached(cache, obs.state, xx, t), d["sample.noise"])
        else:
            x = _openpi_euler(lambda xx, t: policy.model.velocity_naive(obs, xx, t), d["sample.noise"])
    actions = policy.unnormalize_actions(x[..., :7].numpy())
    err_padded = (x - d["sample.actions_padded"]).abs().max().item()
    err = float(np.abs(actions - d["sample.actions"].numpy()).max())
    print(f"openpi {kind} {case} {path} (openpi times): actions {err:.3g}, padded {err_padded:.3g}")
    assert err_padded <= TOL and err <= TOL


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_training_loss_matches(policies, kind, case):
    """openpi returns the elementwise loss over all 32 padded dims; ours averages the 7 real ones."""
    policy = policies[kind]
    _needs_clean_pi0_prompt(policy, kind, case)
    _, d, obs = _inputs(policy, kind, case)
    io = policy.config.io
    actions = np.zeros((2, io.horizon, io.max_action_dim), dtype=np.float32)
    actions[..., :7] = policy.norm_stats.actions.normalize(d["raw.actions"].numpy(), io.normalization,
                                                           io.norm_convention)
    assert np.array_equal(actions, d["train.actions_padded"].numpy())
    with torch.no_grad():
        per_sample = policy.model.compute_loss(obs, torch.from_numpy(actions), noise=d["train.noise"],
                                               time=d["train.time"],
                                               reduce=False)
    expected = d["train.losses"][..., :7].mean(dim=(1, 2))
    assert torch.allclose(per_sample, expected, rtol=TOL, atol=TOL), (per_sample, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_robot_observation_gives_openpis_actions(policies, kind):
    """`infer` on a robot Observation (the uint8 camera frames openpi was fed) gives openpi's chunk."""
    from vla_ros.core.types import Observation

    policy = policies[kind]
    c, d = GOLDEN.case(kind, "three_cameras")
    for i in range(2):
        images = {k[len("raw.images."):]: v[i].numpy() for k, v in d.items() if k.startswith("raw.images.")}
        ob = Observation(stamp=1.0, images=images, joint_positions=d["raw.state"][i].numpy().astype(np.float64),
                         instruction=c["tasks"][i])
        chunk = policy.infer(ob, noise=d["sample.noise"][i].numpy())
        expected = d["sample.actions"][i].numpy().copy()
        expected[:, 6] = np.clip(expected[:, 6], 0, 1)  # the package's gripper range
        err = float(np.abs(chunk.actions - expected).max())
        print(f"openpi {kind} observation path, sample {i}: {err:.3g}")
        if getattr(policy.config.sampling, "time_schedule", None) != "openpi":
            assert err <= 5e-4
            continue
        assert err <= TOL
    if getattr(policy.config.sampling, "time_schedule", None) != "openpi":
        pytest.xfail("openpi accumulates the Euler times in float32; needs sampling.time_schedule 'openpi' (importer "
                     "note)")


@pytest.mark.parametrize("kind", KINDS)
def test_a_resized_camera_is_within_one_level_of_openpis_pil_resize(policies, kind):
    """openpi resizes frames with PIL (uint8, bilinear, antialiased) to int(h / ratio) rows; this
    package's 'antialias' resize is torch's uint8 kernel: at most one level apart when the sizes agree."""
    from vla_ros.policy.preprocessing import resize_with_pad

    probe = resize_with_pad(torch.full((3, 45, 70), 255, dtype=torch.uint8), 32)
    if int((probe[0, :, 16] > 0).sum()) != 20:  # openpi: int(45 / 2.1875) = 20 rows
        pytest.xfail("resize_with_pad rounds the resized size (21 rows) where openpi truncates it (20); see the report")
    policy = policies[kind]
    _, d, obs = _inputs(policy, kind, "resized_base_camera")
    seen = policy.model.normalize_images(obs.images[:, 0])
    assert (seen - d["model.images.0"]).abs().max().item() <= 1.0001 / 127.5  # one uint8 level in [-1, 1]
    x = sample_actions(policy.model, obs, d["sample.noise"], 10, traced=False)
    assert (x - d["sample.actions_padded"]).abs().max().item() <= 5e-3  # measured 1.3e-3 (pi0), 1.7e-4 (pi05)


# -- layouts the importer accepts ------------------------------------------------------------------


def _copy_checkpoint(kind: str, dst: Path) -> Path:
    return Path(shutil.copytree(GOLDEN.dir(kind) / "checkpoint", dst))


def _rewrite(src: Path, edit) -> None:
    w = load_file(str(src / "model.safetensors"))
    edit(w)
    save_file(w, str(src / "model.safetensors"))


def test_tied_embeddings_either_way_give_the_same_actions(tmp_path, policies):
    """openpi's save_model keeps one name of the tied pair; both names import to the same model."""
    stored = set(GOLDEN.meta("pi0")["model_safetensors_keys"])
    assert (LM_HEAD in stored) != (EMBED in stored)  # deduplicated
    src = _copy_checkpoint("pi0", tmp_path / "src")
    _rewrite(src, lambda w: w.update({(EMBED if LM_HEAD in w else LM_HEAD): w.pop(LM_HEAD if LM_HEAD in w else EMBED)}))
    import_checkpoint(src, tmp_path / "out", tokenizer=TOKENIZER)
    other = FlowMatchingPolicy.load(tmp_path / "out")
    _, d, obs = _inputs(other, "pi0", "two_cameras")
    ref = sample_actions(policies["pi0"].model, obs, d["sample.noise"], 10, traced=False)
    assert torch.equal(sample_actions(other.model, obs, d["sample.noise"], 10, traced=False), ref)


@pytest.mark.parametrize(
    "kind, edit, message",
    [
        ("pi05", lambda w: w.pop("time_mlp_in.weight"), r"missing tensors 'heads\.time_mlp_in\.weight'"),
        ("pi05", lambda w: w.update({"state_proj.weight": torch.zeros(32, 32, dtype=torch.bfloat16)}),
         r"neither a pi0 .* nor a pi05 .*found heads\.state_proj\.weight, heads\.time_mlp_in\.weight"),
        ("pi0", lambda w: w.update({"paligemma_with_expert.gemma_expert.model.layers.0.input_layernorm.dense.weight":
                                    torch.zeros(96, 32, dtype=torch.bfloat16)}), r"neither a pi0 .* nor a pi05"),
        ("pi0", lambda w: w.pop("paligemma_with_expert.gemma_expert.model.layers.1.mlp.up_proj.weight"),
         r"missing tensors 'expert\.layers\.1\.mlp\.up_proj\.weight'"),
        ("pi05", lambda w: w.update({"some_new_head.weight": torch.zeros(2)}),
         r"unexpected tensors 'some_new_head\.weight'"),
    ],
)
def test_pi05_is_told_by_its_keys_and_key_errors_are_named(tmp_path, kind, edit, message):
    src = _copy_checkpoint(kind, tmp_path / "src")
    _rewrite(src, edit)
    with pytest.raises(CheckpointImportError, match=message):
        import_checkpoint(src, tmp_path / "out", tokenizer=TOKENIZER)
    assert not (tmp_path / "out").exists()


# -- refusals: one sentence, exit code 2, no traceback ---------------------------------------------


def _refused(capsys, src: Path, out: Path, *extra: str) -> str:
    assert cli_main(["import", str(src), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vla-ros import: error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not (out / "config.json").exists()
    return err


def test_missing_assets_are_refused(tmp_path, capsys):
    src = _copy_checkpoint("pi05", tmp_path / "src")
    shutil.rmtree(src / "assets")
    err = _refused(capsys, src, tmp_path / "out", "--tokenizer", str(TOKENIZER))
    assert "no assets/ directory" in err and "norm_stats.json" in err


def test_ambiguous_asset_id_is_refused_and_can_be_chosen(tmp_path, capsys):
    src = _copy_checkpoint("pi05", tmp_path / "src")
    asset = GOLDEN.meta("pi05")["asset_id"]
    shutil.copytree(src / "assets" / asset, src / "assets" / "other_robot")
    err = _refused(capsys, src, tmp_path / "out", "--tokenizer", str(TOKENIZER))
    assert "2 asset ids" in err and asset in err and "other_robot" in err and "--asset-id" in err
    err = _refused(capsys, src, tmp_path / "out2", "--tokenizer", str(TOKENIZER), "--asset-id", "nope")
    assert "--asset-id must be one of" in err and asset in err
    assert cli_main(["import", str(src), "--out", str(tmp_path / "ok"), "--tokenizer", str(TOKENIZER),
                     "--asset-id", asset, "--no-verify"]) == 0


def test_asset_id_is_refused_for_lerobot(tmp_path, capsys):
    err = _refused(capsys, FIXTURES / "lerobot_pi0" / "checkpoint", tmp_path / "out", "--asset-id", "x")
    assert "--asset-id" in err and "openpi" in err


def test_missing_tokenizer_says_which_file_to_provide(tmp_path, capsys):
    err = _refused(capsys, GOLDEN.dir("pi0") / "checkpoint", tmp_path / "out")
    assert "openpi checkpoints carry no tokenizer" in err
    assert "--tokenizer" in err and "paligemma_tokenizer.model" in err


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s["norm_stats"].pop("actions"), r"norm_stats\.actions missing"),
        (lambda s: s["norm_stats"]["state"].update({"q99": None}),
         r"'state\.q99' missing; quantile normalisation needs it"),
        (lambda s: s["norm_stats"]["actions"].update({"mean": ["a"] * 7}),
         r"norm_stats\.actions\.mean must be a list of numbers"),
    ],
)
def test_bad_norm_stats_are_named(tmp_path, capsys, edit, message):
    import re

    src = _copy_checkpoint("pi05", tmp_path / "src")
    path = src / "assets" / GOLDEN.meta("pi05")["asset_id"] / "norm_stats.json"
    stats = json.loads(path.read_text())
    edit(stats)
    path.write_text(json.dumps(stats))
    err = _refused(capsys, src, tmp_path / "out", "--tokenizer", str(TOKENIZER))
    assert re.search(message, err), err


def test_joint_space_actions_are_refused(tmp_path, capsys):
    """openpi's DROID checkpoints act in joint space (7 joint velocities + gripper): refused by name."""
    src = _copy_checkpoint("pi0", tmp_path / "src")
    path = src / "assets" / GOLDEN.meta("pi0")["asset_id"] / "norm_stats.json"
    stats = json.loads(path.read_text())
    for k in ("mean", "std", "q01", "q99"):
        stats["norm_stats"]["actions"][k] = stats["norm_stats"]["actions"][k] + [0.5]
    path.write_text(json.dumps(stats))
    err = _refused(capsys, src, tmp_path / "out", "--tokenizer", str(TOKENIZER))
    assert "norm_stats.actions" in err and "8 dims" in err and "joint-space" in err


def test_a_config_without_assets_is_still_recognised_as_openpi(tmp_path):
    src = _copy_checkpoint("pi0", tmp_path / "src")
    shutil.rmtree(src / "assets")
    assert detect_format(src) == "openpi"  # not "unknown LeRobot type None"


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_keeps_the_vision_tower_and_norms_in_float32(imported, kind):
    """openpi keeps its embeddings and norms fp32 in bf16; here the whole vision tower is (see the importer)."""
    policy = FlowMatchingPolicy.load(imported[kind], dtype="bfloat16")
    dtypes = {n: p.dtype for n, p in policy.model.named_parameters()}
    islands = ("vision.", "input_layernorm.", "post_attention_layernorm.", "backbone.norm.", "expert.norm.")
    for n, dt in dtypes.items():
        assert (dt == torch.float32) == any(p in n for p in islands), n
    _, d, obs = _inputs(policy, kind, "two_cameras")
    x = sample_actions(policy.model, obs, d["sample.noise"], 10)
    assert (x - d["sample.actions_padded"]).abs().max().item() < 0.05  # bf16 rounding, not a wrong model
