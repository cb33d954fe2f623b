"""Comparing fits: lme4's ``anova(m0, m1, ...)`` likelihood-ratio table for any number of
nested models, and ``drop1(m, test = "Chisq")``. REML fits are refitted by ML first, as
lme4 does (and say so: a ``UserWarning``-free note in the table's ``attrs``).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import stats

from mixedtf.errors import ModelComparisonError
from mixedtf.formula.rsyntax import r_deparse
from mixedtf.results import MixedLMResults
from mixedtf.update import update

__all__ = ["anova", "drop1"]


def _blocks(res: MixedLMResults) -> set[tuple[str, str]]:
    """(grouping factor, column) pairs of a fit's random effects."""
    return {(g.factor, c) for g in res.design.groupings for c in g.colnames}


def _as_ml(res: MixedLMResults) -> MixedLMResults:
    return update(res, method_override="ml") if res.method == "reml" else res


def _check_comparable(small: MixedLMResults, large: MixedLMResults) -> None:
    if small.nobs != large.nobs or small.design.formula.response != large.design.formula.response:
        raise ModelComparisonError(
            "anova compares fits of the same response on the same rows; got "
            f"{small.nobs} and {large.nobs} observations of {small.design.formula.response.expr!r} "
            f"and {large.design.formula.response.expr!r}."
        )
    nested_fixed = set(small.design.fixed_names) <= set(large.design.fixed_names)
    if not (nested_fixed and _blocks(small) <= _blocks(large)):
        raise ModelComparisonError(
            "the models are not nested: each smaller one's fixed effects and random-effect "
            f"columns must be among the next one's (fixed {list(small.design.fixed_names)} vs "
            f"{list(large.design.fixed_names)})."
        )
    if small.df_model == large.df_model:
        raise ModelComparisonError(
            f"two models with {small.df_model} parameters each are not nested; drop one."
        )


def anova(*models: MixedLMResults) -> pd.DataFrame:
    """lme4's ``anova(m0, m1, ...)``: the models ordered by their number of parameters, and
    the likelihood-ratio test of each against the one before it.

    Columns ``npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)``, rows ``m0, m1, ...``
    in that order. REML fits are refitted by maximum likelihood first, as lme4 does
    (``table.attrs["refitted"]`` lists them), since REML criteria of different fixed effects
    are not comparable.

    Raises:
        ModelComparisonError: fewer than two models, different data, or models not nested.
    """
    if len(models) < 2:
        raise ModelComparisonError(
            f"anova compares two or more fits; got {len(models)}. For one model's type III "
            "table see the inference issue's single-model anova (not yet available)."
        )
    refitted = [i for i, m in enumerate(models) if m.method == "reml"]
    fits = sorted((_as_ml(m) for m in models), key=lambda r: r.df_model)
    for small, large in pairwise(fits):
        _check_comparable(small, large)
    rows = [(r.df_model, r.aic, r.bic, r.loglik, -2.0 * r.loglik) for r in fits]
    table = pd.DataFrame(
        rows,
        columns=["npar", "AIC", "BIC", "logLik", "deviance"],
        index=[f"m{i}" for i in range(len(fits))],
    )
    ll, npar = table.logLik.to_numpy(), table.npar.to_numpy()
    chisq = np.r_[np.nan, np.maximum(2.0 * np.diff(ll), 0.0)]
    df = np.r_[np.nan, np.diff(npar)].astype(float)
    table["Chisq"] = chisq
    table["Df"] = df
    table["Pr(>Chisq)"] = np.r_[np.nan, stats.chi2.sf(chisq[1:], df[1:])]
    table.attrs["refitted"] = refitted
    return table


def drop1(res: MixedLMResults, test: str = "Chisq") -> pd.DataFrame:
    """lme4's ``drop1(m, test = "Chisq")``: the fit without each fixed-effect term that no
    other term contains (marginality), by maximum likelihood (a REML fit is refitted by ML).

    Columns ``Df, AIC, LRT, Pr(Chi)``; rows ``<none>`` and the terms, named as R names them.
    """
    if test != "Chisq":
        raise ModelComparisonError(f"drop1 tests with test='Chisq' (lme4's); got {test!r}.")
    full = _as_ml(res)
    terms = [t for t in full.design.fixed_spec.formula if str(t) != "1"]
    factor_sets = [frozenset(str(f) for f in t.factors) for t in terms]
    droppable = [
        t
        for t, fs in zip(terms, factor_sets, strict=True)
        if not any(fs < other for other in factor_sets)
    ]
    rows = [("<none>", np.nan, full.aic, np.nan, np.nan)]
    for term in droppable:
        label = ":".join(r_deparse(str(f)) for f in term.factors)
        reduced = update(full, f". ~ . - {label}")
        lrt = max(2.0 * (full.loglik - reduced.loglik), 0.0)
        df = full.df_model - reduced.df_model
        rows.append((label, df, reduced.aic, lrt, stats.chi2.sf(lrt, df)))
    table = pd.DataFrame(rows, columns=["term", "Df", "AIC", "LRT", "Pr(Chi)"]).set_index("term")
    table.index.name = None
    return table
