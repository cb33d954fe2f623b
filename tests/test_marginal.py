"""Exact ML/REML fits against lme4 1.1-31 (tests/reference), and against dense numpy on tiny data.

Every asserted lme4 value names the R expression behind it (``m`` is the fitted merMod).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from references import GAUSSIAN_CASES, REFERENCE, reference
from scipy.stats import multivariate_normal

import mixedtf as mtf
from mixedtf import ConvergenceWarning, ModelTooLargeError, SingularFitWarning
from mixedtf.design import build_design
from mixedtf.fit import ExactOptions, fit_exact, marginal_loglik


@pytest.fixture(scope="session")
def fits():
    """Each Gaussian reference model fitted once per test session."""
    out = {}
    for case in GAUSSIAN_CASES:
        ref = reference(case)
        data = mtf.datasets.load(ref["dataset"])
        out[case] = (
            mtf.MixedLM.from_formula(ref["formula"], data).fit(method=ref["method"].lower()),
            ref,
        )
    return out


@pytest.mark.parametrize("case", GAUSSIAN_CASES)
def test_fixed_effects_and_standard_errors(fits, case):
    res, ref = fits[case]
    names = [f["term"] for f in ref["fixed_effects"]]
    assert list(res.fixef().index) == names
    np.testing.assert_allclose(
        res.fixef(), [f["estimate"] for f in ref["fixed_effects"]], rtol=1e-4
    )  # fixef(m)
    np.testing.assert_allclose(
        res.bse(), [f["std_error"] for f in ref["fixed_effects"]], rtol=1e-3
    )  # sqrt(diag(vcov(m)))
    np.testing.assert_allclose(
        res.vcov().to_numpy(), ref["fixed_effects_vcov"]["values"], rtol=2e-3
    )  # vcov(m)


@pytest.mark.parametrize("case", GAUSSIAN_CASES)
def test_variance_components(fits, case):
    res, ref = fits[case]
    vc = res.varcorr()
    expected = pd.DataFrame(ref["VarCorr_table"])  # as.data.frame(VarCorr(m))
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert list(vc.grp) == list(expected.grp)
    assert list(vc.var1.fillna("")) == list(expected.var1)
    assert list(vc.var2.fillna("")) == list(expected.var2)
    np.testing.assert_allclose(vc.vcov, expected.variance_or_covariance, rtol=1e-3)
    np.testing.assert_allclose(vc.sdcor, expected.stddev_or_correlation, rtol=1e-3)
    assert res.sigma == pytest.approx(ref["residual_sd"], rel=1e-4)  # sigma(m)


@pytest.mark.parametrize("case", GAUSSIAN_CASES)
def test_likelihood_and_information_criteria(fits, case):
    res, ref = fits[case]
    # logLik(m): within 1e-3, or higher than lme4's
    assert res.loglik > ref["logLik"] - 1e-3
    assert res.loglik < ref["logLik"] + 1e-3
    assert res.aic == pytest.approx(ref["AIC"], abs=2e-3)  # AIC(m)
    assert res.bic == pytest.approx(ref["BIC"], abs=2e-3)  # BIC(m)
    assert res.deviance == pytest.approx(ref["deviance"], abs=2e-3)  # deviance(m, REML = FALSE)
    if ref["method"] == "REML":
        assert res.reml_criterion == pytest.approx(ref["REML_criterion"], abs=2e-3)  # REMLcrit(m)
    assert res.df_model == ref["logLik_df"]  # attr(logLik(m), "df")
    assert res.nobs == ref["nobs"] and res.ngroups == ref["ngroups"]  # nobs(m), ngrps(m)
    np.testing.assert_allclose(
        res.theta, list(ref["theta"].values()), rtol=2e-3, atol=1e-5
    )  # getME(m, "theta")
    assert list(res.theta.index) == list(ref["theta"])


@pytest.mark.parametrize("case", GAUSSIAN_CASES)
def test_conditional_modes_and_sds(fits, case):
    res, _ = fits[case]
    # as.data.frame(ranef(m, condVar = TRUE)): condval and condsd of every level
    expected = pd.read_csv(REFERENCE / "ranef" / f"{case}.ranef.csv", dtype={"level": str})
    got = res.ranef(condvar=True)
    merged = expected.merge(
        got,
        left_on=["grouping_factor", "term", "level"],
        right_on=["grpvar", "term", "grp"],
        validate="1:1",
    )
    assert len(merged) == len(expected) == len(got)
    for (_, _), part in merged.groupby(["grouping_factor", "term"]):
        scale = part.conditional_mode.abs().max()
        np.testing.assert_allclose(
            part.condval, part.conditional_mode, rtol=1e-3, atol=1e-3 * scale
        )
        np.testing.assert_allclose(part.condsd, part.conditional_sd, rtol=1e-3)


def test_ranef_dict_matches_lme4_shape(fits):
    res, ref = fits["sleepstudy_uncorrelated_REML"]
    re = res.ranef()  # ranef(m)$Subject has both terms although (Days || Subject) made two blocks
    assert list(re) == ["Subject"]
    assert list(re["Subject"].columns) == ["(Intercept)", "Days"]
    first5 = ref["ranef_first5"]["Subject"]
    assert list(re["Subject"].index[:5]) == first5["levels"]
    np.testing.assert_allclose(
        re["Subject"]["Days"].iloc[:5], first5["conditional_mode"]["Days"], rtol=1e-3
    )


@pytest.mark.parametrize(
    "case", ["sleepstudy_slope_ML", "insteval_service_ML", "sleepstudy_slope_REML"]
)
def test_marginal_loglik_at_lme4_estimates_equals_lme4(case):
    ref = reference(case)
    model = mtf.MixedLM.from_formula(ref["formula"], mtf.datasets.load(ref["dataset"]))
    params = {
        "beta": [f["estimate"] for f in ref["fixed_effects"]],  # fixef(m)
        "sigma": ref["residual_sd"],  # sigma(m)
        "covariances": {
            e["name"]: e["covariance"]["values"] for e in ref["random_effects"]
        },  # VarCorr(m)
    }
    reml = ref["method"] == "REML"
    assert marginal_loglik(model, params, reml=reml) == pytest.approx(
        ref["logLik"], abs=1e-6
    )  # logLik(m)


def _tiny(seed: int = 1, n: int = 40):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 5, n)
    h = rng.integers(0, 3, n)
    x = rng.normal(size=n)
    y = (
        1.0
        + 0.5 * x
        + rng.normal(size=5)[g]
        + 0.7 * rng.normal(size=3)[h]
        + x * rng.normal(size=5)[g] * 0.3
    )
    y = y + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def _dense_parts(design, covs):
    n = design.nobs
    blocks, Sigma_blocks = [], []
    for g, cov in zip(design.groupings, covs, strict=True):
        Z = np.zeros((n, g.n_levels * g.k))
        for c in range(g.k):
            Z[np.arange(n), g.codes * g.k + c] = g.z[:, c]
        blocks.append(Z)
        Sigma_blocks.append(np.kron(np.eye(g.n_levels), cov))
    Z = np.hstack(blocks)
    from scipy.linalg import block_diag

    return Z, block_diag(*Sigma_blocks)


@pytest.mark.parametrize(
    "formula", ["y ~ x + (x | g) + (1 | h)", "y ~ x + (1 | g) + (1 | h)", "y ~ x + (x || g)"]
)
def test_loglik_equals_dense_multivariate_normal(formula):
    design = build_design(formula, _tiny())
    rng = np.random.default_rng(7)
    covs = []
    for g in design.groupings:
        A = rng.normal(size=(g.k, g.k))
        covs.append(A @ A.T + 0.1 * np.eye(g.k))
    beta, sigma = np.array([0.8, 0.3]), 0.6
    Z, Sigma = _dense_parts(design, covs)
    V = Z @ Sigma @ Z.T + sigma**2 * np.eye(design.nobs)
    dense = multivariate_normal(design.X @ beta, V).logpdf(design.y)
    params = {"beta": beta, "sigma": sigma, "covariances": covs}
    assert marginal_loglik(design, params) == pytest.approx(dense, abs=1e-9)
    # REML: -2 l_R = (n-p) log 2 pi + log|V| + log|X'V^-1 X| + (y - X b)' V^-1 (y - X b), b = GLS
    X, y = design.X, design.y
    Vinv = np.linalg.inv(V)
    XtVX = X.T @ Vinv @ X
    b = np.linalg.solve(XtVX, X.T @ Vinv @ y)
    e = y - X @ b
    n, p = X.shape
    reml = -0.5 * (
        (n - p) * np.log(2 * np.pi)
        + np.linalg.slogdet(V)[1]
        + np.linalg.slogdet(XtVX)[1]
        + e @ Vinv @ e
    )
    assert marginal_loglik(design, params, reml=True) == pytest.approx(reml, abs=1e-9)


def test_ml_fit_maximises_the_dense_likelihood():
    design = build_design("y ~ x + (1 | g) + (1 | h)", _tiny(seed=3, n=60))
    res = fit_exact(design, reml=False)
    covs = [c for c in res.covariances]
    Z, Sigma = _dense_parts(design, covs)
    V = Z @ Sigma @ Z.T + res.sigma**2 * np.eye(design.nobs)
    dense = multivariate_normal(design.X @ res.fixef().to_numpy(), V).logpdf(design.y)
    assert res.loglik == pytest.approx(dense, abs=1e-8)
    # a small step in any variance component lowers the dense likelihood
    for j in range(2):
        bumped = [c.copy() for c in covs]
        bumped[j] = bumped[j] * 1.05
        params = {"beta": res.fixef().to_numpy(), "sigma": res.sigma, "covariances": bumped}
        assert marginal_loglik(design, params) < res.loglik


def test_singular_fit_warns():
    # group means of y are identical, so the between-group variance estimate is zero
    y = np.tile([1.0, 2.0, 4.0, 3.0], 6)
    g = np.repeat(list("abcdef"), 4)
    with pytest.warns(SingularFitWarning, match="boundary"):
        res = mtf.MixedLM.from_formula("y ~ 1 + (1|g)", {"y": y, "g": g}).fit(method="reml")
    assert res.varcorr().vcov.iloc[0] == pytest.approx(0.0, abs=1e-8)


def test_convergence_warning_when_budget_runs_out(sleepstudy):
    design = build_design("Reaction ~ Days + (Days | Subject)", sleepstudy)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = fit_exact(design, reml=True, options=ExactOptions(max_evaluations=8))
    assert not res.fit_info.converged


def test_fit_info(sleepstudy):
    res = mtf.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    info = res.fit_info
    assert info.method == "reml" and info.converged and info.device == "CPU"
    assert 0 < info.n_evaluations < 200 and info.wall_time > 0
    assert "COBYQA" in info.optimizer


def test_too_large_model_points_to_mcem():
    design = build_design("y ~ service + (1|s) + (1|d) + (1|dept)", mtf.datasets.load("InstEval"))
    with pytest.raises(ModelTooLargeError, match="method='mcem'"):
        fit_exact(design, reml=False, options=ExactOptions(max_dense_bytes=2**20))


def test_exact_methods_refuse_non_gaussian_and_no_random_terms(sleepstudy):
    cbpp = mtf.datasets.load("cbpp")
    model = mtf.MixedLM.from_formula(
        "cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp, "binomial"
    )
    with pytest.raises(ValueError, match="exact Gaussian likelihood"):
        model.fit(method="ml")
    with pytest.raises(ValueError, match="no random-effects term"):
        mtf.MixedLM.from_formula("Reaction ~ Days", sleepstudy).fit(method="ml")
    with pytest.raises(ValueError, match="method must be one of"):
        mtf.MixedLM.from_formula("Reaction ~ Days + (1|Subject)", sleepstudy).fit(method="bogus")


def test_same_fit_from_model_data_or_fit_data(sleepstudy):
    a = mtf.MixedLM.from_formula("Reaction ~ Days + (1|Subject)", sleepstudy).fit(method="ml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = mtf.MixedLM.from_formula("Reaction ~ Days + (1|Subject)").fit(sleepstudy, method="ml")
    assert a.loglik == b.loglik


def _three_factors(seed: int = 11, n: int = 1500):
    rng = np.random.default_rng(seed)
    g1, g2, g3 = rng.integers(0, 150, n), rng.integers(0, 40, n), rng.integers(0, 5, n)
    x = rng.normal(size=n)
    y = (
        2.0
        + 0.3 * x
        + 0.5 * rng.normal(size=150)[g1]
        + 0.7 * rng.normal(size=40)[g2]
        + 0.2 * x * rng.normal(size=40)[g2]
        + 0.4 * rng.normal(size=5)[g3]
        + 0.3 * x * rng.normal(size=5)[g3]
        + rng.normal(size=n)
    )
    return pd.DataFrame(
        {"y": y, "x": x, "g1": g1.astype(str), "g2": g2.astype(str), "g3": g3.astype(str)}
    )


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + (1|g1) + (1|g2) + (1|g3)",  # scalar lead and tail (InstEval's shape)
        "y ~ x + (1|g1) + (x|g2) + (1|g3)",  # vector lead
        "y ~ x + (1|g1) + (1|g2) + (x|g3)",  # vector tail: inner COBYQA
    ],
)
@pytest.mark.parametrize("reml", [False, True])
def test_profiling_the_tail_finds_the_direct_optimum(formula, reml):
    design = build_design(formula, _three_factors())
    nested = fit_exact(design, reml=reml, options=ExactOptions(profile_tail=True))
    direct = fit_exact(design, reml=reml, options=ExactOptions(profile_tail=False, tolerance=1e-7))
    assert "profiled_tail_terms" in nested.fit_info.extra
    assert "profiled_tail_terms" not in direct.fit_info.extra
    assert nested.loglik == pytest.approx(direct.loglik, abs=1e-5)
    np.testing.assert_allclose(nested.fixef(), direct.fixef(), rtol=1e-4)
    np.testing.assert_allclose(nested.varcorr().vcov, direct.varcorr().vcov, rtol=2e-3, atol=1e-6)
