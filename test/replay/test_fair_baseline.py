"""Fair baselines: the policy lane and the hold lane are scored on the same samples (issue 15, item 4)."""

from __future__ import annotations

from realistic_bags import JOINTS_LATE, T0, tf_config, write_tf_bag
from vla_ros.policy.hold import HoldPolicy
from vla_ros.replay import report as R
from vla_ros.replay.evaluate import evaluate_bag


def test_late_joint_states_score_both_lanes_on_the_same_samples(tmp_path):
    bag = write_tf_bag(tmp_path / "late", "mcap")  # joint states 3 s after the cameras; hold does not need them
    result = evaluate_bag(bag, tf_config(), HoldPolicy(), progress=False)
    pol, hold = result.lanes["policy"], result.lanes["hold"]
    assert min(r.triggered_at for r in hold.records) < T0 + 1.0  # hold had observations early ...
    assert min(r.triggered_at for r in pol.records) >= T0 + JOINTS_LATE - 0.2  # ... the policy only from 3 s
    m = result.metrics
    # same number of scored chunks (one per common trigger) and of scored commands
    assert m["policy"]["chunks"]["count"] == m["hold"]["chunks"]["count"] == len(pol.records)
    assert m["hold"]["chunks"]["not_scored"] == len(hold.records) - len(pol.records) > 10
    assert m["policy"]["commands"]["from"] == m["hold"]["commands"]["from"]
    assert m["policy"]["commands"]["scored"] == m["hold"]["commands"]["scored"]
    # the policy here is hold as well: on the same samples both lanes' chunk errors agree
    assert abs(m["vs_hold"]["chunk_position_error_m"]["difference"]) < 1e-3
    assert any(w.startswith("[hold]") and "chunks not scored: policy had no observation" in w for w in result.warnings)
    row = R.summary_row("late", str(bag), m)
    assert R.format_table([row]).splitlines()[2].split()[2:5] == [str(len(pol.records)), "/", str(len(hold.records))]
