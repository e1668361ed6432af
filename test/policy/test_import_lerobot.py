"""`vla-ros import` of LeRobot pi0 / pi05 checkpoints, and numerical parity with the reference.

The golden fixtures (test/fixtures/lerobot_pi0, lerobot_pi05; see test/fixtures/README.md) were
made by LeRobot itself at a tiny size: its saved checkpoint, the inputs, the injected noise, the
per-step velocities, the actions and the training loss. Here each checkpoint is imported with the
real command, loaded with the real loader, fed the reference's inputs and noise, and compared:
tokens, masks and images bitwise, velocities / actions to 1e-5 (fp32) on the naive, cached and
traced paths, for both cameras present and the wrist camera missing, and the training loss.
The second half checks the importer's refusals: each is one sentence and exit code 2.
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
from vla_ros.policy.flow_matching.config import ConfigError, FlowMatchingConfig  # noqa: E402
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy  # noqa: E402
from vla_ros.policy.flow_matching.sampler import sample_actions  # noqa: E402
from vla_ros.policy.imports import CheckpointImportError, import_checkpoint  # noqa: E402
from vla_ros.policy.imports import keymap  # noqa: E402
from vla_ros.policy.tokenizer import build_prompt  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
KINDS = ("pi0", "pi05")
CASES = ("two_cameras", "missing_wrist_camera")
PATHS = {"naive": dict(use_cache=False, traced=False), "cached": dict(traced=False), "traced": dict(traced=True)}
TOL = 1e-5


GOLDEN = GoldenFixtures("lerobot")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each fixture checkpoint imported once with the real command (`vla-ros import`)."""
    out = {}
    for kind in KINDS:
        dst = tmp_path_factory.mktemp(f"imported_{kind}") / "ckpt"
        assert cli_main(["import", str(GOLDEN.dir(kind) / "checkpoint"), "--out", str(dst)]) == 0
        out[kind] = dst
    return out


@pytest.fixture(scope="module")
def policies(imported):
    return {kind: FlowMatchingPolicy.load(path) for kind, path in imported.items()}


def _inputs(policy: FlowMatchingPolicy, kind: str, case: str):
    c, d = GOLDEN.case(kind, case)
    images = {k[len("raw.observation.images."):]: v for k, v in d.items() if k.startswith("raw.observation.images.")}
    return c, d, policy.batch_tensors(images, d["raw.observation.state"].numpy(), c["tasks"])


# -- the imported checkpoint ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_import_writes_a_native_v2_checkpoint(imported, kind, monkeypatch):
    path = imported[kind]
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "norm_stats.json",
                                                      "tokenizer.json"]
    cfg = FlowMatchingConfig.from_json(path / "config.json")
    assert cfg.format_version == 2 and cfg.source.policy_type == kind and cfg.source.format == "lerobot"
    src_sha = GOLDEN.meta(kind)["checkpoint_files"]["model.safetensors"]["sha256"]
    assert cfg.source.weights_sha256 == src_sha
    assert cfg.weights.sha256 == sha256_files([path / "model.safetensors"])
    # sizes inferred from the shapes, SigLIP heads by the head_dim-72 rule
    arch = GOLDEN.meta(kind)["architecture"]
    assert (cfg.backbone.hidden_size, cfg.backbone.num_hidden_layers, cfg.backbone.intermediate_size) == (
        arch["vlm"]["width"], arch["vlm"]["depth"], arch["vlm"]["mlp_dim"])
    assert (cfg.backbone.num_attention_heads, cfg.backbone.num_key_value_heads, cfg.backbone.head_dim) == (8, 1, 16)
    assert (cfg.expert.hidden_size, cfg.expert.intermediate_size) == (arch["expert"]["width"],
                                                                      arch["expert"]["mlp_dim"])
    assert cfg.vision.siglip.num_attention_heads == arch["siglip"]["num_attention_heads"]
    assert cfg.io.cameras == ("base_0_rgb", "left_wrist_0_rgb") and cfg.io.state_dim == 8
    assert cfg.expert.time_conditioning == ("fused" if kind == "pi0" else "adarms")
    assert cfg.io.state_token == (kind == "pi0")
    # the stored hash is used at load: no re-hash of the weights
    import vla_ros.policy.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "weights_hash", lambda *a, **k: pytest.fail("weights re-hashed at load"))
    policy = FlowMatchingPolicy.load(path)
    assert policy.metadata.checkpoint_id == f"ckpt@{cfg.weights.sha256[:8]}"


