"""The three tabletop tasks: seeded object placement, success criteria and the scripted expert.

Each task is a small class with no physics of its own: `place` draws the objects' start from a
seeded generator and writes them into the MuJoCo state, `state` scores the current state
(JSON-able), and `expert` is the scripted expert's decision rule: a function of the current state
only (Markov, so a policy can learn it from one observation), returning the next waypoint of the
tool, its yaw and the gripper opening.

- ``reach``: a red ball floats above the table; success when the tool point is within
  `REACH_TOLERANCE` of its centre.
- ``push``: a red cube and a green goal disc on the table; success when the cube's centre is
  within `PUSH_TOLERANCE` (in x, y) of the goal's.
- ``pick``: a red cube on the table; success when it is held between the fingers at least
  `LIFT_HEIGHT` above its resting height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_ros.sim.scene import CUBE_HALF

TASKS = ("reach", "push", "pick")
REACH_TOLERANCE = 0.03  # [m]
PUSH_TOLERANCE = 0.03  # [m]
LIFT_HEIGHT = 0.05  # [m]
HIDDEN = np.array([0.0, 0.0, -1.0])  # where unused markers go (under the table, out of sight)
PUSH_DISTANCE = 0.10  # [m] cube start -> goal
PUSH_STANDOFF = CUBE_HALF + 0.022  # [m] tool point behind the cube centre when pushing
PUSH_Z = 0.022  # [m] tool height while pushing (finger tips ~1.5 cm above the table)
APPROACH_Z = 0.09  # [m] height above an object to approach it from


@dataclass
class Layout:
    """Where a task's objects start (base frame)."""

    target: np.ndarray  # reach: ball centre; else HIDDEN
    cube: np.ndarray  # push / pick: cube centre; reach: hidden (cube disabled)
    cube_yaw: float
    goal: np.ndarray  # push: goal disc centre on the table; else HIDDEN


