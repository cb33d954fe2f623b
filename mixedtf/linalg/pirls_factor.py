r"""Blocked Cholesky of the PIRLS matrix ``H = A' W A + I`` (``A = Z Lambda``), as the exact
Gaussian path blocks ``Lambda' Z'Z Lambda + I`` (:mod:`mixedtf.linalg.blocked`).

The first grouping (most levels, lme4's order) gives a block-diagonal leading block ``D``
(one ``k x k`` block per level); the rest ``C`` is dense and small. With ``B`` the sparse
coupling,

.. math::

    H = \begin{bmatrix} D & B' \\ B & C \end{bmatrix}, \qquad
    S = C - B D^{-1} B', \qquad \log|H| = \log|D| + \log|S|,

and solves go through ``D`` level by level and a dense Cholesky of ``S``. InstEval's
``S`` is 1,142 x 1,142 where ``H`` is 4,114 x 4,114.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import linalg


@dataclass(frozen=True, eq=False)
class PIRLSFactor:
    """The factored ``H``: ``solve``, ``logdet`` and the diagonal of the leading block."""

    q1: int
    k1: int
    D_inv: np.ndarray  # L1 x k1 x k1
    B: sp.csr_matrix  # q_rest x q1
    S_chol: tuple | None  # cho_factor of S
    logdet: float
    D_diag: np.ndarray  # diagonal of D (q1)

    @classmethod
    def build(cls, A: sp.csr_matrix, w: np.ndarray, q1: int, k1: int) -> PIRLSFactor:
        WA = A.multiply(w[:, None]).tocsc()
        A1, Ar = A[:, :q1].tocsc(), A[:, q1:].tocsc()
        L1 = q1 // k1
        AtWA1 = (A1.T @ WA[:, :q1]).tocsr()
        D = np.zeros((L1, k1, k1))
        coo = AtWA1.tocoo()
        same = coo.row // k1 == coo.col // k1  # the first term's blocks are per level
        D[coo.row[same] // k1, coo.row[same] % k1, coo.col[same] % k1] = coo.data[same]
        D += np.eye(k1)
        D_chol = np.linalg.cholesky(D)
        logdet = 2.0 * np.log(np.diagonal(D_chol, axis1=1, axis2=2)).sum()
        D_inv = np.linalg.inv(D)
        B = (Ar.T @ WA[:, :q1]).tocsr()
        S_chol = None
        if Ar.shape[1]:
            Dinv_sp = sp.block_diag(list(D_inv), format="csr")
            C = (Ar.T @ WA[:, q1:]).toarray() + np.eye(Ar.shape[1])
            S = C - (B @ Dinv_sp @ B.T).toarray()
            S_chol = linalg.cho_factor(S, lower=True)
            logdet += 2.0 * np.log(np.diag(S_chol[0])).sum()
        return cls(
            q1, k1, D_inv, B, S_chol, float(logdet), np.diagonal(D, axis1=1, axis2=2).ravel()
        )

    def _d_solve(self, x: np.ndarray) -> np.ndarray:
        shaped = x.reshape(self.q1 // self.k1, self.k1, -1)
        return np.einsum("lij,ljm->lim", self.D_inv, shaped).reshape(x.shape)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``H^{-1} rhs`` (a vector or a ``q x m`` matrix)."""
        rhs = np.asarray(rhs, dtype=np.float64)
        vector = rhs.ndim == 1
        r = rhs[:, None] if vector else rhs
        r1, r2 = r[: self.q1], r[self.q1 :]
        y1 = self._d_solve(r1)
        if self.S_chol is None:
            out = y1
        else:
            x2 = linalg.cho_solve(self.S_chol, r2 - self.B @ y1)
            out = np.vstack([self._d_solve(r1 - self.B.T @ x2), x2])
        return out[:, 0] if vector else out
