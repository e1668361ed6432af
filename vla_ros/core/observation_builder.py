"""Validate robot input messages and assemble synchronized `Observation`s, ROS-free.

The policy node calls it from its subscription callbacks, the rosbag replay from bag messages on
a simulated clock; both pass ``now`` (ROS time, float seconds), nothing here reads a clock.
Messages are duck-typed (rclpy or `rosbags` classes), decoded with `vla_ros.core.msg_decode`.

Why it is split the way it is:
- Cheap checks run on *every* message as it arrives (stamp set and increasing, encoding and sizes
  consistent, joints present and finite, pose frame), so a bad input is reported at once, names
  its topic, and never enters the synchronizer.
- Pixels are decoded only for the observation that is actually given to the policy (`take`), in
  the caller's thread (the node's inference worker): at 30 Hz x N cameras and a few Hz of
  inference, most frames are superseded and decoding them would be wasted CPU on the ROS thread.
  A compressed frame that turns out undecodable is rejected at `take`, with the same kind of error.
  Raw rgb8 frames are not even copied: the observation's image shares the message's buffer, so a
  policy must treat observation images as read-only (as it should any Observation).
- Nothing half-valid reaches the policy: `take` returns a fully built `ObservationSample` or None,
  and every refusal is counted (``rejected``: malformed input; ``dropped``: valid but too old, or
  superseded by a newer observation before inference) and reported through ``on_problem``.
- Inputs are bounded before they cost anything: an image larger than ``sync.max_image_pixels``
  (raw: height x width; compressed: the size in its PNG/JPEG header, read without decoding) and an
  instruction longer than ``policy.max_instruction_length`` are refused by name. Decoding takes
  time, so `take` checks the age again afterwards (with the caller's clock).
- A message stamped further ahead of ``now`` than ``sync.slop`` is refused: accepted, it would
  block its input (stamps must not go backwards) until the clock caught up with it.
- With a ``safety`` section, the EE pose goes through the executor's `PoseMonitor`: a pose outside
  the workspace plus margin (wrong frame, millimetres) or one that jumped faster than physically
  possible is refused as an input problem, so no observation (and no chunk) is built from it.

Usage (replay)::

    spec = ObservationSpec.from_config(cfg.robot, policy.metadata)
    builder = ObservationBuilder.from_config(spec, cfg, on_problem=print)
    builder.add_image("primary", image_msg, now)      # -> InputProblem | None
    builder.add_joint_state(joint_state_msg, now)
    builder.add_ee_pose(pose_stamped_msg, now)
    builder.set_instruction("pick up the red cube")
    sample = builder.take(now)                        # newest synchronized observation, or None
    chunk = policy.infer(sample.observation)
"""

from __future__ import annotations

import math
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from vla_ros.core import msg_decode
from vla_ros.core.config import ConfigError, RobotConfig, SafetyConfig, VlaConfig
from vla_ros.core.executor.plausibility import PoseMonitor
from vla_ros.core.msg_decode import MessageError, Problem
from vla_ros.core.sync import ApproximateTimeSynchronizer, StampError, SyncedSet
from vla_ros.core.types import ActionMode, Observation

JOINT_STATE = "joint_state"
EE_POSE = "ee_pose"
CLOCK_JUMP = 0.1  # [s] `now` going back by more than this = the clock was reset (sim restart, bag loop)

# Problem codes (InputProblem.code): msg_decode.Problem, a str enum (its values compare equal to these names)
CODES = tuple(p.value for p in Problem)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the image size); C4 (DHT), C8 (JPG), CC (DAC) are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def camera_input(name: str) -> str:
    """Synchronizer input name of camera `name`."""
    return f"camera:{name}"


@dataclass(frozen=True)
class CameraInput:
    name: str
    topic: str

    @property
    def compressed(self) -> bool:
        """A topic ending in /compressed carries sensor_msgs/CompressedImage."""
        return self.topic.rstrip("/").endswith("/compressed")


