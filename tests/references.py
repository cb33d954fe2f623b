"""The R reference values the tests assert against: one loader for every case.

``tests/reference/*.json`` are copies of the shared lme4 oracle; ``tests/reference/local/``
holds fits made for mixedtf's own tests (``tests/reference/R/local_cases.R``). A case name
is unique across both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REFERENCE = Path(__file__).parent / "reference"
CASES = sorted(p.stem for p in REFERENCE.glob("*.json") if p.stem != "INDEX")
GAUSSIAN_CASES = [c for c in CASES if not c.startswith("cbpp")]


def reference(case: str) -> dict:
    """The R fit of ``case``, from ``tests/reference/`` or ``tests/reference/local/``."""
    for folder in (REFERENCE, REFERENCE / "local"):
        path = folder / f"{case}.json"
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"no reference case {case!r} in {REFERENCE} or its local/ folder")


def shared_oracle() -> Path | None:
    """The shared oracle folder (``shared/oracle``), found as ``$MIXEDTF_SHARED/oracle`` or
    beside this checkout or one of its parents; None when it is not there."""
    if os.environ.get("MIXEDTF_SHARED"):
        return Path(os.environ["MIXEDTF_SHARED"]) / "oracle"
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "oracle"
        if candidate.is_dir():
            return candidate
    return None
