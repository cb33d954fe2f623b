"""Starting values of the estimators, in one place (numpy only).

* :func:`start_theta`: the exact path's theta (lme4's, or the data-based start of lme4
  PR #245 for models whose terms are all ``(1|f)``);
* :func:`glm_start`: the fixed effects of the GLM without random effects (IRLS), the start
  of the Laplace optimiser and of GLMM MCEM;
* :func:`start_cutpoints`: ordinal cutpoints from the marginal proportions;
* :func:`mcem_start`: beta, the covariances, sigma^2 and cutpoints MCEM starts from
  (Gaussian: a moment split of the residual variance; other families: the GLM fit and
  unit SDs on the linear-predictor scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixedtf.design import Design
from mixedtf.fit.response import OrdinalResponse, response_of
from mixedtf.linalg.covariance import theta_from_factors
from mixedtf.links import LINKS


def start_theta(design: Design) -> np.ndarray:
    """Starting theta: lme4's default (identity factors), or for models whose terms are all
    ``(1|f)`` the data-based start of lme4 PR #245: ``v_i = var(ave(y, f_i))``,
    ``v_e = var(y) - sum(v)``, ``theta_i = sqrt(v_i / v_e)``."""
    groupings = design.groupings
    default = theta_from_factors([np.eye(g.k) for g in groupings])
    intercept_only = all(g.k == 1 and g.colnames == ("(Intercept)",) for g in groupings)
    if not intercept_only or design.y.ndim != 1:
        return default
    y = pd.Series(design.y)
    v = np.array([y.groupby(g.codes).transform("mean").var() for g in groupings])
    v_e = y.var() - v.sum()
    if not np.isfinite(v_e) or v_e <= 0 or not np.all(np.isfinite(v)):
        return default
    return np.sqrt(np.maximum(v, 1e-4 * v_e) / v_e)


def glm_start(design: Design) -> np.ndarray:
    """Fixed effects of the GLM without random effects: IRLS as R's ``glm.fit``, from the
    row-wise ``mustart`` (binomial ``(n y + 0.5) / (n + 1)``, Poisson ``y + 0.1``), with
    the step halved while it leaves the mean's range (a log-binomial probability above 1);
    zeros for ordinal models, whose cutpoints carry the location."""
    d, r = design, response_of(design)
    if isinstance(r, OrdinalResponse):
        return np.zeros(d.X.shape[1])
    link = LINKS[r.link]
    if r.family == "binomial":
        mu0 = (r.y + 0.5) / (r.trials + 1.0)
    else:  # R's mustart: y for positive responses, y + 0.1 for counts
        mu0 = r.y if r.has_dispersion else r.y + 0.1
    eta = link.link(mu0)
    beta, value = None, -np.inf
    for _ in range(50):
        mu, dmu = r.mean(eta)
        _, w = r.score_and_weights(eta)
        z = eta - d.offset + (r.y / (r.trials if r.trials is not None else 1.0) - mu) / dmu
        XtW = d.X.T * w
        new = np.linalg.lstsq(XtW @ d.X, XtW @ z, rcond=None)[0]
        for _ in range(30):  # step halving while the mean leaves its range
            new_value = r.loglik(d.X @ new + d.offset).sum()
            if np.isfinite(new_value) or beta is None:
                break
            new = (new + beta) / 2.0
        if not np.isfinite(new_value):
            new = _intercept_start(d, link, mu0) if beta is None else beta
            new_value = r.loglik(d.X @ new + d.offset).sum()
        if beta is not None and abs(new_value - value) < 1e-10 * (1.0 + abs(new_value)):
            return new
        beta, value = new, new_value
        eta = d.X @ beta + d.offset
    return beta


def _intercept_start(design: Design, link, mu0: np.ndarray) -> np.ndarray:
    """The intercept at the overall mean, other effects 0 (a valid start for any link)."""
    beta = np.zeros(design.X.shape[1])
    if "(Intercept)" in design.fixed_names:
        beta[design.fixed_names.index("(Intercept)")] = float(link.link(np.mean(mu0)))
    return beta


def nb_theta_start(design: Design, beta: np.ndarray) -> float:
    """A start for the negative binomial theta: the moment estimate
    ``sum mu^2 / sum((y - mu)^2 - mu)`` at the GLM fit, within [0.05, 1000]."""
    r = response_of(design)
    mu = r.mean(design.X @ beta + design.offset)[0]
    excess = float(np.sum((r.y - mu) ** 2 - mu))
    return float(np.clip(np.sum(mu**2) / excess, 0.05, 1000.0)) if excess > 0 else 1000.0


def start_cutpoints(y: np.ndarray) -> np.ndarray:
    """Ordinal cutpoints from the marginal cumulative proportions of ``y`` in ``1..K``:
    ``c_k = logit(P(y <= k))`` (the fit without covariates)."""
    K = int(np.max(y))
    counts = np.bincount(y.astype(np.int64) - 1, minlength=K)[:K] + 0.5
    cum = np.cumsum(counts)[:-1] / counts.sum()
    return np.log(cum / (1.0 - cum))


@dataclass(frozen=True)
class StartValues:
    """Where MCEM starts: ``beta``, the family's parameters after it ``cuts`` (the ordinal
    cutpoints, or the log of the negative binomial theta; empty otherwise), each grouping's
    covariance ``covs`` and, for Gaussian models, ``sigma2``."""

    beta: np.ndarray
    covs: list[np.ndarray]
    sigma2: float | None = None
    cuts: np.ndarray | None = None


def mcem_start(design: Design) -> StartValues:
    """Starting values of Monte Carlo EM (see the module docstring)."""
    if design.family == "gaussian":
        return _gaussian_start(design)
    ordinal = design.family_spec.has_cutpoints
    beta = glm_start(design)
    cuts = start_cutpoints(design.outcome) if ordinal else np.zeros(0)
    if design.family == "negative_binomial" and design.family_spec.theta is None:
        cuts = np.array([np.log(nb_theta_start(design, beta))])  # the slot after beta
    elif design.family in ("gamma", "inverse_gaussian"):  # log(1 / dispersion), by moments
        r = response_of(design)
        eta = design.X @ beta + design.offset
        dispersion = r.pearson_ss(eta) / max(design.nobs - beta.size, 1)
        cuts = np.array([-np.log(max(dispersion, 1e-8))])
    return StartValues(beta=beta, covs=_unit_covariances(design), cuts=cuts)


def _gaussian_start(design: Design) -> StartValues:
    """Least squares for beta and a moment split of the residual variance
    (``var(ave(resid, g))`` per term's intercept, as lme4 PR #245) for the rest; a slope
    gets a tenth of the residual SD per unit of its covariate."""
    X, y = design.X, design.y - design.offset
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    total = float(np.var(resid))
    series = pd.Series(resid)
    between = [float(series.groupby(g.codes).transform("mean").var()) for g in design.groupings]
    residual = max(total - sum(between), 0.1 * total)
    covs = []
    for g, v in zip(design.groupings, between, strict=True):
        sds = [
            np.sqrt(max(v, 0.01 * total))
            if np.allclose(g.z[:, c], 1.0)
            else 0.1 * np.sqrt(residual) / max(float(np.std(g.z[:, c])), 1e-8)
            for c in range(g.k)
        ]
        covs.append(np.diag(np.square(sds)))
    return StartValues(beta=beta, covs=covs, sigma2=residual)


def _unit_covariances(design: Design) -> list[np.ndarray]:
    """SD 1 on the linear-predictor scale for intercept columns (lme4's theta = 1), a
    quarter over the covariate's SD for slopes."""
    out = []
    for g in design.groupings:
        sds = [
            1.0 if np.allclose(g.z[:, c], 1.0) else 0.25 / max(np.std(g.z[:, c]), 1e-8)
            for c in range(g.k)
        ]
        out.append(np.diag(np.square(sds)))
    return out
