"""The replay's modules import in one direction: the report and the evaluation read the scoring,
the scoring reads the lane, and the second executor process loads neither (it starts per bag)."""

from __future__ import annotations

import json
import subprocess
import sys


def _loaded_after(module: str) -> set[str]:
    code = (f"import sys, json; import {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('vla_ros.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_scoring_loads_neither_the_report_nor_the_evaluation():
    loaded = _loaded_after("vla_ros.replay.scoring")
    assert "vla_ros.replay.lane" in loaded
    assert not loaded & {"vla_ros.replay.report", "vla_ros.replay.evaluate", "vla_ros.replay.plots",
                         "vla_ros.replay.session"}


def test_the_executor_process_loads_only_the_core_and_its_wire():
    loaded = _loaded_after("vla_ros.replay.executor_process")
    replay = {m for m in loaded if m.startswith("vla_ros.replay.")}
    assert replay == {"vla_ros.replay.executor_process", "vla_ros.replay.wire", "vla_ros.replay.command_log"}
    assert not any(m.startswith(("vla_ros.policy", "vla_ros.ros")) for m in loaded)
