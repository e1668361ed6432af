"""Executor control-loop jitter and per-tick CPU cost, alone and next to a policy doing inference.

What it runs: the real `ExecutorNode` (rclpy, SingleThreadedExecutor, control-rate timer, dry-run
so nothing leaves the preview topics) at 100 Hz and 500 Hz, fed over DDS by a separate feeder
process that publishes 10 Hz action chunks and the end-effector pose. Three load cases:

- alone:           only the feeder;
- policy process:  the feeder process also runs a tiny policy continuously (inference back to back);
- policy thread:   the same policy loop in a thread of the executor's own process (GIL contention).

The "tiny policy" is the real flow-matching policy from
`vla_ros.policy.flow_matching.tiny.make_tiny_checkpoint` when it is importable, otherwise a small
torch transformer; either runs with one torch thread and its per-inference time is printed.

Each case runs twice: with normal scheduling and with ``executor.realtime_priority`` (SCHED_FIFO
for the spinning thread, via the node's `set_realtime_priority`; skipped when not permitted).

Figures per case: the timer period's deviation from nominal (jitter p50 / p99 / max, ms), late
ticks (period > 1.5x nominal), and the CPU time of one control callback (time.thread_time around
tick + publish, us). Also the ROS-free `ChunkExecutor.tick` cost alone. Goal from issue #5:
p99 jitter < 1 ms at 100 Hz under policy load. Runs in about a minute:

    python bench/executor_bench.py [--seconds 2.5] [--policy auto|real|transformer] [--priority 50]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# Private DDS domain, localhost only: other sessions' nodes never see the bench's traffic.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 200)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")

import numpy as np  # noqa: E402

from vla_ros.ros.executor_node import GIL_SWITCH_INTERVAL  # noqa: E402

DEFAULT_SWITCH_INTERVAL = sys.getswitchinterval()
WARMUP_S = 0.5
CHUNK_TOPIC = "bench_chunks"
POSE_TOPIC = "/bench_ee_pose"


# ---------------------------------------------------------------------------------------- policy load
class TinyPolicyLoad:
    """Back-to-back inference of a tiny policy (one torch thread) until stopped."""

    def __init__(self, kind: str, checkpoint: str | None):
        import torch

        torch.set_num_threads(1)
        self.kind = kind
        self.count = 0
        if kind == "real":
            from vla_ros.core.types import EEPose, Observation
            from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy

            self.policy = FlowMatchingPolicy.load(checkpoint)
            m = self.policy.metadata
            self.obs = Observation(
                stamp=0.0,
                images={c: np.random.default_rng(0).integers(0, 255, (*m.image_size, 3), dtype=np.uint8)
                        for c in m.cameras},
                ee_pose=EEPose(np.array([0.4, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0])),
                gripper=1.0,
                instruction="pick up the red cube",
            )
            self._step = lambda: self.policy.infer(self.obs)
        else:
            layer = torch.nn.TransformerEncoderLayer(128, 4, 512, batch_first=True)
            self.model = torch.nn.TransformerEncoder(layer, 3).eval()
            self.x = torch.randn(1, 64, 128)

            def step():
                with torch.inference_mode():
                    self.model(self.x)

            self._step = step
        for _ in range(3):
            self._step()
        t = time.perf_counter()
        for _ in range(5):
            self._step()
        self.infer_ms = (time.perf_counter() - t) / 5 * 1e3

    def step(self) -> None:
        self._step()
        self.count += 1


def make_checkpoint(choice: str) -> tuple[str, str | None]:
    """('real', path) for the flow-matching tiny policy, or ('transformer', None)."""
    if choice in ("auto", "real"):
        try:
            from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint

            return "real", str(make_tiny_checkpoint(tempfile.mkdtemp(prefix="vla_executor_bench_")))
        except Exception as exc:  # noqa: BLE001 - any failure: fall back, and say so
            if choice == "real":
                raise
            print(f"(flow_matching tiny policy unavailable: {type(exc).__name__}: {exc}; using a torch transformer)")
    return "transformer", None


# ---------------------------------------------------------------------------------------- feeder
def run_feeder(policy_kind: str | None, checkpoint: str | None) -> int:
    """Separate process: 10 Hz chunks + 100 Hz EE pose; with a policy, inference runs back to back."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from vla_ros.core.types import ActionChunk
    from vla_ros.msg import ActionChunk as ActionChunkMsg
    from vla_ros.ros.conversions import ENCODER, header, pose_msg

    load = TinyPolicyLoad(policy_kind, checkpoint) if policy_kind else None
    rclpy.init()
    node = rclpy.create_node("executor_bench_feeder")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    chunk_pub = node.create_publisher(ActionChunkMsg, CHUNK_TOPIC, qos)
    pose_pub = node.create_publisher(PoseStamped, POSE_TOPIC, qos)
    print(f"feeder ready infer_ms={load.infer_ms if load else 0.0:.2f}", flush=True)
    seq, next_chunk, next_pose = 0, 0.0, 0.0
    h, dt = 20, 0.05
    try:
        while rclpy.ok():
            now_m = time.monotonic()
            t = node.get_clock().now().nanoseconds * 1e-9
            if now_m >= next_pose:
                next_pose = now_m + 0.01
                pose_pub.publish(PoseStamped(header=header(t, "base_link"),
                                             pose=pose_msg([0.4, 0.0, 0.3], [0, 0, 0, 1.0])))
            if now_m >= next_chunk:
                next_chunk = now_m + 0.1
                ts = t + dt * np.arange(h)
                acts = np.zeros((h, 7))
                acts[:, 0] = 0.4 + 0.03 * np.sin(2 * np.pi * 0.3 * ts)
                acts[:, 1] = 0.03 * np.cos(2 * np.pi * 0.3 * ts)
                acts[:, 2] = 0.3
                acts[:, 5] = 0.2 * np.sin(2 * np.pi * 0.2 * ts)
                acts[:, 6] = 0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * ts)
                chunk_pub.publish(ENCODER.action_chunk(ActionChunk(stamp=t, dt=dt, actions=acts, seq=seq,
                                                                   policy_id="bench")))
                seq += 1
            if load is not None:
                load.step()
            else:
                time.sleep(0.002)
            rclpy.spin_once(node, timeout_sec=0.0)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def start_feeder(policy_kind: str | None, checkpoint: str | None) -> tuple[subprocess.Popen, float]:
    cmd = [sys.executable, __file__, "--feeder"]
    if policy_kind:
        cmd += ["--feeder-policy", policy_kind] + (["--checkpoint", checkpoint] if checkpoint else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    while line and not line.startswith("feeder ready"):
        line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"feeder failed to start:\n{proc.stdout.read() if proc.stdout else ''}")
    return proc, float(line.split("infer_ms=")[1])


