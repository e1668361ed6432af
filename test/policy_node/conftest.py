"""Fixtures of the policy-node tests: one tiny flow-matching checkpoint per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random flow-matching checkpoint (cameras primary + wrist, EE-pose state), written once."""
    pytest.importorskip("torch")
    from policy_helpers import make_checkpoint

    return str(make_checkpoint(tmp_path_factory.mktemp("policy_node_ckpt")))
