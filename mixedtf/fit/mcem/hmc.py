"""Hamiltonian Monte Carlo pieces for the E-step, as pure functions over the backend's ops
(XLA-safe; :mod:`mixedtf.model.backend`).

Positions are lists of tensors with a leading chain dimension; the target returns one
log density per chain. One ``transition`` draws momenta, runs ``n_leapfrog`` steps and
accepts or rejects each chain. The step size is shared by the chains and adapted by dual
averaging (Hoffman & Gelman 2014, sec. 3.2) towards a target acceptance rate.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

Array = Any
Target = Callable[[list[Array]], Array]


def value_and_gradient(ops: ModuleType, target: Target, x: list[Array]) -> tuple[Array, list]:
    """The target in float64 (the log densities the acceptance test differences) and its
    gradient in the positions' own dtype."""
    return ops.value_and_grad(lambda xs: ops.cast(target(xs), ops.float64), x)


def transition(
    ops: ModuleType,
    target: Target,
    x: list[Array],
    step_size: Array,
    n_leapfrog: int,
    momenta: list[Array],
    z_accept: Array,
) -> tuple[list[Array], Array, Array, list[Array]]:
    """One HMC transition of every chain, with standard normal ``momenta`` (shaped as
    ``x``) and two standard normals per chain ``z_accept [2, C]`` for the acceptance test:
    ``exp(-(z_1^2 + z_2^2) / 2)`` is uniform (a chi-square with 2 degrees of freedom is
    exponential), and costs less to compile than ``Phi(z)``.

    Returns the new positions, the acceptance probability per chain, the target at the
    new positions (float64: at millions of rows a float32 log density has an ulp near 1,
    which would corrupt the acceptance test) and its gradient there.
    """
    o = ops
    p0 = momenta
    eps = o.cast(step_size, x[0].dtype)

    def kinetic(p):
        return sum(0.5 * o.sum(o.reshape(pi * pi, [pi.shape[0], -1]), -1) for pi in p)

    # Leapfrog with one gradient site: pass i evaluates the gradient at x_i and joins the
    # half momentum steps either side of it (a half step at i = 0 and i = n). Writing the
    # first gradient outside the loop doubled the largest part of the XLA program.
    def body(i, carry):
        xs, ps, logp, gs, logp0, g0 = carry
        logp, gs = value_and_gradient(o, target, xs)
        first, last = o.equal(i, 0), o.equal(i, n_leapfrog)
        half = o.cast(o.where(o.logical_or(first, last), 0.5, 1.0), eps.dtype)
        ps = [pi + half * eps * gi for pi, gi in zip(ps, gs, strict=True)]
        xs = [o.where(last, xi, xi + eps * pi) for xi, pi in zip(xs, ps, strict=True)]
        logp0 = o.where(first, logp, logp0)
        g0 = [o.where(first, g, g_old) for g, g_old in zip(gs, g0, strict=True)]
        return xs, ps, logp, gs, logp0, g0

    blank = o.zeros([x[0].shape[0]], o.float64)
    zeros = [o.zeros_like(xi) for xi in x]
    x1, p1, logp1, g1, logp0, g0 = o.fori_loop(
        n_leapfrog + 1, body, (list(x), list(p0), blank, zeros, blank, zeros)
    )

    def kinetic64(p):
        return o.cast(kinetic(p), o.float64)

    log_ratio = logp1 - kinetic64(p1) - (logp0 - kinetic64(p0))
    log_ratio = o.where(o.isfinite(log_ratio), log_ratio, o.cast(-float("inf"), log_ratio.dtype))
    accept_prob = o.cast(o.exp(o.minimum(log_ratio, 0.0)), x[0].dtype)
    log_u = o.cast(-0.5 * o.sum(o.square(z_accept), 0), o.float64)
    accept = log_u < o.minimum(log_ratio, 0.0)

    def choose(new, old):
        mask = o.reshape(accept, [-1] + [1] * (len(new.shape) - 1))
        return o.where(mask, new, old)

    x_new = [choose(a, b) for a, b in zip(x1, x, strict=True)]
    logp_new = o.where(accept, logp1, logp0)
    return x_new, accept_prob, logp_new, [choose(a, b) for a, b in zip(g1, g0, strict=True)]


# dual-averaging constants of Hoffman & Gelman (2014)
DA_GAMMA, DA_T0, DA_KAPPA = 0.05, 10.0, 0.75


def adapt_step(
    ops: ModuleType,
    t: Array,
    h_bar: Array,
    log_eps_bar: Array,
    mu: Array,
    accept_rate: Array,
    target_accept: float,
) -> tuple[Array, Array, Array, Array]:
    """Dual averaging: returns ``(t + 1, h_bar, log_eps, log_eps_bar)`` after observing
    ``accept_rate`` (mean acceptance probability over chains)."""
    t = t + 1.0
    w = 1.0 / (t + DA_T0)
    h_bar = (1.0 - w) * h_bar + w * (target_accept - accept_rate)
    log_eps = mu - ops.sqrt(t) / DA_GAMMA * h_bar
    eta = t ** (-DA_KAPPA)
    log_eps_bar = eta * log_eps + (1.0 - eta) * log_eps_bar
    return t, h_bar, log_eps, log_eps_bar
