"""Estimators, behind one dispatcher: ``fit(design, method, options, seed, progress)``.

* ``"ml"``, ``"reml"``: the exact Gaussian fit (:mod:`mixedtf.fit.exact`, numpy/scipy);
* ``"laplace"``: Laplace and adaptive Gauss-Hermite for the other families
  (:mod:`mixedtf.fit.laplace`, numpy/scipy);
* ``"mcem"``: Monte Carlo EM on the compiled TFP model (:mod:`mixedtf.fit.mcem`; imports
  TensorFlow when it runs).

Options are validated by :mod:`mixedtf.fit.options` before any work starts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mixedtf.design import Design
from mixedtf.fit.checks import require_random_terms
from mixedtf.fit.exact import fit_exact, marginal_loglik
from mixedtf.fit.laplace import fit_laplace
from mixedtf.fit.options import (
    METHODS,
    ExactOptions,
    LaplaceOptions,
    MCEMOptions,
    given_options,
    make_options,
)
from mixedtf.results.results import MixedLMResults

__all__ = [
    "METHODS",
    "ExactOptions",
    "LaplaceOptions",
    "MCEMOptions",
    "fit",
    "fit_exact",
    "fit_laplace",
    "marginal_loglik",
]


def fit(
    design: Design,
    method: str = "mcem",
    options: Any = None,
    seed: int | None = None,
    progress: bool | None = None,
) -> MixedLMResults:
    """Fit ``design`` by ``method`` (``"mcem"``, ``"ml"``, ``"reml"`` or ``"laplace"``).

    Args:
        options: a dict of the method's options or its options object
            (:class:`ExactOptions`, :class:`LaplaceOptions`, :class:`MCEMOptions`).
        seed: MCEM's seed (the same seed gives the same fit on the same machine); the
            exact and Laplace fits are deterministic and ignore it.
        progress: MCEM's progress bar (default: when stderr is a terminal); ignored by the
            exact and Laplace fits, which report nothing while they run.

    Raises:
        OptionError: an unknown or misplaced option, a bad value, or a method that does
            not fit the design's family.
        DesignError: the formula has no random-effects term.
    """
    opts = make_options(method, design.family, options)
    require_random_terms(design)
    method = method.lower()
    if method in ("ml", "reml"):
        res = fit_exact(design, reml=method == "reml", options=opts)
    elif method == "laplace":
        res = fit_laplace(design, opts)
    else:
        from mixedtf.fit.mcem import fit_mcem  # imports TensorFlow

        res = fit_mcem(design, opts, seed, progress)
    res.fit_info = replace(res.fit_info, options=given_options(options))
    return res
