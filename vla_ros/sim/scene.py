"""The tabletop scene as MJCF text: a 7-DoF Panda-like arm with a parallel gripper, a table, task objects, cameras.

Why a self-written model instead of the Franka meshes of a PyPI package (gymnasium-robotics'
kitchen_franka assets, robosuite's panda): the kinematics are what matter for a closed-loop
check of the executor (the Panda's published link offsets and joint limits are used below), and
primitive geoms (capsules, boxes) keep the model a few kB in this file, add no 26-157 MB
dependency with its own licence terms, and render several times faster than meshes in a software
(Mesa) GL context, which dominates the simulator's cost on a CPU. See docs/sim.md.

Frames: the world frame is the robot base frame (``base_link``), z up, the table top at z = 0,
the arm standing at the origin and facing +x. The tool frame (site ``tool``) sits between the
finger tips, its z axis along the fingers (pointing down in the home pose).
"""

from __future__ import annotations

import math

import numpy as np

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
# Joint limits of the Franka Panda (rad), from Franka's published robot specification.
ARM_RANGES = (
    (-2.8973, 2.8973), (-1.7628, 1.7628), (-2.8973, 2.8973), (-3.0718, -0.0698),
    (-2.8973, 2.8973), (-0.0175, 3.7525), (-2.8973, 2.8973),
)
# A home configuration with the gripper pointing down in front of the base.
HOME = (0.0, 0.1, 0.0, -2.2, 0.0, 2.3, math.pi / 4)
FINGER_OPEN = 0.04  # one finger's travel (m): fully open = 8 cm between the pads
TOOL_OFFSET = 0.1034  # flange of the hand -> point between the finger tips (m)
CUBE_HALF = 0.02  # task cube half side (m)
TARGET_RADIUS = 0.025  # reach target marker radius (m)
TABLE_COLOR = "0.78 0.70 0.58 1"


