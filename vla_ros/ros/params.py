"""Expose the config schema as ROS parameters (``policy.device``, ``executor.control_rate``, ...).

Nodes declare the keys they read (`declare_config`, with a key selection such as
`launch_plan.EXECUTOR_NODE_KEYS`), with the schema's doc as description, so ``ros2 param describe``
shows the same text as docs/configuration.md. Values come from the launch file (which flattens the
merged YAML config), from ``--params-file`` or ``-p key:=value``; the node then validates them
through the same schema as YAML and CLI, so a wrong value fails with the parameter's name.

Run-time sets must never lie (issue 11, finding 5): a key that the node cannot apply while running
is declared ``read_only`` (rclpy refuses the set, with a reason) - on a lifecycle node, the keys it
reads at configure are refused by its callback once it is configured and accepted while it is
unconfigured (fix a parameter, configure again) - and a set of a writable key goes
through `RuntimeParameters.check` - the same schema, including the sections' cross-field checks -
before the node applies it, so ``dry_run='banana'`` or a negative speed is refused with the
schema's message and the read-back value stays the one in use. Parameters are dynamically typed
on purpose: integers for float keys (``control_rate:=100``) work, and a wrong type is reported by
the schema (naming the key and the expected type) rather than by rclpy.
"""

from __future__ import annotations

import math
import typing
from typing import Any, Iterable, Mapping, NamedTuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from vla_ros.core import schema
from vla_ros.core.config import ConfigError, VlaConfig, config_from_dict
from vla_ros.ros.launch_plan import select_keys

_ROS_TYPES = {
    str: Parameter.Type.STRING,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    bool: Parameter.Type.BOOL,
}
_ROS_ARRAY_TYPES = {
    str: Parameter.Type.STRING_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    bool: Parameter.Type.BOOL_ARRAY,
}
READ_ONLY_NOTE = "read-only at run time (set at start-up; restart the node to change it)"
WRITABLE_NOTE = "writable at run time (ros2 param set; applied at once)"
CONFIGURE_NOTE = ("read at configure (lifecycle): settable while the node is unconfigured, read-only once it is "
                  "configured (cleanup, set, configure again)")


def _ros_type(tp: Any) -> Parameter.Type:
    if typing.get_origin(tp) is list:
        return _ROS_ARRAY_TYPES[typing.get_args(tp)[0]]
    return _ROS_TYPES[tp]


def _descriptor(row: dict[str, Any], ros_type: Parameter.Type, note: str) -> ParameterDescriptor:
    constraints = []
    if row["choices"]:
        constraints.append("one of " + ", ".join(map(str, row["choices"])))
    if row["min"] is not None:
        constraints.append(f">= {row['min']}")
    if row["max"] is not None:
        constraints.append(f"<= {row['max']}")
    constraints.append(note)
    desc = ParameterDescriptor(
        name=row["key"],
        type=int(ros_type.value),
        description=row["doc"],
        additional_constraints="; ".join(constraints),
        read_only=note == READ_ONLY_NOTE,
        # Integers given for float parameters (``control_rate:=100``) are accepted here and
        # converted by the schema, which also reports type errors with the key's name.
        dynamic_typing=True,
    )
    lo, hi = row["min"], row["max"]
    if lo is not None and hi is not None and row["type"] == "number" and math.isfinite(lo) and math.isfinite(hi):
        desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    elif lo is not None and hi is not None and row["type"] == "integer":
        desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
    return desc


def _plain(value: Any) -> Any:
    """A ROS parameter value as the schema takes it (arrays -> lists)."""
    if isinstance(value, (tuple, list)) or type(value).__name__ == "array":
        return list(value)
    return value


