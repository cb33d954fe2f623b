"""What refits a model to draw inference: lme4's ``anova(m0, m1, ...)`` likelihood-ratio
table for any number of nested models, ``drop1(m, test = "Chisq")`` (REML fits refitted by
ML first, as lme4 does; listed in the table's ``attrs``) and the parametric bootstrap's
``confint``.
"""

from __future__ import annotations

import warnings
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import stats

from mixedtf.errors import ModelComparisonError
from mixedtf.formula.rsyntax import r_deparse
from mixedtf.linalg.covariance import to_sdcor
from mixedtf.results import MixedLMResults
from mixedtf.results.inference import REFITS, _select
from mixedtf.update import update

__all__ = ["anova", "bootstrap", "confint", "drop1", "profile"]


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
    the likelihood-ratio test of each against the one before it. With one linear mixed
    model, lmerTest's ``anova(m)``: the F test of each fixed-effect term with
    Satterthwaite's denominator df (``Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)``).

    Columns ``npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)``, rows ``m0, m1, ...``
    in that order. REML fits are refitted by maximum likelihood first, as lme4 does
    (``table.attrs["refitted"]`` lists them), since REML criteria of different fixed effects
    are not comparable.

    Raises:
        ModelComparisonError: fewer than two models, different data, or models not nested.
    """
    if len(models) == 1:  # lmerTest's type III F table
        from mixedtf.results.ddf import type3_anova

        return type3_anova(models[0])
    if len(models) < 2:
        raise ModelComparisonError("anova takes one fit (its F table) or several to compare.")
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


def _parameter_vector(res: MixedLMResults) -> np.ndarray:
    """The parameters in lme4's ``confint`` order: per term its SDs and correlations
    (column-major lower triangle), sigma (families with a scale), the fixed effects."""
    sigma = [res.sigma] if res.has_scale else []
    return np.r_[to_sdcor(res.covariances), sigma, res.fixef().to_numpy()]


def confint(
    res: MixedLMResults,
    method: str = "boot",
    level: float = 0.95,
    parm=None,
    nsim: int = 500,
    seed: int | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Confidence intervals that refit the model, with lme4's ``confint(oldNames = FALSE)``
    rows and columns. ``method="profile"`` (exact Gaussian fits, binomial and Poisson
    Laplace fits): lme4's profile intervals, each bound solved for where the signed root of
    the profiled deviance reaches the normal quantile (:mod:`mixedtf.fit.profile`).
    ``method="boot"``: the parametric bootstrap of lme4's ``bootMer`` and
    ``confint(method = "boot")`` (percentile): ``nsim`` responses simulated from the fit
    (new random effects), each refitted by the fit's method from its estimates, and the
    ``(1 - level) / 2`` quantiles of every parameter. ``method="wald"``: ``res.confint()``.

    Replicates whose refit fails are dropped and counted in ``table.attrs["failed"]``.
    """
    if method == "wald":
        return res.confint("wald", level, parm)
    if method not in ("boot", "profile"):
        raise ModelComparisonError(f"method must be 'profile', 'boot' or 'wald'; got {method!r}.")
    if not 0 < level < 1:
        raise ModelComparisonError(f"level must be in (0, 1); got {level!r}.")
    if method == "profile":
        return _select(_profile(res, level), parm)
    draws = bootstrap(res, nsim, seed, progress)
    table = _percentiles(res, draws.to_numpy(), level, None, int(nsim))
    table.attrs["failed"] = draws.attrs["failed"]
    return _select(table, parm)


