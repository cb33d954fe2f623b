r"""Profile confidence intervals of a GLMM from its Laplace deviance, as lme4's
``confint(glmer_fit)``: each parameter -- each term's SDs and correlations, then the fixed
effects -- held at a value while the deviance is minimised over all the others; a bound is
where the signed root of the deviance increase reaches the normal quantile (see
:mod:`mixedtf.fit.profile.path`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm

from mixedtf.fit.laplace.pirls import LaplaceModel
from mixedtf.fit.profile.path import interval, minimise_holding
from mixedtf.linalg.covariance import from_sdcor, sdcor_kinds, theta_of, to_sdcor

_OPTIMIZER = {"ftol": 1e-12, "gtol": 1e-7, "maxfun": 3000}
_DERIVATIVE_FREE = {"initial_tr_radius": 0.05, "final_tr_radius": 1e-6, "maxfev": 3000}


def glmm_profile_intervals(
    res: Any, level: float = 0.95, traces: dict[int, list] | None = None
) -> np.ndarray:
    """``[n_parameters, 2]`` bounds (SDs and correlations, then the fixed effects) of a
    binomial, Poisson or negative binomial Laplace fit (``n_agq = 1``; the negative
    binomial's theta held at its estimate, as lme4 profiles a ``glmer.nb`` fit)."""
    model = LaplaceModel(res.design)
    method, options = "L-BFGS-B", _OPTIMIZER
    if res.design.family == "negative_binomial":  # as lme4 profiles a glmer.nb fit
        model.set_nb_theta(res.family_params["theta"])
        # PIRLS converges linearly on this non-canonical link: its deviance is too noisy
        # for finite-difference gradients (L-BFGS-B stalls at the start), so COBYQA, as
        # the fit itself
        method, options = "COBYQA", _DERIVATIVE_FREE
    groupings = res.design.groupings
    psi_hat, kinds = to_sdcor(res.covariances), sdcor_kinds(groupings)
    beta_hat = res.fixef().to_numpy()
    x_hat = np.r_[psi_hat, beta_hat]
    lower = np.r_[[0.0 if k == "sd" else -1.0 for k in kinds], np.full(beta_hat.size, -np.inf)]
    upper = np.r_[[np.inf if k == "sd" else 1.0 for k in kinds], np.full(beta_hat.size, np.inf)]
    n_psi = psi_hat.size

    def deviance(x):
        try:
            theta = theta_of(from_sdcor(x[:n_psi], groupings))
        except ValueError:  # correlations that make no covariance matrix
            return 1e300
        dev = model.deviance(x[n_psi:], theta)
        return dev if np.isfinite(dev) else 1e300

    d_hat = deviance(x_hat)

    def profiled(k, value, start):
        return minimise_holding(deviance, k, value, start, lower, upper, options, method)

    z = norm.ppf(0.5 + level / 2)
    se = np.r_[np.maximum(0.1 * np.abs(psi_hat), 0.02), res.bse().to_numpy()]
    traces = {} if traces is None else traces
    rows = [
        interval(profiled, x_hat, d_hat, k, z, se[k], lower[k], upper[k], traces.setdefault(k, []))
        for k in range(x_hat.size)
    ]
    return np.array(rows)
