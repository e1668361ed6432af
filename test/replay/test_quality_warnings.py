"""Report warnings where the numbers are shaped by something other than the policy."""

from __future__ import annotations

import pytest

from realistic_bags import JOINTS_LATE, T0 as TF_T0, tf_config, write_tf_bag
from replay_testlib import T0, known_config, write_known_bag
from vla_ros.policy.hold import HoldPolicy
from vla_ros.replay.bag_io import Bag, BagWriter
from vla_ros.replay.evaluate import evaluate_bag, run_evaluation


@pytest.fixture(scope="module")
def known_bag(tmp_path_factory):
    return write_known_bag(tmp_path_factory.mktemp("known") / "bag", storage="mcap")


def test_clamped_ticks_name_the_limit_and_how_far(known_bag):
    cfg = known_config({"safety.workspace_min": [-1.0, -1.0, 0.35], "safety.workspace_margin": 0.2})
    result = evaluate_bag(known_bag, cfg, HoldPolicy(), progress=False)
    (w,) = [w for w in result.warnings if w.startswith("[policy]") and "clamped" in w]
    assert "over replay.clamp_warning_fraction = 5 %" in w
    assert "safety.workspace_min z (up to 0.050 m past it)" in w
    assert result.metrics["policy"]["executor"]["limit_excess"]["safety.workspace_min z"] == pytest.approx(0.05)
    # within the limits: no such warning
    plain = evaluate_bag(known_bag, known_config(), HoldPolicy(), progress=False)
    assert not any("clamped" in w for w in plain.warnings)
    assert not any("triggers found no observation" in w or w.startswith("input ") for w in plain.warnings)


def test_camera_gap_watchdog_and_missed_triggers(tmp_path, known_bag):
    gap = tmp_path / "gap"
    with Bag(known_bag) as bag, BagWriter(gap, storage="mcap") as w:
        for m in bag.messages(raw=True):
            if m.topic == "/cam" and T0 + 0.75 < m.t < T0 + 1.45:
                continue  # the camera drops out for 0.8 s
            w.add_topic(m.topic, m.msgtype, latched=m.topic == "/instruction")
            w.write_raw(m.topic, m.t_ns, m.raw)
    cfg = known_config({"executor.watchdog_timeout": 0.3})
    result = run_evaluation([gap], cfg, policy=HoldPolicy(), out_dir=tmp_path / "out", progress=False, plots=False,
                            log=lambda s: None)
    warnings = result.results[0].warnings
    (g,) = [w for w in warnings if w.startswith("input /cam")]
    assert "1 gap(s) longer than" in g and f"{T0 + 0.702:.3f} .. {T0 + 1.502:.3f} s" in g
    assert any(w.startswith("[policy] the watchdog tripped") and "executor.watchdog_timeout = 0.3 s" in w
               for w in warnings)
    assert any(w.startswith("[policy]") and "triggers found no observation" in w and "after the first chunk" in w
               for w in warnings)
    html = (tmp_path / "out" / "index.html").read_text()
    assert "&#9888;" in html and "watchdog tripped" in html


def test_late_joint_states_are_reported(tmp_path):
    bag = write_tf_bag(tmp_path / "late", "mcap")
    result = evaluate_bag(bag, tf_config(), HoldPolicy(), progress=False)
    assert any(w.startswith("input /joint_states: starts 3.00 s after the bag") for w in result.warnings)
    (w,) = [w for w in result.warnings if w.startswith("[policy]") and "no observation" in w]
    assert f"t = {TF_T0:.3f} .. " in w and "joint" in w
    assert JOINTS_LATE == 3.0
