"""The vla_ros graph fed from a rosbag, on the bag's clock (use_sim_time), with `vla-ros play`.

    ros2 launch vla_ros replay.launch.py bag:=run1.mcap robot:=franka policy:=flow_matching checkpoint:=/ckpt

Same arguments as vla.launch.py plus bag / rate / loop; the plan comes from
vla_ros.ros.launch_plan.build_replay_plan (tested Python).
"""

from launch import LaunchDescription
from launch.actions import OpaqueFunction

from vla_ros.ros.launch_actions import argument_values, declare_arguments, plan_actions
from vla_ros.ros.launch_plan import REPLAY_ARGUMENTS, REPLAY_DEFAULTS, build_replay_plan


def _setup(context, *args, **kwargs):
    return plan_actions(build_replay_plan(argument_values(context, REPLAY_DEFAULTS)))


def generate_launch_description():
    return LaunchDescription([*declare_arguments(REPLAY_ARGUMENTS), OpaqueFunction(function=_setup)])
