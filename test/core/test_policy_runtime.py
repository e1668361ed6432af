"""PolicyRuntime: the one policy-side runtime (node and replay lane) - routing, trigger, RTC, chunk check."""

from __future__ import annotations

import numpy as np

from core_testlib import executor_status
from vla_ros.core.config import VlaConfig
from vla_ros.core.msg_decode import chunk_from_msg
from vla_ros.core.observation_builder import ObservationSpec
from vla_ros.core.policy_runtime import DUE, INSTRUCTION, PolicyRuntime
from vla_ros.policy.hold import HoldPolicy
from vla_ros.ros.conversions import ENCODER

QUAT = (0.0, 0.0, 0.0, 1.0)


class ShiftedHold(HoldPolicy):
    """`hold`, shifted by `dx` in x (dx large: a chunk outside the workspace)."""

    def __init__(self, dx: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dx = dx

    def infer(self, observation, *, noise=None, guidance=None):
        chunk = super().infer(observation)
        actions = chunk.actions.copy()
        actions[:, 0] += self.dx
        return chunk.with_fields(actions=actions)


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _runtime(policy, **overrides):
    cfg = VlaConfig().with_overrides({"robot.camera_names": ["primary"], "robot.camera_topics": ["/cam"],
                                      "robot.joint_state_topic": "", **overrides})
    clock = Clock(100.0)
    sent, notes = [], []
    spec = ObservationSpec.from_config(cfg.robot, policy.metadata)
    rt = PolicyRuntime(spec, cfg, clock=clock, encoder=ENCODER, emit=lambda rec, msg: sent.append((rec, msg)),
                       name="test", on_note=lambda level, key, text: notes.append((level, text)))
    rt.worker.set_policy(policy)
    return rt, clock, sent, notes


def _inputs(rt, t: float, x: float = 0.4, instruction: str = "pick") -> None:
    assert rt.route("/instruction", ENCODER.string(instruction), t) in ("", INSTRUCTION)
    rt.route("ee_pose", ENCODER.pose_stamped(t, "base_link", (x, 0.0, 0.3), QUAT), t)  # relative = absolute
    rt.route("/cam", ENCODER.image(np.zeros((8, 8, 3), np.uint8), t, "cam"), t)
    rt.route("/not_an_input", ENCODER.string("ignored"), t)


def test_routed_inputs_make_an_observation_and_the_chunk_goes_out_as_a_message():
    rt, clock, sent, _ = _runtime(HoldPolicy(horizon=5, dt=0.1))
    assert rt.route("/instruction", ENCODER.string("pick"), 99.0) == INSTRUCTION
    assert rt.route("/instruction", ENCODER.string("pick"), 99.0) == ""  # unchanged
    _inputs(rt, 100.0)
    clock.t = 100.02
    record = rt.worker.run_once()
    assert record is not None and len(sent) == 1
    rec, msg = sent[0]
    back = chunk_from_msg(msg)
    assert back.stamp == record.chunk.stamp == 100.0 and np.allclose(back.actions, record.chunk.actions)
    assert rt.chunks_published == 0  # counted when the adapter sends it
    rt.sent(100.02)
    assert rt.chunks_published == 1


def test_a_chunk_outside_the_workspace_is_refused_counted_and_never_emitted():
    rt, clock, sent, notes = _runtime(ShiftedHold(dx=5.0, horizon=5, dt=0.1), **{"policy.max_bad_chunks": 2})
    for i in range(2):
        _inputs(rt, 100.0 + i)
        clock.t = 100.0 + i + 0.01
        assert rt.worker.run_once() is not None
    assert sent == [] and rt.chunk_problems["workspace"] == 2
    assert "2 chunks in a row refused" in rt.chunk_error and any("refused (workspace)" in t for _, t in notes)
    rt.worker.set_policy(ShiftedHold(dx=0.0, horizon=5, dt=0.1))
    _inputs(rt, 103.0)
    clock.t = 103.01
    rt.worker.run_once()
    assert len(sent) == 1 and rt.chunk_error == "" and ("info", "chunk check passes again: publishing") in notes


def test_the_queue_trigger_is_due_from_routed_executor_statuses():
    rt, clock, _, _ = _runtime(HoldPolicy(horizon=5, dt=0.1),
                               **{"policy.trigger": "queue", "policy.queue_threshold": 0.3})
    topic = rt.cfg.policy.executor_status_topic
    assert rt.route(topic, executor_status(100.0, remaining=1.0), 100.0) == ""
    assert rt.route(topic, executor_status(100.1, remaining=0.2), 100.1) == DUE
    assert rt.feedback.remaining_time == 0.2
    rt.sent(100.1)  # a chunk went out: wait for the executor to acknowledge it
    assert rt.route(topic, executor_status(100.2, remaining=0.1), 100.2) == ""
    assert rt.route(topic, executor_status(100.3, remaining=0.1, received=1), 100.3) == DUE


def test_rtc_guidance_comes_from_the_newest_routed_plan_and_says_why_not():
    rt, clock, sent, _ = _runtime(HoldPolicy(horizon=5, dt=0.1), **{"policy.rtc": True})
    _inputs(rt, 100.0)
    clock.t = 100.0
    record = rt.worker.run_once()
    assert record.guidance is None and "no ExecutorStatus" in rt.rtc_note
    status = executor_status(100.05, plan_start=100.0, plan_x=[0.4 + 0.01 * i for i in range(10)], committed=2)
    rt.route(rt.cfg.policy.executor_status_topic, status, 100.05)
    _inputs(rt, 100.1)
    clock.t = 100.1
    record = rt.worker.run_once()
    assert record.guidance is not None and rt.rtc_guided == 1 and rt.rtc_note == ""
