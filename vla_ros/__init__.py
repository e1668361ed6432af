"""vla_ros: Vision-Language-Action policies on ROS 2 robot arms.

Layers (see docs/architecture.md): ``core`` (ROS-free types, sync, executor, safety, config),
``policy`` (ROS-free policies), ``ros`` (thin rclpy nodes), ``replay`` (bags, evaluation, report).
``vla_ros.msg`` is generated from msg/ by rosidl at build time and installed into this package.
"""

# The generated ``vla_ros.msg`` lives in the installed copy of this package (./install or a colcon
# install space). When this source tree is imported instead (python run from the repository root),
# extend the package path so the generated modules are found as well.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
