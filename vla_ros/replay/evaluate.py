"""Replay a bag through the policy and the executor on the bag's own clock: what would the robot have done?

The loop drives the nodes' own ROS-free runtimes, with a simulated clock instead of ROS time. Each
lane (`vla_ros.replay.lane`) holds the `PolicyRuntime` that `PolicyNode` runs and the
`ExecutorRuntime` that `ExecutorNode` runs, so the replay behaves as the nodes do (tested against
the live nodes over DDS, in lockstep on sim time):

- every bag message is routed into the policy runtime at its bag (receive) time - the time the node
  would have seen it: `ObservationBuilder` (validation, approximate-time sync, max age, lazy decoding);
- `InferenceWorker.run_once` (newest observation, instruction changes reset the policy, chunk
  stamped with the observation, seq / latency filled) runs synchronously when the trigger is due:
  ``policy.trigger`` ``rate`` every ``1 / policy.rate_hz``, ``queue`` from the executor's
  ExecutorStatus messages at ``executor.status_rate_hz``; RTC guidance (``policy.rtc``) comes from
  the same statuses, read back through `ExecutorFeedback.from_msg` as over DDS;
- each chunk passes the policy node's chunk check (refused: never sent, recorded with ``sent``
  False) and leaves as a vla_ros/ActionChunk message; it reaches the executor ``latency`` after its
  inference started (``replay.latency``: none, measured = the inference's own wall time, fixed =
  ``replay.fixed_latency``), is decoded and validated there, and enters the plan after the next
  control tick (the node's order); while it is "in flight" further triggers are skipped, as the
  node's worker skips them;
- the executor ticks at ``executor.control_rate`` on the recorded EE pose by the node's rule (base
  frame only, stamped with its receive time).

Nothing sleeps: the replay runs as fast as the policy allows, and with latency none or fixed it
is deterministic (same chunks, same commands).

Batched inference (``replay.batch_size``): when no chunk can depend on the executor - trigger
``rate``, no RTC, latency ``none`` (and no output bag) - a lane only *takes* the observation at
each trigger (`InferenceWorker.take_pending`, exactly the one the node would use) and records its
executor events (ticks with their feedback pose, chunk arrivals); every ``batch_size`` triggers it
runs them as one batched inference (`Policy.infer_batch`, resets between tasks as the node does)
and then replays the recorded executor events in order. Same observations, same noise, same
executor inputs as one-at-a-time inference, up to float rounding of the batched forward pass
(tested); a flow-matching chunk then costs a fraction of a batch-1 forward pass on CPU or GPU.
Reported inference latency is then each chunk's share of its batch; ``replay.batch_size = 1`` (or
``replay.latency = measured``) gives per-chunk latencies. The `hold` baseline runs in a second lane on the
same message stream (one pass over the bag for both). The replay is open loop: the recorded
robot did what it did; the commands are scored against what was actually commanded
(`vla_ros.replay.ground_truth`, `vla_ros.replay.metrics`).

Where it lives: `vla_ros.replay.lane` (a policy's lane), `vla_ros.replay.execution` (inline, batched or
remote executor), `vla_ros.replay.session` (the event scheduler), `vla_ros.replay.bag_inputs` (topic
roles, TF / FK poses), `vla_ros.replay.scoring` (metrics), `vla_ros.replay.report` (summary, HTML);
this module sets them up per bag and runs many bags.

    result = evaluate_bag("run1", cfg, policy)             # BagResult: lanes, ground truth, metrics
    result.metrics["policy"]["chunks"]["position_error_m"]["mean"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from vla_ros.core.config import ConfigError, VlaConfig
from vla_ros.core.msg_decode import Problem
from vla_ros.core.observation_builder import ObservationSpec
from vla_ros.policy.base import Policy
from vla_ros.policy.hold import HoldPolicy
from vla_ros.policy.registry import load_configured_policy
from vla_ros.replay.bag_inputs import PoseSources, TopicRoles, hold_spec, instruction_topic, required_topics
from vla_ros.replay.bag_io import Bag, BagError
from vla_ros.replay.executor_process import ExecutorProcess
from vla_ros.replay.fk_poses import fk_pose_topic
from vla_ros.replay.ground_truth import GroundTruth, GroundTruthCollector, select_sources
from vla_ros.replay.lane import HOLD_LANE, POLICY_LANE, Lane, Timing
from vla_ros.replay.quality import quality_warnings
from vla_ros.replay.replay_output import ReplayOutput
from vla_ros.replay.scoring import compute_metrics
from vla_ros.replay.session import ReplaySession, SimClock
from vla_ros.replay.tf_poses import tf_pose_topic, use_tf

__all__ = [
    "HOLD_LANE", "POLICY_LANE", "PROBLEM_LABELS", "BagResult", "EvalOutput", "evaluate_bag", "hold_for",
    "inference_batch_size", "run_evaluation",
]

PARALLEL_MIN_SECONDS = 10.0  # shorter bags keep the executors in process (see _executor_process)


@dataclass
class BagResult:
    """Everything one bag's evaluation produced (metrics per lane, raw series for the plots)."""

    path: Path
    name: str
    duration: float
    start: float
    end: float
    ground_truth: GroundTruth
    lanes: dict[str, Lane]
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)
    output_bag: str = ""
    messages: int = 0


