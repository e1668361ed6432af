"""Chunks given in another frame than the command frame, brought into it through the transform buffer.

A policy may predict in a camera or table frame; the arm is commanded in ``robot.base_frame``. The
executor asks its `TransformBuffer` (fed from /tf and /tf_static on the robot, tf2's semantics) for
T_command_chunk at the chunk's stamp and moves every target with it. A chunk whose frame has no
known transform is refused by name (never executed in the wrong frame).

DELTA chunks are made absolute first (offsets from their reference pose, in their own frame), so
the transformed chunk is ABSOLUTE in the command frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vla_ros.core.action_modes import absolute_poses
from vla_ros.core.rotations import quat_mul, quat_to_rotvec
from vla_ros.core.tf_buffer import TransformBuffer
from vla_ros.core.types import ActionChunk, ActionMode


def chunk_in_frame(chunk: ActionChunk, frame: str, transforms: TransformBuffer) -> ActionChunk:
    """`chunk` expressed in `frame` (TransformError, naming the missing link, if no transform is known)."""
    tf = transforms.lookup_transform(frame, chunk.frame_id, chunk.stamp)
    pos, quat, grip = absolute_poses(chunk)
    new_pos = tf.translation + tf.apply_rotation(pos)
    new_rot = quat_to_rotvec(quat_mul(tf.rotation, quat))
    actions = np.concatenate([new_pos, new_rot, grip[:, None]], axis=1)
    return dataclasses.replace(chunk, actions=actions, mode=ActionMode.ABSOLUTE, frame_id=frame, reference_pose=None)
