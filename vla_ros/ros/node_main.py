"""What every vla_ros node executable does around its node: arguments in, spin, clean shutdown.

`ros2 run vla_ros policy_node --ros-args -p ...` and `policy_node --robot franka --set ...` both
work: ROS arguments go to rclpy, the rest are our config options (vla_ros.cli.common). A bad
config is one line on stderr and exit code 2, never a stack trace or a crash loop.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Sequence

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

from vla_ros.core.config import ConfigError, VlaConfig


def parse_config(prog: str, description: str, argv: Sequence[str] | None) -> tuple[list[str], VlaConfig | None]:
    """(full argv for rclpy, base config from our options) or (argv, None) after printing the error."""
    from vla_ros.cli.common import add_config_arguments, config_from_args

    args = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_arguments(parser, default_config=None)
    ns = parser.parse_args(remove_ros_args(args)[1:])
    try:
        return args, config_from_args(ns)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return args, None


def make_node(prog: str, factory: Callable[[], Node]) -> Node | None:
    """`factory()` with rclpy initialised; None (and rclpy shut down) after a ConfigError."""
    try:
        return factory()
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        if rclpy.ok():
            rclpy.shutdown()
        return None


def spin(node: Node, executor: Executor, duration: float = 0.0) -> int:
    """Spin until Ctrl-C / shutdown (or `duration` seconds if > 0), then tear everything down."""
    executor.add_node(node)
    end = time.monotonic() + duration if duration > 0 else None
    try:
        if end is None:
            executor.spin()
        else:
            while rclpy.ok() and time.monotonic() < end:
                executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
