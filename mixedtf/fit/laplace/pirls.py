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

from mixedtf.design import Design
from mixedtf.fit.laplace.agq import agq_deviance
from mixedtf.fit.response import GLMResponse, OrdinalResponse, response_of
from mixedtf.linalg.covariance import factors
from mixedtf.linalg.pirls_factor import PIRLSFactor
from mixedtf.linalg.sparse import lambda_matrix, z_matrix

MAX_PIRLS = 50


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
    (beta, theta) and, for ordinal models, the cutpoints. The link is the design's."""

    def __init__(self, design: Design) -> None:
        self.design = design
        self.response: GLMResponse | OrdinalResponse = response_of(design)
        self.Z = z_matrix(design.groupings, design.nobs)
        self._u0 = np.zeros(self.Z.shape[1])

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
        """PIRLS for the conditional modes at fixed ``beta, theta`` (and ordinal ``cuts``)."""
        d, r = self.design, self.response
        A = (self.Z @ self.relative_factor(theta)).tocsr()
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
