"""Exact fits with a vector-valued term in the densely eliminated part of the blocked
Cholesky (a term after the first with a random slope), against lme4
(tests/reference/R/dense_vector_cases.R). Its Schur complement holds only a valid lower
triangle; Lambda' G Lambda read both until 2026-12-01 and fitted these models wrongly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from references import reference

import mixedtf as mtf

CASES = reference("dense_vector")


@pytest.mark.parametrize(
    "case", ["scalar_then_vector_REML", "scalar_then_vector_ML", "vector_then_vector_REML"]
)
def test_dense_vector_terms_match_lme4(case):
    ref = CASES[case]
    data = mtf.datasets.load("InstEval").iloc[: ref["rows"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two of the fits are singular, as in lme4
        res = mtf.lmer(ref["formula"], data, REML=ref["REML"])
    # the optimum: at least lme4's criterion, and not above it by more than rounding
    assert res.loglik == pytest.approx(ref["logLik"], abs=2e-3)
    assert res.loglik >= ref["logLik"] - 1e-6
    se = np.array(ref["std_error"])
    assert np.all(np.abs(res.fixef().to_numpy() - list(ref["fixef"].values())) < 0.01 * se)
    if not ref["singular"]:  # a singular fit's SDs and correlations sit on a flat ridge
        np.testing.assert_allclose(res.varcorr().sdcor, ref["sdcor"], rtol=2e-3)
        np.testing.assert_allclose(res.bse(), se, rtol=2e-3)


SWEEP = reference("structure_sweep")


@pytest.fixture(scope="module")
def instevals():
    d = mtf.datasets.load("InstEval").iloc[:4000]
    # R: as.numeric(studage), as.numeric(lectage): the factor codes, 1-based
    return d.assign(x=d.studage.cat.codes + 1.0, lec=d.lectage.cat.codes + 1.0)


@pytest.mark.parametrize("case", [k for k in SWEEP if k != "software"])
def test_model_structures_match_lme4(instevals, case):
    # lmer(formula, InstEval[1:4000, ], REML): logLik, fixef, theta's names. b_ML ended on
    # a local optimum at an edge before restart_edge (1.36 units low); c's factor inside
    # || has a column per level, as R's expandDoubleVerts gives it
    ref = SWEEP[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mtf.lmer(ref["formula"], instevals, REML=ref["REML"])
    assert list(res.theta.index) == ref["theta_names"]
    assert res.loglik == pytest.approx(ref["logLik"], abs=1e-3)
    se = np.array(ref["std_error"])
    assert np.all(np.abs(res.fixef().to_numpy() - ref["fixef"]) < 0.02 * se)
