r"""Conditional modes by penalised iteratively reweighted least squares, and the Laplace
deviance and ``vcov`` at them (plain numpy/scipy).

With spherical random effects ``b = Lambda_theta u``, ``u ~ N(0, I)``, lme4's Laplace
deviance (``glmer``'s default ``nAGQ = 1``) is

.. math::

    -2\ell(\beta, \theta) \approx -2 \log p(y \mid \hat u) + \|\hat u\|^2 + \log|H|,
    \qquad H = A' W A + I, \quad A = Z \Lambda_\theta,

at the conditional mode ``u_hat``, found by PIRLS (Fisher scoring with step halving);
``W`` holds the working weights ``(d mu / d eta)^2 / Var(y)``. ``log p`` is the full
log-likelihood, binomial coefficients included, as lme4's deviance. ``H`` is factored in
blocks as the exact Gaussian path does (:mod:`mixedtf.linalg.pirls_factor`): the first
term level by level, the rest densely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import lsqr

from mixedtf.design import Design
from mixedtf.fit.laplace.agq import agq_deviance
from mixedtf.fit.response import GLMResponse, OrdinalResponse, response_of
from mixedtf.linalg.covariance import factors
from mixedtf.linalg.pirls_factor import PIRLSFactor
from mixedtf.linalg.sparse import lambda_matrix, z_matrix

MAX_PIRLS = 50
MAX_RECENT = 16  # modes kept as starts for points where the last mode is out of range


@dataclass(frozen=True)
class LaplaceFit:
    """The Laplace deviance at ``(beta, theta)`` and what produced it."""

    deviance: float  # -2 log-likelihood (Laplace)
    u: np.ndarray  # conditional modes of the spherical effects
    A: sp.csr_matrix  # Z Lambda_theta
    H: PIRLSFactor | None  # A'WA + I at the mode, factored in blocks (None: no mode found)
    eta: np.ndarray
    iterations: int
    cuts: np.ndarray | None = None  # ordinal cutpoints


class LaplaceModel:
    """Laplace (and AGQ) deviance of a binomial, Poisson or ordinal GLMM as a function of
    (beta, theta) and, for ordinal models, the cutpoints. The link is the design's."""

    def __init__(self, design: Design) -> None:
        self.design = design
        self._base = response_of(design)
        self.response: GLMResponse | OrdinalResponse = self._base
        self.Z = z_matrix(design.groupings, design.nobs)
        self._u0 = np.zeros(self.Z.shape[1])
        self._recent: dict[bytes, np.ndarray] = {}  # modes found, by (beta, theta, cuts)

    def set_nb_theta(self, nb_theta: float) -> None:
        """Evaluate the negative binomial model at ``theta_nb`` from now on."""
        self.response = self._base.with_nb_theta(nb_theta)

    def relative_factor(self, theta: np.ndarray) -> sp.csr_matrix:
        """``Lambda_theta``."""
        gs = self.design.groupings
        return lambda_matrix(factors(theta, gs), gs)

    def _factor(self, A, w) -> PIRLSFactor:
        g = self.design.groupings[0]
        return PIRLSFactor.build(A, w, g.n_levels * g.k, g.k)

    def fit_modes(
        self, beta: np.ndarray, theta: np.ndarray, cuts: np.ndarray | None = None, tol=1e-10
    ) -> LaplaceFit:
        """PIRLS for the conditional modes at fixed ``beta, theta`` (and ordinal ``cuts``):
        Fisher scoring with step halving while the penalised deviance does not fall or the
        mean leaves its range. Where no valid mode is found -- a mean out of range at every
        step, a factor that is not positive definite -- the deviance is ``inf``, which the
        optimiser treats as a step too far, not as the end of the fit."""
        d, r = self.design, self.response
        A = (self.Z @ self.relative_factor(theta)).tocsr()
        fixed = d.X @ beta + d.offset

        def objective(u):
            eta = fixed + A @ u
            with np.errstate(over="ignore", invalid="ignore"):
                value = -2.0 * r.loglik(eta, cuts).sum() + u @ u
            return (value if np.isfinite(value) else np.inf), eta

        extra = [getattr(r, "nb_theta", 0.0)] if cuts is None else cuts
        key = np.concatenate([beta, theta, extra]).tobytes()
        # start from this point's own mode, the last one, the recent ones, or zero: the first
        # whose means are in range (a positive-eta link has no valid mode path from anywhere)
        starts = [self._recent.get(key), self._u0, *reversed(self._recent.values())]
        for u in [s for s in starts if s is not None] + [np.zeros_like(self._u0)]:
            obj, eta = objective(u)
            if np.isfinite(obj):
                break
        else:  # no start has every mean in range: move the effects until they do
            restored = self._into_range(A, fixed, u)
            if restored is not None:
                u = restored
                obj, eta = objective(u)
        iterations = 0
        for iterations in range(1, MAX_PIRLS + 1):  # noqa: B007 -- reported below
            if not np.isfinite(obj):
                break
            step = self._newton_step(A, u, eta, cuts)
            if step is None:
                break
            for _ in range(30):  # step halving
                new_obj, new_eta = objective(u + step)
                if new_obj <= obj + 1e-12 * abs(obj):
                    break
                step = step / 2.0
            else:
                break  # no step lowers the deviance: u is the mode to working precision
            u, converged = u + step, obj - new_obj < tol * (1.0 + abs(new_obj))
            obj, eta = new_obj, new_eta
            if converged:
                break
        H = self._weighted_factor(A, eta, cuts) if np.isfinite(obj) else None
        if H is None:
            return LaplaceFit(np.inf, u, A, None, eta, iterations, cuts)
        self._u0 = u  # warm start for the next (beta, theta)
        self._recent[key] = u
        if len(self._recent) > MAX_RECENT:
            self._recent.pop(next(iter(self._recent)))
        # lme4's Laplace deviance: log|H| + |u|^2 + the family's aic() at the mode (for the
        # families without a dispersion, -2 log p(y | u): the PIRLS objective's own term)
        deviance = H.logdet + u @ u + r.conditional_deviance(eta, cuts)
        return LaplaceFit(deviance, u, A, H, eta, iterations, cuts)

    def _into_range(self, A, fixed, u) -> np.ndarray | None:
        """The least change of ``u`` that brings every ``eta`` inside the response's range
        (with a margin), by least squares on the rows outside it; None if it cannot."""
        range_of = getattr(self.response, "eta_range", None)
        if range_of is None:
            return None
        lo, hi = range_of()
        for _ in range(20):
            eta = fixed + A @ u
            margin = 0.05 * max(float(np.median(np.abs(eta))), 1e-3)
            low, high = eta <= lo + 0.5 * margin, eta >= hi - 0.5 * margin
            bad = low | high
            if not bad.any():
                return u
            target = np.where(low, lo + margin, hi - margin)[bad]
            u = u + lsqr(A[bad], target - eta[bad], atol=1e-10, btol=1e-10)[0]
        return None

    def _newton_step(self, A, u, eta, cuts) -> np.ndarray | None:
        with np.errstate(over="ignore", invalid="ignore"):
            score, w = self.response.score_and_weights(eta, cuts)
        if not (np.all(np.isfinite(score)) and np.all(np.isfinite(w))):
            return None
        try:
            return self._factor(A, w).solve(A.T @ score - u)
        except np.linalg.LinAlgError:
            return None

    def _weighted_factor(self, A, eta, cuts) -> PIRLSFactor | None:
        """``A'WA + I`` factored at ``eta``, or None when it cannot be."""
        with np.errstate(over="ignore", invalid="ignore"):
            _, w = self.response.score_and_weights(eta, cuts)
        if not np.all(np.isfinite(w)):
            return None
        try:
            H = self._factor(A, w)
        except np.linalg.LinAlgError:
            return None
        return H if np.isfinite(H.logdet) else None

    def deviance(self, beta, theta, n_agq: int = 1, cuts=None) -> float:
        """``-2`` log-likelihood: Laplace (``n_agq = 1``) or adaptive Gauss-Hermite with
        ``n_agq`` nodes (a single scalar random-effects term only)."""
        return self.deviance_at(self.fit_modes(beta, theta, cuts), beta, theta, n_agq)

    def deviance_at(self, lap: LaplaceFit, beta, theta, n_agq: int = 1) -> float:
        """:meth:`deviance` from the modes ``lap`` already found at ``(beta, theta)``."""
        if n_agq == 1 or not np.isfinite(lap.deviance):
            return lap.deviance
        d = self.design
        return agq_deviance(
            d,
            lambda eta: self.response.loglik(eta, lap.cuts),
            d.X @ beta + d.offset,
            float(theta[0]),
            lap.u,
            lap.H.D_diag,  # per level: A'WA + 1 is diagonal for one scalar term
            n_agq,
        )

    def modes(self, lap: LaplaceFit, theta: np.ndarray) -> list[np.ndarray]:
        """The conditional modes ``b = Lambda u`` per grouping, ``n_levels x k`` each."""
        b = self.relative_factor(theta) @ lap.u
        out, at = [], 0
        for g in self.design.groupings:
            out.append(b[at : at + g.n_levels * g.k].reshape(g.n_levels, g.k))
            at += g.n_levels * g.k
        return out

    def conditional_covariances(self, lap: LaplaceFit, theta: np.ndarray) -> list[np.ndarray]:
        """lme4's ``condVar``: per grouping the ``n_levels x k x k`` diagonal blocks of
        ``Lambda H^{-1} Lambda'`` at the modes (``H = A'WA + I``)."""
        q = lap.u.size
        cov_b = self.relative_factor(theta) @ lap.H.solve(np.eye(q))
        cov_b = (self.relative_factor(theta) @ cov_b.T).T
        out, at = [], 0
        for g in self.design.groupings:
            size = g.n_levels * g.k
            block = cov_b[at : at + size, at : at + size].reshape(g.n_levels, g.k, g.n_levels, g.k)
            out.append(np.einsum("lalb->lab", block))
            at += size
        return out

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
