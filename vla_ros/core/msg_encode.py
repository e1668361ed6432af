"""Build ROS messages from numpy / vla_ros types without importing ROS: the mirror of `msg_decode`.

The nodes publish rclpy messages and the replay writes `rosbags` messages; both are built here, by
one `MessageEncoder` over the message classes it is given (``"pkg/msg/Name" -> class``: a rosbags
typestore's ``types``, or `vla_ros.ros.conversions.rclpy_type` on the robot). So a chunk, a status
or an image has one wire layout wherever it is written, and `msg_decode` reads every one of them
back. The two message flavours differ only in their primitive sequences (rosbags wants numpy
arrays, rclpy wants ``array.array``/``bytes``) and in rosbags classes having no field defaults, so
every constructor here passes every field.
"""

from __future__ import annotations

import array
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vla_ros.core.action_modes import absolute_actions
from vla_ros.core.executor.command import ExecutorStatusData
from vla_ros.core.executor.safety import LIMIT_NAMES
from vla_ros.core.msg_decode import RAW_ENCODINGS, SUPPORTED_ENCODINGS, sec_to_sec_nanosec
from vla_ros.core.rotations import rotvec_to_quat
from vla_ros.core.types import ActionChunk, ActionMode

IDENTITY_QUAT = (0.0, 0.0, 0.0, 1.0)
BUILT_FORMATS = ("jpeg", "png")  # what compressed_image writes


