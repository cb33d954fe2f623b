r"""Walking a likelihood profile to a confidence bound, shared by the exact and the Laplace
profiles (lme4's ``profile`` + ``confint``).

A parameter ``x_k`` is held at ``c`` while the deviance is minimised over the others
(:func:`minimise_holding`); the signed root ``zeta(c) = sign(c - x_hat_k) sqrt(D(c) - D_hat)``
is followed from the estimate until it reaches ``+-z_{(1 + level) / 2}`` and the crossing is
solved for with Brent's method (:func:`interval`). lme4 interpolates ``zeta`` with a spline;
here every bound is solved for directly. A bound that the parameter's range reaches first
(an SD of 0, a correlation of +-1) is that end of the range, as lme4's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import Bounds, brentq, minimize

#: ``profiled(k, c, start) -> (deviance, x)``: the deviance minimised with ``x_k = c`` from
#: the warm start ``start``, and the minimiser.
Profiled = Callable[[int, float, np.ndarray], tuple[float, np.ndarray]]


def minimise_holding(
    deviance: Callable[[np.ndarray], float],
    k: int,
    value: float,
    start: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    options: dict,
    method: str = "L-BFGS-B",
) -> tuple[float, np.ndarray]:
    """``deviance`` minimised over every coordinate but ``k`` (held at ``value``), from
    ``start`` within ``[lower, upper]``, by L-BFGS-B (or a derivative-free ``method`` for a
    deviance too noisy for finite differences); the minimum and the minimiser."""
    free = np.arange(start.size) != k

    def objective(y):
        x = start.copy()
        x[free], x[k] = y, value
        return deviance(x)

    x0 = np.clip(start[free], lower[free], upper[free])
    if x0.size == 0:
        return objective(x0), start
    out = minimize(
        objective,
        x0,
        method=method,
        bounds=Bounds(lower[free], upper[free]),
        options=options,
    )
    x = start.copy()
    x[free], x[k] = out.x, value
    return float(out.fun), x


def signed_root(d: float, d_hat: float, value: float, centre: float) -> float:
    """``zeta = sign(value - centre) sqrt(d - d_hat)`` (0 below the minimum's deviance)."""
    return float(np.sign(value - centre) * np.sqrt(max(d - d_hat, 0.0)))


def bound(
    zeta: Callable[[float], float], centre: float, target: float, step: float, limit: float
) -> float:
    """Where ``zeta`` reaches ``target`` walking from ``centre`` towards ``limit`` in steps
    growing from ``step``; ``limit`` itself when ``zeta`` stays short of ``target`` there."""
    direction = np.sign(target)
    a = centre
    for _ in range(60):
        b = a + direction * step
        if (direction > 0 and b >= limit) or (direction < 0 and b <= limit):
            if abs(zeta(limit)) < abs(target):
                return limit
            b = limit
        z = zeta(b)
        if abs(z) >= abs(target):
            return brentq(lambda c: zeta(c) - target, a, b, xtol=1e-10 * max(1.0, abs(b)))
        a = b
        step *= 1.6
    return np.nan


def interval(
    profiled: Profiled,
    x_hat: np.ndarray,
    d_hat: float,
    k: int,
    z: float,
    step: float,
    lower: float,
    upper: float,
    trace: list | None = None,
) -> tuple[float, float]:
    """The bounds of ``x_k`` where ``zeta`` crosses ``-z`` and ``+z``, each profile point
    started from the minimiser of the nearest point already profiled; every ``(x_k, zeta)``
    visited is appended to ``trace`` when given (lme4's ``profile`` table)."""
    cache: dict[float, np.ndarray] = {}

    def zeta(c: float) -> float:
        near = min(cache, key=lambda v: abs(v - c)) if cache else None
        d, x = profiled(k, c, x_hat if near is None else cache[near])
        cache[c] = x
        return signed_root(d, d_hat, c, x_hat[k])

    zeta = recorded(zeta, trace)
    return bound(zeta, x_hat[k], -z, step, lower), bound(zeta, x_hat[k], z, step, upper)


def recorded(zeta: Callable[[float], float], trace: list | None) -> Callable[[float], float]:
    """``zeta``, appending each ``(value, zeta)`` it computes to ``trace`` (if not None)."""
    if trace is None:
        return zeta

    def wrapper(c: float) -> float:
        out = zeta(c)
        trace.append((float(c), out))
        return out

    return wrapper