def bootstrap(
    res: MixedLMResults, nsim: int = 500, seed: int | None = None, progress: bool | None = None
) -> pd.DataFrame:
    """lme4's ``bootMer(m, FUN, nsim, seed)`` with ``FUN`` the parameters of ``confint``:
    ``nsim`` responses simulated from the fit (new random effects), each refitted by the
    fit's method from its estimates. Returns one row per replicate, one column per
    parameter (``confint``'s names: SDs, correlations, sigma, fixed effects); replicates
    whose refit fails are NaN and counted in ``draws.attrs["failed"]``. Exact Gaussian fits
    refit all replicates at once (:mod:`mixedtf.fit.exact.bootstrap`). Plot with
    :func:`mixedtf.plotting.plot_bootstrap`."""
    from tqdm.auto import tqdm

    from mixedtf.results.inference import parameter_names
    from mixedtf.update import refit

    if int(nsim) < 1:
        raise ModelComparisonError(f"nsim must be a positive number of replicates; got {nsim!r}.")
    sims = res.simulate(int(nsim), seed=seed)
    if res.method in ("ml", "reml") and res.design.family == "gaussian":
        from mixedtf.fit.exact.bootstrap import exact_refits

        values = exact_refits(
            res.design, sims.to_numpy().T, res.method == "reml", res.theta.to_numpy()
        )
    else:
        rows = []
        for column in tqdm(sims.columns, disable=not progress, desc="bootstrap"):
            y = sims[column].to_numpy(np.float64)
            if res.design.y.ndim == 2:  # cbind counts: successes and failures
                y = np.column_stack([y, res.design.trials - y])
            try:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # singular replicates are expected
                    rows.append(_parameter_vector(refit(res, y, seed=seed)))
            except Exception:  # a replicate that cannot be fitted, as bootMer's NA
                rows.append(None)
        size = len(parameter_names(res))
        values = np.array([np.full(size, np.nan) if r is None else r for r in rows])
    draws = pd.DataFrame(values, columns=parameter_names(res), index=sims.columns)
    draws.attrs["failed"] = int(draws.isna().any(axis=1).sum())
    return draws


def _percentiles(res, draws: np.ndarray, level: float, parm, nsim: int) -> pd.DataFrame:
    from mixedtf.results.inference import _interval_columns, parameter_names

    alpha = (1 - level) / 2
    table = pd.DataFrame(
        np.nanquantile(draws, [alpha, 1 - alpha], axis=0).T,
        index=parameter_names(res),
        columns=_interval_columns(level),
    )
    table.attrs["failed"] = int(np.isnan(draws).any(axis=1).sum())
    table.attrs["nsim"] = nsim
    return _select(table, parm)


# families whose Laplace deviance has no scale parameter (lme4's profile.merMod refuses
# GLMMs with one: Gamma, inverse Gaussian)
PROFILED_GLMM_FAMILIES = ("binomial", "poisson", "negative_binomial")


def _profile(
    res: MixedLMResults, level: float, traces: dict[int, list] | None = None
) -> pd.DataFrame:
    from mixedtf.fit.profile import glmm_profile_intervals, profile_intervals
    from mixedtf.results.inference import _interval_columns, parameter_names

    exact = res.design.family == "gaussian" and res.method in ("ml", "reml")
    laplace = res.method == "laplace" and res.design.family in PROFILED_GLMM_FAMILIES
    if not (exact or laplace):
        raise ModelComparisonError(
            "profile intervals are computed for exact Gaussian fits and binomial, Poisson or "
            f"negative binomial Laplace fits; this is a {res.design.family} {res.method} fit "
            "(lme4 does not profile GLMMs with a scale either). Use method='boot'."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compute = profile_intervals if exact else glmm_profile_intervals
        bounds = compute(res, level, traces)
    return pd.DataFrame(bounds, index=parameter_names(res), columns=_interval_columns(level))


def profile(res: MixedLMResults, level: float = 0.99) -> pd.DataFrame:
    """lme4's ``profile(m)``: each parameter's profile, the signed root of the deviance
    ``zeta = sign(x - x_hat) sqrt(D_profiled(x) - D_hat)`` at the values visited while
    solving for its ``level`` bounds (from ``-z`` to ``+z``, ``z`` the normal quantile).

    Returns a long DataFrame with columns ``parameter``, ``value``, ``zeta`` (sorted by
    parameter, then value; the estimate itself at zeta 0); ``table.attrs["intervals"]``
    holds the ``level`` intervals (``confint(profile(m))``). Plot it with
    :func:`mixedtf.plotting.plot_profile`. Same models as ``confint(method="profile")``.
    """
    if not 0 < level < 1:
        raise ModelComparisonError(f"level must be in (0, 1); got {level!r}.")
    traces: dict[int, list] = {}
    intervals = _profile(res, level, traces)
    estimates = _parameter_vector(_as_ml(res) if res.method == "reml" else res)
    rows = []
    for k, name in enumerate(intervals.index):
        points = dict(traces.get(k, []))
        points[float(estimates[k])] = 0.0
        rows += [(name, value, zeta) for value, zeta in sorted(points.items())]
    table = pd.DataFrame(rows, columns=["parameter", "value", "zeta"])
    table.attrs["intervals"] = intervals
    table.attrs["level"] = level
    return table


def _registered(res, method, level, parm, nsim, seed):
    return confint(res, method=method, level=level, parm=parm, nsim=nsim, seed=seed)


REFITS.update(profile=_registered, boot=_registered)
