"""The HMC transition samples its target: moments of a correlated Gaussian."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from mixedtf.fit.mcem import hmc
from mixedtf.fit.mcem.kernel import iteration_noise
from mixedtf.model.backend import tf_ops


def test_transition_leaves_a_gaussian_invariant():
    rng = np.random.default_rng(0)
    d, chains, steps = 6, 256, 300
    L = np.tril(rng.normal(size=(d, d))) * 0.3 + np.diag(np.linspace(0.5, 1.5, d))
    cov = L @ L.T
    prec = tf.constant(np.linalg.inv(cov))
    mean = tf.constant(np.linspace(-1.0, 1.0, d))

    def target(xs):
        r = xs[0] - mean
        return -0.5 * tf.reduce_sum(r * tf.linalg.matvec(prec, r), axis=-1)

    @tf.function(jit_compile=True)
    def run(x):
        def body(i, x, total, total_sq, accepted):
            z = iteration_noise(
                tf_ops, tf.constant([3, 11], tf.int32), i, [[chains, d], [2, chains]], tf.float64
            )
            (x,), prob, _, _ = hmc.transition(
                tf_ops, target, [x], tf.constant(0.35, tf.float64), 4, z[:1], z[1]
            )
            on = tf.cast(i >= 50, tf.float64)
            return (
                i + 1,
                x,
                total + on * x,
                total_sq + on * x[:, :, None] * x[:, None, :],
                accepted + tf.reduce_mean(prob),
            )

        zero = tf.zeros([chains, d], tf.float64)
        out = tf.while_loop(
            lambda i, *_: i < steps,
            body,
            (
                tf.constant(0),
                x,
                zero,
                tf.zeros([chains, d, d], tf.float64),
                tf.constant(0.0, tf.float64),
            ),
        )
        return out[2], out[3], out[4]

    total, total_sq, accepted = run(tf.zeros([chains, d], tf.float64))
    n = (steps - 50) * chains
    m = tf.reduce_sum(total, 0).numpy() / n
    second = tf.reduce_sum(total_sq, 0).numpy() / n
    emp_cov = second - np.outer(m, m)
    assert 0.3 < accepted.numpy() / steps < 1.0
    # draws are autocorrelated: allow ~10x the i.i.d. standard error on the mean
    np.testing.assert_allclose(m, mean.numpy(), atol=10 * np.sqrt(np.diag(cov).max() / n))
    np.testing.assert_allclose(emp_cov, cov, atol=0.06 * np.abs(cov).max())
