"""Sparse ``Z`` and ``Lambda_theta`` from the gather specs, for the estimators that need
them as matrices (the exact cross-products, PIRLS). Column order is lme4's: terms in the
design's order, level-major within a term (``offset_j + level * k_j + column``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mixedtf.design import GroupingSpec


def z_matrix(groupings: tuple[GroupingSpec, ...], n: int) -> sp.csr_matrix:
    """Sparse ``n x q`` random-effects model matrix ``Z`` of ``groupings``."""
    if not groupings:
        return sp.csr_matrix((n, 0))
    blocks = []
    for g in groupings:
        rows = np.repeat(np.arange(n), g.k)
        cols = (g.codes.astype(np.int64)[:, None] * g.k + np.arange(g.k)).ravel()
        blocks.append(sp.csr_matrix((g.z.ravel(), (rows, cols)), shape=(n, g.n_levels * g.k)))
    return sp.hstack(blocks, format="csr")


def lambda_matrix(
    Ts: list[np.ndarray], groupings: tuple[GroupingSpec, ...], n_unscaled: int = 0
) -> sp.csr_matrix:
    """Block-diagonal relative covariance factor ``Lambda = blockdiag(I_{L_j} (x) T_j)``,
    followed by an identity over ``n_unscaled`` trailing columns (X and y in ``Omega``)."""
    blocks = [
        sp.kron(sp.identity(g.n_levels), sp.csr_matrix(T))
        for g, T in zip(groupings, Ts, strict=True)
    ]
    if n_unscaled:
        blocks.append(sp.identity(n_unscaled))
    if not blocks:
        return sp.csr_matrix((0, 0))
    return sp.block_diag(blocks, format="csr")
