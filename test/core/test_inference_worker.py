"""InferenceWorker (ROS-free): one in flight, newest observation, stamps/seq/latency, swap, errors."""

import threading
import time

import numpy as np
import pytest

from core_testlib import GatedPolicy, observation
from vla_ros.core.inference_worker import InferenceWorker, LatencyWindow
from vla_ros.core.types import ChunkGuidance


class Source:
    """The newest observation, handed out once (like ObservationBuilder.take)."""

    def __init__(self):
        self.newest = None
        self.taken = []

    def take(self, now):
        obs, self.newest = self.newest, None
        if obs is not None:
            self.taken.append(obs)
        return obs


def make_worker(source, published, clock=lambda: 100.0, **kwargs):
    return InferenceWorker(source.take, published.append, clock=clock, default_frame="base_link", **kwargs)


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def test_run_once_stamps_the_chunk_with_the_observation_and_fills_seq_latency_age():
    src, out = Source(), []
    w = make_worker(src, out, clock=lambda: 100.25)
    w.set_policy(GatedPolicy())
    for i in range(3):
        src.newest = observation(100.0 + i * 0.01)
        rec = w.run_once()
        assert rec is not None and out[-1] is rec
        assert rec.chunk.stamp == rec.observation.stamp == pytest.approx(100.0 + i * 0.01)
        assert rec.chunk.seq == i
        assert rec.chunk.inference_latency > 0.0
        assert rec.chunk.observation_age == pytest.approx(0.25 - i * 0.01)
        assert rec.chunk.policy_id == "hold" and rec.chunk.frame_id == "base_link"
        assert rec.requested_at <= rec.taken_at <= rec.infer_start <= rec.infer_end
    assert w.run_once() is None and w.stats.no_observation == 1
    assert w.stats.used == 3 and len(w.stats.latency) == 3


def test_at_most_one_inference_in_flight_and_requests_meanwhile_are_refused():
    src, out = Source(), []
    w = make_worker(src, out)
    policy = GatedPolicy()
    policy.gate.clear()
    w.set_policy(policy)
    w.start()
    try:
        src.newest = observation(1.0)
        assert w.request()
        assert policy.entered.wait(10.0)
        assert w.busy
        assert not w.request() and not w.request()
        assert w.stats.skipped_busy == 2
        assert len(policy.calls) == 1 and out == []
        policy.gate.set()
        assert wait_for(lambda: len(out) == 1 and not w.busy)
        src.newest = observation(2.0)
        assert w.request()
        assert wait_for(lambda: len(out) == 2)
        assert len(policy.calls) == 2
    finally:
        policy.gate.set()
        assert w.stop()


def test_the_observation_is_taken_when_inference_starts_so_it_is_the_newest():
    src, out = Source(), []
    w = make_worker(src, out)
    policy = GatedPolicy()
    w.set_policy(policy)
    policy.gate.clear()
    w.start()
    try:
        src.newest = observation(1.0)
        assert w.request() and policy.entered.wait(10.0)
        src.newest = observation(1.1)  # superseded before the next inference starts
        src.newest = observation(1.2)
        policy.gate.set()
        assert wait_for(lambda: not w.busy)
        assert w.request() and wait_for(lambda: len(out) == 2)
        assert [r.chunk.stamp for r in out] == [1.0, 1.2]
    finally:
        policy.gate.set()
        w.stop()


def test_policy_exception_is_reported_and_the_thread_keeps_working():
    src, out, errors = Source(), [], []
    w = make_worker(src, out, on_error=errors.append)
    w.set_policy(GatedPolicy(fail_first=1))
    w.start()
    try:
        src.newest = observation(1.0)
        assert w.request() and wait_for(lambda: w.stats.errors == 1 and not w.busy)
        assert out == [] and errors == ["policy.infer failed: RuntimeError: CUDA error: out of memory (simulated)"]
        assert w.stats.last_error == errors[0]
        src.newest = observation(2.0)
        assert w.request() and wait_for(lambda: len(out) == 1)
        assert w.stats.last_error == "" and out[0].chunk.seq == 0
    finally:
        w.stop()


def test_set_policy_swaps_between_inferences_and_restarts_seq():
    src, out = Source(), []
    w = make_worker(src, out)
    first, second = GatedPolicy("first"), GatedPolicy("second")
    w.set_policy(first)
    src.newest = observation(1.0)
    w.run_once()
    first.gate.clear()
    first.entered.clear()
    w.start()
    try:
        src.newest = observation(2.0)
        assert w.request() and first.entered.wait(10.0)
        swapped = []
        t = threading.Thread(target=lambda: swapped.append(w.set_policy(second)))
        t.start()
        t.join(0.3)
        assert t.is_alive() and swapped == []  # waits for the inference in flight
        first.gate.set()
        t.join(10.0)
        assert swapped == [first]
        assert wait_for(lambda: not w.busy)
        src.newest = observation(3.0)
        assert w.request() and wait_for(lambda: len(out) == 3)
        assert [r.chunk.seq for r in out] == [0, 1, 0]  # seq restarts after a (re)load
        assert len(first.calls) == 2 and len(second.calls) == 1
    finally:
        first.gate.set()
        w.stop()


