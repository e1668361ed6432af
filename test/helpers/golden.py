"""The committed golden fixtures of a reference implementation (test/fixtures/<source>_<kind>/).

Each fixture directory holds ``fixture.json`` (metadata, one entry per case) and one safetensors
file per case; see test/fixtures/README.md. Shared by the LeRobot and openpi parity tests.
"""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class GoldenFixtures:
    """The fixtures of one reference (``GoldenFixtures("lerobot").case("pi0", "two_cameras")``)."""

    def __init__(self, source: str):
        self.source = source

    def dir(self, kind: str) -> Path:
        return FIXTURES / f"{self.source}_{kind}"

    def meta(self, kind: str) -> dict:
        return json.loads((self.dir(kind) / "fixture.json").read_text())

    def case(self, kind: str, case: str) -> tuple[dict, dict]:
        """(the case's metadata, its tensors)."""
        from safetensors.torch import load_file

        c = self.meta(kind)["cases"][case]
        return c, load_file(str(self.dir(kind) / c["file"]))
