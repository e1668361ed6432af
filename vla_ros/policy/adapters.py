"""Action and state adapters: a pretrained policy's own vectors <-> this package's robot quantities.

vla_ros commands the end effector with 7-DoF chunks (x, y, z, rotation vector, gripper opening
in [0, 1]; ABSOLUTE, or DELTA from the observation's pose). A pretrained checkpoint speaks the
layout of the dataset it was trained on: LIBERO's are per-step end-effector deltas scaled to
[-1, 1] with a -1 (open) .. +1 (closed) gripper, and an 8-dim state of position, axis-angle and
two finger joints. The robot and policy profiles declare the translation
(``policy.action_map.*``, ``policy.state_map.*`` in `vla_ros.core.config`); this module applies
it, in both directions (the inverse feeds Real-Time Chunking guidance and training), and says in
one sentence what does not fit. docs/pretrained.md explains the keys with the LIBERO example.

The default, ``action_map.space: native`` and ``state_map.parts: []``, builds no adapter: the
checkpoint's own layout runs exactly as before. Joint-space policies (DROID, ALOHA) are refused by
name: the executor drives an end effector and has nothing to send joint targets to.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vla_ros.core import schema
from vla_ros.core.action_modes import absolute_to_delta
from vla_ros.core.config import ActionMapConfig, ConfigError, StateMapConfig
from vla_ros.core.rotations import quat_conj, quat_mul, quat_to_matrix, quat_to_rotvec, rotvec_to_quat
from vla_ros.core.types import ACTION_DIM, UNKNOWN_GRIPPER_OPENING, ActionMode, EEPose, Observation
from vla_ros.policy.base import PolicyMetadata
from vla_ros.policy.rotation_forms import from_quat, rotvec_nearest, to_quat

STATE_PART_SIZES = {"ee_position": 3, "ee_rotvec": 3, "ee_euler_xyz": 3, "ee_quat_xyzw": 4, "ee_quat_wxyz": 4,
                    "gripper": 1, "gripper_fingers": 2}
_EE_ROTATIONS = {"ee_rotvec": "axis_angle", "ee_euler_xyz": "euler_xyz", "ee_quat_xyzw": "quat_xyzw",
                 "ee_quat_wxyz": "quat_wxyz"}
_KNOWN_JOINT_LAYOUTS = {14: "ALOHA-style bimanual: 2 x (6 joints + gripper)",
                        8: "DROID-style: 7 joint velocities or positions + gripper"}


def _dims(dims) -> str:
    dims = list(dims)
    if dims and dims == list(range(dims[0], dims[-1] + 1)) and len(dims) > 2:
        return f"{dims[0]}-{dims[-1]}"
    return ", ".join(map(str, dims))


def joint_space_message(action_dim: int, where: str = "", declared: bool = False, importing: bool = False) -> str:
    """The refusal of a joint-space action vector: says so, names its dims, and what runs instead.

    `importing`: the sentence for `vla-ros import`, which reads 7-dim actions only."""
    layout = _KNOWN_JOINT_LAYOUTS.get(action_dim)
    what = (f"policy.action_map.space is 'joints': the {action_dim} action dims ({_dims(range(action_dim))}) are "
            "declared joint-space" if declared else
            f"the action has {action_dim} dims ({_dims(range(action_dim))}), not the native 7-dim end-effector layout"
            + (f"; {action_dim} dims is the {layout} layout" if layout else ""))
    instead = ("vla-ros import reads 7-dim actions, whose end-effector layout policy.action_map then maps"
               if importing else "an end-effector checkpoint with another layout runs with policy.action_map.space "
                                 "'ee'")
    return (f"{where + ': ' if where else ''}{what}. Refused: vla_ros commands the end effector (x y z rotation "
            f"gripper) and does not run joint-space policies (DROID, ALOHA); {instead} (docs/pretrained.md)")


def _checked(cfg, prefix: str):
    """Run the section's own cross-field check (a config built in code skips the schema's)."""
    try:
        cfg.check()
    except schema.FieldError as exc:
        raise ConfigError(f"{prefix}{exc.key}: {exc.message}") from None
    return cfg


def is_native(action_map: ActionMapConfig | None) -> bool:
    return action_map is None or action_map.space == "native"


def state_is_native(state_map: StateMapConfig | None) -> bool:
    return state_map is None or not state_map.parts


# -- descriptions (the compatibility report) ------------------------------------------------------

def describe_action_map(cfg: ActionMapConfig | None, action_dim: int = ACTION_DIM,
                        native_mode: str = "absolute") -> str:
    """One line: how the raw action vector becomes the chunk."""
    if is_native(cfg):
        return (f"native {action_dim}-dim layout (x y z rx ry rz gripper 0..1), {native_mode.upper()}")
    if cfg.space == "joints":
        return f"joint-space ({action_dim} dims): refused"
    rot = "" if cfg.rotation.startswith("quat") else f" x{cfg.rotation_scale:g} rad"
    if cfg.mode == "absolute":
        how = "ABSOLUTE targets in robot.base_frame"
    else:
        ref = "the previous step's target" if cfg.delta_reference == "previous" else "the observation's pose"
        how = f"deltas from {ref} in the {cfg.frame} frame, published as DELTA from the observation's pose"
    if cfg.gripper_dim >= 0:
        grip = (f"gripper dim {cfg.gripper_dim}: {cfg.gripper_closed:g} = closed, {cfg.gripper_open:g} = open "
                "-> opening 0..1")
    else:
        grip = "no gripper dim (the measured opening is kept)"
    clip = f", clipped to +-{cfg.clip:g} first" if cfg.clip > 0 else ""
    return (f"{action_dim} dims -> end effector: position dims {_dims(cfg.position_dims)} x{cfg.position_scale:g} m, "
            f"rotation dims {_dims(cfg.rotation_dims)} {cfg.rotation}{rot}{clip}; {how}; {grip}")


def describe_state_map(cfg: StateMapConfig, state_dim: int) -> str:
    sizes = _part_sizes(cfg, state_dim)
    parts = " + ".join(f"{p}({n})" for p, n in sizes)
    grip = ""
    if any(p.startswith("gripper") for p, _ in sizes):
        each = " each finger" if "gripper_fingers" in cfg.parts else ""
        grip = f"; gripper{each} {cfg.gripper_closed:g} closed .. {cfg.gripper_open:g} open"
    branch = "; rotation vector branch nearest the state mean" if cfg.rotation_branch == "stats_mean" else ""
    return f"{sum(n for _, n in sizes)} dims = {parts}{grip}{branch}"


def _part_sizes(cfg: StateMapConfig, state_dim: int) -> list[tuple[str, int]]:
    """(part, size) in order; `joints` takes what the fixed parts leave of `state_dim`."""
    fixed = sum(STATE_PART_SIZES.get(p, 0) for p in cfg.parts)
    return [(p, STATE_PART_SIZES[p] if p != "joints" else state_dim - fixed) for p in cfg.parts]


def state_map_problem(cfg: StateMapConfig, state_dim: int) -> str:
    """'' when the parts fill exactly `state_dim` values, else the sentence that says why not."""
    fixed = sum(STATE_PART_SIZES.get(p, 0) for p in cfg.parts)
    if state_dim == 0:
        return "policy.state_map.parts: this checkpoint takes no state (io.state_source 'none'); remove the state map"
    if "joints" in cfg.parts:
        if state_dim - fixed < 1:
            return (f"policy.state_map.parts: {', '.join(cfg.parts)} leave {state_dim - fixed} values for joints of "
                    f"the checkpoint's {state_dim}-dim state; expected at least 1")
        return ""
    if fixed != state_dim:
        return (f"policy.state_map.parts: {' + '.join(f'{p}({STATE_PART_SIZES[p]})' for p in cfg.parts)} make {fixed} "
                f"values, but the checkpoint's state has {state_dim} dims")
    return ""


def action_map_problem(cfg: ActionMapConfig | None, action_dim: int) -> str:
    """'' when `cfg` can read the checkpoint's `action_dim`-dim actions, else the refusal."""
    if is_native(cfg):
        return "" if action_dim == ACTION_DIM else joint_space_message(action_dim)
    if cfg.space == "joints":
        return joint_space_message(action_dim, declared=True)
    if cfg.raw_dims > action_dim:
        used = sorted(d for d in [*cfg.position_dims, *cfg.rotation_dims, cfg.gripper_dim] if d >= action_dim)
        return (f"policy.action_map: dims {_dims(used)} are beyond the checkpoint's {action_dim}-dim action "
                f"(dims 0-{action_dim - 1})")
    return ""


