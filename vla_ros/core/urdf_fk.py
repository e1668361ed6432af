"""End-effector pose from joint positions by forward kinematics of the robot's URDF.

Some recordings hold joint states and a URDF (the latched ``/robot_description``, or a file the
robot profile names in ``robot.urdf``) but no pose at all. Pinocchio (PyPI ``pin``, a well-kept
rigid-body library) parses the URDF and computes the placement of ``robot.ee_frame`` relative to
``robot.base_frame``; this module only maps joint names to its configuration vector.

    fk = UrdfKinematics(urdf_xml, "base_link", "tool0")
    position, quaternion = fk.pose({"j1": 0.3, "j2": -0.2})     # tool0 in base_link, (x, y, z, w)

``pin`` is optional (large): without it, asking for FK is one sentence saying what to install.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from vla_ros.core.msg_decode import MessageError
from vla_ros.core.schema import ConfigError

PIN_REQUIREMENT = "pin==4.1.0"


class UrdfKinematics:
    """Forward kinematics base_frame -> ee_frame of one URDF (see the module docstring)."""

    def __init__(self, urdf_xml: str, base_frame: str, ee_frame: str):
        try:
            import pinocchio
        except ImportError:
            raise ConfigError(
                f"robot.ee_pose_source: fk needs the Pinocchio package; pip install {PIN_REQUIREMENT}") from None
        self._pin = pinocchio
        try:
            self.model = pinocchio.buildModelFromXML(urdf_xml)
        except Exception as exc:  # noqa: BLE001 - whatever the URDF parser says, as one sentence
            why = str(exc).strip() or type(exc).__name__
            raise ValueError(f"robot.urdf: the URDF cannot be parsed: {why}") from None
        self.data = self.model.createData()
        for frame, key in ((base_frame, "robot.base_frame"), (ee_frame, "robot.ee_frame")):
            if not self.model.existFrame(frame):
                links = sorted({f.name for f in self.model.frames if f.type == pinocchio.FrameType.BODY})
                raise ValueError(f"{key}: {frame!r} is not a link of the URDF (links: {', '.join(links)})")
        self.base_id = self.model.getFrameId(base_frame)
        self.ee_id = self.model.getFrameId(ee_frame)
        # (name, index in q, nq): revolute / prismatic nq = 1; continuous joints nq = 2 (cos, sin)
        m = self.model
        self.joints = [(m.names[j], m.idx_qs[j], m.nqs[j]) for j in range(1, m.njoints)]
        self.joint_names = tuple(name for name, _, _ in self.joints)

    def pose(self, positions: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(position, quaternion x, y, z, w) of ee_frame in base_frame; MessageError naming missing joints."""
        missing = [n for n in self.joint_names if n not in positions]
        if missing:
            raise MessageError(f"joint_states: name: joint(s) {', '.join(missing)} of the URDF missing; "
                               "forward kinematics needs every moving joint")
        q = np.zeros(self.model.nq)
        for name, idx, nq in self.joints:
            v = float(positions[name])
            if nq == 1:
                q[idx] = v
            elif nq == 2:
                q[idx], q[idx + 1] = math.cos(v), math.sin(v)
        pin = self._pin
        pin.framesForwardKinematics(self.model, self.data, q)
        rel = self.data.oMf[self.base_id].actInv(self.data.oMf[self.ee_id])
        quat = pin.Quaternion(rel.rotation).coeffs()  # (x, y, z, w)
        return np.array(rel.translation, np.float64), np.array(quat, np.float64)
