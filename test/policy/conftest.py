"""Tiny flow-matching checkpoints shared by the policy tests (built once per session).

Every checkpoint is written by `make_tiny_checkpoint` and read back by the real loader, so the
tests exercise the same files a robot would load. Sizes are smaller than the tiny defaults
(32 px images, 16 patches per camera, 64-wide backbone) to keep the whole suite fast on 2 cores.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from policy_helpers import make_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def ckpt_factory(tmp_path_factory):
    """Build (once) and return the path of a tiny checkpoint for the given options."""
    cache: dict = {}

    def get(**options):
        key = repr(sorted(options.items()))
        if key not in cache:
            cache[key] = make_checkpoint(tmp_path_factory.mktemp("ckpt"), **options)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def policy_factory(ckpt_factory):
    """A loaded FlowMatchingPolicy per option set, shared across tests (do not mutate it)."""
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy

    cache: dict = {}

    def get(**options):
        key = repr(sorted(options.items()))
        if key not in cache:
            cache[key] = FlowMatchingPolicy.load(ckpt_factory(**options))
        return cache[key]

    return get


@pytest.fixture(scope="session", params=["gemma", "llama"])
def family(request):
    return request.param


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (golden-fixture parity tests: tiny models, and the numbers do
    not depend on how a matmul is split across threads)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
