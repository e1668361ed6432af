"""The replay's lane, its execution strategies and its event scheduler, on real core objects.

A `hold` lane is fed the messages of an arm moving along +x (EE pose and joint states at 50 Hz, a
camera at 10 Hz, built by the bag writers' `MessageFactory`); no bag and no model are needed, so
each test shows one rule of the replay: the order of simultaneous events, what a batched lane
defers, and that deferring changes nothing the executor computes.
"""

from __future__ import annotations

import numpy as np
import pytest

from vla_ros.core.observation_builder import ObservationSpec
from vla_ros.policy.hold import HoldPolicy
from vla_ros.replay.bag_inputs import PoseSources, TopicRoles, hold_spec
from vla_ros.replay.bag_io import BagMessage, MessageFactory
from vla_ros.replay.execution import BatchedExecution, InlineExecution, RemoteExecution, choose_execution
from vla_ros.replay.lane import HOLD_LANE, POLICY_LANE, Lane, Timing
from vla_ros.replay.session import ARRIVAL, STATUS, TICK, TRIGGER, LaneSchedule, ReplaySession, SimClock

START = 100.0  # bag time of the first message (a zero stamp reads as "unset")


def _messages(cfg, seconds: float) -> list[BagMessage]:
    """EE pose + joint states at 50 Hz (x = 0.4 + 0.05 t), the primary camera at 10 Hz, the instruction first."""
    f = MessageFactory()
    r = cfg.robot
    out = [BagMessage(r.instruction_topic, "std_msgs/msg/String", START, int(START * 1e9), f.string("reach"))]
    for k in range(int(seconds * 50) + 1):
        t = START + k * 0.02
        pos = np.array([0.4 + 0.05 * (t - START), 0.0, 0.3])
        out.append(BagMessage(r.joint_state_topic, "sensor_msgs/msg/JointState", t, int(round(t * 1e9)),
                              f.joint_state(t, [*r.joint_names, r.gripper_joint], [*pos, 0.0, 0.02])))
        out.append(BagMessage(r.ee_pose_topic, "geometry_msgs/msg/PoseStamped", t, int(round(t * 1e9)),
                              f.pose_stamped(t, r.base_frame, pos, np.array([0.0, 0.0, 0.0, 1.0]))))
        if k % 5 == 0:
            img = np.zeros((16, 16, 3), np.uint8)
            out.append(BagMessage(r.camera_topics[0], "sensor_msgs/msg/Image", t, int(round(t * 1e9)),
                                  f.image(t, "primary_camera", img)))
    return out


def _hold_lane(cfg, clock, name=HOLD_LANE, **kw) -> Lane:
    policy = HoldPolicy(horizon=10, dt=0.1)
    spec = hold_spec(ObservationSpec.from_config(cfg.robot, policy.metadata), cfg.robot)
    return Lane(name, policy, spec, cfg, clock, **kw)


def _session(cfg, lanes, clock, stop) -> ReplaySession:
    r = cfg.robot
    roles = TopicRoles(bag={r.camera_topics[0]: ["camera"], r.joint_state_topic: ["joints"],
                            r.ee_pose_topic: ["ee_pose"], r.instruction_topic: ["instruction"]}, virtual={})
    # no "gt" role: the scheduler is under test, not the ground truth (no collector needed)
    return ReplaySession(cfg, START, stop, clock, lanes, PoseSources(r.ee_pose_topic), roles, collector=None)


def _replay(session: ReplaySession, msgs: list[BagMessage]) -> float:
    """`ReplaySession.read` over a message list instead of a bag."""
    for m in msgs:
        session.run_events(m.t)
        session.clock.now = max(session.clock.now, m.t)
        session.on_message(m)
    return session.finish(len(msgs))


def test_the_strategy_is_chosen_by_batch_size_and_remote(sim_cfg):
    t = Timing()
    assert type(choose_execution("a", sim_cfg, t, 1, remote=object())) is InlineExecution  # batch 1: never remote
    assert type(choose_execution("a", sim_cfg, t, 4)) is BatchedExecution
    assert type(choose_execution("a", sim_cfg, t, 4, remote=object())) is RemoteExecution
    assert choose_execution("a", sim_cfg, t, 4, flush_every=1).flush_every == 1
    lane = _hold_lane(sim_cfg, SimClock(START), batch_size=0)
    assert lane.batch_size == 1 and isinstance(lane.execution, InlineExecution)
    with pytest.raises(RuntimeError, match="runs in this process"):
        lane.apply_remote(None)


def test_simultaneous_events_run_arrival_tick_status_trigger(sim_cfg):
    cfg = sim_cfg.with_overrides({"policy.trigger": "queue"})  # the queue trigger needs status snapshots
    lane = _hold_lane(cfg, SimClock(START))
    s = LaneSchedule(HOLD_LANE, lane, START, cfg)
    assert s.next_event() == (START, TICK)
    s.ticks = 1
    assert s.next_event() == (START, STATUS)
    s.statuses = 1
    assert s.next_event() == (START + 0.01, TICK)  # the queue trigger is no timer: no TRIGGER event
    rate = LaneSchedule(POLICY_LANE, _hold_lane(sim_cfg, SimClock(START)), START, sim_cfg)
    rate.ticks = 1
    assert rate.next_event() == (START, TRIGGER)
    assert ARRIVAL < TICK < STATUS < TRIGGER


