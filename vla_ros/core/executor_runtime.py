"""The executor side of the robot, ROS-free: one driving loop for the executor node and for replay.

`ExecutorNode`, a replay lane (`vla_ros.replay`) and the replay's second executor process
(`vla_ros.replay.executor_process`) all run a `ChunkExecutor` the same way, through this object, so
what the replay predicts is what the node does:

- **Chunks in** as messages (`receive`: decoded and validated by `msg_decode.chunk_from_msg`,
  at most ``executor.max_chunk_steps`` steps; a malformed one is refused by the core, counted and
  named) or already decoded (`receive_chunk`). A received chunk waits in a queue of at most
  ``executor.max_queued_chunks`` (the oldest is dropped and counted) and enters the plan only
  **after the next control tick**, with its receive time as its arrival: the node decodes chunks off
  the control thread and combines them in the slack after a tick, so the replay does too.
- **The feedback pose** (`FeedbackPose`): a pose in another frame than ``robot.base_frame`` is
  ignored (and said why), and an accepted one is stamped with its *receive* time, which the core
  checks against ``safety.max_pose_age``.
- **One step** (`step`): tick at `now` with the newest feedback pose, hand the command to
  `publish` (under the lock, so a caller switching its outputs never splits a command), then admit
  the chunks queued meanwhile. Returns the command and each admitted chunk's `SubmitResult`.
- **Status** (`status`, `status_message`): the snapshot and the vla_ros/ExecutorStatus message the
  policy side reads back through `ExecutorFeedback.from_msg` - on the robot over DDS, in the
  replay in process, the same conversion.

Thread-safe where the node needs it: `lock` serialises every call into the core (the node's
off-loop worker decodes while its control timer ticks).
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Hashable

from vla_ros.core.config import VlaConfig
from vla_ros.core.executor import ChunkExecutor, Command, ExecutorStatusData
from vla_ros.core.executor.executor import SubmitResult
from vla_ros.core.msg_decode import ChunkTooLong, MessageError, chunk_from_msg, pose_to_ee
from vla_ros.core.types import ActionChunk, EEPose


class FeedbackPose:
    """The executor's measured end-effector pose: the node's rule, for the node and the replay.

    `on_msg` takes a geometry_msgs/PoseStamped (rclpy or rosbags): an empty frame means the
    base frame, another frame is ignored; the pose is stamped with `now`, the time it was received.
    """

    def __init__(self, base_frame: str, topic: str = "ee_pose"):
        self.base_frame = base_frame
        self.topic = topic
        self.pose: EEPose | None = None
        self.time: float | None = None

    def on_msg(self, msg: Any, now: float, decoded: EEPose | None = None) -> str:
        """Take a PoseStamped received at `now`; "" if it became the feedback pose, else why not.

        `decoded`: its `pose_to_ee` when the caller already has it (None = decoded here).
        """
        frame = str(msg.header.frame_id)
        if frame and frame != self.base_frame:
            return (f"{self.topic}: header.frame_id: expected {self.base_frame!r} (robot.base_frame), got {frame!r}; "
                    "pose ignored")
        pose = decoded
        if pose is None:
            try:
                pose = pose_to_ee(msg.pose, frame, self.topic)
            except MessageError as exc:
                return f"pose ignored: {exc}"
        self.pose, self.time = pose, now
        return ""

    def set(self, pose: EEPose, now: float) -> None:
        """A pose from elsewhere (TF, a simulator), already in the base frame, received at `now`."""
        self.pose, self.time = pose, now


class ExecutorRuntime:
    """A `ChunkExecutor` with its chunk queue, feedback pose and driving step (module docstring)."""

    def __init__(self, cfg: VlaConfig, core: ChunkExecutor | None = None):
        self.cfg = cfg
        self.core = core if core is not None else ChunkExecutor.from_config(cfg)
        self.lock = threading.Lock()
        self.feedback = FeedbackPose(cfg.robot.base_frame, cfg.robot.ee_pose_topic or "ee_pose")
        self.chunk_topic = cfg.policy.chunk_topic
        self.max_steps = cfg.executor.max_chunk_steps
        self.max_queued = cfg.executor.max_queued_chunks
        # (chunk, receive time, token): `token` comes back with the chunk's SubmitResult from `step`
        self._queue: collections.deque[tuple[ActionChunk, float, Hashable]] = collections.deque()
        self.ticks = 0
        self.last_command: Command | None = None  # the newest tick's command (None before a plausible pose)
        self.dropped = 0  # chunks dropped from a full queue

    # ---------------------------------------------------------------- chunks in
    def receive(self, msg: Any, received: float, token: Hashable = None) -> tuple[str, int]:
        """A vla_ros/ActionChunk message received at `received`: decode, validate and queue it.

        Returns ("", dropped) when queued (`dropped`: older chunks pushed out of the full queue), or
        (reason, 0) when refused (counted by the core as rejected, with its problem code).
        """
        chunk, why, code = self.decode(msg)
        if chunk is None:
            return self.refuse(why, code), 0
        return "", self.receive_chunk(chunk, received, token)

    def decode(self, msg: Any) -> tuple[ActionChunk | None, str, str]:
        """(chunk, "", "") or (None, why, problem code): the validation of `receive`, without counting."""
        try:
            return chunk_from_msg(msg, self.chunk_topic, max_steps=self.max_steps), "", ""
        except ChunkTooLong as exc:
            return None, str(exc), "length"
        except (MessageError, ValueError, TypeError, AttributeError) as exc:
            return None, str(exc), ""

    def receive_chunk(self, chunk: ActionChunk, received: float, token: Hashable = None) -> int:
        """Queue a decoded chunk; returns how many older ones were dropped from the full queue."""
        self._queue.append((chunk, received, token))
        dropped = 0
        while len(self._queue) > self.max_queued:
            try:
                self._queue.popleft()
            except IndexError:  # the control thread took it meanwhile
                break
            dropped += 1
        self.dropped += dropped
        return dropped

    def refuse(self, reason: str, code: str = "") -> str:
        """A chunk that never became an ActionChunk (too large, malformed, not allowed yet): counted."""
        with self.lock:
            self.core.reject(reason, code)
        return reason

    def clear(self) -> None:
        """Drop every queued chunk (an e-stop: nothing received before it may run after the reset)."""
        self._queue.clear()

    @property
    def queued(self) -> int:
        """Chunks received and not yet admitted into the plan."""
        return len(self._queue)

    # ---------------------------------------------------------------- the loop
    def step(self, now: float, publish: Callable[[Command], None] | None = None
             ) -> tuple[Command | None, list[tuple[Hashable, SubmitResult]]]:
        """One control period: tick (and `publish` the command), then admit the chunks queued so far."""
        return self.tick(now, publish), self.admit()

    def tick(self, now: float, publish: Callable[[Command], None] | None = None) -> Command | None:
        """The tick of `step` alone (the node times it apart from the admission that follows)."""
        fb = self.feedback
        with self.lock:
            cmd = self.core.tick(now, fb.pose, fb.time)
            self.ticks += 1
            self.last_command = cmd
            if cmd is not None and publish is not None:
                publish(cmd)
        return cmd

    def admit(self) -> list[tuple[Hashable, SubmitResult]]:
        """Combine the queued chunks with the plan, each at its receive time (`step` calls it)."""
        results = []
        while self._queue:
            try:
                chunk, received, token = self._queue.popleft()
            except IndexError:
                break
            with self.lock:
                results.append((token, self.core.submit(chunk, received)))
        return results

    # ---------------------------------------------------------------- status
    def status(self, now: float, dry_run: bool | None = None) -> ExecutorStatusData:
        with self.lock:
            return self.core.status(now, dry_run)

    def status_message(self, encoder: Any, status: ExecutorStatusData) -> Any:
        """vla_ros/ExecutorStatus of `status` (a `MessageEncoder`'s classes), plan cut to max_chunk_steps."""
        return encoder.executor_status(status, max_plan_steps=self.max_steps)