def _yaw_quat_wxyz(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def wrap_quarter(yaw: float) -> float:
    """A square's yaw folded into [-pi/4, pi/4] (its four faces look alike)."""
    return (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4


def wrap_half(yaw: float) -> float:
    """A symmetric gripper's yaw folded into [-pi/2, pi/2]."""
    return (yaw + math.pi / 2) % math.pi - math.pi / 2


class Task:
    name = ""
    instruction = ""

    def sample(self, rng: np.random.Generator, tool_start: np.ndarray) -> Layout:
        raise NotImplementedError

    def state(self, tool: np.ndarray, cube: np.ndarray, opening: float, layout: Layout) -> dict:
        raise NotImplementedError

    def expert(self, tool: np.ndarray, tool_yaw: float, cube: np.ndarray, cube_yaw: float, opening: float,
               layout: Layout) -> tuple[np.ndarray, float, float]:
        """(waypoint xyz, tool yaw, gripper opening in [0, 1]) the expert heads for now."""
        raise NotImplementedError


class ReachTask(Task):
    name = "reach"
    instruction = "reach the red ball"

    def sample(self, rng, tool_start):
        while True:
            target = np.array([rng.uniform(0.40, 0.66), rng.uniform(-0.20, 0.20), rng.uniform(0.06, 0.30)])
            if np.linalg.norm(target - tool_start) > 0.10:
                return Layout(target, HIDDEN.copy(), 0.0, HIDDEN.copy())

    def state(self, tool, cube, opening, layout):
        d = float(np.linalg.norm(tool - layout.target))
        return {"success": d < REACH_TOLERANCE, "distance": d}

    def expert(self, tool, tool_yaw, cube, cube_yaw, opening, layout):
        return layout.target.copy(), 0.0, 1.0


class PushTask(Task):
    name = "push"
    instruction = "push the red cube onto the green disc"

    def sample(self, rng, tool_start):
        while True:
            cube = np.array([rng.uniform(0.45, 0.60), rng.uniform(-0.12, 0.12), CUBE_HALF])
            a = rng.uniform(-math.pi, math.pi)
            goal = cube + PUSH_DISTANCE * np.array([math.cos(a), math.sin(a), 0.0])
            goal[2] = 0.0005
            if 0.38 <= goal[0] <= 0.68 and abs(goal[1]) <= 0.22 and np.linalg.norm(cube[:2] - tool_start[:2]) > 0.06:
                return Layout(HIDDEN.copy(), cube, float(rng.uniform(-0.4, 0.4)), goal)

    def state(self, tool, cube, opening, layout):
        d = float(np.linalg.norm(cube[:2] - layout.goal[:2]))
        return {"success": d < PUSH_TOLERANCE, "distance": d}

    def expert(self, tool, tool_yaw, cube, cube_yaw, opening, layout):
        to_goal = layout.goal[:2] - cube[:2]
        n = float(np.linalg.norm(to_goal))
        u = to_goal / n if n > 1e-6 else np.array([1.0, 0.0])
        yaw = wrap_half(math.atan2(u[1], u[0]))
        behind = cube[:2] - u * PUSH_STANDOFF
        rel = tool[:2] - cube[:2]
        along = float(rel @ u)  # negative: behind the cube
        across = float(abs(rel @ np.array([-u[1], u[0]])))
        low = tool[2] < PUSH_Z + 0.02
        if low and across < 0.015 and along < -CUBE_HALF:
            # behind the cube on the line to the goal: push through to the goal
            end = layout.goal[:2] - u * PUSH_STANDOFF
            return np.array([end[0], end[1], PUSH_Z]), yaw, 0.0
        if low and np.linalg.norm(tool[:2] - behind) > 0.02:
            return np.array([tool[0], tool[1], APPROACH_Z]), yaw, 0.0  # lift clear before moving around
        if np.linalg.norm(tool[:2] - behind) > 0.012:
            return np.array([behind[0], behind[1], APPROACH_Z]), yaw, 0.0
        return np.array([behind[0], behind[1], PUSH_Z]), yaw, 0.0


class PickTask(Task):
    name = "pick"
    instruction = "pick up the red cube"

    def sample(self, rng, tool_start):
        while True:
            cube = np.array([rng.uniform(0.42, 0.62), rng.uniform(-0.15, 0.15), CUBE_HALF])
            if np.linalg.norm(cube[:2] - tool_start[:2]) > 0.06:
                return Layout(HIDDEN.copy(), cube, float(rng.uniform(-0.6, 0.6)), HIDDEN.copy())

    def state(self, tool, cube, opening, layout):
        lift = float(cube[2] - CUBE_HALF)
        held = bool(np.linalg.norm(tool - cube) < 0.03)
        goal = np.array([layout.cube[0], layout.cube[1], CUBE_HALF + LIFT_HEIGHT + 0.01])
        return {"success": bool(held and lift >= LIFT_HEIGHT), "distance": float(np.linalg.norm(cube - goal)),
                "lift": lift, "held": held}

    def expert(self, tool, tool_yaw, cube, cube_yaw, opening, layout):
        yaw = wrap_quarter(cube_yaw)
        grasp = cube.copy()
        xy_err = float(np.linalg.norm(tool[:2] - grasp[:2]))
        if opening < 0.62 and np.linalg.norm(tool - grasp) < 0.03:
            # closed on the cube: carry it up
            return np.array([grasp[0], grasp[1], CUBE_HALF + LIFT_HEIGHT + 0.04]), yaw, 0.0
        if xy_err < 0.01 and abs(tool[2] - grasp[2]) < 0.008 and abs(wrap_quarter(tool_yaw - yaw)) < 0.1:
            return grasp, yaw, 0.0  # at the grasp point: close
        if xy_err < 0.01:
            return grasp, yaw, 1.0  # above it: descend, open
        if tool[2] < grasp[2] + 0.04:
            return np.array([tool[0], tool[1], grasp[2] + APPROACH_Z]), yaw, 1.0  # too low to move across: rise
        return np.array([grasp[0], grasp[1], grasp[2] + APPROACH_Z]), yaw, 1.0


def make_task(name: str) -> Task:
    tasks = {"reach": ReachTask, "push": PushTask, "pick": PickTask}
    if name not in tasks:
        raise ValueError(f"sim task: expected one of {', '.join(TASKS)}, got {name!r}")
    return tasks[name]()