# -- actions ------------------------------------------------------------------------------------------

class ActionAdapter:
    """A declared end-effector mapping (``action_map.space: ee``) between raw actions and chunk 7-vectors."""

    def __init__(self, cfg: ActionMapConfig, action_dim: int):
        _checked(cfg, "policy.action_map.")
        problem = action_map_problem(cfg, action_dim)
        if problem:
            raise ConfigError(problem)
        if cfg.space != "ee":
            raise ConfigError("policy.action_map.space: the native layout needs no adapter (use build_action_adapter)")
        self.cfg = cfg
        self.action_dim = int(action_dim)
        self._pos = list(cfg.position_dims)
        self._rot = list(cfg.rotation_dims)
        self._quat = cfg.rotation.startswith("quat")

    @property
    def mode(self) -> ActionMode:
        return ActionMode.DELTA if self.cfg.mode == "delta" else ActionMode.ABSOLUTE

    @property
    def needs_reference(self) -> bool:
        return self.mode == ActionMode.DELTA

    def describe(self) -> str:
        return describe_action_map(self.cfg, self.action_dim)

    # raw -> robot
    def gripper_opening(self, raw_gripper: np.ndarray) -> np.ndarray:
        c = self.cfg
        return np.clip((np.asarray(raw_gripper, dtype=np.float64) - c.gripper_closed)
                       / (c.gripper_open - c.gripper_closed),
                       0.0, 1.0)

    def to_chunk(self, raw: np.ndarray, reference: EEPose | None, gripper: float | None = None) -> np.ndarray:
        """[H, action_dim] raw actions (un-normalised) -> [H, 7] chunk actions in `self.mode`.

        reference: the observation's end-effector pose (DELTA: what the offsets are from).
        gripper: the measured opening, used when the mapping has no gripper dim.
        """
        c = self.cfg
        a = np.asarray(raw, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.action_dim:
            raise ValueError(f"actions: expected shape (H, {self.action_dim}), got {a.shape}")
        pos, rot = a[:, self._pos], a[:, self._rot]
        if c.clip > 0:
            pos = np.clip(pos, -c.clip, c.clip)
            rot = rot if self._quat else np.clip(rot, -c.clip, c.clip)
        pos = pos * c.position_scale
        q = to_quat(rot if self._quat else rot * c.rotation_scale, c.rotation)
        if c.gripper_dim >= 0:
            g = self.gripper_opening(a[:, c.gripper_dim])
        else:
            g = np.full(a.shape[0], UNKNOWN_GRIPPER_OPENING if gripper is None else float(gripper))
        if c.mode == "absolute":
            return np.concatenate([pos, quat_to_rotvec(q), g[:, None]], axis=1)
        if reference is None:
            raise ValueError("observation.ee_pose: this policy's actions are end-effector deltas "
                             "(policy.action_map.mode 'delta'), but the pose is missing")
        if c.delta_reference == "observation" and c.frame == "base":  # exactly the DELTA convention already
            return np.concatenate([pos, quat_to_rotvec(q), g[:, None]], axis=1)
        targets = np.empty((a.shape[0], ACTION_DIM))
        ref_p, ref_q = reference.position, reference.orientation
        for i in range(a.shape[0]):
            if c.frame == "base":
                tp, tq = ref_p + pos[i], quat_mul(q[i], ref_q)
            else:
                tp, tq = ref_p + quat_to_matrix(ref_q) @ pos[i], quat_mul(ref_q, q[i])
            targets[i, :3], targets[i, 3:6] = tp, quat_to_rotvec(tq)
            if c.delta_reference == "previous":
                ref_p, ref_q = tp, tq
        targets[:, 6] = g
        return absolute_to_delta(targets, reference)

    # robot -> raw (the inverse: RTC guidance targets, training data)
    def from_absolute(self, actions: np.ndarray, reference: EEPose | None) -> np.ndarray:
        """[H, 7] ABSOLUTE targets -> [H, action_dim] raw actions (unmapped dims 0; clipping is not undone)."""
        c = self.cfg
        a = np.asarray(actions, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != ACTION_DIM:
            raise ValueError(f"actions: expected shape (H, {ACTION_DIM}), got {a.shape}")
        tq = rotvec_to_quat(a[:, 3:6])
        if c.mode == "absolute":
            d_pos, d_q = a[:, :3], tq
        else:
            if reference is None:
                raise ValueError("observation.ee_pose: needed to express actions as deltas, but it is missing")
            d_pos, d_q = np.empty((a.shape[0], 3)), np.empty((a.shape[0], 4))
            ref_p, ref_q = reference.position, reference.orientation
            for i in range(a.shape[0]):
                if c.frame == "base":
                    d_pos[i], d_q[i] = a[i, :3] - ref_p, quat_mul(tq[i], quat_conj(ref_q))
                else:
                    d_pos[i] = quat_to_matrix(ref_q).T @ (a[i, :3] - ref_p)
                    d_q[i] = quat_mul(quat_conj(ref_q), tq[i])
                if c.delta_reference == "previous":
                    ref_p, ref_q = a[i, :3], tq[i]
        raw = np.zeros((a.shape[0], self.action_dim))
        raw[:, self._pos] = d_pos / c.position_scale
        rot = from_quat(d_q, c.rotation)
        raw[:, self._rot] = rot if self._quat else rot / c.rotation_scale
        if c.gripper_dim >= 0:
            raw[:, c.gripper_dim] = c.gripper_closed + a[:, 6] * (c.gripper_open - c.gripper_closed)
        return raw


def build_action_adapter(cfg: ActionMapConfig | None, action_dim: int) -> ActionAdapter | None:
    """None for the native layout (after refusing a non-7-dim native action), else the adapter."""
    problem = action_map_problem(cfg, action_dim)
    if problem:
        raise ConfigError(problem)
    return None if is_native(cfg) else ActionAdapter(cfg, action_dim)


# -- state ----------------------------------------------------------------------------------------------

class StateAdapter:
    """A declared state layout (``state_map.parts``): an Observation -> the policy's raw state vector."""

    def __init__(self, cfg: StateMapConfig, state_dim: int, state_mean: np.ndarray | None = None):
        _checked(cfg, "policy.state_map.")
        problem = state_map_problem(cfg, state_dim)
        if problem:
            raise ConfigError(problem)
        self.cfg = cfg
        self.dim = int(state_dim)
        self.parts = _part_sizes(cfg, state_dim)
        self._near: np.ndarray | None = None
        if "ee_rotvec" in cfg.parts and cfg.rotation_branch == "stats_mean":
            if state_mean is None:
                raise ConfigError("policy.state_map.rotation_branch: 'stats_mean' needs the checkpoint's state norm "
                                  "stats")
            offset = sum(n for p, n in self.parts[: cfg.parts.index("ee_rotvec")])
            self._near = np.asarray(state_mean, dtype=np.float64)[offset: offset + 3]

    @property
    def needs_ee_pose(self) -> bool:
        return any(p.startswith("ee_") for p, _ in self.parts)

    @property
    def needs_gripper(self) -> bool:
        return any(p.startswith("gripper") for p, _ in self.parts)

    @property
    def n_joints(self) -> int:
        return dict(self.parts).get("joints", 0)

    def describe(self) -> str:
        return describe_state_map(self.cfg, self.dim)

    def __call__(self, obs: Observation) -> np.ndarray:
        """State vector [dim] float64; a missing input is a ValueError naming it (``observation.<field>``)."""
        c = self.cfg
        if self.needs_ee_pose and obs.ee_pose is None:
            raise ValueError(f"observation.ee_pose: this policy's state ({', '.join(c.parts)}) needs the end-effector "
                             "pose, but it is missing")
        if self.needs_gripper and obs.gripper is None:
            raise ValueError("observation.gripper: this policy's state includes the gripper (policy.state_map.parts), "
                             "but no opening was measured (robot.gripper_joint)")
        out = []
        for part, n in self.parts:
            if part == "ee_position":
                out.append(obs.ee_pose.position)
            elif part in _EE_ROTATIONS:
                v = from_quat(obs.ee_pose.orientation, _EE_ROTATIONS[part])
                if part == "ee_rotvec" and self._near is not None:
                    v = rotvec_nearest(v, self._near)
                out.append(v)
            elif part in ("gripper", "gripper_fingers"):
                w = c.gripper_closed + float(obs.gripper) * (c.gripper_open - c.gripper_closed)
                out.append([w] if part == "gripper" else [w, -w])
            else:  # joints
                joints = obs.joint_positions
                if joints is None:
                    raise ValueError("observation.joint_positions: this policy's state includes the joints, but they "
                                     "are missing")
                if joints.shape[0] != n:
                    raise ValueError(f"observation.joint_positions: this policy's state takes {n} joints "
                                     f"(policy.state_map.parts), got {joints.shape[0]}")
                out.append(joints)
        return np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in out])


