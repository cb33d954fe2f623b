r"""Link functions (numpy): ``g`` (``link``), ``g^{-1}`` (``inverse``) and
``d mu / d eta`` (``mu_eta``), as R's ``make.link`` / ``binomial(link = ...)``.

The TensorFlow versions for the compiled model are in :mod:`mixedtf.model.family`; both are
checked against each other and against finite differences in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit, ndtr, ndtri

Array = np.ndarray


@dataclass(frozen=True)
class Link:
    """One link: ``link(mu) = eta``, ``inverse(eta) = mu``, ``mu_eta(eta) = d mu / d eta``;
    ``positive_eta``: the link is defined for ``eta > 0`` only (R's ``valideta`` of
    ``sqrt`` and ``1/mu^2``: without it ``eta`` and ``-eta`` give one mean)."""

    name: str
    link: Callable[[Array], Array]
    inverse: Callable[[Array], Array]
    mu_eta: Callable[[Array], Array]
    positive_eta: bool = False


def _cloglog_inverse(eta: Array) -> Array:
    # 1 - exp(-exp(eta)), kept inside (0, 1) as R's binomial("cloglog")$linkinv does
    return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), 2.2e-16, 1 - 2.2e-16)


LINKS: dict[str, Link] = {
    link.name: link
    for link in (
        Link("identity", lambda mu: mu, lambda eta: eta, np.ones_like),
        Link("log", np.log, np.exp, np.exp),
        Link("logit", logit, expit, lambda eta: expit(eta) * expit(-eta)),
        Link("probit", ndtri, ndtr, lambda eta: np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi)),
        Link(
            "cloglog",
            lambda mu: np.log(-np.log1p(-mu)),
            _cloglog_inverse,
            lambda eta: np.exp(np.minimum(eta, 700.0) - np.exp(np.minimum(eta, 700.0))),
        ),
        Link(
            "cauchit",
            lambda mu: np.tan(np.pi * (mu - 0.5)),
            lambda eta: 0.5 + np.arctan(eta) / np.pi,
            lambda eta: 1.0 / (np.pi * (1.0 + eta**2)),
        ),
        Link("sqrt", np.sqrt, lambda eta: eta**2, lambda eta: 2.0 * eta, positive_eta=True),
        Link("inverse", lambda mu: 1.0 / mu, lambda eta: 1.0 / eta, lambda eta: -1.0 / eta**2),
        Link(
            "1/mu^2",
            lambda mu: 1.0 / mu**2,
            lambda eta: 1.0 / np.sqrt(eta),
            lambda eta: -1.0 / (2.0 * eta**1.5),
            positive_eta=True,
        ),
    )
}
