"""Find policy classes by type name, so a launch argument can swap policies.

Third-party packages register a policy by declaring an entry point in the group
``vla_ros.policies`` (``name = package.module:Class``). The built-in policies are declared there
too (setup.cfg) and, as a fallback for source checkouts without installed metadata, listed here.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from typing import TYPE_CHECKING

from vla_ros.policy.base import Policy, PolicyMetadata

if TYPE_CHECKING:
    from vla_ros.core.config import PolicyConfig

ENTRY_POINT_GROUP = "vla_ros.policies"

BUILTIN_POLICIES: dict[str, str] = {
    "flow_matching": "vla_ros.policy.flow_matching.policy:FlowMatchingPolicy",
    "hold": "vla_ros.policy.hold:HoldPolicy",
}


def _entry_points() -> dict[str, str]:
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10 selection API; kept for old robots' system Python
        eps = metadata.entry_points().get(ENTRY_POINT_GROUP, [])  # type: ignore[union-attr]
    return {ep.name: ep.value for ep in eps}


def available_policies() -> dict[str, str]:
    """Type name -> 'module:Class' of every known policy (entry points win over built-ins)."""
    found = dict(BUILTIN_POLICIES)
    found.update(_entry_points())
    return dict(sorted(found.items()))


def get_policy_class(policy_type: str) -> type[Policy]:
    """The class registered as `policy_type`; a clear error lists the known names."""
    known = available_policies()
    if policy_type not in known:
        raise KeyError(f"policy.type: unknown policy {policy_type!r}; known policies: {', '.join(known)}")
    module_name, _, attr = known[policy_type].partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Policy)):
        raise TypeError(f"policy.type: {policy_type!r} -> {known[policy_type]} is not a vla_ros Policy subclass")
    return obj


def describe_policy(policy_type: str, checkpoint: str | None) -> PolicyMetadata:
    """Metadata of `checkpoint` for `policy_type` without loading it for inference."""
    return get_policy_class(policy_type).describe(checkpoint or None)


def load_policy(policy_type: str, checkpoint: str | None, device: str = "cpu", dtype: str = "float32") -> Policy:
    """Resolve `policy_type` and load it from `checkpoint`."""
    return get_policy_class(policy_type).load(checkpoint or None, device=device, dtype=dtype)


def load_configured_policy(pcfg: PolicyConfig) -> Policy:
    """Load ``policy.type`` from ``policy.checkpoint``, apply ``policy.seed`` / ``policy.num_steps``,
    warm it up (so the first chunk, also after a runtime swap, is not late) and run its
    `Policy.self_check` (a policy whose output is NaN is refused here, not on the robot).

    Errors are re-raised as one exception whose text names the parameters.
    """
    where = (f"policy.type={pcfg.type!r}, policy.checkpoint={pcfg.checkpoint or '(default)'!r}, "
             f"policy.device={pcfg.device!r}")
    try:
        policy = load_policy(pcfg.type, pcfg.checkpoint, device=pcfg.device, dtype=pcfg.dtype)
    except Exception as exc:  # noqa: BLE001 - whatever a plugin raises, report it with our parameters
        raise RuntimeError(f"cannot load the policy ({where}): {type(exc).__name__}: {exc}") from exc
    policy.configure_sampling(num_steps=pcfg.num_steps, seed=pcfg.seed)
    configure_adapters = getattr(policy, "configure_adapters", None)  # policy.action_map / state_map
    if configure_adapters is not None:
        try:
            configure_adapters(pcfg.action_map, pcfg.state_map)
        except Exception:
            policy.close()
            raise
    try:
        policy.warmup()
        policy.self_check()
    except Exception as exc:  # noqa: BLE001 - same: a policy that cannot run a first sampling is not loaded
        try:
            policy.close()
        except Exception:  # noqa: BLE001 - the refusal below is the error worth reporting
            pass
        raise RuntimeError(f"cannot warm up the policy ({where}): {type(exc).__name__}: {exc}") from exc
    return policy
