"""The Gaussian E-step's exact pieces against dense linear algebra on tiny data: the joint
move of a few-level term with its nested term, and the conditional means behind the
Rao-Blackwellised statistics."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from scipy.linalg import block_diag

import mixedtf as mtf
from mixedtf.design import build_design
from mixedtf.fit.mcem.joint_move import joint_move, nested_pairs, pair_noise_shapes
from mixedtf.fit.mcem.kernel import iteration_noise, level_factors, whitened_transition
from mixedtf.model import compile_model
from mixedtf.model.backend import tf_ops


def _nested_frame() -> pd.DataFrame:
    rng = np.random.default_rng(8)
    n = 90
    a = rng.choice(list("PQR"), n)
    b = np.array([f"{x}{rng.integers(4)}" for x in a])  # 4 b levels inside each a
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "a": a,
            "b": b,
            "c": rng.choice(list("uvwxy"), n),
        }
    )


def _dense_z(design) -> list[np.ndarray]:
    """Each term's dense Z, level-major (columns level 0's k, level 1's k, ...)."""
    blocks = []
    for g in design.groupings:
        Z = np.zeros((design.nobs, g.n_levels * g.k))
        for c in range(g.k):
            Z[np.arange(design.nobs), g.codes * g.k + c] = g.z[:, c]
        blocks.append(Z)
    return blocks


def _index(design, name):
    return [g.name for g in design.groupings].index(name)


