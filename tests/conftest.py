"""Shared fixtures: the lme4 reference cases and the bundled data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mixedtf as mtf

REFERENCE = Path(__file__).parent / "reference"
SHARED_ORACLE = Path(__file__).resolve().parents[2] / "shared" / "oracle"
CASES = sorted(p.stem for p in REFERENCE.glob("*.json") if p.stem != "INDEX")
GAUSSIAN_CASES = [c for c in CASES if not c.startswith("cbpp")]


def reference(case: str) -> dict:
    """The lme4 reference fit of ``case`` (one of ``CASES``)."""
    return json.loads((REFERENCE / f"{case}.json").read_text())


@pytest.fixture(scope="session")
def sleepstudy():
    return mtf.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def sleep_mcem(sleepstudy):
    """MCEM fit of sleepstudy's ``(Days|Subject)`` with a fixed seed."""
    return mtf.MixedLM.from_formula("Reaction ~ Days + (Days|Subject)", sleepstudy).fit(
        seed=20261125, progress=False
    )


@pytest.fixture(scope="session")
def sleep_reml(sleepstudy):
    """REML fit of sleepstudy's ``(Days|Subject)`` (lme4's ``lmer`` default)."""
    return mtf.MixedLM.from_formula("Reaction ~ Days + (Days|Subject)", sleepstudy).fit(
        method="reml"
    )
