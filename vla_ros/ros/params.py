"""Expose the config schema as ROS parameters (``policy.device``, ``executor.control_rate``, ...).

Nodes declare every leaf of the sections they use, with the schema's doc as description, so
``ros2 param describe`` shows the same text as docs/configuration.md. Values come from the launch
file (which flattens the merged YAML config), from ``--params-file`` or ``-p key:=value``; the node
then validates them through the same schema as YAML and CLI, so a wrong value fails with the
parameter's name.
"""

from __future__ import annotations

import math
import typing
from typing import Any, Iterable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from vla_ros.core import schema
from vla_ros.core.config import ConfigError, VlaConfig, config_from_dict

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


def _ros_type(tp: Any) -> Parameter.Type:
    if typing.get_origin(tp) is list:
        return _ROS_ARRAY_TYPES[typing.get_args(tp)[0]]
    return _ROS_TYPES[tp]


def _descriptor(row: dict[str, Any], ros_type: Parameter.Type) -> ParameterDescriptor:
    constraints = []
    if row["choices"]:
        constraints.append("one of " + ", ".join(map(str, row["choices"])))
    if row["min"] is not None:
        constraints.append(f">= {row['min']}")
    if row["max"] is not None:
        constraints.append(f"<= {row['max']}")
    desc = ParameterDescriptor(
        name=row["key"],
        type=int(ros_type.value),
        description=row["doc"],
        additional_constraints="; ".join(constraints),
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


def declare_config(node: Node, base: VlaConfig | None = None, sections: Iterable[str] | None = None) -> VlaConfig:
    """Declare the schema's parameters on `node` (defaults from `base`) and return the validated config.

    Parameters set from outside (launch, params file, command line) override `base`. Sections not
    in `sections` are not declared and keep `base` values. Raises ConfigError naming the parameter.
    """
    base = base or VlaConfig()
    wanted = set(sections) if sections is not None else None
    defaults = base.flatten()
    types = schema.leaf_types(VlaConfig)
    rows = {row["key"]: row for row in schema.describe(VlaConfig)}
    values: dict[str, Any] = dict(defaults)
    for key, tp in types.items():
        if wanted is not None and key.split(".", 1)[0] not in wanted:
            continue
        ros_type = _ros_type(tp)
        default = defaults[key]
        descriptor = _descriptor(rows[key], ros_type)
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
        if isinstance(value, (tuple, list)) or type(value).__name__ == "array":
            value = list(value)
        values[key] = value
    return config_from_dict(schema.unflatten(values))


def config_to_parameters(cfg: VlaConfig, sections: Iterable[str] | None = None) -> dict[str, Any]:
    """Flat {name: value} for a node's ``parameters=[...]`` (launch) or ``parameter_overrides``."""
    wanted = set(sections) if sections is not None else None
    return {k: v for k, v in cfg.flatten().items() if wanted is None or k.split(".", 1)[0] in wanted}


def parameter_overrides(cfg: VlaConfig, sections: Iterable[str] | None = None) -> list[Parameter]:
    """The same as rclpy Parameters, for nodes created in-process (``vla-ros run``, tests)."""
    out = []
    for key, value in config_to_parameters(cfg, sections).items():
        if value == []:
            continue  # unset typed parameter: the declared default applies
        out.append(Parameter(key, value=value))
    return out
