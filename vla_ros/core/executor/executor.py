"""`ChunkExecutor`: the ROS-free action-chunk executor, driven by an injected clock.

The rclpy node (`vla_ros.ros.executor_node`), the rosbag replay and the tests all run this one
class; none of them pass wall time in implicitly - every call takes ``now`` (float seconds on the
caller's clock: ROS time in the node, bag/simulated time in the replay), so a replay is exact and
deterministic.

API (everything the node and the replay call)::

    ex = ChunkExecutor(executor_cfg, safety_cfg, frame_id="base_link")   # or ChunkExecutor.from_config(vla_cfg)
    ex.submit(chunk: ActionChunk, now) -> SubmitResult          # a chunk arrived at `now`
    ex.submit_msg(msg, now) -> SubmitResult                      # same from an ActionChunk message (rclpy or
                                                                 #   rosbags); malformed -> counted rejection
    ex.reject(reason) -> SubmitResult                            # count a chunk that could not be decoded
    ex.tick(now, current_pose: EEPose | None = None,
            pose_time: float | None = None) -> Command | None    # one control step; None = no reference pose yet
    ex.estop(now, reason="...") ; ex.reset(now) ; ex.estopped     # latched e-stop
    ex.plan(now) -> ExecutionPlan                                # remaining plan + committed steps (RTC)
    ex.status(now, dry_run=...) -> ExecutorStatusData            # everything ExecutorStatus.msg carries

Call order per control period: ``tick`` once; ``submit`` whenever a chunk arrives (any time);
``now`` must not go backwards (if it does - a bag loops, a simulator resets - the plan is
dropped and the executor holds). Not thread-safe: the node serialises calls with a lock.

Behaviour in one paragraph: a chunk is placed on the timeline from its observation stamp
(`timeline`: latency compensation skips the actions already in the past), combined with the
current plan by the configured strategy (`blending`), entered through a bridge when it starts far
from the last command (`bridge`), sampled at every tick by interpolation (`interpolation`), and
every command passes the safety limits (`safety`). No valid chunk for ``watchdog_timeout`` ->
the plan is dropped and the last safe command is held (`watchdog`); the e-stop latches a hold
until `reset`, and a chunk observed before the e-stop never runs after it.

Plausibility (`plausibility`) comes before all of that: a chunk is refused whole when it leaves
the workspace (plus a margin), starts out of reach of the measured pose, carries gripper values
out of range, is too long, or (DELTA) carries a reference that is not where the arm is; a measured
pose that is outside the workspace, jumps faster than an arm can move, or is older than
``safety.max_pose_age`` is never used: the executor drops its plan and holds, and says why.
While idle (no chunk yet) the hold target follows the plausible measured pose through the safety
filter, so the first chunk's bridge starts where the arm really is; before any plausible pose the
executor outputs nothing. Twist output servos only on a plausible, fresh pose, its own integral is
kept inside the workspace, and a measured pose that stops following that integral (a frozen
publisher) makes it hold. After a stall of the control loop the step limits grow with at most two
control periods, never with the whole gap.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from vla_ros.core.config import ExecutorConfig, SafetyConfig, VlaConfig
from vla_ros.core.executor.blending import Plan, make_strategy
from vla_ros.core.executor.frames import chunk_in_frame
from vla_ros.core.executor.bridge import Bridge, plan_bridge
from vla_ros.core.executor.command import Command, ExecutorState, ExecutorStatusData
from vla_ros.core.executor.interpolation import PoseSample, quat_delta_rotvec
from vla_ros.core.executor.plausibility import CHUNK_PROBLEM_CODES, PoseMonitor, check_chunk
from vla_ros.core.executor.safety import LIMIT_NAMES, SafetyFilter
from vla_ros.core.executor.stats import DelayStats, LoopStats
from vla_ros.core.executor.timeline import TIME_EPS, grid_after, place_chunk
from vla_ros.core.executor.watchdog import Watchdog
from vla_ros.core.msg_decode import ChunkTooLong, MessageError, chunk_from_msg
from vla_ros.core.executor.rtc import ExecutionPlan
from vla_ros.core.tf_buffer import TransformBuffer, TransformError
from vla_ros.core.types import ActionChunk, EEPose

_ZERO3 = np.zeros(3)
# After a stall, the safety filter's per-tick limits scale with at most this many control periods.
MAX_STEP_PERIODS = 2.0


class SubmitResult(NamedTuple):
    """Outcome of one `submit`: accepted into the plan, or why not."""

    accepted: bool
    reason: str = ""
    skipped: int = 0
    delay: float = 0.0


class ChunkExecutor:
    """Turns action chunks into a stream of safe end-effector commands (see the module docstring)."""

    def __init__(
        self,
        executor: ExecutorConfig | None = None,
        safety: SafetyConfig | None = None,
        *,
        frame_id: str = "base_link",
    ):
        self.cfg = executor or ExecutorConfig()
        self.safety_cfg = safety or SafetyConfig()
        self.frame_id = frame_id
        # Transforms for chunks in another frame (`frames.chunk_in_frame`); None = such chunks are refused.
        self.transforms: TransformBuffer | None = None
        self.chunks_transformed = 0
        self.strategy = make_strategy(self.cfg.strategy, self.cfg.ensemble_decay)
        self.safety = SafetyFilter(self.safety_cfg)
        self.monitor = PoseMonitor(self.safety_cfg)
        self.watchdog = Watchdog(self.cfg.watchdog_timeout)
        self.loop_stats = LoopStats()
        self.delays = DelayStats(self.cfg.delay_window)
        self._twist = self.cfg.output_mode in ("twist", "both")

        self._plan: Plan | None = None
        self._bridge: Bridge | None = None
        self._plan_changed = False  # a new chunk entered the plan: check for a bridge at the next tick
        self._last_cmd: PoseSample | None = None
        self._last_tick: float | None = None
        self._pose: PoseSample | None = None  # the current plausible, fresh measured pose (None: none)
        self._twist_integral: np.ndarray | None = None  # where the twist commands alone would have taken the arm
        self._twist_last = _ZERO3  # the last commanded linear twist
        self._tracking_fault = False  # the measured pose stopped following the twist integral (latched)
        self._estop = False
        self._estop_reason = ""
        self._estop_time = -math.inf  # chunks observed before this never run
        self._had_chunk = False
        self._state = ExecutorState.IDLE
        self._hold_reason = ""
        self._reason = ""  # why the last tick held (status message)
        self._message = ""  # last rejection / stale chunk / waiting note
        self._last_seq = 0
        self._last_policy = ""

        self.chunks_received = 0
        self.chunks_rejected = 0
        self.chunks_stale = 0
        self.skipped_steps = 0
        self.clamps = 0
        self.holds = 0
        self.bridges = 0
        self.chunk_problems: dict[str, int] = dict.fromkeys(CHUNK_PROBLEM_CODES, 0)
        self.pose_holds = 0  # ticks held because the measured pose was implausible or stale

    @classmethod
    def from_config(cls, cfg: VlaConfig) -> "ChunkExecutor":
        return cls(cfg.executor, cfg.safety, frame_id=cfg.robot.base_frame)

    def set_safety(self, safety: SafetyConfig) -> None:
        """Apply new safety limits from the next tick / chunk on (a run-time parameter change).

        `safety` must be validated (schema + ``SafetyConfig.check``); the counters are kept.
        """
        self.safety_cfg = safety
        self.safety.set_config(safety)
        self.monitor.safety = safety

    def set_twist_gain(self, gain: float) -> None:
        """Apply a new ``executor.twist_gain`` (validated by the schema) from the next tick on."""
        self.cfg = dataclasses.replace(self.cfg, twist_gain=float(gain))

    # ------------------------------------------------------------------ chunks in
    def submit(self, chunk: ActionChunk, now: float) -> SubmitResult:
        """A validated chunk arrived at `now`: place it, combine it with the plan (or say why not)."""
        self.chunks_received += 1
        if not isinstance(chunk, ActionChunk):
            return self._reject(f"action_chunk: expected an ActionChunk, got {type(chunk).__name__}",
                                count_received=False)
        ahead = chunk.stamp - now
        if ahead > self.cfg.max_future_stamp:
            return self._reject(
                f"action_chunk.header.stamp: {ahead:.3f} s in the future (executor.max_future_stamp = "
                f"{self.cfg.max_future_stamp} s); are the policy and executor clocks synchronised?",
                count_received=False,
            )
        delay = now - chunk.stamp
        self.delays.record(delay)
        if self._estop:
            self._message = f"e-stop latched: chunk {chunk.seq} ignored until reset"
            return SubmitResult(False, self._message, 0, delay)
        if chunk.stamp < self._estop_time:
            self.chunks_stale += 1
            self._message = (f"chunk {chunk.seq} was observed {self._estop_time - chunk.stamp:.3f} s before the last "
                             "e-stop: never executed after the reset")
            return SubmitResult(False, self._message, 0, delay)
        if self.transforms is not None and chunk.frame_id and self.frame_id and chunk.frame_id != self.frame_id:
            try:
                chunk = chunk_in_frame(chunk, self.frame_id, self.transforms)
            except TransformError as exc:
                self.chunk_problems["frame"] += 1
                return self._reject(f"chunk {chunk.seq} (frame): header.frame_id {chunk.frame_id!r}: no transform to "
                                    f"{self.frame_id!r} (robot.base_frame): {exc}", count_received=False)
            self.chunks_transformed += 1
        problem = check_chunk(chunk, self.safety_cfg, measured=self.monitor.fresh_pose(now), now=now,
                              max_steps=self.cfg.max_chunk_steps, frame_id=self.frame_id)
        if problem is not None:
            self.chunk_problems[problem.code] += 1
            return self._reject(f"chunk {chunk.seq} ({problem.code}): {problem.message}", count_received=False)
        self._check_watchdog(now)
        if self._plan is not None and chunk.stamp < self._plan.stamp - TIME_EPS:
            self.chunks_stale += 1
            self._message = f"chunk {chunk.seq} is older than the plan's chunk {self._plan.seq}: ignored"
            return SubmitResult(False, self._message, 0, delay)
        placed = place_chunk(chunk, now, self.cfg.latency_compensation)
        if placed is None:
            self.chunks_stale += 1
            self.skipped_steps += chunk.horizon
            self._message = (f"chunk {chunk.seq} arrived {delay:.3f} s after its observation: "
                             f"all {chunk.horizon} steps past")
            return SubmitResult(False, self._message, chunk.horizon, delay)

        self.skipped_steps += placed.skipped
        self.watchdog.feed(now)
        self._had_chunk = True
        self._hold_reason = ""
        self._message = ""
        self._last_seq, self._last_policy = placed.seq, placed.policy_id
        if self._bridge is not None:
            # A newer chunk during a bridge restarts the transition from wherever the arm is now.
            if now < self._bridge.end_time:
                self._plan = None
            self._bridge = None
        self._plan = self.strategy.combine(self._plan, placed, now)
        self._plan_changed = True
        return SubmitResult(True, "", placed.skipped, delay)

    def submit_msg(self, msg: Any, now: float, topic: str = "action_chunk") -> SubmitResult:
        """Decode an ActionChunk message (rclpy or rosbags) and `submit` it; malformed -> rejected."""
        try:
            chunk = chunk_from_msg(msg, topic, max_steps=self.cfg.max_chunk_steps)
        except ChunkTooLong as exc:
            return self.reject(str(exc), code="length")
        except (MessageError, ValueError, TypeError, AttributeError) as exc:
            return self.reject(str(exc))
        return self.submit(chunk, now)

    def reject(self, reason: str, code: str = "") -> SubmitResult:
        """Count a chunk that never became an ActionChunk (malformed message); `code`, if given, is
        one of CHUNK_PROBLEM_CODES (e.g. "length" for a chunk refused by its size before decoding)."""
        if code:
            self.chunk_problems[code] += 1
        return self._reject(reason, count_received=True)

    def _reject(self, reason: str, count_received: bool) -> SubmitResult:
        if count_received:
            self.chunks_received += 1
        self.chunks_rejected += 1
        self._message = f"chunk rejected: {reason}"
        return SubmitResult(False, reason)

    # ------------------------------------------------------------------ e-stop
    def estop(self, now: float, reason: str = "e-stop") -> None:
        """Latch a hold of the last safe command; the plan is dropped. Stays until `reset`."""
        if not self._estop:
            self._estop = True
            self._estop_reason = f"e-stop latched ({reason}); reset required"
        self._estop_time = max(self._estop_time, now)
        self._drop_plan()
        self._state = ExecutorState.ESTOP
        self._reason = self._estop_reason

    def reset(self, now: float) -> None:
        """Release the e-stop. The arm keeps holding until a new chunk arrives (no old plan resumes)."""
        if self._estop:
            self._estop = False
            self._hold_reason = "e-stop reset: holding until the next chunk"
            self._state = ExecutorState.HOLDING if self._had_chunk else ExecutorState.IDLE
            self._reason = self._hold_reason

    @property
    def estopped(self) -> bool:
        return self._estop

    @property
    def state(self) -> ExecutorState:
        return self._state

    # ------------------------------------------------------------------ control loop
    def tick(self, now: float, current_pose: EEPose | None = None, pose_time: float | None = None) -> Command | None:
        """One control step at `now`: the safe command to send, or None before any plausible pose.

        `current_pose` is the measured end-effector pose (in `frame_id`) measured at `pose_time`
        (default `now`); it is judged by `PoseMonitor` first. While idle the hold target follows
        it; twist output servos towards the plan with it. An implausible or stale pose (older than
        ``safety.max_pose_age``) drops the plan and holds (zero twist), with the reason.
        """
        if current_pose is not None:
            when = now if pose_time is None else float(pose_time)
            if when != self.monitor.reading_time:  # a new reading, not the same one passed again
                self.monitor.update(current_pose, when)
        if self._last_tick is not None and now < self._last_tick - TIME_EPS:
            self._drop_plan()
            self.loop_stats.reset_origin()
            self._last_tick = None
            self._hold_reason = f"clock jumped back to {now:.3f} s: plan dropped"
        self.loop_stats.record(now)
        period = 1.0 / self.cfg.control_rate
        dt = now - self._last_tick if self._last_tick is not None else period
        self._last_tick = now
        dt_limit = min(dt, MAX_STEP_PERIODS * period)  # a stall never licenses a bigger jump
        self._check_watchdog(now)

        pose_problem = self.monitor.problem(now)
        fresh = self.monitor.pose if not pose_problem else None
        self._pose = PoseSample(fresh.position, fresh.orientation, None) if fresh is not None else None
        if self._last_cmd is None:
            if self._pose is None:
                self._state = ExecutorState.ESTOP if self._estop else ExecutorState.IDLE
                self._reason = f"{pose_problem}: no command yet"
                return None
            self._last_cmd = self._pose  # the initial hold pose: where the arm is (plausible, fresh)
        prev = self._last_cmd
        limits: tuple[str, ...] = ()
        hold = True
        reason = ""
        safe = prev
        if self._estop:
            state, reason = ExecutorState.ESTOP, self._estop_reason
        elif pose_problem:
            if self._plan is not None:
                self._drop_plan()
                self._hold_reason = f"plan dropped: {pose_problem}"
            self.pose_holds += 1
            state = ExecutorState.HOLDING if self._had_chunk else ExecutorState.IDLE
            reason = f"holding: {pose_problem}"
        elif self._plan is not None:
            plan = self._plan
            if self._plan_changed:
                self._plan_changed = False
                bridge = plan_bridge(prev, plan.waypoints.sample(now), now, self.cfg)
                if bridge is not None:
                    plan.shift(bridge.end_time - now)
                    self._bridge = bridge
                    self.bridges += 1
            if self._bridge is not None and now >= self._bridge.end_time:
                self._bridge = None
            raw = self._bridge.sample(now) if self._bridge is not None else plan.waypoints.sample(now)
            finished = self._bridge is None and now > plan.end + TIME_EPS
            safe, flags, bad = self.safety.filter_pose(raw, prev, dt_limit)
            limits = tuple(flags)
            if safe.gripper is None:
                safe = PoseSample(safe.position, safe.quaternion, prev.gripper)
            hold = bad or finished
            state = ExecutorState.HOLDING if hold else ExecutorState.RUNNING
            if bad:
                reason = "non-finite command replaced by a hold"
            elif finished:
                reason = "plan finished: holding its last pose until the next chunk"
        elif not self._had_chunk:
            # Idle: the hold target follows where the arm is (hand guiding, another controller).
            follow, flags, _ = self.safety.filter_pose(PoseSample(self._pose.position, self._pose.quaternion,
                                                                  prev.gripper), prev, dt_limit)
            safe, limits = follow, tuple(flags)
            state, reason = ExecutorState.IDLE, "no chunk received yet: holding the measured pose"
        else:
            state, reason = ExecutorState.HOLDING, self._hold_reason or "holding"
        if hold and state == ExecutorState.HOLDING and self.safety.outside(prev.position):
            # Limits tightened at run time: a held pose outside the new box walks back in at the allowed speed.
            safe, flags, _ = self.safety.filter_pose(prev, prev, dt_limit)
            limits = limits + tuple(flags)

        linear, angular = _ZERO3, _ZERO3
        if self._twist:
            why = self._tracking_problem(dt)
            if not hold and not why:
                linear, angular, tlimits, why = self._servo_twist(safe, prev, dt, dt_limit)
                limits = limits + tlimits
            if why and not hold:
                safe, hold, reason, state = prev, True, why, ExecutorState.HOLDING
                if self._plan is not None:
                    self._drop_plan()
                    self._hold_reason = f"plan dropped: {why}"
            if hold:
                linear, angular = _ZERO3, _ZERO3
                self._twist_last = _ZERO3
                if not self._tracking_fault:
                    self._twist_integral = None  # re-synchronised to the measured pose when the twist resumes

        if hold and state != ExecutorState.IDLE:
            self.holds += 1
        if limits:
            self.clamps += 1
        self._state = state
        self._reason = reason
        self._last_cmd = safe
        return Command(
            stamp=now,
            frame_id=self.frame_id,
            position=safe.position,
            orientation=safe.quaternion,
            gripper=safe.gripper,
            linear=linear,
            angular=angular,
            state=state,
            hold=hold,
            limits=limits,
            reason=reason,
        )

    def _tracking_problem(self, dt: float) -> str:
        """Advance the twist integral by the last twist; "" while the measured pose follows it.

        The twist is integrated from the measured pose where it starts. A measured pose further
        than ``safety.max_tracking_error`` from that integral is not following the commands (a
        frozen publisher, a wrong transform): the fault latches - the integral is kept, not
        re-synchronised - until the measured pose agrees with it again.
        """
        if self._twist_integral is None or self._pose is None:
            return ""
        self._twist_integral = self._twist_integral + self._twist_last * dt
        self._twist_last = _ZERO3
        drift = float(np.linalg.norm(self._pose.position - self._twist_integral))
        self._tracking_fault = drift > self.safety_cfg.max_tracking_error
        if not self._tracking_fault:
            return ""
        return (f"measured end-effector pose is {drift:.3f} m from where the twist commands took the arm (more than "
                f"safety.max_tracking_error = {self.safety_cfg.max_tracking_error} m): frozen or wrong pose? zero "
                "twist")

    def _servo_twist(self, safe: PoseSample, prev: PoseSample, dt: float,
                     dt_limit: float) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
        """(linear, angular, limits, why-held) of the twist towards `safe` from the measured pose.

        Feed-forward of the command's own motion plus ``twist_gain`` x (target - measured); speeds
        capped by the safety filter, and the components cut that would carry the twist's own
        integral (see `_tracking_problem`) out of the workspace box.
        """
        pose = self._pose
        integral = pose.position.copy() if self._twist_integral is None else self._twist_integral
        gain = self.cfg.twist_gain
        ff_lin = (safe.position - prev.position) / dt if dt > 0.0 else _ZERO3
        ff_ang = quat_delta_rotvec(prev.quaternion, safe.quaternion) / dt if dt > 0.0 else _ZERO3
        linear = ff_lin + gain * (safe.position - pose.position)
        angular = ff_ang + gain * quat_delta_rotvec(pose.quaternion, safe.quaternion)
        linear, angular, tflags, tbad = self.safety.filter_twist(linear, angular)
        if tbad:
            self._twist_integral = None
            return _ZERO3, _ZERO3, tuple(tflags), "non-finite twist replaced by zero"
        linear = self.safety.keep_inside(integral, linear, dt_limit, tflags)
        self._twist_integral, self._twist_last = integral, linear
        return linear, angular, tuple(tflags), ""

    def _check_watchdog(self, now: float) -> None:
        if (self._plan is not None or self._bridge is not None) and self.watchdog.expired(now):
            silence = self.watchdog.silence(now)
            self._drop_plan()
            self._hold_reason = (
                f"watchdog: no valid chunk for {silence:.2f} s (executor.watchdog_timeout = {self.watchdog.timeout} s)"
            )

    def _drop_plan(self) -> None:
        self._plan = None
        self._bridge = None
        self._plan_changed = False

    # ------------------------------------------------------------------ plan / status out
    def plan(self, now: float) -> ExecutionPlan:
        """The remaining plan sampled on the newest chunk's grid from the first step at/after `now`.

        ``committed_steps`` = ceil(delay / dt) where delay is ``executor.expected_delay`` or, when
        that is 0, the largest chunk delay measured over the last ``delay_window`` chunks.
        """
        plan = self._plan
        if plan is None or self._estop:
            return ExecutionPlan.empty(now, plan.dt if plan is not None else 0.0, self.frame_id)
        dt = plan.dt
        end = self._plan_end()
        start = grid_after(plan.origin, dt, now)
        if start > end + TIME_EPS:
            return ExecutionPlan.empty(start, dt, self.frame_id)
        n = int(math.floor((end - start) / dt + 1e-6)) + 1
        times = start + dt * np.arange(n)
        actions = plan.waypoints.sample_many(times).actions()
        if self._bridge is not None:
            inside = times < self._bridge.end_time
            if np.any(inside):
                actions[inside] = self._bridge.sample_many(times[inside]).actions()
        delay = self.cfg.expected_delay if self.cfg.expected_delay > 0.0 else self.delays.max
        committed = min(n, math.ceil(delay / dt - 1e-9)) if delay > 0.0 else 0
        return ExecutionPlan(start, dt, max(0, committed), actions, self.frame_id)

    def _plan_end(self) -> float:
        end = self._plan.end if self._plan is not None else 0.0
        if self._bridge is not None:
            end = max(end, self._bridge.end_time)
        return end

    def status(self, now: float, dry_run: bool | None = None) -> ExecutorStatusData:
        """Snapshot of counters, state and plan at `now` (what ExecutorStatus.msg publishes)."""
        plan = self.plan(now)
        mean, p99, mx = self.loop_stats.summary()
        remaining = max(0.0, self._plan_end() - now) if self._plan is not None and not self._estop else 0.0
        parts = [self._reason] if self._state != ExecutorState.RUNNING and self._reason else []
        if self._message and self._message not in parts:
            parts.append(self._message)
        message = "; ".join(parts)
        return ExecutorStatusData(
            stamp=now,
            state=self._state,
            dry_run=self.cfg.dry_run if dry_run is None else dry_run,
            chunk_seq=self._last_seq,
            policy_id=self._last_policy,
            remaining_time=remaining,
            remaining_steps=plan.steps,
            chunks_received=self.chunks_received,
            chunks_rejected=self.chunks_rejected,
            chunks_stale=self.chunks_stale,
            skipped_steps=self.skipped_steps,
            last_chunk_delay=self.delays.last,
            mean_chunk_delay=self.delays.mean,
            clamps=self.clamps,
            holds=self.holds,
            bridges=self.bridges,
            limit_counts={name: self.safety.counts[name] for name in LIMIT_NAMES},
            loop_period_mean=mean,
            loop_period_p99=p99,
            loop_period_max=mx,
            plan=plan,
            message=message,
            watchdog_trips=self.watchdog.trips,
            frame_id=self.frame_id,
            limit_excess=dict(self.safety.excess),
        )
