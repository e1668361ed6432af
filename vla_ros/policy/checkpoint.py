"""Checkpoint weights on disk: safetensors only, strict, with errors that name file and tensor.

A checkpoint directory holds ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``). Pickle-based weight files (``pytorch_model.bin``, ``*.pt``,
``*.pth``, ``*.ckpt``, ``*.pkl``) can execute code when loaded, so they are never opened: if one
is all a directory has, loading fails and says to convert it. Loading into a module is strict: a
missing tensor, an unexpected tensor or a shape mismatch is an error naming the file and tensor,
never a silently half-initialised model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file (and tensor)."""


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"dtype: expected float32, bfloat16 or float16, got {dtype!r}") from None


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse and check availability, so 'cuda' on a machine without one fails clearly."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device: {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def checkpoint_dir(path: str | os.PathLike | None) -> Path:
    if not path:
        raise ValueError("policy.checkpoint: this policy needs a checkpoint directory")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: checkpoint directory not found")
    if not p.is_dir():
        raise CheckpointError(f"{p}: a checkpoint is a directory (config.json, {WEIGHTS_FILE}, tokenizer, norm stats), "
                              "got a file")
    return p


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files of a checkpoint; refuses pickles with a clear message."""
    single = directory / WEIGHTS_FILE
    index = directory / WEIGHTS_INDEX_FILE
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            with open(index, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{index}: not a valid safetensors index ({exc})") from None
        files = [directory / s for s in shards]
        for f in files:
            if not f.is_file():
                raise CheckpointError(f"{f}: listed in {WEIGHTS_INDEX_FILE} but missing")
        return files
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{directory / pickles[0]}: pickle-based weights are not loaded (they can run arbitrary code); "
            f"vla_ros loads only safetensors. Convert it to {WEIGHTS_FILE} (safetensors.torch.save_file)."
        )
    raise CheckpointError(f"{single}: weights not found (expected {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE})")


def read_state_dict(files: list[Path],
                    device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    """All tensors of the safetensors files -> (state dict, tensor name -> file it came from)."""
    tensors: dict[str, torch.Tensor] = {}
    origin: dict[str, Path] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt", device=str(device)) as sf:
                for name in sf.keys():
                    if name in tensors:
                        raise CheckpointError(f"{f}: tensor {name!r} also in {origin[name]}")
                    tensors[name] = sf.get_tensor(name)
                    origin[name] = f
        except CheckpointError:
            raise
        except Exception as exc:  # safetensors raises SafetensorError / OSError on a bad file
            raise CheckpointError(f"{f}: not a readable safetensors file (truncated or corrupt: {exc})") from None
    return tensors, origin


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside this context get their parameters on the ``meta`` device (no memory,
    no initialisation cost); buffers (RoPE tables, position ids) are built for real, as usual.

    Load such a module with ``load_into(..., assign=True)``: the loaded tensors become its
    parameters, so loading needs the weights' memory once, not twice.
    """
    original = nn.Module.register_parameter
    owner = threading.get_ident()  # a runtime swap builds here while the old policy runs in another thread

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and threading.get_ident() == owner:
            p = module._parameters[name]
            module._parameters[name] = type(p)(p.to("meta"), requires_grad=p.requires_grad)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def load_into(module: nn.Module, state: dict[str, torch.Tensor], origin: dict[str, Path], where: Path, *,
              assign: bool = False, dtype: torch.dtype | None = None, device: torch.device | None = None,
              keep_float32: tuple[str, ...] = ()) -> None:
    """Copy `state` into `module`'s parameters and persistent buffers, strictly, converting dtypes.

    assign: make the (dtype-converted) tensors of `state` the module's parameters instead of
    copying them (a module built under `parameters_on_meta`); its buffers then move to `device`.
    keep_float32: with assign, tensors whose name contains one of these stay float32 (per-module dtype).
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{where}: missing tensor {missing[0]!r}{more}; the checkpoint does not match its "
                              "config.json")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(f"{origin[unexpected[0]]}: unexpected tensor {unexpected[0]!r}{more}; the checkpoint "
                              "does not match its config.json")
    for k, ref in expected.items():
        if tuple(state[k].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{origin[k]}: tensor {k!r} has shape {tuple(state[k].shape)}, config.json implies {tuple(ref.shape)}"
            )
    if assign:
        with torch.no_grad():
            for k in expected:
                t = state[k]
                want = torch.float32 if any(part in k for part in keep_float32) else dtype
                if want is not None and t.is_floating_point() and t.dtype != want:
                    state[k] = t = t.to(want)
                if device is not None and t.device != device:
                    state[k] = t.to(device)
        module.load_state_dict(state, strict=True, assign=True)
        if device is not None:
            module.to(device)  # the buffers; the parameters are there already
        return
    with torch.no_grad():
        for k, ref in expected.items():
            ref.copy_(state[k])


def save_weights(module: nn.Module, path: Path) -> None:
    """Parameters and persistent buffers -> one safetensors file (contiguous, unshared copies)."""
    state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})


def sha256_files(files: list[Path]) -> str:
    """Full hex sha256 of the files' bytes, read in 1 MiB blocks (a 13 GB checkpoint never sits in memory)."""
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def weights_hash(files: list[Path], length: int = 8) -> str:
    """Short sha256 of the weight files' bytes: identifies the exact weights a chunk came from."""
    return sha256_files(files)[:length]


def checkpoint_id(directory: Path, files: list[Path], stored: tuple[str, int] | None = None) -> str:
    """'<directory name>@<short weights hash>'.

    stored: (sha256, bytes) written with the checkpoint (config v2 ``weights``); used without
    re-hashing when the single weights file still has that size, so a multi-GB checkpoint does
    not cost a full read at every start."""
    if stored is not None and len(files) == 1 and files[0].stat().st_size == stored[1]:
        return f"{directory.resolve().name}@{stored[0][:8]}"
    return f"{directory.resolve().name}@{weights_hash(files)}"