class MessageEncoder:
    """Builds messages of the classes that `types` resolves (a mapping or a ``name -> class`` function).

    Whether they are rosbags classes (numpy sequences) or rclpy ones is read off the classes.
    """

    def __init__(self, types: Mapping[str, type] | Callable[[str], type]):
        self._resolve = types.__getitem__ if isinstance(types, Mapping) else types
        self._classes: dict[str, type] = {}
        self.numpy_sequences = hasattr(self.cls("std_msgs/msg/Header"), "__msgtype__")

    def cls(self, name: str) -> type:
        """The message class called `name` ("geometry_msgs/msg/Pose")."""
        found = self._classes.get(name)
        if found is None:
            found = self._classes[name] = self._resolve(name)
        return found

    # ---------------------------------------------------------------- primitive sequences
    def float64s(self, values: Any) -> Any:
        a = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        if self.numpy_sequences:
            return a
        out = array.array("d")
        out.frombytes(a.tobytes())
        return out

    def uint64s(self, values: Sequence[int]) -> Any:
        a = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
        return a if self.numpy_sequences else [int(v) for v in a]

    def uint8s(self, data: np.ndarray) -> Any:
        a = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        return a if self.numpy_sequences else a.tobytes()

    # ---------------------------------------------------------------- standard messages
    def time(self, t: float) -> Any:
        sec, nanosec = sec_to_sec_nanosec(t)
        return self.cls("builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)

    def header(self, t: float, frame_id: str = "") -> Any:
        return self.cls("std_msgs/msg/Header")(stamp=self.time(t), frame_id=str(frame_id))

    def pose(self, position: Sequence[float], quaternion: Sequence[float]) -> Any:
        p, q = position, quaternion
        return self.cls("geometry_msgs/msg/Pose")(
            position=self.cls("geometry_msgs/msg/Point")(x=float(p[0]), y=float(p[1]), z=float(p[2])),
            orientation=self.cls("geometry_msgs/msg/Quaternion")(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                                   w=float(q[3])),
        )

    def poses(self, positions: np.ndarray, quaternions: np.ndarray) -> list[Any]:
        return [self.pose(p, q) for p, q in zip(positions.tolist(), quaternions.tolist())]

    def pose_stamped(self, t: float, frame_id: str, position: Sequence[float], quaternion: Sequence[float], *,
                     header: Any = None) -> Any:
        """`header`: one already built for (t, frame_id), shared by the messages of one control tick."""
        return self.cls("geometry_msgs/msg/PoseStamped")(header=header or self.header(t, frame_id),
                                                         pose=self.pose(position, quaternion))

    def pose_array(self, t: float, frame_id: str, positions: np.ndarray, quaternions: np.ndarray) -> Any:
        return self.cls("geometry_msgs/msg/PoseArray")(
            header=self.header(t, frame_id), poses=self.poses(np.asarray(positions), np.asarray(quaternions)))

    def twist_stamped(self, t: float, frame_id: str, linear: Sequence[float], angular: Sequence[float], *,
                      header: Any = None) -> Any:
        vec = self.cls("geometry_msgs/msg/Vector3")
        twist = self.cls("geometry_msgs/msg/Twist")(
            linear=vec(x=float(linear[0]), y=float(linear[1]), z=float(linear[2])),
            angular=vec(x=float(angular[0]), y=float(angular[1]), z=float(angular[2])))
        return self.cls("geometry_msgs/msg/TwistStamped")(header=header or self.header(t, frame_id), twist=twist)

    def string(self, text: str) -> Any:
        return self.cls("std_msgs/msg/String")(data=str(text))

    def float64(self, value: float) -> Any:
        return self.cls("std_msgs/msg/Float64")(data=float(value))

    def clock(self, t: float) -> Any:
        return self.cls("rosgraph_msgs/msg/Clock")(clock=self.time(t))

    def joint_state(self, t: float, names: Sequence[str], positions: Sequence[float], frame_id: str = "", *,
                    header: Any = None) -> Any:
        return self.cls("sensor_msgs/msg/JointState")(
            header=header or self.header(t, frame_id), name=[str(n) for n in names], position=self.float64s(positions),
            velocity=self.float64s([]), effort=self.float64s([]))

    # ---------------------------------------------------------------- images
    def image(self, rgb: np.ndarray, t: float, frame_id: str = "", encoding: str = "rgb8",
              row_padding: int = 0) -> Any:
        """HxWx3 RGB uint8 -> sensor_msgs/Image in `encoding` (one of msg_decode.SUPPORTED_ENCODINGS),
        rows padded by `row_padding` bytes (``step`` > width * channels, as some drivers send)."""
        px = _pixels_in(np.asarray(rgb, dtype=np.uint8), encoding)
        h, w, c = px.shape
        rows = np.ascontiguousarray(px).reshape(h, w * c)
        if row_padding:
            rows = np.concatenate([rows, np.zeros((h, int(row_padding)), np.uint8)], axis=1)
        return self.cls("sensor_msgs/msg/Image")(
            header=self.header(t, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
            step=w * c + int(row_padding), data=self.uint8s(rows))

    def compressed_image(self, rgb: np.ndarray, t: float, frame_id: str = "", fmt: str = "jpeg") -> Any:
        """HxWx3 RGB uint8 -> sensor_msgs/CompressedImage (`fmt` jpeg or png)."""
        import cv2  # only needed for compressed transport

        if fmt not in BUILT_FORMATS:
            raise ValueError(f"format: cannot build {fmt!r}; expected one of {', '.join(BUILT_FORMATS)}")
        bgr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[..., ::-1])
        ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr)
        if not ok:
            raise ValueError(f"image: OpenCV cannot encode a {bgr.shape} image as {fmt}")
        return self.cls("sensor_msgs/msg/CompressedImage")(header=self.header(t, frame_id), format=fmt,
                                                           data=self.uint8s(buf))

    # ---------------------------------------------------------------- vla_ros messages
    def action_chunk(self, chunk: ActionChunk) -> Any:
        """ActionChunk -> vla_ros/ActionChunk (rotation vectors as quaternions, stamped with the
        observation; reference_pose set in DELTA mode, identity otherwise)."""
        quats = rotvec_to_quat(chunk.actions[:, 3:6])
        ref = chunk.reference_pose if chunk.mode == ActionMode.DELTA else None
        return self.cls("vla_ros/msg/ActionChunk")(
            header=self.header(chunk.stamp, chunk.frame_id),
            seq=int(chunk.seq),
            policy_id=str(chunk.policy_id),
            checkpoint_id=str(chunk.checkpoint_id),
            action_mode=int(ActionMode(chunk.mode)),
            dt=float(chunk.dt),
            poses=self.poses(chunk.actions[:, :3], quats),
            gripper=self.float64s(chunk.actions[:, 6]),
            reference_pose=self.pose(ref.position, ref.orientation) if ref is not None else
            self.pose((0.0, 0.0, 0.0), IDENTITY_QUAT),
            inference_latency=float(chunk.inference_latency),
            observation_age=float(chunk.observation_age),
        )

    def chunk_pose_array(self, chunk: ActionChunk, t: float | None = None) -> Any:
        """The chunk's poses as absolute targets (DELTA composed with its reference pose) in a
        geometry_msgs/PoseArray stamped `t` (default: the chunk's stamp), for RViz and the replay bag."""
        acts = absolute_actions(chunk)
        return self.pose_array(chunk.stamp if t is None else t, chunk.frame_id, acts[:, :3],
                               rotvec_to_quat(acts[:, 3:6]))

    def executor_status(self, st: ExecutorStatusData, max_plan_steps: int | None = None) -> Any:
        """ExecutorStatusData -> vla_ros/ExecutorStatus; the plan cut to its first `max_plan_steps` steps.

        The cut bounds the work per status (a bridge can stretch a plan beyond one chunk); the policy
        side only uses the plan's first horizon of steps.
        """
        plan = st.plan
        steps = plan.steps if max_plan_steps is None else min(plan.steps, max_plan_steps)
        actions = plan.actions[:steps]
        return self.cls("vla_ros/msg/ExecutorStatus")(
            header=self.header(st.stamp, st.frame_id),
            state=int(st.state),
            state_name=str(st.state_name),
            dry_run=bool(st.dry_run),
            chunk_seq=int(st.chunk_seq),
            policy_id=str(st.policy_id),
            remaining_time=float(st.remaining_time),
            remaining_steps=int(st.remaining_steps),
            chunks_received=int(st.chunks_received),
            chunks_rejected=int(st.chunks_rejected),
            chunks_stale=int(st.chunks_stale),
            skipped_steps=int(st.skipped_steps),
            last_chunk_delay=float(st.last_chunk_delay),
            mean_chunk_delay=float(st.mean_chunk_delay),
            clamps=int(st.clamps),
            holds=int(st.holds),
            bridges=int(st.bridges),
            limit_names=list(LIMIT_NAMES),
            limit_counts=self.uint64s([int(st.limit_counts[n]) for n in LIMIT_NAMES]),
            message=str(st.message),
            loop_period_mean=float(st.loop_period_mean),
            loop_period_p99=float(st.loop_period_p99),
            loop_period_max=float(st.loop_period_max),
            plan_start=self.time(plan.start),
            plan_dt=float(plan.dt),
            committed_steps=int(min(plan.committed_steps, steps)),
            plan_poses=self.poses(actions[:, :3], rotvec_to_quat(actions[:, 3:6])) if steps else [],
            plan_gripper=self.float64s(actions[:, 6]),
        )


def _pixels_in(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """HxWx3 RGB -> HxWxC pixels of `encoding` (the inverse of msg_decode's conversion to RGB)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image: expected HxWx3 RGB pixels, got shape {rgb.shape}")
    if encoding == "rgb8":
        return rgb
    if encoding in ("bgr8", "8UC3"):
        return rgb[..., ::-1]
    if encoding in ("rgba8", "bgra8"):
        base = rgb if encoding == "rgba8" else rgb[..., ::-1]
        return np.concatenate([base, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    if RAW_ENCODINGS.get(encoding) == 1:  # mono8 / 8UC1: the first channel (a grey image round-trips)
        return rgb[..., :1]
    raise ValueError(f"encoding: cannot build {encoding!r}; expected one of {', '.join(SUPPORTED_ENCODINGS)}")
