"""An imported pretrained policy runs end to end: `vla-ros eval` on a bag, and `vla-ros run` live.

The checkpoints are LeRobot's own tiny pi05 and SmolVLA (the golden fixtures
``test/fixtures/lerobot_pi05`` and ``lerobot_smolvla``; SmolVLA's VLM directory is found under
``--vlm-path``), imported here with the real command into a temporary directory. Nothing below knows it was
imported: the runtime (observation builder, policy node, executor, replay) takes it as it takes
any flow_matching checkpoint, which is the point of issue 12.

The import records an 8-dim state (``state_source: joints``, no names) and 7-dim absolute
actions, and names its cameras as LeRobot does (base_0_rgb, left_wrist_0_rgb). The robot is the
test profile ``test/fixtures/profiles/eight_joint_arm.yaml``: 8 joints plus a gripper joint, and
cameras of its own names, mapped onto the checkpoint's with ``--set robot.camera_names=...``.
Without that mapping both commands refuse to start and name the missing cameras.

- eval: a synthetic pick episode (the demo's scene and renderer, `vla_ros.replay.synthetic`)
  written to an mcap bag with 8-joint JointStates; the command's metrics, report and output bag.
- fine-tuning (SmolVLA): the imported expert trains on samples from that bag with the VLM frozen
  (`train(..., freeze="vlm")`), its loss falls and the VLM's weights do not move.
- run: `vla-ros run` as a real command (its executor node in a child process) with the sensor
  simulator in another process (8 joints), over DDS; ActionChunks from the imported checkpoint
  are published, and Ctrl-C stops it cleanly. The checkpoint imported for this test carries
  action statistics of the arm's workspace (see `imported_for_this_arm`): with the fixture's own,
  which span metres, the policy node refuses every chunk, as it should.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("rclpy")

from vla_ros.cli import main as cli_main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "test" / "fixtures" / "lerobot_pi05" / "checkpoint"
SMOLVLA = REPO / "test" / "fixtures" / "lerobot_smolvla"
SMOLVLA_IMPORT = (str(SMOLVLA / "checkpoint"), "--vlm-path", str(SMOLVLA / "vlm"))
PROFILE = REPO / "test" / "fixtures" / "profiles" / "eight_joint_arm.yaml"
CHECKPOINT_CAMERAS = "[base_0_rgb,left_wrist_0_rgb]"
SMOLVLA_CAMERAS = "[top,wrist]"
JOINTS = tuple(f"joint_{i}" for i in range(1, 9))
GRIPPER_JOINT, GRIPPER_OPEN = "gripper", 0.08
INSTRUCTION = "pick up the red block"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("imported") / "pi05"
    assert cli_main(["import", str(FIXTURE), "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["io"]["cameras"] == ["base_0_rgb", "left_wrist_0_rgb"]
    assert cfg["io"]["state_dim"] == 8  # what the 8-joint profile below is made for
    assert cfg["io"]["prompt"] == "pi05" and cfg["expert"]["time_conditioning"] == "adarms"
    return out


@pytest.fixture(scope="module")
def imported_for_this_arm(tmp_path_factory):
    """The same LeRobot checkpoint with action statistics of this arm's workspace, imported.

    The fixture's statistics come from random data spanning metres, so the live policy node's chunk
    check rightly refuses every chunk (workspace) before publishing it. A fine-tune on this robot's
    data would carry statistics of its own workspace: here a 1 cm box around the simulator's pose
    (x 0.45, y 0, z 0.3, no rotation, half-open gripper), written into both normalizer files.
    """
    import shutil

    src = Path(shutil.copytree(FIXTURE, tmp_path_factory.mktemp("fitted") / "src"))
    _workspace_box_stats(src)
    out = src.parent / "pi05"
    assert cli_main(["import", str(src), "--out", str(out), "--no-verify"]) == 0
    return out


def _workspace_box_stats(src: Path) -> None:
    """Action statistics of a 1 cm box around the simulator's pose, written into both normalizer files."""
    from safetensors.numpy import load_file, save_file

    centre = np.array([0.45, 0.0, 0.3, 0.0, 0.0, 0.0, 0.5], dtype=np.float32)
    half = np.float32(0.005)
    box = {"mean": centre, "std": np.full(7, half, np.float32), "min": centre - 2 * half, "max": centre + 2 * half,
           "q01": centre - half, "q10": centre - 0.8 * half, "q50": centre, "q90": centre + 0.8 * half,
           "q99": centre + half}
    for f in src.glob("*normalizer_processor.safetensors"):
        stats = load_file(str(f))
        stats.update({f"action.{k}": v.astype(np.float32) for k, v in box.items() if f"action.{k}" in stats})
        save_file(stats, str(f))


