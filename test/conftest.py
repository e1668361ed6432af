"""Shared test set-up.

ROS isolation: every pytest session gets its own random ROS_DOMAIN_ID and localhost-only discovery
(set before rclpy is imported anywhere), so parallel sessions and other processes on the machine
never see each other's topics. Subprocesses started by tests inherit the same environment.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # Jazzy and later
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")

TEST_DIR = Path(__file__).resolve().parent
REPO_ROOT = TEST_DIR.parent
sys.path.insert(0, str(TEST_DIR / "helpers"))  # `import ros_helpers` etc. from any test folder

import pytest  # noqa: E402


@pytest.fixture
def rclpy_context():
    """A fresh rclpy Context for one test, shut down afterwards (no global state leaks)."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        if ctx.ok():
            rclpy.shutdown(context=ctx)
