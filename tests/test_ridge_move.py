"""The ridge move of the non-Gaussian E-step against exact maths on tiny data: which pairs
it finds, that it leaves every row's linear predictor unchanged, that its moments are the
conditional moments along the ridge, and that it keeps the prior invariant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedtf.design import build_design
from mixedtf.fit.mcem.ridge_move import ridge_move, ridge_pairs
from mixedtf.model.backend import jax_ops, tf_ops

pytest.importorskip("jax")


def _frame(crossed: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 120
    a = rng.choice(list("PQRS"), n)
    b = np.array([f"{x}{rng.integers(5)}" for x in a])  # 5 b levels inside each a
    if crossed:  # one b level seen in two a levels
        b[0], a[0] = "P0", "Q"
    return pd.DataFrame(
        {
            "y": rng.poisson(2.0, n),
            "x": rng.normal(size=n),
            "a": a,
            "b": b,
            "c": rng.choice(list("uvw"), n),
        }
    )


def _names(design, pairs):
    return [(design.groupings[p.few].name, design.groupings[p.partner].name) for p in pairs]


def test_ridge_pairs_need_exact_nesting_and_the_same_columns():
    nested = build_design("y ~ x + (1|a) + (1|b) + (1|c)", _frame(), "poisson")
    assert _names(nested, ridge_pairs(nested.groupings)) == [("a", "b")]
    # c is crossed with both; one b level in two a levels breaks the nesting
    crossed = build_design("y ~ x + (1|a) + (1|b)", _frame(crossed=True), "poisson")
    assert ridge_pairs(crossed.groupings) == []
    # a slope in one term and not the other: moving both would change eta
    slopes = build_design("y ~ x + (x|a) + (1|b)", _frame(), "poisson")
    assert ridge_pairs(slopes.groupings) == []
    both = build_design("y ~ x + (x|a) + (x|b)", _frame(), "poisson")
    assert _names(both, ridge_pairs(both.groupings)) == [("a", "b")]


def _random_part(design, effects):
    return sum(
        np.einsum("nk,cnk->cn", g.z, b[:, g.codes])
        for g, b in zip(design.groupings, effects, strict=True)
    )


@pytest.mark.parametrize("ops", [tf_ops, jax_ops], ids=["tensorflow", "jax"])
@pytest.mark.parametrize("formula", ["y ~ x + (1|a) + (1|b)", "y ~ x + (x|a) + (x|b)"])
def test_ridge_move_keeps_eta_and_gives_the_conditional_moments(ops, formula):
    design = build_design(formula, _frame(), "poisson")
    (pair,) = ridge_pairs(design.groupings)
    ga = design.groupings[pair.few]
    k, C = ga.k, 3
    rng = np.random.default_rng(5)
    effects = [rng.normal(size=(C, g.n_levels, g.k)) for g in design.groupings]
    covs = [
        np.array([[0.8, 0.2], [0.2, 0.5]])[:k, :k],
        np.array([[0.3, -0.1], [-0.1, 0.4]])[:k, :k],
    ]
    covs = [covs[0] if j == pair.few else covs[1] for j in range(2)]
    noise = rng.normal(size=(C, ga.n_levels, k))
    new, (mean_a, var_a), (mean_b, var_b) = ridge_move(
        ops, pair, pair.home, pair.counts, effects, covs, noise
    )
    new = [np.asarray(b) for b in new]
    np.testing.assert_allclose(_random_part(design, new), _random_part(design, effects), atol=1e-12)
    # the prior along the line b(d) = b + V d, per level a, is normal in d: its mean and
    # covariance by dense algebra over the level's coordinates
    inv_a, inv_b = np.linalg.inv(covs[pair.few]), np.linalg.inv(covs[pair.partner])
    for lv in range(ga.n_levels):
        members = np.flatnonzero(pair.home == lv)
        precision = inv_a + members.size * inv_b
        V = np.linalg.inv(precision)
        for c in range(C):
            grad = -inv_a @ effects[pair.few][c, lv] + inv_b @ effects[pair.partner][
                c, members
            ].sum(0)
            m = V @ grad
            np.testing.assert_allclose(np.asarray(mean_a)[c, lv], effects[pair.few][c, lv] + m)
            np.testing.assert_allclose(
                np.asarray(mean_b)[c, members], effects[pair.partner][c, members] - m
            )
            step = np.linalg.cholesky(V) @ noise[c, lv]
            np.testing.assert_allclose(new[pair.few][c, lv], effects[pair.few][c, lv] + m + step)
        np.testing.assert_allclose(np.asarray(var_a)[lv], V, atol=1e-12)
        np.testing.assert_allclose(
            np.asarray(var_b)[members], np.broadcast_to(V, (members.size, k, k))
        )


def test_ridge_move_keeps_the_prior_invariant():
    # with no data the target is the prior: effects drawn from it and moved must still
    # follow it (a wrong mean or scale along the ridge would shrink or inflate the SDs)
    design = build_design("y ~ x + (1|a) + (1|b)", _frame(), "poisson")
    (pair,) = ridge_pairs(design.groupings)
    sd = {pair.few: 0.9, pair.partner: 0.35}
    C = 40_000
    rng = np.random.default_rng(9)
    effects = [rng.normal(0, sd[j], (C, g.n_levels, 1)) for j, g in enumerate(design.groupings)]
    covs = [np.array([[sd[j] ** 2]]) for j in range(2)]
    noise = rng.normal(size=(C, design.groupings[pair.few].n_levels, 1))
    new, _, _ = ridge_move(jax_ops, pair, pair.home, pair.counts, effects, covs, noise)
    for j in range(2):
        draws = np.asarray(new[j])[..., 0]
        se = sd[j] ** 2 * np.sqrt(2 / C)  # of a variance estimated from C draws
        np.testing.assert_allclose(draws.var(0), sd[j] ** 2, atol=5 * se)
        np.testing.assert_allclose(draws.mean(0), 0.0, atol=5 * sd[j] / np.sqrt(C))
    # and the levels stay independent: the move shifts a level of A against the levels
    # of B inside it, and must not leave them correlated
    inside = np.flatnonzero(pair.home == 0)
    draws = np.column_stack(
        [np.asarray(new[pair.few])[:, :, 0], np.asarray(new[pair.partner])[:, inside, 0]]
    )
    corr = np.corrcoef(draws.T)
    np.testing.assert_allclose(corr - np.eye(corr.shape[0]), 0.0, atol=5 / np.sqrt(C))
