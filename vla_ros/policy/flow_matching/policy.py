"""`FlowMatchingPolicy`: the flow-matching VLA behind the `vla_ros.policy.base.Policy` interface.

It owns everything between an `Observation` and an `ActionChunk`: checking the observation has
what the checkpoint needs, image preprocessing on the device, tokenisation, state extraction and
normalisation, sampling (cached Euler steps, optional Real-Time Chunking guidance), and the way
back (un-normalise, trim the padded action dims, DELTA vs ABSOLUTE). It also carries the small
training API used by the demo: `compute_norm_stats`, `make_training_batch`, `save` (and
`vla_ros.policy.flow_matching.train.train`).

Decisions worth knowing:
- An empty instruction is allowed (the prefix then holds only the BOS token and the images); a
  single-task checkpoint may be trained without instructions.
- Missing cameras are masked out; at least one of the checkpoint's cameras must be present.
- Returned grippers are clipped to [0, 1] (the ActionChunk contract).
- Sampling noise comes from a generator seeded with `seed` (0 at load); `reset()` re-seeds it, so
  an episode replays identically. Pass `noise` for explicit control.
- A pretrained checkpoint whose actions or state are not the native layout runs through the
  adapters of ``policy.action_map`` / ``policy.state_map`` (`configure_adapters`,
  `vla_ros.policy.adapters`); without them every path below is exactly the native one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from vla_ros.core.action_modes import absolute_to_delta
from vla_ros.core.config import ActionMapConfig, StateMapConfig
from vla_ros.core.types import ACTION_DIM, ActionChunk, ActionMode, ChunkGuidance, Observation
from vla_ros.policy.adapters import (ActionAdapter, StateAdapter, build_action_adapter, build_state_adapter,
                                     mapped_metadata)
from vla_ros.policy.base import Policy, PolicyMetadata
from vla_ros.policy.checkpoint import (
    CheckpointError,
    checkpoint_dir,
    checkpoint_id,
    load_into,
    parameters_on_meta,
    read_state_dict,
    resolve_device,
    resolve_dtype,
    save_weights,
    sha256_files,
    weight_files,
    WEIGHTS_FILE,
)
from vla_ros.policy.flow_matching.action_space import policy_state
from vla_ros.policy.flow_matching.config import CONFIG_FILE, FlowMatchingConfig, WeightsConfig
from vla_ros.policy.flow_matching.model import FlowMatchingVLA, ObservationTensors
from vla_ros.policy.flow_matching.sampler import GuidanceTensors, param_key, sample_actions
from vla_ros.policy.normalization import NORM_STATS_FILE, NormStats, Stats, compute_norm_stats
from vla_ros.policy.preprocessing import ImagePreprocessor
from vla_ros.policy.tokenizer import TextTokenizer, build_prompt

_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _padded_batch(n: int) -> int:
    """Batch sizes run as the next power of two: a handful of traced graphs serve every size."""
    return 1 << (max(1, int(n)) - 1).bit_length()


def _identity_stats(dim: int) -> Stats:
    z, o = np.zeros(dim), np.ones(dim)
    return Stats(z, o, -o, o)


class FlowMatchingPolicy(Policy):
    policy_type = "flow_matching"

    def __init__(self, model: FlowMatchingVLA, config: FlowMatchingConfig, tokenizer: TextTokenizer,
                 norm_stats: NormStats | None, *, checkpoint_id: str = "", seed: int = 0):
        """Wrap a built model; most callers want `load` (or `tiny.make_tiny_checkpoint` + `load`)."""
        self.model = model
        self.config = config
        self.tokenizer = tokenizer
        io = config.io
        self._norm_stats_source = "present"
        if norm_stats is None:
            if io.normalization != "none":
                raise ValueError(f"{NORM_STATS_FILE}: required for normalization {io.normalization!r}")
            norm_stats = NormStats(_identity_stats(io.action_dim),
                                   _identity_stats(io.state_dim) if io.uses_state else None)
            self._norm_stats_source = "identity (normalization none)"
        norm_stats.check_dims(io.state_dim if io.uses_state else 0, io.action_dim)
        self.norm_stats = norm_stats
        self._num_steps = config.sampling.num_steps
        self._checkpoint_id = checkpoint_id
        self._seed = int(seed)
        self._images = ImagePreprocessor(io.cameras, io.image_size, model.device, io.image_resize)
        self._generator = torch.Generator(device=model.device)
        self._warm: dict[int, tuple] = {}  # batch size -> (steps, parameter versions) it was warmed up for
        self._generator.manual_seed(self._seed)
        self._action_map: ActionMapConfig | None = None
        self._state_map: StateMapConfig | None = None
        self._action_adapter: ActionAdapter | None = None
        self._state_adapter: StateAdapter | None = None
        self._adapters_applied = False
        self._meta = self._make_metadata()

    # -- loading / saving ------------------------------------------------------------------------

    @classmethod
    def load(cls, checkpoint: str | os.PathLike | None, device: str = "cpu",
             dtype: str = "float32") -> "FlowMatchingPolicy":
        """Load a checkpoint directory offline (safetensors only) onto `device` in `dtype`.

        Errors name the file and the key/tensor: missing config key, pickle weights, missing or
        mis-shaped tensor, unknown special token, norm stats of the wrong size.
        """
        directory = checkpoint_dir(checkpoint)
        dev, dt = resolve_device(device), resolve_dtype(dtype)
        config = FlowMatchingConfig.from_json(directory / CONFIG_FILE)
        tokenizer = TextTokenizer.load(
            directory / config.tokenizer.file, config.io.max_text_tokens, config.tokenizer.pad_token,
            config.tokenizer.bos_token
        )
        if tokenizer.vocab_size > config.backbone.vocab_size:
            raise CheckpointError(
                f"{directory / config.tokenizer.file}: {tokenizer.vocab_size} tokens, but backbone.vocab_size is "
                f"{config.backbone.vocab_size}"
            )
        stats_path = directory / NORM_STATS_FILE
        norm_stats = None
        if stats_path.is_file() or config.io.normalization != "none":
            norm_stats = NormStats.load(stats_path)
            norm_stats.check_dims(config.io.state_dim if config.io.uses_state else 0, config.io.action_dim,
                                  str(stats_path))
        files = weight_files(directory)
        state, origin = read_state_dict(files, dev if dev.type == "cuda" else "cpu")
        model = build_model(config, tokenizer.pad_id, dev, dt, meta=True)
        load_into(model, state, origin, files[0] if len(files) == 1 else directory, assign=True, dtype=dt, device=dev,
                  keep_float32=config.precision.float32_modules)
        del state
        model.requires_grad_(False)
        stored = None if config.weights is None else (config.weights.sha256, config.weights.bytes)
        return cls(model, config, tokenizer, norm_stats, checkpoint_id=checkpoint_id(directory, files, stored))

    @classmethod
    def describe(cls, checkpoint: str | os.PathLike | None) -> PolicyMetadata:
        """Metadata from config.json alone (no weights read): what launch files and swaps check.

        The checkpoint id is the directory name only; `load` adds the weights hash.
        """
        directory = checkpoint_dir(checkpoint)
        config = FlowMatchingConfig.from_json(directory / CONFIG_FILE)
        meta = _metadata_from_config(config, f"{directory.resolve().name}", "cpu", "float32", config.sampling.num_steps)
        if (directory / NORM_STATS_FILE).is_file():
            meta.extra["norm_stats"] = "present"
        else:
            meta.extra["norm_stats"] = ("identity (normalization none)" if config.io.normalization == "none"
                                        else "missing")
        return meta

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write a complete checkpoint directory that `load` reads back (same chunks for the same noise)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("pytorch_model.bin", "model.safetensors.index.json"):
            if (out / stale).exists():
                raise CheckpointError(f"{out / stale}: refusing to save next to other weights; use an empty directory")
        self.tokenizer.save(out / self.config.tokenizer.file)
        self.norm_stats.save(out / NORM_STATS_FILE)
        save_weights(self.model, out / WEIGHTS_FILE)
        config = self.config
        if config.format_version >= 2:  # store the weights hash once (v1 files stay exactly as they were)
            weights = WeightsConfig(sha256_files([out / WEIGHTS_FILE]), (out / WEIGHTS_FILE).stat().st_size)
            config = dataclasses.replace(config, weights=weights)
        config.to_json(out / CONFIG_FILE)
        return out

    @property
    def metadata(self) -> PolicyMetadata:
        return self._meta

    def _make_metadata(self) -> PolicyMetadata:
        m = self.model
        meta = _metadata_from_config(self.config, self._checkpoint_id, str(m.device),
                                     _DTYPE_NAMES.get(m.dtype, str(m.dtype)), self.num_steps)
        meta.extra["parameters"] = sum(p.numel() for p in m.parameters())
        meta.extra["norm_stats"] = self._norm_stats_source
        meta.extra["loaded"] = True
        return mapped_metadata(meta, self._action_map, self._state_map, applied=self._adapters_applied)

    def configure_adapters(self, action_map: ActionMapConfig | None = None,
                           state_map: StateMapConfig | None = None) -> None:
        """Apply ``policy.action_map`` / ``policy.state_map`` (None or the defaults: the native layout).

        Refuses, with a ConfigError naming the key, a joint-space action space, dims the
        checkpoint does not have, and a state layout that does not fill the checkpoint's state.
        The metadata then describes the mapped policy (action mode, state source, the mapping).
        """
        io = self.config.io
        action = build_action_adapter(action_map, io.action_dim)
        mean = self.norm_stats.state.mean if self.norm_stats.state is not None else None
        state = build_state_adapter(state_map, io.state_dim if io.uses_state else 0, mean)
        self._action_map, self._state_map = action_map, state_map
        self._action_adapter, self._state_adapter = action, state
        self._adapters_applied = True
        self._meta = self._make_metadata()

    @property
    def action_mode(self) -> ActionMode:
        """The mode of the chunks this policy publishes (the action map's, else the checkpoint's)."""
        if self._action_adapter is not None:
            return self._action_adapter.mode
        return ActionMode.parse(self.config.io.action_mode)

    @property
    def num_steps(self) -> int:
        """Euler steps per chunk (config default; the node sets policy.num_steps from its config)."""
        return self._num_steps

    @num_steps.setter
    def num_steps(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"num_steps: expected >= 1, got {value}")
        self._num_steps = int(value)
        self._meta = self._make_metadata()

    # -- Policy interface ------------------------------------------------------------------------

    def reset(self) -> None:
        """New episode: re-seed the sampling noise."""
        self._generator.manual_seed(self._seed)

    def configure_sampling(self, num_steps: int | None = None, seed: int | None = None) -> None:
        """Euler steps and noise seed from the node's config (None keeps the current value)."""
        if num_steps is not None:
            self.num_steps = num_steps
        if seed is not None:
            self.set_seed(seed)

    def set_seed(self, seed: int) -> None:
        """Seed of the sampling noise (the node's policy.seed); takes effect now and at every reset()."""
        self._seed = int(seed)
        self.reset()

    def close(self) -> None:
        dev = self.model.device
        self.model = None  # type: ignore[assignment]
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    def infer(self, observation: Observation, *, noise: np.ndarray | None = None,
              guidance: ChunkGuidance | None = None, num_steps: int | None = None) -> ActionChunk:
        """One chunk for `observation` (see the module docstring for what is required).

        noise: [horizon, 7] or [horizon, max_action_dim] standard-normal draw (padded dims get 0
        when only 7 are given). guidance: Real-Time Chunking targets (absolute 7-vectors on this
        chunk's timeline); converted to the model space here.
        """
        self._check_ready([observation])
        obs = self.observation_tensors([observation])
        noise_t = self._noise(noise)
        guide = None if guidance is None else self._guidance(guidance, observation)
        x = sample_actions(self.model, obs, noise_t, num_steps or self.num_steps, guidance=guide)
        return self._chunk(x[0].cpu().numpy(), observation)

    def infer_batch(self, observations: Sequence[Observation]) -> list[ActionChunk]:
        """All observations in one batched sampling; noise drawn per observation in order, as `infer` would.

        The batch is padded to the next power of two (copies of the last observation, results
        dropped), so a replay's varying batch sizes reuse a few traced graphs instead of tracing
        one per size.
        """
        observations = list(observations)
        if not observations:
            return []
        self._check_ready(observations)
        obs = self.observation_tensors(observations)  # validates every observation before any noise is drawn
        noise = torch.cat([self._noise(None) for _ in observations])
        n = len(observations)
        padded = _padded_batch(n)
        if padded > n:
            idx = torch.tensor(list(range(n)) + [n - 1] * (padded - n), device=noise.device)
            obs = ObservationTensors(obs.images[idx], obs.image_mask[idx], obs.tokens[idx], obs.token_mask[idx],
                                     None if obs.state is None else obs.state[idx])
            noise = noise[idx]
        x = sample_actions(self.model, obs, noise, self.num_steps)[:n].cpu().numpy()
        return [self._chunk(x[i], ob) for i, ob in enumerate(observations)]

    def warmup(self, batch_size: int = 1) -> None:
        """Throw-away samplings of a synthetic observation (every camera present, empty
        instruction, zero noise), batch-1 or as `infer_batch` pads `batch_size`: records the traced
        graphs (CPU) or the CUDA graph that the real chunks reuse. The noise generator is not touched."""
        if self.model is None:
            raise RuntimeError("flow_matching policy: closed")
        io = self.config.io
        dev = self.model.device
        b = _padded_batch(batch_size)
        version = (self.num_steps, param_key(list(self.model.parameters())))
        if self._warm.get(b) == version:
            return  # warm already (the replay calls this once per bag)
        ids, mask = self.tokenizer.encode([""] * b)
        c = len(io.cameras)
        obs = ObservationTensors(
            images=torch.zeros((b, c, 3, io.image_size, io.image_size), dtype=self._images.dtype, device=dev),
            image_mask=torch.ones((b, c), dtype=torch.bool, device=dev),
            tokens=torch.from_numpy(ids).to(dev),
            token_mask=torch.from_numpy(mask).to(dev),
            state=(torch.zeros((b, io.max_state_dim), dtype=torch.float32, device=dev)
                   if self.config.uses_state_token else None),
        )
        noise = torch.zeros((b, io.horizon, io.max_action_dim), device=dev)
        for _ in range(2):  # TorchScript profiles a graph's first run and optimises it on the next
            sample_actions(self.model, obs, noise, self.num_steps)
        self._warm[b] = version

    def _check_ready(self, observations: Sequence[Observation]) -> None:
        if self.model is None:
            raise RuntimeError("flow_matching policy: closed")
        if self.action_mode == ActionMode.DELTA:
            for ob in observations:
                if ob.ee_pose is None:
                    raise ValueError("observation.ee_pose: this policy predicts DELTA actions relative to the "
                                     "end-effector pose, but it is missing")

    def _chunk(self, model_actions: np.ndarray, observation: Observation) -> ActionChunk:
        """One sampled [H, max_action_dim] model-space chunk -> the ActionChunk for `observation`."""
        io = self.config.io
        mode = self.action_mode
        if self._action_adapter is None:
            actions = self._to_robot(model_actions[:, : io.action_dim])
        else:
            raw = self.unnormalize_actions(model_actions[:, : io.action_dim])
            actions = self._action_adapter.to_chunk(raw, observation.ee_pose, observation.gripper)
        return ActionChunk(
            stamp=observation.stamp,
            dt=io.dt,
            actions=actions,
            mode=mode,
            frame_id=observation.ee_pose.frame_id if observation.ee_pose is not None else "",
            reference_pose=observation.ee_pose if mode == ActionMode.DELTA else None,
            policy_id=self.policy_type,
            checkpoint_id=self._checkpoint_id,
        )

    # -- conversions -------------------------------------------------------------------------------

    def observation_tensors(self, observations: Sequence[Observation]) -> ObservationTensors:
        """Validate and convert observations into one model batch on the device."""
        io = self.config.io
        images, masks, states, texts = [], [], [], []
        for ob in observations:
            img, present = self._images(ob.images)
            if not bool(present.any()):
                raise ValueError(
                    f"observation.images: none of this policy's cameras {list(io.cameras)} is present "
                    f"(got {sorted(ob.images)})"
                )
            images.append(img)
            masks.append(present)
            s = policy_state(ob, io, self._state_adapter)
            if s is not None:
                states.append(s)
            if not isinstance(ob.instruction, str):
                raise ValueError(f"observation.instruction: expected a string, got {type(ob.instruction).__name__}")
            texts.append(ob.instruction)
        return self._assemble(torch.stack(images), torch.stack(masks), np.stack(states) if states else None, texts)

    def batch_tensors(self, images: Mapping[str, torch.Tensor], state: np.ndarray | None,
                      instructions: Sequence[str]) -> ObservationTensors:
        """A dataset-style batch -> model inputs: float [B, 3, H, W] images in [0, 1] per camera name
        (absent cameras masked out), the raw state [B, state_dim] (None without state) and B texts.

        This is how LeRobot feeds its policies; the parity tests use it with the reference's inputs."""
        io = self.config.io
        b = len(instructions)
        img, present = self._images.batch(images, b)
        if not bool(present.any(dim=1).all()):
            raise ValueError(f"images: none of this policy's cameras {list(io.cameras)} is present (got "
                             f"{sorted(images)})")
        if io.uses_state:
            if state is None:
                raise ValueError(f"state: this policy needs a [{b}, {io.state_dim}] state")
            state = np.asarray(state, dtype=np.float64)
            if state.shape != (b, io.state_dim):
                raise ValueError(f"state: expected shape ({b}, {io.state_dim}), got {state.shape}")
        return self._assemble(img, present, state if io.uses_state else None, list(instructions))

    def prompts(self, texts: Sequence[str], normalized_states: np.ndarray | None) -> list[str]:
        """The exact strings the tokenizer sees (config io.prompt)."""
        io = self.config.io
        return [build_prompt(io.prompt, t, None if normalized_states is None else normalized_states[i], io.state_bins)
                for i, t in enumerate(texts)]

    def _assemble(self, images: torch.Tensor, masks: torch.Tensor, raw_states: np.ndarray | None,
                  texts: Sequence[str]) -> ObservationTensors:
        """Images/masks [B, C, ...], raw states [B, state_dim] | None, texts -> the model batch on the device."""
        io = self.config.io
        dev = self.model.device
        norm = None
        if io.uses_state and raw_states is not None:
            norm = self.norm_stats.state.normalize(raw_states, io.normalization, io.norm_convention)
        ids, tmask = self.tokenizer.encode(self.prompts(texts, norm))
        state = None
        if self.config.uses_state_token:
            state = torch.from_numpy(self._pad(norm, io.max_state_dim)).to(device=dev, dtype=torch.float32)
        return ObservationTensors(
            images=images.to(dev),
            image_mask=masks.to(dev),
            tokens=torch.from_numpy(ids).to(dev),
            token_mask=torch.from_numpy(tmask).to(dev),
            state=state,
        )

    @staticmethod
    def _pad(x: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros(x.shape[:-1] + (n,), dtype=np.float32)
        out[..., : x.shape[-1]] = x
        return out

    def _noise(self, noise: np.ndarray | None) -> torch.Tensor:
        io = self.config.io
        shape = (1, io.horizon, io.max_action_dim)
        if noise is None:
            return torch.randn(shape, generator=self._generator, device=self.model.device, dtype=torch.float32)
        n = np.asarray(noise, dtype=np.float32)
        if n.ndim != 2 or n.shape[0] != io.horizon or n.shape[1] not in (ACTION_DIM, io.max_action_dim):
            raise ValueError(f"noise: expected shape ({io.horizon}, {ACTION_DIM}) or ({io.horizon}, "
                             f"{io.max_action_dim}), got {n.shape}")
        if not np.all(np.isfinite(n)):
            raise ValueError("noise: contains NaN or inf")
        return torch.from_numpy(self._pad(n, io.max_action_dim)[None]).to(self.model.device)

    def _to_model_actions(self, actions_abs: np.ndarray, observation: Observation) -> np.ndarray:
        """Absolute 7-vectors [..., H, 7] -> normalised model-space actions (delta if the checkpoint is)."""
        io = self.config.io
        a = np.asarray(actions_abs, dtype=np.float64)
        if self._action_adapter is not None:
            a = np.stack([self._action_adapter.from_absolute(x, observation.ee_pose)
                          for x in a.reshape(-1, *a.shape[-2:])]
                         ).reshape(a.shape[:-1] + (io.action_dim,))
        elif io.action_mode == "delta":
            if observation.ee_pose is None:
                raise ValueError("observation.ee_pose: needed to express actions as deltas, but it is missing")
            a = absolute_to_delta(a, observation.ee_pose)
        return self.norm_stats.actions.normalize(a, io.normalization, io.norm_convention)

    def unnormalize_actions(self, model_actions: np.ndarray) -> np.ndarray:
        """Normalised [..., action_dim] model actions -> the checkpoint's action units (float64, not clipped)."""
        io = self.config.io
        return np.asarray(self.norm_stats.actions.unnormalize(model_actions, io.normalization, io.norm_convention),
                          dtype=np.float64)

    def _to_robot(self, model_actions: np.ndarray) -> np.ndarray:
        """Normalised [H, 7] -> robot units in the checkpoint's mode; gripper clipped to [0, 1]."""
        a = self.unnormalize_actions(model_actions)
        a[:, 6] = np.clip(a[:, 6], 0.0, 1.0)
        return a

    def _guidance(self, guidance: ChunkGuidance, observation: Observation) -> GuidanceTensors:
        io = self.config.io
        h = min(io.horizon, guidance.actions.shape[0])
        target = np.zeros((io.horizon, io.max_action_dim), dtype=np.float32)
        weights = np.zeros((io.horizon, io.max_action_dim), dtype=np.float32)
        target[:h, : io.action_dim] = self._to_model_actions(guidance.actions[:h], observation)
        weights[:h, : io.action_dim] = guidance.weights[:h, None]
        dev = self.model.device
        return GuidanceTensors(
            target=torch.from_numpy(target[None]).to(dev),
            weights=torch.from_numpy(weights[None]).to(dev),
            max_weight=float(guidance.max_guidance_weight),
        )

    # -- training API ----------------------------------------------------------------------------

    def compute_norm_stats(self, observations: Sequence[Observation], actions: np.ndarray) -> NormStats:
        """Stats of this policy's model-space state and actions over a dataset.

        actions: [N, H, 7] absolute end-effector targets (converted to deltas for a DELTA checkpoint).
        """
        io = self.config.io
        acts = self._check_actions(observations, actions)
        if self._action_adapter is not None:
            acts = np.stack([self._action_adapter.from_absolute(a, ob.ee_pose) for a, ob in zip(acts, observations)])
        elif io.action_mode == "delta":
            acts = np.stack([absolute_to_delta(a, ob.ee_pose) for a, ob in zip(acts, observations)])
        states = np.stack([policy_state(ob, io, self._state_adapter) for ob in observations]) if io.uses_state else None
        return compute_norm_stats(states, acts)

    def set_norm_stats(self, stats: NormStats) -> None:
        io = self.config.io
        stats.check_dims(io.state_dim if io.uses_state else 0, io.action_dim, "norm stats")
        self.norm_stats = stats

    def _check_actions(self, observations: Sequence[Observation], actions: np.ndarray) -> np.ndarray:
        io = self.config.io
        a = np.asarray(actions, dtype=np.float64)
        if a.ndim != 3 or a.shape[1:] != (io.horizon, ACTION_DIM) or a.shape[0] != len(observations):
            raise ValueError(f"actions: expected shape ({len(observations)}, {io.horizon}, {ACTION_DIM}), got "
                             f"{a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("actions: contains NaN or inf")
        if self.action_mode == ActionMode.DELTA and any(ob.ee_pose is None for ob in observations):
            raise ValueError("observation.ee_pose: a DELTA checkpoint needs every observation's end-effector pose")
        return a

    def make_training_batch(self, observations: Sequence[Observation], actions: np.ndarray) -> dict[str, torch.Tensor]:
        """Observations + absolute action chunks [B, H, 7] -> a batch dict on the device.

        Keys: images (uint8 [B, C, 3, S, S]), image_mask, tokens, token_mask, state (if the policy
        has one; normalised, padded) and actions (float32 [B, H, max_action_dim], normalised, in the
        checkpoint's mode, padded). Uses the current norm stats: set them first
        (`set_norm_stats(compute_norm_stats(...))`) when training on new data.
        """
        io = self.config.io
        acts = self._check_actions(observations, actions)
        model_acts = np.stack([self._to_model_actions(a, ob) for a, ob in zip(acts, observations)])
        obs = self.observation_tensors(observations)
        batch = {k: v for k, v in dataclasses.asdict(obs).items() if v is not None}
        batch["actions"] = torch.from_numpy(self._pad(model_acts, io.max_action_dim)).to(self.model.device)
        return batch

    @staticmethod
    def batch_inputs(batch: dict[str, torch.Tensor]) -> ObservationTensors:
        """The observation part of a training batch dict."""
        return ObservationTensors(
            images=batch["images"], image_mask=batch["image_mask"], tokens=batch["tokens"],
            token_mask=batch["token_mask"], state=batch.get("state"),
        )

    def compute_loss(self, batch: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
        """Flow-matching loss of a batch dict (see `FlowMatchingVLA.compute_loss` for kwargs)."""
        return self.model.compute_loss(self.batch_inputs(batch), batch["actions"], **kwargs)


def _metadata_from_config(config: FlowMatchingConfig, checkpoint_id: str, device: str, dtype: str,
                          num_steps: int) -> PolicyMetadata:
    io = config.io
    return PolicyMetadata(
        policy_type=FlowMatchingPolicy.policy_type,
        checkpoint_id=checkpoint_id,
        cameras=io.cameras,
        state_source=io.state_source,
        state_dim=io.state_dim,
        joint_names=io.joint_names,
        horizon=io.horizon,
        dt=io.dt,
        action_mode=ActionMode.parse(io.action_mode),
        image_size=(io.image_size, io.image_size),
        device=device,
        dtype=dtype,
        extra={
            "family": config.backbone.family,
            "vision": config.vision.kind,
            "num_steps": num_steps,
            "normalization": io.normalization,
            "max_text_tokens": io.max_text_tokens,
            # what the compatibility check and the adapters read (vla_ros.policy.compat / adapters)
            "action_dim": io.action_dim,
            "native_action_mode": io.action_mode,
            "image_resize": io.image_resize,
            "source": f"{config.source.format} {config.source.policy_type}" if config.source is not None else "vla_ros",
            "adapters_supported": True,
        },
    )


def build_model(config: FlowMatchingConfig, pad_token_id: int | None, device: torch.device | str = "cpu",
                dtype: torch.dtype | str = torch.float32, *, meta: bool = False) -> FlowMatchingVLA:
    """A randomly initialised model on `device` in `dtype` (parameters only; RoPE buffers stay float32).

    meta: parameters on the meta device instead (no memory, no init), buffers on the CPU; load
    it with ``load_into(..., assign=True, device=...)`` (what `FlowMatchingPolicy.load` does)."""
    if meta:
        with parameters_on_meta():
            model = FlowMatchingVLA(config, pad_token_id)
        model.requires_grad_(False)
        return model.eval()
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    with dev:
        model = FlowMatchingVLA(config, pad_token_id)
    keep = config.precision.float32_modules
    for name, p in model.named_parameters():
        p.data = p.data.to(torch.float32 if any(part in name for part in keep) else dt)
    model.requires_grad_(False)
    return model.eval()
