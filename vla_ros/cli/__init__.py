"""`vla-ros`: one command line for the whole package.

Each sub-command lives in its own module under ``vla_ros.cli`` with ``add_parser(subparsers)`` and
``run(args) -> int``; heavy imports (torch, rclpy) happen inside ``run`` so ``vla-ros --help`` is fast
and works without them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in --help order.
COMMANDS = ("config", "make-checkpoint", "import", "run", "eval", "sim-eval", "play", "demo")
# Commands whose module name differs from the command ("import" is a Python keyword).
MODULES = {"import": "import_cmd"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vla-ros", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"vla_ros.cli.{MODULES.get(name, name.replace('-', '_'))}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, KeyError, FileNotFoundError) as exc:
        # Bad input is reported as one clear line, not a stack trace.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"vla-ros {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