@dataclass(frozen=True)
class ObservationSpec:
    """Which inputs make up one observation, and how to read them (from the robot profile + policy).

    ``cameras[0]`` is the pivot: its header stamp is the observation's stamp. An empty
    ``joint_state_topic`` / ``ee_pose_topic`` leaves that input out of the synchronisation.
    ``joint_names`` empty = take the order of the first JointState (the gripper joint excluded).
    """

    cameras: tuple[CameraInput, ...]
    joint_state_topic: str = ""
    joint_names: tuple[str, ...] = ()
    gripper_joint: str = ""
    gripper_closed: float = 0.0
    gripper_open: float = 1.0
    ee_pose_topic: str = ""
    base_frame: str = ""
    instruction_topic: str = ""

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ConfigError("robot.camera_names: expected at least one camera in the observation")
        if self.gripper_joint and self.gripper_open == self.gripper_closed:
            raise ConfigError(
                f"robot.gripper_open: must differ from robot.gripper_closed (both {self.gripper_open}) to normalise "
                "the gripper"
            )

    @classmethod
    def from_config(cls, robot: RobotConfig, metadata: Any | None = None) -> "ObservationSpec":
        """The inputs `metadata` (a PolicyMetadata, or None = everything the profile has) needs.

        Cameras: the policy's cameras (in robot profile order; all of the profile's if the policy
        names none). Joint states: whenever the profile has a topic. EE pose: when the policy's
        state is the EE pose or it predicts DELTA actions (or no metadata and a topic is set).
        """
        topics = dict(zip(robot.camera_names, robot.camera_topics))
        wanted = tuple(getattr(metadata, "cameras", ()) or ())
        if wanted:
            missing = [c for c in wanted if c not in topics]
            if missing:
                raise ConfigError(
                    f"robot.camera_names: the policy needs camera(s) {', '.join(missing)}, the robot profile "
                    f"{robot.name!r} has {', '.join(robot.camera_names)}"
                )
            names = [c for c in robot.camera_names if c in wanted]
        else:
            names = list(robot.camera_names)
        state = getattr(metadata, "state_source", None)
        delta = metadata is not None and ActionMode.parse(metadata.action_mode) == ActionMode.DELTA
        needs_ee = metadata is None or state == "ee_pose" or delta
        if needs_ee and not robot.ee_pose_topic and metadata is not None:
            why = "predicts DELTA actions" if delta else "uses the end-effector pose as state"
            raise ConfigError(f"robot.ee_pose_topic: the policy {why}, but the robot profile has no EE pose topic")
        if state == "joints" and not robot.joint_state_topic:
            raise ConfigError("robot.joint_state_topic: the policy uses joint positions as state, but no topic is set")
        joint_names = tuple(robot.joint_names)
        if not joint_names and state == "joints":
            joint_names = tuple(getattr(metadata, "joint_names", ()) or ())
        return cls(
            cameras=tuple(CameraInput(n, topics[n]) for n in names),
            joint_state_topic=robot.joint_state_topic,
            joint_names=joint_names,
            gripper_joint=robot.gripper_joint,
            gripper_closed=robot.gripper_closed,
            gripper_open=robot.gripper_open,
            ee_pose_topic=robot.ee_pose_topic if needs_ee else "",
            base_frame=robot.base_frame,
            instruction_topic=robot.instruction_topic,
        )

    @property
    def pivot(self) -> CameraInput:
        return self.cameras[0]

    def inputs(self) -> dict[str, str]:
        """Synchronizer input name -> topic, pivot first."""
        out = {camera_input(c.name): c.topic for c in self.cameras}
        if self.joint_state_topic:
            out[JOINT_STATE] = self.joint_state_topic
        if self.ee_pose_topic:
            out[EE_POSE] = self.ee_pose_topic
        return out


@dataclass(frozen=True)
class InputProblem:
    """Why an input or an observation was not used. ``message`` names the topic and the expected form.

    ``counter`` is the PolicyStatus counter it went to: "rejected" (malformed input), "dropped"
    (valid but too old) or "none" (informational, e.g. a clock reset).
    """

    topic: str
    code: str
    message: str
    counter: str = "rejected"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ObservationSample:
    """An observation ready for the policy plus where it came from.

    ``stamp_ns`` is the pivot's exact header stamp (sec * 1e9 + nanosec), so a chunk can carry it
    bit for bit; ``input_stamps`` maps each input's topic to the stamp used; ``age`` is
    ``now - oldest input stamp`` when it was taken.
    """

    observation: Observation
    stamp_ns: int
    input_stamps: Mapping[str, float]
    age: float


