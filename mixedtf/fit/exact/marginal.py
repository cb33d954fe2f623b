r"""Exact Gaussian ML and REML fits by the profiled deviance (Bates et al. 2015, JSS 67(1)).

For ``y = X beta + Z b + e``, ``b ~ N(0, sigma^2 Lambda Lambda')``, ``e ~ N(0, sigma^2 I)``,
beta and sigma are profiled out and the deviance is minimised over theta alone with
a bounded optimiser (diagonal entries of each factor >= 0). Each evaluation costs one
blocked Cholesky of :mod:`mixedtf.linalg.blocked`, independent of n.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import Bounds, minimize

from mixedtf.design import Design
from mixedtf.errors import FamilyError, OptionError
from mixedtf.fit.checks import require_random_terms, warn_fit
from mixedtf.fit.exact.conditional import conditional_covariances, conditional_modes
from mixedtf.fit.exact.nested import TailProfiler, TailSplit
from mixedtf.fit.options import ExactOptions
from mixedtf.fit.start import start_theta
from mixedtf.linalg.blocked import (
    CrossProducts,
    Factorization,
    factorize,
    gaussian_deviance,
    profiled_deviance,
)
from mixedtf.linalg.covariance import lower_bounds, psd_factor, theta_from_factors, theta_names
from mixedtf.results.results import FitInfo, MixedLMResults


def _check_gaussian(design: Design) -> None:
    if design.family != "gaussian" or design.y.ndim != 1:
        raise FamilyError(
            f"the exact marginal likelihood is for Gaussian models; this design has family "
            f"{design.family!r}. Use method='laplace' or method='mcem'."
        )
    require_random_terms(design)


@dataclass(frozen=True, eq=False)
class _Problem:
    """What the optimiser minimises: the objective over ``x0``'s coordinates from ``x0``
    with lower bounds ``lower``, and the profiler when the tail terms are profiled out."""

    objective: Callable[[np.ndarray], float]
    x0: np.ndarray
    lower: np.ndarray
    profiler: TailProfiler | None


def _problem(cp: CrossProducts, opts: ExactOptions, reml: bool, theta0, lower) -> _Problem:
    """The deviance over all of theta, or over the first two terms' theta with the small
    trailing terms profiled out inside (:mod:`mixedtf.fit.exact.nested`)."""
    profile = opts.profile_tail
    split = TailSplit.of(cp, force=bool(profile)) if profile in (None, True) else None
    if split is not None:
        profiler = TailProfiler(cp, split, reml, theta0[split.n_outer :])
        return _Problem(profiler, theta0[: split.n_outer], lower[: split.n_outer], profiler)
    n, p = cp.n, cp.p

    def objective(theta: np.ndarray) -> float:
        return profiled_deviance(factorize(cp, np.maximum(theta, lower)), n, p, reml)

    return _Problem(objective, theta0, lower, None)


def _minimise(problem: _Problem, opts: ExactOptions) -> Any:
    """COBYQA with bounds, its trust region scaled to theta."""
    tolerance = opts.tolerance
    if tolerance is None:
        tolerance = 1e-4 if problem.profiler is not None else 1e-5
    scale = max(1.0, float(np.max(np.abs(problem.x0))))
    return minimize(
        problem.objective,
        problem.x0,
        method="COBYQA",
        bounds=Bounds(problem.lower, np.full(problem.lower.size, np.inf)),
        options={
            "maxfev": opts.max_evaluations,
            "initial_tr_radius": 0.1 * scale,
            "final_tr_radius": tolerance * scale,
        },
    )


def _restart_edge(problem: _Problem, opts: ExactOptions, result: Any) -> Any:
    """lme4's ``restart_edge``: an optimum with a diagonal of theta at its bound of 0 may be
    a local one on that edge (3000 InstEval rows, ``y ~ x + (1|s) + (x|d) + (1|dept)`` by
    ML: 1.36 log-likelihood units below lme4's); optimise again from that optimum with
    its edge diagonals set to 0.5, and keep the lower deviance."""
    on_edge = (problem.lower == 0.0) & (np.maximum(result.x, problem.lower) <= 1e-8)
    if not on_edge.any():
        return result
    # from the optimum with its edge diagonals pushed inside (lme4's default start from
    # the data-based start's basin found the same edge again)
    pushed = np.where(on_edge, 0.5, np.maximum(result.x, problem.lower))
    again = _minimise(_Problem(problem.objective, pushed, problem.lower, problem.profiler), opts)
    if again.fun < result.fun:
        again.nfev += result.nfev
        return again
    result.nfev += again.nfev
    return result


def _start(design: Design, opts: ExactOptions, lower: np.ndarray) -> np.ndarray:
    theta0 = start_theta(design.whitened()) if opts.start is None else opts.start
    if theta0.shape != lower.shape:
        raise OptionError(
            f"start must have {lower.size} theta values ({theta_names(design.groupings)}); "
            f"got {theta0.size}."
        )
    return np.maximum(theta0, lower)


def fit_exact(
    design: Design,
    reml: bool = True,
    options: ExactOptions | None = None,
    cross_products: CrossProducts | None = None,
) -> MixedLMResults:
    """Fit a Gaussian mixed model by ML (``reml=False``) or REML, minimising lme4's
    profiled deviance over theta (see :class:`~mixedtf.fit.options.ExactOptions`).

    ``cross_products``: the design's :class:`~mixedtf.linalg.blocked.CrossProducts`, when
    already built (MCEM's check reuses its own).

    Warns:
        SingularFitWarning: a variance or a factor's diagonal is at its bound (``isSingular``).
        ConvergenceWarning: the optimiser stopped before its tolerance was met.
    """
    _check_gaussian(design)
    opts = options or ExactOptions()
    t0 = time.perf_counter()
    cp = cross_products or CrossProducts.build(design, opts.max_dense_bytes)
    lower = lower_bounds(design.groupings)
    problem = _problem(cp, opts, reml, _start(design, opts, lower), lower)
    result = _minimise(problem, opts)
    if opts.restart_edge:
        result = _restart_edge(problem, opts, result)
    theta = np.maximum(result.x, problem.lower)
    if problem.profiler is not None:
        theta = np.concatenate([theta, problem.profiler.tail_at(theta)])
    f = factorize(cp, theta)
    if f is None:  # cannot happen at a finite optimum; guard against a failed optimiser
        raise RuntimeError(
            f"the optimiser ended at a theta where Omega is not positive definite: {theta}"
        )
    info = _fit_info(design, reml, result, problem, time.perf_counter() - t0)
    warn_fit(
        info.warnings,
        theta,
        lower,
        bool(result.success),
        f"{result.message} ({result.nfev} deviance evaluations)",
    )
    return _results(design, cp, f, reml, info)


def _fit_info(design: Design, reml: bool, result: Any, problem: _Problem, wall: float) -> FitInfo:
    profiled = problem.profiler is not None
    extra: dict[str, Any] = {}
    if profiled:
        extra = {
            "profiled_tail_terms": [g.name for g in design.groupings[2:]],
            "inner_evaluations": problem.profiler.inner_evaluations,
        }
    return FitInfo(
        method="reml" if reml else "ml",
        converged=bool(result.success),
        iterations=int(getattr(result, "nit", 0)),
        n_evaluations=int(result.nfev),
        wall_time=wall,
        optimizer="COBYQA (scipy)" + (", tail terms profiled out" if profiled else ""),
        message=str(result.message),
        link="identity",
        loglik_method="exact",
        vcov_method="RX",
        extra=extra,
    )


def _results(
    design: Design, cp: CrossProducts, f: Factorization, reml: bool, info: FitInfo
) -> MixedLMResults:
    n, p = design.X.shape
    r2 = f.pwrss()
    sigma = np.sqrt(r2 / (n - p if reml else n))
    # prior weights: lme4's -2 loglik subtracts sum(log w) (the rows' own variances)
    deviance_ml = profiled_deviance(f, n, p, reml=False) - cp.log_weights
    criterion = profiled_deviance(f, n, p, reml) - cp.log_weights if reml else None
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


def loglik_at(
    cp: CrossProducts, params: dict[str, Any], reml: bool = False, consume: bool = False
) -> float:
    """:func:`marginal_loglik` on cross-products already formed (``cp``), for repeated
    calls (``consume=True``: a last call, factoring in ``cp``'s memory)."""
    design_groupings = cp.groupings
    sigma = float(params["sigma"])
    covs = params["covariances"]
    if isinstance(covs, dict):
        covs = [covs[g.name] for g in design_groupings]
    if len(covs) != len(design_groupings):
        raise OptionError(f"need {len(design_groupings)} covariance matrices; got {len(covs)}.")
    Ts = [psd_factor(np.atleast_2d(c) / sigma**2) for c in covs]
    f = factorize(cp, theta_from_factors(Ts), consume)
    if f is None:
        return -np.inf
    n, p = cp.n, cp.p
    s2 = sigma**2
    if reml:
        dev = gaussian_deviance(f.logdet_L() + f.logdet_RX(), f.pwrss(), n - p, s2)
    else:
        beta = np.asarray(params["beta"], dtype=np.float64)
        delta = f.RX_lower.T @ (beta - f.beta())
        dev = gaussian_deviance(f.logdet_L(), f.pwrss() + float(delta @ delta), n, s2)
    return -0.5 * (dev - cp.log_weights)
