r"""Blocked Cholesky of the penalised cross-product, as in lme4 and MixedModels.jl.

With ``Lambda`` the block-diagonal relative covariance factor (``I_L (x) T_j`` per
term) the profiled deviance needs the Cholesky factor of

.. math::

    \Omega(\theta) = \begin{bmatrix} \Lambda' Z'Z \Lambda + I & \Lambda' Z'[X\,y] \\
                     [X\,y]' Z \Lambda & [X\,y]'[X\,y] \end{bmatrix} = L L'.

Its last diagonal entry squared is the penalised residual sum of squares ``r^2``;
``log|L_theta|^2`` and ``log|R_X|^2`` are sums of logs of its diagonal.

Blocking: the first grouping (the one with most levels, lme4's order) has a
block-diagonal ``Z_1'Z_1`` (a ``k x k`` block per level), so its Cholesky factor is
a batch of tiny factors. Everything else -- the other terms, X and y, ``r`` columns
in all -- is eliminated densely: the Schur complement
``S = Lambda_R'(A_RR - A_R1 W A_1R) Lambda_R + diag(I, 0)`` with
``W = blockdiag(T_1 (T_1' A_l T_1 + I)^{-1} T_1')`` is formed with a sparse product and
factored by LAPACK.

Cost per evaluation: ``O(nnz(A_R1) * d)`` for the sparse product (``d`` = non-zeros per
column of ``A_R1``), ``O(r^2)`` to scale and ``r^3 / 3`` flops for the dense Cholesky,
independent of n. Memory: a few dense ``r x r`` float64 matrices. For InstEval
(``s`` first; ``d``, ``dept``, X, y dense) ``r = 1128 + 14 + 2 + 1 = 1145``: never a
4114 x 4114 matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
from scipy.linalg.lapack import dpotrf

from mixedtf.design import Design, GroupingSpec
from mixedtf.errors import ModelTooLargeError
from mixedtf.linalg.covariance import factors
from mixedtf.linalg.sparse import lambda_matrix, z_matrix

DEFAULT_MAX_DENSE_BYTES = 2**30  # one dense r x r float64 matrix: r <= 11,585


@dataclass(frozen=True, eq=False)
class CrossProducts:
    """``[Z X y]'[Z X y]`` in blocks, formed once per fit.

    ``A11``: ``L1 x k1 x k1`` per-level blocks of the first term; ``AR1``: sparse
    ``r x q1``; ``ARR``: dense ``r x r`` over (other terms, X, y).
    """

    groupings: tuple[GroupingSpec, ...]
    n: int
    p: int
    q_rest: int
    A11: np.ndarray
    AR1: sp.csr_matrix
    ARR: np.ndarray
    schur_map: tuple[sp.csc_matrix, np.ndarray] | None  # scalar first term: (K, column order)
    log_weights: float = 0.0  # sum(log w) of Gaussian prior weights: -2 loglik subtracts it

    @property
    def r(self) -> int:
        return self.q_rest + self.p + 1

    @classmethod
    def build(
        cls,
        design: Design,
        max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
        schur_map: bool = True,
    ) -> CrossProducts:
        """The cross-products of ``design`` (with prior weights: of its whitened rows);
        ``schur_map=False`` skips the precomputed map that speeds repeated factorisations
        (for one or two, as at the end of a Monte Carlo EM fit: its size grows with the
        square of the rows per level)."""
        log_weights = design.log_weights
        design = design.whitened()
        groupings, X = design.groupings, design.X
        y = design.y - design.offset
        n, p = X.shape
        first, rest = groupings[0], groupings[1:]
        q_rest = sum(g.n_levels * g.k for g in rest)
        r = q_rest + p + 1
        if 8 * r * r > max_dense_bytes:
            raise ModelTooLargeError(
                f"the exact estimator factors a dense {r} x {r} matrix (the random effects of "
                f"{[g.name for g in rest]} plus X and y), {8 * r * r / 2**30:.1f} GiB, over the "
                f"{max_dense_bytes / 2**30:.1f} GiB allowed (max_dense_bytes). Use method='mcem', "
                "or raise max_dense_bytes if the machine has the memory."
            )
        # first term: per-level k x k blocks of Z1'Z1
        zz = first.z[:, :, None] * first.z[:, None, :]
        A11 = np.zeros((first.n_levels, first.k, first.k))
        np.add.at(A11, first.codes, zz)
        Z1 = z_matrix((first,), n).tocsc()
        Zr = z_matrix(rest, n)
        Xy = np.column_stack([X, y])
        R = sp.hstack([Zr, sp.csr_matrix(Xy)], format="csr")
        AR1 = (R.T @ Z1).tocsr()
        ARR = np.zeros((r, r))
        ZZ = (Zr.T @ Zr).tocoo()  # written entry by entry: no second dense r x r matrix
        ARR[ZZ.row, ZZ.col] = ZZ.data
        ARR[:q_rest, q_rest:] = Zr.T @ Xy
        ARR[q_rest:, :q_rest] = ARR[:q_rest, q_rest:].T
        ARR[q_rest:, q_rest:] = Xy.T @ Xy
        mapped = _schur_map(_sorted_csc(AR1), r) if first.k == 1 and schur_map else None
        return cls(groupings, n, p, q_rest, A11, AR1, ARR, mapped, log_weights)


def dense_size(design: Design) -> int:
    """``r``, the order of the dense factor: the random effects after the first term, X
    and y (its cost is ``r^3 / 3`` flops and ``8 r^2`` bytes per evaluation)."""
    return sum(g.n_levels * g.k for g in design.groupings[1:]) + design.X.shape[1] + 1


def _sorted_csc(A: sp.spmatrix) -> sp.csc_matrix:
    out = sp.csc_matrix(A)
    out.sort_indices()
    return out


def _schur_map(AR1: sp.csc_matrix, r: int) -> tuple[sp.csc_matrix, np.ndarray]:
    """Sparse ``K`` (``r*r x q1``) with ``K @ w[order]`` = lower triangle of
    ``A_R1 diag(w) A_1R``, flattened row-major.

    Every pair of non-zeros in one column ``s`` of ``A_R1`` contributes
    ``A[i, s] A[j, s] w_s`` to entry ``(i, j)``; the pairs are fixed, so one sparse
    mat-vec per evaluation replaces a sparse-sparse product. Columns with the same
    number of non-zeros are processed together, so ``K``'s columns follow ``order``.
    """
    counts = np.diff(AR1.indptr)
    order = np.argsort(counts, kind="stable")
    pairs = counts[order] * (counts[order] + 1) // 2
    indptr = np.concatenate([[0], np.cumsum(pairs)])
    index_dtype = np.int32 if r * r < 2**31 else np.int64
    rows = np.empty(indptr[-1], dtype=index_dtype)
    values = np.empty(indptr[-1])
    at = 0
    for c in np.unique(counts[counts > 0]):
        cols = order[counts[order] == c]
        entries = AR1.indptr[cols][:, None] + np.arange(c)
        idx, val = AR1.indices[entries].astype(index_dtype), AR1.data[entries]
        ti, tj = np.tril_indices(c)  # indices sorted within a column: idx[:, ti] >= idx[:, tj]
        size = cols.size * ti.size
        np.add(
            idx[:, ti] * index_dtype(r),
            idx[:, tj],
            out=rows[at : at + size].reshape(cols.size, ti.size),
        )
        np.multiply(val[:, ti], val[:, tj], out=values[at : at + size].reshape(cols.size, ti.size))
        at += size
    K = sp.csc_matrix((values, rows, indptr), shape=(r * r, AR1.shape[1]))
    return K, order


@dataclass(frozen=True, eq=False)
class Factorization:
    """The blocked Cholesky factor at one theta.

    ``L_S = diag(row_scale) L_raw`` when the other terms are scalar with positive theta
    (then ``L_raw`` factors ``G + diag(theta^-2)`` and the scaling is applied lazily);
    the X and y rows have scale 1, so ``R_X``, beta and ``r^2`` read ``L_raw`` directly.
    """

    theta: np.ndarray
    Ts: list[np.ndarray]
    L11: np.ndarray  # L1 x k1 x k1 lower factors of T1' A_l T1 + I
    L_raw: np.ndarray  # r x r lower factor over (other terms, X, y)
    row_scale: np.ndarray | None
    q_rest: int  # random effects eliminated densely (terms after the first)
    groupings: tuple[GroupingSpec, ...]

    @cached_property
    def LS(self) -> np.ndarray:
        """Lower Cholesky factor of the Schur complement over (other terms, X, y)."""
        return self.L_raw if self.row_scale is None else self.L_raw * self.row_scale[:, None]

    @property
    def Lambda_R(self) -> sp.csr_matrix:
        """Block-diagonal relative factor of (other terms, X, y), ``r x r``."""
        return lambda_matrix(self.Ts[1:], self.groupings[1:], self.L_raw.shape[0] - self.q_rest)

    def logdet_L(self) -> float:
        """``log|L_theta|^2``."""
        d1 = np.diagonal(self.L11, axis1=1, axis2=2)
        return 2.0 * np.log(d1).sum() + logdet_dense(self.L_raw, self.row_scale, self.q_rest)

    def logdet_RX(self) -> float:
        """``log|R_X|^2``."""
        return 2.0 * np.log(np.diag(self.L_raw)[self.q_rest : -1]).sum()

    def pwrss(self) -> float:
        """Penalised weighted residual sum of squares ``r^2(theta)``."""
        return float(self.L_raw[-1, -1] ** 2)

    @property
    def RX_lower(self) -> np.ndarray:
        """``R_X'`` (lower triangular, ``p x p``)."""
        q = self.q_rest
        return self.L_raw[q:-1, q:-1]

    def fixed_vcov(self, sigma2: float) -> np.ndarray:
        """lme4's ``vcov``: ``sigma^2 (R_X' R_X)^{-1}``, conditional on theta."""
        RX_inv = la.solve_triangular(self.RX_lower, np.eye(self.RX_lower.shape[0]), lower=True)
        return sigma2 * RX_inv.T @ RX_inv

    def beta(self) -> np.ndarray:
        """``beta_hat(theta)`` from ``R_X' beta = r_Xy``."""
        q = self.q_rest
        return la.solve_triangular(self.RX_lower, self.L_raw[-1, q:-1], lower=True, trans="T")