def hold_for(policy: Policy) -> HoldPolicy:
    """The `hold` baseline with the same horizon and dt as `policy`."""
    meta = policy.metadata
    return HoldPolicy(horizon=meta.horizon, dt=meta.dt)


# Report labels of the input problems, keyed by the typed code (msg_decode.Problem)
PROBLEM_LABELS: dict[Problem, str] = {
    Problem.STAMP: "skipped (header stamp unset, ahead of the clock, or going backwards)",
    Problem.STALE: "observations dropped as too old (sync.max_age)",
    Problem.ENCODING: "skipped (unsupported encoding)",
    Problem.SIZE: "skipped (malformed image / joint state)",
    Problem.TOO_LARGE: "skipped (image larger than sync.max_image_pixels)",
    Problem.NONFINITE: "skipped (NaN or inf)",
    Problem.QUATERNION: "skipped (not a unit quaternion)",
    Problem.MISSING_JOINT: "skipped (joint missing)",
    Problem.DUPLICATE_JOINT: "skipped (duplicate joint names)",
    Problem.FRAME: "skipped (wrong frame_id)",
    Problem.IMPLAUSIBLE: "skipped (implausible end-effector pose)",
    Problem.DECODE: "skipped (image does not decode)",
    Problem.INSTRUCTION: "observations rejected (empty instruction)",
    Problem.CLOCK: "synchronizer resets (bag time jumped back)",
}


def _problem_warnings(lane: Lane) -> list[str]:
    out = []
    labels = PROBLEM_LABELS
    for (topic, code), n in sorted(lane.problems.items()):
        example = lane.problem_examples.get((topic, code), "")
        out.append(f"[{lane.name}] {topic}: {n} message(s) {labels.get(code, code)}; e.g. {example}")
    return out


def inference_batch_size(cfg: VlaConfig, *, writing: bool = False) -> int:
    """``replay.batch_size`` where no chunk can depend on the executor or on wall time, else 1
    (queue trigger and RTC read the executor state; measured/fixed latency put chunks in flight;
    the output bag is written in time order)."""
    p, r = cfg.policy, cfg.replay
    if p.trigger != "rate" or p.rtc or r.latency != "none" or writing:
        return 1
    return r.batch_size


@contextlib.contextmanager
def _executor_process(cfg: VlaConfig, batch: int, seconds: float) -> Iterator[ExecutorProcess | None]:
    """The second executor process when it can help, else None: batched, ``replay.parallel_executor``,
    2+ CPUs, and at least `PARALLEL_MIN_SECONDS` of bag (starting the process costs ~0.2-0.3 s of
    interpreter start-up, more than a short bag's executor time).

    While it runs it has a core of its own: torch's intra-op pool (if torch is in use) is capped at
    the other cores, so the two do not fight over one (measured on 2 cores: inference ~25 % faster).
    """
    cpus = os.cpu_count() or 1
    if batch <= 1 or not cfg.replay.parallel_executor or cpus < 2 or seconds < PARALLEL_MIN_SECONDS:
        yield None
        return
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else 0
    if threads > cpus - 1:
        torch.set_num_threads(cpus - 1)
    try:
        with ExecutorProcess(cfg, [POLICY_LANE, HOLD_LANE]) as remote:
            yield remote
    finally:
        if threads > cpus - 1:
            torch.set_num_threads(threads)