def _look_at(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    """MJCF ``xyaxes`` of a camera at `pos` looking at `target` (MuJoCo cameras look along -z)."""
    p, t, u = (np.asarray(v, dtype=np.float64) for v in (pos, target, up))
    fwd = t - p
    fwd /= np.linalg.norm(fwd)
    x = np.cross(fwd, u)
    x /= np.linalg.norm(x)
    y = np.cross(x, fwd)
    return " ".join(f"{v:.6f}" for v in (*x, *y))


PRIMARY_CAMERA_POS = (1.10, 0.0, 0.85)
PRIMARY_CAMERA_TARGET = (0.50, 0.0, 0.05)


def _link(name: str, pos: str, quat: str, joint: int, geoms: str, inner: str, mass: float) -> str:
    lo, hi = ARM_RANGES[joint - 1]
    return f"""
<body name="{name}" pos="{pos}" quat="{quat}" gravcomp="1">
  <inertial pos="0 0 0" mass="{mass}" diaginertia="{0.02 * mass} {0.02 * mass} {0.01 * mass}"/>
  <joint name="panda_joint{joint}" range="{lo} {hi}" class="arm"/>
  {geoms}
  {inner}
</body>"""


def build_mjcf(*, physics_dt: float = 0.002, image_size: int = 128) -> str:
    """The whole scene. The task objects (cube, goal and reach target markers) are always present;
    a task moves the ones it does not use out of the way (`vla_ros.sim.tasks`)."""
    cap = 'class="link"'
    hand = f"""
<body name="hand" pos="0 0 0.107" quat="0.9238795 0 0 -0.3826834" gravcomp="1">
  <inertial pos="0 0 0.04" mass="0.7" diaginertia="0.002 0.002 0.001"/>
  <geom type="box" size="0.025 0.095 0.025" pos="0 0 0.03" {cap} rgba="0.9 0.9 0.92 1"/>
  <camera name="wrist" pos="0.065 0 0.03" xyaxes="0 1 0 0.94 0 0.342" fovy="75"/>
  <site name="tool" pos="0 0 {TOOL_OFFSET}" size="0.005" rgba="0 1 0 0"/>
  <body name="left_finger" pos="0 0 0.0584" gravcomp="1">
    <inertial pos="0 0 0.02" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>
    <joint name="{FINGER_JOINTS[0]}" type="slide" axis="0 1 0" range="0 {FINGER_OPEN}" class="finger"/>
    <geom type="box" size="0.01 0.006 0.026" pos="0 0.006 0.026" class="pad"/>
  </body>
  <body name="right_finger" pos="0 0 0.0584" gravcomp="1">
    <inertial pos="0 0 0.02" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>
    <joint name="{FINGER_JOINTS[1]}" type="slide" axis="0 -1 0" range="0 {FINGER_OPEN}" class="finger"/>
    <geom type="box" size="0.01 0.006 0.026" pos="0 -0.006 0.026" class="pad"/>
  </body>
</body>"""
    # Link offsets of the Panda (Craig DH parameters of Franka's documentation, as body frames).
    l7 = _link("link7", "0.088 0 0", "0.7071068 0.7071068 0 0", 7,
               f'<geom type="cylinder" size="0.045 0.03" pos="0 0 0.06" {cap} rgba="0.2 0.2 0.22 1"/>', hand, 0.6)
    l6 = _link("link6", "0 0 0", "0.7071068 0.7071068 0 0", 6,
               f'<geom type="capsule" fromto="0 0 -0.02 0.088 0 0" size="0.05" {cap}/>', l7, 1.5)
    l5 = _link("link5", "-0.0825 0.384 0", "0.7071068 -0.7071068 0 0", 5,
               f'<geom type="capsule" fromto="0 0 -0.22 0 0 0" size="0.055" {cap}/>', l6, 2.0)
    l4 = _link("link4", "0.0825 0 0", "0.7071068 0.7071068 0 0", 4,
               f'<geom type="capsule" fromto="0 0 0 -0.0825 0.3 0" size="0.055" {cap}/>', l5, 2.5)
    l3 = _link("link3", "0 -0.316 0", "0.7071068 0.7071068 0 0", 3,
               f'<geom type="capsule" fromto="0 0 -0.1 0.0825 0 0" size="0.055" {cap}/>', l4, 2.5)
    l2 = _link("link2", "0 0 0", "0.7071068 -0.7071068 0 0", 2,
               f'<geom type="capsule" fromto="0 0 0 0 -0.25 0" size="0.06" {cap}/>', l3, 3.0)
    l1 = _link("link1", "0 0 0.333", "1 0 0 0", 1,
               f'<geom type="capsule" fromto="0 0 -0.2 0 0 0" size="0.065" {cap}/>', l2, 3.0)
    half_fov = 45.0
    return f"""
<mujoco model="vla_ros_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{physics_dt}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max(640, image_size)}" offheight="{max(480, image_size)}"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  <default>
    <default class="arm">
      <joint type="hinge" axis="0 0 1" armature="0.1" damping="1.0"/>
    </default>
    <default class="finger">
      <joint armature="0.01" damping="5"/>
    </default>
    <default class="link">
      <geom rgba="0.92 0.92 0.94 1" contype="2" conaffinity="0" group="1"/>
    </default>
    <default class="pad">
      <geom rgba="0.15 0.15 0.15 1" friction="1.5 0.02 0.001" condim="6" solref="0.004 1" priority="1" contype="2"
            conaffinity="0"/>
    </default>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.80 0.72 0.60" rgb2="0.74 0.66 0.55" width="64"
             height="64"/>
    <material name="table" texture="grid" texrepeat="8 8"/>
  </asset>
  <worldbody>
    <light pos="0.5 0 1.5" dir="0 0 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <!-- collisions: arm links and pads (contype 2) touch the table and the cube (conaffinity 2), not each other -->
    <geom name="table" type="box" size="0.6 0.6 0.02" pos="0.45 0 -0.02" material="table" rgba="{TABLE_COLOR}"
          conaffinity="3"/>
    <geom name="base" type="cylinder" size="0.08 0.02" pos="0 0 0.02" rgba="0.3 0.3 0.32 1" contype="0"
          conaffinity="0"/>
    <camera name="primary" pos="{' '.join(map(str, PRIMARY_CAMERA_POS))}"
            xyaxes="{_look_at(PRIMARY_CAMERA_POS, PRIMARY_CAMERA_TARGET)}" fovy="{half_fov}"/>
    {l1}
    <body name="cube" pos="0.5 0 {CUBE_HALF}">
      <freejoint name="cube_joint"/>
      <inertial pos="0 0 0" mass="0.08" diaginertia="2e-5 2e-5 2e-5"/>
      <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" rgba="0.85 0.12 0.10 1"
            friction="1.2 0.02 0.001" condim="4" conaffinity="3"/>
    </body>
    <body name="goal" mocap="true" pos="0.6 0.1 0.0005">
      <geom name="goal" type="cylinder" size="0.04 0.0005" rgba="0.1 0.75 0.2 1" contype="0" conaffinity="0"/>
    </body>
    <body name="target" mocap="true" pos="0.5 0 0.2">
      <geom name="target" type="sphere" size="{TARGET_RADIUS}" rgba="0.9 0.1 0.1 1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator>
    {''.join(f'<position name="a{i}" joint="panda_joint{i}" kp="{kp}" kv="{kv}" forcerange="-{f} {f}"/>'
             for i, (kp, kv, f) in enumerate(
                 [(2000, 200, 87)] * 4 + [(800, 60, 12)] * 3, start=1))}
    <position name="finger1" joint="{FINGER_JOINTS[0]}" kp="400" kv="20" forcerange="-25 25"
              ctrlrange="0 {FINGER_OPEN}"/>
    <position name="finger2" joint="{FINGER_JOINTS[1]}" kp="400" kv="20" forcerange="-25 25"
              ctrlrange="0 {FINGER_OPEN}"/>
  </actuator>
</mujoco>
"""
