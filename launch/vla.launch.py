"""Start the vla_ros graph on a robot: policy node + executor node.

    ros2 launch vla_ros vla.launch.py robot:=franka policy:=flow_matching checkpoint:=/ckpt device:=cuda
    ros2 launch vla_ros vla.launch.py --show-args

Thin on purpose: the arguments become a validated node plan in vla_ros.ros.launch_plan (tested
Python); this file only turns the plan into launch_ros actions.
"""

from launch import LaunchDescription
from launch.actions import OpaqueFunction

from vla_ros.ros.launch_actions import argument_values, declare_arguments, plan_actions
from vla_ros.ros.launch_plan import ARGUMENT_DEFAULTS, build_plan


def _setup(context, *args, **kwargs):
    return plan_actions(build_plan(argument_values(context, ARGUMENT_DEFAULTS)))


def generate_launch_description():
    return LaunchDescription([*declare_arguments(), OpaqueFunction(function=_setup)])
