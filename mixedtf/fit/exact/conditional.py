r"""Conditional modes and conditional covariances of the random effects.

With ``M = Lambda' Z'Z Lambda + I`` (the Z part of Omega), the spherical modes solve
``M u = Lambda' Z'(y - X beta)`` and ``b = Lambda u``; lme4's conditional variance
(``ranef(m, condVar = TRUE)``, conditional on theta, beta and sigma) is
``sigma^2 Lambda M^{-1} Lambda'``, of which only the per-level diagonal blocks are formed.
Both reuse the blocked factor of :mod:`mixedtf.linalg.blocked`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from mixedtf.linalg.blocked import CrossProducts, Factorization

_CHUNK_BYTES = 2**27


def _first_term_m(cp: CrossProducts, f: Factorization) -> np.ndarray:
    """``M_l = T1' A_l T1 + I`` for every level of the first term (L1 x k1 x k1)."""
    return f.L11 @ np.swapaxes(f.L11, 1, 2)


def conditional_modes(cp: CrossProducts, f: Factorization) -> list[np.ndarray]:
    """Conditional modes ``b`` per grouping, each ``n_levels x k``, at the fitted beta."""
    LS = f.LS
    # [u_rest; beta] = L_S[:-1,:-1]^{-T} l, l = last row of L_S
    x_rest = la.solve_triangular(LS[:-1, :-1], LS[-1, :-1], lower=True, trans="T")
    v = f.Lambda_R @ np.concatenate([-x_rest, [1.0]])
    T1 = f.Ts[0]
    first = cp.groupings[0]
    t = (cp.AR1.T @ v).reshape(first.n_levels, first.k) @ T1
    u1 = np.linalg.solve(_first_term_m(cp, f), t[:, :, None])[:, :, 0]
    modes = [u1 @ T1.T]
    at = 0
    for g, T in zip(cp.groupings[1:], f.Ts[1:], strict=True):
        u = x_rest[at : at + g.n_levels * g.k].reshape(g.n_levels, g.k)
        modes.append(u @ T.T)
        at += g.n_levels * g.k
    return modes


def conditional_covariances(cp: CrossProducts, f: Factorization, sigma: float) -> list[np.ndarray]:
    """Per-level conditional covariance blocks ``n_levels x k x k`` of ``b`` for every grouping."""
    q = cp.q_rest
    first = cp.groupings[0]
    M = _first_term_m(cp, f)
    Minv = np.linalg.inv(M)
    blocks_u = [Minv]
    if q:
        LZ = f.LS[:q, :q]
        # (M^-1)_RR = S_Z^{-1} = LZ^{-T} LZ^{-1}
        Linv = la.solve_triangular(LZ, np.eye(q), lower=True)
        at = 0
        for g in cp.groupings[1:]:
            cols = Linv[:, at : at + g.n_levels * g.k].reshape(q, g.n_levels, g.k)
            blocks_u.append(np.einsum("ila,ilb->lab", cols, cols))
            at += g.n_levels * g.k
        # (M^-1)_11 = M11^-1 + V' S_Z^-1 V with V = M_R1 M11^-1 (only diagonal blocks)
        Lam1 = sp.kron(sp.identity(first.n_levels), sp.csr_matrix(f.Ts[0]))
        M_R1 = (f.Lambda_R.T @ cp.AR1 @ Lam1).tocsc()[:q]
        k = first.k
        step = max(1, _CHUNK_BYTES // (8 * q * k))
        for lo in range(0, first.n_levels, step):
            hi = min(first.n_levels, lo + step)
            V = M_R1[:, lo * k : hi * k].toarray().reshape(q, hi - lo, k)
            V = np.einsum("ila,lab->ilb", V, Minv[lo:hi]).reshape(q, (hi - lo) * k)
            H = la.solve_triangular(LZ, V, lower=True).reshape(q, hi - lo, k)
            Minv[lo:hi] += np.einsum("ila,ilb->lab", H, H)
    return [
        sigma**2 * np.einsum("ij,ljk,mk->lim", T, B, T) for T, B in zip(f.Ts, blocks_u, strict=True)
    ]