@pytest.fixture(scope="module")
def imported_smolvla(tmp_path_factory):
    out = tmp_path_factory.mktemp("imported") / "smolvla"
    assert cli_main(["import", *SMOLVLA_IMPORT, "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["io"]["cameras"] == ["top", "wrist"] and cfg["io"]["state_dim"] == 8
    assert cfg["expert"]["attention"] == "interleaved" and cfg["vision"]["kind"] == "smolvlm"
    return out


@pytest.fixture(scope="module")
def imported_smolvla_for_this_arm(tmp_path_factory):
    """The SmolVLA fixture with this arm's workspace statistics (see `imported_for_this_arm`)."""
    import shutil

    src = Path(shutil.copytree(SMOLVLA / "checkpoint", tmp_path_factory.mktemp("fitted") / "src"))
    _workspace_box_stats(src)
    out = src.parent / "smolvla"
    assert cli_main(["import", str(src), "--vlm-path", str(SMOLVLA / "vlm"), "--out", str(out), "--no-verify"]) == 0
    return out


# ----------------------------------------------------------------------------------- the demo bag
def write_eight_joint_bag(path: Path, duration: float = 2.5, seed: int = 3) -> Path:
    """One scripted pick of the synthetic tabletop scene, on this profile's topics, with 8 arm joints.

    Cameras, EE pose, the expert's commands (the ground truth) and the instruction are the demo's;
    the JointState carries joint_1..joint_8 (the demo arm's x, y, z, yaw and four fixed joints) and
    the gripper opening, as an 8-joint arm would publish them.
    """
    from vla_ros.replay.bag_io import BagWriter
    from vla_ros.replay.synthetic import (FRAME, TOPICS, Episode, SceneConfig, render_scene, render_wrist,
                                          yaw_quat)

    scene = SceneConfig(noise=0.0)
    ep = Episode.sample(np.random.default_rng(seed), scene, seed=seed)
    data = ep.simulate(scene)
    rng = np.random.default_rng(seed)
    t0 = 100.0
    events = []
    with BagWriter(path, storage="mcap") as w:
        m = w.msgs
        w.write(TOPICS["instruction"], t0, m.string(INSTRUCTION), latched=True)
        for t in np.arange(0.0, duration, 1.0 / scene.camera_rate):
            k = data.index(t)
            for cam, render in (("primary", render_scene), ("wrist", render_wrist)):
                img = render(data, k, scene.image_size, ep.brightness, rng, scene.noise)
                events.append((t0 + t + 0.004, TOPICS[cam], m.image(t0 + t, f"{cam}_camera", img)))
        for t in np.arange(0.0, duration, 1.0 / scene.state_rate):
            k = data.index(t)
            p, yaw = data.ee_pos[k], data.ee_yaw[k]
            joints = [p[0], p[1], p[2], yaw, 0.1, -0.2, 0.3, -0.4, data.gripper[k] * GRIPPER_OPEN]
            events.append((t0 + t + 0.001, TOPICS["joint_states"],
                           m.joint_state(t0 + t, (*JOINTS, GRIPPER_JOINT), joints)))
            events.append((t0 + t + 0.001, TOPICS["ee_pose"], m.pose_stamped(t0 + t, FRAME, p, yaw_quat(yaw))))
        for t in np.arange(0.0, duration, 1.0 / scene.command_rate):
            k = data.index(t)
            events.append((t0 + t, TOPICS["command"],
                           m.pose_stamped(t0 + t, FRAME, data.cmd_pos[k], yaw_quat(data.cmd_yaw[k]))))
            events.append((t0 + t, TOPICS["gripper_command"], m.float64(data.cmd_gripper[k] * GRIPPER_OPEN)))
        for t_log, topic, msg in sorted(events, key=lambda e: e[0]):
            w.write(topic, t_log, msg)
    return path


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory):
    return write_eight_joint_bag(tmp_path_factory.mktemp("bag") / "pick_8_joints")


# ----------------------------------------------------------------------------------- vla-ros eval
def _eval_args(bag: Path, ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--bag", str(bag), "--robot", str(PROFILE), "--policy", "flow_matching", "--checkpoint", str(ckpt),
            "--out", str(out), "--no-plots", "--no-progress", "--output-bag", *extra]


def test_eval_refuses_cameras_that_the_checkpoint_does_not_name(imported, demo_bag, tmp_path, capsys):
    assert cli_main(_eval_args(demo_bag, imported, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vla-ros eval: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "camera" in err and "base_0_rgb" in err and "left_wrist_0_rgb" in err and "primary" in err


@pytest.mark.parametrize("kind", ["pi05", "smolvla"])
def test_eval_runs_the_imported_checkpoint_on_a_demo_bag(kind, demo_bag, tmp_path, capsys, request):
    from vla_ros.core.msg_decode import chunk_from_msg
    from vla_ros.replay.bag_io import Bag

    ckpt = request.getfixturevalue("imported" if kind == "pi05" else "imported_smolvla")
    cameras = CHECKPOINT_CAMERAS if kind == "pi05" else SMOLVLA_CAMERAS
    out = tmp_path / "eval"
    # A random checkpoint's chunks leave the profile's workspace: the policy node's chunk check would refuse
    # them (never published), so the box is widened here to see the predictions themselves.
    wide = ["--set", "safety.workspace_min=[-100.0,-100.0,-100.0]",
            "--set", "safety.workspace_max=[100.0,100.0,100.0]",
            "--set", "safety.max_start_distance=1000.0"]
    code = cli_main(_eval_args(demo_bag, ckpt, out, "--set", f"robot.camera_names={cameras}", *wide))
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["summary"] == {**doc["summary"], "evaluated": 1, "skipped": 0}
    assert doc["policy"]["type"] == "flow_matching" and doc["policy"]["checkpoint"].startswith(f"{kind}@")
    assert (doc["policy"]["horizon"], doc["policy"]["action_mode"]) == (10, "absolute")
    bag = doc["bags"][0]
    assert bag["ok"] and bag["ground_truth"]["topic"] == "/target_pose" and bag["ground_truth"]["samples"] > 50
    n_chunks = bag["policy"]["chunks"]["count"]
    assert n_chunks >= 8  # 2.5 s at policy.rate_hz 4 (the profile)
    assert bag["hold"]["chunks"]["count"] >= 8  # the baseline ran beside it
    assert (out / "index.html").is_file()

    # the predictions themselves, from the output bag: the imported checkpoint's chunks, 10 x 7, finite
    with Bag(bag["output_bag"]) as b:
        chunks = [chunk_from_msg(m.msg) for m in b.messages(["/replay/policy/action_chunk"])]
    assert bag["policy"]["inference"]["refused_by_chunk_check"] == 0
    assert len(chunks) == n_chunks
    assert all(c.checkpoint_id == doc["policy"]["checkpoint"] and c.actions.shape == (10, 7) for c in chunks)
    assert all(np.all(np.isfinite(c.actions)) for c in chunks)
    assert len({c.actions.tobytes() for c in chunks}) > 1  # observations differ, so do the chunks


# ----------------------------------------------------------------------------------- vla-ros run
SENSORS = f"""
import sys
import rclpy
from rclpy.executors import SingleThreadedExecutor
from vla_ros.ros import node_main
from vla_ros.ros.sensor_sim import SensorSim

rclpy.init(args=sys.argv)
node = SensorSim(cameras={{"primary": "/camera/primary/image_raw", "wrist": "/camera/wrist/image_raw"}},
                 joint_names={list(JOINTS)!r}, gripper_joint={GRIPPER_JOINT!r}, instruction={INSTRUCTION!r},
                 camera_rate=15.0, state_rate=30.0)
print("sensor_sim ready", flush=True)
sys.exit(node_main.spin(node, SingleThreadedExecutor(), 120.0))
"""
RUN = (sys.executable, "-c", "import sys; from vla_ros.cli import main; sys.exit(main())", "run")


def _run_args(ckpt: Path, sets: str) -> list[str]:
    return ["--robot", str(PROFILE), "--policy", "flow_matching", "--checkpoint", str(ckpt), "--set", sets]


def test_run_refuses_cameras_that_the_checkpoint_does_not_name(imported, capsys):
    assert cli_main(["run", *_run_args(imported, "policy.rate_hz=4")]) == 2  # checked before any node starts
    err = capsys.readouterr().err.strip()
    assert err.startswith("vla-ros run: error: ") and len(err.splitlines()) == 1
    assert "camera" in err and "base_0_rgb" in err and "left_wrist_0_rgb" in err


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["pi05", "smolvla"])
def test_run_publishes_chunks_of_the_imported_checkpoint_from_live_sensors(kind, rclpy_context, tmp_path, request):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from ros_helpers import spin_until, stop_process

    from vla_ros.msg import ActionChunk

    ckpt = request.getfixturevalue("imported_for_this_arm" if kind == "pi05" else "imported_smolvla_for_this_arm")
    cameras = CHECKPOINT_CAMERAS if kind == "pi05" else SMOLVLA_CAMERAS
    sensors = subprocess.Popen([sys.executable, "-c", SENSORS], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        run = subprocess.Popen([*RUN, *_run_args(ckpt, f"robot.camera_names={cameras};policy.rate_hz=4")],
                               stdout=f, stderr=subprocess.STDOUT, text=True)
    probe = Node("imported_run_probe", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(probe)
    chunks = []
    probe.create_subscription(ActionChunk, "action_chunk", chunks.append,
                              QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    try:
        ok = spin_until(ex, lambda: len(chunks) >= 3 or run.poll() is not None, timeout=120)
        assert ok and run.poll() is None and len(chunks) >= 3, (
            log.read_text() + "\n--- sensors:\n" + stop_process(sensors))
        assert {c.policy_id for c in chunks} == {"flow_matching"}
        assert all(c.checkpoint_id.startswith(f"{kind}@") for c in chunks)
        assert [c.seq for c in chunks] == sorted(c.seq for c in chunks)
        assert all(len(c.poses) == 10 and len(c.gripper) == 10 for c in chunks)
        positions = np.array([[p.position.x, p.position.y, p.position.z] for c in chunks for p in c.poses])
        assert np.all(np.abs(positions - [0.45, 0.0, 0.3]) < 0.05)  # un-normalised with the checkpoint's statistics
        assert all(np.all((np.asarray(c.gripper) >= 0) & (np.asarray(c.gripper) <= 1)) for c in chunks)
        assert "flow_matching on robot eight_joint_arm" in log.read_text()

        run.send_signal(signal.SIGINT)  # Ctrl-C stops the policy node and the executor process
        assert run.wait(timeout=30) == 0, log.read_text()
    finally:
        ex.shutdown()
        probe.destroy_node()
        if run.poll() is None:
            run.kill()
            run.wait()
        stop_process(sensors)


# ----------------------------------------------------------------------------- SmolVLA fine-tuning
def test_imported_smolvla_expert_fine_tunes_on_demo_bags_with_the_vlm_frozen(imported_smolvla, demo_bag):
    """The design's first stage on an imported SmolVLA: VLM frozen, expert (and heads) trained on bag samples."""
    import torch

    from vla_ros.core.config import load_config
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
    from vla_ros.policy.flow_matching.train import train
    from vla_ros.policy.training.dataset import samples_from_bags

    torch.set_num_threads(1)
    policy = FlowMatchingPolicy.load(imported_smolvla)
    cfg = load_config([str(PROFILE)], {"policy.type": "flow_matching", "policy.checkpoint": str(imported_smolvla),
                                       "robot.camera_names": ["top", "wrist"]})
    obs, acts = samples_from_bags([demo_bag], cfg, policy.metadata)
    assert len(obs) >= 20 and acts.shape[1:] == (10, 7)
    policy.set_norm_stats(policy.compute_norm_stats(obs, acts))
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    losses = train(policy, (obs, acts), steps=60, batch_size=16, lr=2e-3, freeze="vlm", progress=False)
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10]), losses
    after = policy.model.state_dict()
    vlm = [k for k in before if k.startswith(("vision.", "backbone."))]
    expert = [k for k in before if k.startswith(("expert.", "heads."))]
    assert vlm and expert
    assert all(torch.equal(before[k], after[k]) for k in vlm)  # the VLM did not move
    assert all(not torch.equal(before[k], after[k]) for k in expert if k.endswith("weight"))
    assert not any(p.requires_grad for p in policy.model.parameters())  # left ready for inference
