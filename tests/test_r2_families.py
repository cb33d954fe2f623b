"""R2 and ICC of count, Gamma and inverse Gaussian GLMMs as performance 0.10.2 computes
them (tests/reference/R/r2_count_cases.R): the distribution-specific variance of insight
0.19.0 (log-link counts: ``log1p(V(mu) / mu^2)`` at the null model's intercept)."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from references import REFERENCE, reference

import mixedtf as mtf
from mixedtf.results.inference import distribution_variance

CASES = reference("r2_count")
NAMES = ["poisson_ticks", "nb_ticks", "gamma_log", "gamma_inverse", "ig_log"]


def _fit(ref):
    if ref["data"].endswith(".csv"):
        data = pd.read_csv(Path(REFERENCE) / "local" / ref["data"], dtype={"g": str})
    else:
        data = mtf.datasets.load(ref["data"])
        data = data.assign(cHEIGHT=data.HEIGHT - data.HEIGHT.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ref["family"] == "negative_binomial":
            return mtf.glmer_nb(ref["formula"], data)
        return mtf.glmer(ref["formula"], data, family=ref["family"], link=ref["link"])


@pytest.fixture(scope="module")
def fits():
    return {name: _fit(CASES[name]) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_distribution_variance_is_insights(fits, name):
    # insight::get_variance(m)$var.distribution from lme4's own null-model intercept,
    # sigma(m) and glmer.nb theta: the formula, to rounding
    ref, res = CASES[name], fits[name]
    stub = SimpleNamespace(
        design=res.design,
        sigma=ref["sigma"],
        family_params={"theta": ref.get("nb_theta")},
        null_model=SimpleNamespace(fixef=lambda: pd.Series([ref["null_intercept"]])),
    )
    assert distribution_variance(stub) == pytest.approx(ref["var_distribution"], rel=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_r2_and_icc_are_performances(fits, name):
    # r2_nakagawa(m), icc(m). lme4 stops short of the optimum on the count models (its
    # logLik, and its null model's, below ours), and its Gamma and inverse Gaussian fits
    # are approximate (tests/test_gamma.py: sigma to 2e-3), so the variances it plugs in
    # differ from ours by up to 2e-3 relative; R2 and ICC follow them.
    ref, res = CASES[name], fits[name]
    if ref["family"] in ("poisson", "negative_binomial"):
        assert res.loglik >= ref["logLik"] - 1e-6
        assert res.null_model.loglik >= ref["null_logLik"] - 1e-6
        assert list(res.null_model.fixef().index) == ["(Intercept)"]
    r2, icc = res.r2(), res.icc()
    got = [r2["marginal"], r2["conditional"], icc["adjusted"], icc["unadjusted"]]
    want = [ref["marginal"], ref["conditional"], ref["icc_adjusted"], ref["icc_unadjusted"]]
    np.testing.assert_allclose(got, want, rtol=3e-3)


def test_r2_refuses_what_performance_does_not_cover(fits):
    # insight's .badlink: a Poisson model with the identity link has no
    # distribution-specific variance
    stub = SimpleNamespace(
        design=SimpleNamespace(
            family="poisson", family_spec=mtf.families.get("poisson", "identity")
        )
    )
    with pytest.raises(mtf.OptionError, match="'poisson' with link 'identity'"):
        distribution_variance(stub)