def eliminate_first(
    cp: CrossProducts, Ts: list[np.ndarray], consume: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """Factor the first term's blocks and form ``G = A_RR - A_R1 W A_1R`` (lower triangle valid).

    Returns ``(L11, G)``, or None when a block is not positive definite. ``consume=True``
    forms ``G`` in ``cp.ARR``'s memory (``cp`` is spent: for a single factorisation of a
    large model, one ``r x r`` matrix instead of three).
    """
    T1 = Ts[0]
    k1 = T1.shape[0]
    M = np.einsum("ji,ljk,km->lim", T1, cp.A11, T1) + np.eye(k1)
    try:
        L11 = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return None
    # W_l = T1 M_l^{-1} T1'
    if cp.schur_map is not None:
        K, order = cp.schur_map
        w = (T1[0, 0] ** 2) / M[order, 0, 0]
        G = (K @ w).reshape(cp.r, cp.r)
        np.subtract(cp.ARR, G, out=G)
    else:
        Minv_T1t = np.linalg.solve(M, np.broadcast_to(T1.T, M.shape))
        W = np.einsum("ij,ljk->lik", T1, Minv_T1t)
        Wsp = sp.diags(W[:, 0, 0]) if k1 == 1 else sp.block_diag(list(W), format="csr")
        G = cp.ARR if consume else cp.ARR.copy()
        _subtract_lower(G, (cp.AR1 @ Wsp).tocsr(), cp.AR1.tocsr())
    return L11, G


def _subtract_lower(G: np.ndarray, AW: sp.csr_matrix, A: sp.csr_matrix, rows: int = 512) -> None:
    """``G -= AW A'`` on and below the diagonal, in place, a band of ``rows`` rows at a
    time: the sparse product never holds more than ``rows x r`` entries."""
    r = G.shape[0]
    for start in range(0, r, rows):
        stop = min(start + rows, r)
        band = (AW[start:stop] @ A[:stop].T).toarray()
        G[start:stop, :stop] -= band


def factor_dense(
    G: np.ndarray, Ts: list[np.ndarray], groupings: tuple[GroupingSpec, ...], n_unscaled: int
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Lower Cholesky factor of ``S = Lambda' G Lambda + diag(I_q, 0)``, overwriting ``G``.

    ``Lambda = blockdiag(I (x) T_j, I_{n_unscaled})`` over ``groupings`` and the trailing
    unscaled columns (X and y). Only ``G``'s lower triangle is read. For scalar terms with
    positive theta, ``S = D (G + diag(D^-2, 0)) D`` and the returned ``(L_raw, scale)``
    satisfy ``L_S = diag(scale) L_raw``; otherwise ``scale`` is None and ``L_raw = L_S``.
    """
    q = sum(g.n_levels * g.k for g in groupings)
    diag = np.arange(q)
    scale = None
    if all(g.k == 1 for g in groupings):
        scale = np.concatenate(
            [np.repeat([T[0, 0] for T in Ts], [g.n_levels for g in groupings]), np.ones(n_unscaled)]
        )
    if scale is not None and scale.min() > 0:
        G[diag, diag] += scale[:q] ** -2
        S = G
    else:
        if scale is not None:
            G *= scale[:, None]
            G *= scale[None, :]
            S = G
        else:
            # Lambda' G Lambda mixes G's two triangles, and only its lower one is valid
            # (the Schur products form no more): mirror it first
            upper = np.triu_indices(G.shape[0], 1)
            G[upper] = G.T[upper]
            Lam = lambda_matrix(Ts, groupings, n_unscaled)
            S = np.ascontiguousarray((Lam.T @ (Lam.T @ G).T).T)
        S[diag, diag] += 1.0
        scale = None
    # S is C-ordered with a valid lower triangle: its transpose is Fortran-ordered with a
    # valid upper triangle, which LAPACK factors in place as U'U (U = L').
    U, info = dpotrf(S.T, lower=0, clean=1, overwrite_a=1)
    if info != 0 or not np.isfinite(U[-1, -1]):
        return None
    return U.T, scale


def logdet_dense(L_raw: np.ndarray, scale: np.ndarray | None, q: int) -> float:
    """``log|L_S|^2`` over the first ``q`` (random-effect) rows of a dense factor."""
    out = np.log(np.diag(L_raw)[:q]).sum()
    if scale is not None:
        out += np.log(scale[:q]).sum()
    return 2.0 * out


def factorize(cp: CrossProducts, theta: np.ndarray, consume: bool = False) -> Factorization | None:
    """The blocked Cholesky factor at ``theta`` (None when not positive definite);
    ``consume=True``: factor in ``cp``'s own memory, leaving ``cp`` unusable."""
    Ts = factors(theta, cp.groupings)
    first = eliminate_first(cp, Ts, consume)
    if first is None:
        return None
    L11, G = first
    dense = factor_dense(G, Ts[1:], cp.groupings[1:], cp.p + 1)
    if dense is None:
        return None
    L_raw, scale = dense
    return Factorization(
        theta=theta,
        Ts=Ts,
        L11=L11,
        L_raw=L_raw,
        row_scale=scale,
        q_rest=cp.q_rest,
        groupings=cp.groupings,
    )


def gaussian_deviance(logdet: float, r2: float, n_eff: int, sigma2: float | None = None) -> float:
    r"""``-2`` log-likelihood of a Gaussian mixed model from its factor (Bates et al. 2015,
    eqs. 32-34 and 41): ``logdet + n_eff log(2 pi sigma^2) + r^2 / sigma^2``, with ``sigma^2``
    profiled out (``r^2 / n_eff``) when not given.

    ML: ``logdet = log|L|^2``, ``n_eff = n``; REML: ``logdet = log|L|^2 + log|R_X|^2``,
    ``n_eff = n - p``. ``r^2`` is the penalised residual sum of squares at the beta of
    interest.
    """
    if sigma2 is None:
        return logdet + n_eff * (1.0 + np.log(2.0 * np.pi * r2 / n_eff))
    return logdet + n_eff * np.log(2.0 * np.pi * sigma2) + r2 / sigma2


def profiled_deviance(f: Factorization | None, n: int, p: int, reml: bool) -> float:
    """lme4's profiled deviance at a factor (``inf`` when there is none): ML
    ``log|L|^2 + n (1 + log(2 pi r^2 / n))``; REML adds ``log|R_X|^2`` and uses ``n - p``."""
    if f is None:
        return np.inf
    if reml:
        return gaussian_deviance(f.logdet_L() + f.logdet_RX(), f.pwrss(), n - p)
    return gaussian_deviance(f.logdet_L(), f.pwrss(), n)
