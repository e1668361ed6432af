"""Fixtures of the policy-node tests: one tiny flow-matching checkpoint per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# node_testlib re-exports the pieces the core tests share (test/core/core_testlib.py)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random flow-matching checkpoint (cameras primary + wrist, EE-pose state), written once."""
    pytest.importorskip("torch")
    from policy_helpers import make_checkpoint

    return str(make_checkpoint(tmp_path_factory.mktemp("policy_node_ckpt")))