def stop_feeder(proc: subprocess.Popen) -> None:
    proc.send_signal(2)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------- measurement
def measure(rate: float, seconds: float) -> dict:
    """Run an ExecutorNode at `rate` for WARMUP_S + `seconds`; period/jitter/CPU figures."""
    from rclpy.executors import SingleThreadedExecutor

    from vla_ros.core.config import config_from_dict
    from vla_ros.ros.executor_node import ExecutorNode

    cfg = config_from_dict({
        "executor": {"control_rate": rate, "dry_run": True, "output_mode": "both", "gripper_output": "both",
                     "strategy": "crossfade", "status_rate_hz": 10.0},
        "policy": {"chunk_topic": CHUNK_TOPIC},
        "robot": {"ee_pose_topic": POSE_TOPIC},
    })
    node = ExecutorNode(cfg, node_name=f"executor_bench_{int(rate)}")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        deadline = time.monotonic() + 10.0
        while node.core.chunks_received == 0 and time.monotonic() < deadline:  # discovery + first chunk
            ex.spin_once(timeout_sec=0.05)
        node.tick_log = []
        end = time.monotonic() + WARMUP_S + seconds
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        log = np.array(node.tick_log)
        status = node.core.status(node.now())
    finally:
        ex.shutdown()
        node.destroy_node()
    starts = log[:, 0]
    keep = starts >= starts[0] + WARMUP_S
    periods = np.diff(starts[keep])
    cpu = log[keep, 1]
    nominal = 1.0 / rate
    jitter = np.abs(periods - nominal)
    return {
        "ticks": int(keep.sum()),
        "period_mean_ms": periods.mean() * 1e3,
        "jit_p50": np.percentile(jitter, 50) * 1e3,
        "jit_p99": np.percentile(jitter, 99) * 1e3,
        "jit_max": jitter.max() * 1e3,
        "late": int(np.count_nonzero(periods > 1.5 * nominal)),
        "cpu_mean_us": cpu.mean() * 1e6,
        "cpu_p99_us": np.percentile(cpu, 99) * 1e6,
        "chunks": status.chunks_received,
        "state": status.state_name,
    }


def core_tick_cost(n: int = 3000) -> tuple[float, float]:
    """ROS-free ChunkExecutor.tick CPU cost (us, mean and p99) with 3 overlapping crossfaded chunks."""
    from vla_ros.core.config import config_from_dict
    from vla_ros.core.executor import ChunkExecutor
    from vla_ros.core.types import ActionChunk, EEPose

    ex = ChunkExecutor.from_config(config_from_dict({"executor": {"strategy": "crossfade", "output_mode": "both"}}))
    pose = EEPose(np.array([0.4, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]))
    ex.tick(0.0, pose)
    costs = []
    t = 0.0
    for k in range(n):
        t += 0.01
        if k % 10 == 0:
            acts = np.tile([0.4, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0], (20, 1))
            acts[:, 0] += 0.01 * np.sin(t + 0.05 * np.arange(20))
            ex.submit(ActionChunk(stamp=t - 0.03, dt=0.05, actions=acts), t)
        c0 = time.thread_time()
        ex.tick(t, pose)
        costs.append(time.thread_time() - c0)
    c = np.array(costs[100:]) * 1e6
    return float(c.mean()), float(np.percentile(c, 99))


