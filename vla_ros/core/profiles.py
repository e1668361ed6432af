"""Find shipped config files and robot/policy profiles by name.

``default`` -> ``config/default.yaml``, robot ``franka`` -> ``config/robots/franka.yaml``, policy
profile ``hold`` -> ``config/policies/hold.yaml``; anything that is an existing path is used as is.
The config directory is, in order: ``$VLA_ROS_CONFIG_DIR``, the installed ``share/vla_ros/config``
(ament index: colcon installs, ./install), the source tree's ``config/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from vla_ros.core.config import ConfigError

KINDS = {"config": "", "robot": "robots", "policy": "policies"}


def config_dir() -> Path:
    env = os.environ.get("VLA_ROS_CONFIG_DIR")
    if env:
        return Path(env)
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            share = Path(get_package_share_directory("vla_ros")) / "config"
            if share.is_dir():
                return share
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    return Path(os.path.realpath(__file__)).parents[2] / "config"


def available(kind: str) -> list[str]:
    """Names of the shipped files of `kind` ('config', 'robot', 'policy')."""
    folder = config_dir() / KINDS[kind]
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve(kind: str, name_or_path: str) -> Path:
    """Path of a config/profile given by name or path; a clear error lists the known names."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if candidate.is_file():
            return candidate
        raise ConfigError(f"{kind}: file {name_or_path} does not exist")
    path = config_dir() / KINDS[kind] / f"{name_or_path}.yaml"
    if path.is_file():
        return path
    known = ", ".join(available(kind)) or "none"
    raise ConfigError(f"{kind}: no {kind} profile named {name_or_path!r} in {path.parent} (known: {known})")
