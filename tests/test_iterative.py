"""lme4's fixed-effects covariance by conjugate gradients (mixedtf.linalg.iterative), and
the MCEM fit that uses it where the dense factor is large."""

from __future__ import annotations

import numpy as np
import pytest

import mixedtf as mtf
from mixedtf.fit.mcem import gaussian as mcem_gaussian
from mixedtf.linalg.iterative import SparseSystem


@pytest.mark.parametrize(
    ("data", "formula", "weights"),
    [
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)", False),
        ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True),
        ("Pastes", "strength ~ 1 + (1 | batch) + (1 | cask:batch)", False),
    ],
)
def test_pcg_vcov_is_the_blocked_factors(data, formula, weights):
    # sigma^2 (R_X' R_X)^{-1} at the ML optimum: the exact fit's vcov (tested against lme4)
    d = mtf.datasets.load(data)
    if weights:
        d = d.assign(w=np.random.default_rng(1).uniform(0.5, 2.0, len(d)))
    res = mtf.lmer(formula, d, REML=False, weights="w" if weights else None)
    system = SparseSystem.build(res.design)
    got = system.fixed_vcov(res.theta.to_numpy(), res.sigma**2)
    np.testing.assert_allclose(got, res.vcov().to_numpy(), rtol=1e-8)
    # warm-started at a nearby theta: the factor's value there
    from mixedtf.linalg.blocked import CrossProducts, factorize

    theta = res.theta.to_numpy() * 1.1
    want = factorize(CrossProducts.build(res.design), theta).fixed_vcov(res.sigma**2)
    np.testing.assert_allclose(system.fixed_vcov(theta, res.sigma**2), want, rtol=1e-8)


def test_mcem_uses_conjugate_gradients_above_the_dense_limit(monkeypatch, sleepstudy):
    # the MCEM path a 1M-row crossed model takes, on sleepstudy: standard errors by PCG,
    # the log-likelihood by one dense factor, the check skipped when it would be dear
    monkeypatch.setattr(mcem_gaussian, "DENSE_LIMIT", 0)
    monkeypatch.setattr(mcem_gaussian, "CHECK_SHARE", 0.0)
    res = mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        seed=3, progress=False
    )
    assert res.fit_info.vcov_method == "RX (PCG)" and res.check is None
    exact = mtf.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, REML=False)
    np.testing.assert_allclose(res.bse(), exact.bse(), rtol=0.02)  # at the MCEM estimates
    assert res.loglik == pytest.approx(exact.loglik, abs=0.05)
    assert "check vs exact ML" in str(res.summary()) and "check=True runs it" in str(res.summary())
    forced = mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        seed=3, progress=False, check=True
    )
    assert forced.check is not None and forced.check.gap < 0.05


@pytest.mark.parametrize(
    ("data", "formula"),
    [
        ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ],
)
def test_one_off_factor_in_place_gives_the_loglik(data, formula):
    # the MCEM's single factorisation at scale: no Schur map, G formed in A_RR's memory
    from mixedtf.fit.exact import loglik_at
    from mixedtf.linalg.blocked import CrossProducts

    res = mtf.lmer(formula, mtf.datasets.load(data), REML=False)
    params = {"beta": res.fixef().to_numpy(), "sigma": res.sigma, "covariances": res.covariances}
    cp = CrossProducts.build(res.design, schur_map=False)
    assert cp.schur_map is None
    assert loglik_at(cp, params, consume=True) == pytest.approx(res.loglik, abs=1e-8)


def test_gaussian_chains_halve_for_many_rows():
    # 16 chains for InstEval's 73k rows; 8 at a million rows (8M chain-rows per gradient)
    from types import SimpleNamespace

    from mixedtf.fit.mcem.driver import default_chains

    def design(n):
        groups = [SimpleNamespace(n_levels=v) for v in (n // 10, n // 100, 100)]
        return SimpleNamespace(family="gaussian", groupings=groups, nobs=n)

    assert default_chains(design(73_421), "CPU") == 16
    assert default_chains(design(1_000_000), "CPU") == 8
    assert default_chains(design(10_000_000), "CPU") == 8
    # on a GPU 128, halved above 2^26 chain-rows: N x chains float32 arrays stay ~1 GB
    assert default_chains(design(73_421), "GPU") == 128
    assert default_chains(design(1_000_000), "GPU") == 64
    assert default_chains(design(10_000_000), "GPU") == 8
