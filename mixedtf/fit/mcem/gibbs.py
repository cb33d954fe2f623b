r"""The Gaussian E-step as a Gibbs sweep: each term's levels, or a nested pair of terms
jointly, drawn exactly from their conditional given every other term.

For a Gaussian model the conditional of term ``j``'s effects given the others is normal
and independent across its levels: with ``r`` the residual ``y - X beta - Z b``,

.. math::

    b_{jl} \mid \text{rest} \sim N\big(V_l\, s_l / \sigma^2,\; V_l\big), \qquad
    V_l = (A_l / \sigma^2 + \Sigma_j^{-1})^{-1}, \quad
    s_l = (Z_j' r)_l + A_l b_{jl},

``A_l`` the level's ``sum z z'``. One sweep costs, per term, one scatter of the residual
into the levels and one gather to update it: about a third of what one HMC gradient costs
for three terms, against the six gradients of a five-step transition. The conditional
moments ``(V_l s_l / sigma^2, V_l)`` are the Rao-Blackwellised statistics of the M-step.
A few-level term with a term nested in it is drawn jointly with that term
(:mod:`~mixedtf.fit.mcem.joint_move`): a sweep of single terms would crawl along the
ridge the nesting leaves.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from mixedtf.fit.mcem.joint_move import NestedPair, pair_draw, pair_noise_shapes
from mixedtf.fit.mcem.kernel import level_factors
from mixedtf.model import CompiledModel

Array = Any


def unpaired(groupings, pairs: list[NestedPair]) -> list[int]:
    """Indices of the terms outside every pair: the sweep draws them one by one."""
    paired = {j for p in pairs for j in (p.few, p.partner)}
    return [j for j in range(len(groupings)) if j not in paired]


def sweep_noise_shapes(groupings, pairs: list[NestedPair], chains: int) -> list[list[int]]:
    """Shapes of :func:`gibbs_sweep`'s standard normals: the pairs' (in order), then one
    ``[C, L, k]`` per term outside every pair."""
    shapes = []
    for pair in pairs:
        shapes += pair_noise_shapes(pair, groupings, chains)
    shapes += [[chains, groupings[j].n_levels, groupings[j].k] for j in unpaired(groupings, pairs)]
    return shapes


def residual(model: CompiledModel, beta: Array, effects: list[Array]) -> Array:
    """``y - offset - X beta - Z b_c`` for every chain: ``[C, n]``."""
    o = model.ops
    return model.y - model.offset - o.matvec(model.X, beta) - model.random_part(effects)


def scatter(model: CompiledModel, j: int, r: Array) -> Array:
    """``Z_j' r`` per chain, level and column: ``[C, L, k]``."""
    return model.gathers[j].scatter(r[..., None] * model.z[j])


def gathered(model: CompiledModel, j: int, b: Array) -> Array:
    """``Z_j b`` per chain: ``[C, n]``."""
    return model.ops.sum(model.gathers[j](b) * model.z[j], -1)


def term_draw(
    o: ModuleType, group, A: Array, t: Array, b: Array, cov: Array, sigma2: Array, noise: Array
) -> tuple[Array, Array, Array]:
    """One term's draw from its conditional given the others, from ``t = Z_j' r`` at the
    current ``b``: returns the draw, the conditional means ``[C, L, k]`` and covariances
    ``[L, k, k]`` (float64 algebra, results in ``b``'s dtype)."""
    f64, dt = o.float64, b.dtype
    A64, b64, s2 = o.cast(A, f64), o.cast(b, f64), o.cast(sigma2, f64)
    if group.k == 1:
        var = 1.0 / (A64[:, 0, :] / s2 + 1.0 / o.cast(cov, f64)[0])  # [L, 1]
        s = o.cast(t, f64) + A64[:, 0, :] * b64
        mean = var * s / s2
        draw = mean + o.sqrt(var) * o.cast(noise, f64)
        var = var[:, :, None]
    else:
        (R,) = level_factors(o, [A64 / s2], [o.cast(cov, f64)], [group])
        s = o.cast(t, f64) + o.einsum("lkm,clm->clk", A64, b64)
        var = o.matmul(R, R, transpose_b=True)
        mean = o.einsum("lkm,clm->clk", var, s) / s2
        draw = mean + o.einsum("lkm,clm->clk", R, o.cast(noise, f64))
    return o.cast(draw, dt), o.cast(mean, dt), o.cast(var, dt)


def gibbs_sweep(
    model: CompiledModel,
    pairs: list[NestedPair],
    A: list[Array],
    cross: list[Array],
    r: Array,
    effects: list[Array],
    covs: list[Array],
    sigma2: Array,
    noise: list[Array],
) -> tuple[list[Array], list[Array], list[Array], Array]:
    """One sweep: each nested pair jointly, then each other term, every block drawn given
    the current values of the rest, the residual ``r`` (``[C, n]``, for ``effects``)
    kept up to date and computed once per block (``computed_once``: XLA would otherwise
    recompute it, gathers and all, in every consumer).
    Returns the new effects, per term the conditional means ``[C, L, k]``
    and covariances ``[L, k, k]`` of its last draw, and the residual of the new effects."""
    o = model.ops
    groupings = model.design.groupings
    effects = list(effects)
    means: list[Array] = [None] * len(effects)
    variances: list[Array] = [None] * len(effects)
    at = 0
    r = o.computed_once(r)
    for i, pair in enumerate(pairs):
        a, b = pair.few, pair.partner
        new, (mean_a, var_a), (mean_b, var_b) = pair_draw(
            o,
            pair,
            A,
            scatter(model, a, r),
            scatter(model, b, r),
            effects,
            covs,
            sigma2,
            noise[at : at + 2],
            cross[i],
        )
        at += 2
        new[a], new[b] = o.computed_once(new[a]), o.computed_once(new[b])
        r = r - gathered(model, a, new[a] - effects[a]) - gathered(model, b, new[b] - effects[b])
        r = o.computed_once(r)
        effects = new
        means[a], variances[a], means[b], variances[b] = mean_a, var_a, mean_b, var_b
    for j in unpaired(groupings, pairs):
        draw, means[j], variances[j] = term_draw(
            o, groupings[j], A[j], scatter(model, j, r), effects[j], covs[j], sigma2, noise[at]
        )
        at += 1
        draw = o.computed_once(draw)
        r = r - gathered(model, j, draw - effects[j])
        r = o.computed_once(r)
        effects[j] = draw
    return effects, means, variances, r
