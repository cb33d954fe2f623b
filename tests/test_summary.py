"""Golden-text summary with lme4's parameters pinned (the optimiser is not in the loop)."""

from __future__ import annotations

import numpy as np
import pytest
from references import reference

import mixedtf as mtf
from mixedtf.results import FitInfo, MixedLMResults


def pinned(warnings=()):
    ref = reference("sleepstudy_slope_REML")  # lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
    design = mtf.build_design(ref["formula"], mtf.datasets.load("sleepstudy"))
    cov = np.array(ref["random_effects"][0]["covariance"]["values"])  # VarCorr(m)$Subject
    return MixedLMResults(
        design=design,
        method="reml",
        beta=[f["estimate"] for f in ref["fixed_effects"]],  # fixef(m)
        beta_cov=ref["fixed_effects_vcov"]["values"],  # vcov(m)
        theta=list(ref["theta"].values()),
        theta_names=list(ref["theta"]),  # getME(m, "theta")
        sigma=ref["residual_sd"],  # sigma(m)
        covariances=[cov],
        modes=[np.zeros((18, 2))],
        loglik=ref["logLik"],
        deviance=ref["deviance"],
        reml_criterion=ref["REML_criterion"],  # logLik(m)
        fit_info=FitInfo("reml", True, 40, 43, 0.0, "COBYQA", warnings=list(warnings)),
    )


# Every number below is lme4's (df and P>|t| lmerTest's):
# summary(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))
GOLDEN = """\
                     Mixed Linear Model Results (mixedtf)
==============================================================================
Model:            MixedLM              Formula:            Reaction ~ Days + (Days | Subject)
Family / link:    gaussian / identity  Log-likelihood:     -871.8141
Method:           REML (exact)         AIC / BIC:          1755.63 / 1774.79
No. observations: 180                  Converged:          yes
Groups:           Subject (18)         Device / wall time: CPU / 0.00 s
------------------------------------------------------------------------------
                   Coef.   Std.Err.         df          t      P>|t|
(Intercept)     251.4051     6.8246      17.00    36.8381   1.17e-17
Days             10.4673     1.5458      17.00     6.7715   3.26e-06
------------------------------------------------------------------------------
Random effects:
 Group     Name             Variance    Std.Dev.  Corr
 Subject   (Intercept)      612.1002     24.7407
           Days              35.0717      5.9221  0.07
 Residual                   654.9400     25.5918
=============================================================================="""


def test_summary_text_is_golden():
    assert pinned().summary().as_text() == GOLDEN
    assert str(pinned().summary()) == GOLDEN


def test_summary_shows_fit_warnings_and_html():
    text = pinned(["SingularFitWarning: boundary (singular) fit"]).summary().as_text()
    assert text.splitlines()[-1] == "Warning: SingularFitWarning: boundary (singular) fit"
    page = pinned().summary()._repr_html_()
    assert "<table>" in page and "Std.Err." in page and "Subject" in page and "REML (exact)" in page


def test_summary_alpha_changes_the_interval_columns():
    table = pinned().summary(alpha=0.1, ddf=None).fixed
    assert list(table.columns)[-2:] == ["[0.050", "0.950]"]


@pytest.mark.parametrize(
    ("method", "family", "formula", "options", "shows"),
    [
        ("ml", "gaussian", "Reaction ~ Days + (Days | Subject)", {}, "ML (exact)"),
        ("reml", "gaussian", "Reaction ~ Days + (Days | Subject)", {}, "REML (exact)"),
        (
            "laplace",
            "binomial",
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            {},
            "Laplace (ML)",
        ),
        (
            "laplace",
            "binomial",
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            {"nAGQ": 9},
            "AGQ, 9 nodes (ML)",
        ),
    ],
)
def test_summary_renders_for_every_method(method, family, formula, options, shows, tmp_path):
    data = mtf.datasets.load("sleepstudy" if family == "gaussian" else "cbpp")
    res = mtf.MixedLM.from_formula(formula, data, family=family).fit(method=method, **options)
    for fit in (res, _saved_and_loaded(res, tmp_path)):
        text = str(fit.summary())
        assert f"Method:           {shows}" in text
        assert "<table>" in fit.summary()._repr_html_()


def test_summary_renders_for_mcem(sleep_mcem, tmp_path):
    for fit in (sleep_mcem, _saved_and_loaded(sleep_mcem, tmp_path)):
        text = str(fit.summary())
        assert "Monte Carlo EM (ML)" in text and "check vs exact ML" in text


def _saved_and_loaded(res, tmp_path):
    path = tmp_path / f"{res.method}.npz"
    res.save(path)
    return mtf.load(path)
