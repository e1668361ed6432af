"""`SimWorld`: the MuJoCo tabletop (arm, gripper, task objects, cameras) behind one small interface.

Used by `vla-ros sim-eval` (one process, simulated clock), by ``sim_node`` (ROS topics, /clock)
and by the tests. Conventions:

- Positions in metres in the robot base frame ``base_link`` (= the MuJoCo world frame; the table
  top is z = 0), quaternions (x, y, z, w), times in sim seconds.
- The tool frame (`ee_pose`) is the point between the finger tips, z along the fingers; in the
  home pose it points straight down with x along base x (quaternion (1, 0, 0, 0)).
- Gripper command and opening in [0, 1]: 0 closed, 1 fully open, as the policy's gripper action
  and the executor's normalised gripper output (``Command.gripper``). Each finger then travels
  ``value * FINGER_OPEN`` (0.04 m); the profile (``config/robots/sim_panda.yaml``) states the same
  range in robot units (``gripper_closed: 0``, ``gripper_open: 0.04``, finger joint 1).
- `reset` sets `time` back to 0 and re-randomises the task objects from the seed (and the arm's
  start a little). Not thread-safe: callers that step and command from two threads hold a lock.
  The offscreen GL context is made current in the thread of the first `render`: create, step,
  render and `close` a world in one thread (closing it from another fails with EGL_BAD_ACCESS).

The controller is resolved-rate differential IK on a *reference configuration* (damped least
squares, a null-space pull to the home posture, joint limits); stiff joint position servos with
gravity compensation make the arm follow that reference. A pose target (`command_pose`) is tracked
with a first-order law; a twist (`command_twist`) moves the target itself at that velocity until
another command replaces it. Commands with NaN/inf are refused (False, counted in
``rejected_commands``) and the previous one stays. The controller runs at every physics step.

    world = SimWorld(SimSpec(task="pick", seed=3))
    world.command_pose([0.5, 0.0, 0.2], [1, 0, 0, 0]); world.step(1.0)
    rgb = world.render("wrist"); world.task_state()["success"]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from vla_ros.core.rotations import quat_to_rotvec, rotvec_to_quat
from vla_ros.sim import scene as S
from vla_ros.sim.tasks import HIDDEN, Layout, make_task

# Controller gains and limits (reference configuration).
POSITION_GAIN = 25.0  # [1/s]
ROTATION_GAIN = 20.0  # [1/s]
MAX_SPEED = 1.0  # [m/s] of the reference tool point
MAX_ANGULAR_SPEED = 3.0  # [rad/s]
DAMPING = 0.03  # damped least squares lambda
NULL_GAIN = 2.0  # [1/s] pull of the redundant DoF towards HOME
MAX_LEAD = 0.25  # [rad] the reference stays this close to the measured joints (anti wind-up on contact)
START_JITTER = 0.06  # [rad] random offset of the start configuration per joint


def ensure_gl_backend() -> str:
    """Pick an offscreen GL backend before mujoco is imported: EGL (Mesa's software EGL on a CPU
    machine) unless the user chose one; returns it."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] == "egl":
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    return os.environ["MUJOCO_GL"]


def rendering_problem() -> str:
    """'' if an offscreen context can be made here, else why not (one sentence)."""
    ensure_gl_backend()
    try:
        import mujoco

        m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='.1'/></worldbody></mujoco>")
        r = mujoco.Renderer(m, 8, 8)
        r.close()
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means: no rendering here
        return (f"offscreen rendering (MUJOCO_GL={os.environ.get('MUJOCO_GL')}) is unavailable: {type(exc).__name__}: "
                f"{exc}; install Mesa's EGL (make setup does: libegl1 libgl1 libegl-mesa0)")


@dataclass
class SimSpec:
    """Everything a scene needs (see module docstring for the frames and units)."""

    task: str = "reach"  # reach | push | pick
    seed: int = 0
    image_size: int = 128  # square renders, both cameras
    cameras: tuple[str, ...] = ("primary", "wrist")
    physics_dt: float = 0.002
    render: bool = True  # False: no GL context at all (tests without EGL, physics-only bench)

    def __post_init__(self) -> None:
        make_task(self.task)  # ValueError naming the field
        if not (isinstance(self.image_size, int) and 16 <= self.image_size <= 1024):
            raise ValueError("sim image_size: expected an integer number of pixels in [16, 1024], got "
                             f"{self.image_size!r}")
        if not 0.0005 <= float(self.physics_dt) <= 0.01:
            raise ValueError(f"sim physics_dt: expected seconds in [0.0005, 0.01], got {self.physics_dt!r}")
        bad = [c for c in self.cameras if c not in CAMERAS]
        if bad:
            raise ValueError(f"sim cameras: expected names from {', '.join(CAMERAS)}, got {bad}")
        self.cameras = tuple(self.cameras)


