"""`vla-ros eval` end to end on bags written with rosbags: sqlite3 and mcap, real policy, real executor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_ros.cli import main
from vla_ros.core.msg_decode import chunk_from_msg
from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
from vla_ros.replay.bag_io import Bag
from vla_ros.replay.evaluate import evaluate_bag, run_evaluation


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    p = FlowMatchingPolicy.load(tiny_checkpoint)
    yield p
    p.close()


def _chunks(result, lane="policy"):
    return [r.chunk for r in result.lanes[lane].records]


def test_sqlite3_and_mcap_give_identical_results(episode_bags, sim_cfg, policy):
    a = evaluate_bag(episode_bags["sqlite3"], sim_cfg, policy, progress=False)
    b = evaluate_bag(episode_bags["mcap"], sim_cfg, policy, progress=False)
    ca, cb = _chunks(a), _chunks(b)
    assert len(ca) >= 8 and len(ca) == len(cb)
    for x, y in zip(ca, cb):
        assert x.stamp == y.stamp and x.seq == y.seq
        np.testing.assert_array_equal(x.actions, y.actions)  # deterministic: seeded noise, simulated clock
    np.testing.assert_array_equal(a.lanes["policy"].arrays()["position"], b.lanes["policy"].arrays()["position"])
    for key in ("chunks", "commands"):
        assert a.metrics["policy"][key]["position_error_m"] == b.metrics["policy"][key]["position_error_m"]
    m = a.metrics
    assert m["ground_truth"]["topic"] == "/target_pose" and m["ground_truth"]["samples"] > 50
    assert set(m) >= {"policy", "hold", "vs_hold", "timing_s"}
    assert m["policy"]["chunks"]["scored_actions"] > 0 and m["policy"]["commands"]["scored"] > 0
    assert m["hold"]["chunks"]["count"] == len(_chunks(a, "hold"))
    # hold repeats the measured state, gripper included (read from the gripper joint of the joint states)
    assert any(c.actions[0, 6] < 0.5 for c in _chunks(a, "hold")) and _chunks(a, "hold")[0].actions[0, 6] > 0.9
    assert 0.0 <= m["policy"]["commands"]["gripper"]["accuracy"] <= 1.0
    assert m["policy"]["latency"]["injected_s"]["max"] == 0.0  # replay.latency none by default


def test_measured_latency_delays_chunks_and_fixed_is_deterministic(episode_bags, sim_cfg, policy):
    measured = evaluate_bag(episode_bags["mcap"], sim_cfg.with_overrides({"replay.latency": "measured"}), policy,
                            progress=False)
    for r in measured.lanes["policy"].records:
        assert r.injected_latency == r.wall_latency > 0.0
        assert r.arrival == pytest.approx(r.triggered_at + r.wall_latency)
    fixed = sim_cfg.with_overrides({"replay.latency": "fixed", "replay.fixed_latency": 0.15, "policy.rtc": True})
    x = evaluate_bag(episode_bags["mcap"], fixed, policy, progress=False)
    y = evaluate_bag(episode_bags["mcap"], fixed, policy, progress=False)
    assert [r.arrival - r.triggered_at for r in x.lanes["policy"].records] == pytest.approx([0.15] * len(_chunks(x)))
    assert x.metrics["policy"]["inference"]["rtc_guided"] > 0  # guidance from the simulated executor status
    assert x.metrics["policy"]["executor"]["skipped_steps"] > 0  # latency compensation skipped past actions
    for c1, c2 in zip(_chunks(x), _chunks(y)):
        np.testing.assert_array_equal(c1.actions, c2.actions)


def test_queue_trigger_runs_from_simulated_executor_status(episode_bags, sim_cfg, policy):
    cfg = sim_cfg.with_overrides({"policy.trigger": "queue", "policy.queue_threshold": 0.5})
    res = evaluate_bag(episode_bags["mcap"], cfg, policy, progress=False)
    recs = res.lanes["policy"].records
    assert len(recs) >= 2
    # horizon 1 s, threshold 0.5 s: the next chunk is asked for when about half the plan is left
    gaps = np.diff([r.triggered_at for r in recs])
    assert np.all(gaps >= 0.3) and np.all(gaps <= 0.9)


def test_run_evaluation_outputs_report_plots_and_output_bag(tmp_path, episode_bags, sim_cfg, policy, capsys):
    cfg = sim_cfg.with_overrides({"replay.output_bag": True})
    out = run_evaluation([episode_bags["mcap"], episode_bags["sqlite3"], tmp_path / "missing"], cfg, policy=policy,
                         out_dir=tmp_path / "out", progress=False)
    assert out.evaluated == 2 and out.skipped == 1
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["summary"]["evaluated"] == 2 and "does not exist" in doc["bags"][2]["error"]
    assert doc["bags"][0]["policy"]["chunks"]["position_error_m"]["mean"] > 0
    assert "mean of 2" in out.table and "skipped missing" in out.table
    html = out.report_path.read_text()
    assert html.count("data:image/png;base64,") >= 7  # summary + 3 per bag
    for name in ("ep_mcap", "ep_sqlite3"):
        for png in ("timeseries.png", "errors.png", "latency.png"):
            assert (tmp_path / "out" / "plots" / name / png).stat().st_size > 1000
    # The output bag: the inputs plus the predictions, readable (Foxglove reads the same mcap).
    with Bag(doc["bags"][0]["output_bag"]) as bag:
        assert bag.storage == "directory" and "/camera/primary/image_raw" in bag.topics
        assert bag.topics["/replay/policy/action_chunk"].msgtype == "vla_ros/msg/ActionChunk"
        assert bag.topics["/replay/hold/command"].msgtype == "geometry_msgs/msg/PoseStamped"
        chunks = [chunk_from_msg(m.msg) for m in bag.messages(["/replay/policy/action_chunk"])]
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert len(chunks) == doc["bags"][0]["policy"]["chunks"]["count"]


def test_cli_eval_with_topic_remap_and_summary(tmp_path, episode_bags, capsys):
    # The same recording with the cameras on other topics: mapped back with --set robot.camera_topics.
    from vla_ros.replay.bag_io import BagWriter

    src = episode_bags["mcap"]
    renamed = tmp_path / "renamed"
    remap = {"/camera/primary/image_raw": "/scene/rgb", "/camera/wrist/image_raw": "/hand/rgb"}
    with Bag(src) as bag, BagWriter(renamed, storage="sqlite3") as w:
        for m in bag.messages(raw=True):
            w.add_topic(remap.get(m.topic, m.topic), m.msgtype)
            w.write_raw(remap.get(m.topic, m.topic), m.t_ns, m.raw)
    from vla_ros.replay.demo import sim_robot_profile

    rc = main(["eval", "--bag", str(renamed), "--bag", str(src), "--robot", str(sim_robot_profile()), "--policy",
               "hold",
               "--set", "robot.camera_topics=[/scene/rgb, /hand/rgb]", "--out", str(tmp_path / "cli"), "--no-progress",
               "--no-plots"])
    text = capsys.readouterr().out
    assert rc == 1  # one bag evaluated, the other skipped: its cameras are not where the remap says
    assert "skipped ep_mcap" in text and "/scene/rgb (camera 'primary', robot.camera_topics) is not in the bag" in text
    assert "renamed" in text and "report:" in text and (tmp_path / "cli" / "index.html").is_file()


def test_batched_inference_replays_the_same_chunks_and_commands(episode_bags, sim_cfg, policy):
    one = evaluate_bag(episode_bags["mcap"], sim_cfg.with_overrides({"replay.batch_size": 1}), policy, progress=False)
    four = evaluate_bag(episode_bags["mcap"], sim_cfg.with_overrides({"replay.batch_size": 4}), policy, progress=False)
    assert one.metrics["inference_batch"] == 1 and four.metrics["inference_batch"] == 4
    ca, cb = _chunks(one), _chunks(four)
    assert len(ca) >= 8 and len(ca) == len(cb)  # several flushes of 4 during the bag, the rest at the end
    for x, y in zip(ca, cb):
        assert x.stamp == y.stamp and x.seq == y.seq and x.observation_age == y.observation_age
        np.testing.assert_allclose(y.actions, x.actions, atol=1e-5)  # same observations, same noise
    for lane in ("policy", "hold"):
        a, b = one.lanes[lane].arrays(), four.lanes[lane].arrays()
        np.testing.assert_array_equal(a["t"], b["t"])
        np.testing.assert_allclose(b["position"], a["position"], atol=1e-5)
        np.testing.assert_array_equal(a["hold"], b["hold"])
        assert [r.arrival for r in one.lanes[lane].records] == [r.arrival for r in four.lanes[lane].records]
    assert four.metrics["policy"]["commands"]["position_error_m"]["mean"] == pytest.approx(
        one.metrics["policy"]["commands"]["position_error_m"]["mean"], abs=1e-6)
    # chunks that depend on the executor or on wall time are never batched
    for overrides in ({"replay.latency": "measured"}, {"policy.rtc": True}, {"policy.trigger": "queue"}):
        r = evaluate_bag(episode_bags["mcap"], sim_cfg.with_overrides({**overrides, "replay.batch_size": 4}), policy,
                         progress=False)
        assert r.metrics["inference_batch"] == 1, overrides


def test_executor_process_gives_the_in_process_commands(episode_bags, sim_cfg, policy, monkeypatch):
    import vla_ros.replay.evaluate as evaluate

    cfg = sim_cfg.with_overrides({"replay.batch_size": 4})
    short = evaluate_bag(episode_bags["mcap"], cfg, policy, progress=False)
    assert short.timing.executor_remote == 0  # a 2 s bag is not worth a second process
    monkeypatch.setattr(evaluate, "PARALLEL_MIN_SECONDS", 0.0)
    local = evaluate_bag(episode_bags["mcap"], cfg.with_overrides({"replay.parallel_executor": False}), policy,
                         progress=False)
    remote = evaluate_bag(episode_bags["mcap"], cfg.with_overrides({"replay.parallel_executor": True}), policy,
                          progress=False)
    assert local.timing.executor > 0 and local.timing.executor_remote == 0
    assert remote.timing.executor == 0 and remote.timing.executor_remote > 0  # ran in the second process
    for lane in ("policy", "hold"):
        a, b = local.lanes[lane].arrays(), remote.lanes[lane].arrays()
        assert a.keys() == b.keys() and len(a["t"]) > 100
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{lane} {key}")
        ra, rb = local.lanes[lane].records, remote.lanes[lane].records
        assert [(r.accepted, r.reason, r.skipped) for r in ra] == [(r.accepted, r.reason, r.skipped) for r in rb]
        sa, sb = local.lanes[lane].status, remote.lanes[lane].status
        assert (sa.chunks_received, sa.holds, sa.clamps, sa.state) == (sb.chunks_received, sb.holds, sb.clamps,
                                                                       sb.state)
    assert local.metrics["vs_hold"] == remote.metrics["vs_hold"]


def test_executor_process_failure_is_reported_not_hung(sim_cfg):
    from vla_ros.replay.executor_process import TICK, ExecutorProcess

    remote = ExecutorProcess(sim_cfg, ["policy"])
    remote.send("policy", [(TICK, 0.0, [0.4, 0.0, 0.3], [0.0, 0.0, 0.0, 1.0], 0.0)])
    remote.send("nonexistent_lane", [(TICK, 0.01, None, None, None)])
    with pytest.raises(RuntimeError, match="(?s)replay executor process failed:.*KeyError: 'nonexistent_lane'"):
        remote.finish(1.0)
    remote.close()
