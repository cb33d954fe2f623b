"""Shared fixtures: fits reused across test modules (each made once per session). The
reference values live in ``references.py``."""

from __future__ import annotations

import pytest

import mixedtf as mtf


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
