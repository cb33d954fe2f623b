"""Gaussian prior weights (lmer(weights = w)): exact ML/REML as lme4, MCEM near it, and
the weights' own checks (tests/reference/R/weights_cases.R)."""

from __future__ import annotations

import numpy as np
import pytest
from references import reference

import mixedtf as mtf

CASES = reference("weights")


def _data(ref):
    return mtf.datasets.load(ref["data"]).assign(w=ref["weights"])


@pytest.mark.parametrize(
    "case", ["sleep_weights_REML", "sleep_weights_ML", "penicillin_weights_ML"]
)
def test_weighted_lmer_matches_lme4(case):
    # lmer(formula, d, weights = w, REML): fixef, sqrt(diag(vcov)), VarCorr, sigma, logLik
    ref = CASES[case]
    res = mtf.lmer(ref["formula"], _data(ref), REML=ref["REML"], weights="w")
    np.testing.assert_allclose(res.fixef(), list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(res.bse(), ref["std_error"], rtol=1e-3)
    np.testing.assert_allclose(res.varcorr().sdcor, ref["sdcor"], rtol=1e-3)
    assert res.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    assert res.loglik == pytest.approx(ref["logLik"], abs=1e-3)
    np.testing.assert_allclose(res.fitted(), ref["fitted"], rtol=1e-5)
    np.testing.assert_allclose(res.resid(), ref["resid"], atol=1e-3)


def test_weighted_mcem_agrees_with_lme4():
    # MCEM within 0.25 SE and 5% SDs of lme4's ML fit; its check is the weighted exact fit
    ref = CASES["sleep_weights_ML"]
    res = mtf.lmer(ref["formula"], _data(ref), weights="w", method="mcem", seed=5, progress=False)
    se = np.array(ref["std_error"])
    assert np.all(np.abs(res.fixef().to_numpy() - list(ref["fixef"].values())) < 0.25 * se)
    vc = res.varcorr()
    np.testing.assert_allclose(
        vc.sdcor.iloc[[0, 1, 3]], np.array(ref["sdcor"])[[0, 1, 3]], rtol=0.05
    )
    assert res.check.loglik_exact == pytest.approx(ref["logLik"], abs=1e-3)


def test_weights_that_lme4_cannot_use_are_refused(sleepstudy):
    with pytest.raises(mtf.DesignError, match="3 are 0, which lme4 fits with logLik -Inf"):
        mtf.lmer(
            "Reaction ~ Days + (1 | Subject)", sleepstudy, weights=np.r_[0, 0, 0, np.ones(177)]
        )
    with pytest.raises(mtf.DesignError, match="prior weights must be positive"):
        mtf.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, weights=np.r_[-1.0, np.ones(179)])
    with pytest.raises(mtf.DesignError, match="family='ordinal' does not take them yet"):
        mtf.MixedLM.from_formula(
            "Days ~ 1 + (1 | Subject)", sleepstudy, family="ordinal", weights=np.ones(180)
        )


def test_missing_weights_drop_their_rows(sleepstudy):
    w = np.ones(180)
    w[5] = np.nan
    with pytest.warns(mtf.MissingValuesWarning, match="dropped 1 of 180"):
        res = mtf.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, weights=w)
    assert res.nobs == 179


def test_weighted_fit_survives_save_and_load(tmp_path):
    ref = CASES["sleep_weights_REML"]
    res = mtf.lmer(ref["formula"], _data(ref), weights="w")
    res.save(tmp_path / "w.npz")
    back = mtf.load(tmp_path / "w.npz")
    np.testing.assert_allclose(back.design.prior_weights, ref["weights"])
    assert back.loglik == res.loglik


GLMM_CASES = reference("prior_weights")


@pytest.mark.parametrize(
    ("case", "family"), [("poisson_weights", "poisson"), ("gamma_weights", "gamma")]
)
def test_glmm_prior_weights_match_glmer(case, family):
    # glmer(formula, d, family, weights = w): fixef, vcov(use.hessian = FALSE), theta, logLik
    import pandas as pd
    from references import REFERENCE

    ref = GLMM_CASES[case]
    data = pd.read_csv(REFERENCE / "local" / "prior_weights_data.csv", dtype={"g": str})
    res = mtf.glmer(ref["formula"], data, family=family, link=ref["link"], weights="w")
    se = np.array(ref["std_error"])
    assert np.all(np.abs(res.fixef().to_numpy() - list(ref["fixef"].values())) <= 0.01 * se)
    np.testing.assert_allclose(res.bse(), se, rtol=2e-3)
    assert res.theta.iloc[0] == pytest.approx(ref["theta"], rel=2e-3)
    assert res.sigma == pytest.approx(ref["sigma"], rel=2e-3)
    assert res.loglik == pytest.approx(ref["logLik"], abs=1e-3)
    with pytest.raises(mtf.OptionError, match="prior weights for Gaussian models only"):
        mtf.MixedLM.from_formula(ref["formula"], data, family=family, weights="w").fit()
