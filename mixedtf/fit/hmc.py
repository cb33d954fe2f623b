"""Hamiltonian Monte Carlo pieces for the E-step, as pure TensorFlow functions (XLA-safe).

Positions are lists of tensors with a leading chain dimension; the target returns one
log density per chain. One ``transition`` draws momenta, runs ``n_leapfrog`` steps and
accepts or rejects each chain. The step size is shared by the chains and adapted by dual
averaging (Hoffman & Gelman 2014, sec. 3.2) towards a target acceptance rate.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

Target = Callable[[list[tf.Tensor]], tf.Tensor]


def value_and_gradient(target: Target, x: list[tf.Tensor]) -> tuple[tf.Tensor, list[tf.Tensor]]:
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = target(x)
    return value, tape.gradient(value, x)


def transition(
    target: Target,
    x: list[tf.Tensor],
    step_size: tf.Tensor,
    n_leapfrog: int,
    seed: tf.Tensor,
) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
    """One HMC transition of every chain.

    Returns the new positions, the acceptance probability per chain and the target at the
    new positions.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=len(x) + 1)
    p0 = [
        tf.random.stateless_normal(tf.shape(xi), seeds[i], dtype=xi.dtype) for i, xi in enumerate(x)
    ]
    logp0, g0 = value_and_gradient(target, x)
    eps = tf.cast(step_size, x[0].dtype)

    def kinetic(p):
        return tf.add_n(
            [0.5 * tf.reduce_sum(tf.reshape(pi * pi, [tf.shape(pi)[0], -1]), axis=-1) for pi in p]
        )

    def body(i, xs, ps, gs, _):
        ps = [pi + 0.5 * eps * gi for pi, gi in zip(ps, gs, strict=True)]
        xs = [xi + eps * pi for xi, pi in zip(xs, ps, strict=True)]
        logp, gs = value_and_gradient(target, xs)
        ps = [pi + 0.5 * eps * gi for pi, gi in zip(ps, gs, strict=True)]
        return i + 1, xs, ps, gs, logp

    _, x1, p1, _, logp1 = tf.while_loop(
        lambda i, *_: i < n_leapfrog, body, (tf.constant(0), x, p0, g0, logp0)
    )
    log_ratio = logp1 - kinetic(p1) - (logp0 - kinetic(p0))
    log_ratio = tf.where(
        tf.math.is_finite(log_ratio), log_ratio, tf.constant(-float("inf"), log_ratio.dtype)
    )
    accept_prob = tf.exp(tf.minimum(log_ratio, 0.0))
    u = tf.random.stateless_uniform(tf.shape(accept_prob), seeds[-1], dtype=accept_prob.dtype)
    accept = u < accept_prob

    def choose(new, old):
        mask = tf.reshape(accept, [-1] + [1] * (len(new.shape) - 1))
        return tf.where(mask, new, old)

    x_new = [choose(a, b) for a, b in zip(x1, x, strict=True)]
    logp_new = tf.where(accept, logp1, logp0)
    return x_new, accept_prob, logp_new


# dual-averaging constants of Hoffman & Gelman (2014)
DA_GAMMA, DA_T0, DA_KAPPA = 0.05, 10.0, 0.75


def adapt_step(
    t: tf.Tensor,
    h_bar: tf.Tensor,
    log_eps_bar: tf.Tensor,
    mu: tf.Tensor,
    accept_rate: tf.Tensor,
    target_accept: float,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Dual averaging: returns ``(t + 1, h_bar, log_eps, log_eps_bar)`` after observing
    ``accept_rate`` (mean acceptance probability over chains)."""
    t = t + 1.0
    w = 1.0 / (t + DA_T0)
    h_bar = (1.0 - w) * h_bar + w * (target_accept - accept_rate)
    log_eps = mu - tf.sqrt(t) / DA_GAMMA * h_bar
    eta = t ** (-DA_KAPPA)
    log_eps_bar = eta * log_eps + (1.0 - eta) * log_eps_bar
    return t, h_bar, log_eps, log_eps_bar
