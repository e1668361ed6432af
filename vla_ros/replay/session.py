"""The event scheduler of one bag's replay: every lane on one simulated clock, the bag in time order.

Between two bag messages the session runs every lane event due by the next message's time, the
earliest first (on a tie: the first lane, then a chunk arriving, the control tick, a status
snapshot, a trigger - the order of `ARRIVAL`, `TICK`, `STATUS`, `TRIGGER`), and then hands the
message to its roles (`vla_ros.replay.bag_inputs.TopicRoles`): the ground-truth collector, and
every lane (once per message: its policy half routes it, its executor half takes the EE pose as
feedback, both by the nodes' rules); TF / forward-kinematics messages first become EE poses on the
virtual topic.

    session = ReplaySession(cfg, bag.start, stop, clock, lanes, poses, roles, collector, output)
    n = session.read(bag, path, progress=True)      # messages handled
    end = session.finish(n, remote)                 # the last events, the lanes' final state
"""

from __future__ import annotations

import time
from typing import Any

from vla_ros.core import msg_decode
from vla_ros.core.config import VlaConfig
from vla_ros.replay.bag_inputs import POSE_SOURCE_ROLES, PoseSources, TopicRoles
from vla_ros.replay.bag_io import Bag, BagMessage
from vla_ros.replay.ground_truth import GroundTruthCollector
from vla_ros.replay.lane import Lane, Timing
from vla_ros.replay.replay_output import ReplayOutput

# Order of simultaneous events: a chunk arriving, the control tick, a status snapshot, a trigger.
ARRIVAL, TICK, STATUS, TRIGGER = 0, 1, 2, 3
LANE_ROLES = frozenset(("camera", "joints", "ee_pose", "instruction"))  # roles whose messages go to the lanes


class SimClock:
    """The replay's simulated clock (bag seconds): the time of the event or message being handled."""

    __slots__ = ("now",)

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class LaneSchedule:
    """When one lane's next event falls: its control ticks, status snapshots and rate triggers so far."""

    __slots__ = ("name", "lane", "start", "ctrl_dt", "status_dt", "trig_dt", "ticks", "statuses", "triggers")

    def __init__(self, name: str, lane: Lane, start: float, cfg: VlaConfig):
        self.name, self.lane, self.start = name, lane, start
        self.ctrl_dt = 1.0 / cfg.executor.control_rate
        self.trig_dt = 1.0 / cfg.policy.rate_hz
        self.status_dt = 1.0 / cfg.executor.status_rate_hz
        self.ticks = self.statuses = self.triggers = 0

    def next_event(self) -> tuple[float, int]:
        """(time, kind) of the lane's next event."""
        lane = self.lane
        best = (self.start + self.ticks * self.ctrl_dt, TICK)
        if lane.in_flight is not None:
            best = min(best, (lane.in_flight.arrival, ARRIVAL))
        if lane.needs_status:
            best = min(best, (self.start + self.statuses * self.status_dt, STATUS))
        if lane.trigger is None:
            best = min(best, (self.start + self.triggers * self.trig_dt, TRIGGER))
        return best


