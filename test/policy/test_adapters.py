"""Action and state adapters: a pretrained policy's raw vectors <-> this package's 7-DoF chunks.

The LIBERO-style mapping (per-step end-effector deltas scaled by robosuite's OSC_POSE limits, a
-1 open .. +1 closed gripper, an 8-dim state of position, axis-angle and two finger joints) runs
on the real imported pi05 fixture (test/fixtures/lerobot_pi05, imported with `vla-ros import`);
the representations and the inverse are checked on the adapters themselves, against rotations
computed here independently (matrices, not the adapters' quaternions).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from vla_ros.core import profiles
from vla_ros.core.action_modes import delta_to_absolute
from vla_ros.core.config import ActionMapConfig, ConfigError, PolicyConfig, RobotConfig, StateMapConfig, load_config
from vla_ros.core.rotations import quat_to_matrix, quat_to_rotvec, rotvec_to_quat
from vla_ros.core.types import ActionMode, EEPose, Observation
from vla_ros.policy import adapters
from vla_ros.policy.adapters import ActionAdapter, StateAdapter
from vla_ros.policy.base import PolicyMetadata
from vla_ros.policy.compat import check_compatible, compatibility_problems, compatibility_report
from vla_ros.policy.rotation_forms import euler_xyz_to_quat, quat_to_euler_xyz, rotvec_nearest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

LIBERO_ACTIONS = dict(space="ee", rotation="axis_angle", gripper_dim=6, gripper_closed=1.0, gripper_open=-1.0,
                      mode="delta", delta_reference="previous", frame="base", position_scale=0.05, rotation_scale=0.5,
                      clip=1.0)
LIBERO_STATE = dict(parts=["ee_position", "ee_rotvec", "gripper_fingers"], gripper_closed=0.0, gripper_open=0.04)
LIBERO_ROBOT = RobotConfig(name="libero_panda", camera_names=["base_0_rgb", "left_wrist_0_rgb"],
                           camera_topics=["/agentview/image_raw", "/eye_in_hand/image_raw"],
                           joint_names=[f"panda_joint{i}" for i in range(1, 8)], gripper_joint="panda_finger_joint1",
                           gripper_closed=0.0, gripper_open=0.04, ee_pose_topic="/ee_pose")


def rodrigues(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector, written out (independent of vla_ros.core.rotations)."""
    theta = float(np.linalg.norm(v))
    if theta < 1e-12:
        return np.eye(3)
    k = np.asarray(v) / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx


def rpy_matrix(r: float, p: float, y: float) -> np.ndarray:
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


REF = EEPose(np.array([0.45, -0.1, 0.3]), rotvec_to_quat(np.array([3.0, 0.2, -0.1])), "world")


# -- the adapters alone -------------------------------------------------------------------------

def test_libero_gripper_minus_one_is_open_plus_one_closed():
    a = ActionAdapter(ActionMapConfig(**LIBERO_ACTIONS), 7)
    raw = np.zeros((5, 7))
    raw[:, 6] = [-1.0, 1.0, 0.0, -3.0, 0.5]
    out = a.to_chunk(raw, REF)
    np.testing.assert_allclose(out[:, 6], [1.0, 0.0, 0.5, 1.0, 0.25])  # opening: 1 open, 0 closed, clipped
    np.testing.assert_allclose(a.from_absolute(delta_to_absolute(out, REF), REF)[:3, 6], [-1.0, 1.0, 0.0])


def test_chained_deltas_compose_from_the_reference_pose():
    rng = np.random.default_rng(0)
    raw = rng.uniform(-1.3, 1.3, (6, 7))  # some beyond robosuite's +-1: clipped before scaling
    a = ActionAdapter(ActionMapConfig(**LIBERO_ACTIONS), 7)
    assert a.mode == ActionMode.DELTA
    absolute = delta_to_absolute(a.to_chunk(raw, REF), REF)
    p, r = REF.position.copy(), quat_to_matrix(REF.orientation)
    for i in range(6):
        c = np.clip(raw[i], -1, 1)
        p, r = p + 0.05 * c[:3], rodrigues(0.5 * c[3:6]) @ r  # robosuite OSC: world-frame offsets, left-multiplied
        np.testing.assert_allclose(absolute[i, :3], p, atol=1e-12)
        np.testing.assert_allclose(quat_to_matrix(rotvec_to_quat(absolute[i, 3:6])), r, atol=1e-9)


