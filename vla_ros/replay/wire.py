"""A small, closed message format for the replay's executor process: no pickle, nothing executable.

`vla_ros.replay.executor_process` streams events (floats, lists, `ActionChunk`s) to a second
process and gets commands and an `ExecutorStatusData` back. The project loads nothing with pickle
(a pickle stream can run code), so frames are JSON plus raw array bytes, and only the types listed
in `_TYPES` are rebuilt - anything else is refused when encoding, and an unknown tag when decoding
is an error, never an import.

Frame: ``uint64 header length | JSON header | array bytes...``; arrays appear in the JSON as
``{"__nd__": [index, dtype, shape]}`` and their bytes follow in order. Tuples, dataclasses and enums
are tagged objects; floats keep NaN/inf (Python's JSON dialect).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import struct
from typing import Any, BinaryIO

import numpy as np

from vla_ros.core.executor import ExecutorStatusData
from vla_ros.core.executor.command import ExecutorState
from vla_ros.core.executor.rtc import ExecutionPlan
from vla_ros.core.types import ActionChunk, ActionMode, EEPose

_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    ActionChunk, ActionMode, EEPose, ExecutorStatusData, ExecutorState, ExecutionPlan,
)}
_HEADER = struct.Struct("<Q")


class WireError(ValueError):
    """A value that this format does not carry, or a malformed frame."""


def register(cls: type) -> type:
    """Allow one more dataclass or enum (a class decorator for the replay's own result types)."""
    _TYPES[cls.__name__] = cls
    return cls


def _encode(obj: Any, arrays: list[np.ndarray]) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return {"__enum__": [_name(type(obj)), obj.value]}
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        arrays.append(np.ascontiguousarray(obj))
        return {"__nd__": [len(arrays) - 1, obj.dtype.str, list(obj.shape)]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise WireError(f"dict keys must be strings, got {sorted({type(k).__name__ for k in obj})}")
        return {"__dict__": {k: _encode(v, arrays) for k, v in obj.items()}}
    if dataclasses.is_dataclass(obj):
        fields = {f.name: _encode(getattr(obj, f.name), arrays) for f in dataclasses.fields(obj)}
        return {"__dc__": [_name(type(obj)), fields]}
    raise WireError(f"cannot send a {type(obj).__name__}")


def _name(cls: type) -> str:
    if _TYPES.get(cls.__name__) is not cls:
        raise WireError(f"type {cls.__name__} is not one of the replay's message types")
    return cls.__name__


def _decode(obj: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) != 1:
        raise WireError("malformed frame: untagged object")
    (tag, val), = obj.items()
    if tag == "__nd__":
        return arrays[val[0]]
    if tag == "__tuple__":
        return tuple(_decode(v, arrays) for v in val)
    if tag == "__dict__":
        return {k: _decode(v, arrays) for k, v in val.items()}
    if tag in ("__enum__", "__dc__"):
        cls = _TYPES.get(val[0])
        if cls is None:
            raise WireError(f"malformed frame: unknown type {val[0]!r}")
        if tag == "__enum__":
            return cls(val[1])
        # Rebuilt field by field, without __init__: the sender's object was validated when it was
        # made, and re-running __post_init__ (e.g. quaternion normalisation) could change its bits.
        names = {f.name for f in dataclasses.fields(cls)}
        if set(val[1]) != names:
            raise WireError(f"malformed frame: fields of {val[0]} do not match")
        out = object.__new__(cls)
        for k, v in val[1].items():
            object.__setattr__(out, k, _decode(v, arrays))
        return out
    raise WireError(f"malformed frame: unknown tag {tag!r}")


def write(stream: BinaryIO, obj: Any) -> None:
    """One frame with `obj` (see the module docstring), flushed."""
    arrays: list[np.ndarray] = []
    header = json.dumps([_encode(obj, arrays), [a.nbytes for a in arrays]], separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(header)))
    stream.write(header)
    for a in arrays:
        stream.write(a.tobytes())
    stream.flush()


def read(stream: BinaryIO) -> Any:
    """The next frame's object; EOFError at the end of the stream."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("end of stream")
    (n,) = _HEADER.unpack(head)
    body, sizes = json.loads(_read_exact(stream, n))
    arrays = []
    index = _array_specs(body)
    for i, size in enumerate(sizes):
        dtype, shape = index[i]
        arrays.append(np.frombuffer(_read_exact(stream, size), dtype=np.dtype(dtype)).reshape(shape).copy())
    return _decode(body, arrays)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("truncated frame")
    return data


def _array_specs(body: Any) -> dict[int, tuple[str, list[int]]]:
    """Array index -> (dtype, shape), found in the JSON body."""
    found: dict[int, tuple[str, list[int]]] = {}
    stack = [body]
    while stack:
        x = stack.pop()
        if isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, dict):
            if "__nd__" in x and len(x) == 1:
                i, dtype, shape = x["__nd__"]
                if np.dtype(dtype).hasobject:
                    raise WireError("malformed frame: object arrays are not carried")
                found[int(i)] = (dtype, shape)
            else:
                stack.extend(x.values())
    return found
