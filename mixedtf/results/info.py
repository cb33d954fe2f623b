"""What a fit reports about itself: ``FitInfo`` (method, convergence, effort, the link,
how the log-likelihood and ``vcov`` were computed, warnings) and, for MCEM fits of
Gaussian models, the ``AnalyticCheck`` against the exact ML optimum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

LOGLIK_METHODS = ("exact", "laplace", "agq", "none")
VCOV_METHODS = ("RX", "hessian", "louis")


@dataclass(frozen=True)
class FitInfo:
    """How a fit went: method, convergence, effort and time.

    ``iterations`` counts optimiser iterations (EM iterations for MCEM) and
    ``n_evaluations`` objective evaluations; ``wall_time`` is seconds for the whole fit.
    ``link`` is the family's link; ``n_agq`` the quadrature nodes (1: Laplace or not a
    GLMM fit); ``loglik_method`` how ``loglik`` was computed (``"exact"``, ``"laplace"``,
    ``"agq<n>"``, or ``"none"`` when it could not be); ``vcov_method`` how the fixed
    effects' covariance was (``"RX"``: lme4's ``sigma^2 (R_X' R_X)^{-1}`` or its GLMM
    Schur complement, ``"hessian"``: the finite-difference Hessian over all parameters,
    ``"louis"``: Louis' method from the MCEM draws). ``warnings`` keeps the text of every
    warning the fit issued; ``extra`` holds estimator diagnostics (MCEM: ``mcse``,
    ``trace``, ``acceptance``, ...).
    """

    method: str
    converged: bool
    iterations: int
    n_evaluations: int
    wall_time: float
    optimizer: str
    message: str = ""
    device: str = "CPU"
    seed: int | None = None
    link: str = "identity"
    n_agq: int = 1
    loglik_method: str = "exact"
    vcov_method: str = "RX"
    warnings: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # as asked: refit/update repeat them
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalyticCheck:
    """MCEM estimates against the exact ML optimum (Gaussian models).

    ``gap`` = exact log-likelihood at the optimum minus at the MCEM estimates (>= 0);
    ``table`` has per parameter the MCEM and exact values, the difference, relative
    difference and the difference in standard errors (exact SEs for fixed effects,
    Monte Carlo SEs for variance parameters).
    """

    loglik_mcem: float
    loglik_exact: float
    gap: float
    table: pd.DataFrame = field(repr=False)
