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


def start_configured_node(module: str, config_args: list[str] | tuple[str, ...] = (), params: dict | None = None
                          ) -> subprocess.Popen:
    """`python -m <module> <config_args> --ros-args -p k:=v ...`: a node with our config options
    (``--robot sim_panda``, ``--set key=value``, vla_ros.cli.common) and ROS parameters on top."""
    args = [*config_args, "--ros-args"]
    for key, value in (params or {}).items():
        args += ["-p", f"{key}:={value}"]
    env = {"PYTHONPATH": os.pathsep.join([str(HELPERS.parents[1]), os.environ.get("PYTHONPATH", "")])}
    return start_process(module, *args, env=env)


def children_of(pid: int) -> dict[int, str]:
    """{child pid: command line} of the live processes whose parent is `pid` (from /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            state = stat.rsplit(")", 1)[1].split()[0]
            if ppid == pid and state != "Z":
                out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return out


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
