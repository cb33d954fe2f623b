"""Checks and warnings every estimator shares: a model must have a random-effects term,
and a fit warns the same way when its optimiser stopped early or its theta is on the
boundary (lme4's ``isSingular``)."""

from __future__ import annotations

import numpy as np

from mixedtf.design import Design
from mixedtf.errors import ConvergenceWarning, DesignError, SingularFitWarning, warn

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on theta's bounded entries


def require_random_terms(design: Design) -> None:
    """Raise unless the formula has a random-effects term."""
    if not design.groupings:
        raise DesignError(
            f"the formula {design.formula.text!r} has no random-effects term such as (1 | g); "
            "a mixed model needs one. Add a term, or fit a linear model or GLM instead."
        )


def is_singular(theta: np.ndarray, lower: np.ndarray) -> bool:
    """lme4's ``isSingular``: a bounded (diagonal) entry of theta below ``SINGULAR_TOL``."""
    bounded = np.isfinite(lower)
    return bool(np.any(np.asarray(theta)[bounded] < SINGULAR_TOL))


def warn_fit(
    record: list[str],
    theta: np.ndarray,
    lower: np.ndarray,
    converged: bool = True,
    message: str = "",
    hint: str = "try a larger max_evaluations or another start",
) -> None:
    """Warn (and keep the text in ``record``) when the optimiser did not converge
    (``ConvergenceWarning``) or the fit is singular (``SingularFitWarning``)."""
    if not converged:
        warn(
            record,
            f"the optimiser did not converge: {message}; {hint}.",
            ConvergenceWarning,
            stacklevel=4,
        )
    if is_singular(theta, lower):
        warn(
            record,
            "boundary (singular) fit: a variance component is estimated as zero or a "
            "correlation as +-1 (lme4's isSingular); consider simplifying the random-effects "
            "terms.",
            SingularFitWarning,
            stacklevel=4,
        )
