"""The ROS-free approximate-time synchronizer: slop, queue size, ordering, drops (no ROS involved)."""

import math

import pytest

from vla_ros.core.sync import ApproximateTimeSynchronizer, StampError


def make(slop=0.05, queue_size=10, inputs=("cam", "joints"), eager=False):
    return ApproximateTimeSynchronizer(inputs, slop=slop, queue_size=queue_size, pivot=inputs[0], eager=eager)


def test_emits_when_every_input_is_within_slop_and_stamps_the_set_with_the_pivot():
    s = make()
    assert s.add("cam", 10.00, "img") is None  # partner missing
    out = s.add("joints", 10.03, "q")
    assert out is not None
    assert out.stamp == 10.00  # the pivot's stamp, not the partner's
    assert out.items["cam"].value == "img" and out.items["joints"].value == "q"
    assert out.spread == pytest.approx(0.03)
    assert s.stats.emitted == 1


def test_partner_outside_slop_does_not_match():
    s = make(slop=0.02)
    s.add("cam", 10.00, "img")
    assert s.add("joints", 10.03, "q") is None
    assert s.stats.emitted == 0
    assert "joints newest stamp is 0.030 s ahead of cam" in s.waiting_for()


def test_picks_the_partner_closest_to_the_pivot():
    s = make(slop=0.05)
    for t in (9.96, 9.98, 10.03):
        s.add("joints", t, t)
    out = s.add("cam", 10.0, "img")
    assert out.items["joints"].value == 9.98


def test_spread_is_pairwise_not_only_relative_to_the_pivot():
    # a at -0.04 and b at +0.04 are each within slop of the pivot, but 0.08 apart: not a valid set.
    s = make(slop=0.05, inputs=("cam", "a", "b"))
    s.add("a", 9.96)
    s.add("b", 10.04)
    assert s.add("cam", 10.0) is None
    # A later sample of a (+0.01) makes a valid set {10.0, 10.01, 10.04}.
    out = s.add("a", 10.01)
    assert out is not None and out.stamp == 10.0
    assert out.items["a"].stamp == 10.01 and out.spread <= 0.05 + 1e-9


def test_window_search_finds_a_valid_set_when_the_closest_ones_straddle():
    s = make(slop=0.05, inputs=("cam", "a", "b"))
    for t in (9.96, 10.03):
        s.add("a", t)
    s.add("b", 10.04)
    out = s.add("cam", 10.0)
    # Closest a (10.03 at 0.03, vs 9.96 at 0.04) already pairs with b: spread 0.04.
    assert out is not None and out.items["a"].stamp == 10.03


def test_late_partner_completes_a_pending_pivot():
    s = make()
    s.add("cam", 1.0, "f1")
    s.add("cam", 1.1, "f2")
    out = s.add("joints", 1.01)
    assert out is not None and out.items["cam"].value == "f1"
    out = s.add("joints", 1.1)
    assert out is not None and out.items["cam"].value == "f2"


def test_newest_complete_pivot_wins_and_older_pending_ones_count_as_unmatched():
    s = make()
    for t in (1.0, 1.1, 1.2):
        assert s.add("cam", t) is None
    out = s.add("joints", 1.2)
    assert out.stamp == 1.2
    assert s.stats.unmatched == 2  # 1.0 and 1.1 were superseded
    # ordering: an older partner arriving now cannot resurrect an older pivot
    assert s.add("joints", 1.2) is None


def test_emitted_stamps_strictly_increase_and_a_pivot_is_used_once():
    s = make()
    s.add("cam", 1.0)
    assert s.add("joints", 1.0) is not None
    assert s.add("joints", 1.01) is None  # same pivot again: no second set
    stamps = []
    for i in range(1, 20):
        t = 1.0 + i / 30
        s.add("joints", t + 0.001)
        out = s.add("cam", t)
        if out is not None:
            stamps.append(out.stamp)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) == 19


def test_partners_can_serve_two_consecutive_sets():
    s = make(slop=0.05, inputs=("cam", "wrist"))
    s.add("wrist", 1.0, "w")
    assert s.add("cam", 0.98).items["wrist"].value == "w"
    assert s.add("cam", 1.02) is None  # a wrist frame closer to 1.02 may still come
    assert s.add("wrist", 1.05, "w2").items["wrist"].value == "w"  # it did not: 1.0 is closer than 1.05