def build_state_adapter(cfg: StateMapConfig | None, state_dim: int, state_mean: np.ndarray | None = None
                        ) -> StateAdapter | None:
    return None if state_is_native(cfg) else StateAdapter(cfg, state_dim, state_mean)


# -- metadata ----------------------------------------------------------------------------------------

def adapter_settings(action_map: ActionMapConfig | None, state_map: StateMapConfig | None) -> dict:
    """The mapping as plain data (stored in PolicyMetadata.extra['adapters'], compared by the compatibility check)."""
    return {"action_map": schema.to_dict(action_map or ActionMapConfig()),
            "state_map": schema.to_dict(state_map or StateMapConfig())}


def mapped_metadata(meta: PolicyMetadata, action_map: ActionMapConfig | None, state_map: StateMapConfig | None,
                    *, applied: bool) -> PolicyMetadata:
    """`meta` (a checkpoint's native metadata) as the robot sees it through the mapping; idempotent.

    Sets the action mode and the state's source (ee_pose when a part reads the end-effector pose,
    joints when it reads joints), and records the mapping in ``extra``: ``adapters`` (the
    settings), ``action_map`` / ``state_map`` (one-line descriptions), ``state_parts``,
    ``adapters_applied`` (True on a loaded policy that applies them, False when only described).
    """
    extra = dict(meta.extra)
    action_dim = int(extra.get("action_dim", ACTION_DIM))
    native_mode = str(extra.get("native_action_mode", meta.action_mode.name.lower()))
    extra.setdefault("native_action_mode", native_mode)
    extra.setdefault("native_state_source", meta.state_source)
    changes: dict = {}
    if not is_native(action_map) and action_map.space == "ee":
        changes["action_mode"] = ActionMode.DELTA if action_map.mode == "delta" else ActionMode.ABSOLUTE
    else:
        changes["action_mode"] = ActionMode.parse(native_mode)
    extra["action_map"] = describe_action_map(action_map, action_dim, native_mode)
    if not state_is_native(state_map) and not state_map_problem(state_map, meta.state_dim):
        changes["state_source"] = "joints" if "joints" in state_map.parts and not any(
            p.startswith("ee_") for p in state_map.parts) else "ee_pose"
        extra["state_map"] = describe_state_map(state_map, meta.state_dim)
        extra["state_parts"] = [list(p) for p in _part_sizes(state_map, meta.state_dim)]
    else:
        changes["state_source"] = extra["native_state_source"]
        extra.pop("state_parts", None)
        extra["state_map"] = "native"
    extra["adapters"] = adapter_settings(action_map, state_map)
    extra["adapters_applied"] = bool(applied)
    return dataclasses.replace(meta, extra=extra, **changes)
