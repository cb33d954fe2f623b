"""The examples run end to end (InstEval in quick mode) and pass their own lme4 checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.slow  # each starts a Python process with TensorFlow: 8-30 s


def run(script: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, f"{script} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_insteval_walkthrough_quick(tmp_path):
    text = run("insteval.py", "--quick", "--out", "plots", cwd=tmp_path)
    for expected in (
        "Mixed Linear Model Results",
        "check vs exact ML",
        "held-out RMSE",
        "lme4 1.1-31",
    ):
        assert expected in text
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == [
        "caterpillar_instructors.png",
        "diagnostics.png",
        "heldout_residuals.png",
        "objective.png",
        "traces_departments.png",
    ]
    assert all((tmp_path / "plots" / p).stat().st_size > 5000 for p in pngs)
    rmse = dict(re.findall(r"^  (\S.*?\S)\s{2,}(\d+\.\d+)$", text, flags=re.M))
    # the random effects predict held-out ratings better than the fixed effects alone
    assert float(rmse["MCEM, with random effects"]) < float(rmse["fixed effects only"])


def test_sleepstudy_example(tmp_path):
    text = run("sleepstudy.py", cwd=tmp_path)
    assert "against lme4 1.1-31" in text and "Pr(>Chisq)" in text


def test_insteval_ordinal_quick(tmp_path):
    text = run("insteval_ordinal.py", "--quick", cwd=tmp_path)
    assert "Cutpoints (threshold coefficients):" in text and "4|5" in text
    found = dict(re.findall(r"^  (\S.*?\S)\s{2,}(-?\d+\.\d+)", text, flags=re.M))
    ordinal = float(found["ordinal (cumulative logit), MCEM"])
    gaussian = float(found["Gaussian (discretised), exact ML"])
    assert ordinal < 0 and gaussian < 0  # sums of log probabilities
    assert float(found["difference (ordinal - Gaussian)"]) == pytest.approx(
        ordinal - gaussian, abs=0.2
    )