def test_loading_builds_on_meta_and_assigns(imported):
    from vla_ros.policy.flow_matching.policy import build_model

    cfg = FlowMatchingConfig.from_json(imported["pi0"] / "config.json")
    model = build_model(cfg, 0, meta=True)
    assert all(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers())  # RoPE tables, position ids are real
    policy = FlowMatchingPolicy.load(imported["pi0"])
    weights = load_file(str(imported["pi0"] / "model.safetensors"))
    for name, p in policy.model.named_parameters():
        assert not p.is_meta and not p.requires_grad
        assert torch.equal(p, weights[name]), name


# -- parity with LeRobot ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_preprocessing_matches_bitwise(policies, kind, case):
    policy = policies[kind]
    c, d, obs = _inputs(policy, kind, case)
    norm = policy.norm_stats.state.normalize(d["raw.observation.state"].numpy(),
                                             "quantile" if kind == "pi05" else "mean_std",
                                             "lerobot")
    assert np.array_equal(norm, d["pre.observation.state"].numpy())
    assert policy.prompts(c["tasks"], norm) == c["tokenizer_texts"]
    assert torch.equal(obs.tokens, d["pre.observation.language.tokens"])
    assert torch.equal(obs.token_mask, d["pre.observation.language.attention_mask"])
    for i in range(2):
        assert torch.equal(obs.image_mask[:, i], d[f"model.image_masks.{i}"])
        if bool(d[f"model.image_masks.{i}"].all()):
            assert torch.equal(policy.model.normalize_images(obs.images[:, i]), d[f"model.images.{i}"])
    if kind == "pi0":
        assert torch.equal(obs.state, d["model.state"])
    else:
        assert obs.state is None  # pi05: the state is in the prompt, not a token
    _, pad = policy.model.embed_prefix(obs)
    assert torch.equal(pad, d["model.prefix_pad_masks"])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_per_step_velocities_match(policies, kind, case):
    policy = policies[kind]
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
    _, d, obs = _inputs(policy, kind, case)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed trace would fall back to eager silently
        x = sample_actions(policy.model, obs, d["sample.noise"], 10, **PATHS[path])
    if path == "traced":
        assert any(t is not None for t in policy.model.__dict__["_traced_samplers"].values())
    normalized = x[..., :7]
    actions = policy.unnormalize_actions(normalized.numpy())
    err_padded = (x - d["sample.actions_padded"]).abs().max().item()
    err_norm = (normalized - d["sample.actions_normalized"]).abs().max().item()
    err = float(np.abs(actions - d["sample.actions"].numpy()).max())
    print(f"{kind} {case} {path}: actions {err:.3g}, normalized {err_norm:.3g}, padded {err_padded:.3g}")
    assert err_padded <= TOL and err_norm <= TOL and err <= TOL


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_training_loss_matches(policies, kind, case):
    policy = policies[kind]
    _, d, obs = _inputs(policy, kind, case)
    io = policy.config.io
    actions = np.zeros((2, io.horizon, io.max_action_dim), dtype=np.float32)
    actions[..., :7] = policy.norm_stats.actions.normalize(d["raw.action"].numpy(), io.normalization,
                                                           io.norm_convention)
    assert np.array_equal(actions[..., :7], d["pre.action"].numpy())
    with torch.no_grad():
        per_sample = policy.model.compute_loss(obs, torch.from_numpy(actions), noise=d["train.noise"],
                                               time=d["train.time"],
                                               reduce=False)
    assert torch.allclose(per_sample, d["train.per_sample_loss"], rtol=TOL, atol=TOL)
    assert abs(per_sample.mean().item() - d["train.loss"].item()) <= TOL * max(1.0, d["train.loss"].item())


