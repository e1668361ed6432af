"""Feed the ROS-free `TransformBuffer` from /tf and /tf_static (tf2_ros's TransformListener, which
is not installable from PyPI, in a dozen lines).

/tf is subscribed reliable + volatile, /tf_static reliable + transient-local (the latched static
transforms a late joiner still gets), as tf2_ros does. Callbacks run on the node's executor; the
nodes spin single-threaded, so lookups from their timers never race the updates.

    listener = TfListener(node, TransformBuffer(cfg.robot.tf_cache_time, cfg.robot.tf_max_extrapolation),
                          cfg.robot.tf_topic, cfg.robot.tf_static_topic)
    if listener.available: core.transforms = listener.buffer
    chain = ChainPoses(listener.buffer, base, ee); listener.on_update = lambda: handle(chain.update(now()))
"""

from __future__ import annotations

from typing import Any, Callable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vla_ros.core.tf_buffer import TransformBuffer

TF_DEPTH = 100
STATIC_DEPTH = 100


def tf_message_class() -> type | None:
    """tf2_msgs/TFMessage's rclpy class, or None where tf2_msgs is not installed."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError:
        return None
    return TFMessage


def tf_qos(static: bool, depth: int | None = None) -> QoSProfile:
    """tf2_ros's QoS: /tf reliable volatile, /tf_static reliable transient-local."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth or (STATIC_DEPTH if static else TF_DEPTH),
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if static else DurabilityPolicy.VOLATILE,
    )


class TfListener:
    """Subscriptions to /tf and /tf_static that fill `buffer` (``available`` False without tf2_msgs)."""

    def __init__(self, node: Any, buffer: TransformBuffer, tf_topic: str = "/tf", tf_static_topic: str = "/tf_static"):
        self.buffer = buffer
        self.received = 0
        self.on_update: Callable[[], None] | None = None  # called after every TF message (e.g. ChainPoses.update)
        self.subscriptions: list[Any] = []
        cls = tf_message_class()
        self.available = cls is not None
        if cls is None:
            node.get_logger().warning(
                "tf2_msgs is not importable: no /tf subscription, so chunks in another frame than robot.base_frame "
                "are refused")
            return
        self.subscriptions = [
            node.create_subscription(cls, tf_topic, lambda m: self._on(m, False), tf_qos(False)),
            node.create_subscription(cls, tf_static_topic, lambda m: self._on(m, True), tf_qos(True)),
        ]

    def _on(self, msg: Any, static: bool) -> None:
        self.received += 1
        if self.buffer.add_message(msg, static=static) and self.on_update is not None:
            self.on_update()