def test_waits_for_a_partner_at_or_after_the_pivot_to_pick_the_closest():
    s = make(slop=0.05)
    s.add("joints", 0.983, "before")
    assert s.add("cam", 1.0) is None  # complete, but the joint state of 1.0 may still be on its way
    out = s.add("joints", 1.0, "exact")
    assert out is not None and out.items["joints"].value == "exact"


def test_waiting_ends_with_the_next_pivot_when_a_partner_stalls():
    s = make(slop=0.05)
    s.add("joints", 0.99, "last")
    assert s.add("cam", 1.0) is None
    out = s.add("cam", 1.033)  # no newer joint state came: emit 1.0 with the best one available
    assert out is not None and out.stamp == 1.0 and out.items["joints"].value == "last"


def test_eager_mode_emits_as_soon_as_a_set_is_complete():
    s = make(slop=0.05, eager=True)
    s.add("joints", 0.983, "before")
    out = s.add("cam", 1.0)
    assert out is not None and out.items["joints"].value == "before"


def test_stamps_going_backwards_raise_and_are_not_queued():
    s = make()
    s.add("joints", 2.0)
    with pytest.raises(StampError,
                       match=r"header\.stamp: expected stamps that do not go backwards, got 1\.990000 s after "
                             r"2\.000000 s"):
        s.add("joints", 1.99)
    assert s.last_stamp("joints") == 2.0 and s.stats.received["joints"] == 1
    with pytest.raises(StampError, match="finite"):
        s.add("cam", math.nan)
    with pytest.raises(KeyError, match="unknown input 'ee'"):
        s.add("ee", 1.0)


def test_equal_stamp_replaces_the_previous_sample():
    s = make()
    s.add("joints", 1.0, "old")
    s.add("joints", 1.0, "new")
    assert s.pending("joints") == 1
    assert s.add("cam", 1.0).items["joints"].value == "new"


def test_queue_size_bounds_each_input_and_evicted_pivots_count_as_unmatched():
    s = make(queue_size=3)
    for i in range(5):
        s.add("cam", 1.0 + i)
    assert s.pending("cam") == 3
    assert s.stats.evicted["cam"] == 2 and s.stats.unmatched == 2
    # the evicted pivots (1.0, 2.0) can no longer match; 3.0 still can
    assert s.add("joints", 1.0) is None
    out = s.add("joints", 3.0)
    assert out is not None and out.stamp == 3.0


def test_messages_that_can_no_longer_match_are_pruned_after_a_set():
    s = make(slop=0.05)
    for i in range(10):
        s.add("joints", 1.0 + 0.01 * i)
    s.add("cam", 1.09)
    assert 5 <= s.pending("joints") <= 6  # only stamps >= 1.09 - slop are kept
    assert s.pending("cam") == 0


def test_zero_slop_needs_identical_stamps():
    s = make(slop=0.0)
    s.add("cam", 5.0)
    assert s.add("joints", 5.001) is None
    s2 = make(slop=0.0)
    s2.add("cam", 5.0)
    assert s2.add("joints", 5.0) is not None


def test_reset_forgets_stamps_after_a_clock_jump():
    s = make()
    s.add("cam", 100.0)
    s.add("joints", 100.0)
    s.reset()
    s.add("cam", 1.0)  # no StampError: history is gone
    assert s.add("joints", 1.0).stamp == 1.0
    assert s.stats.emitted == 2


def test_waiting_for_names_the_missing_input_by_label():
    s = ApproximateTimeSynchronizer(["cam", "joints"], slop=0.05, queue_size=5, labels={"joints": "/joint_states"})
    s.add("cam", 1.0)
    assert s.waiting_for() == "no valid message yet on /joint_states"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(inputs=[], slop=0.1, queue_size=1), "at least one input"),
        (dict(inputs=["a", "a"], slop=0.1, queue_size=1), "unique"),
        (dict(inputs=["a"], slop=-1.0, queue_size=1), "slop"),
        (dict(inputs=["a"], slop=0.1, queue_size=0), "queue_size"),
        (dict(inputs=["a"], slop=0.1, queue_size=1, pivot="b"), "pivot"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    inputs = kwargs.pop("inputs")
    with pytest.raises(ValueError, match=message):
        ApproximateTimeSynchronizer(inputs, **kwargs)