CAMERAS = ("primary", "wrist")


def _quat_xyzw_from_mat(mat: np.ndarray) -> np.ndarray:
    import mujoco

    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(mat, dtype=np.float64).reshape(9))
    return np.array([q[1], q[2], q[3], q[0]])


def _mat_from_quat_xyzw(q: np.ndarray) -> np.ndarray:
    import mujoco

    m = np.empty(9)
    mujoco.mju_quat2Mat(m, np.array([q[3], q[0], q[1], q[2]], dtype=np.float64))
    return m.reshape(3, 3)


def _rotvec_of(mat: np.ndarray) -> np.ndarray:
    return quat_to_rotvec(_quat_xyzw_from_mat(mat))


class SimWorld:
    """One simulated tabletop (see module docstring)."""

    def __init__(self, spec: SimSpec | None = None):
        spec = spec or SimSpec()
        ensure_gl_backend()
        import mujoco

        self._mj = mujoco
        self.spec = spec
        self.task = make_task(spec.task)
        self.model = mujoco.MjModel.from_xml_string(S.build_mjcf(physics_dt=spec.physics_dt,
                                                                 image_size=spec.image_size))
        self.data = mujoco.MjData(self.model)
        self._kin = mujoco.MjData(self.model)  # kinematics of the reference configuration
        m = self.model
        self._arm_q = np.array([m.jnt_qposadr[m.joint(j).id] for j in S.ARM_JOINTS])
        self._arm_v = np.array([m.jnt_dofadr[m.joint(j).id] for j in S.ARM_JOINTS])
        self._finger_q = np.array([m.jnt_qposadr[m.joint(j).id] for j in S.FINGER_JOINTS])
        self._finger_v = np.array([m.jnt_dofadr[m.joint(j).id] for j in S.FINGER_JOINTS])
        self._lo = np.array([r[0] for r in S.ARM_RANGES]) + 0.01
        self._hi = np.array([r[1] for r in S.ARM_RANGES]) - 0.01
        self._tool = m.site("tool").id
        self._cube_body = m.body("cube").id
        self._cube_q = m.jnt_qposadr[m.joint("cube_joint").id]
        self._cube_v = m.jnt_dofadr[m.joint("cube_joint").id]
        self._goal_mocap = m.body_mocapid[m.body("goal").id]
        self._target_mocap = m.body_mocapid[m.body("target").id]
        if self.task.name == "reach":  # no cube: invisible, no contacts, floating
            g = m.geom("cube").id
            m.geom_rgba[g, 3] = 0.0
            m.geom_contype[g] = 0
            m.geom_conaffinity[g] = 0
            m.body_gravcomp[self._cube_body] = 1.0
        self.joint_names: tuple[str, ...] = (*S.ARM_JOINTS, *S.FINGER_JOINTS)
        self.cameras = spec.cameras
        self._renderer = None
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self.rejected_commands = 0
        self.layout: Layout | None = None
        self.reset(spec.seed)

    # ------------------------------------------------------------------ state
    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, seed: int | None = None) -> None:
        """Back to time 0: the arm near home (seeded jitter), the task objects re-drawn from `seed`
        (default: the spec's seed; the same seed gives the same episode)."""
        mj = self._mj
        seed = self.spec.seed if seed is None else int(seed)
        self.seed = seed
        self.rejected_commands = 0
        rng = np.random.default_rng(seed)
        mj.mj_resetData(self.model, self.data)
        q0 = np.clip(np.array(S.HOME) + rng.uniform(-START_JITTER, START_JITTER, 7), self._lo, self._hi)
        self.data.qpos[self._arm_q] = q0
        self.data.qpos[self._finger_q] = S.FINGER_OPEN
        self._q_ref = q0.copy()
        self.data.ctrl[:7] = q0
        self.data.ctrl[7:9] = S.FINGER_OPEN
        mj.mj_kinematics(self.model, self.data)
        tool0 = self.data.site_xpos[self._tool].copy()
        self.layout = layout = self.task.sample(rng, tool0)
        self.data.qpos[self._cube_q:self._cube_q + 3] = layout.cube if self.task.name != "reach" else [0.5, 0.0, -0.5]
        self.data.qpos[self._cube_q + 3:self._cube_q + 7] = [math.cos(layout.cube_yaw / 2), 0, 0,
                                                             math.sin(layout.cube_yaw / 2)]
        self.data.mocap_pos[self._goal_mocap] = layout.goal if self.task.name == "push" else HIDDEN
        self.data.mocap_pos[self._target_mocap] = layout.target if self.task.name == "reach" else HIDDEN
        mj.mj_forward(self.model, self.data)
        pos, quat = self.ee_pose()
        self._target_pos, self._target_mat = pos, _mat_from_quat_xyzw(quat)
        self._twist: tuple[np.ndarray, np.ndarray] | None = None
        self._gripper = 1.0
        self._t_goal = 0.0

    def step(self, seconds: float) -> None:
        """Advance physics and the controller until ``time + seconds`` (whole physics steps)."""
        mj, m, d = self._mj, self.model, self.data
        dt = m.opt.timestep
        self._t_goal = max(self._t_goal, d.time) + float(seconds)
        while d.time < self._t_goal - 0.5 * dt:
            self._control(dt)
            mj.mj_step(m, d)
        mj.mj_kinematics(m, d)  # poses (sites, cameras) of the state reached, for ee_pose / render

    # ------------------------------------------------------------------ commands
    def command_pose(self, position, quaternion) -> bool:
        """Cartesian target of the tool frame; replaces a running twist."""
        p = np.asarray(position, dtype=np.float64).reshape(3)
        q = np.asarray(quaternion, dtype=np.float64).reshape(4)
        if not (np.isfinite(p).all() and np.isfinite(q).all()) or np.linalg.norm(q) < 1e-6:
            self.rejected_commands += 1
            return False
        self._target_pos, self._target_mat = p.copy(), _mat_from_quat_xyzw(q / np.linalg.norm(q))
        self._twist = None
        return True

    def command_twist(self, linear, angular) -> bool:
        """Tool velocity (m/s, rad/s, base frame), held until replaced; zero stops in place."""
        v = np.asarray(linear, dtype=np.float64).reshape(3)
        w = np.asarray(angular, dtype=np.float64).reshape(3)
        if not (np.isfinite(v).all() and np.isfinite(w).all()):
            self.rejected_commands += 1
            return False
        if self._twist is None:  # start from where the arm is, not from an old pose target
            self._target_pos, self._target_mat = self._ref_pose()
        self._twist = (v.copy(), w.copy())
        return True

    def command_gripper(self, value: float) -> bool:
        """Opening in [0, 1] (0 closed, 1 open); clipped into the range."""
        v = float(value)
        if not math.isfinite(v):
            self.rejected_commands += 1
            return False
        self._gripper = min(1.0, max(0.0, v))
        return True

    # ------------------------------------------------------------------ readings
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz, quaternion xyzw) of the tool frame, measured."""
        d = self.data
        return d.site_xpos[self._tool].copy(), _quat_xyzw_from_mat(d.site_xmat[self._tool])

    def joint_state(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """(names, positions, velocities): 7 arm joints (rad) then the two fingers (m)."""
        d = self.data
        pos = np.concatenate([d.qpos[self._arm_q], d.qpos[self._finger_q]])
        vel = np.concatenate([d.qvel[self._arm_v], d.qvel[self._finger_v]])
        return self.joint_names, pos, vel

    def gripper_opening(self) -> float:
        """Measured opening in [0, 1] (mean of the two fingers)."""
        return float(np.clip(np.mean(self.data.qpos[self._finger_q]) / S.FINGER_OPEN, 0.0, 1.0))

    def cube_pose(self) -> tuple[np.ndarray, float]:
        """Cube centre and yaw (rad)."""
        d = self.data
        q = d.qpos[self._cube_q + 3:self._cube_q + 7]  # w, x, y, z
        yaw = math.atan2(2 * (q[0] * q[3] + q[1] * q[2]), 1 - 2 * (q[2] ** 2 + q[3] ** 2))
        return d.qpos[self._cube_q:self._cube_q + 3].copy(), yaw

    def task_state(self) -> dict:
        """JSON-able: success, distance (the task's own measure, m), tool and object positions, and the
        goal: "target" is the point the tool must reach (reach), "goal" where the cube must go (push /
        pick: the lift point)."""
        tool, _ = self.ee_pose()
        cube, cube_yaw = self.cube_pose()
        lay = self.layout
        st = self.task.state(tool, cube, self.gripper_opening(), lay)
        st = {"task": self.task.name, "time": self.time, **st, "tool": tool.tolist()}
        if self.task.name == "reach":
            st["target"] = lay.target.tolist()
        else:
            st["cube"] = cube.tolist()
            st["cube_yaw"] = cube_yaw
            if self.task.name == "push":
                st["goal"] = lay.goal.tolist()
            else:
                from vla_ros.sim.tasks import LIFT_HEIGHT

                st["goal"] = [float(lay.cube[0]), float(lay.cube[1]), float(S.CUBE_HALF + LIFT_HEIGHT)]
        return {k: (bool(v) if isinstance(v, (bool, np.bool_)) else float(v) if isinstance(v, (np.floating,)) else v)
                for k, v in st.items()}

    def expert_waypoint(self) -> tuple[np.ndarray, float, float]:
        """The scripted expert's next (waypoint, yaw, gripper) from the current state (`tasks`)."""
        tool, quat = self.ee_pose()
        tool_yaw = float(quat_to_rotvec(quat_mul_down_inv(quat))[2])
        cube, cube_yaw = self.cube_pose()
        return self.task.expert(tool, tool_yaw, cube, cube_yaw, self.gripper_opening(), self.layout)

    def instruction(self) -> str:
        return self.task.instruction

    def render(self, camera: str) -> np.ndarray:
        """H x W x 3 uint8 RGB of `camera` ('primary' or 'wrist') at the current state."""
        if not self.spec.render:
            raise RuntimeError("SimWorld.render: this world was made with render=False (SimSpec.render)")
        if camera not in CAMERAS:
            raise ValueError(f"camera: expected one of {', '.join(CAMERAS)}, got {camera!r}")
        if self._renderer is None:
            self._renderer = self._mj.Renderer(self.model, self.spec.image_size, self.spec.image_size)
        self._renderer.update_scene(self.data, camera)
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> "SimWorld":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ controller
    def _ref_pose(self) -> tuple[np.ndarray, np.ndarray]:
        k = self._kin
        k.qpos[self._arm_q] = self._q_ref
        self._mj.mj_kinematics(self.model, k)
        return k.site_xpos[self._tool].copy(), k.site_xmat[self._tool].reshape(3, 3).copy()

    def _control(self, dt: float) -> None:
        mj, m, d = self._mj, self.model, self.data
        if self._twist is not None:
            v, w = self._twist
            self._target_pos = self._target_pos + v * dt
            self._target_mat = _mat_from_quat_xyzw(rotvec_to_quat(w * dt)) @ self._target_mat
        p, R = self._ref_pose()
        k = self._kin
        mj.mj_comPos(m, k)
        mj.mj_jacSite(m, k, self._jacp, self._jacr, self._tool)
        J = np.vstack([self._jacp[:, self._arm_v], self._jacr[:, self._arm_v]])
        v = POSITION_GAIN * (self._target_pos - p)
        w = ROTATION_GAIN * _rotvec_of(self._target_mat @ R.T)
        sv, sw = np.linalg.norm(v), np.linalg.norm(w)
        if sv > MAX_SPEED:
            v *= MAX_SPEED / sv
        if sw > MAX_ANGULAR_SPEED:
            w *= MAX_ANGULAR_SPEED / sw
        if self._twist is not None:
            v = v + self._twist[0]
            w = w + self._twist[1]
        x = np.concatenate([v, w])
        JJt = J @ J.T + (DAMPING ** 2) * np.eye(6)
        pinv = J.T @ np.linalg.solve(JJt, np.eye(6))
        dq = pinv @ x
        dq += (np.eye(7) - pinv @ J) @ (NULL_GAIN * (np.array(S.HOME) - self._q_ref))
        q_meas = d.qpos[self._arm_q]
        self._q_ref = np.clip(self._q_ref + dq * dt, self._lo, self._hi)
        self._q_ref = np.clip(self._q_ref, q_meas - MAX_LEAD, q_meas + MAX_LEAD)
        d.ctrl[:7] = self._q_ref
        d.ctrl[7:9] = self._gripper * S.FINGER_OPEN


_DOWN_INV = np.array([-1.0, 0.0, 0.0, 0.0])  # inverse of the home tool orientation (x, y, z, w) = (1, 0, 0, 0)


def quat_mul_down_inv(q: np.ndarray) -> np.ndarray:
    """The tool orientation relative to pointing down: q * down^-1 (a rotation about z for a level tool)."""
    from vla_ros.core.rotations import quat_mul

    return quat_mul(q, _DOWN_INV)


def tool_quat(yaw: float) -> np.ndarray:
    """Tool orientation (x, y, z, w) pointing down, rotated by `yaw` about the base z axis."""
    from vla_ros.core.rotations import quat_mul

    return quat_mul(rotvec_to_quat(np.array([0.0, 0.0, yaw])), np.array([1.0, 0.0, 0.0, 0.0]))
