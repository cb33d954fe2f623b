r"""Adaptive Gauss-Hermite quadrature (lme4's ``nAGQ > 1``) for a single scalar term.

With one scalar random-effects term the integral factorises by level; each level's
one-dimensional integral is refined around its conditional mode ``u_hat_l`` with the
curvature ``h_l`` of PIRLS's ``A'WA + I`` there:

.. math::

    \int p(y_l \mid u) \phi(u) du \approx \sqrt{2 / h_l}
        \sum_m w_m e^{x_m^2} p(y_l \mid u_m) \phi(u_m), \quad
        u_m = \hat u_l + \sqrt{2 / h_l}\, x_m.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixedtf.design import Design
from mixedtf.errors import OptionError


def check_agq(design: Design) -> None:
    """Adaptive Gauss-Hermite quadrature here needs one scalar random term, and a family
    without a dispersion."""
    if design.family_spec.has_scale:
        raise OptionError(
            f"adaptive Gauss-Hermite quadrature (n_agq > 1) is for families without a "
            f"dispersion; family {design.family!r} has one. Use n_agq=1 (Laplace), as lme4."
        )
    if len(design.groupings) != 1 or design.groupings[0].k != 1:
        raise OptionError(
            "adaptive Gauss-Hermite quadrature (n_agq > 1) needs a single scalar random term "
            f"such as (1 | g); this model has {[g.name for g in design.groupings]} with "
            f"{[g.k for g in design.groupings]} columns. Use n_agq=1 (Laplace)."
        )


def agq_deviance(
    design: Design,
    loglik: Callable[[np.ndarray], np.ndarray],
    fixed: np.ndarray,
    lam: float,
    u_hat: np.ndarray,
    h: np.ndarray,
    n_agq: int,
) -> float:
    """``-2`` log-likelihood by ``n_agq``-node adaptive quadrature: ``loglik(eta)`` per row,
    ``fixed = X beta + offset``, ``lam`` the term's theta, ``u_hat`` and ``h`` the
    spherical modes and curvatures per level."""
    check_agq(design)
    g = design.groupings[0]
    x, w = np.polynomial.hermite.hermgauss(n_agq)
    scale = np.sqrt(2.0 / h)
    per_node = np.empty((n_agq, g.n_levels))
    for m in range(n_agq):
        u = u_hat + scale * x[m]
        eta = fixed + g.z[:, 0] * lam * u[g.codes]
        ll = np.bincount(g.codes, weights=loglik(eta), minlength=g.n_levels)
        per_node[m] = ll - 0.5 * u**2 - 0.5 * np.log(2 * np.pi) + x[m] ** 2 + np.log(w[m])
    top = per_node.max(axis=0)
    log_int = top + np.log(np.exp(per_node - top).sum(axis=0)) + np.log(scale)
    return -2.0 * log_int.sum()
