"""What the policy side reads from the executor's status: queue length and the RTC plan, ROS-free.

`ExecutorFeedback.from_msg` keeps the few scalar fields the queue trigger needs and the message
itself; the plan (dozens of poses) is decoded only when an inference with Real-Time Chunking
actually asks for it (`rtc_guidance`), not at every status message. Duck-typed on the fields of
vla_ros/ExecutorStatus, so the replay can feed statuses read from a bag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vla_ros.core.executor.rtc import ExecutionPlan, plan_from_status_msg
from vla_ros.core.msg_decode import MessageError, stamp_to_sec
from vla_ros.core.types import ChunkGuidance, Observation

# ExecutorStatus.state values the policy side cares about (same numbers as the message constants).
EXECUTOR_STATE_ESTOP = 3


@dataclass(frozen=True)
class ExecutorFeedback:
    """One ExecutorStatus, reduced to what triggering and RTC need."""

    stamp: float
    state: int
    remaining_time: float
    chunks_received: int
    chunk_seq: int
    policy_id: str = ""
    frame_id: str = ""
    source: Any = None  # the status message, for the plan

    @classmethod
    def from_msg(cls, msg: Any) -> "ExecutorFeedback":
        return cls(
            stamp=stamp_to_sec(msg.header.stamp),
            state=int(msg.state),
            remaining_time=float(msg.remaining_time),
            chunks_received=int(msg.chunks_received),
            chunk_seq=int(msg.chunk_seq),
            policy_id=str(msg.policy_id),
            frame_id=str(msg.header.frame_id),
            source=msg,
        )

    def plan(self, topic: str = "executor_status") -> ExecutionPlan:
        """The executor's remaining plan (empty if the status carries none); MessageError if malformed."""
        if self.source is None:
            return ExecutionPlan.empty(self.stamp)
        return plan_from_status_msg(self.source, topic)


def rtc_guidance(
    feedback: ExecutorFeedback | None,
    observation: Observation,
    *,
    horizon: int,
    dt: float,
    max_guidance_weight: float,
    now: float,
    max_status_age: float,
    frame_id: str = "",
    topic: str = "executor_status",
) -> tuple[ChunkGuidance | None, str]:
    """Guidance for a chunk on ``observation.stamp + i * dt`` from the executor's plan, and why not.

    Returns (guidance, "") or (None, reason): no status yet, status too old (executor gone), plan
    in another frame than the chunk's (`frame_id`), malformed plan, or no overlap with the new
    chunk (`vla_ros.core.executor.rtc.guidance_from_plan`).
    """
    if feedback is None:
        return None, f"no ExecutorStatus received on {topic} yet"
    age = now - feedback.stamp
    if age > max_status_age:
        return None, f"{topic}: newest status is {age:.2f} s old (policy.executor_status_timeout {max_status_age:g} s)"
    try:
        plan = feedback.plan(topic)
    except MessageError as exc:
        return None, str(exc)
    if plan.steps == 0:
        return None, "executor has no plan"
    if plan.frame_id and frame_id and plan.frame_id != frame_id:
        return None, f"{topic}: plan frame {plan.frame_id!r} differs from the chunk frame {frame_id!r}"
    guidance = plan.guidance(observation.stamp, horizon, dt, max_guidance_weight)
    if guidance is None:
        return None, "executor plan does not overlap the new chunk"
    return guidance, ""
