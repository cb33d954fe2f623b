"""Gamma and inverse Gaussian GLMMs with lme4's conventions (PIRLS without the dispersion,
the dispersion deviance / n plugged into the Laplace deviance, sigma from the Pearson
residuals and |u|^2), against glmer (tests/reference/R/gamma_cases.R)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from references import REFERENCE, reference

import mixedtf as mtf

CASES = reference("gamma")
DATA = pd.read_csv(Path(REFERENCE) / "local" / "gamma_data.csv", dtype={"g": str})
# lme4 converges PIRLS to 1e-7 of the penalised deviance; the plug-in dispersion reads the
# unpenalised part, which moves by ~5e-4 within that tolerance on the inverse Gaussian
# case (its logLik 2.3e-3 above the value at its own estimates with a converged mode)
TOLERANCE = {"gamma_log": (0.01, 1e-3), "gamma_inverse": (0.01, 1e-3), "ig_log": (0.03, 3e-3)}


@pytest.mark.parametrize("case", list(TOLERANCE))
def test_glmer_gamma_and_inverse_gaussian_match_lme4(case):
    # glmer(formula, d, family = Gamma(link) / inverse.gaussian(link)): fixef,
    # vcov(use.hessian = FALSE), theta, sigma(m), VarCorr, logLik
    ref = CASES[case]
    se_tol, ll_tol = TOLERANCE[case]
    family = {"Gamma": "gamma", "inverse.gaussian": "inverse_gaussian"}[ref["family"]]
    res = mtf.glmer(ref["formula"], DATA, family=family, link=ref["link"])
    se = np.array(ref["std_error"])
    assert np.all(np.abs(res.fixef().to_numpy() - list(ref["fixef"].values())) <= se_tol * se)
    np.testing.assert_allclose(res.bse(), se, rtol=2e-3)
    assert res.theta.iloc[0] == pytest.approx(ref["theta"], rel=2e-3)
    assert res.sigma == pytest.approx(ref["sigma"], rel=2e-3)
    np.testing.assert_allclose(res.varcorr().sdcor, ref["sdcor"], rtol=2e-3)
    assert res.loglik == pytest.approx(ref["logLik"], abs=ll_tol)
    assert res.df_model == ref["df"]
    np.testing.assert_allclose(res.fitted(), ref["fitted"], rtol=2e-3)
    assert "Residual" in str(res.summary())


def test_what_lme4_cannot_fit_is_fitted_in_range_or_refused():
    # glmer(y_gamma ~ x + (1 | g), d, Gamma("identity")): lme4 "PIRLS loop resulted in NaN"
    assert "PIRLS" in CASES["gamma_identity"]["error"]
    try:
        res = mtf.glmer("y_gamma ~ x + (1 | g)", DATA, family="gamma", link="identity")
    except mtf.MixedTFError:
        return
    assert np.all(res.fitted() > 0) and np.isfinite(res.loglik)


def test_positive_response_and_quadrature_are_checked():
    bad = DATA.assign(y_gamma=DATA.y_gamma - 5.0)
    with pytest.raises(mtf.FamilyError, match="must be positive for family='gamma'"):
        mtf.glmer("y_gamma ~ x + (1 | g)", bad, family="gamma")
    model = mtf.MixedLM.from_formula("y_gamma ~ x + (1 | g)", DATA, family="gamma")
    with pytest.raises(mtf.OptionError, match="families without a dispersion"):
        model.fit(method="laplace", nAGQ=5)


def _marginal_ml(family: str) -> np.ndarray:
    """The model's own maximum likelihood (log link, one random intercept), each group's
    integral by the trapezoid rule on 2001 points of the standard normal over [-8, 8]
    (Gauss-Hermite with 40-200 fixed nodes was still moving for the inverse Gaussian):
    beta0, beta1, SD(g), and the shape (Gamma) or lambda (inverse Gaussian), 1 / dispersion."""
    from scipy.optimize import minimize
    from scipy.special import gammaln

    column = "y_gamma" if family == "gamma" else "y_ig"
    y, x = DATA[column].to_numpy(), DATA.x.to_numpy()
    codes, levels = pd.factorize(DATA.g)
    grid = np.linspace(-8.0, 8.0, 2001)
    log_phi = -0.5 * grid**2 - 0.5 * np.log(2 * np.pi) + np.log(grid[1] - grid[0])

    def negll(p):
        sd, k = np.exp(p[2]), np.exp(p[3])
        total = 0.0
        for j in range(len(levels)):
            m = codes == j
            mu = np.exp(p[0] + p[1] * x[m][:, None] + sd * grid[None, :])
            yj = y[m][:, None]
            if family == "gamma":
                ll = k * np.log(k / mu) + (k - 1) * np.log(yj) - k * yj / mu - gammaln(k)
            else:
                ll = 0.5 * np.log(k / (2 * np.pi * yj**3)) - k * (yj - mu) ** 2 / (2 * mu**2 * yj)
            ll = ll.sum(0) + log_phi
            top = ll.max()
            total += top + np.log(np.exp(ll - top).sum())
        return -total

    res = minimize(negll, [1.0, 0.3, np.log(0.45), np.log(6.0)], method="BFGS")
    return np.r_[res.x[:2], np.exp(res.x[2:])]


@pytest.mark.parametrize(
    ("family", "case"), [("gamma", "gamma_log"), ("inverse_gaussian", "ig_log")]
)
def test_mcem_finds_the_models_own_maximum_likelihood(family, case):
    # lme4's Gamma GLMM is an approximation (SD(g) 0.348 on the Gamma data); MCEM maximises
    # the model's likelihood, whose optimum quadrature finds (Gamma: SD(g) 0.480, shape 4.28
    # where the simulation's truth is 0.4 and 4; inverse Gaussian: SD(g) 0.519, lambda 9.3)
    b0, b1, sd, k = _marginal_ml(family)
    column = "y_gamma" if family == "gamma" else "y_ig"
    model = mtf.MixedLM.from_formula(f"{column} ~ x + (1 | g)", DATA, family=family, link="log")
    res = model.fit(seed=1, progress=False)
    se = np.array(CASES[case]["std_error"])
    assert np.all(np.abs(res.fixef().to_numpy() - [b0, b1]) < 0.25 * se)
    assert res.varcorr().sdcor.iloc[0] == pytest.approx(sd, rel=0.05)
    assert res.sigma == pytest.approx(1 / np.sqrt(k), rel=0.05)


def test_gamma_profile_is_refused_as_lme4_does():
    # lme4's profile.merMod: "can't (yet) profile GLMMs with non-fixed scale parameters"
    res = mtf.glmer("y_gamma ~ x + (1 | g)", DATA, family="gamma", link="log")
    with pytest.raises(mtf.ModelComparisonError, match="lme4 does not profile GLMMs with a scale"):
        res.confint(method="profile")
    assert list(res.confint(method="wald").index)[-1] == "x"