def test_new_instruction_resets_the_policy_before_inference():
    src, out = Source(), []
    w = make_worker(src, out)
    policy = GatedPolicy()
    w.set_policy(policy)
    for stamp, text in ((1.0, "pick"), (2.0, "pick"), (3.0, "place")):
        src.newest = observation(stamp, instruction=text)
        w.run_once()
    assert policy.resets == 1


def test_guidance_function_output_goes_to_the_policy():
    src, out = Source(), []
    guide = ChunkGuidance(actions=np.zeros((10, 7)), weights=np.ones(10))
    seen = []

    def guidance(obs, meta):
        seen.append((obs.stamp, meta.horizon))
        return guide

    w = make_worker(src, out, guidance=guidance)
    policy = GatedPolicy()
    w.set_policy(policy)
    src.newest = observation(5.0)
    rec = w.run_once()
    assert seen == [(5.0, 10)] and policy.calls[0][1] is guide and rec.guidance is guide


def test_no_policy_no_thread_no_inference():
    src, out = Source(), []
    w = make_worker(src, out)
    assert not w.request()  # thread not started
    src.newest = observation(1.0)
    assert w.run_once() is None and out == []  # no policy
    w.start()
    assert w.stop()
    assert not w.request()


def test_latency_window_statistics():
    lw = LatencyWindow(size=100)
    for v in range(1, 201):
        lw.add(v / 1000)
    assert len(lw) == 100 and lw.last == pytest.approx(0.2)
    assert lw.mean == pytest.approx(0.1505)
    assert lw.p99 == pytest.approx(np.percentile(np.arange(101, 201) / 1000, 99))


class BatchRecordingPolicy(GatedPolicy):
    """`GatedPolicy` that also records the order of resets and batches (what run_pending called)."""

    def __init__(self, fail_batch: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.events: list = []
        self.fail_batch = fail_batch

    def reset(self):
        super().reset()
        self.events.append("reset")

    def infer_batch(self, observations):
        self.events.append(("batch", [o.stamp for o in observations]))
        if self.fail_batch:
            raise ValueError("observation.images: bad frame in the batch")
        return super().infer_batch(observations)


def test_pending_inferences_run_batched_per_task_like_run_once_in_order():
    src, out = Source(), []
    w = make_worker(src, out, clock=lambda: 100.5)
    policy = BatchRecordingPolicy()
    w.set_policy(policy)
    pending = []
    for stamp, text in ((100.0, "pick"), (100.1, "pick"), (100.2, "place"), (100.3, "place"), (100.4, "place")):
        src.newest = observation(stamp, x=stamp - 99.6, instruction=text)
        pending.append(w.take_pending())
    assert w.take_pending() is None and w.stats.no_observation == 1
    assert [p.new_task for p in pending] == [False, False, True, False, False]
    records = w.run_pending(pending)
    # one batch per task, the reset between them (as run_once would reset before the first "place")
    assert policy.events == [("batch", [100.0, 100.1]), "reset", ("batch", [100.2, 100.3, 100.4])]
    assert [r.chunk.seq for r in records] == [0, 1, 2, 3, 4] and out == records
    for p, r in zip(pending, records):
        assert r.chunk.stamp == p.observation.stamp and r.chunk.frame_id == "base_link"
        assert r.chunk.observation_age == pytest.approx(100.5 - p.observation.stamp)
        np.testing.assert_allclose(r.chunk.actions[0, :3], p.observation.ee_pose.position)  # hold: where it was
    # latency = each chunk's share of its batch
    assert records[0].chunk.inference_latency == pytest.approx((records[0].infer_end - records[0].infer_start) / 2)
    assert w.stats.used == 5


def test_a_failing_batch_is_retried_one_by_one_so_only_the_bad_observation_is_lost():
    src, out, errors = Source(), [], []
    w = make_worker(src, out, on_error=errors.append)
    policy = BatchRecordingPolicy(fail_batch=True, fail_first=1)  # the batch fails, then the first single infer
    w.set_policy(policy)
    pending = []
    for stamp in (1.0, 2.0, 3.0):
        src.newest = observation(stamp)
        pending.append(w.take_pending())
    records = w.run_pending(pending)
    assert records[0] is None and [r.chunk.stamp for r in records[1:]] == [2.0, 3.0]
    assert len(errors) == 1 and "policy.infer failed: RuntimeError" in errors[0] and w.stats.errors == 1
    assert [r.chunk.seq for r in records[1:]] == [0, 1]


def test_batched_inference_refuses_guidance():
    src, out = Source(), []
    w = make_worker(src, out, guidance=lambda obs, meta: None)
    w.set_policy(GatedPolicy())
    src.newest = observation(1.0)
    a = w.take_pending()
    src.newest = observation(2.0)
    b = w.take_pending()
    with pytest.raises(ValueError, match="batched inference cannot use guidance"):
        w.run_pending([a, b])
