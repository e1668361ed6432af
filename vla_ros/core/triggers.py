"""When to run the next inference when the executor's plan runs low (policy.trigger 'queue'). ROS-free.

The fixed-rate trigger needs no object: the node uses a timer, the replay a scheduled event on its
simulated clock. The trigger only *decides*; the inference worker enforces "at most one in flight" and always
uses the newest synchronized observation. Time is passed in (ROS time), so the replay drives them
on its simulated clock exactly as the node does on the real one.

Queue trigger, and why it waits for an acknowledgement: the executor reports its remaining plan
at ~10 Hz. Right after a chunk is published, the next status or two still describe the *old*
plan (short remaining time) because the executor has not received the chunk yet; triggering on
them would run a second inference for nothing. So after a chunk the trigger waits until a status
shows the executor has received it (``chunks_received`` changed) - or ``ack_timeout`` passes, in
case the chunk was lost or rejected. It also stays quiet while the executor is e-stopped (the
chunks would be discarded) and when the newest status is older than ``status_timeout``.
"""

from __future__ import annotations

import threading

from vla_ros.core.executor_feedback import EXECUTOR_STATE_ESTOP, ExecutorFeedback


class QueueTrigger:
    """Due when the executor's remaining plan is shorter than ``threshold`` (see the module docstring)."""

    def __init__(self, threshold: float, *, ack_timeout: float = 1.0, status_timeout: float = 1.0,
                 topic: str = "executor_status"):
        self.threshold = float(threshold)
        self.ack_timeout = float(ack_timeout)
        self.status_timeout = float(status_timeout)
        self.topic = topic
        self._lock = threading.Lock()
        self._status: ExecutorFeedback | None = None
        self._sent_at: float | None = None
        self._sent_received: int | None = None

    @property
    def status(self) -> ExecutorFeedback | None:
        return self._status

    def on_status(self, feedback: ExecutorFeedback) -> None:
        with self._lock:
            self._status = feedback
            if self._sent_at is not None and feedback.chunks_received != self._sent_received:
                self._sent_at = None  # the executor has seen our chunk: its remaining_time is current

    def on_chunk(self, now: float) -> None:
        """A chunk was just published at `now`."""
        with self._lock:
            self._sent_at = now
            self._sent_received = None if self._status is None else self._status.chunks_received

    def due(self, now: float) -> bool:
        return self._check(now)[0]

    def waiting_for(self, now: float) -> str:
        """Why the trigger is not due ("" if it is)."""
        return self._check(now)[1]

    def _check(self, now: float) -> tuple[bool, str]:
        with self._lock:
            st, sent_at = self._status, self._sent_at
        if st is None:
            return False, f"trigger 'queue': no ExecutorStatus received on {self.topic} yet"
        age = now - st.stamp
        if age > self.status_timeout:
            return False, f"trigger 'queue': newest ExecutorStatus on {self.topic} is {age:.2f} s old"
        if st.state == EXECUTOR_STATE_ESTOP:
            return False, "trigger 'queue': executor is e-stopped"
        if sent_at is not None and now - sent_at < self.ack_timeout:
            return False, "trigger 'queue': waiting for the executor to receive the last chunk"
        if st.remaining_time >= self.threshold:
            return False, ""
        return True, ""
