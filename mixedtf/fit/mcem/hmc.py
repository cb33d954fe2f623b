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
    """The target in float64 (the log densities the acceptance test differences) and its
    gradient in the positions' own dtype."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.cast(target(x), tf.float64)
    return value, tape.gradient(value, x)


def transition(
    target: Target,
    x: list[tf.Tensor],
    step_size: tf.Tensor,
    n_leapfrog: int,
    momenta: list[tf.Tensor],
    z_accept: tf.Tensor,
) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """One HMC transition of every chain, with standard normal ``momenta`` (shaped as
    ``x``) and two standard normals per chain ``z_accept [2, C]`` for the acceptance test:
    ``exp(-(z_1^2 + z_2^2) / 2)`` is uniform (a chi-square with 2 degrees of freedom is
    exponential), and costs less to compile than ``Phi(z)``.

    Returns the new positions, the acceptance probability per chain, the target at the
    new positions (float64: at millions of rows a float32 log density has an ulp near 1,
    which would corrupt the acceptance test) and its gradient there.
    """
    p0 = momenta
    eps = tf.cast(step_size, x[0].dtype)

    def kinetic(p):
        return tf.add_n(
            [0.5 * tf.reduce_sum(tf.reshape(pi * pi, [tf.shape(pi)[0], -1]), axis=-1) for pi in p]
        )

    # Leapfrog with one gradient site: pass i evaluates the gradient at x_i and joins the
    # half momentum steps either side of it (a half step at i = 0 and i = n). Writing the
    # first gradient outside the loop doubled the largest part of the XLA program.
    def body(i, xs, ps, logp, gs, logp0, g0):
        logp, gs = value_and_gradient(target, xs)
        first, last = tf.equal(i, 0), tf.equal(i, n_leapfrog)
        half = tf.where(tf.logical_or(first, last), 0.5, 1.0)
        ps = [pi + tf.cast(half, eps.dtype) * eps * gi for pi, gi in zip(ps, gs, strict=True)]
        xs = [tf.where(last, xi, xi + eps * pi) for xi, pi in zip(xs, ps, strict=True)]
        logp0 = tf.where(first, logp, logp0)
        g0 = [tf.where(first, g, g_old) for g, g_old in zip(gs, g0, strict=True)]
        return i + 1, xs, ps, logp, gs, logp0, g0

    n_chains = tf.shape(x[0])[0]
    blank = tf.zeros([n_chains], tf.float64)
    zeros = [tf.zeros_like(xi) for xi in x]
    _, x1, p1, logp1, g1, logp0, g0 = tf.while_loop(
        lambda i, *_: i <= n_leapfrog,
        body,
        (tf.constant(0), x, p0, blank, zeros, blank, zeros),
    )

    def kinetic64(p):
        return tf.cast(kinetic(p), tf.float64)

    log_ratio = logp1 - kinetic64(p1) - (logp0 - kinetic64(p0))
    log_ratio = tf.where(
        tf.math.is_finite(log_ratio), log_ratio, tf.constant(-float("inf"), log_ratio.dtype)
    )
    accept_prob = tf.cast(tf.exp(tf.minimum(log_ratio, 0.0)), x[0].dtype)
    log_u = tf.cast(-0.5 * tf.reduce_sum(tf.square(z_accept), axis=0), tf.float64)
    accept = log_u < tf.minimum(log_ratio, 0.0)

    def choose(new, old):
        mask = tf.reshape(accept, [-1] + [1] * (len(new.shape) - 1))
        return tf.where(mask, new, old)

    x_new = [choose(a, b) for a, b in zip(x1, x, strict=True)]
    logp_new = tf.where(accept, logp1, logp0)
    return x_new, accept_prob, logp_new, [choose(a, b) for a, b in zip(g1, g0, strict=True)]


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