class ReplaySession:
    """One bag's replay loop (module docstring); its wall time per part goes to ``timing``."""

    def __init__(self, cfg: VlaConfig, start: float, stop: float, clock: SimClock, lanes: dict[str, Lane],
                 poses: PoseSources, roles: TopicRoles, collector: GroundTruthCollector,
                 output: ReplayOutput | None = None, timing: Timing | None = None):
        self.cfg = cfg
        self.start, self.stop = start, stop
        self.clock = clock
        self.lanes = lanes
        self.schedules = [LaneSchedule(name, lane, start, cfg) for name, lane in lanes.items()]
        self.poses = poses
        self.roles = roles
        self.collector = collector
        self.output = output
        self.timing = timing if timing is not None else Timing()
        self.arrivals: dict[str, list[float]] = {}  # receive times of the cameras and joint states (gap warnings)
        self.latency_mode, self.fixed_latency = cfg.replay.latency, cfg.replay.fixed_latency

    # ------------------------------------------------------------------------------ lane events
    def run_events(self, until: float) -> None:
        """Every lane event due by `until`, in time order."""
        schedules = self.schedules
        while True:
            best = None
            for s in schedules:
                tk = s.next_event()
                if best is None or tk < best[0]:
                    best = (tk, s)
            (t, kind), s = best
            if t > until + 1e-12:
                return
            self.clock.now = t
            self._handle(s, kind, t)

    def _handle(self, s: LaneSchedule, kind: int, t: float) -> None:
        lane, output = s.lane, self.output
        if kind == ARRIVAL:
            rec = lane.deliver(t)
            if output is not None:
                output.chunk(s.name, rec)
        elif kind == TICK:
            s.ticks += 1
            cmd = lane.tick(t)
            if output is not None and cmd is not None:
                output.command(s.name, t, cmd)
        elif kind == STATUS:
            s.statuses += 1
            if lane.snapshot(t):
                self._start_inference(lane, t)
        else:
            s.triggers += 1
            self._start_inference(lane, t)
            lane.flush()

    def _start_inference(self, lane: Lane, t: float) -> None:
        # A chunk without latency is delivered by the arrival event at the same time, next.
        lane.infer(t, self.latency_mode, self.fixed_latency)

    # ------------------------------------------------------------------------------ bag messages
    def dispatch(self, roles: Any, topic: str, msg: Any, now: float) -> None:
        """One message in its roles: to the ground truth, and (once) to every lane."""
        to_lanes = False
        for role in roles:
            if role == "gt":
                self.collector.add(topic, now, msg)
            elif role in LANE_ROLES:
                to_lanes = True
                if role in ("camera", "joints"):
                    self.arrivals.setdefault(topic, []).append(now)
        if to_lanes:
            decoded = self._decode_pose(msg) if topic == self.poses.ee_topic else None
            for lane in self.lanes.values():
                lane.on_message(topic, msg, now, decoded)

    def _decode_pose(self, msg: Any) -> Any:
        """An EE pose decoded once for every lane (None if malformed: each lane's rules then say why)."""
        try:
            return msg_decode.pose_to_ee(msg.pose, str(msg.header.frame_id) or self.cfg.robot.base_frame,
                                         self.poses.ee_topic)
        except (msg_decode.MessageError, AttributeError, TypeError, ValueError):
            return None

    def on_message(self, m: BagMessage) -> None:
        """A bag message in each of its roles (TF / FK ones as the EE poses they yield)."""
        now = m.t
        roles = self.roles.bag.get(m.topic, ())
        for role in roles:
            if role in POSE_SOURCE_ROLES:
                ee_topic = self.poses.ee_topic
                for pose_msg in self.poses.poses(role, m.msg, now):
                    self.dispatch(self.roles.virtual.get(ee_topic, ()), ee_topic, pose_msg, now)
        self.dispatch([r for r in roles if r not in POSE_SOURCE_ROLES], m.topic, m.msg, now)

    def read(self, bag: Bag, name: str, progress: bool = True) -> int:
        """Replay the bag's messages up to ``stop`` (with a progress bar); the number handled."""
        timing, output, clock, stop = self.timing, self.output, self.clock, self.stop
        roles = self.roles.bag
        bar = None
        if progress:
            from tqdm.auto import tqdm

            total = sum(max(0, bag.topics[t].count) for t in roles) or None
            bar = tqdm(total=total, desc=f"eval {name}", unit="msg", leave=False, mininterval=0.25)
        n_msgs = 0
        t_io = time.perf_counter()
        for m in bag.messages(list(roles), raw=output is not None):
            timing.bag_io += time.perf_counter() - t_io
            if m.t > stop + 1e-9:
                break
            self.run_events(m.t)
            clock.now = max(clock.now, m.t)
            t0 = time.perf_counter()
            self.on_message(m)
            timing.inputs += time.perf_counter() - t0
            if output is not None and m.raw is not None:
                output.raw(m.topic, m.t_ns, m.raw)
            n_msgs += 1
            if bar is not None:
                bar.update(1)
            t_io = time.perf_counter()
        if bar is not None:
            bar.close()
        return n_msgs

    # ------------------------------------------------------------------------------ the end
    def finish(self, n_msgs: int, remote: Any = None) -> float:
        """The events up to the end (the last message, or ``start`` for none), the lanes' last batches and
        final status (from the executor process `remote` if any), the output bag closed; the end time."""
        end = min(self.stop, self.clock.now) if n_msgs else self.start
        self.run_events(end)
        lanes, timing = self.lanes, self.timing
        for lane in lanes.values():
            lane.finish(end)
        if remote is not None:
            t0 = time.perf_counter()
            for name, execution in remote.finish(end).items():
                if name in lanes:
                    lanes[name].apply_remote(execution)
            timing.executor_wait = time.perf_counter() - t0
        for lane in lanes.values():
            timing.policy += lane.timing.policy
            timing.executor += lane.timing.executor
            timing.executor_remote += lane.timing.executor_remote
        if self.output is not None:
            self.output.close()
        return end
