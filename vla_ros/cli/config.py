"""`vla-ros config`: show the merged, validated configuration, or the schema as Markdown."""

from __future__ import annotations

import argparse
import sys

import yaml

from vla_ros.cli.common import add_config_arguments, config_from_args
from vla_ros.core import profiles, schema
from vla_ros.core.config import VlaConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the merged config (YAML), the schema docs, or the shipped profiles")
    add_config_arguments(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--doc", action="store_true", help="print the schema as a Markdown table")
    mode.add_argument("--flat", action="store_true", help="print as flat ROS parameter names")
    mode.add_argument("--list", action="store_true", help="list shipped configs and profiles")
    p.set_defaults(func=run)


def schema_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `vla_ros/core/config.py` by `vla-ros config --doc` (`make docs`); do not edit by hand.",
        "The same keys are YAML keys (nested by section), ROS parameters (dotted names) and `--set KEY=VALUE` "
        "overrides.",
        "",
    ]
    section = None
    for row in schema.describe(VlaConfig):
        sec = row["key"].split(".", 1)[0]
        if sec != section:
            section = sec
            lines += ["", f"## `{sec}`", "", "| key | type | default | constraints | description |",
                      "|---|---|---|---|---|"]
        cons = []
        if row["choices"]:
            cons.append("one of " + ", ".join(f"`{c}`" for c in row["choices"]))
        if row["min"] is not None:
            cons.append(f">= {row['min']}")
        if row["max"] is not None:
            cons.append(f"<= {row['max']}")
        if row["length"] is not None:
            cons.append(f"{row['length']} items")
        lines.append(f"| `{row['key']}` | {row['type']} | `{row['default']!r}` | {'; '.join(cons)} | {row['doc']} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    if args.doc:
        sys.stdout.write(schema_markdown())
        return 0
    if args.list:
        for kind in profiles.KINDS:
            print(f"{kind}: {', '.join(profiles.available(kind)) or '-'}  "
                  f"({profiles.config_dir() / profiles.KINDS[kind]})")
        return 0
    cfg = config_from_args(args)
    data = cfg.flatten() if args.flat else cfg.to_dict()
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    return 0
