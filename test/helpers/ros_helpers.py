"""Helpers for tests that talk to real rclpy nodes over DDS (no mocks).

`spin_until` spins an executor until a condition holds or a deadline passes; `start_process`
runs a helper script in a separate Python process with the test's ROS environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

HELPERS = Path(__file__).resolve().parent


def spin_until(executor, condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Spin `executor` until `condition()` is true; False if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=step)
    return condition()


def start_process(script: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Start `test/helpers/<script>` (or a module path) in its own Python process."""
    path = HELPERS / script
    cmd = [sys.executable, str(path), *args] if path.exists() else [sys.executable, "-m", script, *args]
    return subprocess.Popen(
        cmd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def start_node_process(module: str, params: dict) -> subprocess.Popen:
    """`python -m <module> --ros-args -p k:=v ...` with this source tree first on the path."""
    args = ["--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    env = {"PYTHONPATH": os.pathsep.join([str(HELPERS.parents[1]), os.environ.get("PYTHONPATH", "")])}
    return start_process(module, *args, env=env)


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> str:
    """Terminate (SIGINT, then kill) and return everything it printed."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else ""