# ---------------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.5, help="measured seconds per case (after 0.5 s warm-up)")
    ap.add_argument("--priority", type=int, default=50, help="SCHED_FIFO priority for the realtime rows (0 = skip)")
    ap.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    ap.add_argument("--policy", choices=("auto", "real", "transformer"), default="auto")
    ap.add_argument("--feeder", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--feeder-policy", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.feeder:
        return run_feeder(args.feeder_policy, args.checkpoint)

    t_start = time.monotonic()
    import rclpy

    kind, ckpt = make_checkpoint(args.policy)
    print(f"executor bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"policy load = {kind}, {args.seconds:g} s per case, rclpy SingleThreadedExecutor\n")
    mean_us, p99_us = core_tick_cost()
    print(f"ROS-free ChunkExecutor.tick (crossfade, 3 overlapping chunks): {mean_us:.0f} us mean, {p99_us:.0f} us "
          "p99\n")

    from vla_ros.ros.executor_node import set_realtime_priority

    scheds = ["normal"]
    if args.priority > 0:
        err = set_realtime_priority(args.priority)
        set_realtime_priority(0)
        if err:
            print(f"(SCHED_FIFO rows skipped: {err})")
        else:
            scheds.append(f"fifo {args.priority}")

    rclpy.init()
    results: dict[tuple[str, str, float], dict] = {}
    infer_ms: dict[str, float] = {}
    loads = ("alone", "policy process", "policy thread")
    try:
        for load in loads:
            feeder, ms = start_feeder(kind if load == "policy process" else None, ckpt)
            stop = threading.Event()
            thread = None
            if load == "policy process":
                infer_ms[load] = ms
            if load == "policy thread":
                policy = TinyPolicyLoad(kind, ckpt)
                infer_ms[load] = policy.infer_ms

                def loop():
                    while not stop.is_set():
                        policy.step()

                thread = threading.Thread(target=loop, daemon=True)  # created before any FIFO switch: normal
                sys.setswitchinterval(GIL_SWITCH_INTERVAL)  # as executor_node and `vla-ros run --composed` do
                thread.start()
            try:
                for sched in scheds:
                    for rate in args.rates:
                        set_realtime_priority(args.priority if sched != "normal" else 0)
                        try:
                            results[(load, sched, rate)] = measure(rate, args.seconds)
                        finally:
                            set_realtime_priority(0)
            finally:
                stop.set()
                if thread is not None:
                    thread.join()
                    sys.setswitchinterval(DEFAULT_SWITCH_INTERVAL)
                stop_feeder(feeder)
    finally:
        if rclpy.ok():
            rclpy.shutdown()

    for load, ms in infer_ms.items():
        print(f"tiny policy ({kind}, 1 torch thread) in the {load.split()[1]}: {ms:.1f} ms per inference, back to back")
    print()
    print(f"{'rate':>5} {'load':<15} {'sched':<8} {'ticks':>6} {'period':>7} {'jitter p50':>10} {'p99':>6} {'max':>6} "
          f"{'late':>5} {'cpu/tick':>8} {'cpu p99':>7}")
    print(f"{'Hz':>5} {'':<15} {'':<8} {'':>6} {'ms':>7} {'ms':>10} {'ms':>6} {'ms':>6} {'>1.5T':>5} {'us':>8} "
          f"{'us':>7}")
    for (load, sched, rate), r in sorted(results.items(), key=lambda kv: (kv[0][2], loads.index(kv[0][0]), kv[0][1])):
        print(f"{rate:>5.0f} {load:<15} {sched:<8} {r['ticks']:>6} {r['period_mean_ms']:>7.3f} {r['jit_p50']:>10.3f} "
              f"{r['jit_p99']:>6.3f} {r['jit_max']:>6.2f} {r['late']:>5} {r['cpu_mean_us']:>8.0f} "
              f"{r['cpu_p99_us']:>7.0f}")
    print()
    for sched in scheds:
        for rate in args.rates:
            alone = results[("alone", sched, rate)]["jit_p99"]
            ratios = ", ".join(
                f"{load} {results[(load, sched, rate)]['jit_p99']:.3f} ms = "
                f"{results[(load, sched, rate)]['jit_p99'] / max(alone, 1e-9):.1f}x" for load in loads[1:]
            )
            print(f"{rate:>4.0f} Hz {sched:<8} p99 jitter alone {alone:.3f} ms; {ratios}")
    for rate in args.rates:
        cpu = results[("alone", "normal", rate)]["cpu_mean_us"]
        print(f"{rate:>4.0f} Hz control callback CPU (alone): {cpu:.0f} us per tick = {cpu * rate / 1e4:.1f} % of one "
              "core")
    if 100.0 in args.rates:
        print()
        for sched in scheds:
            worst = max(results[(load, sched, 100.0)]["jit_p99"] for load in loads[1:])
            verdict = "PASS" if worst < 1.0 else "FAIL"
            print(f"goal p99 jitter < 1 ms at 100 Hz under policy load, {sched:<8}: worst {worst:.3f} ms -> {verdict}")
    if ckpt:
        shutil.rmtree(Path(ckpt).parent if Path(ckpt).parent.name.startswith("vla_executor_bench_") else ckpt,
                      ignore_errors=True)
    print(f"(bench took {time.monotonic() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
