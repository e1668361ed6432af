"""node_main.teardown: a node that cannot stop must not keep its process alive (issue 11, finding 10
and the executor_node DDS-teardown deadlock). Real rclpy nodes and contexts, no DDS peers needed."""

from __future__ import annotations

import threading

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from vla_ros.ros import node_main


class HangingNode(Node):
    """destroy_node() blocks until `release` is set (a DDS teardown that never returns)."""

    def __init__(self, **kwargs):
        super().__init__("hanging_node", **kwargs)
        self.release = threading.Event()

    def destroy_node(self):
        self.release.wait()
        super().destroy_node()


def fresh():
    ctx = Context()
    rclpy.init(context=ctx)
    return ctx, SingleThreadedExecutor(context=ctx)


def test_a_clean_teardown_releases_the_node_and_the_context():
    ctx, executor = fresh()
    node = Node("clean_node", context=ctx)
    node.create_timer(0.1, lambda: None)
    executor.add_node(node)
    assert node_main.teardown(node, executor, timeout=10.0) == 0
    assert ctx.handle is None or not _ok(ctx)


def test_a_teardown_that_hangs_gives_up_within_its_bound_and_reports_it(capfd):
    ctx, executor = fresh()
    node = HangingNode(context=ctx)
    executor.add_node(node)
    assert node_main.teardown(node, executor, timeout=0.3) == node_main.EXIT_UNCLEAN
    assert "hanging_node: shutdown did not finish within 0.3 s; exiting with code 1" in capfd.readouterr().err
    node.release.set()  # let the helper thread finish (it shuts the context down)


def test_a_node_that_abandoned_work_makes_the_teardown_unclean(capfd):
    ctx, executor = fresh()
    node = Node("abandoning_node", context=ctx)
    node.shutdown_problem = "inference running for 9.0 s did not stop: its thread was abandoned"
    executor.add_node(node)
    assert node_main.teardown(node, executor, timeout=10.0) == node_main.EXIT_UNCLEAN
    err = capfd.readouterr().err
    assert "abandoning_node: unclean shutdown (inference running for 9.0 s did not stop" in err


def _ok(ctx) -> bool:
    try:
        return ctx.ok()
    except Exception:  # noqa: BLE001 - destroyed: certainly not ok
        return False


def test_a_callback_cut_short_by_the_shutdown_is_not_a_crash(capfd):
    """SIGINT shuts the context down (rcl level, as rclpy's signal handler does) while a timer
    callback runs; its publish then raises. spin() tears down and returns 0 instead of a traceback."""
    from std_msgs.msg import String

    ctx, executor = fresh()
    node = Node("cut_short_node", context=ctx)
    pub = node.create_publisher(String, "cut_short", 10)

    def tick():
        with ctx.handle:
            ctx.handle.shutdown()  # what the signal handler does, mid-callback
        pub.publish(String(data="x"))  # raises: the context is gone

    node.create_timer(0.01, tick)
    assert node_main.spin(node, executor) == 0
    assert "cut_short_node: a callback was cut short by the shutdown (RCLError" in capfd.readouterr().err


def test_a_callback_error_while_running_still_propagates():
    ctx, executor = fresh()
    node = Node("failing_node", context=ctx)

    def tick():
        raise ValueError("a real bug")

    node.create_timer(0.01, tick)
    with pytest.raises(ValueError, match="a real bug"):  # torn down, then raised: not swallowed
        node_main.spin(node, executor)
