r"""Exact Gaussian ML and REML fits by the profiled deviance (Bates et al. 2015, JSS 67(1)).

For ``y = X beta + Z b + e``, ``b ~ N(0, sigma^2 Lambda Lambda')``, ``e ~ N(0, sigma^2 I)``,
beta and sigma are profiled out and the deviance is minimised over theta alone with
a bounded optimiser (diagonal entries of each factor >= 0). Each evaluation costs one
blocked Cholesky of :mod:`mixedtf.fit.blocked`, independent of n.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.optimize import Bounds, minimize

from mixedtf.design import Design
from mixedtf.errors import ConvergenceWarning, SingularFitWarning, warn
from mixedtf.fit.blocked import (
    DEFAULT_MAX_DENSE_BYTES,
    CrossProducts,
    Factorization,
    factorize,
    profiled_deviance,
)
from mixedtf.fit.conditional import conditional_covariances, conditional_modes
from mixedtf.fit.covariance import (
    lower_bounds,
    psd_factor,
    start_theta,
    theta_from_factors,
    theta_names,
)
from mixedtf.fit.nested import TailProfiler, TailSplit
from mixedtf.results.results import FitInfo, MixedLMResults

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on theta's bounded entries


def _check_gaussian(design: Design) -> None:
    if design.family != "gaussian" or design.y.ndim != 1:
        raise ValueError(
            f"the exact marginal likelihood is for Gaussian models; this design has family "
            f"{design.family!r}. Use method='mcem'."
        )
    if not design.groupings:
        raise ValueError(
            "the formula has no random-effects term such as (1 | g); nothing to integrate."
        )


def fit_marginal(
    design: Design,
    reml: bool = True,
    start: np.ndarray | None = None,
    max_evaluations: int = 2000,
    tolerance: float | None = None,
    max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
    profile_tail: bool | None = None,
    cross_products: CrossProducts | None = None,
) -> MixedLMResults:
    """Fit a Gaussian mixed model by ML (``reml=False``) or REML.

    Args:
        design: the model's design.
        reml: maximise the REML criterion instead of the likelihood.
        start: starting theta (default: lme4's, with the data-based start of lme4 PR #245
            for models whose terms are all ``(1|f)``).
        max_evaluations: budget of deviance evaluations.
        tolerance: final trust-region radius of COBYQA, relative to theta's scale. Default
            1e-5; 1e-4 for the outer problem when the tail is profiled out (measured on
            InstEval: variances within 4e-5 relative of lme4's polished optimum).
        max_dense_bytes: bound on one dense ``r x r`` float64 block (see ``blocked``).
        profile_tail: with three or more terms, optimise the first two terms' theta and
            profile the small trailing terms out (see ``nested``); None decides by size.
        cross_products: the design's :class:`CrossProducts`, when already built.

    Warns:
        SingularFitWarning: a variance or a factor's diagonal is at its bound (``isSingular``).
        ConvergenceWarning: the optimiser stopped before its tolerance was met.
    """
    _check_gaussian(design)
    t0 = time.perf_counter()
    cp = cross_products or CrossProducts.build(design, max_dense_bytes)
    n, p = design.X.shape
    lower = lower_bounds(design.groupings)
    theta0 = start_theta(design) if start is None else np.asarray(start, dtype=np.float64)
    if theta0.shape != lower.shape:
        raise ValueError(f"start must have {lower.size} theta values; got {theta0.size}.")
    theta0 = np.maximum(theta0, lower)

    split = TailSplit.of(cp, force=bool(profile_tail)) if profile_tail in (None, True) else None
    if split is not None:
        # optimise the first two terms' theta; the tail's is profiled out inside
        profiler = TailProfiler(cp, split, reml, theta0[split.n_outer :])
        objective, x0, lo = profiler, theta0[: split.n_outer], lower[: split.n_outer]
    else:

        def objective(theta: np.ndarray) -> float:
            return profiled_deviance(factorize(cp, np.maximum(theta, lower)), n, p, reml)

        x0, lo = theta0, lower

    if tolerance is None:
        tolerance = 1e-4 if split is not None else 1e-5
    scale = max(1.0, float(np.max(np.abs(x0))))
    result = minimize(
        objective,
        x0,
        method="COBYQA",
        bounds=Bounds(lo, np.full(lo.size, np.inf)),
        options={
            "maxfev": max_evaluations,
            "initial_tr_radius": 0.1 * scale,
            "final_tr_radius": tolerance * scale,
        },
    )
    theta = np.maximum(result.x, lo)
    extra: dict = {"warnings": []}
    if split is not None:
        theta = np.concatenate([theta, profiler.tail_at(theta)])
        extra |= {
            "profiled_tail_terms": [g.name for g in design.groupings[2:]],
            "inner_evaluations": profiler.inner_evaluations,
        }
    f = factorize(cp, theta)
    if f is None:  # cannot happen at a finite optimum; guard against a failed optimiser
        raise RuntimeError(
            f"the optimiser ended at a theta where Omega is not positive definite: {theta}"
        )
    info = FitInfo(
        method="reml" if reml else "ml",
        converged=bool(result.success),
        iterations=int(getattr(result, "nit", 0)),
        n_evaluations=int(result.nfev),
        wall_time=time.perf_counter() - t0,
        optimizer="COBYQA (scipy)" + (", tail terms profiled out" if split is not None else ""),
        message=str(result.message),
        extra=extra,
    )
    if not result.success:
        warn(
            extra["warnings"],
            f"the optimiser did not converge: {result.message} ({result.nfev} deviance evaluations); "
            "try a larger max_evaluations or another start.",
            ConvergenceWarning,
        )
    bounded = np.isfinite(lower)
    if np.any(theta[bounded] < SINGULAR_TOL):
        warn(
            extra["warnings"],
            "boundary (singular) fit: a variance component is estimated as zero or a correlation "
            "as +-1 (lme4's isSingular); consider simplifying the random-effects terms.",
            SingularFitWarning,
        )
    return _results(design, cp, f, reml, info)


def _results(
    design: Design, cp: CrossProducts, f: Factorization, reml: bool, info: FitInfo
) -> MixedLMResults:
    n, p = design.X.shape
    r2 = f.pwrss()
    sigma = np.sqrt(r2 / (n - p if reml else n))
    deviance_ml = profiled_deviance(f, n, p, reml=False)
    criterion = profiled_deviance(f, n, p, reml) if reml else None
    return MixedLMResults(
        design=design,
        method=info.method,
        beta=f.beta(),
        beta_cov=f.fixed_vcov(sigma**2),
        theta=f.theta,
        theta_names=theta_names(design.groupings),
        sigma=sigma,
        covariances=[sigma**2 * T @ T.T for T in f.Ts],
        modes=conditional_modes(cp, f),
        loglik=-0.5 * (criterion if reml else deviance_ml),
        deviance=deviance_ml,
        reml_criterion=criterion,
        fit_info=info,
        conditional_covariances=lambda: conditional_covariances(cp, f, sigma),
    )


def marginal_loglik(model: Any, params: dict[str, Any], reml: bool = False) -> float:
    r"""Exact log marginal likelihood ``log N(y; X beta, Z Sigma Z' + sigma^2 I)`` at given parameters.

    Args:
        model: a :class:`~mixedtf.MixedLM` with data, or a :class:`~mixedtf.design.Design`.
        params: ``{"beta": array (p,), "sigma": float, "covariances": [k x k per grouping]}``
            (covariances in the design's grouping order; a dict keyed by group name works too).
        reml: return the REML log-likelihood instead (beta is then ignored).

    Uses ``-2 l = n log(2 pi sigma^2) + log|L|^2 + (r^2 + ||R_X (beta - beta_hat)||^2) / sigma^2``
    with theta = factor of ``Sigma_j / sigma^2`` (Bates et al. 2015, eq. 32).
    """
    design = model if isinstance(model, Design) else model.design_for(None)
    _check_gaussian(design)
    return loglik_at(CrossProducts.build(design), params, reml)


def loglik_at(cp: CrossProducts, params: dict[str, Any], reml: bool = False) -> float:
    """:func:`marginal_loglik` on cross-products already formed (``cp``), for repeated calls."""
    design_groupings = cp.groupings
    sigma = float(params["sigma"])
    covs = params["covariances"]
    if isinstance(covs, dict):
        covs = [covs[g.name] for g in design_groupings]
    if len(covs) != len(design_groupings):
        raise ValueError(f"need {len(design_groupings)} covariance matrices; got {len(covs)}.")
    Ts = [psd_factor(np.atleast_2d(c) / sigma**2) for c in covs]
    f = factorize(cp, theta_from_factors(Ts))
    if f is None:
        return -np.inf
    n, p = cp.n, cp.p
    if reml:
        nmp = n - p
        r2 = f.pwrss()
        return -0.5 * (
            nmp * np.log(2 * np.pi * sigma**2) + f.logdet_L() + f.logdet_RX() + r2 / sigma**2
        )
    beta = np.asarray(params["beta"], dtype=np.float64)
    delta = f.RX_lower.T @ (beta - f.beta())
    r2 = f.pwrss() + float(delta @ delta)
    return -0.5 * (n * np.log(2 * np.pi * sigma**2) + f.logdet_L() + r2 / sigma**2)
