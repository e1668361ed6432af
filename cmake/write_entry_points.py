"""Write setup.cfg's [options.entry_points] as an egg-info entry_points.txt (used by CMakeLists)."""

import configparser
import sys


def main(setup_cfg: str, out: str) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg, encoding="utf-8")
    lines = []
    for group, body in cfg["options.entry_points"].items():
        lines.append(f"[{group}]")
        lines.extend(line.strip() for line in body.strip().splitlines() if line.strip())
        lines.append("")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
