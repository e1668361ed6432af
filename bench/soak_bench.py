#!/usr/bin/env python3
"""Soak: `vla-ros run` under camera load for minutes, one-process vs two-process deployment.

Why: in one process (`vla-ros run --composed`) the 100 Hz control loop shares the GIL with image
decoding and inference; on 2 cores with 2 cameras x 640x480 x 30 Hz it missed 11.6 % of its ticks
(gaps up to 794 ms, issue 11). The default deployment runs the executor in its own process; this
bench shows both side by side and checks that memory stays flat over a long run.

Set-up, per deployment (default: split, then composed):
- `vla_ros.ros.sensor_sim` in its own process: 2 cameras at --width x --height rgb8, --camera-rate
  Hz, joint states + EE pose at 60 Hz, the instruction (latched);
- `vla-ros run --policy flow_matching --checkpoint CKPT [--composed]` as a real command, with every
  other setting at its default (100 Hz control, 5 Hz inference, dry_run: commands on
  preview/target_pose, in a namespace of its own). CKPT: --checkpoint, or a tiny random
  flow-matching checkpoint (2 cameras, 224 px, what `vla-ros make-checkpoint --cameras
  primary,wrist` writes);
- a listener in this process records the stamp of every command (= the executor's tick time) and
  the executor's own ExecutorStatus.loop_period_max.

Measured after --warmup s (the policy loaded and commands flowing), for --minutes:
- RSS of the runner and its executor child (VmRSS from /proc) every --sample s, and its drift;
- ticks late by more than 2 control periods (gaps between consecutive command stamps > 2/rate),
  the fraction of expected ticks missing, and the worst command gap;
- the worst loop period the executor itself reported, chunks received and watchdog holds.

Goals: flat memory (drift within noise) and no tick later than 2 periods in the default
deployment. The machine should be otherwise idle; other load shows up as gaps in both columns.

    python bench/soak_bench.py                      # 10 minutes per deployment
    python bench/soak_bench.py --minutes 1 --deployment split
    python bench/soak_bench.py --set executor.realtime_priority=50   # SCHED_FIFO control loop (needs rtprio)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a source checkout too
# Own DDS domain, localhost only: never talk to a real robot or another bench.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 200)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from vla_ros.msg import ExecutorStatus  # noqa: E402

RUN = (sys.executable, "-c", "import sys; from vla_ros.cli import main; sys.exit(main())", "run")
DEPLOYMENTS = {"split": (), "composed": ("--composed",)}


# ----------------------------------------------------------------------------- /proc
def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


# ----------------------------------------------------------------------------- listener
class Listener(Node):
    """Command stamps and executor status, recorded from a spinning thread."""

    def __init__(self, namespace: str):
        super().__init__("soak_listener")
        self.stamps: list[float] = []
        self.status: list[ExecutorStatus] = []
        self.recording = False
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(PoseStamped, f"/{namespace}/preview/target_pose", self._on_cmd, qos)
        self.create_subscription(ExecutorStatus, f"/{namespace}/executor_status", self._on_status, qos)
        self.seen = 0
        self.namespace = namespace

    def _on_cmd(self, msg: PoseStamped) -> None:
        self.seen += 1
        if self.recording:
            self.stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    def _on_status(self, msg: ExecutorStatus) -> None:
        if self.recording:
            self.status.append(msg)


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    rss: list[tuple[float, float, float]] = field(default_factory=list)  # (t, runner MB, executor child MB)
    ticks: int = 0
    expected: int = 0
    late: int = 0
    worst_gap: float = float("nan")
    status_worst_period: float = float("nan")
    chunks: int = 0
    holds: int = 0
    load: list[float] = field(default_factory=list)  # 1-min load average at each RSS sample
    note: str = ""

    @property
    def missing(self) -> float:
        return max(0.0, 1.0 - self.ticks / self.expected) if self.expected else float("nan")

    def rss_total(self) -> np.ndarray:
        return np.array([r[1] + r[2] for r in self.rss]) if self.rss else np.zeros(0)

    def drift(self) -> tuple[float, float]:
        """(last - first sample MB, least-squares slope MB/min) of the total RSS."""
        tot = self.rss_total()
        if len(tot) < 2:
            return float("nan"), float("nan")
        t = np.array([r[0] for r in self.rss]) / 60.0
        return float(tot[-1] - tot[0]), float(np.polyfit(t, tot, 1)[0])


def _progress():
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[info]}"))
    except ImportError:
        return None


def soak(name: str, args, checkpoint: str, listener: Listener, log_dir: Path) -> Result:
    res = Result(name)
    period = 1.0 / args.control_rate
    sim = subprocess.Popen(
        [sys.executable, "-m", "vla_ros.ros.sensor_sim", "--width", str(args.width), "--height", str(args.height),
         "--camera-rate", str(args.camera_rate), "--state-rate", "60", "--instruction", "pick up the red cube"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = open(log_dir / f"run_{name}.log", "w")
    run = subprocess.Popen([*RUN, "--policy", "flow_matching", "--checkpoint", checkpoint,
                            "--control-rate", str(args.control_rate), "--namespace", listener.namespace,
                            *(("--set", args.set) if args.set else ()), *DEPLOYMENTS[name]],
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        start_seen = listener.seen
        deadline = time.monotonic() + 180.0
        while listener.seen < start_seen + 50:
            if run.poll() is not None or time.monotonic() > deadline:
                res.note = f"no commands (runner exit {run.poll()}); see {log.name}"
                return res
            time.sleep(0.1)
        time.sleep(args.warmup)
        listener.stamps.clear()
        listener.status.clear()
        listener.recording = True
        t0 = time.monotonic()
        duration = args.minutes * 60.0
        progress = _progress()
        next_sample = 0.0
        if progress is not None:
            progress.start()
            task = progress.add_task(f"{name:<9}", total=duration, info="")
        while (elapsed := time.monotonic() - t0) < duration:
            if run.poll() is not None:
                res.note = f"runner exited ({run.returncode}) after {elapsed:.0f} s"
                break
            if elapsed >= next_sample:
                kids = _children(run.pid)
                res.rss.append((elapsed, rss_mb(run.pid), sum(rss_mb(k) for k in kids)))
                res.load.append(os.getloadavg()[0])
                next_sample += args.sample
                line = (f"{name:<9} t={elapsed:5.0f} s  RSS runner {res.rss[-1][1]:6.1f} MB + executor child "
                        f"{res.rss[-1][2]:5.1f} MB")
                if progress is not None:
                    progress.console.print(line)
                else:
                    print(line, flush=True)
            if progress is not None:
                progress.update(task, completed=elapsed, info=f"{len(listener.stamps)} commands")
            time.sleep(0.2)
        if progress is not None:
            progress.update(task, completed=duration)
            progress.stop()
        listener.recording = False
        res.seconds = time.monotonic() - t0
    finally:
        listener.recording = False
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
            try:
                run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
        log.close()

    stamps = np.sort(np.array(listener.stamps))
    np.save(log_dir / f"stamps_{name}.npy", stamps)  # for a closer look at the gaps
    if len(stamps) >= 2:
        gaps = np.diff(stamps)
        res.ticks = len(stamps)
        res.expected = int(round((stamps[-1] - stamps[0]) / period)) + 1
        res.late = int(np.sum(gaps > 2.0 * period))
        res.worst_gap = float(gaps.max())
    if listener.status:
        res.status_worst_period = max(s.loop_period_max for s in listener.status)
        res.chunks = listener.status[-1].chunks_received - listener.status[0].chunks_received
        res.holds = listener.status[-1].holds - listener.status[0].holds
    return res


def report(results: list[Result], rate: float) -> None:
    names = [r.name + (" (default)" if r.name == "split" else "") for r in results]
    w = 22
    print("\n" + " " * 40 + "".join(f"{n:>{w}}" for n in names))

    def row(label: str, values) -> None:
        print(f"{label:<40}" + "".join(f"{v:>{w}}" for v in values))

    row("measured (s)", [f"{r.seconds:.0f}" for r in results])
    row("RSS first sample, runner+child (MB)", [f"{r.rss_total()[0]:.1f}" if len(r.rss) else "-" for r in results])
    row("RSS last sample, runner+child (MB)", [f"{r.rss_total()[-1]:.1f}" if len(r.rss) else "-" for r in results])
    row("RSS drift last-first (MB) / slope (MB/min)", [f"{r.drift()[0]:+.1f} / {r.drift()[1]:+.2f}" for r in results])
    row(f"command ticks received / expected @{rate:g} Hz", [f"{r.ticks} / {r.expected}" for r in results])
    row("ticks missing (%)", [f"{100 * r.missing:.2f}" for r in results])
    row("gaps > 2 periods (count)", [str(r.late) for r in results])
    row("worst command gap (ms)", [f"{1000 * r.worst_gap:.1f}" for r in results])
    row("worst loop period, executor status (ms)", [f"{1000 * r.status_worst_period:.1f}" for r in results])
    row("chunks received / holds", [f"{r.chunks} / {r.holds}" for r in results])
    row(f"load average, mean ({os.cpu_count()} CPUs)", [f"{np.mean(r.load):.2f}" if r.load else "-" for r in results])
    for r in results:
        if r.note:
            print(f"note ({r.name}): {r.note}")
    default = next((r for r in results if r.name == "split"), None)
    if default is not None and default.ticks:
        print(f"goal, default deployment: no gap > 2 periods -> {'met' if default.late == 0 else 'NOT met'} "
              f"({default.late} gaps, worst {1000 * default.worst_gap:.1f} ms)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="measured time per deployment (default 10)")
    ap.add_argument("--deployment", choices=("both", *DEPLOYMENTS), default="both")
    ap.add_argument("--checkpoint", default="", help="flow_matching checkpoint ('' = a tiny random 2-camera one)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--camera-rate", type=float, default=30.0)
    ap.add_argument("--control-rate", type=float, default=100.0)
    ap.add_argument("--set", default="",
                    help="more `vla-ros run --set` overrides, e.g. 'executor.realtime_priority=50'")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds after the first commands before measuring")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="soak_bench_"))
    checkpoint = args.checkpoint
    if not checkpoint:
        from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint

        checkpoint = str(make_tiny_checkpoint(tmp / "checkpoint", cameras=("primary", "wrist")))
    print(f"soak_bench: {args.minutes:g} min per deployment, 2 cameras {args.width}x{args.height} @ "
          f"{args.camera_rate:g} Hz, control {args.control_rate:g} Hz, checkpoint {checkpoint}, {os.cpu_count()} CPUs; "
          f"logs in {tmp}",
          flush=True)

    rclpy.init()
    # The graph in its own namespace: commands from anything else on this domain are never counted.
    listener = Listener(f"soak{os.getpid()}")
    executor = SingleThreadedExecutor()
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    names = list(DEPLOYMENTS) if args.deployment == "both" else [args.deployment]
    results = []
    try:
        for name in names:
            results.append(soak(name, args, checkpoint, listener, tmp))
    finally:
        executor.shutdown()
        listener.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    report(results, args.control_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