def evaluate_bag(path: str | Path, cfg: VlaConfig, policy: Policy, *, baseline: Policy | None = None,
                 progress: bool = True, out_bag: str | Path | None = None) -> BagResult:
    """Replay one bag with `policy` and the `hold` baseline; BagError if the bag cannot be evaluated.

    The policies are warmed up first (`Policy.warmup`, also for the batch size used): one-time
    costs such as tracing are neither inference latency (the node warms up at load too) nor part
    of the replay time in ``timing`` (they are paid once per process, not per bag).
    """
    baseline = baseline or hold_for(policy)
    batch = inference_batch_size(cfg, writing=out_bag is not None)
    for pol in (policy, baseline):
        pol.warmup()
        if batch > 1:
            pol.warmup(batch)
    t_start_wall = time.perf_counter()
    path = Path(path)
    warnings: list[str] = []

    with contextlib.ExitStack() as stack:
        bag = stack.enter_context(Bag(path))
        tf_mode = use_tf(cfg.robot, bag.topics)
        if tf_mode:  # the EE pose comes from /tf + /tf_static (tf_poses), under a name of its own
            cfg = cfg.with_overrides({"robot.ee_pose_topic": tf_pose_topic(cfg.robot.base_frame, cfg.robot.ee_frame)})
        elif cfg.robot.ee_pose_source == "fk":  # from the joint states by forward kinematics (fk_poses)
            cfg = cfg.with_overrides({"robot.ee_pose_topic": fk_pose_topic(cfg.robot.base_frame, cfg.robot.ee_frame)})
        try:
            return _evaluate_open_bag(bag, stack, path, cfg, policy, baseline, batch, progress, out_bag, tf_mode,
                                      t_start_wall, warnings)
        except BagError as exc:  # the bag's notes (e.g. no metadata.yaml) stay with its skip
            exc.notes = tuple(bag.notes)
            raise


def _evaluate_open_bag(bag: Bag, stack: contextlib.ExitStack, path: Path, cfg: VlaConfig, policy: Policy,
                       baseline: Policy, batch: int, progress: bool, out_bag, tf_mode: bool, t_start_wall: float,
                       warnings: list[str]) -> BagResult:
    """Set up the inputs, the lanes and the session for one open bag, replay it and score it."""
    robot = cfg.robot
    spec = ObservationSpec.from_config(robot, policy.metadata)
    poses = PoseSources.open(bag, path, robot, tf_mode)
    span = bag.end - bag.start if cfg.replay.max_duration <= 0 else min(bag.end - bag.start, cfg.replay.max_duration)
    remote = stack.enter_context(_executor_process(cfg, batch, span))
    warnings.extend(bag.notes)
    bag.require({t: w for t, w in required_topics([spec]).items() if t not in poses.virtual})
    ee_topic = poses.ee_topic
    hold_ok = bool(ee_topic) and (ee_topic in bag.topics or ee_topic in poses.virtual)
    if not hold_ok:
        warnings.append(f"hold baseline skipped: it needs the EE pose ({ee_topic or 'robot.ee_pose_topic is empty'}) "
                        "in the bag")
    instr_topic = instruction_topic(bag, path, cfg)
    sources = select_sources(bag, cfg, virtual=poses.virtual)
    collector = GroundTruthCollector(sources, cfg)

    clock = SimClock()
    lanes: dict[str, Lane] = {POLICY_LANE: Lane(POLICY_LANE, policy, spec, cfg, clock, batch, remote)}
    if hold_ok:
        lanes[HOLD_LANE] = Lane(HOLD_LANE, baseline, hold_spec(spec, robot), cfg, clock, batch, remote, flush_every=1)
    roles = TopicRoles.build(bag, robot, [t for lane in lanes.values() for t in lane.cameras], instr_topic, sources,
                             poses)
    timing = Timing()
    output = ReplayOutput(out_bag, bag, cfg.replay.output_prefix, timing) if out_bag is not None else None
    r = cfg.replay
    stop = bag.end if r.max_duration <= 0 else min(bag.end, bag.start + r.max_duration)
    session = ReplaySession(cfg, bag.start, stop, clock, lanes, poses, roles, collector, output, timing)
    n_msgs = session.read(bag, path.name, progress)
    if bag.truncated:
        warnings.append(bag.truncated)
    end = session.finish(n_msgs, remote)
    poses.check(path, warnings)
    gt = _ground_truth(path, collector, warnings)
    _check_policy_lane(path, lanes[POLICY_LANE], end)
    for lane in lanes.values():
        warnings.extend(_problem_warnings(lane))
        if lane.errors:
            warnings.append(f"[{lane.name}] {len(lane.errors)} inference error(s); last: {lane.errors[-1]}")
        if lane.refused:
            warnings.append(f"[{lane.name}] {len(lane.refused)} chunk(s) refused by the policy node's chunk check "
                            f"and never sent (as on the robot); last: {lane.refused[-1].reason}")
    timing.total = time.perf_counter() - t_start_wall
    result = BagResult(path, path.name, end - bag.start, bag.start, end, gt, lanes, {}, warnings, timing,
                       str(out_bag) if out_bag is not None else "", n_msgs)
    result.metrics = compute_metrics(result, cfg)
    quality = quality_warnings(result, cfg, session.arrivals)
    result.warnings.extend(quality)
    result.metrics["warnings"].extend(quality)
    return result


