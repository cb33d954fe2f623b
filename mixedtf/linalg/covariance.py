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
    """The lower-triangular ``T_j`` of every grouping from ``theta`` (``[..., m]``: leading
    axes, as a batch of thetas, give ``[..., k, k]`` factors)."""
    theta = np.asarray(theta, dtype=np.float64)
    out, at = [], 0
    for g in groupings:
        T = np.zeros((*theta.shape[:-1], g.k, g.k))
        rows, cols = np.tril_indices(g.k)
        order = np.lexsort((rows, cols))  # column-major lower triangle, as lme4
        T[..., rows[order], cols[order]] = theta[..., at : at + n_theta(g.k)]
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


def _lower_pairs(k: int) -> list[tuple[int, int]]:
    """``(row, col)`` of a ``k x k`` lower triangle, column by column (lme4's order)."""
    return [(row, col) for col in range(k) for row in range(col, k)]


def sdcor_names(groupings: tuple[GroupingSpec, ...]) -> list[str]:
    """lme4's ``confint(oldNames = FALSE)`` names of each term's SDs and correlations:
    ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ..."""
    return [
        f"sd_{g.colnames[row]}|{g.factor}"
        if row == col
        else f"cor_{g.colnames[row]}.{g.colnames[col]}|{g.factor}"
        for g in groupings
        for row, col in _lower_pairs(g.k)
    ]


def sdcor_kinds(groupings: tuple[GroupingSpec, ...]) -> list[str]:
    """``"sd"`` or ``"cor"`` for each entry of :func:`to_sdcor`."""
    return ["sd" if row == col else "cor" for g in groupings for row, col in _lower_pairs(g.k)]


def to_sdcor(covariances: list[np.ndarray]) -> np.ndarray:
    """Each term's SDs and correlations (0 where an SD is 0), in lme4's order."""
    out = []
    for cov in covariances:
        sd = np.sqrt(np.diag(cov))
        for row, col in _lower_pairs(cov.shape[0]):
            denom = sd[row] * sd[col]
            out.append(sd[row] if row == col else (cov[row, col] / denom if denom > 0 else 0.0))
    return np.array(out)


def from_sdcor(values: np.ndarray, groupings: tuple[GroupingSpec, ...]) -> list[np.ndarray]:
    """The covariance matrices of :func:`to_sdcor`'s values."""
    covs, at = [], 0
    for g in groupings:
        sd, cor = np.zeros(g.k), np.eye(g.k)
        for row, col in _lower_pairs(g.k):
            if row == col:
                sd[row] = values[at]
            else:
                cor[row, col] = cor[col, row] = values[at]
            at += 1
        covs.append(np.outer(sd, sd) * cor)
    return covs


def theta_of(covariances: list[np.ndarray], sigma2: float = 1.0) -> np.ndarray:
    """lme4's theta of the terms' covariance matrices, relative to ``sigma2`` (the
    residual variance; 1 for families without one)."""
    return theta_from_factors([psd_factor(np.atleast_2d(c) / sigma2) for c in covariances])
