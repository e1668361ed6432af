"""Translate a `LaunchPlan` into launch / launch_ros actions (Humble, Jazzy, Kilted).

Imported only by the launch files in launch/ (it needs the `launch` and `launch_ros` packages of a
ROS 2 install); every decision is made in `vla_ros.ros.launch_plan`, which the tests exercise.
Lifecycle nodes are driven configure -> activate by events, the portable way (Humble's
LifecycleNode has no autostart).
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, LogInfo, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from vla_ros.ros.launch_plan import LAUNCH_ARGUMENTS, LaunchPlan, NodeSpec


def declare_arguments(extra=(), base=LAUNCH_ARGUMENTS) -> list:
    """DeclareLaunchArgument for every plan argument (what `ros2 launch ... --show-args` lists).

    `base` is the launch file's argument set (`LAUNCH_ARGUMENTS`, or `SIM_LAUNCH_ARGUMENTS` for
    sim.launch.py), `extra` its additions.
    """
    return [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
            for a in (*base, *extra)]


def argument_values(context, names) -> dict[str, str]:
    return {name: LaunchConfiguration(name).perform(context) for name in names}


def _node_action(spec: NodeSpec):
    kwargs = dict(
        package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace,
        parameters=[spec.parameters], remappings=list(spec.remappings), ros_arguments=list(spec.ros_arguments),
        output="screen", emulate_tty=True,
    )
    return LifecycleNode(**kwargs) if spec.lifecycle else Node(**kwargs)


def _lifecycle_startup(node) -> list:
    """configure now; activate once the node reports 'inactive'."""
    def change(transition_id):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))

    return [
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, goal_state="inactive",
            entities=[LogInfo(msg="policy node configured, activating"), change(Transition.TRANSITION_ACTIVATE)],
        )),
        node,
        change(Transition.TRANSITION_CONFIGURE),
    ]


def plan_actions(plan: LaunchPlan) -> list:
    """Launch actions that start every node (and process) of `plan`."""
    actions: list = []
    if plan.policy_metadata is not None:
        m = plan.policy_metadata
        actions.append(LogInfo(msg=f"vla_ros: policy {m.policy_type} {m.checkpoint_id} cameras={','.join(m.cameras)} "
                                   f"horizon={m.horizon} dt={m.dt}; robot {plan.config.robot.name}; "
                                   f"dry_run={plan.config.executor.dry_run}"))
    for spec in plan.nodes:
        node = _node_action(spec)
        actions.extend(_lifecycle_startup(node) if spec.lifecycle else [node])
    for cmd in plan.processes:
        actions.append(ExecuteProcess(cmd=list(cmd), output="screen"))
    return actions
