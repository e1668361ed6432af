"""`source setup.bash` from a plain shell gives a working environment (venv, messages, CLI, nodes)."""

import os
import subprocess

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

PLAIN_ENV = {k: v for k, v in os.environ.items() if k in ("HOME", "USER", "TERM", "LANG", "TMPDIR", "ROS_DOMAIN_ID")}
PLAIN_ENV["PATH"] = "/usr/local/bin:/usr/bin:/bin"


def run_in_plain_shell(script: str, cwd: str = "/") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f"source {REPO_ROOT}/setup.bash && {script}"],
        cwd=cwd, env=PLAIN_ENV, capture_output=True, text=True, timeout=120,
    )


def test_setup_bash_makes_messages_cli_and_nodes_available():
    script = (
        "python -c 'from vla_ros.msg import ActionChunk, PolicyStatus, ExecutorStatus; "
        "import vla_ros.core.config; print(\"msgs-ok\")' && "
        "vla-ros config --set policy.device=cuda:1 | grep -q 'device: cuda:1' && echo cli-ok && "
        "command -v policy_node executor_node"
    )
    res = run_in_plain_shell(script)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "msgs-ok" in res.stdout and "cli-ok" in res.stdout
    assert res.stdout.strip().endswith("install/lib/vla_ros/executor_node")


def test_cli_reports_bad_config_as_one_clear_line():
    res = run_in_plain_shell("vla-ros config --set policy.num_steps=0")
    assert res.returncode == 2
    assert res.stderr.strip() == "vla-ros config: error: policy.num_steps: expected >= 1, got 0"
