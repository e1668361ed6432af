"""Cross-check of pi0 against transformers' own `PI0ForConditionalGeneration` (transformers >= 5.5).

Two independent implementations load the same LeRobot checkpoint (the golden fixture
``test/fixtures/lerobot_pi0/checkpoint``, tiny random weights made by LeRobot itself):

- ours, through ``vla-ros import`` and `FlowMatchingPolicy.load`;
- transformers', through ``PI0ForConditionalGeneration.from_pretrained`` and the conversion
  mapping transformers ships for LeRobot keys (``conversion_mapping.py``, ``"pi0"``). The only
  edit is the one the fixtures' author found necessary: the VLM ``lm_head`` is left out, because
  transformers renames it onto ``embed_tokens`` (hub checkpoints save only the tied head) while
  LeRobot saves both, untied, and the head would overwrite the real embeddings.

They then get the same inputs (the fixture's preprocessed images, tokens, masks and state) and
the same noise, and their per-step velocities and 10-step actions are compared.

Tolerances (all in fp32, against the issue's 1e-5 bar):
- **Same time features.** transformers computes the sinusoid frequencies and the angles
  ``freq * t`` in float32; LeRobot and our imported config compute them in float64. With
  transformers' float32 frequency table written into our time-embedding buffer, both run the same
  transformers sub-modules (SigLIP, Gemma layers, sdpa) in the same order, and the per-step
  velocities agree bitwise here (measured 0). Asserted: <= 1e-6, the margin being for matmul
  blocking that may depend on the thread count. The 10-step actions then differ only by the Euler
  update's rounding (ours ``x - v / 10``, theirs ``x + (-0.1) * v``): at most about one float32 ulp
  per step at |x| < 8 (4.8e-7), so <= 5e-6 (measured 7.2e-7).
- **As imported (float64 angles) vs transformers (float32 angles): 1e-4.** At t = 1 the fastest
  angle is 2*pi/0.004 ~ 1571 rad, whose float32 rounding is ~1e-4 rad, so transformers' time
  embedding itself is off by ~1e-4 (asserted: <= 1.5e-4; measured 1.04e-4), which the expert
  carries into the actions (measured 1.6e-5 and 2.5e-5; the fixtures' author measured 1.6e-5
  between transformers 5.5 and LeRobot). Our model is the one that matches LeRobot (7e-7 here;
  <= 1e-5 in test_import_lerobot.py), and the test asserts it is the closer of the two.

The same test also checks `bench/pretrained_bench.py`'s table from our names to transformers'
(`transformers_pi0_state`): the GPU side-by-side bench relies on it, so it must give exactly the
tensors transformers' own conversion gives.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.pi0")

from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import PI0ForConditionalGeneration  # noqa: E402

from vla_ros.cli import main as cli_main  # noqa: E402
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy  # noqa: E402
from vla_ros.policy.flow_matching.sampler import sample_actions  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "test" / "fixtures" / "lerobot_pi0"
CASES = ("two_cameras", "missing_wrist_camera")
VELOCITY_TOL = 1e-6  # same time features: measured 0 (bitwise)
ACTIONS_TOL = 5e-6  # same time features: 10 Euler updates rounded differently (~1 ulp each at |x| < 8)
FLOAT32_ANGLES_TOL = 1e-4  # as imported: transformers' float32 angles (measured 2.5e-5)
VLM_LM_HEAD = "model.paligemma_with_expert.paligemma.lm_head.weight"


def _bench():
    spec = importlib.util.spec_from_file_location("pretrained_bench", REPO / "bench" / "pretrained_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("crosscheck") / "pi0"
    assert cli_main(["import", str(FIXTURE / "checkpoint"), "--out", str(out), "--no-verify"]) == 0
    return out


@pytest.fixture(scope="module")
def ours(imported):
    return FlowMatchingPolicy.load(imported)


@pytest.fixture(scope="module")
def theirs(tmp_path_factory, ours, bench):
    """transformers' PI0 from the LeRobot weights, through its own from_pretrained + LeRobot conversion."""
    d = tmp_path_factory.mktemp("transformers_pi0")
    bench.transformers_pi0_config(ours.config).save_pretrained(d)
    weights = load_file(str(FIXTURE / "checkpoint" / "model.safetensors"))
    del weights[VLM_LM_HEAD]  # untied in LeRobot: transformers would rename it onto embed_tokens
    save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = PI0ForConditionalGeneration.from_pretrained(d, dtype=torch.float32, attn_implementation="sdpa",
                                                                  output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


@pytest.fixture(scope="module")
def ours_same_time_features(imported, theirs):
    """Our imported policy with transformers' float32 frequency table (the only designed difference)."""
    policy = FlowMatchingPolicy.load(imported)
    freq = theirs.embed_action_time.sinusoid_embeds.sinusoid_freq
    assert policy.model.heads.time_frequencies.shape == freq.shape
    policy.model.heads.time_frequencies = freq.detach().clone()  # float32, so the angles are float32 too
    return policy


def _case(policy: FlowMatchingPolicy, case: str):
    meta = json.loads((FIXTURE / "fixture.json").read_text())["cases"][case]
    d = load_file(str(FIXTURE / meta["file"]))
    images = {k[len("raw.observation.images."):]: v for k, v in d.items() if k.startswith("raw.observation.images.")}
    obs = policy.batch_tensors(images, d["raw.observation.state"].numpy(), meta["tasks"])
    return d, obs


def _transformers_inputs(d: dict, image_token_id: int, tokens_per_camera: int = 16) -> dict:
    """The fixture's model inputs in transformers' form: image placeholder tokens in front of the
    text (one run per present camera; every sample of a case has the same cameras present)."""
    masks = torch.stack([d["model.image_masks.0"], d["model.image_masks.1"]], dim=1)
    assert bool((masks == masks[:1]).all())
    b = masks.shape[0]
    n_img = int(masks[0].sum()) * tokens_per_camera
    tokens = d["pre.observation.language.tokens"]
    return {
        "state": d["model.state"],
        "input_ids": torch.cat([torch.full((b, n_img), image_token_id, dtype=tokens.dtype), tokens], dim=1),
        "attention_mask": torch.cat([torch.ones((b, n_img), dtype=torch.long),
                                     d["pre.observation.language.attention_mask"].long()], dim=1),
        "pixel_values": torch.stack([d["model.images.0"], d["model.images.1"]], dim=1),
        "pixel_attention_mask": masks,
    }


def _their_actions(theirs, d: dict) -> torch.Tensor:
    inputs = _transformers_inputs(d, theirs.config.vlm_config.image_token_id)
    with torch.no_grad():
        return theirs.sample_actions(noise=d["sample.noise"].clone(), num_steps=10, **inputs)


def test_transformers_conversion_gives_the_tensors_of_our_import(ours, theirs, bench):
    """Same weights: transformers' LeRobot conversion and ours land on identical tensors, and the bench's
    name table (ours -> transformers) reproduces transformers' state dict exactly."""
    mine = bench.transformers_pi0_state(ours.model.state_dict())
    tf = theirs.state_dict()
    assert set(mine) == set(tf)
    for k, v in tf.items():
        if k in bench.TRANSFORMERS_UNUSED:
            continue  # transformers' DiT token embeddings (LeRobot's unused expert lm_head): never read
        assert torch.equal(mine[k], v), k
    assert theirs.config.vlm_config.text_config.vocab_size == ours.config.backbone.vocab_size


@pytest.mark.parametrize("case", CASES)
def test_per_step_velocities_match_with_the_same_time_features(ours_same_time_features, theirs, case):
    policy = ours_same_time_features
    d, obs = _case(policy, case)
    inputs = _transformers_inputs(d, theirs.config.vlm_config.image_token_id)
    worst = 0.0
    with torch.no_grad():
        cache = policy.model.prefix_cache(obs)
        for i in range(10):
            t = d["sample.time"][i].expand(2).contiguous()
            mine = policy.model.velocity_cached(cache, obs.state, d["sample.x_t"][i], t)
            tf = theirs(noise=d["sample.x_t"][i], timestep=t, **inputs).logits
            worst = max(worst, (mine - tf).abs().max().item())
    print(f"{case}: per-step velocity max |ours - transformers| = {worst:.3g}")
    assert worst <= VELOCITY_TOL


@pytest.mark.parametrize("traced", [False, True], ids=["cached", "traced"])
@pytest.mark.parametrize("case", CASES)
def test_actions_match_with_the_same_time_features(ours_same_time_features, theirs, case, traced):
    policy = ours_same_time_features
    d, obs = _case(policy, case)
    mine = sample_actions(policy.model, obs, d["sample.noise"], 10, traced=traced)
    tf = _their_actions(theirs, d)
    err = (mine - tf).abs().max().item()
    print(f"{case} {'traced' if traced else 'cached'}: actions max |ours - transformers| = {err:.3g}")
    assert err <= ACTIONS_TOL


def test_float32_time_angles_explain_the_difference_as_imported(ours, theirs):
    """Unchanged imports (float64 angles, as LeRobot) against transformers (float32 angles)."""
    t = torch.linspace(1.0, 0.1, 10)
    mine = ours.model.heads.time_embedding(t)
    tf = theirs.embed_action_time.sinusoid_embeds(t)
    emb_err = (mine - tf).abs().max().item()
    assert 1e-6 < emb_err <= 1.5e-4  # the float32 rounding of angles up to ~1571 rad
    for case in CASES:
        d, obs = _case(ours, case)
        mine = sample_actions(ours.model, obs, d["sample.noise"], 10, traced=False)
        tf = _their_actions(theirs, d)
        golden = d["sample.actions_padded"]
        err, ours_vs_lerobot, tf_vs_lerobot = ((mine - tf).abs().max().item(), (mine - golden).abs().max().item(),
                                               (tf - golden).abs().max().item())
        print(f"{case}: time embedding {emb_err:.3g}; actions ours-transformers {err:.3g}, "
              f"ours-LeRobot {ours_vs_lerobot:.3g}, transformers-LeRobot {tf_vs_lerobot:.3g}")
        assert err <= FLOAT32_ANGLES_TOL
        assert ours_vs_lerobot <= 1e-5 and ours_vs_lerobot <= tf_vs_lerobot
