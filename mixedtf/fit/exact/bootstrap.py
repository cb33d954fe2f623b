"""Fast refits for the parametric bootstrap of an exact Gaussian fit: per simulated
response only the cross-products and the optimiser run again, from the fit's theta; no
results object, conditional modes or warnings are built."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import Bounds, minimize

from mixedtf.design import Design
from mixedtf.linalg.blocked import CrossProducts, factorize, profiled_deviance
from mixedtf.linalg.covariance import factors, lower_bounds, to_sdcor


def _lme4_parameters(design: Design, f, sigma: float) -> np.ndarray:
    """SDs and correlations per term (lme4's ``confint`` order), sigma, beta."""
    covs = [sigma**2 * T @ T.T for T in factors(f.theta, design.groupings)]
    return np.r_[to_sdcor(covs), sigma, f.beta()]


def exact_refits(
    design: Design, responses: np.ndarray, reml: bool, theta0: np.ndarray
) -> np.ndarray:
    """``[B, n_parameters]``: the REML/ML estimates on each response (rows of
    ``responses``), NaN where a refit fails."""
    lower = lower_bounds(design.groupings)
    n, p = design.X.shape
    out = []
    for y in responses:
        try:
            cp = CrossProducts.build(replace(design, y=np.asarray(y, dtype=np.float64)))

            def objective(theta, cp=cp):
                return profiled_deviance(factorize(cp, np.maximum(theta, lower)), n, p, reml)

            # L-BFGS-B: a quarter of COBYQA's time here (its per-step overhead dominates
            # a 0.3 ms deviance), the optimum within 1e-7 of the deviance
            res = minimize(
                objective,
                np.maximum(theta0, lower),
                method="L-BFGS-B",
                bounds=Bounds(lower, np.full(lower.size, np.inf)),
                options={"ftol": 1e-12, "gtol": 1e-8},
            )
            f = factorize(cp, np.maximum(res.x, lower))
            sigma = np.sqrt(f.pwrss() / (n - p if reml else n))
            out.append(_lme4_parameters(design, f, sigma))
        except (np.linalg.LinAlgError, ValueError, TypeError):
            out.append(np.full(out[0].size if out else 0, np.nan))
    return np.array(out)
