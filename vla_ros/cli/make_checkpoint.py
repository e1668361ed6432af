"""`vla-ros make-checkpoint`: write a tiny random flow-matching checkpoint (tests, demos, benchmarks).

The checkpoint is complete (config.json, model.safetensors, tokenizer.json, norm_stats.json) and,
unless --no-verify, is loaded back through the real loader and run once, so what it prints is what
the policy node would see.
"""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return v


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-checkpoint", help="write a tiny random flow_matching checkpoint directory")
    p.add_argument("out_dir", metavar="OUT_DIR", help="directory to write (created if missing)")
    p.add_argument("--family", choices=("gemma", "llama"), default="gemma", help="decoder family (default: gemma)")
    p.add_argument("--vision", choices=("siglip", "siglip_dinov2"), default="siglip",
                   help="vision backbone (default: siglip)")
    p.add_argument("--cameras", default="primary",
                   help="comma-separated camera names, primary first (default: primary)")
    p.add_argument("--horizon", type=_positive_int, default=10, help="actions per chunk (default: 10)")
    p.add_argument("--dt", type=float, default=0.1, help="seconds between actions (default: 0.1)")
    p.add_argument("--action-mode", choices=("absolute", "delta"), default="absolute", help="default: absolute")
    p.add_argument("--state-source", choices=("ee_pose", "joints", "none"), default="ee_pose", help="default: ee_pose")
    p.add_argument("--joint-names", default="",
                   help="comma-separated joint names for --state-source joints (default: 6 joints)")
    p.add_argument("--image-size", type=_positive_int, default=224, help="square input size in pixels (default: 224)")
    p.add_argument("--patch-size", type=_positive_int, default=16, help="ViT patch size (default: 16)")
    p.add_argument("--normalization", choices=("mean_std", "quantile", "none"), default="mean_std")
    p.add_argument("--max-text-tokens", type=_positive_int, default=16,
                   help="instruction length in tokens (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default: 0)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip loading the checkpoint back and running one inference")
    p.set_defaults(func=run)


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def run(args: argparse.Namespace) -> int:
    from vla_ros.policy.flow_matching.tiny import make_tiny_checkpoint

    cameras = _names(args.cameras)
    if not cameras:
        raise ValueError("--cameras: expected at least one camera name")
    path = make_tiny_checkpoint(
        args.out_dir,
        seed=args.seed,
        family=args.family,
        vision=args.vision,
        cameras=cameras,
        horizon=args.horizon,
        dt=args.dt,
        action_mode=args.action_mode,
        state_source=args.state_source,
        joint_names=_names(args.joint_names) or None,
        image_size=args.image_size,
        patch_size=args.patch_size,
        normalization=args.normalization,
        max_text_tokens=args.max_text_tokens,
    )
    print(f"wrote {path}")
    if args.no_verify:
        return 0
    import numpy as np

    from vla_ros.core.types import EEPose, Observation
    from vla_ros.policy.registry import load_policy

    policy = load_policy("flow_matching", str(path))
    meta = policy.metadata
    rng = np.random.default_rng(args.seed)
    joints = None
    if meta.state_source == "joints":
        joints = np.zeros(meta.state_dim - int(policy.config.io.state_includes_gripper))
    obs = Observation(
        stamp=0.0,
        images={c: rng.integers(0, 256, (meta.image_size[0], meta.image_size[1], 3), dtype=np.uint8)
                for c in meta.cameras},
        joint_positions=joints,
        ee_pose=EEPose(np.array([0.45, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]), "base_link"),
        gripper=1.0,
        instruction="pick up the red cube",
    )
    chunk = policy.infer(obs)
    print(
        f"verified: {meta.checkpoint_id} cameras={','.join(meta.cameras)} state={meta.state_source}[{meta.state_dim}] "
        f"horizon={meta.horizon} dt={meta.dt} mode={meta.action_mode.name.lower()} "
        f"params={meta.extra['parameters']} -> chunk {chunk.actions.shape}"
    )
    return 0
