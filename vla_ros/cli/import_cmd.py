"""`vla-ros import`: turn a local LeRobot (pi0 / pi05 / smolvla) or openpi (pi0 / pi05) checkpoint into a native
flow_matching one.

Nothing is downloaded: SRC is a directory on disk. The result (config.json v2, model.safetensors,
tokenizer.json, norm_stats.json) is what `--policy flow_matching --checkpoint OUT` loads, and it is
loaded back once here (unless --no-verify) so a checkpoint that would fail on the robot fails now.
Every refusal (truncated or pickle-only weights, missing tokenizer, unknown type, a tensor that
does not fit, a SmolVLA whose VLM directory is not found) is one sentence and exit code 2.
SmolVLA names its VLM (``vlm_model_name``); that VLM's config.json (and tokenizer) is read from a
local directory: ``--vlm DIR``, or ``<root>/<vlm_model_name>`` under the ``--vlm-path`` roots,
``$VLA_ROS_VLM_PATH`` and ``~/.cache/vla_ros/vlm`` (docs/pretrained.md).
"""

from __future__ import annotations

import argparse


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return v


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import",
                       help="import a LeRobot (pi0, pi05, smolvla) or openpi (pi0, pi05) checkpoint directory as a "
                            "flow_matching checkpoint")
    p.add_argument("src", metavar="SRC", help="the source checkpoint directory (local; nothing is downloaded)")
    p.add_argument("--out", required=True, metavar="DIR", help="native checkpoint directory to write (new or empty)")
    p.add_argument("--tokenizer", metavar="PATH",
                   help="the PaliGemma tokenizer (tokenizer.json, or a directory holding it) when SRC has none")
    p.add_argument("--format", choices=("auto", "lerobot", "openpi"), default="auto",
                   help="source layout (default: auto, from config.json / assets/)")
    p.add_argument("--asset-id", metavar="ID",
                   help="openpi: which assets/<ID>/norm_stats.json to use when the checkpoint has several")
    p.add_argument("--vlm", metavar="DIR",
                   help="smolvla: the VLM's local directory (its config.json and tokenizer; weights not needed)")
    p.add_argument("--vlm-path", action="append", default=[], metavar="ROOT",
                   help="smolvla: a root under which the VLM is found as ROOT/<vlm_model_name> (repeatable; also "
                        "$VLA_ROS_VLM_PATH, then ~/.cache/vla_ros/vlm)")
    p.add_argument("--dt", type=_positive_float, default=0.1,
                   help="seconds between actions, which LeRobot and openpi checkpoints do not store (default: 0.1)")
    p.add_argument("--no-verify", action="store_true", help="skip loading the written checkpoint back")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vla_ros.policy.imports import import_checkpoint

    result = import_checkpoint(args.src, args.out, tokenizer=args.tokenizer, fmt=args.format, dt=args.dt,
                               asset_id=args.asset_id, vlm=args.vlm, vlm_path=args.vlm_path)
    for note in result.notes:
        print(f"note: {note}")
    print(f"imported {result.policy_type} ({result.parameters} parameters, source sha256 {result.source_sha256[:12]}) "
          f"-> {result.path} (weights sha256 {result.weights_sha256[:12]})")
    if args.no_verify:
        return 0
    from vla_ros.policy.flow_matching.policy import FlowMatchingPolicy

    policy = FlowMatchingPolicy.load(result.path)
    meta = policy.metadata
    print(f"verified: {meta.checkpoint_id} cameras={','.join(meta.cameras)} "
          f"state={meta.state_source}[{meta.state_dim}] "
          f"horizon={meta.horizon} steps={meta.extra['num_steps']}")
    policy.close()
    return 0