@dataclass
class BuilderStats:
    received: int = 0
    rejected: int = 0
    rejected_by_topic: Counter = field(default_factory=Counter)
    synchronized: int = 0
    dropped_stale: int = 0
    dropped_superseded: int = 0
    taken: int = 0
    clock_resets: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_stale + self.dropped_superseded


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def compressed_image_size(data: Any) -> tuple[int, int] | None:
    """(height, width) from a PNG or JPEG header without decoding any pixel; None if the bytes
    are neither (or the header is cut short). Lets a 20000 x 20000 PNG of a few hundred kB be
    refused before it is inflated into gigabytes."""
    try:
        mv = memoryview(data).cast("B")
    except TypeError:
        mv = memoryview(np.asarray(data, dtype=np.uint8).reshape(-1))
    n = len(mv)
    if n >= 24 and bytes(mv[:8]) == _PNG_SIGNATURE and bytes(mv[12:16]) == b"IHDR":
        width, height = struct.unpack(">II", bytes(mv[16:24]))
        return int(height), int(width)
    if n < 4 or mv[0] != 0xFF or mv[1] != 0xD8:
        return None
    i = 2
    while i + 3 < n:
        if mv[i] != 0xFF:
            return None  # not at a marker: corrupt stream
        marker = mv[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        length = (mv[i + 2] << 8) | mv[i + 3]
        if marker in _JPEG_SOF:
            if i + 9 > n:
                return None
            height = (mv[i + 5] << 8) | mv[i + 6]
            width = (mv[i + 7] << 8) | mv[i + 8]
            return int(height), int(width)
        i += 2 + length
    return None


class ObservationBuilder:
    """Validation, synchronisation and assembly of observations (see the module docstring).

    Thread-safe: ``add_*``/``set_instruction`` may run on one thread (ROS callbacks) while
    ``take`` runs on another (the inference worker).
    """

    def __init__(
        self,
        spec: ObservationSpec,
        *,
        slop: float,
        queue_size: int,
        max_age: float,
        eager: bool = False,
        instruction: str = "",
        allow_empty_instruction: bool = False,
        on_problem: Callable[[InputProblem], None] | None = None,
        max_image_pixels: int | None = None,
        max_instruction_length: int | None = None,
        safety: SafetyConfig | None = None,
    ):
        self.spec = spec
        self.max_age = float(max_age)
        self.slop = float(slop)
        self.max_image_pixels = None if max_image_pixels is None else int(max_image_pixels)
        self.max_instruction_length = None if max_instruction_length is None else int(max_instruction_length)
        self.safety = safety
        # Judges the EE pose like the executor does (None: no safety section given, not judged).
        self.pose_monitor = PoseMonitor(safety) if safety is not None else None
        self._instruction_refused = ""  # why the last instruction was refused ("" = it was not)
        self.allow_empty_instruction = bool(allow_empty_instruction)
        self.on_problem = on_problem
        self.topics = spec.inputs()
        self.sync = ApproximateTimeSynchronizer(
            list(self.topics), slop=slop, queue_size=queue_size, pivot=camera_input(spec.pivot.name),
            labels=self.topics,
            eager=eager,
        )
        self.stats = BuilderStats()
        # While False (node inactive), observations replaced before anyone asked for one are not
        # counted as dropped: nobody was going to use them.
        self.counting = True
        self._lock = threading.Lock()
        self._pending: SyncedSet | None = None
        self._instruction = ""
        self._last_now: float | None = None
        self._joint_names: tuple[str, ...] | None = tuple(spec.joint_names) or None
        self.last_problem: InputProblem | None = None
        self.last_problems: dict[str, InputProblem] = {}  # topic -> most recent problem there
        self.set_instruction(instruction)

    @classmethod
    def from_config(cls, spec: ObservationSpec, cfg: VlaConfig, **kwargs: Any) -> "ObservationBuilder":
        """Builder with sync.*, policy.instruction / allow_empty_instruction / max_instruction_length
        and the safety section (EE pose plausibility) from `cfg`."""
        kwargs.setdefault("safety", cfg.safety)
        return cls(
            spec,
            slop=cfg.sync.slop,
            queue_size=cfg.sync.queue_size,
            max_age=cfg.sync.max_age,
            eager=cfg.sync.eager,
            instruction=cfg.policy.instruction,
            allow_empty_instruction=cfg.policy.allow_empty_instruction,
            max_image_pixels=cfg.sync.max_image_pixels,
            max_instruction_length=cfg.policy.max_instruction_length,
            **kwargs,
        )

    # ------------------------------------------------------------------ problems
    def _problem(self, topic: str, code: str, message: str, counter: str = "rejected") -> InputProblem:
        p = InputProblem(topic, code, message, counter)
        with self._lock:
            if counter == "rejected":
                self.stats.rejected += 1
                self.stats.rejected_by_topic[topic] += 1
            elif counter == "dropped":
                self.stats.dropped_stale += 1
            self.last_problem = p
            self.last_problems[topic] = p
        if self.on_problem is not None:
            self.on_problem(p)
        return p

    # ------------------------------------------------------------------ inputs
    @property
    def joint_names(self) -> tuple[str, ...] | None:
        """Joint order of ``Observation.joint_positions`` (None until learnt from the first JointState)."""
        return self._joint_names

    @property
    def instruction(self) -> str:
        return self._instruction

    def set_instruction(self, text: str) -> bool:
        """Replace the instruction (surrounding whitespace removed); True if it changed.

        An empty instruction is accepted here but every observation is then rejected at `take`
        (unless allow_empty_instruction): the robot pauses instead of acting on no instruction.
        Longer than ``max_instruction_length``: refused (a problem, counted rejected) and the
        instruction becomes empty, so the robot pauses instead of carrying on with the old task.
        """
        text = str(text).strip()
        refused = ""
        limit = self.max_instruction_length
        if limit is not None and len(text) > limit:
            topic = self.spec.instruction_topic or "policy.instruction"
            refused = (f"{topic}: data: instruction of {len(text)} characters refused; expected at most "
                       f"policy.max_instruction_length = {limit}")
            text = ""
        with self._lock:
            changed = text != self._instruction or bool(refused) != bool(self._instruction_refused)
            self._instruction = text
            self._instruction_refused = refused
        if refused:
            self._problem(self.spec.instruction_topic or "policy.instruction", Problem.INSTRUCTION, refused)
            return False
        return changed

    def _check_clock(self, now: float) -> None:
        with self._lock:
            jumped = self._last_now is not None and now < self._last_now - CLOCK_JUMP
            back = (self._last_now - now) if jumped else 0.0
            self._last_now = now
            if jumped:
                self.sync.reset()
                self._pending = None
                self.stats.clock_resets += 1
                if self.pose_monitor is not None:  # pose history of another timeline: start over
                    self.pose_monitor = PoseMonitor(self.safety)
        if jumped:
            self._problem(
                "clock", Problem.CLOCK, f"ROS time jumped back by {back:.3f} s: synchronizer reset (sim restart or bag "
                                        "loop?)", "none"
            )

    def _header_stamp(self, msg: Any, topic: str, now: float) -> tuple[float, int] | InputProblem:
        try:
            stamp = msg.header.stamp
            ns = _stamp_ns(stamp)
        except (AttributeError, TypeError, ValueError):
            return self._problem(topic, Problem.STAMP,
                                 f"{topic}: header.stamp: expected builtin_interfaces/Time, got none")
        if ns == 0:
            return self._problem(topic, Problem.STAMP,
                                 f"{topic}: header.stamp: expected the capture time, got 0 (unset stamp)")
        t = msg_decode.stamp_to_sec(stamp)
        ahead = t - now
        # Further ahead than slop, the message would block its input (stamps may not go back)
        # until the clock caught up with it: refuse it instead.
        if ahead > self.slop and math.isfinite(now):
            return self._problem(
                topic, Problem.STAMP,
                f"{topic}: header.stamp: {ahead:.3f} s ahead of the ROS clock; expected at most sync.slop = "
                f"{self.slop:g} s ahead (are the machines' clocks synchronised?)",
            )
        return t, ns

    def _queue(self, name: str, topic: str, stamp: float, value: Any, now: float) -> InputProblem | None:
        with self._lock:
            self.stats.received += 1
            try:
                out = self.sync.add(name, stamp, value)
            except StampError as exc:
                err = str(exc)
                out = None
            else:
                err = ""
                if out is not None:
                    self.stats.synchronized += 1
                    stale = now - out.oldest > self.max_age
                    if not stale:
                        if self._pending is not None and self.counting:
                            self.stats.dropped_superseded += 1
                        self._pending = out
        if err:
            return self._problem(topic, Problem.STAMP, f"{topic}: {err}; message ignored")
        if out is not None and stale:
            return self._stale(out, now)
        return None

    def _stale(self, synced: SyncedSet, now: float) -> InputProblem:
        name = synced.oldest_input()
        topic = self.topics[name]
        age = now - synced.items[name].stamp
        return self._problem(
            topic, Problem.STALE,
            f"{topic}: observation dropped: header.stamp is {age:.3f} s old, expected at most sync.max_age = "
            f"{self.max_age:g} s",
            "dropped",
        )

    def add_image(self, camera: str, msg: Any, now: float) -> InputProblem | None:
        """sensor_msgs/Image or CompressedImage of camera `camera` (by robot camera name)."""
        name = camera_input(camera)
        if name not in self.topics:
            raise KeyError(f"camera {camera!r} is not part of this observation ({[c.name for c in self.spec.cameras]})")
        topic = self.topics[name]
        self._check_clock(now)
        st = self._header_stamp(msg, topic, now)
        if isinstance(st, InputProblem):
            return st
        compressed = hasattr(msg, "format")
        try:
            if compressed:
                if len(msg.data) == 0:
                    raise MessageError(f"{topic}: data: empty compressed image (format {msg.format!r}); expected jpeg "
                                       "or png bytes")
                size = compressed_image_size(msg.data)
                if size is None:
                    return self._problem(
                        topic, Problem.DECODE,
                        f"{topic}: data: no PNG or JPEG header (format {msg.format!r}); expected jpeg or png bytes",
                    )
            else:
                size = (int(msg.height), int(msg.width))
            too_large = self._too_large(topic, size, "header" if compressed else "height x width")
            if too_large is not None:
                return too_large
            if not compressed:
                msg_decode.check_image(msg, topic)
        except MessageError as exc:
            return self._problem(topic, exc.code, str(exc))
        return self._queue(name, topic, st[0], (st[1], msg, compressed), now)

    def _too_large(self, topic: str, size: tuple[int, int], where: str) -> InputProblem | None:
        """A problem if an image of `size` (height, width) exceeds sync.max_image_pixels."""
        limit = self.max_image_pixels
        h, w = size
        if limit is None or h * w <= limit:
            return None
        return self._problem(
            topic, Problem.TOO_LARGE,
            f"{topic}: image of {w}x{h} = {h * w} pixels ({where}) refused; expected at most "
            f"sync.max_image_pixels = {limit}",
        )

    def add_joint_state(self, msg: Any, now: float) -> InputProblem | None:
        """sensor_msgs/JointState: positions in joint order (+ normalised gripper), all finite."""
        topic = self.spec.joint_state_topic
        if JOINT_STATE not in self.topics:
            raise KeyError("joint states are not part of this observation (robot.joint_state_topic is empty)")
        self._check_clock(now)
        st = self._header_stamp(msg, topic, now)
        if isinstance(st, InputProblem):
            return st
        names = self._joint_names
        order = self.spec.joint_names  # an empty `name` list is mapped by position in this order
        if names is None:
            if not len(msg.name):
                return self._problem(topic, Problem.MISSING_JOINT,
                                     f"{topic}: name: empty, and robot.joint_names is empty; "
                                     "set robot.joint_names to map the positions by position")
            names = tuple(n for n in msg.name if n != self.spec.gripper_joint)
            if not names:
                return self._problem(topic, Problem.MISSING_JOINT,
                                     f"{topic}: name: expected arm joints, got {list(msg.name)}")
        try:
            positions = msg_decode.joint_positions(msg, names, topic, order)
            gripper = self._gripper(msg, topic, order)
        except MessageError as exc:
            return self._problem(topic, exc.code, str(exc))
        if self._joint_names is None:
            self._joint_names = names
        return self._queue(JOINT_STATE, topic, st[0], (st[1], positions, gripper), now)

    def _gripper(self, msg: Any, topic: str, order: tuple[str, ...] = ()) -> float | None:
        g = self.spec.gripper_joint
        if not g:
            return None
        raw = msg_decode.joint_positions(msg, [g], topic, order)[0]  # MessageError if missing / NaN
        norm = (raw - self.spec.gripper_closed) / (self.spec.gripper_open - self.spec.gripper_closed)
        return float(min(1.0, max(0.0, norm)))

    def add_ee_pose(self, msg: Any, now: float, decoded: Any = None) -> InputProblem | None:
        """geometry_msgs/PoseStamped of the end effector, in robot.base_frame (or an empty frame_id).

        decoded: ``msg_decode.pose_to_ee(msg.pose, frame_id or robot.base_frame)`` when the caller
        already has it (the replay decodes each pose once for all its lanes); None = decode here.
        """
        topic = self.spec.ee_pose_topic
        if EE_POSE not in self.topics:
            raise KeyError("the EE pose is not part of this observation (policy does not need it)")
        self._check_clock(now)
        st = self._header_stamp(msg, topic, now)
        if isinstance(st, InputProblem):
            return st
        frame = str(msg.header.frame_id)
        base = self.spec.base_frame
        if frame and base and frame != base:
            return self._problem(
                topic, Problem.FRAME, f"{topic}: header.frame_id: expected {base!r} (robot.base_frame) or empty, got "
                                      f"{frame!r}"
            )
        pose = decoded
        if pose is None:
            try:
                pose = msg_decode.pose_to_ee(msg.pose, frame or base, topic)
            except MessageError as exc:
                return self._problem(topic, exc.code, str(exc))
        monitor = self.pose_monitor
        if monitor is not None:
            why = monitor.update(pose, st[0])
            if why:
                return self._problem(topic, Problem.IMPLAUSIBLE, f"{topic}: {why}; pose refused")
        return self._queue(EE_POSE, topic, st[0], (st[1], pose), now)

    # ------------------------------------------------------------------ output
    @property
    def newest_stamp(self) -> float | None:
        """Stamp of the newest synchronized observation (used or not); None before the first."""
        return self.sync.last_emitted

    def has_pending(self) -> bool:
        with self._lock:
            return self._pending is not None

    def discard_pending(self) -> None:
        """Forget the synchronized observation waiting for `take` (e.g. on deactivation)."""
        with self._lock:
            self._pending = None

    def take(self, now: float, clock: Callable[[], float] | None = None) -> ObservationSample | None:
        """The newest synchronized observation not taken yet, validated and decoded; else None.

        None when there is none, or it is older than sync.max_age (counted dropped), or the
        instruction is empty (or was refused), or an image does not decode or is too large
        (counted rejected). `clock` (ROS time, e.g. the node's clock; None = not checked) is read
        after decoding: an observation that got older than sync.max_age meanwhile is dropped too.
        """
        with self._lock:
            synced, self._pending = self._pending, None
            instruction = self._instruction
            refused = self._instruction_refused
        if synced is None:
            return None
        age = now - synced.oldest
        if age > self.max_age:
            self._stale(synced, now)
            return None
        if refused or (not instruction and not self.allow_empty_instruction):
            topic = self.spec.instruction_topic or "policy.instruction"
            self._problem(
                topic, Problem.INSTRUCTION,
                refused + "; no chunks until a valid instruction arrives" if refused else
                f"{topic}: instruction is empty; expected a non-empty std_msgs/String on {topic} (transient-local) "
                f"or the policy.instruction parameter (policy.allow_empty_instruction allows none)",
            )
            return None
        images: dict[str, np.ndarray] = {}
        joints = gripper = ee = None
        for cam in self.spec.cameras:
            _, msg, compressed = synced.items[camera_input(cam.name)].value
            try:
                img = msg_decode.decode_image(msg, cam.topic)
            except MessageError as exc:
                self._problem(cam.topic, Problem.DECODE, str(exc))
                return None
            if compressed and self._too_large(cam.topic, img.shape[:2], "decoded") is not None:
                return None  # the header said otherwise; never hand such an image on
            # A decoder may return a read-only view (of a bytes buffer): the observation gets writable pixels.
            images[cam.name] = img if img.flags.writeable else np.array(img)
        if clock is not None:
            later = clock()
            if later - synced.oldest > self.max_age:  # decoding took too long: too old to act on now
                self._stale(synced, later)
                return None
        if JOINT_STATE in synced.items:
            _, joints, gripper = synced.items[JOINT_STATE].value
        if EE_POSE in synced.items:
            _, ee = synced.items[EE_POSE].value
        pivot_ns = synced.items[camera_input(self.spec.pivot.name)].value[0]
        try:
            obs = Observation(
                stamp=synced.stamp, images=images, joint_positions=joints, ee_pose=ee, gripper=gripper,
                instruction=instruction
            )
        except ValueError as exc:
            self._problem(self.spec.pivot.topic, Problem.DECODE, f"{self.spec.pivot.topic}: {exc}")
            return None
        with self._lock:
            self.stats.taken += 1
        stamps = {self.topics[n]: s.stamp for n, s in synced.items.items()}
        return ObservationSample(obs, pivot_ns, stamps, age)

    def waiting_for(self, now: float) -> str:
        """Why no observation is available, in words ("" if one is, or nothing looks wrong)."""
        with self._lock:
            if self._pending is not None:
                return ""
            text = self.sync.waiting_for()
            newest = self.sync.last_emitted
        if not text and newest is not None and now - newest > self.max_age:
            text = f"newest synchronized observation is {now - newest:.2f} s old (sync.max_age {self.max_age:g} s)"
        if not self._instruction and not self.allow_empty_instruction:
            text = (text + "; " if text
                    else "") + f"no instruction (publish on {self.spec.instruction_topic or 'the instruction topic'})"
        return text

