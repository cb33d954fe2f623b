r"""Kenward-Roger: the small-sample adjusted covariance of the fixed effects and the
scaled F test with its denominator df, as ``pbkrtest`` (``vcovAdj``, ``KRmodcomp``).

With the marginal covariance ``Sigma = sum_r phi_r G_r`` over the covariance components
``phi`` (each term's variances and covariances, then sigma^2), ``Phi = (X' Sigma^{-1} X)^{-1}``,
``P_r = -X' Sigma^{-1} G_r Sigma^{-1} X``, ``Q_rs = X' Sigma^{-1} G_r Sigma^{-1} G_s
Sigma^{-1} X`` and ``W`` the inverse of REML's expected information of ``phi``:

.. math:: \Phi_A = \Phi + 2 \Phi \Big(\sum_{rs} W_{rs} (Q_{rs} - P_r \Phi P_s)\Big) \Phi,

and for a hypothesis ``L beta = 0`` of rank ``q`` the F statistic and df of Kenward and
Roger (1997), as pbkrtest computes them. Dense in the rows (``n x n``): for models of up to
``MAX_ROWS`` observations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mixedtf.errors import OptionError

MAX_ROWS = 5000


def _components(res: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """The ``G_r`` and ``phi_r`` of the marginal covariance."""
    d = res.design
    n = d.nobs
    G, phi = [], []
    for g, cov in zip(d.groupings, res.covariances, strict=True):
        onehot = np.zeros((n, g.n_levels))
        onehot[np.arange(n), g.codes] = 1.0
        M = [onehot * g.z[:, [a]] for a in range(g.k)]  # n x L per column
        for c in range(g.k):
            for r in range(c, g.k):
                block = M[r] @ M[c].T
                G.append(block if r == c else block + block.T)
                phi.append(cov[r, c])
    w = d.prior_weights
    G.append(np.eye(n) if w is None else np.diag(1.0 / w))
    phi.append(res.sigma**2)
    return G, np.array(phi)


class KenwardRoger:
    """pbkrtest's quantities at a linear mixed model's estimates."""

    def __init__(self, res: Any) -> None:
        d = res.design
        if d.family != "gaussian":
            raise OptionError(f"Kenward-Roger is for linear mixed models; family is {d.family!r}.")
        if d.nobs > MAX_ROWS:
            raise OptionError(
                f"Kenward-Roger here forms dense n x n matrices; this model has {d.nobs} rows "
                f"(at most {MAX_ROWS}). Use ddf='satterthwaite'."
            )
        G, phi = _components(res)
        X = d.X
        Sigma = sum(p * g for p, g in zip(phi, G, strict=True))
        Si = np.linalg.inv(Sigma)
        SiX = Si @ X
        Phi = np.linalg.inv(X.T @ SiX)
        P_sigma = Si - SiX @ Phi @ SiX.T
        GSiX = [g @ SiX for g in G]
        self.P = [-(SiX.T @ gs) for gs in GSiX]
        PG = [P_sigma @ g for g in G]
        info = np.array([[0.5 * np.sum(a * b.T) for b in PG] for a in PG])
        self.W = np.linalg.inv(info)
        R = len(G)
        SiGSiX = [Si @ gs for gs in GSiX]  # one n x n product per component, not per pair
        U = np.zeros_like(Phi)
        for r in range(R):
            for s in range(R):
                Q = GSiX[r].T @ SiGSiX[s]
                U += self.W[r, s] * (Q - self.P[r] @ Phi @ self.P[s])
        self.Phi = Phi
        self.Phi_adjusted = Phi + 2.0 * Phi @ U @ Phi
        self.beta = res.fixef().to_numpy()

    def f_test(self, L: np.ndarray) -> tuple[float, int, float, float]:
        """``(F, NumDF, DenDF, scaling)`` of ``L beta = 0``, as pbkrtest's ``KRmodcomp``."""
        L = np.atleast_2d(L)
        q = int(np.linalg.matrix_rank(L))
        Phi = self.Phi
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        TP = [Theta @ Phi @ p @ Phi for p in self.P]
        traces = np.array([np.trace(t) for t in TP])
        A1 = float(traces @ self.W @ traces)
        A2 = float(
            sum(
                self.W[r, s] * np.sum(TP[r] * TP[s].T)
                for r in range(len(TP))
                for s in range(len(TP))
            )
        )
        B = (A1 + 6.0 * A2) / (2.0 * q)
        g = ((q + 1.0) * A1 - (q + 4.0) * A2) / ((q + 2.0) * A2)
        denom = 3.0 * q + 2.0 * (1.0 - g)
        c1, c2, c3 = g / denom, (q - g) / denom, (q + 2.0 - g) / denom
        E = 1.0 / (1.0 - A2 / q)
        V = 2.0 / q * (1.0 + c1 * B) / ((1.0 - c2 * B) ** 2 * (1.0 - c3 * B))
        rho = V / (2.0 * E**2)
        ddf = 4.0 + (q + 2.0) / (q * rho - 1.0)
        scaling = ddf / (E * (ddf - 2.0))
        Lb = L @ self.beta
        F_u = float(Lb @ np.linalg.solve(L @ self.Phi_adjusted @ L.T, Lb)) / q
        return scaling * F_u, q, float(ddf), float(scaling)


def kenward_roger_table(res: Any) -> pd.DataFrame:
    """Per fixed effect: ``estimate, std_error`` (from the adjusted covariance), ``df``,
    ``t``, ``p_value``, as ``summary(m, ddf = "Kenward-Roger")`` of lmerTest."""
    kr = KenwardRoger(res)
    est = res.fixef().to_numpy()
    se = np.sqrt(np.diag(kr.Phi_adjusted))
    df = np.array([kr.f_test(np.eye(est.size)[[j]])[2] for j in range(est.size)])
    t = est / se
    return pd.DataFrame(
        {
            "estimate": est,
            "std_error": se,
            "df": df,
            "t": t,
            "p_value": 2 * stats.t.sf(np.abs(t), df),
        },
        index=res.fixef().index,
    )
