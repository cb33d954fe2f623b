"""Relative covariance factors: lme4's theta <-> per-term lower-triangular factors T_j.

For grouping ``j`` with ``k`` columns, ``Sigma_j = sigma^2 T_j T_j'`` and ``T_j`` is
lower triangular; theta lists each ``T_j``'s lower triangle column by column
(lme4's ``getME(m, "theta")``). Diagonal entries are bounded below by 0.
"""

from __future__ import annotations

import numpy as np

from mixedtf.design import GroupingSpec
from mixedtf.errors import OptionError


def n_theta(k: int) -> int:
    return k * (k + 1) // 2


def theta_names(groupings: tuple[GroupingSpec, ...]) -> list[str]:
    """lme4's theta names: ``"Subject.(Intercept)"``, ``"Subject.Days.(Intercept)"``, ..."""
    names = []
    for g in groupings:
        for col in range(g.k):
            for row in range(col, g.k):
                if row == col:
                    names.append(f"{g.factor}.{g.colnames[row]}")
                else:
                    names.append(f"{g.factor}.{g.colnames[row]}.{g.colnames[col]}")
    return names


def lower_bounds(groupings: tuple[GroupingSpec, ...]) -> np.ndarray:
    """0 for diagonal entries of each factor, -inf for off-diagonal ones."""
    out = []
    for g in groupings:
        for col in range(g.k):
            out.extend([0.0] + [-np.inf] * (g.k - col - 1))
    return np.array(out)


def factors(theta: np.ndarray, groupings: tuple[GroupingSpec, ...]) -> list[np.ndarray]:
    """The lower-triangular ``T_j`` of every grouping from ``theta``."""
    out, at = [], 0
    for g in groupings:
        T = np.zeros((g.k, g.k))
        rows, cols = np.tril_indices(g.k)
        order = np.lexsort((rows, cols))  # column-major lower triangle, as lme4
        T[rows[order], cols[order]] = theta[at : at + n_theta(g.k)]
        out.append(T)
        at += n_theta(g.k)
    return out


def theta_from_factors(Ts: list[np.ndarray]) -> np.ndarray:
    parts = []
    for T in Ts:
        rows, cols = np.tril_indices(T.shape[0])
        order = np.lexsort((rows, cols))
        parts.append(T[rows[order], cols[order]])
    return np.concatenate(parts) if parts else np.zeros(0)


def psd_factor(cov: np.ndarray) -> np.ndarray:
    """Lower-triangular ``T`` (diagonal >= 0) with ``T T' = cov`` for a symmetric positive
    semi-definite ``cov``; singular matrices (a zero variance, a correlation of +-1) included."""
    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh((cov + cov.T) / 2)
        if values.min() < -1e-10 * max(1.0, abs(values).max()):
            raise OptionError(f"covariance matrix is not positive semi-definite: {cov}") from None
        F = vectors * np.sqrt(np.clip(values, 0.0, None))
        T = np.linalg.qr(F.T, mode="r").T  # F F' = R'R with R upper triangular
        return T * np.where(np.diag(T) < 0, -1.0, 1.0)
