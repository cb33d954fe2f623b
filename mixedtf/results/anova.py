"""Likelihood-ratio tests of nested fits (lme4's ``anova(m0, m1)``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from mixedtf.errors import ModelComparisonError
from mixedtf.results.results import MixedLMResults


def _blocks(res: MixedLMResults) -> set[tuple[str, tuple[str, ...]]]:
    """(grouping factor, column) pairs of a fit's random effects."""
    return {(g.factor, c) for g in res.design.groupings for c in g.colnames}


def anova(m0: MixedLMResults, m1: MixedLMResults) -> pd.DataFrame:
    """Likelihood-ratio test of a smaller model ``m0`` nested in ``m1``.

    Returns R's table: ``npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)``.

    Raises:
        ModelComparisonError: the fits are on different data, not nested, or REML fits whose fixed
            effects differ (their REML criteria are not comparable: refit with ``method="ml"``).
    """
    small, large = sorted((m0, m1), key=lambda r: r.df_model)
    if small.nobs != large.nobs or small.design.formula.response != large.design.formula.response:
        raise ModelComparisonError(
            "anova compares fits of the same response on the same rows; got "
            f"{small.nobs} and {large.nobs} observations of {small.design.formula.response.expr!r} "
            f"and {large.design.formula.response.expr!r}."
        )
    same_fixed = list(small.design.fixed_names) == list(large.design.fixed_names)
    if "reml" in (small.method, large.method) and not (
        small.method == large.method == "reml" and same_fixed
    ):
        raise ModelComparisonError(
            "REML log-likelihoods of models with different fixed effects (or of a REML and an ML "
            "fit) are not comparable; refit both with method='ml'."
        )
    nested_fixed = set(small.design.fixed_names) <= set(large.design.fixed_names)
    nested_random = _blocks(small) <= _blocks(large)
    if not (nested_fixed and nested_random) or small.df_model == large.df_model:
        raise ModelComparisonError(
            "the models are not nested: the smaller one's fixed effects and random-effect columns "
            f"must be among the larger one's (fixed {list(small.design.fixed_names)} vs "
            f"{list(large.design.fixed_names)})."
        )
    chisq = max(2.0 * (large.loglik - small.loglik), 0.0)
    df = large.df_model - small.df_model
    rows = [(r.df_model, r.aic, r.bic, r.loglik, -2.0 * r.loglik) for r in (small, large)]
    table = pd.DataFrame(
        rows, columns=["npar", "AIC", "BIC", "logLik", "deviance"], index=["m0", "m1"]
    )
    table["Chisq"] = [np.nan, chisq]
    table["Df"] = [np.nan, df]
    table["Pr(>Chisq)"] = [np.nan, stats.chi2.sf(chisq, df)]
    return table
