"""GLMM log-likelihoods (Laplace, adaptive Gauss-Hermite) and direct fits against lme4's glmer
on cbpp, and against numerical integration on small simulated Poisson data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from references import reference
from scipy import integrate, stats

import mixedtf as mtf
from mixedtf import FamilyError
from mixedtf.fit.laplace import LaplaceModel

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return mtf.datasets.load("cbpp")


def lme4_params(case):
    ref = reference(case)
    beta = np.array([fe["estimate"] for fe in ref["fixed_effects"]])
    return ref, beta, np.array(list(ref["theta"].values()))


def test_laplace_loglik_at_lme4s_estimates(cbpp):
    # logLik(glmer(CBPP, cbpp, binomial, nAGQ = 1)) at its own estimates
    ref, beta, theta = lme4_params("cbpp_binomial_laplace")
    model = LaplaceModel(mtf.build_design(CBPP, cbpp, "binomial"))
    assert -0.5 * model.deviance(beta, theta) == pytest.approx(ref["logLik"], abs=1e-3)
    # vcov(fit, use.hessian = FALSE): from the RX factor at the modes
    se = np.sqrt(np.diag(model.fixed_vcov(beta, theta)))
    np.testing.assert_allclose(se, list(ref["fixed_effects_std_error_from_RX"].values()), rtol=1e-4)


def test_agq_equals_exact_quadrature_at_lme4s_agq_estimates(cbpp):
    # the oracle's numerical integral of each herd's likelihood at glmer(nAGQ = 25)'s estimates;
    # lme4 itself reports this loglik relative to the saturated model (issues #161, #567)
    ref, beta, theta = lme4_params("cbpp_binomial_agq25")
    model = LaplaceModel(mtf.build_design(CBPP, cbpp, "binomial"))
    exact = ref["extra"]["exact_marginal_logLik_at_fitted_params"]
    assert -0.5 * model.deviance(beta, theta, n_agq=25) == pytest.approx(exact, abs=1e-6)
    assert ref["extra"]["lme4_logLik_plus_saturated_logLik"] == pytest.approx(exact, abs=1e-8)


@pytest.mark.parametrize(
    ("case", "n_agq"), [("cbpp_binomial_laplace", 1), ("cbpp_binomial_agq25", 25)]
)
def test_glmer_fit_matches_lme4(cbpp, case, n_agq):
    ref, beta, theta = lme4_params(case)
    res = mtf.glmer(CBPP, cbpp, family="binomial", nAGQ=n_agq)
    se = np.array([fe["std_error"] for fe in ref["fixed_effects"]])
    assert np.all(np.abs(res.fixef().to_numpy() - beta) < 0.01 * se)
    assert res.theta.to_numpy() == pytest.approx(theta, rel=2e-3)
    assert res.varcorr().sdcor.tolist() == pytest.approx([theta[0]], rel=2e-3)
    assert list(res.varcorr().grp) == ["herd"]  # no residual row for a binomial model
    assert res.df_model == ref["logLik_df"]
    if n_agq == 1:  # lme4's nAGQ = 1 logLik and AIC are on the absolute scale
        assert res.loglik == pytest.approx(ref["logLik"], abs=1e-3)
        assert res.aic == pytest.approx(ref["AIC"], abs=2e-3)
    else:
        assert res.loglik == pytest.approx(
            ref["extra"]["exact_marginal_logLik_at_fitted_params"], abs=1e-4
        )
    assert "binomial / logit" in res.summary().as_text()


def simulated_poisson(seed=7, groups=30, per_group=12):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=g.size)
    b = rng.normal(0.0, 0.5, groups)
    y = rng.poisson(np.exp(0.3 + 0.4 * x + b[g]))
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def test_poisson_agq_equals_numerical_integration():
    data = simulated_poisson()
    design = mtf.build_design("y ~ x + (1 | g)", data, "poisson")
    model = LaplaceModel(design)
    beta, sd = np.array([0.25, 0.45]), 0.6
    total = 0.0
    for level in range(30):
        rows = data[data.g == level]
        eta0 = beta[0] + beta[1] * rows.x.to_numpy()

        y = rows.y.to_numpy()

        def f(b, eta0=eta0, y=y):
            return np.exp(stats.poisson.logpmf(y, np.exp(eta0 + b)).sum()) * stats.norm.pdf(
                b, 0, sd
            )

        total += np.log(integrate.quad(f, -8 * sd, 8 * sd, epsabs=1e-14, epsrel=1e-12)[0])
    assert -0.5 * model.deviance(beta, np.array([sd]), n_agq=30) == pytest.approx(total, abs=1e-8)
    laplace = -0.5 * model.deviance(beta, np.array([sd]))
    assert abs(laplace - total) < 0.2  # the Laplace error is small, but not zero
    assert laplace != pytest.approx(total, abs=1e-8)


def test_poisson_fit_recovers_simulated_truth():
    data = simulated_poisson(seed=11, groups=80, per_group=15)
    res = mtf.glmer("y ~ x + (1 | g)", data, family="poisson")
    z = (res.fixef().to_numpy() - np.array([0.3, 0.4])) / res.bse().to_numpy()
    assert np.all(np.abs(z) < 3)
    assert res.theta.iloc[0] == pytest.approx(0.5, abs=0.15)
    assert res.link == "log"


def test_family_errors():
    df = pd.DataFrame({"y": [1, 2, -1, 3] * 5, "g": list("abcde") * 4})
    with pytest.raises(FamilyError, match="non-negative whole counts for family='poisson'"):
        mtf.MixedLM.from_formula("y ~ 1 + (1|g)", df, family="poisson")
    df["y"] = [0, 1, 2, 0] * 5
    with pytest.raises(FamilyError, match=r"0/1 \(or a proportion\).*cbind"):
        mtf.MixedLM.from_formula("y ~ 1 + (1|g)", df, family="binomial")
    df["f"] = df["y"] + 0.5
    df["s"] = 3
    with pytest.raises(FamilyError, match=r"cbind.*whole counts"):
        mtf.MixedLM.from_formula("cbind(f, s) ~ 1 + (1|g)", df, family="binomial")
    df["o"] = pd.Categorical(["a"] * 20, ordered=True)
    with pytest.raises(FamilyError, match="at least two categories"):
        mtf.MixedLM.from_formula("o ~ 1 + (1|g)", df, family="ordinal")


def test_laplace_refuses_what_it_cannot_do(cbpp, sleepstudy):
    with pytest.raises(ValueError, match="use method='ml' or 'reml'"):
        mtf.MixedLM.from_formula("Reaction ~ Days + (1|Subject)", sleepstudy).fit(method="laplace")
    cbpp = cbpp.assign(obs=pd.Categorical(range(len(cbpp))))
    with pytest.raises(ValueError, match="single scalar random term"):
        mtf.glmer(
            "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", cbpp, nAGQ=5
        )
