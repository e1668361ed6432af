"""The schema's features for strict files (checkpoint config.json): required keys, tuples,
optionals, nullable sections, exclusive bounds and section checks that name the full key."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass

import pytest

from vla_ros.core import schema
from vla_ros.core.schema import REQUIRED, ConfigError, FieldError, param, section


@dataclass(frozen=True)
class Tower:
    width: int = param(REQUIRED, "tower width", min=1)
    heads: int = param(2, "tower heads", min=1)
    eps: float = param(1e-6, "epsilon", gt=0)

    def check(self) -> None:
        if self.width % self.heads:
            raise FieldError("heads", f"must divide width ({self.width})")


@dataclass(frozen=True)
class Vision:
    main: Tower = section(Tower, "the main tower", default=REQUIRED)
    extra: Tower | None = section(Tower, "an optional second tower", default=None)


@dataclass(frozen=True)
class Spec:
    vision: Vision = section(Vision, "vision", default=REQUIRED)
    cameras: tuple[str, ...] = param(REQUIRED, "camera names", min_length=1, nonempty=True, unique=True)
    dt: float = param(REQUIRED, "seconds between actions", gt=0)
    joints: tuple[str, ...] = param((), "joint names", nonempty=True, unique=True)
    mean: tuple[float, ...] = param((0.5, 0.5, 0.5), "per-channel mean", length=3)
    std: tuple[float, ...] = param((0.5, 0.5, 0.5), "per-channel std", length=3, gt=0)
    act: str | None = param(None, "activation (null = default)", nonempty=True)
    bos: str | None = param("<bos>", "begin token (null = none)", nonempty=True)

    def check(self) -> None:
        if self.vision.extra is not None and self.vision.extra.width != self.vision.main.width:
            raise FieldError("vision.extra.width", f"expected the main tower's width ({self.vision.main.width})")


def _data(**top) -> dict:
    data = {"vision": {"main": {"width": 8}}, "cameras": ["a", "b"], "dt": 0.1}
    data.update(top)
    return data


def _fails(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        schema.from_dict(Spec, data)


def test_required_defaults_tuples_and_json_round_trip():
    spec = schema.from_dict(Spec, _data())
    assert spec.cameras == ("a", "b") and isinstance(spec.cameras, tuple)
    assert spec.joints == () and spec.mean == (0.5, 0.5, 0.5) and spec.act is None and spec.bos == "<bos>"
    assert spec.vision.extra is None and spec.vision.main == Tower(width=8)
    d = schema.to_dict(spec)
    assert d["cameras"] == ["a", "b"] and d["std"] == [0.5, 0.5, 0.5] and d["vision"]["extra"] is None
    assert schema.from_dict(Spec, json.loads(json.dumps(d))) == spec
    assert schema.flatten(spec)["cameras"] == ["a", "b"] and schema.flatten(spec)["vision.extra"] is None


def test_missing_required_key_or_section_names_key_and_doc():
    data = _data()
    del data["dt"]
    _fails(data, r"^dt: missing key \(seconds between actions\)$")
    _fails(_data(vision={"main": {}}), r"^vision\.main\.width: missing key \(tower width\)$")
    _fails(_data(vision={}), r"^vision\.main: missing key \(the main tower\)$")
    data = _data()
    del data["vision"]
    _fails(data, r"^vision: missing key \(vision\)$")


def test_tuple_fields():
    _fails(_data(cameras="a"), r"^cameras: expected list of string, got str 'a'$")
    _fails(_data(cameras=["a", 3]), r"^cameras\[1\]: expected string, got int 3$")
    _fails(_data(cameras=[]), r"^cameras: expected at least 1 item\(s\), got 0$")
    _fails(_data(cameras=["a", "a"]), r"^cameras: expected unique items, got \['a', 'a'\]$")
    _fails(_data(cameras=["a", ""]), r"^cameras: expected a non-empty string, got ''$")
    _fails(_data(joints=[""]), r"^joints: expected a non-empty string, got ''$")
    _fails(_data(mean=[0.5, 0.5]), r"^mean: expected a list of 3 items, got 2$")
    _fails(_data(mean=[0.5, 0.5, float("nan")]), r"^mean\[2\]: expected a finite number")
    assert schema.from_dict(Spec, _data(mean=[0, 1, 1])).mean == (0.0, 1.0, 1.0)


def test_exclusive_lower_bound():
    _fails(_data(dt=0), r"^dt: expected > 0, got 0")
    _fails(_data(dt=-1.5), r"^dt: expected > 0, got -1\.5$")
    _fails(_data(std=[0.5, 0.0, 0.5]), r"^std: expected > 0, got 0\.0$")
    _fails(_data(vision={"main": {"width": 8, "eps": 0}}), r"^vision\.main\.eps: expected > 0, got 0")
    assert schema.from_dict(Spec, _data(dt=1e-9)).dt == 1e-9


def test_optional_scalars():
    assert schema.from_dict(Spec, _data(act="gelu", bos=None)).bos is None
    assert schema.from_dict(Spec, _data(act="gelu")).act == "gelu"
    _fails(_data(act=3), r"^act: expected string, got int 3$")
    _fails(_data(bos=""), r"^bos: expected a non-empty string, got ''$")


def test_nullable_sections():
    assert schema.from_dict(Spec, _data(vision={"main": {"width": 8}, "extra": None})).vision.extra is None
    spec = schema.from_dict(Spec, _data(vision={"main": {"width": 8}, "extra": {"width": 8, "heads": 4}}))
    assert spec.vision.extra == Tower(width=8, heads=4)
    _fails(_data(vision={"main": {"width": 8}, "extra": {}}), r"^vision\.extra\.width: missing key \(tower width\)$")
    _fails(_data(vision={"main": {"width": 8}, "extra": [1]}), r"^vision\.extra: expected a mapping of keys, got list$")
    _fails(_data(vision={"main": {"width": 8}, "extra": {"width": 8, "hedas": 4}}),
           r"^vision\.extra\.hedas: unknown key \(known keys here: width, heads, eps\)$")


def test_section_checks_name_the_key_where_the_section_sits():
    _fails(_data(vision={"main": {"width": 9}}), r"^vision\.main\.heads: must divide width \(9\)$")
    _fails(_data(vision={"main": {"width": 8}, "extra": {"width": 9, "heads": 2}}),
           r"^vision\.extra\.heads: must divide width \(9\)$")
    _fails(_data(vision={"main": {"width": 8}, "extra": {"width": 4}}),
           r"^vision\.extra\.width: expected the main tower's width \(8\)$")
    with pytest.raises(FieldError) as info:
        schema.from_dict(Spec, _data(vision={"main": {"width": 9}}))
    assert info.value.key == "vision.main.heads" and info.value.message == "must divide width (9)"
    assert str(pickle.loads(pickle.dumps(info.value))) == "vision.main.heads: must divide width (9)"
    assert schema.from_dict(Spec, _data(vision={"main": {"width": 9}}), run_checks=False).vision.main.width == 9


def test_describe_required_tuples_optionals_and_nullable_sections():
    rows = {r["key"]: r for r in schema.describe(Spec)}
    assert rows["vision.main.width"]["default"] is REQUIRED and repr(REQUIRED) == "REQUIRED"
    assert rows["vision.main.eps"]["gt"] == 0 and rows["vision.main.eps"]["min"] is None
    assert rows["cameras"]["type"] == "list of string" and rows["cameras"]["default"] is REQUIRED
    assert rows["cameras"]["unique"] and rows["cameras"]["nonempty"] and rows["cameras"]["min_length"] == 1
    assert rows["mean"]["default"] == (0.5, 0.5, 0.5) and rows["mean"]["length"] == 3
    assert rows["act"]["type"] == "string or null" and rows["act"]["default"] is None
    extra = rows["vision.extra.*"]
    assert extra["default"] is None and extra["same_as"] == "vision.main" and extra["doc"] == "an optional second tower"
    assert not any(k.startswith("vision.extra.") and k != "vision.extra.*" for k in rows)
    assert schema.leaf_types(Spec)["vision.extra.width"] is int