@pytest.mark.parametrize("kind", KINDS)
def test_observation_path_runs_the_same_numbers(policies, kind):
    """`infer` from a robot Observation (uint8 images) equals the batch path on the same pixels."""
    from vla_ros.core.types import Observation

    policy = policies[kind]
    _, d, _ = _inputs(policy, kind, "two_cameras")
    rng = np.random.default_rng(0)
    u8 = {"base_0_rgb": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
          "left_wrist_0_rgb": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}
    state = d["raw.observation.state"][0].numpy().astype(np.float64)
    ob = Observation(stamp=1.0, images=u8, joint_positions=state, instruction="pick up the red block")
    noise = d["sample.noise"][0].numpy()
    chunk = policy.infer(ob, noise=noise)
    floats = {k: torch.from_numpy(v).permute(2, 0, 1)[None].float() / 255.0 for k, v in u8.items()}
    obs = policy.batch_tensors(floats, state[None], ["pick up the red block"])
    x = sample_actions(policy.model, obs, torch.from_numpy(noise)[None], 10)
    expected = policy.unnormalize_actions(x[0, :, :7].numpy())
    expected[:, 6] = np.clip(expected[:, 6], 0, 1)
    np.testing.assert_allclose(chunk.actions, expected, atol=1e-6)


# -- layouts the importer accepts ------------------------------------------------------------------


def _copy_checkpoint(kind: str, dst: Path) -> Path:
    return Path(shutil.copytree(GOLDEN.dir(kind) / "checkpoint", dst))


def test_tied_lm_head_and_unprefixed_keys_give_the_same_actions(tmp_path, policies):
    src = _copy_checkpoint("pi0", tmp_path / "src")
    w = load_file(str(src / "model.safetensors"))
    emb = "model.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
    w["model.paligemma_with_expert.paligemma.lm_head.weight"] = w.pop(emb)
    save_file({k[len("model."):]: v for k, v in w.items()}, str(src / "model.safetensors"))
    import_checkpoint(src, tmp_path / "out")
    other = FlowMatchingPolicy.load(tmp_path / "out")
    _, d, obs = _inputs(other, "pi0", "two_cameras")
    ref = sample_actions(policies["pi0"].model, obs, d["sample.noise"], 10, traced=False)
    assert torch.equal(sample_actions(other.model, obs, d["sample.noise"], 10, traced=False), ref)


def test_siglip_rename_table_maps_both_forms_onto_the_installed_names():
    from transformers import SiglipVisionConfig, SiglipVisionModel

    m = SiglipVisionModel(SiglipVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                             num_attention_heads=1, patch_size=4, image_size=8))
    native = set(m.state_dict())
    flat = keymap.siglip_flat(native)
    nested_form = {("vision_model." + k if flat else k) for k in native}
    flat_form = {(k[len("vision_model."):] if k.startswith("vision_model.") else k) for k in native}
    assert {keymap.siglip_key(k, flat) for k in nested_form} == native
    assert {keymap.siglip_key(k, flat) for k in flat_form} == native
    assert keymap.siglip_key("vision_model.encoder.layers.3.mlp.fc1.weight", True) == "encoder.layers.3.mlp.fc1.weight"
    assert keymap.siglip_key("post_layernorm.bias", False) == "vision_model.post_layernorm.bias"