@pytest.mark.parametrize("formula", ["y ~ x + (1|a) + (1|a:b) + (1|c)", "y ~ x + (x|a) + (1|a:b)"])
def test_joint_move_is_the_exact_conditional(formula):
    design = build_design(formula, _nested_frame())
    model = compile_model(design, dtype=tf.float64)
    (pair,) = nested_pairs(design.groupings, design.nobs)
    a, b = _index(design, "a"), _index(design, "a:b")
    assert (pair.few, pair.partner, pair.share) == (a, b, 1.0)
    rng = np.random.default_rng(1)
    covs = [
        np.array([[0.7]]) if g.k == 1 else np.array([[0.8, 0.2], [0.2, 0.5]])
        for g in design.groupings
    ]
    beta, sigma2 = np.array([0.3, -0.2]), 0.6
    chains = 4000
    effects = [rng.normal(size=(chains, g.n_levels, g.k)) for g in design.groupings]
    A = []
    for g in design.groupings:
        acc = np.zeros((g.n_levels, g.k, g.k))
        np.add.at(acc, g.codes, g.z[:, :, None] * g.z[:, None, :])
        A.append(tf.constant(acc))
    shapes = pair_noise_shapes(pair, design.groupings, chains)
    noise = [tf.constant(rng.normal(size=s)) for s in shapes]
    new, mean_a, var_a = joint_move(
        model,
        pair,
        A,
        [tf.constant(e) for e in effects],
        tf.constant(beta),
        [tf.constant(c) for c in covs],
        tf.constant(sigma2),
        noise,
    )
    # dense: (b_a, b_ab) | y, the other terms ~ N(M^{-1} Z'r / sigma2, M^{-1})
    Zs = _dense_z(design)
    pair_cols = np.concatenate([Zs[a], Zs[b]], axis=1)
    sizes = [Zs[a].shape[1], Zs[b].shape[1]]
    prior_pair = block_diag(
        np.kron(np.eye(design.groupings[a].n_levels), covs[a]),
        np.kron(np.eye(design.groupings[b].n_levels), covs[b]),
    )
    M = pair_cols.T @ pair_cols / sigma2 + np.linalg.inv(prior_pair)
    post_cov = np.linalg.inv(M)
    others = [j for j in range(len(Zs)) if j not in (a, b)]
    for c in (0, 1):  # per chain, given that chain's other terms
        r = design.y - design.X @ beta
        for j in others:
            r = r - Zs[j] @ effects[j][c].reshape(-1)
        post_mean = post_cov @ pair_cols.T @ r / sigma2
        np.testing.assert_allclose(
            mean_a.numpy()[c].reshape(-1), post_mean[: sizes[0]], rtol=1e-8, atol=1e-10
        )
    k = design.groupings[a].k
    want_var = np.stack(
        [post_cov[i * k : (i + 1) * k, i * k : (i + 1) * k] for i in range(sizes[0] // k)]
    )
    np.testing.assert_allclose(var_a.numpy(), want_var, rtol=1e-6)
    # the draws: chain 0's conditioning is shared when there are no other terms
    if not others:
        r = design.y - design.X @ beta
        post_mean = post_cov @ pair_cols.T @ r / sigma2
        draws = np.concatenate(
            [new[a].numpy().reshape(chains, -1), new[b].numpy().reshape(chains, -1)], axis=1
        )
        se = np.sqrt(np.diag(post_cov) / chains)
        assert np.all(np.abs(draws.mean(0) - post_mean) < 4.5 * se)
        emp = np.cov(draws, rowvar=False)
        np.testing.assert_allclose(np.diag(emp), np.diag(post_cov), rtol=0.12)


def test_conditional_means_from_the_transition_gradient():
    """``b + R R' grad log p`` is each level's conditional mean given everything else."""
    design = build_design("y ~ x + (x|a) + (1|c)", _nested_frame())
    model = compile_model(design, dtype=tf.float64)
    rng = np.random.default_rng(2)
    covs = [
        np.array([[0.8, 0.2], [0.2, 0.5]]) if g.k == 2 else np.array([[0.4]])
        for g in design.groupings
    ]
    beta, sigma2 = np.array([0.1, 0.4]), 0.9
    a, c_ = _index(design, "a"), _index(design, "c")
    effects = [rng.normal(size=(3, g.n_levels, g.k)) for g in design.groupings]
    A = []
    for g in design.groupings:
        acc = np.zeros((g.n_levels, g.k, g.k))
        np.add.at(acc, g.codes, g.z[:, :, None] * g.z[:, None, :])
        A.append(tf.constant(acc / sigma2))
    factors = level_factors(tf_ops, A, [tf.constant(c) for c in covs], design.groupings)
    params = {
        "beta": tf.constant(beta),
        "sigma": tf.constant(np.sqrt(sigma2)),
        "scale_tril_a": tf.constant(np.linalg.cholesky(covs[a])),
        "sd_c": tf.constant(np.sqrt(covs[c_][0, 0])),
    }
    zero_noise = [tf.zeros([3, g.n_levels, g.k], tf.float64) for g in design.groupings]
    zero_noise.append(tf.zeros([2, 3], tf.float64))
    new, _, _, steps = whitened_transition(
        model, params, factors, [tf.constant(e) for e in effects], 0.0, 1, zero_noise
    )
    np.testing.assert_allclose(new[a].numpy(), effects[a])  # a zero step stays put
    Zs = _dense_z(design)
    for t, other in ((a, c_), (c_, a)):
        g = design.groupings[t]
        for c in range(3):
            r = design.y - design.X @ beta - Zs[other] @ effects[other][c].reshape(-1)
            P = Zs[t].T @ Zs[t] / sigma2 + np.kron(np.eye(g.n_levels), np.linalg.inv(covs[t]))
            want = np.linalg.solve(P, Zs[t].T @ r / sigma2)
            got = (effects[t][c] + steps[t].numpy()[c]).reshape(-1)
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_pairs_found_where_a_term_nests_in_a_few_level_one():
    design = build_design("y ~ service + (1|s) + (1|d) + (1|dept)", mtf.datasets.load("InstEval"))
    (pair,) = nested_pairs(design.groupings, design.nobs)
    names = [g.name for g in design.groupings]
    assert (names[pair.few], names[pair.partner], pair.share) == ("dept", "d", 1.0)
    pen = build_design("diameter ~ 1 + (1|plate) + (1|sample)", mtf.datasets.load("Penicillin"))
    assert nested_pairs(pen.groupings, pen.nobs) == []  # crossed, not nested


def test_iteration_noise_is_keyed_by_seed_and_iteration():
    seed = tf.constant([7, 12345], tf.int32)
    shapes = [[3, 4, 1], [2, 3]]
    one = iteration_noise(tf_ops, seed, tf.constant(5), shapes, tf.float64)
    again = iteration_noise(tf_ops, seed, tf.constant(5), shapes, tf.float64)
    other = iteration_noise(tf_ops, seed, tf.constant(6), shapes, tf.float64)
    assert [t.shape for t in one] == [(3, 4, 1), (2, 3)]
    np.testing.assert_array_equal(one[0].numpy(), again[0].numpy())
    assert not np.allclose(one[0].numpy(), other[0].numpy())
    z = iteration_noise(tf_ops, seed, tf.constant(0), [[2, 50_000]], tf.float64)[0].numpy()
    # the acceptance test's uniform, exp(-(z1^2 + z2^2) / 2)
    u = np.exp(-0.5 * (z**2).sum(0))
    assert abs(u.mean() - 0.5) < 0.005 and abs(np.mean(u < 0.1) - 0.1) < 0.005
