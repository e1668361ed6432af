"""The vla_ros graph on a simulated arm: sim_node (MuJoCo) + policy node + executor node, on sim time.

    # dry run: the arm stays still
    ros2 launch vla_ros sim.launch.py policy:=flow_matching checkpoint:=/ckpt
    # the policy drives the arm
    ros2 launch vla_ros sim.launch.py policy:=flow_matching checkpoint:=/ckpt dry_run:=false
    ros2 launch vla_ros sim.launch.py --show-args

Every node runs with use_sim_time (sim_node publishes /clock). The executor's dry_run stays ON
unless dry_run:=false is given. Thin on purpose: the plan comes from
vla_ros.ros.launch_plan.build_sim_plan (tested Python); this file only turns it into launch_ros actions.
"""

from launch import LaunchDescription
from launch.actions import OpaqueFunction

from vla_ros.ros.launch_actions import argument_values, declare_arguments, plan_actions
from vla_ros.ros.launch_plan import SIM_DEFAULTS, SIM_LAUNCH_ARGUMENTS, build_sim_plan


def _setup(context, *args, **kwargs):
    return plan_actions(build_sim_plan(argument_values(context, SIM_DEFAULTS)))


def generate_launch_description():
    return LaunchDescription([*declare_arguments(base=SIM_LAUNCH_ARGUMENTS), OpaqueFunction(function=_setup)])