def _ground_truth(path: Path, collector: GroundTruthCollector, warnings: list[str]) -> GroundTruth:
    """The collected ground truth; BagError if it has no usable samples."""
    gt = collector.build()
    if collector.problems:
        warnings.append(f"ground truth: {collector.problems} message(s) could not be read; "
                        f"e.g. {collector.last_problem}")
    if gt.empty:
        raise BagError(f"bag {path}: ground truth ({collector.sources.describe()}) has no usable samples")
    return gt


def _check_policy_lane(path: Path, pol: Lane, end: float) -> None:
    """BagError if the policy produced no chunk, with why (its last error, or what the builder waited for)."""
    if not pol.records:
        why = pol.errors[-1] if pol.errors else (pol.builder.waiting_for(end) or "no synchronized observation")
        extra = "; ".join(_problem_warnings(pol)[:3])
        raise BagError(f"bag {path}: the policy produced no chunk: {why}" + (f" ({extra})" if extra else ""))


# ------------------------------------------------------------------------------------- many bags
@dataclass
class EvalOutput:
    """What `run_evaluation` produced: one summary row per bag (skipped ones with their reason)."""

    rows: list[dict[str, Any]]
    results: list[BagResult]
    out_dir: Path
    metrics_path: Path
    report_path: Path
    table: str

    @property
    def evaluated(self) -> int:
        return sum(1 for r in self.rows if r.get("ok"))

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.rows if not r.get("ok"))


def _unique_names(paths: list[Path]) -> list[str]:
    names, seen = [], Counter()
    for p in paths:
        base = p.name or str(p)
        if base.endswith(".mcap"):
            base = base[:-5]
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    if len(set(names)) != len(names):  # a base name equal to an earlier suffixed one
        names = [f"{i:02d}_{n}" for i, n in enumerate(names)]
    return names


