"""Laplace and AGQ for ordinal models against R's ordinal::clmm, a two-term Poisson glmer (BROOD nested in LOCATION), and
binomial weights= trials. Reference values: tests/reference/local/*.json, made by
tests/reference/R/local_cases.R (ordinal 2022.11-16, lme4 1.1-31)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from references import reference

import mixedtf as mtf
from mixedtf import DesignError, FamilyError
from mixedtf.fit.laplace import LaplaceModel

WINE = "rating ~ temp + contact + (1 | judge)"
TICKS = "TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)"


@pytest.mark.parametrize(("case", "n_agq"), [("wine_clmm_laplace", 1), ("wine_clmm_agq10", 10)])
def test_ordinal_fit_matches_clmm(case, n_agq):
    # clmm(rating ~ temp + contact + (1 | judge), data = wine, nAGQ = n_agq)
    ref = reference(case)
    res = mtf.MixedLM.from_formula(WINE, mtf.datasets.load("wine"), family="ordinal").fit(
        method="laplace", n_agq=n_agq
    )
    assert list(res.fixef().index) == ["tempwarm", "contactyes"]  # no intercept, as clmm
    np.testing.assert_allclose(res.fixef(), list(ref["beta"].values()), rtol=1e-4)
    np.testing.assert_allclose(res.cutpoints, list(ref["alpha"].values()), rtol=1e-4, atol=1e-5)
    assert list(res.cutpoint_table().index) == list(ref["alpha"])  # "1|2", ...
    # summary(fit) standard errors: clmm's Hessian over all parameters
    se = ref["std_error"]
    np.testing.assert_allclose(res.bse(), [se["tempwarm"], se["contactyes"]], rtol=2e-3)
    np.testing.assert_allclose(
        res.cutpoint_table().std_error, [se[k] for k in ref["alpha"]], rtol=2e-3
    )
    assert np.sqrt(res.covariances[0][0, 0]) == pytest.approx(ref["judge_sd"], rel=1e-4)
    assert res.loglik == pytest.approx(ref["logLik"], abs=1e-4)  # logLik(fit)
    assert res.df_model == 2 + 4 + 1
    text = str(res.summary())
    assert "Cutpoints (threshold coefficients):" in text and "4|5" in text
    assert "Residual" not in text


def test_ordinal_laplace_at_clmms_estimates():
    ref = reference("wine_clmm_laplace")
    model = LaplaceModel(mtf.build_design(WINE, mtf.datasets.load("wine"), "ordinal"))
    dev = model.deviance(
        np.array(list(ref["beta"].values())),
        np.array([ref["judge_sd"]]),
        cuts=np.array(list(ref["alpha"].values())),
    )
    assert -0.5 * dev == pytest.approx(ref["logLik"], abs=1e-5)


def test_two_term_poisson_laplace_matches_glmer():
    # glmer(TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION), family = poisson, data = grouseticks)
    ref = reference("grouseticks_poisson_laplace")
    ticks = mtf.datasets.load("grouseticks")
    design = mtf.build_design(TICKS, ticks, "poisson")
    beta = np.array(list(ref["fixed_effects"].values()))
    theta = np.array([ref["sd"]["BROOD"], ref["sd"]["LOCATION"]])
    model = LaplaceModel(design)
    # lme4's deviance function with converged modes (tolPwrss = 1e-12) at its estimates; its
    # default tolerance stops the modes early and reports 0.006 less
    assert -0.5 * model.deviance(beta, theta) == pytest.approx(
        ref["logLik_tight_pirls_at_fit"], abs=1e-5
    )
    assert -0.5 * model.deviance(beta, theta) == pytest.approx(ref["logLik"], abs=0.01)
    # vcov(fit, use.hessian = FALSE)
    se = np.sqrt(np.diag(model.fixed_vcov(beta, theta)))
    np.testing.assert_allclose(se, list(ref["std_error"].values()), rtol=1e-3)
    res = mtf.glmer(TICKS, ticks, family="poisson")
    assert np.all(np.abs(res.fixef().to_numpy() - beta) < 0.05 * se)
    assert res.loglik == pytest.approx(ref["logLik_tight_pirls_refit"], abs=1e-4)


def test_weights_are_binomial_trials():
    cbpp = mtf.datasets.load("cbpp").assign(
        prop=lambda d: d.incidence / d["size"], n=lambda d: d["size"]
    )
    cbind = mtf.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    weighted = mtf.glmer("prop ~ period + (1 | herd)", cbpp, weights="n")
    assert weighted.loglik == pytest.approx(cbind.loglik, abs=1e-8)
    np.testing.assert_allclose(weighted.fixef(), cbind.fixef(), atol=1e-6)
    by_array = mtf.MixedLM.from_formula(
        "prop ~ period + (1 | herd)", cbpp, family="binomial", weights=cbpp["size"].to_numpy()
    )
    np.testing.assert_array_equal(by_array.design.y, weighted.design.y)
    with pytest.raises(FamilyError, match="whole"):
        mtf.MixedLM.from_formula(
            "prop ~ period + (1 | herd)", cbpp.assign(n=cbpp["size"] + 0.5), "binomial", "n"
        )
    with pytest.raises(DesignError, match="binomial trials"):
        mtf.MixedLM.from_formula("incidence ~ period + (1 | herd)", cbpp, "negative_binomial", "n")


def test_ordinal_response_coding():
    df = pd.DataFrame({"y": [2, 4, 6, 4] * 5, "x": np.arange(20.0), "g": list("abcde") * 4})
    d = mtf.build_design("y ~ x + (1 | g)", df, "ordinal")
    assert d.fixed_names == ("x",)
    assert d.response_levels == ("2", "4", "6")
    assert sorted(set(d.y)) == [1.0, 2.0, 3.0]
    with pytest.raises(FamilyError, match="whole numbers"):
        mtf.build_design("y ~ x + (1 | g)", df.assign(y=df.y + 0.5 * (df.x > 3)), "ordinal")


@pytest.mark.parametrize(
    "formula",
    [
        TICKS,
        "TICKS ~ YEAR + (YEAR | LOCATION) + (1 | BROOD)",
        "TICKS ~ (YEAR | BROOD) + (1 | LOCATION)",
    ],
)
def test_blocked_pirls_factor_equals_dense(formula):
    from mixedtf.linalg import PIRLSFactor

    design = mtf.build_design(formula, mtf.datasets.load("grouseticks"), "poisson")
    rng = np.random.default_rng(3)
    theta = np.abs(rng.normal(size=sum(g.k * (g.k + 1) // 2 for g in design.groupings))) + 0.2
    model = LaplaceModel(design)
    A = (model.Z @ model.relative_factor(theta)).tocsr()
    w = rng.uniform(0.1, 3.0, design.nobs)
    H = (A.T @ A.multiply(w[:, None])).toarray() + np.eye(A.shape[1])
    g = design.groupings[0]
    f = PIRLSFactor.build(A, w, g.n_levels * g.k, g.k)
    assert f.logdet == pytest.approx(np.linalg.slogdet(H)[1], rel=1e-12)
    rhs = rng.normal(size=(A.shape[1], 3))
    np.testing.assert_allclose(f.solve(rhs), np.linalg.solve(H, rhs), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f.solve(rhs[:, 0]), np.linalg.solve(H, rhs[:, 0]), rtol=1e-9)


GLMM_SWEEP = reference("glmm_structure_sweep")


@pytest.mark.slow
@pytest.mark.parametrize("case", [k for k in GLMM_SWEEP if k != "software"])
def test_glmm_structures_match_lme4(case):
    # glmer(formula, data, family): logLik (ours at least lme4's: it stops a little short),
    # fixef, theta; tests/reference/R/glmm_structure_sweep_cases.R
    ref = GLMM_SWEEP[case]
    data = mtf.datasets.load(ref["data"])
    if ref["data"] == "grouseticks":
        data = data.assign(cHEIGHT=data.HEIGHT - data.HEIGHT.mean())
    else:
        data = data.iloc[:3000]
    res = mtf.glmer(ref["formula"], data, family=ref["family"])
    assert res.loglik >= ref["logLik"] - 1e-4
    assert res.loglik == pytest.approx(ref["logLik"], abs=2e-3)
    np.testing.assert_allclose(res.fixef(), ref["fixef"], atol=2e-3)
    np.testing.assert_allclose(res.theta, ref["theta"], atol=5e-3)
