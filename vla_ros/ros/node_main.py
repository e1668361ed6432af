"""What every vla_ros node executable does around its node: arguments in, spin, clean shutdown.

`ros2 run vla_ros policy_node --ros-args -p ...` and `policy_node --robot franka --set ...` both
work: ROS arguments go to rclpy, the rest are our config options (vla_ros.cli.common). A bad
config is one line on stderr and exit code 2, never a stack trace or a crash loop.

Shutdown is bounded (`teardown`): a node that cannot stop (an inference stuck in a driver, a DDS
participant that deadlocks while its peers leave at the same moment) must not keep the process
alive, or a launch ``respawn`` never replaces it and the launch escalates to SIGKILL. The
teardown runs in a helper thread in a fixed order - executor (no new callbacks, bounded wait for
the running ones), the node (its timers / subscriptions / publishers before the node itself),
then the context (rclpy.shutdown, and the context's rcl/DDS handle destroyed here, inside the
bound, rather than by the garbage collector at interpreter exit). If it does not finish within
``TEARDOWN_TIMEOUT`` s, or the node reports that it had to abandon work
(``node.shutdown_problem``), the process says so on stderr and exits with code 1 via `os._exit`
(abandoned threads may hold locks that a normal interpreter exit would wait on).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import sys
import threading
import time
from typing import Callable, Sequence

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

from vla_ros.core.config import ConfigError, VlaConfig


def handle_sigint() -> None:
    """Make SIGINT (Ctrl-C, what launch and the runner send to stop a node) raise KeyboardInterrupt.

    A process started with SIGINT ignored (``cmd &`` in a script, some supervisors) inherits that,
    and Python then installs no handler: the node would ignore every stop request and only a kill
    would end it, with no clean shutdown. Call before rclpy.init (which chains to this handler).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def parse_config(prog: str, description: str, argv: Sequence[str] | None) -> tuple[list[str], VlaConfig | None]:
    """(full argv for rclpy, base config from our options) or (argv, None) after printing the error.

    Every node's main starts here, so this is also where SIGINT is made to stop it (`handle_sigint`).
    """
    from vla_ros.cli.common import add_config_arguments, config_from_args

    handle_sigint()
    if not faulthandler.is_enabled():  # a crash in native code (DDS, torch) leaves the Python stack on stderr
        faulthandler.enable()

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


TEARDOWN_TIMEOUT = 5.0  # [s] longest a node's teardown may take before the process exits anyway (code 1)
EXIT_UNCLEAN = 1


def spin(node: Node, executor: Executor, duration: float = 0.0, teardown_timeout: float = TEARDOWN_TIMEOUT) -> int:
    """Spin until Ctrl-C / shutdown (or `duration` seconds if > 0), then tear everything down.

    Returns 0 after a clean teardown; otherwise does not return (see `teardown`).
    """
    executor.add_node(node)
    end = time.monotonic() + duration if duration > 0 else None
    try:
        if end is None:
            executor.spin()
        else:
            while rclpy.ok() and time.monotonic() < end:
                executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        _let_signal_handler_finish(node)
    except ExternalShutdownException:
        pass
    except Exception as exc:  # noqa: BLE001 - re-raised unless the shutdown caused it
        # SIGINT shuts the context down under a running callback: its next publish raises
        # ("publisher's context is invalid"). That is the shutdown, not a crash: no traceback,
        # exit code 0. While the context is still up it is a real error and propagates.
        if _context_ok(node):
            raise  # (the finally below still tears down)
        print(f"{_node_name(node)}: a callback was cut short by the shutdown ({type(exc).__name__}: {exc})",
              file=sys.stderr, flush=True)
    finally:
        code = teardown(node, executor, teardown_timeout)
    if code != 0:
        _exit_now(code)
    return 0


SIGNAL_SETTLE_S = 0.3  # [s] longest wait for rclpy's signal thread to shut the context down after a Ctrl-C


def _let_signal_handler_finish(node: Node) -> None:
    """After a Ctrl-C, wait (at most SIGNAL_SETTLE_S) until rclpy's own signal thread has shut the context
    down, and a moment more, before the teardown destroys anything.

    Why: on SIGINT rclpy's signal-handling thread triggers every executor's SIGINT guard condition and
    shuts the contexts down, while this thread gets KeyboardInterrupt at once. A teardown that destroys
    those guard conditions and the context while that thread still uses them is a known way to a
    segfault at exit (seen once in CI: exit -11 instead of 1; rclpy issues #178/#253-like races).
    """
    deadline = time.monotonic() + SIGNAL_SETTLE_S
    while _context_ok(node) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.02)


def teardown(node: Node, executor: Executor, timeout: float = TEARDOWN_TIMEOUT) -> int:
    """Executor, node, context, in that order, within `timeout` s (module docstring).

    Returns 0 if everything was released, EXIT_UNCLEAN (and says why on stderr) if the teardown
    timed out, raised, or the node set ``shutdown_problem``.
    """
    name = _node_name(node)
    errors: list[str] = []
    done = threading.Event()

    def work() -> None:
        try:
            # Bounded: a callback stuck in a service (e.g. a swap) must not hold the teardown.
            if not executor.shutdown(timeout_sec=max(0.1, timeout / 2)):
                errors.append("callbacks still running after the executor shutdown")
            context = node.context
            node.destroy_node()
            if context.ok():
                rclpy.shutdown(context=context)
            destroy = getattr(context, "destroy", None)  # not on every rclpy release
            if destroy is not None:
                destroy()  # the participant goes now, inside the bound, not at interpreter exit
        except Exception as exc:  # noqa: BLE001 - reported below; the exit code says it
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            done.set()

    threading.Thread(target=work, name=f"{name}-teardown", daemon=True).start()
    if not done.wait(timeout):
        _report(f"{name}: shutdown did not finish within {timeout:g} s; exiting with code {EXIT_UNCLEAN}")
        return EXIT_UNCLEAN
    problem = getattr(node, "shutdown_problem", "")
    if problem:
        errors.append(problem)
    if errors:
        _report(f"{name}: unclean shutdown ({'; '.join(errors)}); exiting with code {EXIT_UNCLEAN}")
        return EXIT_UNCLEAN
    return 0


def _context_ok(node: Node) -> bool:
    try:
        return node.context.ok()
    except Exception:  # noqa: BLE001 - a destroyed context is not ok
        return False


def _node_name(node: Node) -> str:
    try:
        return node.get_name()
    except Exception:  # noqa: BLE001 - a destroyed node
        return "node"


def _report(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _exit_now(code: int) -> None:
    """Leave without waiting for abandoned threads or finalizers (they may never finish)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
