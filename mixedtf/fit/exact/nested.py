r"""Profiling out small trailing terms: a cheaper optimisation for three or more terms.

With the dense part ordered (lead term, tail terms, X, y), the lead block's Cholesky
factor ``L_aa`` depends only on the first two terms' theta. Given it, the tail's Schur
complement is

.. math:: H = G_{bb} - C C', \qquad C' = L_{aa}^{-1} \Lambda_a' G_{ab},

and every tail theta costs one ``t x t`` factor of ``Lambda_b' H Lambda_b + diag(I, 0)``,
``t`` = tail random effects + p + 1 (17 for InstEval's ``dept``, X and y). So the
deviance is minimised over the tail theta inside each evaluation of the outer
(first two terms') theta: the outer optimiser works in fewer dimensions, and the
inner one costs microseconds per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
from scipy.optimize import Bounds, minimize, minimize_scalar

from mixedtf.linalg.blocked import (
    CrossProducts,
    eliminate_first,
    factor_dense,
    gaussian_deviance,
    logdet_dense,
)
from mixedtf.linalg.covariance import factors, lower_bounds, n_theta
from mixedtf.linalg.sparse import lambda_matrix

MAX_TAIL = 128  # largest t for which the tail is profiled out


@dataclass(frozen=True)
class TailSplit:
    """Where theta splits into outer (first two terms) and tail (the rest)."""

    n_outer: int
    q_lead: int
    q_tail: int

    @classmethod
    def of(cls, cp: CrossProducts, force: bool = False) -> TailSplit | None:
        """The split, or None when there is no tail, or (unless ``force``) when the tail is
        not small next to the lead block."""
        gs = cp.groupings
        if len(gs) < 3:
            return None
        q_lead = gs[1].n_levels * gs[1].k
        q_tail = cp.q_rest - q_lead
        t = q_tail + cp.p + 1
        if t > MAX_TAIL or (q_lead < 4 * t and not force):
            return None
        return cls(n_theta(gs[0].k) + n_theta(gs[1].k), q_lead, q_tail)


@dataclass(frozen=True, eq=False)
class OuterState:
    """What one outer theta fixes: ``log|L|^2`` of the first two terms and the tail's ``H``."""

    logdet_lead: float
    H: np.ndarray

    def deviance(
        self, cp: CrossProducts, split: TailSplit, theta_tail: np.ndarray, reml: bool
    ) -> float:
        gs = cp.groupings[2:]
        dense = factor_dense(self.H.copy(), factors(theta_tail, gs), gs, cp.p + 1)
        if dense is None:
            return np.inf
        L, scale = dense
        q = split.q_tail
        r2 = L[-1, -1] ** 2
        logdet = self.logdet_lead + logdet_dense(L, scale, q)
        if reml:
            logdet += 2.0 * np.log(np.diag(L)[q:-1]).sum()  # log|R_X|^2
            return gaussian_deviance(logdet, r2, cp.n - cp.p)
        return gaussian_deviance(logdet, r2, cp.n)


def outer_state(cp: CrossProducts, split: TailSplit, theta_outer: np.ndarray) -> OuterState | None:
    """Eliminate the first term, factor the lead block and form the tail's Schur complement."""
    gs = cp.groupings
    Ts = factors(theta_outer, gs[:2])
    first = eliminate_first(cp, Ts)
    if first is None:
        return None
    L11, G = first
    qa = split.q_lead
    lead = factor_dense(np.array(G[:qa, :qa]), Ts[1:2], gs[1:2], 0)
    if lead is None:
        return None
    L_raw, scale = lead
    G_ab = G[qa:, :qa].T  # lower triangle of G is valid: tail rows below lead columns
    if scale is not None:  # L_aa = diag(scale) L_raw and Lambda_a = diag(scale): C' = L_raw^-1 G_ab
        Ct = la.solve_triangular(L_raw, G_ab, lower=True, check_finite=False)
    else:
        Lam_a = lambda_matrix(Ts[1:2], gs[1:2])
        Ct = la.solve_triangular(L_raw, Lam_a.T @ G_ab, lower=True, check_finite=False)
    H = G[qa:, qa:] - Ct.T @ Ct  # lower triangle valid
    logdet = 2.0 * np.log(np.diagonal(L11, axis1=1, axis2=2)).sum() + logdet_dense(L_raw, scale, qa)
    return OuterState(logdet, np.ascontiguousarray(H))


class TailProfiler:
    """The outer objective ``theta_outer -> min over theta_tail of the deviance``.

    Keeps the inner optimum of the last call to warm-start the next one, remembers the
    inner optimum of every outer point (``tail_at``), and counts inner evaluations.
    """

    def __init__(
        self, cp: CrossProducts, split: TailSplit, reml: bool, theta_tail0: np.ndarray
    ) -> None:
        self.cp, self.split, self.reml = cp, split, reml
        self.lower = lower_bounds(cp.groupings[2:])
        self.theta_tail = np.maximum(np.asarray(theta_tail0, dtype=np.float64), self.lower)
        self.inner_evaluations = 0
        self._optima: dict[bytes, np.ndarray] = {}

    def __call__(self, theta_outer: np.ndarray) -> float:
        state = outer_state(self.cp, self.split, theta_outer)
        if state is None:
            return np.inf
        value, self.theta_tail = self._inner(state)
        self._optima[np.asarray(theta_outer, dtype=np.float64).tobytes()] = self.theta_tail
        return value

    def tail_at(self, theta_outer: np.ndarray) -> np.ndarray:
        """The inner optimum at an outer point (evaluated again if it was never visited)."""
        key = np.asarray(theta_outer, dtype=np.float64).tobytes()
        if key not in self._optima:
            self(theta_outer)
        return self._optima[key]

    def _inner(self, state: OuterState) -> tuple[float, np.ndarray]:
        def f(theta_tail: np.ndarray) -> float:
            self.inner_evaluations += 1
            return state.deviance(
                self.cp, self.split, np.maximum(theta_tail, self.lower), self.reml
            )

        start = self.theta_tail
        if start.size == 1:
            upper = 4.0 * max(1.0, float(start[0]))
            while True:
                res = minimize_scalar(
                    lambda t: f(np.array([t])),
                    bounds=(0.0, upper),
                    method="bounded",
                    options={"xatol": 1e-9},
                )
                if res.x < 0.99 * upper:
                    break
                upper *= 10.0
            # the bounded method never evaluates the bound itself: a boundary fit lands there
            zero = f(np.zeros(1))
            if zero <= res.fun:
                return zero, np.zeros(1)
            return float(res.fun), np.array([res.x])
        # scipy's COBYQA holds a lock, so it cannot run inside the outer COBYQA: the inner
        # problem is cheap and smooth, L-BFGS-B with finite differences suits it
        res = minimize(
            f,
            start,
            method="L-BFGS-B",
            bounds=Bounds(self.lower, np.full(self.lower.size, np.inf)),
            options={"ftol": 1e-13, "gtol": 1e-7, "maxfun": 500 * start.size},
        )
        return float(res.fun), np.maximum(res.x, self.lower)