def test_deltas_from_the_observation_and_in_the_ee_frame():
    raw = np.array([[0.2, -0.4, 0.1, 0.1, 0.0, 0.3, 1.0], [0.0, 0.5, 0.0, 0.0, 0.2, 0.0, -1.0]])
    obs_base = ActionAdapter(ActionMapConfig(**{**LIBERO_ACTIONS, "delta_reference": "observation"}), 7)
    out = obs_base.to_chunk(raw, REF)  # the DELTA convention itself: scaled offsets, no composition
    np.testing.assert_allclose(out[:, :3], 0.05 * raw[:, :3])
    np.testing.assert_allclose(out[:, 3:6], 0.5 * raw[:, 3:6], atol=1e-12)
    ee = ActionAdapter(ActionMapConfig(**{**LIBERO_ACTIONS, "delta_reference": "observation", "frame": "ee"}), 7)
    absolute = delta_to_absolute(ee.to_chunk(raw, REF), REF)
    r0 = quat_to_matrix(REF.orientation)
    for i in range(2):
        np.testing.assert_allclose(absolute[i, :3], REF.position + r0 @ (0.05 * raw[i, :3]), atol=1e-12)
        np.testing.assert_allclose(quat_to_matrix(rotvec_to_quat(absolute[i, 3:6])), r0 @ rodrigues(0.5 * raw[i, 3:6]),
                                   atol=1e-9)


@pytest.mark.parametrize("frame", ["base", "ee"])
@pytest.mark.parametrize("reference", ["observation", "previous"])
def test_inverse_gives_back_the_raw_actions(frame, reference):
    raw = np.random.default_rng(1).uniform(-0.9, 0.9, (5, 7))
    a = ActionAdapter(ActionMapConfig(**{**LIBERO_ACTIONS, "frame": frame, "delta_reference": reference}), 7)
    back = a.from_absolute(delta_to_absolute(a.to_chunk(raw, REF), REF), REF)
    np.testing.assert_allclose(back, raw, atol=1e-9)


def test_euler_xyz_is_roll_pitch_yaw_about_fixed_axes():
    rpy = np.array([0.3, -0.5, 1.2])
    np.testing.assert_allclose(quat_to_matrix(euler_xyz_to_quat(rpy)), rpy_matrix(*rpy), atol=1e-12)
    np.testing.assert_allclose(quat_to_euler_xyz(euler_xyz_to_quat(rpy)), rpy, atol=1e-12)
    cfg = ActionMapConfig(space="ee", rotation="euler_xyz", rotation_dims=[5, 4, 3], position_dims=[0, 1, 2],
                          gripper_dim=6, position_scale=0.001)  # millimetres, and a reordered rotation
    raw = np.array([[100.0, -20.0, 300.0, 1.2, -0.5, 0.3, 0.5]])
    out = ActionAdapter(cfg, 7).to_chunk(raw, None)
    np.testing.assert_allclose(out[0, :3], [0.1, -0.02, 0.3])
    np.testing.assert_allclose(quat_to_matrix(rotvec_to_quat(out[0, 3:6])), rpy_matrix(0.3, -0.5, 1.2), atol=1e-12)
    assert out[0, 6] == 0.5


@pytest.mark.parametrize("form", ["quat_xyzw", "quat_wxyz"])
def test_quaternion_actions_in_both_orders(form):
    q = rotvec_to_quat(np.array([0.4, -1.0, 0.7]))  # (x, y, z, w)
    stored = 2.0 * (q if form == "quat_xyzw" else q[[3, 0, 1, 2]])  # not unit: normalised by the adapter
    cfg = ActionMapConfig(space="ee", rotation=form, rotation_dims=[3, 4, 5, 6], gripper_dim=7)
    a = ActionAdapter(cfg, 8)
    out = a.to_chunk(np.concatenate([[0.5, 0.0, 0.2], stored, [0.0]])[None], None)
    np.testing.assert_allclose(out[0, 3:6], [0.4, -1.0, 0.7], atol=1e-12)
    assert a.mode == ActionMode.ABSOLUTE
    back = a.from_absolute(out, None)[0, 3:7]
    np.testing.assert_allclose(back / np.linalg.norm(back), stored / np.linalg.norm(stored), atol=1e-12)