def run_evaluation(bags: list[str | Path], cfg: VlaConfig, *, policy: Policy | None = None,
                   out_dir: str | Path | None = None, progress: bool = True, plots: bool = True,
                   title: str = "vla_ros offline evaluation", extra_info: dict[str, Any] | None = None,
                   extra_html: str = "", log: Callable[[str], None] = print) -> EvalOutput:
    """Evaluate every bag (a bad bag is reported and skipped), then write metrics.json, plots, index.html."""
    from vla_ros.policy.compat import check_compatible, compatibility_report

    out = Path(out_dir or cfg.replay.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    own_policy = policy is None
    if policy is None:
        policy = load_configured_policy(cfg.policy)
    try:
        meta = policy.metadata
        robot = cfg.robot
        if not robot.ee_pose_topic and robot.ee_pose_source != "topic":  # the EE pose can come from TF
            robot = dataclasses.replace(robot, ee_pose_topic=tf_pose_topic(robot.base_frame, robot.ee_frame))
        for line in compatibility_report(meta, robot, cfg.policy, timing=False):
            log(line)
        check_compatible(meta, robot, cfg.policy, timing=False)
        done = _evaluate_bags([Path(b) for b in bags], cfg, policy, out, progress, plots, log)
        return _write_outputs(done, cfg, meta, out, plots, title, extra_info, extra_html)
    finally:
        if own_policy:
            policy.close()


@dataclass
class _Evaluated:
    """What the bags of a `run_evaluation` gave so far: summary rows, results, metrics and report sections."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    results: list[BagResult] = field(default_factory=list)
    sections: list[tuple[str, dict, dict]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, name: str, path: Path, error: str, notes: list[str] | None = None) -> None:
        from vla_ros.replay import report as R

        self.rows.append(R.summary_row(name, str(path), error=error, notes=notes or ()))
        entry = {"name": name, "bag": str(path), "ok": False, "error": error}
        if notes is not None:
            entry["notes"] = notes
        self.metrics.append(entry)


def _evaluate_bags(paths: list[Path], cfg: VlaConfig, policy: Policy, out: Path, progress: bool, plots: bool,
                   log: Callable[[str], None]) -> _Evaluated:
    """Every bag in turn; a bag that cannot be evaluated is a skipped row with its reason."""
    import shutil

    from vla_ros.replay import plots as P
    from vla_ros.replay import report as R

    done = _Evaluated()
    for path, name in zip(paths, _unique_names(paths)):
        out_bag = None
        if cfg.replay.output_bag:
            out_bag = out / "bags" / f"{name}_replay"
            if out_bag.exists() and (out_bag / "metadata.yaml").is_file():
                shutil.rmtree(out_bag)  # our own output of an earlier run
        try:
            result = evaluate_bag(path, cfg, policy, progress=progress, out_bag=out_bag)
        except BagError as exc:
            log(f"skipped {name} (the reason is in the summary below)")
            done.skip(name, path, str(exc), notes=list(exc.notes))
            continue
        except ConfigError:  # the same for every bag: one configuration error, not one skip per bag
            raise
        except Exception as exc:  # noqa: BLE001 - one broken bag must not end a multi-bag evaluation
            msg = f"bag {path}: evaluation failed: {type(exc).__name__}: {exc}"
            log(f"skipped {name}: {msg}")
            done.skip(name, path, msg)
            continue
        result.name = name
        for w in result.warnings:
            log(f"warning ({name}): {w}")
        figs = P.plot_bag(result, out / "plots" / name) if plots else {}
        done.results.append(result)
        done.rows.append(R.summary_row(name, str(path), result.metrics))
        entry = {"name": name, "ok": True, **result.metrics}
        if result.output_bag:
            entry["output_bag"] = result.output_bag
        done.metrics.append(entry)
        done.sections.append((name, result.metrics, figs))
    return done


def _write_outputs(done: _Evaluated, cfg: VlaConfig, meta: Any, out: Path, plots: bool, title: str,
                   extra_info: dict[str, Any] | None, extra_html: str) -> EvalOutput:
    """metrics.json, the summary plot and index.html of the evaluated bags."""
    from vla_ros.replay import plots as P
    from vla_ros.replay import report as R

    rows = done.rows
    summary_plot = P.plot_summary(rows, out / "plots" / "summary.png") if plots else None
    mean = R.mean_row(rows)
    p = cfg.policy
    info = {
        "policy": meta.policy_type, "checkpoint": meta.checkpoint_id or "-", "robot": cfg.robot.name,
        "trigger": f"{p.trigger} ({p.rate_hz:g} Hz)" if p.trigger == "rate" else p.trigger,
        "executor": f"{cfg.executor.strategy} @ {cfg.executor.control_rate:g} Hz", "rtc": p.rtc,
        "latency": cfg.replay.latency if cfg.replay.latency != "fixed" else f"fixed {cfg.replay.fixed_latency:g} s",
        **(extra_info or {}),
    }
    doc = {
        "format": "vla_ros.eval", "version": 1, "info": info,
        "policy": {"type": meta.policy_type, "checkpoint": meta.checkpoint_id, "horizon": meta.horizon, "dt": meta.dt,
                   "action_mode": meta.action_mode.name.lower()},
        "summary": {"evaluated": sum(1 for r in rows if r["ok"]), "skipped": sum(1 for r in rows if not r["ok"]),
                    "rows": rows, "mean": mean},
        "config": cfg.to_dict(),
        "bags": done.metrics,
    }
    metrics_path = R.write_json(out / "metrics.json", doc)
    report_path = R.write_html(out / "index.html", title=title, rows=rows, bags=done.sections,
                               summary_plot=summary_plot, info=info, extra_html=extra_html)
    return EvalOutput(rows, done.results, out, metrics_path, report_path, R.format_table(rows))
