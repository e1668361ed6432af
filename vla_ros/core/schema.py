"""A tiny declarative schema for dataclass configs: defaults, types, ranges, choices and docs.

`vla_ros.core.config` declares the sections with `param(...)`; this module turns such dataclasses
into/from nested dicts (YAML), flat dotted keys (ROS parameters: ``policy.device``) and
``key=value`` overrides (CLI), rejecting unknown keys and wrong types with the key's full name.
It is generic on purpose: it knows nothing about robots.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def param(
    default: Any,
    doc: str,
    *,
    min: float | None = None,  # noqa: A002 - reads naturally at the declaration site
    max: float | None = None,  # noqa: A002
    choices: typing.Sequence[Any] | None = None,
    length: int | None = None,
) -> Any:
    """Declare a config field: default, one-line doc, optional inclusive range, choices, list length."""
    meta = {"doc": doc, "min": min, "max": max, "choices": tuple(choices) if choices else None, "length": length}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, doc: str) -> Any:
    """Declare a nested config section (a dataclass) with its doc."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, "section": True})


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, getattr(tp, "__name__", str(tp)))


def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _check_scalar(key: str, tp: type, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value}")
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _check_value(key: str, field: dataclasses.Field, tp: Any, value: Any) -> Any:
    meta = field.metadata
    if typing.get_origin(tp) is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        (item_tp,) = typing.get_args(tp)
        value = [_check_scalar(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value)]
        if meta.get("length") is not None and len(value) != meta["length"]:
            raise ConfigError(f"{key}: expected a list of {meta['length']} items, got {len(value)}")
        items = value
    else:
        value = _check_scalar(key, tp, value)
        items = [value]
    for v in items:
        if meta.get("choices") and v not in meta["choices"]:
            raise ConfigError(f"{key}: expected one of {', '.join(map(repr, meta['choices']))}, got {v!r}")
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{key}: expected >= {meta['min']}, got {v}")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{key}: expected <= {meta['max']}, got {v}")
    return value


def from_dict(cls: type, data: Any, prefix: str = "", run_checks: bool = True) -> Any:
    """Build dataclass `cls` from a nested mapping; missing keys take defaults, unknown keys fail.

    `run_checks=False` skips the cross-field ``check()`` methods (for validating a partial file).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    fields = _fields(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(fields)
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known keys here: {known})")
    kwargs = {}
    for name, (field, tp) in fields.items():
        if name not in data:
            continue
        key = prefix + name
        if field.metadata.get("section"):
            kwargs[name] = from_dict(tp, data[name], key + ".", run_checks)
        else:
            kwargs[name] = _check_value(key, field, tp, data[name])
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None and run_checks:
        check()
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """Nested plain dict (YAML-ready) of a config dataclass."""
    return dataclasses.asdict(obj)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flat ``{"section.key": value}`` view, the form ROS parameters take."""
    out: dict[str, Any] = {}
    for name, (field, _tp) in _fields(type(obj)).items():
        value = getattr(obj, name)
        if field.metadata.get("section"):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = list(value) if isinstance(value, list) else value
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten`: dotted keys -> nested dict."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: conflicts with a value set at {part}")
        node[parts[-1]] = value
    return nested


def describe(cls: type, prefix: str = "") -> list[dict[str, Any]]:
    """One row per leaf field: key, type, default, doc, constraints (docs and --help)."""
    rows = []
    defaults = cls()
    for name, (field, tp) in _fields(cls).items():
        key = prefix + name
        if field.metadata.get("section"):
            rows.extend(describe(tp, key + "."))
            continue
        meta = field.metadata
        rows.append(
            {
                "key": key,
                "type": _type_name(tp),
                "default": getattr(defaults, name),
                "doc": meta.get("doc", ""),
                "min": meta.get("min"),
                "max": meta.get("max"),
                "choices": meta.get("choices"),
                "length": meta.get("length"),
            }
        )
    return rows


def leaf_types(cls: type, prefix: str = "") -> dict[str, Any]:
    """Flat key -> python type annotation of every leaf field."""
    out: dict[str, Any] = {}
    for name, (field, tp) in _fields(cls).items():
        if field.metadata.get("section"):
            out.update(leaf_types(tp, f"{prefix}{name}."))
        else:
            out[prefix + name] = tp
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"policy.device=cuda"`` -> ("policy.device", "cuda"); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. policy.device=cuda")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot read value {raw!r} as YAML: {exc}") from exc
    return key, value


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values in `extra` win, lists are replaced, not appended."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
