r"""The profiled Gaussian deviance of many responses at many thetas at once.

For the parametric bootstrap: ``B`` responses share ``Z`` and ``X``, so the
cross-products differ only in the ``y`` row. Replicate ``b`` at ``theta_b`` needs the
Cholesky factor of

.. math::

    S_b = \Lambda_{R,b}' (A_{RR,b} - C_b W_b C_b') \Lambda_{R,b} + \mathrm{diag}(I_q, 0),
    \qquad W_b = \mathrm{blockdiag}_l\, T_{1,b} (T_{1,b}' A_l T_{1,b} + I)^{-1} T_{1,b}',

the same blocking as :mod:`mixedtf.linalg.blocked` (``C_b = A_{R1}`` with replicate
``b``'s ``y`` row), here with a leading batch axis on every array so that one NumPy call
factors all ``B`` systems. The first term's cross-product is held dense
(``r x L_1 x k_1``), so this is for models whose ``r * q_1`` is modest -- the ones a
bootstrap of thousands of refits is run on; :func:`fits_in_batch` says when.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from mixedtf.design import Design, GroupingSpec
from mixedtf.linalg.blocked import CrossProducts, dense_size
from mixedtf.linalg.covariance import factors
from mixedtf.linalg.sparse import z_matrix

MAX_BATCH_ENTRIES = 2_000_000  # entries of the per-replicate dense C_b held at once


@dataclass(frozen=True, eq=False)
class BatchedCrossProducts:
    """``[Z X y_b]'[Z X y_b]`` for responses ``b = 1..B`` in the blocks of
    :class:`mixedtf.linalg.blocked.CrossProducts`: ``A11`` (``L1 x k1 x k1``), ``C``
    (``B x r x L1 x k1``, rows: other terms, X, y_b) and ``ARR`` (``B x r x r``)."""

    groupings: tuple[GroupingSpec, ...]
    n: int
    p: int
    q_rest: int
    A11: np.ndarray
    C: np.ndarray
    ARR: np.ndarray

    @classmethod
    def build(cls, design: Design, responses: np.ndarray) -> BatchedCrossProducts:
        """``responses``: ``B x n``, on the response scale of ``design`` (its offset and
        prior weights are applied here as in the single fit). The blocks without ``y``
        are the design's own :class:`~mixedtf.linalg.blocked.CrossProducts`; the ``y``
        rows are two sparse products with all responses at once."""
        cp = CrossProducts.build(design, schur_map=False)
        s = 1.0 if design.prior_weights is None else np.sqrt(design.prior_weights)
        Y = (np.asarray(responses, dtype=np.float64) - design.offset) * s
        rows = design.whitened()
        first, rest = rows.groupings[0], rows.groupings[1:]
        B, r = Y.shape[0], cp.r
        C = np.empty((B, r, first.n_levels, first.k))
        C[:, :-1] = cp.AR1[:-1].toarray().reshape(r - 1, first.n_levels, first.k)
        ZtY = z_matrix((first,), rows.nobs).T @ Y.T  # q1 x B
        C[:, -1] = ZtY.T.reshape(B, first.n_levels, first.k)
        FtY = np.vstack([z_matrix(rest, rows.nobs).T @ Y.T, rows.X.T @ Y.T])  # (r - 1) x B
        ARR = np.empty((B, r, r))
        ARR[:, :-1, :-1] = cp.ARR[:-1, :-1]
        ARR[:, :-1, -1] = ARR[:, -1, :-1] = FtY.T
        ARR[:, -1, -1] = np.einsum("bi,bi->b", Y, Y)
        return cls(cp.groupings, cp.n, cp.p, cp.q_rest, cp.A11, C, ARR)


def fits_in_batch(design: Design) -> bool:
    """Whether one replicate's dense ``C_b`` is small enough to batch."""
    first = design.groupings[0]
    return dense_size(design) * first.n_levels * first.k <= MAX_BATCH_ENTRIES // 16


