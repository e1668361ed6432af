"""The policy side of the robot, ROS-free: one runtime for the policy node and for each replay lane.

`PolicyNode` (vla_ros.ros) and a replay lane (vla_ros.replay) are thin adapters around this object,
so the glue between inputs, inference and chunk output exists once and behaves the same in both:

- **Inputs** go through `route(topic, msg, now)`: camera images, joint states, the EE pose and the
  instruction into the `ObservationBuilder` (validation, sync, max age), an ExecutorStatus into the
  executor feedback (`ExecutorFeedback.from_msg`) that the queue trigger and RTC read. Topics the
  policy does not use are ignored. Names are compared absolute ("camera" = "/camera").
- **Inference**: an `InferenceWorker` (its thread on the robot, `run_once` in the replay) takes the
  newest observation; with ``policy.rtc`` its guidance comes from the newest executor plan
  (`rtc_guidance`); the queue trigger (``policy.trigger queue``) decides from the statuses.
- **Chunk output**: every chunk passes the executor's own chunk check first (workspace + margin,
  reach from the observed pose, gripper range, length; `check_chunk`): a refused chunk is counted
  by code and never sent; ``policy.max_bad_chunks`` refusals in a row set `chunk_error`. A chunk
  that passes becomes a vla_ros/ActionChunk message (`MessageEncoder`, stamped with the pivot
  camera's exact header stamp) handed to `emit(record, msg)`: the node publishes it, the replay
  delivers it to its executor after the simulated latency. The adapter calls `sent(now)` when the
  chunk actually leaves (the queue trigger then waits for the executor's acknowledgement).

The adapter supplies the clock (ROS time or the replay's simulated one), `emit`, and callbacks for
input problems, inference errors and notes (`on_note(level, key, text)`: "warning"/"info" lines the
node logs, throttled by `key`).
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any, Callable

from vla_ros.core.config import VlaConfig
from vla_ros.core.executor.plausibility import check_chunk
from vla_ros.core.executor_feedback import ExecutorFeedback, rtc_guidance
from vla_ros.core.inference_worker import InferenceRecord, InferenceWorker
from vla_ros.core.observation_builder import InputProblem, ObservationBuilder, ObservationSpec
from vla_ros.core.triggers import QueueTrigger
from vla_ros.core.types import ChunkGuidance, Observation

DUE = "due"  # route(): the queue trigger says an inference is due now
INSTRUCTION = "instruction"  # route(): the instruction changed


def absolute(topic: str) -> str:
    """Node-relative names ("camera/primary") compare equal to absolute ones ("/camera/primary")."""
    return topic if not topic or topic.startswith("/") else "/" + topic


class PolicyRuntime:
    """Builder, worker, trigger, feedback, RTC guidance and chunk check of one policy (module docstring)."""

    def __init__(self, spec: ObservationSpec, cfg: VlaConfig, *, clock: Callable[[], float], encoder: Any,
                 emit: Callable[[InferenceRecord, Any], None], name: str,
                 on_problem: Callable[[InputProblem], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 on_note: Callable[[str, str, str], None] | None = None):
        self.cfg = cfg
        self.spec = spec
        self.clock = clock
        self.encoder = encoder
        self.emit = emit
        self.on_note = on_note
        p = cfg.policy
        self.builder = ObservationBuilder.from_config(spec, cfg, on_problem=on_problem)
        self.worker = InferenceWorker(
            partial(self.builder.take, clock=clock),  # the age is checked again after decoding
            self._on_record, clock=clock, guidance=self._guidance if p.rtc else None,
            default_frame=cfg.robot.base_frame, on_error=on_error, name=name,
        )
        self.trigger = QueueTrigger(
            p.queue_threshold, ack_timeout=p.queue_ack_timeout, status_timeout=p.executor_status_timeout,
            topic=p.executor_status_topic,
        ) if p.trigger == "queue" else None
        self.needs_status = p.trigger == "queue" or p.rtc
        self.active = True  # False: chunks finishing now are not sent (an inactive node publishes none)
        self.feedback: ExecutorFeedback | None = None
        self.rtc_note = ""  # why the newest inference had no RTC guidance ("" when it had)
        self.rtc_notes: Counter = Counter()
        self.rtc_guided = 0
        self.chunks_published = 0
        self.chunk_problems: Counter = Counter()  # refusals by code (plausibility.CHUNK_PROBLEM_CODES)
        self.bad_chunks = 0  # consecutive refusals
        self.chunk_error = ""  # set after policy.max_bad_chunks consecutive refusals
        self.last_refusal = ""  # the newest refusal's reason
        # When the chunk check runs, given the record (default: now). A replay that infers a batch
        # after the fact passes the time each inference took its observation.
        self.check_time: Callable[[InferenceRecord], float] | None = None
        self._routes = self._route_table(spec, cfg)

    # ---------------------------------------------------------------- inputs
    def _route_table(self, spec: ObservationSpec, cfg: VlaConfig) -> dict[str, Callable[[Any, float], str]]:
        b = self.builder
        routes: dict[str, Callable[[Any, float], str]] = {}
        for cam in spec.cameras:
            routes[absolute(cam.topic)] = partial(self._image, cam.name)
        if spec.joint_state_topic:
            routes[absolute(spec.joint_state_topic)] = partial(self._input, b.add_joint_state)
        if spec.ee_pose_topic:
            routes[absolute(spec.ee_pose_topic)] = self._ee_pose
        if cfg.robot.instruction_topic:
            routes[absolute(cfg.robot.instruction_topic)] = self._instruction
        if self.needs_status:
            routes[absolute(cfg.policy.executor_status_topic)] = self.on_status
        return routes

    def route(self, topic: str, msg: Any, now: float, decoded: Any = None) -> str:
        """One input message received at `now`: "" / `INSTRUCTION` (it changed) / `DUE` (queue trigger).

        `decoded`: for an EE pose, its `pose_to_ee` when the caller already has it (a replay decodes each
        pose once for all its lanes); None = decoded here.
        """
        handler = self._routes.get(absolute(topic))
        if handler is None:
            return ""
        return handler(msg, now) if decoded is None else handler(msg, now, decoded)

    def _ee_pose(self, msg: Any, now: float, decoded: Any = None) -> str:
        self.builder.add_ee_pose(msg, now, decoded)  # a rejected pose is reported through on_problem
        return ""

    @staticmethod
    def _input(add: Callable[[Any, float], Any], msg: Any, now: float) -> str:
        add(msg, now)  # a rejected message is reported through on_problem
        return ""

    def _image(self, camera: str, msg: Any, now: float) -> str:
        self.builder.add_image(camera, msg, now)
        return ""

    def _instruction(self, msg: Any, now: float) -> str:
        return INSTRUCTION if self.builder.set_instruction(str(msg.data)) else ""

    def on_status(self, msg: Any, now: float) -> str:
        """An ExecutorStatus message: the newest feedback; `DUE` if the queue trigger fires now.

        A malformed status raises (AttributeError / TypeError / ValueError): the adapter says so.
        """
        fb = ExecutorFeedback.from_msg(msg)
        self.feedback = fb
        if self.trigger is None:
            return ""
        self.trigger.on_status(fb)
        return DUE if self.trigger.due(now) else ""

    # ---------------------------------------------------------------- inference
    def _guidance(self, obs: Observation, meta: Any) -> ChunkGuidance | None:
        p = self.cfg.policy
        frame = (obs.ee_pose.frame_id if obs.ee_pose is not None else "") or self.cfg.robot.base_frame
        guidance, why = rtc_guidance(
            self.feedback, obs, horizon=meta.horizon, dt=meta.dt, max_guidance_weight=p.rtc_max_guidance,
            now=self.clock(), max_status_age=p.executor_status_timeout, frame_id=frame, topic=p.executor_status_topic,
        )
        self.rtc_note = why
        if guidance is None:
            self.rtc_notes[why] += 1
        else:
            self.rtc_guided += 1
        return guidance

    def _on_record(self, record: InferenceRecord) -> None:
        """The worker finished an inference: check the chunk, then `emit` its message (or not)."""
        if not self.active or not self.check(record):
            return
        self.emit(record, self.message(record))

    def message(self, record: InferenceRecord) -> Any:
        """The chunk's vla_ros/ActionChunk, stamped with the pivot camera's exact header stamp
        (not a float round trip) when the observation has one."""
        msg = self.encoder.action_chunk(record.chunk)
        stamp_ns = getattr(record.sample, "stamp_ns", None)
        if stamp_ns is not None:
            msg.header.stamp = self.encoder.cls("builtin_interfaces/msg/Time")(
                sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
        return msg

    def check(self, record: InferenceRecord) -> bool:
        """The executor's chunk check, before sending: True if the chunk may go out (module docstring)."""
        cfg = self.cfg
        now = self.clock() if self.check_time is None else self.check_time(record)
        problem = check_chunk(record.chunk, cfg.safety, measured=record.observation.ee_pose, now=now,
                              max_steps=cfg.executor.max_chunk_steps, frame_id=cfg.robot.base_frame)
        if problem is None:
            if self.chunk_error:
                self._note("info", "chunk", "chunk check passes again: publishing")
            self.bad_chunks, self.chunk_error = 0, ""
            return True
        self.chunk_problems[problem.code] += 1
        self.bad_chunks += 1
        self.last_refusal = f"{problem.code}: {problem.message}"
        limit = cfg.policy.max_bad_chunks
        if self.bad_chunks >= limit:
            self.chunk_error = (f"policy output implausible: {self.bad_chunks} chunks in a row refused "
                                f"(policy.max_bad_chunks = {limit}); last: {problem.message}")
        self._note("warning", "chunk:" + problem.code,
                   f"chunk seq {record.chunk.seq} refused ({problem.code}), not published: {problem.message}")
        return False

    def sent(self, now: float) -> None:
        """The adapter sent a chunk at `now` (the queue trigger now waits for the executor to see it)."""
        self.chunks_published += 1
        if self.trigger is not None:
            self.trigger.on_chunk(now)

    def reset_counters(self) -> None:
        """A new policy runs from now on (a swap): its chunk record starts clean."""
        self.chunks_published = 0
        self.bad_chunks, self.chunk_error = 0, ""

    def _note(self, level: str, key: str, text: str) -> None:
        if self.on_note is not None:
            self.on_note(level, key, text)
