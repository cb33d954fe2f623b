r"""The ridge move of a term with a term nested in it, for every family's E-step.

When every level of a grouping ``B`` lies within one level of a grouping ``A`` (InstEval's
instructors in departments, ``(1|school) + (1|school:class)``) and the two terms have the
same columns, the linear predictor is unchanged by

.. math::

    b_A[a] \to b_A[a] + \delta_a, \qquad b_B[j] \to b_B[j] - \delta_{a(j)}

for every level ``j`` of ``B`` in level ``a(j)`` of ``A``: each row's ``z' b_A + z' b_B``
stays. Along these lines only the priors change, so ``delta_a`` given everything else is
normal, with precision and mean

.. math::

    P_a = \Sigma_A^{-1} + n_a \Sigma_B^{-1}, \qquad
    m_a = P_a^{-1} \Big(\Sigma_B^{-1} \sum_{j \in a} b_B[j] - \Sigma_A^{-1} b_A[a]\Big),

(``n_a`` levels of ``B`` in ``a``) and drawing it is an exact Gibbs step whatever the
family: no pass over the rows. HMC in the per-level scaled space moves a department only
by its conditional SD given its instructors (~1/40 of its marginal SD on InstEval), so
without this move SD(dept) mixed slowly. The move also gives the Rao-Blackwellised
moments of both terms given the rest: ``b_A[a] + m_a`` and ``b_B[j] - m_{a(j)}`` with
covariance ``P_a^{-1}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mixedtf.fit.mcem.kernel import spd_cholesky, spd_inverse

Array = Any


@dataclass(frozen=True, eq=False)
class RidgePair:
    """Grouping ``partner`` (B) nested in grouping ``few`` (A): ``home[j]`` is the level of
    A holding level ``j`` of B, ``counts[a]`` the levels of B in level ``a``."""

    few: int
    partner: int
    home: np.ndarray  # [L_B] int32
    counts: np.ndarray  # [L_A] float


def ridge_pairs(groupings) -> list[RidgePair]:
    """For each grouping, the grouping with the most levels exactly nested in it (every
    row of a level of B in the same level of A) and the same columns (equal ``z``), if
    any."""
    pairs = []
    for a, ga in enumerate(groupings):
        best = None
        for b, gb in enumerate(groupings):
            if b == a or gb.n_levels <= ga.n_levels or gb.colnames != ga.colnames:
                continue
            if not np.array_equal(ga.z, gb.z):
                continue
            home = np.full(gb.n_levels, -1, np.int64)
            home[gb.codes] = ga.codes
            if not np.array_equal(home[gb.codes], ga.codes) or (home < 0).any():
                continue  # a level of B in two levels of A (or a level of B without rows)
            if best is None or gb.n_levels > groupings[best[0]].n_levels:
                best = (b, home)
        if best is not None:
            b, home = best
            counts = np.bincount(home, minlength=ga.n_levels).astype(np.float64)
            pairs.append(RidgePair(a, b, home.astype(np.int32), counts))
    return pairs


def ridge_noise_shape(pair: RidgePair, groupings, chains: int) -> list[int]:
    """Shape of :func:`ridge_move`'s standard normals: ``[C, L_A, k]``."""
    ga = groupings[pair.few]
    return [chains, ga.n_levels, ga.k]


def ridge_move(
    ops: ModuleType,
    pair: RidgePair,
    home: Array,
    counts: Array,
    effects: list[Array],
    covs: list[Array],
    noise: Array,
) -> tuple[list[Array], tuple[Array, Array], tuple[Array, Array]]:
    """Draw every chain's ``delta`` (module docstring) with standard normal ``noise``
    ``[C, L_A, k]``; ``home`` and ``counts`` are the pair's arrays on the device. Returns
    the new effects and, for A and for B, the moments given the rest: the conditional
    means ``[C, L, k]`` and covariances ``[L, k, k]``."""
    o = ops
    a, b = pair.few, pair.partner
    b_a, b_b = effects[a], effects[b]
    n_a = b_a.shape[1]
    prec_a, prec_b = spd_inverse(o, covs[a]), spd_inverse(o, covs[b])  # [k, k]
    sums = o.transpose(o.segment_sum(o.transpose(b_b, [1, 0, 2]), home, n_a), [1, 0, 2])
    P = prec_a[None] + counts[:, None, None] * prec_b[None]  # [L_A, k, k]
    V = spd_inverse(o, P)
    rhs = o.einsum("km,cam->cak", prec_b, sums) - o.einsum("km,cam->cak", prec_a, b_a)
    m = o.einsum("akm,cam->cak", V, rhs)  # [C, L_A, k]
    R = spd_cholesky(o, V)
    delta = m + o.einsum("akm,cam->cak", R, noise)
    new = list(effects)
    new[a] = b_a + delta
    new[b] = b_b - o.take(delta, home, axis=1)
    mean_a = b_a + m
    mean_b = b_b - o.take(m, home, axis=1)
    return new, (mean_a, V), (mean_b, o.take(V, home, axis=0))
