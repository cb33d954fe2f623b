"""The Gaussian E-step's Gibbs sweep against dense linear algebra on tiny data: it keeps
the exact posterior of the effects invariant, its conditional moments are the dense
conditionals given the other terms, and the residual it returns is that of its draws."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from scipy.linalg import block_diag
from test_joint_move import _dense_z, _nested_frame

from mixedtf.design import build_design
from mixedtf.fit.mcem.gibbs import gibbs_sweep, residual, sweep_noise_shapes, unpaired
from mixedtf.fit.mcem.joint_move import nested_pairs
from mixedtf.model import compile_model

BACKENDS = [
    "tensorflow",
    pytest.param(
        "jax",
        marks=pytest.mark.skipif(
            __import__("importlib").util.find_spec("jax") is None, reason="JAX not installed"
        ),
    ),
]


def _setup(formula: str, backend: str, joint: bool):
    design = build_design(formula, _nested_frame())
    model = compile_model(design, dtype="float64", backend=backend)
    covs = [
        np.array([[0.7]]) if g.k == 1 else np.array([[0.8, 0.2], [0.2, 0.5]])
        for g in design.groupings
    ]
    beta, sigma2 = np.array([0.3, -0.2]), 0.6
    A = []
    for g in design.groupings:
        acc = np.zeros((g.n_levels, g.k, g.k))
        np.add.at(acc, g.codes, g.z[:, :, None] * g.z[:, None, :])
        A.append(acc)
    pairs = nested_pairs(design.groupings, design.nobs) if joint else []
    return design, model, covs, beta, sigma2, A, pairs


def _posterior(design, covs, beta, sigma2):
    """The dense posterior of every effect (level-major per term) given y: mean, covariance."""
    Z = np.concatenate(_dense_z(design), axis=1)
    prior = block_diag(
        *[np.kron(np.eye(g.n_levels), c) for g, c in zip(design.groupings, covs, strict=True)]
    )
    cov = np.linalg.inv(Z.T @ Z / sigma2 + np.linalg.inv(prior))
    return cov @ Z.T @ (design.y - design.X @ beta) / sigma2, cov


def _sweep(model, design, covs, beta, sigma2, A, pairs, effects, rng):
    o = model.ops
    chains = effects[0].shape[0]
    noise = [
        o.constant(rng.normal(size=s)) for s in sweep_noise_shapes(design.groupings, pairs, chains)
    ]
    bs = [o.constant(e) for e in effects]
    r = residual(model, o.constant(beta), bs)
    out = gibbs_sweep(
        model,
        pairs,
        [o.constant(a) for a in A],
        [o.constant(p.cross) for p in pairs],
        r,
        bs,
        [o.constant(c) for c in covs],
        o.constant(np.float64(sigma2)),
        noise,
    )
    return o.to_numpy(out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("formula", "joint"),
    [
        ("y ~ x + (1|a) + (1|a:b) + (1|c)", True),
        ("y ~ x + (1|a) + (1|a:b) + (1|c)", False),
        ("y ~ x + (x|a) + (1|a:b)", True),
    ],
)
def test_the_sweep_keeps_the_posterior(formula, joint, backend):
    design, model, covs, beta, sigma2, A, pairs = _setup(formula, backend, joint)
    mean, cov = _posterior(design, covs, beta, sigma2)
    rng = np.random.default_rng(3)
    chains = 20_000
    start = rng.multivariate_normal(mean, cov, size=chains)
    sizes = [g.n_levels * g.k for g in design.groupings]
    split = np.split(start, np.cumsum(sizes)[:-1], axis=1)
    effects = [
        s.reshape(chains, g.n_levels, g.k) for s, g in zip(split, design.groupings, strict=True)
    ]
    new, means, variances, r = _sweep(model, design, covs, beta, sigma2, A, pairs, effects, rng)
    flat = np.concatenate([b.reshape(chains, -1) for b in new], axis=1)
    # the draws stay distributed as the posterior: means within 5 s.e., variances within 5 s.e.
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(flat.mean(0) - mean) < 5 * sd / np.sqrt(chains))
    assert np.all(np.abs(flat.var(0) / np.diag(cov) - 1) < 5 * np.sqrt(2 / chains))
    # the residual returned is that of the new draws
    Z = np.concatenate(_dense_z(design), axis=1)
    want = design.y - design.X @ beta - flat @ Z.T
    np.testing.assert_allclose(r, want, atol=1e-9)
    # the last term swept (the last outside a pair, else the pair's partner): its
    # conditional mean and covariance given the new draws of every other term
    singles = unpaired(design.groupings, pairs)
    j = singles[-1] if singles else pairs[-1].partner
    lo, hi = sum(sizes[:j]), sum(sizes[: j + 1])
    P = np.linalg.inv(cov)
    P_jj = P[lo:hi, lo:hi]
    others = np.delete(np.arange(flat.shape[1]), np.arange(lo, hi))
    b_rest = flat[:3, others]  # three chains
    score = (Z[:, lo:hi].T @ (design.y - design.X @ beta)) / sigma2
    cond_mean = np.linalg.solve(P_jj, score[:, None] - P[lo:hi][:, others] @ b_rest.T).T
    np.testing.assert_allclose(means[j][:3].reshape(3, -1), cond_mean, rtol=1e-8, atol=1e-10)
    cond_cov = np.linalg.inv(P_jj)
    k = design.groupings[j].k
    blocks = np.stack(
        [cond_cov[i * k : (i + 1) * k, i * k : (i + 1) * k] for i in range(sizes[j] // k)]
    )
    np.testing.assert_allclose(variances[j], blocks, rtol=1e-8)
