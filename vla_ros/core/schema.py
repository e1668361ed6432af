"""A tiny declarative schema for dataclass configs: defaults, types, ranges, choices and docs.

`vla_ros.core.config` (the runtime config) and `vla_ros.policy.flow_matching.config` (a checkpoint's
config.json) declare their sections with `param(...)` / `section(...)`; this module turns such
dataclasses into/from nested dicts (YAML, JSON), flat dotted keys (ROS parameters: ``policy.device``)
and ``key=value`` overrides (CLI), rejecting missing, unknown and wrong-typed keys with the key's
full name. Leaf types: bool, int, float, str, ``list[...]``/``tuple[..., ...]`` of those, and
``X | None``. It is generic on purpose: it knows nothing about robots.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


class FieldError(ConfigError):
    """What a section's ``check()`` raises about its own key, named relative to the section.

    `from_dict` prefixes the section's dotted path, so a section used in several places
    (``vision.siglip``, ``vision.dinov2``) names the key where it failed.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (e.g. across a worker process)
        return FieldError, (self.key, self.message)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of a field without one: a missing key is an error

_CONSTRAINTS = ("min", "max", "gt", "choices", "length", "min_length", "nonempty", "unique")


def param(
    default: Any,
    doc: str,
    *,
    min: float | None = None,  # noqa: A002 - reads naturally at the declaration site
    max: float | None = None,  # noqa: A002
    gt: float | None = None,
    choices: typing.Sequence[Any] | None = None,
    length: int | None = None,
    min_length: int | None = None,
    nonempty: bool = False,
    unique: bool = False,
) -> Any:
    """Declare a config field: default (or `REQUIRED`: declare those first), one-line doc, constraints.

    `min`/`max` are inclusive bounds, `gt` an exclusive lower bound; they, `choices` and `nonempty`
    (no empty string) apply to each item of a list. `length` (exact), `min_length` and `unique`
    (no repeated item) apply to the list itself.
    """
    meta = {"doc": doc, "min": min, "max": max, "gt": gt, "choices": tuple(choices) if choices else None,
            "length": length, "min_length": min_length, "nonempty": nonempty, "unique": unique}
    if default is REQUIRED:
        return dataclasses.field(metadata=meta)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, doc: str, default: Any = dataclasses.MISSING) -> Any:
    """Declare a nested config section (a dataclass) with its doc.

    A missing section takes ``cls()``; with ``default=REQUIRED`` it is an error instead, and with
    ``default=None`` (annotate the field ``cls | None``) it is null, as is an explicit null.
    """
    meta = {"doc": doc, "section": True}
    if default is REQUIRED:
        return dataclasses.field(metadata=meta)
    if default is None:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(default_factory=cls, metadata=meta)


def _optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); any other annotation -> (tp, False)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return tp, False


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return REQUIRED


def _type_name(tp: Any) -> str:
    inner, nullable = _optional(tp)
    if nullable:
        return f"{_type_name(inner)} or null"
    if typing.get_origin(tp) in (list, tuple):
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
    tp, nullable = _optional(tp)
    if value is None and nullable:
        return None
    origin = typing.get_origin(tp)
    if origin in (list, tuple):  # list[X] or tuple[X, ...]; a tuple field stays a tuple (frozen dataclasses)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        item_tp = typing.get_args(tp)[0]
        items = [_check_scalar(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value)]
        if meta.get("length") is not None and len(items) != meta["length"]:
            raise ConfigError(f"{key}: expected a list of {meta['length']} items, got {len(items)}")
        if meta.get("min_length") is not None and len(items) < meta["min_length"]:
            raise ConfigError(f"{key}: expected at least {meta['min_length']} item(s), got {len(items)}")
        if meta.get("unique") and len(set(items)) != len(items):
            raise ConfigError(f"{key}: expected unique items, got {items}")
        value = origin(items)
    else:
        value = _check_scalar(key, tp, value)
        items = [value]
    for v in items:
        if meta.get("nonempty") and v == "":
            raise ConfigError(f"{key}: expected a non-empty string, got ''")
        if meta.get("choices") and v not in meta["choices"]:
            raise ConfigError(f"{key}: expected one of {', '.join(map(repr, meta['choices']))}, got {v!r}")
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{key}: expected >= {meta['min']}, got {v}")
        if meta.get("gt") is not None and not v > meta["gt"]:
            raise ConfigError(f"{key}: expected > {meta['gt']}, got {v}")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{key}: expected <= {meta['max']}, got {v}")
    return value