def declare_config(
    node: Node,
    base: VlaConfig | None = None,
    sections: Iterable[str] | None = None,
    *,
    writable: Iterable[str] = (),
    at_configure: Iterable[str] = (),
) -> VlaConfig:
    """Declare the parameters selected by `sections` on `node` (defaults from `base`); return the validated config.

    `sections` are section names or full keys (`select_keys`; None = all). Keys in `writable` are
    declared writable (the node must apply them, see `RuntimeParameters`); keys in `at_configure`
    are not read-only for rclpy, because a lifecycle node takes them while unconfigured and reads
    them at configure (its callback refuses them once configured); every other key is ``read_only``.
    Parameters set from outside (launch, params file, command line) override `base`;
    keys not selected are not declared and keep `base` values. Already declared keys are only read
    (a lifecycle node re-reads them on configure). Raises ConfigError naming the parameter.
    """
    base = base or VlaConfig()
    can_write, later = set(writable), set(at_configure)
    defaults = base.flatten()
    types = schema.leaf_types(VlaConfig)
    rows = {row["key"]: row for row in schema.describe(VlaConfig)}
    values: dict[str, Any] = dict(defaults)
    for key in select_keys(sections):
        ros_type = _ros_type(types[key])
        default = defaults[key]
        note = WRITABLE_NOTE if key in can_write else CONFIGURE_NOTE if key in later else READ_ONLY_NOTE
        descriptor = _descriptor(rows[key], ros_type, note)
        if not node.has_parameter(key):
            try:
                if default == []:
                    # An empty list has no ROS type of its own: declare it statically typed and unset.
                    descriptor.dynamic_typing = False
                    node.declare_parameter(key, ros_type, descriptor)
                else:
                    node.declare_parameter(key, default, descriptor)
            except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
                # rclpy checks ranges/types of values given at launch; report them like the schema does.
                raise ConfigError(f"{key}: {exc}") from exc
        try:
            value = node.get_parameter(key).value
        except ParameterUninitializedException:
            value = default
        values[key] = _plain(value)
    return config_from_dict(schema.unflatten(values))


class Change(NamedTuple):
    """A validated run-time set: the whole new config and {key: (old, new)} of what differs."""

    config: VlaConfig
    changed: dict[str, tuple[Any, Any]]


class RuntimeParameters:
    """The check every run-time parameter set of a node goes through, before the node applies it.

    `writable`: the keys the node applies while running (declared writable by `declare_config`).
    `pinned`: writable keys that only the node itself may change, to keep the read-back value true
    ({key: how to change it}); a set is accepted only when it brings the parameter to the value the
    node already uses (e.g. ``policy.type`` after a ``~/load_policy`` swap). Names outside the
    schema (``use_sim_time``) are left to rclpy. `read_only_note` is the reason given for any other
    schema key. `section_checks=False` skips the cross-field checks (an unconfigured lifecycle node:
    its keys are set one at a time and all checked together at configure).
    """

    def __init__(self, writable: Iterable[str], pinned: Mapping[str, str] | None = None, *,
                 read_only_note: str = READ_ONLY_NOTE, section_checks: bool = True):
        self.writable = frozenset(writable)
        self.pinned = dict(pinned or {})
        self.read_only_note = read_only_note
        self.section_checks = section_checks
        self._keys = frozenset(schema.leaf_types(VlaConfig))

    def check(self, cfg: VlaConfig, params: Iterable[Parameter]) -> Change:
        """Validate `params` against `cfg` through the schema; the new config, or ConfigError with the reason."""
        current = cfg.flatten()
        updates: dict[str, Any] = {}
        for prm in params:
            if prm.name not in self._keys:
                continue
            if prm.type_ == Parameter.Type.NOT_SET:
                raise ConfigError(f"{prm.name}: cannot be undeclared (expected a value)")
            value = _plain(prm.value)
            if prm.name not in self.writable:
                raise ConfigError(f"{prm.name}: {self.read_only_note}")
            if prm.name in self.pinned and value != current[prm.name]:
                raise ConfigError(
                    f"{prm.name}: changes only through {self.pinned[prm.name]}; a parameter set would change nothing"
                )
            updates[prm.name] = value
        if not updates:
            return Change(cfg, {})
        data = schema.deep_merge(cfg.to_dict(), schema.unflatten(updates))
        new = schema.from_dict(VlaConfig, data, run_checks=self.section_checks)  # types, ranges, choices (+ checks)
        flat = new.flatten()
        changed = {k: (current[k], flat[k]) for k in updates if flat[k] != current[k]}
        return Change(new, changed)


def set_result(error: str = "") -> SetParametersResult:
    """The on-set-parameters callback's answer: success, or refused with `error` as the reason."""
    return SetParametersResult(successful=not error, reason=error)


def config_to_parameters(cfg: VlaConfig, sections: Iterable[str] | None = None) -> dict[str, Any]:
    """Flat {name: value} of the keys `sections` selects, for a node's ``parameters=[...]`` (launch)."""
    keys = set(select_keys(sections))
    return {k: v for k, v in cfg.flatten().items() if k in keys}


def parameter_overrides(cfg: VlaConfig, sections: Iterable[str] | None = None) -> list[Parameter]:
    """The same as rclpy Parameters, for nodes created in-process (``vla-ros run``, tests)."""
    out = []
    for key, value in config_to_parameters(cfg, sections).items():
        if value == []:
            continue  # unset typed parameter: the declared default applies
        out.append(Parameter(key, value=value))
    return out
