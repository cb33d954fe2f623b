"""lme4's update() and refit() (tests/reference/R/update_cases.R)."""

from __future__ import annotations

import numpy as np
import pytest
from references import reference

import mixedtf as mtf

CASES = reference("update")
SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def test_update_with_dots_drops_a_term(sleepstudy):
    m1 = mtf.lmer(SLEEP, sleepstudy)
    m0 = mtf.update(m1, ". ~ . - Days")  # update(m1, . ~ . - Days)
    ref = CASES["update_drop_days"]
    np.testing.assert_allclose(m0.fixef(), list(ref["fixef"].values()), rtol=1e-4)
    assert m0.loglik == pytest.approx(ref["logLik"], abs=1e-3) and m0.method == "reml"


def test_update_keeps_the_method_and_options_and_takes_new_data(sleepstudy):
    m1 = mtf.lmer(SLEEP, sleepstudy, REML=False, max_evaluations=500)
    assert m1.fit_info.options == {"max_evaluations": 500}
    half = mtf.update(m1, data=sleepstudy.iloc[:90])
    direct = mtf.lmer(SLEEP, sleepstudy.iloc[:90], REML=False)
    assert half.method == "ml" and half.nobs == 90
    np.testing.assert_allclose(half.fixef(), direct.fixef(), rtol=1e-6)
    with pytest.raises(mtf.DesignError, match="keeps only the columns it used; pass data="):
        mtf.update(m1, ". ~ . + I(Days^2) + other")


def test_refit_a_simulated_response_is_the_fit_on_that_response(sleepstudy):
    # lmer(formula, transform(sleepstudy, Reaction = simulate(m1))); lme4's own refit(m1, y)
    # of this REML fit stops 4.19 below that optimum (its logLik -874.13 against -869.95)
    ref = CASES["refit_sleep"]
    res = mtf.refit(mtf.lmer(SLEEP, sleepstudy), ref["newresp"])
    np.testing.assert_allclose(res.fixef(), list(ref["fresh_fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(res.theta, ref["fresh_theta"], rtol=2e-3, atol=1e-4)
    assert res.loglik == pytest.approx(ref["fresh_logLik"], abs=1e-3)
    assert res.loglik > ref["logLik"] + 4


def test_refit_a_binomial_glmm_matches_lme4():
    ref = CASES["refit_cbpp"]  # refit(g1, simulate(g1)): an n x 2 matrix of counts
    g1 = mtf.glmer(CBPP, mtf.datasets.load("cbpp"), family="binomial")
    res = mtf.refit(g1, np.array(ref["newresp"], dtype=float))
    np.testing.assert_allclose(res.fixef(), list(ref["fixef"].values()), rtol=1e-3, atol=1e-4)
    assert res.loglik == pytest.approx(ref["logLik"], abs=1e-3)


def test_refit_checks_the_new_response(sleepstudy):
    m1 = mtf.lmer(SLEEP, sleepstudy)
    with pytest.raises(mtf.DesignError, match="shape of the fitted response"):
        mtf.refit(m1, np.ones(10))
    g1 = mtf.glmer(CBPP, mtf.datasets.load("cbpp"), family="binomial")
    with pytest.raises(mtf.FamilyError, match="non-negative whole counts"):
        mtf.refit(g1, -np.ones((56, 2)))
