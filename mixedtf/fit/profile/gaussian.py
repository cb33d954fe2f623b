r"""Profile confidence intervals of a linear mixed model, as lme4's
``confint(m, method = "profile")``.

Every parameter on lme4's scale -- each term's SDs and correlations, ``sigma``, the fixed
effects -- is held at a value ``c`` while the deviance is minimised over the others; the
interval is where the signed root of the deviance increase crosses ``+-z_{(1 + level) / 2}``
(see :mod:`mixedtf.fit.profile.path`).

The deviance over ``(sd, cor, sigma)`` is the ML deviance, not profiled over sigma (a REML
fit is refitted by ML first, as lme4's ``confint`` does); for a fixed effect ``beta_j = b`` the ML deviance adds
``(b - beta_hat_j)^2 / V_jj`` (``V = (R_X' R_X)^{-1}``) to the penalised residual sum of
squares and is minimised over theta (sigma profiled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as la
from scipy.optimize import Bounds, minimize
from scipy.stats import norm

from mixedtf.fit.exact.marginal import fit_exact
from mixedtf.fit.profile.path import bound, interval, minimise_holding, recorded, signed_root
from mixedtf.linalg.blocked import factorize, gaussian_deviance
from mixedtf.linalg.covariance import (
    from_sdcor,
    lower_bounds,
    sdcor_kinds,
    theta_of,
    to_sdcor,
)
from mixedtf.results.ddf import VarparModel

_OPTIMIZER = {"ftol": 1e-14, "gtol": 1e-9, "maxfun": 2000}


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
        return minimise_holding(self.deviance, k, value, start, self.lower, self.upper, _OPTIMIZER)

    def profile_beta(self, j: int, value: float, theta0: np.ndarray) -> tuple[float, np.ndarray]:
        """The ML deviance with ``beta_j = value``, minimised over theta (sigma profiled)."""
        lo = lower_bounds(self.groupings)

        def objective(theta):
            f = factorize(self.cp, np.maximum(theta, lo))
            if f is None:
                return np.inf
            rx_inv = la.solve_triangular(f.RX_lower, np.eye(self.p), lower=True)
            vjj = float(rx_inv[:, j] @ rx_inv[:, j])  # V_jj of V = RX^-T RX^-1
            r2 = f.pwrss() + (value - f.beta()[j]) ** 2 / vjj
            return gaussian_deviance(f.logdet_L(), r2, self.n) - self.cp.log_weights

        res = minimize(
            objective,
            theta0,
            method="L-BFGS-B",
            bounds=Bounds(lo, np.full(lo.size, np.inf)),
            options=_OPTIMIZER,
        )
        return float(res.fun), res.x


def profile_intervals(
    res: Any, level: float = 0.95, traces: dict[int, list] | None = None
) -> np.ndarray:
    """``[n_parameters, 2]`` bounds in lme4's ``confint`` order (see the module docstring).
    A REML fit is profiled by maximum likelihood, as lme4's ``confint`` does (its profile
    of a REML fit equals the ML fit's). ``traces``: filled with each parameter's visited
    ``(value, zeta)`` points, by parameter index."""
    if res.method == "reml":
        res = fit_exact(res.design, reml=False)
    pr = _Profiler(res)
    z = norm.ppf(0.5 + level / 2)
    traces = {} if traces is None else traces
    rows = []
    for k, kind in enumerate(pr.kinds):
        step = max(abs(pr.psi_hat[k]) * 0.1, 0.02 if kind == "cor" else 1e-3)
        trace = traces.setdefault(k, [])
        rows.append(
            interval(
                pr.profile_varpar, pr.psi_hat, pr.d_hat, k, z, step, pr.lower[k], pr.upper[k], trace
            )
        )
    beta, se = res.fixef().to_numpy(), res.bse().to_numpy()
    theta0 = res.theta.to_numpy()
    for j in range(beta.size):

        def zeta_b(c, j=j):
            return signed_root(pr.profile_beta(j, c, theta0)[0], pr.d_hat, c, beta[j])

        zeta_b = recorded(zeta_b, traces.setdefault(len(pr.kinds) + j, []))
        rows.append(
            (bound(zeta_b, beta[j], -z, se[j], -np.inf), bound(zeta_b, beta[j], z, se[j], np.inf))
        )
    return np.array(rows)
