r"""lme4's fixed-effects covariance without a dense factor: preconditioned conjugate
gradients on the sparse penalised system, for models whose blocked Cholesky is large.

At ``theta``, with ``A = Z Lambda_theta`` (whitened rows),
``R_X' R_X = X'X - (A'X)' M^{-1} (A'X)`` with ``M = A'A + I`` (Woodbury on
``X' (I + A A')^{-1} X``), and lme4's ``vcov = sigma^2 (R_X' R_X)^{-1}``, as
:meth:`mixedtf.linalg.blocked.Factorization.fixed_vcov`. ``M W = A'X`` is solved column by
column by conjugate gradients preconditioned with ``M``'s per-level blocks (block Jacobi,
a ``k x k`` block per level of each term; cf. GPBoost's Krylov methods), warm-started from
the previous solution. Cost per iteration: one product with the sparse ``M`` (``nnz`` = the
distinct pairs of levels that share a row), memory ``O(nnz + n)``: no ``r x r`` matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg

from mixedtf.design import Design
from mixedtf.errors import MixedTFError
from mixedtf.linalg.covariance import factors
from mixedtf.linalg.sparse import lambda_matrix, z_matrix


@dataclass(eq=False)
class SparseSystem:
    """``Z`` (whitened), ``X`` and ``Z'Z`` of a design, formed once; the last solution is
    kept as the next warm start."""

    design: Design
    Z: sp.csr_matrix
    X: np.ndarray
    ZtZ: sp.csr_matrix
    ZtX: np.ndarray
    XtX: np.ndarray
    last: np.ndarray | None = None

    @classmethod
    def build(cls, design: Design) -> SparseSystem:
        rows = design.whitened()
        Z = z_matrix(rows.groupings, rows.nobs).tocsr()
        return cls(rows, Z, rows.X, (Z.T @ Z).tocsr(), Z.T @ rows.X, rows.X.T @ rows.X)

    def _block_inverse(self, M: sp.csr_matrix) -> sp.csr_matrix:
        """The inverse of ``M``'s per-level diagonal blocks, as one sparse matrix."""
        blocks, at = [], 0
        diag = M.diagonal()
        for g in self.design.groupings:
            size = g.n_levels * g.k
            if g.k == 1:
                blocks.append(sp.diags(1.0 / diag[at : at + size]))
            else:
                idx = at + np.arange(size).reshape(g.n_levels, g.k)
                inverse = np.linalg.inv(_level_blocks(M, idx))
                blocks.append(sp.block_diag(list(inverse), format="csr"))
            at += size
        return sp.block_diag(blocks, format="csr")

    def fixed_vcov(
        self, theta: np.ndarray, sigma2: float, rtol: float = 1e-11, maxiter: int = 5000
    ) -> np.ndarray:
        """lme4's ``vcov`` at ``theta``: ``sigma^2 (X'X - (A'X)' M^{-1} A'X)^{-1}``."""
        Lam = lambda_matrix(factors(theta, self.design.groupings), self.design.groupings)
        M = (Lam.T @ self.ZtZ @ Lam + sp.identity(Lam.shape[0])).tocsr()
        AtX = Lam.T @ self.ZtX
        P = self._block_inverse(M)
        pre = LinearOperator(M.shape, matvec=lambda v: P @ v, dtype=np.float64)
        W = np.empty_like(AtX)
        for j in range(AtX.shape[1]):
            x0 = None if self.last is None else self.last[:, j]
            W[:, j], info = cg(M, AtX[:, j], x0=x0, rtol=rtol, atol=0.0, maxiter=maxiter, M=pre)
            if info > 0:
                raise MixedTFError(
                    f"conjugate gradients did not reach rtol={rtol} in {maxiter} iterations "
                    "for the fixed effects' covariance; fit with method='ml' where the exact "
                    "factor fits in memory."
                )
        self.last = W
        RtR = self.XtX - AtX.T @ W
        return sigma2 * np.linalg.inv(RtR)


def _level_blocks(M: sp.csr_matrix, idx: np.ndarray) -> np.ndarray:
    """``M``'s ``k x k`` diagonal blocks at the index rows of ``idx`` (``L x k``)."""
    L, k = idx.shape
    out = np.empty((L, k, k))
    for a in range(k):
        for b in range(k):
            out[:, a, b] = np.asarray(M[idx[:, a], idx[:, b]]).ravel()
    return out