def test_session_ticks_triggers_and_delivers_on_the_bag_clock(sim_cfg):
    clock = SimClock()
    lane = _hold_lane(sim_cfg, clock)
    session = _session(sim_cfg, {HOLD_LANE: lane}, clock, stop=START + 2.0)
    end = _replay(session, _messages(sim_cfg, 2.0))
    assert end == pytest.approx(START + 2.0)
    ctrl, trig = 1.0 / sim_cfg.executor.control_rate, 1.0 / sim_cfg.policy.rate_hz
    assert lane.requests == round(2.0 / trig) + 1  # every trigger of [start, end]
    assert lane.records and all(r.arrival == r.triggered_at for r in lane.records)  # latency none
    np.testing.assert_allclose(np.diff([r.triggered_at for r in lane.records]), trig, atol=1e-9)
    arr = lane.arrays()
    # events at a message's time run before it: the tick at START had no feedback pose yet (no command)
    assert arr["t"][0] == pytest.approx(START + ctrl)
    # a chunk arriving at its trigger comes after that instant's tick, and (as on the executor node) it
    # enters the plan after the next tick: the first tick following the chunk is the one after that
    first = lane.records[0]
    assert first.accepted and arr["t"][~arr["hold"]][0] == pytest.approx(first.arrival + 2 * ctrl)
    assert arr["hold"][arr["t"] <= first.arrival + ctrl + 1e-9].all()
    np.testing.assert_allclose(np.diff(arr["t"]), ctrl, atol=1e-9)
    # hold chunks repeat the observed pose (x = 0.4 + 0.05 t): the commands follow the arm along +x
    # the newest feedback pose, stamped with its receive time (the executor node's rule)
    assert lane.feedback.pose is not None and lane.feedback.time == pytest.approx(START + 2.0)
    x = arr["position"][~arr["hold"], 0]
    assert np.all(np.diff(x) >= -1e-9) and x[-1] > x[0] + 0.05 and x[-1] <= 0.4 + 0.05 * 2.0 + 1e-9
    np.testing.assert_allclose(arr["position"][~arr["hold"], 1:], [[0.0, 0.3]] * len(x), atol=1e-9)
    assert lane.status is not None and lane.status.chunks_received == len(lane.records)
    assert session.arrivals[sim_cfg.robot.camera_topics[0]][0] == START


def test_batched_lane_defers_the_executor_and_gives_the_inline_commands(sim_cfg):
    msgs = _messages(sim_cfg, 2.0)
    inline_clock, batched_clock = SimClock(), SimClock()
    inline = _hold_lane(sim_cfg, inline_clock)
    batched = _hold_lane(sim_cfg, batched_clock, batch_size=4)
    s_batched = _session(sim_cfg, {HOLD_LANE: batched}, batched_clock, stop=START + 2.0)

    def feed(lo: float, hi: float) -> None:
        for m in msgs:
            if lo < m.t <= hi:
                s_batched.run_events(m.t)
                batched_clock.now = max(batched_clock.now, m.t)
                s_batched.on_message(m)

    # the trigger at START comes before the first message (no observation); until its 4th observation
    # (the trigger at START + 0.8) a batched lane has run no inference and no executor step ...
    feed(-1.0, START + 0.75)
    assert batched.requests == 4 and batched.no_observation_times == [START]
    assert not batched.records and len(batched.execution.commands) == 0 and batched.timing.executor == 0
    # ... then it infers the four and replays the events recorded meanwhile: the arrivals of the first three
    # and the ticks START+0.01 .. START+0.8 (the tick at START had no feedback pose); the 4th arrives next
    feed(START + 0.75, START + 0.81)
    assert [r.triggered_at for r in batched.records] == pytest.approx([START + 0.2, START + 0.4, START + 0.6])
    assert len(batched.execution.commands) == 80 and batched.timing.executor > 0
    feed(START + 0.81, START + 2.0)
    s_batched.finish(len(msgs))
    _replay(_session(sim_cfg, {HOLD_LANE: inline}, inline_clock, stop=START + 2.0), msgs)
    a, b = inline.arrays(), batched.arrays()
    assert len(a["t"]) > 100
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert [(r.triggered_at, r.arrival, r.accepted) for r in inline.records] == \
        [(r.triggered_at, r.arrival, r.accepted) for r in batched.records]
    assert inline.status.chunks_received == batched.status.chunks_received
    assert batched.batch_size == 4 and inline.batch_size == 1


def test_a_chunk_arriving_on_a_tick_enters_the_plan_after_that_tick(sim_cfg):
    cfg = sim_cfg.with_overrides({"replay.latency": "fixed", "replay.fixed_latency": 0.05})
    clock = SimClock()
    lane = _hold_lane(cfg, clock)
    _replay(_session(cfg, {HOLD_LANE: lane}, clock, stop=START + 1.0), _messages(cfg, 1.0))
    first = lane.records[0]
    assert first.triggered_at == START + 0.2 and first.injected_latency == 0.05
    assert first.arrival == START + 25 * (1.0 / cfg.executor.control_rate)  # exactly a tick's time
    arr = lane.arrays()
    # in flight for 0.05 s (the executor holds meanwhile); it arrives before the tick of its instant, which
    # still holds (the node admits chunks after a tick), and the next tick executes it
    ctrl = 1.0 / cfg.executor.control_rate
    assert arr["t"][~arr["hold"]][0] == pytest.approx(first.arrival + ctrl)
    assert arr["hold"][arr["t"] <= first.arrival + 1e-9].all()
