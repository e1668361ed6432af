"""Command-line options shared by every sub-command that needs a configuration.

They map onto the one schema (vla_ros.core.config): files are merged in order
(--config, then --robot profile, then --policy-config profile), then the shortcut flags
(--policy, --checkpoint, --device, --dtype), then every --set KEY=VALUE.
"""

from __future__ import annotations

import argparse

from vla_ros.core import profiles
from vla_ros.core.config import VlaConfig, load_config


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None = "default") -> None:
    g = parser.add_argument_group("configuration (see docs/configuration.md)")
    g.add_argument("--config", action="append", default=None, metavar="NAME|PATH",
                   help=f"config file or shipped config name (repeatable, merged in order; default: {default_config})")
    g.add_argument("--robot", metavar="NAME|PATH", help="robot profile (config/robots/NAME.yaml or a path)")
    g.add_argument("--policy-config", metavar="NAME|PATH", help="policy profile (config/policies/NAME.yaml or a path)")
    g.add_argument("--policy", metavar="TYPE", help="policy registry name (policy.type), e.g. flow_matching, hold")
    g.add_argument("--checkpoint", metavar="DIR", help="checkpoint directory (policy.checkpoint)")
    g.add_argument("--device", help="torch device (policy.device), e.g. cpu, cuda")
    g.add_argument("--dtype", help="compute dtype (policy.dtype): float32, bfloat16, float16")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set executor.control_rate=200 (repeatable)")
    parser.set_defaults(_default_config=default_config)


def config_files(args: argparse.Namespace) -> list[str]:
    names = args.config if args.config else ([args._default_config] if args._default_config else [])
    files = [str(profiles.resolve("config", n)) for n in names]
    if args.robot:
        files.append(str(profiles.resolve("robot", args.robot)))
    if args.policy_config:
        files.append(str(profiles.resolve("policy", args.policy_config)))
    return files


def config_from_args(args: argparse.Namespace) -> VlaConfig:
    overrides: dict[str, object] = {}
    for flag, key in (("policy", "policy.type"), ("checkpoint", "policy.checkpoint"),
                      ("device", "policy.device"), ("dtype", "policy.dtype")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    from vla_ros.core.schema import parse_override

    overrides.update(dict(parse_override(s) for s in args.set))
    return load_config(config_files(args), overrides)
