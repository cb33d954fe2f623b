r"""A joint Gibbs move of a few-level term with the term nested in it (Gaussian E-step).

InstEval's 1128 instructors are nested in its 14 departments, so the posterior has a ridge:
a department's effect up by ``delta`` and all its instructors' down by ``delta`` fits the
data almost as well. HMC in the per-level scaled space moves a department by its
*conditional* SD (given its instructors, ~1/40 of its marginal SD), so SD(dept)'s iterates
had lag-1 autocorrelation 0.9 and were 5-11% off after a few hundred iterations.

This move draws the pair exactly from its conditional given every other term. With ``r``
the residual without the pair (``A``: few levels, ``B``: its partner), integrating ``b_B``
out level by level gives ``b_A ~ N(Q^{-1} l, Q^{-1})`` with

.. math::

    Q = \operatorname{blockdiag}_a(A^A_a/\sigma^2 + \Sigma_A^{-1})
        - \sum_j G_j' P_j^{-1} G_j, \qquad
    l = Z_A' r / \sigma^2 - \sum_j G_j' P_j^{-1} h_j,

where ``P_j = A^B_j / sigma^2 + Sigma_B^{-1}`` and ``h_j = (Z_B' r)_j / sigma^2`` are level
``j``'s precision and score and ``G_j = sum_{i in j} z^B_i z^A_i' / sigma^2`` its cross
products with ``A``'s levels. Then ``b_B | b_A`` level by level. The dense ``Q`` is
``(L_A k_A)^2``: the move is for terms with few levels. Its mean and ``Q^{-1}`` also give
the Rao-Blackwellised statistics of ``Sigma_A``: ``E[b_A b_A' | r] = mu mu' + Q^{-1}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mixedtf.fit.mcem.kernel import spd_cholesky, spd_inverse
from mixedtf.model import CompiledModel

Array = Any

MAX_BLOCK = 128  # L_A k_A: the dense Q
MAX_CROSS = 4_000_000  # L_B k_B L_A k_A: the cross products G
MIN_SHARE = 0.5  # fraction of rows whose B level lies mostly in one A level


@dataclass(frozen=True, eq=False)
class NestedPair:
    """Grouping ``few`` (A) with the grouping ``partner`` (B) nested (mostly) in it."""

    few: int
    partner: int
    share: float  # rows whose B level has most of its rows in one A level, as a fraction
    cross: np.ndarray  # [L_B, k_B, L_A, k_A]: sum over rows of z_B z_A' by (B, A) level


def nested_pairs(groupings, nobs: int) -> list[NestedPair]:
    """For each grouping with at most ``MAX_BLOCK`` effects, the grouping with more levels
    that is most nested in it (``MIN_SHARE`` at least), if any."""
    pairs = []
    for a, ga in enumerate(groupings):
        if ga.n_levels * ga.k > MAX_BLOCK:
            continue
        best = None
        for b, gb in enumerate(groupings):
            if b == a or gb.n_levels <= ga.n_levels:
                continue
            if gb.n_levels * gb.k * ga.n_levels * ga.k > MAX_CROSS:
                continue
            counts = np.zeros((gb.n_levels, ga.n_levels))
            np.add.at(counts, (gb.codes, ga.codes), 1.0)
            share = float(counts.max(axis=1).sum() / nobs)
            if share >= MIN_SHARE and (best is None or share > best[0]):
                best = (share, b)
        if best is not None:
            gb = groupings[best[1]]
            cross = np.zeros((gb.n_levels, gb.k, ga.n_levels, ga.k))
            np.add.at(cross, (gb.codes, slice(None), ga.codes), gb.z[:, :, None] * ga.z[:, None, :])
            pairs.append(NestedPair(a, best[1], best[0], cross))
    return pairs


def pair_noise_shapes(pair: NestedPair, groupings, chains: int) -> list[list[int]]:
    """Shapes of :func:`joint_move`'s standard normals: ``[C, L_A k_A]`` and ``[C, L_B, k_B]``."""
    ga, gb = groupings[pair.few], groupings[pair.partner]
    return [[chains, ga.n_levels * ga.k], [chains, gb.n_levels, gb.k]]


def _level_precision(o: ModuleType, data: Array, cov: Array) -> Array:
    """``data_l + Sigma^{-1}`` per level, ``[L, k, k]``."""
    return data + spd_inverse(o, cov)[None]