def batch_size(design: Design) -> int:
    """Replicates factored together: ``MAX_BATCH_ENTRIES`` entries of ``C_b`` at most."""
    first = design.groupings[0]
    return max(1, MAX_BATCH_ENTRIES // (dense_size(design) * first.n_levels * first.k))


def _lambda_rest(Ts: list[np.ndarray], groupings, r: int) -> np.ndarray:
    """Dense ``B x r x r`` relative factor over (other terms, X, y)."""
    B = Ts[0].shape[0]
    Lam = np.zeros((B, r, r))
    at = 0
    for T, g in zip(Ts, groupings, strict=True):
        for a in range(g.k):
            for c in range(a + 1):
                idx = at + np.arange(g.n_levels) * g.k
                Lam[:, idx + a, idx + c] = T[:, a, c][:, None]
        at += g.n_levels * g.k
    idx = np.arange(at, r)
    Lam[:, idx, idx] = 1.0
    return Lam


@dataclass(frozen=True)
class BatchedFactor:
    """Per replicate: ``log|L_theta|^2``, ``log|R_X|^2``, ``r^2`` and the dense factor."""

    logdet_l: np.ndarray
    logdet_rx: np.ndarray
    pwrss: np.ndarray
    L: np.ndarray  # B x r x r lower factor of S_b

    def deviance(self, n: int, p: int, reml: bool) -> np.ndarray:
        """lme4's profiled deviance (:func:`mixedtf.linalg.blocked.profiled_deviance`)."""
        n_eff = n - p if reml else n
        logdet = self.logdet_l + self.logdet_rx if reml else self.logdet_l
        with np.errstate(divide="ignore", invalid="ignore"):
            out = logdet + n_eff * (1.0 + np.log(2.0 * np.pi * self.pwrss / n_eff))
        return np.where(np.isfinite(out), out, np.inf)

    def beta(self, q: int) -> np.ndarray:
        """``B x p``: ``R_X' beta = r_Xy`` per replicate."""
        RXt = self.L[:, q:-1, q:-1]
        return np.linalg.solve(np.swapaxes(RXt, 1, 2), self.L[:, -1, q:-1][..., None])[..., 0]


def _cholesky(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched lower Cholesky; replicates that are not positive definite get NaN."""
    try:
        return np.linalg.cholesky(S), np.ones(S.shape[0], dtype=bool)
    except np.linalg.LinAlgError:
        L, ok = np.full_like(S, np.nan), np.zeros(S.shape[0], dtype=bool)
        for b in range(S.shape[0]):
            with contextlib.suppress(np.linalg.LinAlgError):
                L[b], ok[b] = np.linalg.cholesky(S[b]), True
        return L, ok


def factorize_batch(
    bcp: BatchedCrossProducts, Theta: np.ndarray, which: np.ndarray
) -> BatchedFactor:
    """The factors of replicates ``which`` (indices into the responses), replicate
    ``which[i]`` at ``Theta[i]``."""
    Ts = factors(Theta, bcp.groupings)
    T1, k1 = Ts[0], Ts[0].shape[1]
    M = np.swapaxes(T1, 1, 2)[:, None] @ bcp.A11[None] @ T1[:, None] + np.eye(k1)
    L11, ok1 = _cholesky(M.reshape(-1, k1, k1))
    L11 = L11.reshape(M.shape)
    ok1 = ok1.reshape(M.shape[:2]).all(axis=1)
    M[~ok1] = np.eye(k1)
    Minv_T1t = np.linalg.solve(M, np.broadcast_to(np.swapaxes(T1, 1, 2)[:, None], M.shape))
    W = T1[:, None] @ Minv_T1t
    C = bcp.C[which]
    B, r = C.shape[:2]
    CW = (C[..., None, :] @ W[:, None]).reshape(B, r, -1)
    G = bcp.ARR[which] - CW @ np.swapaxes(C.reshape(B, r, -1), 1, 2)
    q = bcp.q_rest
    if q:
        Lam = _lambda_rest(Ts[1:], bcp.groupings[1:], r)
        G = np.swapaxes(Lam, 1, 2) @ G @ Lam
        G[:, np.arange(q), np.arange(q)] += 1.0
    L, ok = _cholesky(G)
    ok &= ok1
    d1 = np.log(np.diagonal(L11, axis1=2, axis2=3)).sum(axis=(1, 2))
    d = np.log(np.diagonal(L, axis1=1, axis2=2))
    logdet_l = 2.0 * (d1 + d[:, :q].sum(axis=1))
    pwrss = np.where(ok, L[:, -1, -1] ** 2, np.nan)
    return BatchedFactor(logdet_l, 2.0 * d[:, q:-1].sum(axis=1), pwrss, L)
