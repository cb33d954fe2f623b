r"""Profile confidence intervals of a linear mixed model, as lme4's
``confint(m, method = "profile")``.

Every parameter on lme4's scale -- each term's SDs and correlations, ``sigma``, the fixed
effects -- is held at a value ``c`` while the deviance is minimised over the others; the
interval is where the signed root ``zeta(c) = sign(c - c_hat) sqrt(D(c) - D_hat)`` crosses
``+-z_{(1 + level) / 2}``, found by root finding (lme4 interpolates ``zeta`` with a spline;
here every bound is solved for directly). A bound that the parameter's range reaches first
(an SD of 0, a correlation of +-1) is that end of the range, as lme4's.

The deviance over ``(sd, cor, sigma)`` is the ML deviance, not profiled over sigma (a REML
fit is refitted by ML first, as lme4's ``confint`` does); for a fixed effect ``beta_j = b`` the ML deviance adds
``(b - beta_hat_j)^2 / V_jj`` (``V = (R_X' R_X)^{-1}``) to the penalised residual sum of
squares and is minimised over theta (sigma profiled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as la
from scipy.optimize import Bounds, brentq, minimize
from scipy.stats import norm

from mixedtf.fit.exact.marginal import fit_exact
from mixedtf.linalg.blocked import factorize, gaussian_deviance
from mixedtf.linalg.covariance import (
    from_sdcor,
    lower_bounds,
    sdcor_kinds,
    theta_of,
    to_sdcor,
)
from mixedtf.results.ddf import VarparModel


class _Profiler:
    """The deviance as a function of lme4's parameters of one exact Gaussian fit."""

    def __init__(self, res: Any) -> None:
        self.model = VarparModel(res)  # res is an ML fit: the ML deviance
        self.cp = self.model.cp
        self.n, self.p = self.cp.n, self.cp.p
        self.groupings = res.design.groupings
        self.psi_hat = np.r_[to_sdcor(res.covariances), res.sigma]
        kinds = [*sdcor_kinds(self.groupings), "sigma"]
        self.lower = np.array([{"sd": 0.0, "cor": -1.0, "sigma": 1e-8}[k] for k in kinds])
        self.upper = np.array([{"sd": np.inf, "cor": 1.0, "sigma": np.inf}[k] for k in kinds])
        self.kinds = kinds
        self.d_hat = self.deviance(self.psi_hat)

    def deviance(self, psi: np.ndarray) -> float:
        """The ML deviance (not profiled over sigma) at SDs, correlations and sigma."""
        try:
            theta = theta_of(from_sdcor(psi[:-1], self.groupings), psi[-1] ** 2)
        except ValueError:  # correlations that make no covariance matrix
            return np.inf
        return self.model.deviance(np.r_[theta, psi[-1]])

    def profile_varpar(self, k: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """The deviance minimised over every variance parameter but ``k`` (held at ``value``)."""
        free = np.arange(self.psi_hat.size) != k

        def objective(x):
            psi = start.copy()
            psi[free], psi[k] = x, value
            return self.deviance(psi)

        x0 = np.clip(start[free], self.lower[free], self.upper[free])
        if x0.size == 0:
            return objective(x0), start
        res = minimize(
            objective,
            x0,
            method="L-BFGS-B",
            bounds=Bounds(self.lower[free], self.upper[free]),
            options={"ftol": 1e-14, "gtol": 1e-9, "maxfun": 2000},
        )
        psi = start.copy()
        psi[free], psi[k] = res.x, value
        return float(res.fun), psi

    def profile_beta(self, j: int, value: float, theta0: np.ndarray) -> tuple[float, np.ndarray]:
        """The ML deviance with ``beta_j = value``, minimised over theta (sigma profiled)."""
        lo = lower_bounds(self.groupings)

        def objective(theta):
            f = factorize(self.cp, np.maximum(theta, lo))
            if f is None:
                return np.inf
            rx_inv = la.solve_triangular(f.RX_lower, np.eye(self.p), lower=True)
            vjj = float((rx_inv.T @ rx_inv)[j, j])
            r2 = f.pwrss() + (value - f.beta()[j]) ** 2 / vjj
            return gaussian_deviance(f.logdet_L(), r2, self.n) - self.cp.log_weights

        res = minimize(
            objective,
            theta0,
            method="L-BFGS-B",
            bounds=Bounds(lo, np.full(lo.size, np.inf)),
            options={"ftol": 1e-14, "gtol": 1e-9, "maxfun": 2000},
        )
        return float(res.fun), res.x


def _zeta(d: float, d_hat: float, value: float, centre: float) -> float:
    return float(np.sign(value - centre) * np.sqrt(max(d - d_hat, 0.0)))


def _bound(zeta, centre: float, target: float, step: float, limit: float) -> float:
    """Where ``zeta`` reaches ``target`` walking from ``centre`` towards ``limit``."""
    direction = np.sign(target)
    a = centre
    for _ in range(60):
        b = a + direction * step
        if (direction > 0 and b >= limit) or (direction < 0 and b <= limit):
            if abs(zeta(limit)) < abs(target):
                return limit
            b = limit
        z = zeta(b)
        if abs(z) >= abs(target):
            return brentq(lambda c: zeta(c) - target, a, b, xtol=1e-10 * max(1.0, abs(b)))
        a = b
        step *= 1.6
    return np.nan


def profile_intervals(res: Any, level: float = 0.95) -> np.ndarray:
    """``[n_parameters, 2]`` bounds in lme4's ``confint`` order (see the module docstring).
    A REML fit is profiled by maximum likelihood, as lme4's ``confint`` does (its profile
    of a REML fit equals the ML fit's)."""
    if res.method == "reml":
        res = fit_exact(res.design, reml=False)
    pr = _Profiler(res)
    z = norm.ppf(0.5 + level / 2)
    rows = []
    for k, kind in enumerate(pr.kinds):
        centre = pr.psi_hat[k]
        cache: dict[float, np.ndarray] = {}

        def zeta(c, k=k, centre=centre, cache=cache):
            near = min(cache, key=lambda v: abs(v - c)) if cache else None
            start = pr.psi_hat if near is None else cache[near]
            d, psi = pr.profile_varpar(k, c, start)
            cache[c] = psi
            return _zeta(d, pr.d_hat, c, centre)

        scale = max(abs(centre) * 0.1, 0.02 if kind == "cor" else 1e-3)
        lo = _bound(zeta, centre, -z, scale, pr.lower[k])
        hi = _bound(zeta, centre, z, scale, pr.upper[k])
        rows.append((lo, hi))
    beta, se = res.fixef().to_numpy(), res.bse().to_numpy()
    theta0 = res.theta.to_numpy()
    for j in range(beta.size):

        def zeta_b(c, j=j):
            return _zeta(pr.profile_beta(j, c, theta0)[0], pr.d_hat, c, beta[j])

        rows.append(
            (_bound(zeta_b, beta[j], -z, se[j], -np.inf), _bound(zeta_b, beta[j], z, se[j], np.inf))
        )
    return np.array(rows)