def _rewrite(src: Path, edit) -> None:
    w = load_file(str(src / "model.safetensors"))
    edit(w)
    save_file(w, str(src / "model.safetensors"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda w: w.pop("model.paligemma_with_expert.gemma_expert.model.layers.1.mlp.up_proj.weight"),
         r"missing tensors 'expert\.layers\.1\.mlp\.up_proj\.weight'"),
        (lambda w: w.update({"model.some_new_head.weight": torch.zeros(2)}),
         r"unexpected tensors 'model\.some_new_head\.weight'"),
        (lambda w: w.update({"model.time_mlp_in.weight": torch.zeros(32, 32)}),
         r"unexpected tensors 'heads\.time_mlp_in\.weight'"),
        (lambda w: w.update({"model.paligemma_with_expert.paligemma.model.language_model.layers.1.mlp.down_proj.weight":
                             torch.zeros(48, 95)}),
         r"mis-shaped tensors backbone\.layers\.1\.mlp\.down_proj\.weight \(48, 95\) != \(48, 96\)"),
    ],
)
def test_key_errors_name_the_first_offenders(tmp_path, edit, message):
    src = _copy_checkpoint("pi0", tmp_path / "src")
    _rewrite(src, edit)
    with pytest.raises(CheckpointImportError, match=message):
        import_checkpoint(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written


# -- refusals: one sentence, exit code 2, no traceback ---------------------------------------------


def _refused(capsys, src: Path, out: Path, *extra: str) -> str:
    assert cli_main(["import", str(src), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vla-ros import: error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not (out / "config.json").exists()
    return err


def test_truncated_safetensors_is_refused(tmp_path, capsys):
    src = _copy_checkpoint("pi0", tmp_path / "src")
    data = (src / "model.safetensors").read_bytes()
    (src / "model.safetensors").write_bytes(data[: len(data) // 2])
    err = _refused(capsys, src, tmp_path / "out")
    assert "model.safetensors: not a readable safetensors file" in err


def test_pickle_only_checkpoint_is_refused_unopened(tmp_path, capsys):
    src = _copy_checkpoint("pi0", tmp_path / "src")
    (src / "model.safetensors").unlink()
    # not even a valid pickle: opening it would fail differently from the refusal
    (src / "pytorch_model.bin").write_bytes(b"\x80\x04 this would be unpickled if it were opened")
    err = _refused(capsys, src, tmp_path / "out")
    assert "pytorch_model.bin: pickle-based weights are not loaded" in err and "safetensors" in err


def test_missing_tokenizer_says_which_file_to_provide(tmp_path, capsys):
    src = _copy_checkpoint("pi0", tmp_path / "src")
    shutil.rmtree(src / "tokenizer")
    err = _refused(capsys, src, tmp_path / "out")
    assert "--tokenizer" in err and "tokenizer.json" in err and "tokenizer.model" in err
    # given explicitly, either format of the same tokenizer imports, with the reference's token ids
    for name in ("tokenizer.json", "tokenizer.model"):
        out = tmp_path / f"out_{name}"
        tok = FIXTURES / "lerobot_tokenizer" / name
        assert cli_main(["import", str(src), "--out", str(out), "--tokenizer", str(tok), "--no-verify"]) == 0
        policy = FlowMatchingPolicy.load(out)
        _, d, obs = _inputs(policy, "pi0", "two_cameras")
        assert torch.equal(obs.tokens, d["pre.observation.language.tokens"]), name


def test_sentencepiece_model_and_tokenizer_json_give_the_same_ids():
    from vla_ros.policy.tokenizer import TextTokenizer

    d = FIXTURES / "lerobot_tokenizer"
    sp = TextTokenizer.load(d / "tokenizer.model", 64)
    js = TextTokenizer.load(d / "tokenizer.json", 64)
    probes = json.loads((d / "probes.json").read_text())
    texts = [p["text"] for p in probes] + ["", "Task: x_y, State: -1 255;\nAction: ", "\n\n  ü <mask> <bos>"]
    ids_sp, mask_sp = sp.encode(texts)
    ids_js, mask_js = js.encode(texts)
    assert np.array_equal(ids_sp, ids_js) and np.array_equal(mask_sp, mask_js)
    for i, p in enumerate(probes):
        assert ids_sp[i, : len(p["ids"])].tolist() == p["ids"] and mask_sp[i].sum() == len(p["ids"])


def test_unknown_type_is_refused(tmp_path, capsys):
    src = _copy_checkpoint("pi0", tmp_path / "src")
    cfg = json.loads((src / "config.json").read_text())
    cfg["type"] = "act"
    (src / "config.json").write_text(json.dumps(cfg))
    err = _refused(capsys, src, tmp_path / "out")
    assert "unknown policy type 'act'" in err and "pi0 and pi05" in err


# -- config v2 keeps v1 ------------------------------------------------------------------------------


def test_v1_checkpoint_loads_with_the_same_actions_as_the_copy_loader(tmp_path):
    """The meta-device / assign loader gives exactly what building on the CPU and copying gave."""
    from vla_ros.policy.checkpoint import load_into, read_state_dict, weight_files
    from vla_ros.policy.flow_matching.policy import build_model
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint

    path = make_tiny_checkpoint(tmp_path / "v1", image_size=32, patch_size=8, horizon=4)
    assert json.loads((path / "config.json").read_text())["format_version"] == 1
    new = FlowMatchingPolicy.load(path)
    old_model = build_model(new.config, new.tokenizer.pad_id)
    files = weight_files(path)
    load_into(old_model, *read_state_dict(files), files[0])
    old = FlowMatchingPolicy(old_model, new.config, new.tokenizer, new.norm_stats)
    from vla_ros.core.types import EEPose, Observation

    ob = Observation(stamp=0.0, images={"primary": np.full((40, 30, 3), 90, np.uint8)},
                     ee_pose=EEPose(np.array([0.4, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]), "base"), gripper=0.5,
                     instruction="pick up the red cube")
    noise = np.random.default_rng(1).standard_normal((4, 8))
    np.testing.assert_array_equal(new.infer(ob, noise=noise).actions, old.infer(ob, noise=noise).actions)


def test_format_versions_and_v2_keys():
    from vla_ros.policy.flow_matching.tiny import tiny_config_dict

    d = tiny_config_dict()
    d["format_version"] = 3
    with pytest.raises(ConfigError, match=r"^format_version: this vla_ros reads versions 1 and 2, got 3"):
        FlowMatchingConfig.from_dict(d)
    d = tiny_config_dict()
    d["io"]["prompt"] = "pi0"
    with pytest.raises(ConfigError, match=r"^io\.prompt: is a format_version 2 key"):
        FlowMatchingConfig.from_dict(d)
    d["format_version"] = 2
    assert FlowMatchingConfig.from_dict(d).io.prompt == "pi0"


def test_prompt_forms():
    assert build_prompt("plain", "pick") == "pick"
    assert build_prompt("pi0", "pick") == "pick\n" and build_prompt("pi0", "pick\n") == "pick\n"
    s = np.array([-1.5, -1.0, 0.0, 0.999, 1.0, 2.0], dtype=np.float32)
    assert build_prompt("pi05", " open_the\ndrawer ",
                        s) == "Task: open the drawer, State: -1 0 128 255 255 255;\nAction: "


def test_saving_an_imported_policy_keeps_v2_and_its_numbers(tmp_path, policies):
    policy = policies["pi05"]
    out = policy.save(tmp_path / "again")
    cfg = FlowMatchingConfig.from_json(out / "config.json")
    assert cfg.format_version == 2 and cfg.source == policy.config.source
    assert cfg.weights.sha256 == sha256_files([out / "model.safetensors"])
    again = FlowMatchingPolicy.load(out)
    _, d, obs = _inputs(again, "pi05", "two_cameras")
    a = sample_actions(again.model, obs, d["sample.noise"], 10, traced=False)
    assert torch.equal(a, sample_actions(policy.model, obs, d["sample.noise"], 10, traced=False))


def test_a_stale_stored_hash_is_not_trusted(imported, tmp_path):
    path = Path(shutil.copytree(imported["pi0"], tmp_path / "ckpt"))
    cfg = json.loads((path / "config.json").read_text())
    real = cfg["weights"]["sha256"]
    cfg["weights"] = {"sha256": "0" * 64, "bytes": cfg["weights"]["bytes"] + 1}  # e.g. weights replaced by hand
    (path / "config.json").write_text(json.dumps(cfg))
    assert FlowMatchingPolicy.load(path).metadata.checkpoint_id == f"ckpt@{real[:8]}"


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_keeps_vision_projector_and_norms_in_float32(imported, kind):
    policy = FlowMatchingPolicy.load(imported[kind], dtype="bfloat16")
    dtypes = {n: p.dtype for n, p in policy.model.named_parameters()}
    fp32 = [n for n, dt in dtypes.items() if dt == torch.float32]
    assert all(n.startswith("vision.") or "layernorm" in n or n.startswith(("backbone.norm.", "expert.norm."))
               for n in fp32)
    assert all(dt == torch.float32 for n, dt in dtypes.items() if n.startswith("vision.") or "layernorm" in n)
    assert dtypes["vision.projector.weight"] == torch.float32 and dtypes["backbone.norm.weight"] == torch.float32
    assert dtypes["backbone.layers.0.mlp.up_proj.weight"] == torch.bfloat16 and policy.model.dtype == torch.bfloat16
    _, d, obs = _inputs(policy, kind, "two_cameras")
    x = sample_actions(policy.model, obs, d["sample.noise"], 10)
    assert (x - d["sample.actions_padded"]).abs().max().item() < 0.05  # bf16 rounding, not a wrong model