def test_libero_state_from_the_observation():
    sa = StateAdapter(StateMapConfig(**LIBERO_STATE), 8)
    ob = Observation(stamp=1.0, ee_pose=REF, gripper=0.75)
    state = sa(ob)
    np.testing.assert_allclose(state[:3], REF.position)
    np.testing.assert_allclose(state[3:6], quat_to_rotvec(REF.orientation))
    np.testing.assert_allclose(state[6:], [0.03, -0.03])  # robosuite's Panda fingers: +w/2 .. -w/2
    with pytest.raises(ValueError, match=r"^observation\.gripper: .*robot\.gripper_joint"):
        sa(Observation(stamp=1.0, ee_pose=REF))
    with pytest.raises(ConfigError, match=r"policy\.state_map\.parts: ee_position\(3\) \+ ee_rotvec\(3\) \+ "
                                          r"gripper_fingers\(2\) make 8 values, but the checkpoint's state has 7 dims"):
        StateAdapter(StateMapConfig(**LIBERO_STATE), 7)


def test_rotation_vector_branch_near_the_state_mean():
    # about x by pi + 0.1: quat_to_rotvec gives the principal (pi - 0.1) about -x; LIBERO's data holds (pi + 0.1) x
    q = rotvec_to_quat(np.array([math.pi + 0.1, 0.0, 0.0]))
    principal = quat_to_rotvec(q)
    np.testing.assert_allclose(principal, [-(math.pi - 0.1), 0, 0], atol=1e-12)
    np.testing.assert_allclose(rotvec_nearest(principal, [3.0, 0, 0]), [math.pi + 0.1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rotvec_nearest(principal, [-3.0, 0, 0]), principal, atol=1e-12)
    mean = np.array([0, 0, 0, 3.0, 0, 0, 0.02, -0.02])
    sa = StateAdapter(StateMapConfig(**LIBERO_STATE, rotation_branch="stats_mean"), 8, mean)
    ob = Observation(stamp=1.0, ee_pose=EEPose(np.zeros(3), q), gripper=1.0)
    np.testing.assert_allclose(sa(ob)[3:6], [math.pi + 0.1, 0, 0], atol=1e-12)


def test_joint_space_actions_are_refused_naming_the_dims():
    msg = adapters.action_map_problem(None, 14)
    assert "the action has 14 dims (0-13), not the native 7-dim end-effector layout" in msg
    assert "ALOHA-style bimanual" in msg and "does not run joint-space policies" in msg
    with pytest.raises(ConfigError, match=r"policy\.action_map\.space is 'joints': the 14 action dims \(0-13\) are "
                                          r"declared joint-space\. Refused"):
        adapters.build_action_adapter(ActionMapConfig(space="joints"), 14)
    imported = adapters.joint_space_message(14, "/src/config.json", importing=True)
    assert imported.startswith("/src/config.json: the action has 14 dims (0-13)")
    assert "vla-ros import reads 7-dim" in imported
    with pytest.raises(ConfigError, match=r"dims 9 are beyond the checkpoint's 7-dim action"):
        ActionAdapter(ActionMapConfig(space="ee", gripper_dim=9), 7)


def test_the_keys_are_in_the_one_schema():
    cfg = load_config([profiles.resolve("config", "default"), profiles.resolve("robot", "libero_panda"),
                       profiles.resolve("policy", "pi05_libero")], ["policy.action_map.frame=ee"])
    assert cfg.policy.action_map.position_scale == 0.05 and cfg.policy.action_map.gripper_closed == 1.0
    assert cfg.policy.action_map.frame == "ee" and cfg.policy.state_map.parts[2] == "gripper_fingers"
    flat = cfg.flatten()  # the ROS parameter names
    assert flat["policy.action_map.rotation_dims"] == [3, 4, 5] and flat["policy.state_map.gripper_open"] == 0.04
    with pytest.raises(ConfigError,
                       match=r"policy\.action_map\.rotation_dims: rotation 'quat_xyzw' takes 4 dims, got 3"):
        load_config([], ["policy.action_map.space=ee", "policy.action_map.rotation=quat_xyzw"])
    with pytest.raises(ConfigError,
                       match=r"policy\.action_map\.position_scale: only used with policy\.action_map\.space "
                                          r"'ee'"):
        load_config([], ["policy.action_map.position_scale=0.05"])
    with pytest.raises(ConfigError, match=r"policy\.state_map\.parts: expected one of"):
        load_config([], ["policy.state_map.parts=[ee_pos]"])


def test_the_maps_travel_as_ros_parameters(rclpy_context):
    from rclpy.node import Node

    from vla_ros.ros.params import declare_config, parameter_overrides

    cfg = load_config([profiles.resolve("config", "default"), profiles.resolve("robot", "libero_panda"),
                       profiles.resolve("policy", "pi05_libero")])
    node = Node("adapters_params", context=rclpy_context, parameter_overrides=parameter_overrides(cfg, ["policy"]))
    try:
        back = declare_config(node, sections=["policy"])
        assert back.policy.action_map == cfg.policy.action_map and back.policy.state_map == cfg.policy.state_map
        assert node.get_parameter("policy.action_map.gripper_open").value == -1.0
        assert list(node.get_parameter("policy.state_map.parts").value) == ["ee_position", "ee_rotvec",
                                                                            "gripper_fingers"]
    finally:
        node.destroy_node()


# -- on the imported pi05 fixture --------------------------------------------------------------


@pytest.fixture(scope="module")
def pi05_dir(tmp_path_factory):
    """The LeRobot pi05 fixture imported with the real command (torch on one thread meanwhile)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from vla_ros.cli import main as cli_main

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    dst = tmp_path_factory.mktemp("pi05") / "ckpt"
    assert cli_main(["import", str(FIXTURES / "lerobot_pi05" / "checkpoint"), "--out", str(dst)]) == 0
    yield dst
    torch.set_num_threads(n)


def _load(path):
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy

    return FlowMatchingPolicy.load(path)


def _observation(gripper: float = 0.6) -> Observation:
    rng = np.random.default_rng(3)
    images = {"base_0_rgb": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
              "left_wrist_0_rgb": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}
    return Observation(stamp=2.0, images=images, ee_pose=REF, gripper=gripper, joint_positions=np.zeros(8),
                       instruction="put the bowl on the plate")


def _raw_spy(policy):
    """Record the un-normalised raw actions the chunk is made from (the real method, observed)."""
    seen = []
    real = policy.unnormalize_actions
    policy.unnormalize_actions = lambda m: seen.append(real(m)) or seen[-1]
    return seen


def test_native_defaults_change_nothing(pi05_dir):
    policy = _load(pi05_dir)
    noise = np.random.default_rng(5).standard_normal((policy.metadata.horizon, 32))
    before = policy.infer(_observation(), noise=noise)
    policy.configure_adapters(ActionMapConfig(), StateMapConfig())
    after = policy.infer(_observation(), noise=noise)
    np.testing.assert_array_equal(before.actions, after.actions)
    assert after.mode == ActionMode.ABSOLUTE and policy.metadata.state_source == "joints"


def test_libero_mapping_on_the_imported_pi05(pi05_dir):
    import torch

    policy = _load(pi05_dir)
    policy.configure_adapters(ActionMapConfig(**LIBERO_ACTIONS), StateMapConfig(**LIBERO_STATE))
    meta = policy.metadata
    assert meta.action_mode == ActionMode.DELTA and meta.state_source == "ee_pose"
    assert meta.extra["state_map"].startswith("8 dims = ee_position(3) + ee_rotvec(3) + gripper_fingers(2)")
    seen = _raw_spy(policy)
    ob = _observation(gripper=0.6)
    noise = np.random.default_rng(6).standard_normal((meta.horizon, 32))
    chunk = policy.infer(ob, noise=noise)
    raw = seen[-1]
    assert chunk.mode == ActionMode.DELTA and chunk.reference_pose is ob.ee_pose
    np.testing.assert_allclose(chunk.actions[:, 6], np.clip((1.0 - raw[:, 6]) / 2.0, 0, 1), atol=1e-12)
    absolute = delta_to_absolute(chunk.actions, ob.ee_pose)
    p, r = ob.ee_pose.position.copy(), quat_to_matrix(ob.ee_pose.orientation)
    for i in range(meta.horizon):
        c = np.clip(raw[i], -1, 1)
        p, r = p + 0.05 * c[:3], rodrigues(0.5 * c[3:6]) @ r
        np.testing.assert_allclose(absolute[i, :3], p, atol=1e-9)
        np.testing.assert_allclose(quat_to_matrix(rotvec_to_quat(absolute[i, 3:6])), r, atol=1e-7)
    # the state the model saw is the mapped one: same tokens as the dataset-style input with that state
    state = np.concatenate([REF.position, quat_to_rotvec(REF.orientation), [0.024, -0.024]])
    via_obs = policy.observation_tensors([ob])
    via_batch = policy.batch_tensors({k: torch.from_numpy(v).permute(2, 0, 1)[None].float() / 255
                                      for k, v in ob.images.items()},
                                     state[None], [ob.instruction])
    assert torch.equal(via_obs.tokens, via_batch.tokens)


def test_euler_and_quaternion_layouts_on_the_imported_pi05(pi05_dir):
    policy = _load(pi05_dir)
    policy.configure_adapters(ActionMapConfig(space="ee", rotation="euler_xyz"), StateMapConfig(**LIBERO_STATE))
    seen = _raw_spy(policy)
    noise = np.random.default_rng(7).standard_normal((policy.metadata.horizon, 32))
    chunk = policy.infer(_observation(), noise=noise)
    raw = seen[-1]
    assert chunk.mode == ActionMode.ABSOLUTE
    np.testing.assert_allclose(chunk.actions[:, :3], raw[:, :3])
    for i in range(3):
        np.testing.assert_allclose(quat_to_matrix(rotvec_to_quat(chunk.actions[i, 3:6])), rpy_matrix(*raw[i, 3:6]),
                                   atol=1e-9)
    # 7 dims read as position + quaternion (w last), no gripper dim: the measured opening is kept
    policy.configure_adapters(ActionMapConfig(space="ee", rotation="quat_xyzw", rotation_dims=[3, 4, 5, 6],
                                              gripper_dim=-1),
                              StateMapConfig(**LIBERO_STATE))
    chunk = policy.infer(_observation(gripper=0.3), noise=noise)
    raw = seen[-1]
    q = raw[:, 3:7] / np.linalg.norm(raw[:, 3:7], axis=1, keepdims=True)
    for i in range(3):
        np.testing.assert_allclose(quat_to_matrix(rotvec_to_quat(chunk.actions[i, 3:6])), quat_to_matrix(q[i]),
                                   atol=1e-9)
    np.testing.assert_allclose(chunk.actions[:, 6], 0.3)


def test_joint_space_checkpoint_is_refused_by_name(pi05_dir, tmp_path, capsys):
    policy = _load(pi05_dir)
    with pytest.raises(ConfigError,
                       match=r"the 7 action dims \(0-6\) are declared joint-space\. Refused: vla_ros commands "
                                          r"the end effector"):
        policy.configure_adapters(ActionMapConfig(space="joints"))
    # a 14-dim (ALOHA-style) LeRobot checkpoint is refused by the importer, naming its dims
    from vla_ros.cli import main as cli_main

    src = tmp_path / "aloha"
    shutil.copytree(FIXTURES / "lerobot_pi05" / "checkpoint", src)
    cfg = json.loads((src / "config.json").read_text())
    cfg["output_features"]["action"]["shape"] = [14]
    (src / "config.json").write_text(json.dumps(cfg))
    assert cli_main(["import", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "14 dims" in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_compatibility_mismatches_are_named(pi05_dir):
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy

    pcfg = PolicyConfig(action_map=ActionMapConfig(**LIBERO_ACTIONS), state_map=StateMapConfig(**LIBERO_STATE),
                        rate_hz=10.0)
    described = FlowMatchingPolicy.describe(pi05_dir)
    assert compatibility_problems(described, LIBERO_ROBOT, pcfg) == []
    check_compatible(described, LIBERO_ROBOT, pcfg)
    bare = RobotConfig(name="bare", camera_names=["base_0_rgb", "wrist"], camera_topics=["/a", "/b"], ee_pose_topic="")
    problems = "\n".join(compatibility_problems(described, bare, pcfg))
    assert "missing: left_wrist_0_rgb" in problems
    assert ("needs the end-effector pose as state (policy.state_map.parts) but robot profile 'bare' has no "
            "robot.ee_pose_topic") in problems
    assert ("reads the gripper opening as state (policy.state_map.parts) but robot profile 'bare' has no "
            "robot.gripper_joint") in problems
    assert ("predicts DELTA actions (offsets from the measured end-effector pose) but robot profile 'bare' has no "
            "robot.ee_pose_topic") in problems
    seven = PolicyConfig(action_map=ActionMapConfig(**LIBERO_ACTIONS),
                         state_map=StateMapConfig(parts=["ee_position", "ee_rotvec", "gripper"]))
    assert ("make 7 values, but the checkpoint's state has 8 dims"
            in compatibility_problems(described, LIBERO_ROBOT, seven)[0])
    joints = PolicyConfig(action_map=ActionMapConfig(space="joints"))
    assert "declared joint-space" in compatibility_problems(described, LIBERO_ROBOT, joints)[0]
    # a policy loaded without its mapping is not waved through
    loaded = _load(pi05_dir)
    assert "was loaded without the configured policy.action_map / policy.state_map" in \
        compatibility_problems(loaded.metadata, LIBERO_ROBOT, pcfg)[0]
    loaded.configure_adapters(pcfg.action_map, pcfg.state_map)
    assert compatibility_problems(loaded.metadata, LIBERO_ROBOT, pcfg) == []
    assert compatibility_problems(loaded.metadata, LIBERO_ROBOT) == []  # eval's call, without the profile
    # a policy without adapters cannot take a mapping
    hold = PolicyMetadata("hold", cameras=("base_0_rgb",))
    assert "does not take policy.action_map" in compatibility_problems(hold, LIBERO_ROBOT, pcfg)[0]


def test_missing_norm_stats_and_the_report(pi05_dir, tmp_path):
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy
    from vla_ros.policy.normalization import NORM_STATS_FILE

    pcfg = PolicyConfig(action_map=ActionMapConfig(**LIBERO_ACTIONS), state_map=StateMapConfig(**LIBERO_STATE))
    lines = compatibility_report(FlowMatchingPolicy.describe(pi05_dir), LIBERO_ROBOT, pcfg)
    text = "\n".join(lines)
    assert lines[0].startswith("compatibility check: policy 'flow_matching' (checkpoint ckpt) (lerobot pi05) on robot "
                               "profile 'libero_panda'")
    assert ("cameras, in the policy's order: 1 base_0_rgb <- /agentview/image_raw, "
            "2 left_wrist_0_rgb <- /eye_in_hand/image_raw") in text
    assert "image size: the policy sees 32x32 px" in text
    assert "state: 8 dims = ee_position(3) + ee_rotvec(3) + gripper_fingers(2)" in text
    assert "x0.05 m" in text and "deltas from the previous step's target in the base frame" in text
    assert "gripper dim 6: 1 = closed, -1 = open -> opening 0..1" in text
    assert "norm stats: quantile, present" in text
    assert "policy gripper 1 = closed, -1 = open" in text and lines[-1] == "  result: compatible"
    no_stats = tmp_path / "no_stats"
    shutil.copytree(pi05_dir, no_stats)
    (no_stats / NORM_STATS_FILE).unlink()
    lines = compatibility_report(FlowMatchingPolicy.describe(no_stats), LIBERO_ROBOT, pcfg)
    assert lines[-2] == "  REFUSED, 1 problem(s):"
    assert "uses quantile normalisation but its checkpoint has no norm stats (norm_stats.json)" in lines[-1]
