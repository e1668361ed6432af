#!/usr/bin/env python3
"""Policy node overhead: observation -> chunk latency through the node vs the bare `policy.infer`.

Set-up (one run, well under a minute on 2 cores):
- a separate process (`vla_ros.ros.sensor_sim`) publishes 2 cameras 640x480 rgb8 at 30 Hz plus
  joint states and the EE pose at 60 Hz, and the instruction (latched);
- this process runs the PolicyNode (tiny flow-matching checkpoint by default) triggered at
  ``--rate`` Hz and a listener node for its ActionChunks, both spun by one executor thread.

Measured per chunk (wall clock, ``time.perf_counter``):
- node, observation -> chunk: from the moment the worker takes the newest synchronized observation
  to the ActionChunk being received by a subscriber in the same process. That is everything the
  node adds around the policy for that observation: assembling it and decoding its two 640x480
  images, the inference, building and publishing the ActionChunk, DDS delivery;
- node, trigger -> chunk: the same plus waking the inference thread. The trigger's phase relative
  to the camera frames is arbitrary, so this wake-up does not make the observation older;
- bare: ``policy.infer`` on the very same Observation object, timed in this process right after
  each chunk arrives (in the idle time before the next trigger), so both see the same load;
- per-chunk overhead: node observation -> chunk minus the node's own ``policy.infer`` time.

Goal: overhead < 3 % of the policy time or < 2 ms.

    python bench/node_bench.py                     # tiny flow-matching checkpoint, CPU
    python bench/node_bench.py --chunks 200 --rate 5 --checkpoint DIR --device cuda
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a source checkout too
# Own DDS domain, localhost only: never talk to a real robot or another bench.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 200)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from vla_ros.msg import ActionChunk as ActionChunkMsg  # noqa: E402
from vla_ros.ros.policy_node import PolicyNode  # noqa: E402


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def row(name: str, values_ms) -> str:
    return f"  {name:<44} {pct(values_ms, 50):8.2f} {pct(values_ms, 99):8.2f}"


def wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"node_bench: timed out waiting for {what}")
        time.sleep(0.01)


def run_in_executor(executor, fn):
    """Run `fn` on the executor's spinning thread (lifecycle transitions touch timers)."""
    task = executor.create_task(fn)  # wakes the spinning executor
    wait(task.done, 30.0, "a task on the executor thread")
    return task.result()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=100, help="chunks measured (after --warmup)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rate", type=float, default=5.0, help="inference trigger rate (Hz)")
    ap.add_argument("--policy", default="flow_matching")
    ap.add_argument("--checkpoint", default="", help="checkpoint dir ('' = a tiny random flow-matching one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--camera-rate", type=float, default=30.0)
    ap.add_argument("--encoding", default="rgb8")
    args = ap.parse_args()

    t_start = time.monotonic()
    checkpoint = args.checkpoint
    if args.policy == "flow_matching" and not checkpoint:
        from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint

        checkpoint = str(make_tiny_checkpoint(tempfile.mkdtemp(prefix="node_bench_"), cameras=("primary", "wrist")))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    sim = subprocess.Popen(
        [sys.executable, "-m", "vla_ros.ros.sensor_sim", "--width", str(args.width), "--height", str(args.height),
         "--camera-rate", str(args.camera_rate), "--state-rate", str(2 * args.camera_rate), "--encoding", args.encoding,
         "--instruction", "pick up the red cube", "--best-effort"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    rclpy.init()
    params = {"policy.type": args.policy, "policy.checkpoint": checkpoint, "policy.device": args.device,
              "policy.dtype": args.dtype, "policy.rate_hz": args.rate, "policy.instruction": ""}
    node = PolicyNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    listener = Node("node_bench_listener")
    received: dict[int, float] = {}
    arrived = threading.Condition()

    def on_chunk(msg) -> None:
        received[msg.seq] = time.perf_counter()
        with arrived:
            arrived.notify()

    listener.create_subscription(ActionChunkMsg, "action_chunk", on_chunk,
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        if not run_in_executor(executor, node.start):
            raise SystemExit(f"node_bench: the node did not start: {node.status_msg().message}")
        policy = node.policy
        node.timing_log = []
        total = args.warmup + args.chunks
        # Interleaved: right after each chunk arrives, time a bare policy.infer on the observation it was
        # computed from, in the idle time before the next trigger, so both see the same machine load.
        bare_ms: list[float] = []
        bare_spans: list[tuple[float, float]] = []
        deadline = time.monotonic() + 30.0 + total / args.rate * 3
        while len(bare_ms) < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"node_bench: timed out waiting for chunks (status: {node.status_msg().message})")
            if len(node.timing_log) <= len(bare_ms) or node.timing_log[len(bare_ms)][0].chunk.seq not in received:
                with arrived:  # block (no polling: a polling thread would compete for the GIL)
                    arrived.wait(0.5)
                continue
            obs = node.timing_log[len(bare_ms)][0].observation
            t0 = time.perf_counter()
            policy.infer(obs)
            t1 = time.perf_counter()
            bare_ms.append((t1 - t0) * 1e3)
            bare_spans.append((t0, t1))
        run_in_executor(executor, node.trigger_deactivate)
        # A pair (node inference k, bare inference k) only counts if neither ran while the other
        # inference of the bench was running (under load an inference can outlast the trigger period).
        log = node.timing_log
        spans = [(r.requested_at, received[r.chunk.seq]) for r, _ in log]

        def clash(a: float, b: float, skip: int) -> bool:
            return any(lo < b and a < hi for j, (lo, hi) in enumerate(spans) if j != skip)

        keep = [k for k in range(args.warmup, total)
                if not clash(*bare_spans[k], skip=-1)
                and not any(a < spans[k][1] and spans[k][0] < b for a, b in bare_spans)]
        overlaps = args.chunks - len(keep)
        if len(keep) < max(10, args.chunks // 2):
            raise SystemExit(f"node_bench: only {len(keep)} of {args.chunks} chunks ran alone (machine overloaded?); "
                             "lower --rate")
        bare_ms = [bare_ms[k] for k in keep]
        records = [log[k] for k in keep]
        stats = node.builder.stats
        st = node.status_msg()

        node_ms, trig_ms, infer_ms, over_ms, wake_ms, take_ms, pub_ms, dds_ms, age_ms = ([] for _ in range(9))
        for rec, published in records:
            got = received[rec.chunk.seq]
            node_ms.append((got - rec.taken_at) * 1e3)
            trig_ms.append((got - rec.requested_at) * 1e3)
            infer_ms.append((rec.infer_end - rec.infer_start) * 1e3)
            over_ms.append(node_ms[-1] - infer_ms[-1])
            wake_ms.append((rec.taken_at - rec.requested_at) * 1e3)
            take_ms.append((rec.infer_start - rec.taken_at) * 1e3)
            pub_ms.append((published - rec.infer_end) * 1e3)
            dds_ms.append((got - published) * 1e3)
            age_ms.append(rec.chunk.observation_age * 1e3)

        meta = policy.metadata
        import torch

        print(f"policy: {meta.policy_type} {meta.checkpoint_id or ''} cameras={','.join(meta.cameras) or '-'} "
              f"image {meta.image_size[0]}px, {meta.device}/{meta.dtype}, torch threads {torch.get_num_threads()}")
        print(f"inputs: 2 cameras {args.width}x{args.height} {args.encoding} @ {args.camera_rate:g} Hz + joint states "
              f"+ EE pose @ {2 * args.camera_rate:g} Hz from another process; trigger {args.rate:g} Hz; "
              f"{len(records)} chunks measured after {args.warmup} warm-up")
        print(f"{'':46} {'p50 ms':>8} {'p99 ms':>8}")
        print(row("bare policy.infer (same observations)", bare_ms))
        print(row("node: observation -> chunk received", node_ms))
        print(row("  take newest observation, decode 2 images", take_ms))
        print(row("  policy.infer inside the node", infer_ms))
        print(row("  ActionChunk build + publish", pub_ms))
        print(row("  DDS delivery to a subscriber", dds_ms))
        print(row("per-chunk overhead (node - its own infer)", over_ms))
        print(row("node: trigger -> chunk received", trig_ms))
        print(row("  wake the inference thread", wake_ms))
        d50, d99 = pct(node_ms, 50) - pct(bare_ms, 50), pct(node_ms, 99) - pct(bare_ms, 99)
        o50 = pct(over_ms, 50)
        ratio = o50 / pct(bare_ms, 50) * 100.0
        print(f"  {'node - bare':<44} {d50:8.2f} {d99:8.2f}")
        print(f"overhead ratio (per-chunk overhead p50 / bare p50): {ratio:.1f} %  "
              f"(node p50 / bare p50 = {pct(node_ms, 50) / pct(bare_ms, 50):.3f})")
        ok = o50 < 2.0 or ratio < 3.0
        print(f"goal (< 3 % of policy time or < 2 ms): {'met' if ok else 'NOT met'}")
        print(row("observation age at inference start (ROS time)", age_ms))
        print(f"observations: synchronized {stats.synchronized}, used {st.observations_used}, "
              f"dropped {st.observations_dropped} (superseded between triggers), rejected {st.observations_rejected}; "
              f"triggers skipped busy {node.worker.stats.skipped_busy if node.worker else 0}")
        if overlaps:
            print(f"note: {overlaps} of {args.chunks} chunks left out: their node and bare inferences overlapped")
        print(f"total bench time {time.monotonic() - t_start:.1f} s")
        return 0
    finally:
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        sim.send_signal(2)
        try:
            sim.wait(5)
        except subprocess.TimeoutExpired:
            sim.kill()


if __name__ == "__main__":
    sys.exit(main())
