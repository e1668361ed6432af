"""InferenceWorker (ROS-free) with a hung policy: the watchdog can see it, a swap gives up instead
of waiting forever, stop() returns, and a chunk finishing after stop() is never published."""

import time

import pytest

from core_testlib import GatedPolicy, observation
from test_inference_worker import Source, make_worker, wait_for
from vla_ros.core.inference_worker import WorkerBusy


def test_a_hung_inference_is_visible_and_neither_a_swap_nor_stop_waits_for_it():
    src, out = Source(), []
    w = make_worker(src, out)
    hung = GatedPolicy("hung")
    hung.gate.clear()
    w.set_policy(hung)
    w.start()
    assert w.running_for(time.perf_counter()) == 0.0
    src.newest = observation(100.0)
    assert w.request()
    assert hung.entered.wait(10.0)
    t0 = time.perf_counter()
    assert w.running_for(t0 + 7.0) >= 7.0  # the watchdog's view: time since the inference started

    with pytest.raises(WorkerBusy, match=r"has been running for .* s and did not finish within 0.05 s"):
        w.set_policy(GatedPolicy("new"), timeout=0.05)
    assert w.policy is hung  # nothing changed

    assert w.stop(timeout=0.05) is False  # still inferring: the caller may abandon the thread
    hung.gate.set()  # it returns after all ...
    assert wait_for(lambda: not w.running)
    assert out == []  # ... but a stopped worker publishes nothing
    assert w.running_for(time.perf_counter()) == 0.0
