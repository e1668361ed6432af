"""A separate rclpy process for the DDS message tests: echoes vla_ros messages back.

ActionChunk on `chunk_in` -> same chunk with seq + 1000 on `chunk_out`;
PolicyStatus on `status_in` -> same status with chunks_published + 1 on `status_out`.
"""

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from vla_ros.msg import ActionChunk, PolicyStatus


def main() -> None:
    rclpy.init()
    node = Node("vla_ros_echo")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    chunk_pub = node.create_publisher(ActionChunk, "chunk_out", qos)
    status_pub = node.create_publisher(PolicyStatus, "status_out", qos)

    def on_chunk(msg: ActionChunk) -> None:
        msg.seq += 1000
        chunk_pub.publish(msg)

    def on_status(msg: PolicyStatus) -> None:
        msg.chunks_published += 1
        status_pub.publish(msg)

    node.create_subscription(ActionChunk, "chunk_in", on_chunk, qos)
    node.create_subscription(PolicyStatus, "status_in", on_status, qos)
    print("echo ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