def joint_move(
    model: CompiledModel,
    pair: NestedPair,
    A: list[Array],
    effects: list[Array],
    beta: Array,
    covs: list[Array],
    sigma2: Array,
    noise: list[Array],
    cross: Array | None = None,
) -> tuple[list[Array], Array, Array]:
    """Draw ``(b_A, b_B)`` of every chain from their conditional given the other terms,
    with standard normal ``noise`` shaped as :func:`pair_noise_shapes`.

    ``A`` holds each grouping's ``sum z z'`` per level; ``cross`` is ``pair.cross`` on the
    device (default: ``pair.cross`` itself). Returns the new effects, the
    conditional mean of ``b_A`` given the other terms ``[C, L_A, k_A]`` and its conditional
    covariance per level ``[L_A, k_A, k_A]`` (the diagonal blocks of ``Q^{-1}``).
    """
    a, b = pair.few, pair.partner

    def random_part(pair_effects):
        full = list(effects)
        full[a], full[b] = pair_effects
        return model.random_part(full)

    zb, pullback = model.ops.vjp(random_part, [effects[a], effects[b]])  # Z b: [C, n]
    e = model.y - model.offset - model.ops.matvec(model.X, beta) - zb
    t_a, t_b = pullback(e)  # Z_A'e and Z_B'e per chain, through the gathers' scatter
    new, (mean_a, var_a), _ = pair_draw(
        model.ops, pair, A, t_a, t_b, effects, covs, sigma2, noise, cross
    )
    return new, mean_a, var_a


def pair_draw(
    o: ModuleType,
    pair: NestedPair,
    A: list[Array],
    t_a: Array,
    t_b: Array,
    effects: list[Array],
    covs: list[Array],
    sigma2: Array,
    noise: list[Array],
    cross: Array | None = None,
) -> tuple[list[Array], tuple[Array, Array], tuple[Array, Array]]:
    """The pair's draw from ``t_A = Z_A' e`` and ``t_B = Z_B' e`` per chain, ``e`` the
    residual of the current effects (the pair's own included). Returns the new effects,
    ``b_A``'s conditional mean ``[C, L_A, k_A]`` and covariance ``[L_A, k_A, k_A]`` given
    the terms outside the pair, and ``b_B``'s given those and the new ``b_A``. The algebra
    is float64, the results in the effects' dtype."""
    a, b = pair.few, pair.partner
    f64, dt = o.float64, effects[a].dtype
    t_a, t_b = o.cast(t_a, f64), o.cast(t_b, f64)
    b_a, b_b = o.cast(effects[a], f64), o.cast(effects[b], f64)
    cross = o.cast(pair.cross if cross is None else cross, f64)
    A_a, A_b = o.cast(A[a], f64), o.cast(A[b], f64)
    s2 = o.cast(sigma2, f64)
    # scores of the pair with the pair's own contribution added back: Z'r
    s_a = t_a + o.einsum("akm,cam->cak", A_a, b_a) + o.einsum("jbak,cjb->cak", cross, b_b)
    s_b = t_b + o.einsum("jbd,cjd->cjb", A_b, b_b) + o.einsum("jbak,cak->cjb", cross, b_a)
    G = cross / s2
    P_inv = spd_inverse(o, _level_precision(o, A_b / s2, o.cast(covs[b], f64)))  # [L_B, k_B, k_B]
    h = s_b / s2
    n_a, k_a = A_a.shape[0], A_a.shape[1]
    D = _level_precision(o, A_a / s2, o.cast(covs[a], f64))  # [L_A, k_A, k_A]
    Q = o.reshape(
        o.einsum("akm,ab->akbm", D, o.eye(n_a, dtype=f64))
        - o.einsum("jbak,jbd,jdle->akle", G, P_inv, G),
        [n_a * k_a, n_a * k_a],
    )
    lin = o.reshape(s_a / s2 - o.einsum("jbak,jbd,cjd->cak", G, P_inv, h), [-1, n_a * k_a])
    L = o.cholesky(Q)
    mean_a = o.transpose(o.cholesky_solve(L, o.transpose(lin)))  # [C, L_A k_A]
    noise_a, noise_b = (o.cast(z, f64) for z in noise)
    draw_a = mean_a + o.transpose(
        o.triangular_solve(L, o.transpose(noise_a), lower=True, adjoint=True)
    )  # L' x = noise: x ~ N(0, Q^{-1})
    draw_a = o.reshape(draw_a, b_a.shape)
    # diagonal blocks of Q^{-1} = L^{-T} L^{-1}: [L_A, k_A, k_A]
    l_inv = o.reshape(
        o.triangular_solve(L, o.eye(n_a * k_a, dtype=f64), lower=True),
        [n_a * k_a, n_a, k_a],
    )
    var_a = o.einsum("ral,ram->alm", l_inv, l_inv)
    # b_B | b_A, level by level
    mean_b = o.einsum("jbd,cjd->cjb", P_inv, h - o.einsum("jbak,cak->cjb", G, draw_a))
    draw_b = mean_b + o.einsum("jbd,cjd->cjb", spd_cholesky(o, P_inv), noise_b)
    new = list(effects)
    new[a], new[b] = o.cast(draw_a, dt), o.cast(draw_b, dt)
    mean_a = o.reshape(mean_a, b_a.shape)
    return (
        new,
        (o.cast(mean_a, dt), o.cast(var_a, dt)),
        (o.cast(mean_b, dt), o.cast(P_inv, dt)),
    )
