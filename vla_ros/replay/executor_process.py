"""The executor half of a batched replay, run in a second process beside the main one.

In a batched replay (`vla_ros.replay.execution.RemoteExecution`, ``replay.batch_size`` > 1) a lane's executor only
ever sees recorded events - control ticks with their feedback pose, and chunk arrivals once their
batch is inferred - and nothing it computes is needed before the end of the bag (no queue
trigger, no RTC). So the events can be streamed to another process that owns the lanes'
`ChunkExecutor`s, while the main process goes on reading the bag, checking inputs and running the
policy: on a 2-core machine the executor's ~third of the replay time comes off the critical path.
Same code, same inputs, same order: the commands are identical to an in-process replay (tested).

    remote = ExecutorProcess(cfg, ["policy", "hold"])   # starts the process, returns at once
    remote.send("policy", events)                        # any number of times, in time order
    results = remote.finish(now)                         # {lane: LaneExecution}; the process ends

Events are ``(TICK, now, position | None, quaternion | None, pose_time)`` (plain float lists:
cheaper to send than pose objects) and ``(ARRIVAL, now, chunk)``. The second process is a fresh
interpreter (``python -m vla_ros.replay.executor_process``, not ``fork``: the parent holds torch's
thread pools; not multiprocessing's ``spawn``: it re-imports the caller's main script, which breaks
scripts without a ``__main__`` guard) that imports only the ROS-free core. Messages go over its
stdin/stdout in `vla_ros.replay.wire` frames (JSON + raw arrays, a closed set of types; no pickle).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from vla_ros.core.config import VlaConfig, config_from_dict
from vla_ros.core.executor import ExecutorStatusData
from vla_ros.core.executor_runtime import ExecutorRuntime
from vla_ros.replay import wire
from vla_ros.replay.command_log import CommandLog

TICK, ARRIVAL = "tick", "arrival"


class _Pose(NamedTuple):
    """What `ChunkExecutor.tick` reads of the feedback pose (validated by the main process)."""

    position: np.ndarray
    orientation: np.ndarray


@wire.register
@dataclass
class LaneExecution:
    """A lane's executor output: commands at every tick, one submit result per arrival, final status."""

    commands: dict[str, np.ndarray]  # the keys of `Lane.arrays`
    submits: list[tuple[bool, str, int]]  # (accepted, reason, skipped) per admitted arrival, in order
    status: ExecutorStatusData
    seconds: float  # executor time spent in the second process


class _Collector:
    """Runs one lane's executor over its events and keeps what `LaneExecution` returns.

    The same driving loop as the node and an in-process lane (`ExecutorRuntime.step`: tick on the
    recorded feedback pose, then admit the chunks that arrived before it).
    """

    def __init__(self, cfg: VlaConfig):
        self.runtime = ExecutorRuntime(cfg)
        self.commands = CommandLog()
        self.submits: list[tuple[bool, str, int]] = []
        self.seconds = 0.0

    def run(self, events: list[tuple]) -> None:
        t0 = time.perf_counter()
        rt, fb = self.runtime, self.runtime.feedback
        for ev in events:
            if ev[0] == TICK:
                _, now, pos, quat, pose_time = ev
                fb.pose, fb.time = (None if pos is None else _Pose(np.array(pos), np.array(quat))), pose_time
                cmd, admitted = rt.step(now)
                if cmd is not None:
                    self.commands.add(now, cmd)
                self.submits.extend((bool(res.accepted), str(res.reason), int(res.skipped)) for _, res in admitted)
            else:
                rt.receive_chunk(ev[2], ev[1])
        self.seconds += time.perf_counter() - t0

    def result(self, now: float) -> LaneExecution:
        """At the end: chunks that arrived after the last tick enter the plan too (as in a lane)."""
        self.submits.extend((bool(res.accepted), str(res.reason), int(res.skipped)) for _, res in self.runtime.admit())
        return LaneExecution(self.commands.arrays(), self.submits, self.runtime.status(now), self.seconds)


def _serve(inp: Any, out: Any) -> None:
    """The second process: an init message, then events as they come; on "finish", every lane's result."""
    try:
        _, cfg_dict, lanes = wire.read(inp)
        cfg = config_from_dict(cfg_dict)
        collectors = {name: _Collector(cfg) for name in lanes}
        while True:
            msg = wire.read(inp)
            if msg[0] == "events":
                collectors[msg[1]].run(msg[2])
            elif msg[0] == "finish":
                answer = ("ok", {name: c.result(msg[1]) for name, c in collectors.items()})
                break
    except EOFError:
        return  # the main process went away
    except Exception:  # noqa: BLE001 - reported to the main process, which raises it there
        answer = ("error", traceback.format_exc())
    wire.write(out, answer)


class ExecutorProcess:
    """Executors of several lanes in a second process (see the module docstring)."""

    def __init__(self, cfg: VlaConfig, lanes: list[str]):
        env = dict(os.environ)
        # the same vla_ros (and everything else) as this process, whatever put it on sys.path
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._proc = subprocess.Popen([sys.executable, "-m", "vla_ros.replay.executor_process"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env)
        self._answered = False
        self._send(("init", cfg.to_dict(), list(lanes)))

    def _send(self, msg: tuple) -> None:
        wire.write(self._proc.stdin, msg)

    def send(self, lane: str, events: list[tuple]) -> None:
        if events:
            try:
                self._send(("events", lane, events))
            except (BrokenPipeError, OSError):
                pass  # the process failed: finish() reports why

    def finish(self, now: float) -> dict[str, LaneExecution]:
        """Every lane's result at sim time `now`; RuntimeError if the process failed."""
        try:
            self._send(("finish", now))
            self._proc.stdin.close()
        except OSError:
            pass  # it stopped reading (it failed): its answer says why
        try:
            status, payload = wire.read(self._proc.stdout)
        except (EOFError, OSError, ValueError) as exc:
            self.close()
            raise RuntimeError(f"replay executor process ended unexpectedly (exit code {self._proc.returncode}): "
                               f"{type(exc).__name__}: {exc}") from exc
        self._close_streams()
        self._answered = True
        # the process exits by itself now (~30 ms of interpreter teardown): reap it in the background
        threading.Thread(target=self._proc.wait, name="vla-replay-executor-reaper", daemon=True).start()
        if status != "ok":
            raise RuntimeError(f"replay executor process failed:\n{payload}")
        return payload

    def __enter__(self) -> "ExecutorProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _close_streams(self) -> None:
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def close(self, timeout: float = 5.0) -> None:
        """End the process (idempotent): without its input it finishes at once."""
        self._close_streams()
        if self._answered:
            return  # exiting on its own, reaped in the background
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


if __name__ == "__main__":
    from vla_ros.replay import executor_process  # its LaneExecution is the one registered with `wire`

    _inp, _out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed by accident must not corrupt the message stream
    executor_process._serve(_inp, _out)
