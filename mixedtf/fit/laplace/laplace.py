r"""GLMM fits by the Laplace approximation and adaptive Gauss-Hermite quadrature, as lme4's
``glmer`` (``nAGQ = 1`` and ``nAGQ > 1``).

The deviance at ``(theta, beta)`` (and the ordinal cutpoints) comes from PIRLS
(:mod:`mixedtf.fit.laplace.pirls`) and, with ``n_agq > 1``, quadrature
(:mod:`mixedtf.fit.laplace.agq`); COBYQA minimises it jointly over all parameters from the
GLM fit and theta = 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import Bounds, minimize

from mixedtf.design import Design
from mixedtf.fit.checks import require_random_terms, warn_fit
from mixedtf.fit.laplace.agq import check_agq
from mixedtf.fit.laplace.pirls import LaplaceModel
from mixedtf.fit.options import LaplaceOptions
from mixedtf.fit.response import OrdinalResponse
from mixedtf.fit.start import glm_start, nb_theta_start, start_cutpoints
from mixedtf.linalg.covariance import factors, lower_bounds, theta_names
from mixedtf.results.results import FitInfo, MixedLMResults

HESSIAN_MAX_Q = 500  # ordinal fits up to this many random effects get clmm's Hessian vcov


def finite_hessian(f, x0: np.ndarray) -> np.ndarray:
    """Central finite-difference Hessian of ``f`` at ``x0`` (steps ``1e-3`` relative)."""
    h = 1e-3 * np.maximum(1.0, np.abs(x0))
    dim = x0.size
    H = np.empty((dim, dim))
    f0 = f(x0)
    for i in range(dim):
        ei = np.eye(dim)[i] * h[i]
        H[i, i] = (f(x0 + ei) - 2 * f0 + f(x0 - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.eye(dim)[j] * h[j]
            H[i, j] = H[j, i] = (
                f(x0 + ei + ej) - f(x0 + ei - ej) - f(x0 - ei + ej) + f(x0 - ei - ej)
            ) / (4 * h[i] * h[j])
    return H


def hessian_vcov(model: LaplaceModel, theta, beta, cuts=None, n_agq: int = 1) -> np.ndarray:
    """Covariance of ``(beta, cutpoints)`` from the finite-difference Hessian of the deviance
    over ``(theta, beta, cutpoints)`` (``ordinal::clmm``'s ``vcov``; lme4's
    ``use.hessian = TRUE``): unlike the RX Schur complement it carries the uncertainty of
    theta. Theta components on the boundary are held fixed."""
    free_theta = np.flatnonzero(np.abs(theta) > 1e-4)
    x0 = np.concatenate([theta[free_theta], beta, np.zeros(0) if cuts is None else cuts])
    nt, p = free_theta.size, beta.size

    def f(x):
        th = theta.copy()
        th[free_theta] = x[:nt]
        c = None if cuts is None else x[nt + p :]
        return 0.5 * model.deviance(x[nt : nt + p], th, n_agq, c)

    return np.linalg.inv(finite_hessian(f, x0))[nt:, nt:]


def nb_theta_se(model: LaplaceModel, theta, beta, nb_theta: float) -> float:
    """Standard error of the negative binomial theta, from the finite-difference Hessian
    of the deviance over ``(theta, beta, log theta_nb)`` (delta method from the log)."""
    free_theta = np.flatnonzero(np.abs(theta) > 1e-4)
    x0 = np.concatenate([theta[free_theta], beta, [np.log(nb_theta)]])
    nt, p = free_theta.size, beta.size

    def f(x):
        th = theta.copy()
        th[free_theta] = x[:nt]
        model.set_nb_theta(np.exp(x[-1]))
        return 0.5 * model.deviance(x[nt : nt + p], th)

    try:
        var = np.linalg.inv(finite_hessian(f, x0))[-1, -1]
    except np.linalg.LinAlgError:
        var = np.nan
    finally:
        model.set_nb_theta(nb_theta)
    return float(nb_theta * np.sqrt(var)) if var > 0 else float("nan")


def ascending(x: np.ndarray) -> np.ndarray:
    """Ordered cutpoints from free values: ``c_1 = x_1``, ``c_k = c_{k-1} + exp(x_k)``."""
    return np.cumsum(np.concatenate([x[:1], np.exp(x[1:])]))


def ascending_inverse(c: np.ndarray) -> np.ndarray:
    return np.concatenate([c[:1], np.log(np.diff(c))])


@dataclass(frozen=True)
class _Layout:
    """How the optimiser's vector ``x = (theta, beta, free cutpoints | log theta_nb)``
    splits."""

    n_theta: int
    p: int
    ordinal: bool
    nb: bool = False  # the negative binomial theta is estimated (last coordinate, log)

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        nt, p = self.n_theta, self.p
        return x[:nt], x[nt : nt + p], ascending(x[nt + p :]) if self.ordinal else None

    def nb_theta(self, x: np.ndarray) -> float | None:
        return float(np.exp(x[-1])) if self.nb else None


def _start(design: Design, model: LaplaceModel) -> tuple[np.ndarray, _Layout]:
    """Theta = 1 on the diagonals (lme4's start), the GLM fit, the marginal cutpoints, the
    negative binomial theta from the GLM's moments."""
    lo = lower_bounds(design.groupings)
    theta0 = np.where(np.isfinite(lo), 1.0, 0.0)
    beta0 = glm_start(design)
    ordinal = isinstance(model.response, OrdinalResponse)
    extra = ascending_inverse(start_cutpoints(design.outcome)) if ordinal else np.zeros(0)
    nb = design.family == "negative_binomial" and design.family_spec.theta is None
    if nb:
        extra = np.array([np.log(nb_theta_start(design, beta0))])
    x0 = np.concatenate([theta0, beta0, extra])
    return x0, _Layout(theta0.size, beta0.size, ordinal, nb)


def _optimise(model: LaplaceModel, x0, layout: _Layout, opts: LaplaceOptions) -> Any:
    lo = lower_bounds(model.design.groupings)

    def objective(x):
        theta, beta, cuts = layout.unpack(x)
        if layout.nb:
            model.set_nb_theta(layout.nb_theta(x))
        dev = model.deviance(beta, theta, opts.n_agq, cuts)
        return dev if np.isfinite(dev) else 1e300

    bounds = Bounds(
        np.concatenate([lo, np.full(x0.size - lo.size, -np.inf)]), np.full(x0.size, np.inf)
    )

    def run(start, radius, budget):
        return minimize(
            objective,
            start,
            method="COBYQA",
            bounds=bounds,
            options={"maxfev": budget, "initial_tr_radius": radius, "final_tr_radius": 1e-7},
        )

    result = run(x0, 0.2, opts.max_evaluations)
    if layout.nb and result.success:  # the theta_nb direction is flat: polish from the end
        polished = run(result.x, 0.02, max(opts.max_evaluations - result.nfev, 50))
        polished.nfev += result.nfev
        if polished.fun <= result.fun:
            result = polished
    return result


def _family_parameters(model: LaplaceModel, layout: _Layout, x, theta, beta):
    """The estimated negative binomial theta and its standard error (empty otherwise);
    leaves the model at that theta."""
    if not layout.nb:
        return {}, {}
    nb = layout.nb_theta(x)
    model.set_nb_theta(nb)
    small = sum(g.n_levels * g.k for g in model.design.groupings) <= HESSIAN_MAX_Q
    return {"theta": nb}, {"theta": nb_theta_se(model, theta, beta, nb) if small else np.nan}


def _vcov(model: LaplaceModel, lap, layout: _Layout, theta, beta, cuts, n_agq: int):
    """lme4's RX vcov, or clmm's Hessian one for small ordinal models; and which."""
    small = sum(g.n_levels * g.k for g in model.design.groupings) <= HESSIAN_MAX_Q
    if layout.ordinal and small:
        return hessian_vcov(model, theta, beta, cuts, n_agq), "hessian"
    return model.fixed_vcov_at(lap), "RX"


def _sigma(model: LaplaceModel, lap) -> float:
    """Gamma and inverse Gaussian: lme4's ``sigma = sqrt((Pearson SS + |u|^2) / n)``, which
    scales the random effects' covariances and ``vcov`` (as its ``VarCorr`` and ``vcov``);
    1 for the other families."""
    if not model.response.has_dispersion:
        return 1.0
    ss = model.response.pearson_ss(lap.eta) + lap.u @ lap.u
    return float(np.sqrt(ss / model.design.nobs))


def fit_laplace(design: Design, options: LaplaceOptions | None = None) -> MixedLMResults:
    """Fit a binomial, Poisson or ordinal GLMM by the Laplace approximation (``n_agq = 1``,
    lme4's ``glmer`` default) or adaptive Gauss-Hermite quadrature (``n_agq > 1``, a single
    scalar term), optimising ``(theta, beta)`` jointly with COBYQA from the GLM fit and
    theta = 1.

    Standard errors: lme4's RX Schur complement (``vcov(use.hessian = FALSE)``), at fixed
    theta; for ordinal models ``ordinal::clmm``'s, from the Hessian over all parameters
    (:func:`hessian_vcov`), when the model is small.

    The log-likelihood is on the absolute scale (binomial coefficients included), as lme4's
    for ``nAGQ = 1``; for ``nAGQ > 1`` lme4 1.1-31 reports it relative to the saturated model
    (lme4 issues #161, #567), mixedtf does not.
    """
    require_random_terms(design)
    opts = options or LaplaceOptions()
    if opts.n_agq > 1:
        check_agq(design)
    t0 = time.perf_counter()
    model = LaplaceModel(design)
    x0, layout = _start(design, model)
    result = _optimise(model, x0, layout, opts)
    theta, beta, cuts = layout.unpack(result.x)
    lo = lower_bounds(design.groupings)
    theta = np.maximum(theta, lo)
    family_params, family_params_se = _family_parameters(model, layout, result.x, theta, beta)
    lap = model.fit_modes(beta, theta, cuts)  # once at the optimum: deviance, modes and vcov
    dev = model.deviance_at(lap, beta, theta, opts.n_agq)
    vcov, vcov_method = _vcov(model, lap, layout, theta, beta, cuts, opts.n_agq)
    sigma = _sigma(model, lap)
    vcov = sigma**2 * vcov
    info = FitInfo(
        method="laplace" if opts.n_agq == 1 else "agq",
        converged=bool(result.success),
        iterations=int(getattr(result, "nit", 0)),
        n_evaluations=int(result.nfev),
        wall_time=time.perf_counter() - t0,
        optimizer="COBYQA (scipy) over (theta, beta); PIRLS for the modes",
        message=str(result.message),
        link=design.family_spec.link,
        n_agq=opts.n_agq,
        loglik_method="laplace" if opts.n_agq == 1 else f"agq{opts.n_agq}",
        vcov_method=vcov_method,
    )
    warn_fit(info.warnings, theta, lo, bool(result.success), str(result.message))
    return MixedLMResults(
        design=design,
        method=info.method,
        beta=beta,
        beta_cov=vcov,
        theta=theta,
        theta_names=theta_names(design.groupings),
        sigma=sigma,
        covariances=[sigma**2 * T @ T.T for T in factors(theta, design.groupings)],
        modes=model.modes(lap, theta),
        loglik=-0.5 * dev,
        deviance=dev,
        fit_info=info,
        conditional_covariances=lambda: [
            sigma**2 * c for c in model.conditional_covariances(lap, theta)
        ],
        cutpoints=cuts,
        family_params=family_params,
        family_params_se=family_params_se,
    )