def from_dict(cls: type, data: Any, prefix: str = "", run_checks: bool = True) -> Any:
    """Build dataclass `cls` from a nested mapping; missing keys take defaults, unknown keys fail.

    A missing `REQUIRED` key fails naming the key and its doc. After each section is built its
    ``check()`` method, if any, runs the cross-field rules; a `FieldError` it raises gets the
    section's prefix. `run_checks=False` skips them (for validating a partial file).
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
        key = prefix + name
        if name not in data:
            if _default(field) is REQUIRED:
                raise ConfigError(f"{key}: missing key ({field.metadata.get('doc', '')})")
            continue
        if field.metadata.get("section"):
            sub, nullable = _optional(tp)
            value = data[name]
            kwargs[name] = None if value is None and nullable else from_dict(sub, value, key + ".", run_checks)
        else:
            kwargs[name] = _check_value(key, field, tp, data[name])
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None and run_checks:
        try:
            check()
        except FieldError as exc:
            raise FieldError(prefix + exc.key, exc.message) from None
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """Nested plain dict (YAML/JSON-ready) of a config dataclass; tuples become lists."""
    return dataclasses.asdict(obj, dict_factory=lambda kv: {k: list(v) if isinstance(v, tuple) else v for k, v in kv})


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flat ``{"section.key": value}`` view, the form ROS parameters take."""
    out: dict[str, Any] = {}
    for name, (field, _tp) in _fields(type(obj)).items():
        value = getattr(obj, name)
        if field.metadata.get("section") and value is not None:
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = list(value) if isinstance(value, (list, tuple)) else value
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


def describe(cls: type, prefix: str = "", _seen: dict[type, str] | None = None) -> list[dict[str, Any]]:
    """One row per leaf field: key, type, default (`REQUIRED` if none), doc, constraints (docs, --help).

    A nullable section is one row, ``key.*`` (default None), whose ``same_as`` names the first
    section of the same class described before it, if any (``vision.siglip`` for ``vision.dinov2.*``).
    """
    seen: dict[type, str] = {} if _seen is None else _seen
    rows = []
    for name, (field, tp) in _fields(cls).items():
        key = prefix + name
        meta = field.metadata
        sub, nullable = _optional(tp)
        if meta.get("section") and not nullable:
            seen.setdefault(sub, key)
            rows.extend(describe(sub, key + ".", seen))
            continue
        row = {"key": key, "type": _type_name(tp), "default": _default(field), "doc": meta.get("doc", "")}
        row.update({c: meta.get(c) for c in _CONSTRAINTS})
        if meta.get("section"):
            row.update(key=key + ".*", same_as=seen.get(sub))
        rows.append(row)
    return rows


def leaf_types(cls: type, prefix: str = "") -> dict[str, Any]:
    """Flat key -> python type annotation of every leaf field."""
    out: dict[str, Any] = {}
    for name, (field, tp) in _fields(cls).items():
        if field.metadata.get("section"):
            out.update(leaf_types(_optional(tp)[0], f"{prefix}{name}."))
        else:
            out[prefix + name] = tp
    return out


def read_json(path: str, what: str, hint: str = "") -> Any:
    """Parsed JSON of `path`; FileNotFoundError naming `what` (+ hint) if missing, ConfigError if unreadable."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found" + (f" ({hint})" if hint else "")) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read JSON: {exc}") from None


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
