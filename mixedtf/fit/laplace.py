r"""GLMM log-likelihood by the Laplace approximation and adaptive Gauss-Hermite quadrature.

With spherical random effects ``b = Lambda_theta u``, ``u ~ N(0, I)``, lme4's Laplace
deviance (``glmer``'s default ``nAGQ = 1``) is

.. math::

    -2\ell(\beta, \theta) \approx -2 \log p(y \mid \hat u) + \|\hat u\|^2 + \log|H|,
    \qquad H = A' W A + I, \quad A = Z \Lambda_\theta,

at the conditional mode ``u_hat``, found by penalised iteratively reweighted least squares
(Fisher scoring with step halving); ``W`` holds the working weights
``(d mu / d eta)^2 / Var(y)``. ``log p`` is the full log-likelihood, binomial coefficients
included, as lme4's deviance. For a single scalar random term the integral factorises by
level, and adaptive Gauss-Hermite quadrature (``nAGQ > 1``) refines each level's
one-dimensional integral around its mode.

This module is plain numpy/scipy: ``Z`` is a sparse matrix assembled from the gather specs
and ``H`` is factored in blocks as the exact Gaussian path does
(:mod:`mixedtf.fit.pirls_factor`): the first term level by level, the rest densely.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, minimize
from scipy.special import ndtri

from mixedtf.design import Design
from mixedtf.design.response import start_cutpoints
from mixedtf.errors import ConvergenceWarning, SingularFitWarning, warn
from mixedtf.fit.covariance import factors, lower_bounds, theta_names
from mixedtf.fit.glm_response import GLMResponse, OrdinalResponse, response_of
from mixedtf.fit.marginal import SINGULAR_TOL
from mixedtf.fit.pirls_factor import PIRLSFactor
from mixedtf.results.results import FitInfo, MixedLMResults

MAX_PIRLS = 50
HESSIAN_MAX_Q = 500  # ordinal fits up to this many random effects get clmm's Hessian vcov


def random_design(design: Design) -> sp.csr_matrix:
    """Sparse ``Z`` (``n x q``) from the gather specs: column ``offset_j + code * k + a``."""
    n = design.nobs
    blocks = []
    for g in design.groupings:
        rows = np.repeat(np.arange(n), g.k)
        cols = (g.codes[:, None] * g.k + np.arange(g.k)[None, :]).ravel()
        blocks.append(sp.csr_matrix((g.z.ravel(), (rows, cols)), shape=(n, g.n_levels * g.k)))
    return sp.hstack(blocks, format="csr")


def relative_factor(design: Design, theta: np.ndarray) -> sp.csr_matrix:
    """Block-diagonal ``Lambda_theta``: per grouping ``I_L (x) T_j``."""
    return sp.block_diag(
        [
            sp.kron(sp.identity(g.n_levels), T)
            for g, T in zip(design.groupings, factors(theta, design.groupings), strict=True)
        ],
        format="csr",
    )


@dataclass(frozen=True)
class LaplaceFit:
    """The Laplace deviance at ``(beta, theta)`` and what produced it."""

    deviance: float  # -2 log-likelihood (Laplace)
    u: np.ndarray  # conditional modes of the spherical effects
    A: sp.csr_matrix  # Z Lambda_theta
    H: PIRLSFactor  # A'WA + I at the mode, factored in blocks
    W: np.ndarray  # working weights at the mode
    eta: np.ndarray
    iterations: int
    cuts: np.ndarray | None = None  # ordinal cutpoints


class LaplaceModel:
    """Laplace (and AGQ) deviance of a binomial, Poisson or ordinal GLMM as a function of
    (beta, theta) and, for ordinal models, the cutpoints."""

    def __init__(self, design: Design, link: str | None = None) -> None:
        self.design = design
        self.response: GLMResponse | OrdinalResponse = response_of(design, link)
        self.Z = random_design(design)
        self._u0 = np.zeros(self.Z.shape[1])

    def _factor(self, A, w) -> PIRLSFactor:
        g = self.design.groupings[0]
        return PIRLSFactor.build(A, w, g.n_levels * g.k, g.k)

    def fit_modes(
        self, beta: np.ndarray, theta: np.ndarray, cuts: np.ndarray | None = None, tol=1e-10
    ) -> LaplaceFit:
        """PIRLS for the conditional modes at fixed ``beta, theta`` (and ordinal ``cuts``)."""
        d, r = self.design, self.response
        A = (self.Z @ relative_factor(d, theta)).tocsr()
        fixed = d.X @ beta + d.offset
        u = self._u0.copy()

        def objective(u):
            eta = fixed + A @ u
            return -2.0 * r.loglik(eta, cuts).sum() + u @ u, eta

        obj, eta = objective(u)
        iterations = 0
        for iterations in range(1, MAX_PIRLS + 1):  # noqa: B007 -- reported below
            score, w = r.score_and_weights(eta, cuts)
            step = self._factor(A, w).solve(A.T @ score - u)
            for _ in range(30):  # step halving
                new_obj, new_eta = objective(u + step)
                if new_obj <= obj + 1e-12 * abs(obj):
                    break
                step = step / 2.0
            u, converged = u + step, obj - new_obj < tol * (1.0 + abs(new_obj))
            obj, eta = new_obj, new_eta
            if converged:
                break
        self._u0 = u  # warm start for the next (beta, theta)
        _, w = r.score_and_weights(eta, cuts)
        H = self._factor(A, w)
        return LaplaceFit(obj + H.logdet, u, A, H, w, eta, iterations, cuts)

    def deviance(self, beta, theta, n_agq: int = 1, cuts=None) -> float:
        """``-2`` log-likelihood: Laplace (``n_agq = 1``) or adaptive Gauss-Hermite with
        ``n_agq`` nodes (a single scalar random-effects term only)."""
        return self.deviance_at(self.fit_modes(beta, theta, cuts), beta, theta, n_agq)

    def deviance_at(self, lap: LaplaceFit, beta, theta, n_agq: int = 1) -> float:
        """:meth:`deviance` from the modes ``lap`` already found at ``(beta, theta)``."""
        if n_agq == 1:
            return lap.deviance
        check_agq(self.design)
        d, r = self.design, self.response
        g = d.groupings[0]
        lam = float(theta[0])
        fixed = d.X @ beta + d.offset
        u_hat = lap.u
        h = lap.H.D_diag  # per level: A'WA + 1 is diagonal for one scalar term
        x, w = np.polynomial.hermite.hermgauss(n_agq)
        scale = np.sqrt(2.0 / h)
        per_node = np.empty((n_agq, g.n_levels))
        for m in range(n_agq):
            u = u_hat + scale * x[m]
            eta = fixed + g.z[:, 0] * lam * u[g.codes]
            ll = np.bincount(g.codes, weights=r.loglik(eta, lap.cuts), minlength=g.n_levels)
            per_node[m] = ll - 0.5 * u**2 - 0.5 * np.log(2 * np.pi) + x[m] ** 2 + np.log(w[m])
        top = per_node.max(axis=0)
        log_int = top + np.log(np.exp(per_node - top).sum(axis=0)) + np.log(scale)
        return -2.0 * log_int.sum()

    def fixed_vcov(self, beta, theta, cuts=None) -> np.ndarray:
        """lme4's ``vcov`` of a GLMM: the inverse of ``X'WX - X'WA H^{-1} A'WX`` at the modes
        (ordinal: of ``(beta, cutpoints)``, with ``X`` the Jacobian of the row predictors)."""
        return self.fixed_vcov_at(self.fit_modes(beta, theta, cuts))

    def fixed_vcov_at(self, lap: LaplaceFit) -> np.ndarray:
        """:meth:`fixed_vcov` from the modes ``lap`` already found."""
        info, R = self.response.fixed_information(lap.eta, self.design.X, lap.cuts)
        AtR = lap.A.T @ R
        schur = info - AtR.T @ lap.H.solve(AtR)
        return np.linalg.inv(schur)


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
    return np.linalg.inv(H)[nt:, nt:]


def check_agq(design: Design) -> None:
    """Adaptive Gauss-Hermite quadrature here needs one scalar random term."""
    if len(design.groupings) != 1 or design.groupings[0].k != 1:
        raise ValueError(
            "adaptive Gauss-Hermite quadrature (n_agq > 1) needs a single scalar random term "
            f"such as (1 | g); this model has {[g.name for g in design.groupings]} with "
            f"{[g.k for g in design.groupings]} columns. Use n_agq=1 (Laplace)."
        )


def glm_start(design: Design, link: str | None = None) -> np.ndarray:
    """Fixed effects of the GLM without random effects (IRLS), the optimiser's start
    (ordinal: zeros, the cutpoints from the marginal proportions)."""
    d, r = design, response_of(design, link)
    if isinstance(r, OrdinalResponse):
        return np.zeros(d.X.shape[1])
    if r.family == "binomial":
        p = np.clip((r.y + 0.5) / (r.trials + 1.0), 1e-3, 1 - 1e-3)
        eta0 = np.log(p / (1 - p)) if r.link == "logit" else ndtri(p)
    else:
        eta0 = np.log(r.y + 0.5)
    beta = np.linalg.lstsq(d.X, eta0 - d.offset, rcond=None)[0]
    for _ in range(25):
        eta = d.X @ beta + d.offset
        score, w = r.score_and_weights(eta)
        step = np.linalg.solve(d.X.T @ (d.X * w[:, None]), d.X.T @ score)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def ascending(x: np.ndarray) -> np.ndarray:
    """Ordered cutpoints from free values: ``c_1 = x_1``, ``c_k = c_{k-1} + exp(x_k)``."""
    return np.cumsum(np.concatenate([x[:1], np.exp(x[1:])]))


def ascending_inverse(c: np.ndarray) -> np.ndarray:
    return np.concatenate([c[:1], np.log(np.diff(c))])


def fit_laplace(
    design: Design, n_agq: int = 1, link: str | None = None, max_evaluations: int = 2000
):
    """Fit a binomial or Poisson GLMM by the Laplace approximation (``n_agq = 1``, lme4's
    ``glmer`` default) or adaptive Gauss-Hermite quadrature (``n_agq > 1``, a single scalar
    term), optimising ``(theta, beta)`` jointly with COBYQA from the GLM fit and theta = 1.

    Standard errors: lme4's RX Schur complement (``vcov(use.hessian = FALSE)``), at fixed
    theta; for ordinal models ``ordinal::clmm``'s, from the Hessian over all parameters
    (:func:`hessian_vcov`), when the model is small.

    The log-likelihood is on the absolute scale (binomial coefficients included), as lme4's
    for ``nAGQ = 1``; for ``nAGQ > 1`` lme4 1.1-31 reports it relative to the saturated model
    (lme4 issues #161, #567), mixedtf does not.
    """
    if not design.groupings:
        raise ValueError("the formula has no random-effects term such as (1 | g); use a GLM.")
    if int(n_agq) < 1:
        raise ValueError(f"n_agq must be a positive integer; got {n_agq!r}.")
    t0 = time.perf_counter()
    model = LaplaceModel(design, link)
    if n_agq > 1:
        check_agq(design)
    lo = lower_bounds(design.groupings)
    theta0 = np.where(np.isfinite(lo), 1.0, 0.0)
    beta0 = glm_start(design, link)
    nt, p = theta0.size, beta0.size
    ordinal = isinstance(model.response, OrdinalResponse)
    cuts0 = start_cutpoints(design.y) if ordinal else np.zeros(0)
    x0 = np.concatenate([theta0, beta0, ascending_inverse(cuts0) if ordinal else cuts0])

    def unpack(x):
        return x[:nt], x[nt : nt + p], ascending(x[nt + p :]) if ordinal else None

    def objective(x):
        theta, beta, cuts = unpack(x)
        dev = model.deviance(beta, theta, n_agq, cuts)
        return dev if np.isfinite(dev) else 1e300

    bounds = Bounds(np.concatenate([lo, np.full(x0.size - nt, -np.inf)]), np.full(x0.size, np.inf))
    result = minimize(
        objective,
        x0,
        method="COBYQA",
        bounds=bounds,
        options={"maxfev": max_evaluations, "initial_tr_radius": 0.2, "final_tr_radius": 1e-7},
    )
    theta, beta, cuts = unpack(result.x)
    theta = np.maximum(theta, lo)
    lap = model.fit_modes(beta, theta, cuts)  # once at the optimum: deviance, modes and vcov
    dev = model.deviance_at(lap, beta, theta, n_agq)
    Ts = factors(theta, design.groupings)
    b = relative_factor(design, theta) @ lap.u
    modes, at = [], 0
    for g in design.groupings:
        modes.append(b[at : at + g.n_levels * g.k].reshape(g.n_levels, g.k))
        at += g.n_levels * g.k
    extra: dict = {"warnings": [], "n_agq": int(n_agq), "link": model.response.link}
    info = FitInfo(
        method="laplace" if n_agq == 1 else f"agq{n_agq}",
        converged=bool(result.success),
        iterations=int(getattr(result, "nit", 0)),
        n_evaluations=int(result.nfev),
        wall_time=time.perf_counter() - t0,
        optimizer="COBYQA (scipy) over (theta, beta); PIRLS for the modes",
        message=str(result.message),
        extra=extra,
    )
    if not result.success:
        warn(
            extra["warnings"],
            f"the optimiser did not converge: {result.message}",
            ConvergenceWarning,
        )
    bounded = np.isfinite(lo)
    if np.any(theta[bounded] < SINGULAR_TOL):
        warn(
            extra["warnings"],
            "boundary (singular) fit: a variance component is estimated as zero (lme4's isSingular).",
            SingularFitWarning,
        )
    if ordinal and sum(g.n_levels * g.k for g in design.groupings) <= HESSIAN_MAX_Q:
        vcov, extra["vcov"] = hessian_vcov(model, theta, beta, cuts, n_agq), "hessian"
    else:
        vcov, extra["vcov"] = model.fixed_vcov_at(lap), "RX"
    return MixedLMResults(
        design=design,
        method="laplace" if n_agq == 1 else "agq",
        beta=beta,
        beta_cov=vcov,
        theta=theta,
        theta_names=theta_names(design.groupings),
        sigma=1.0,
        covariances=[T @ T.T for T in Ts],
        modes=modes,
        loglik=-0.5 * dev,
        deviance=dev,
        fit_info=info,
        cutpoints=cuts,
    )
