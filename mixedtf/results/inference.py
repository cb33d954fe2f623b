"""Inference from a fit's own numbers (no refitting): lme4's ``coef``, ``isSingular``,
Wald ``confint`` with lme4's parameter names, and ``simulate`` for every family.

Methods that refit (profile and bootstrap intervals, likelihood-ratio tests) live above the
results layer (:mod:`mixedtf.comparison`), since they call the estimators.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mixedtf.errors import ModelComparisonError, OptionError
from mixedtf.linalg.covariance import lower_bounds, sdcor_names
from mixedtf.results.prediction import category_probabilities, random_part

# What needs a refit, registered by the layers above that can refit: the interval methods
# "profile" and "boot" (mixedtf.comparison) and "null_model" (mixedtf.update). The
# results layer never imports the estimators.
REFITS: dict[str, Any] = {}


def coef(res: Any) -> dict[str, pd.DataFrame]:
    """lme4's ``coef(m)``: per grouping factor, each level's coefficients -- the fixed
    effects plus that level's random effects where a term column matches a fixed effect
    (random-only columns follow the fixed ones)."""
    fixef = res.fixef()
    out = {}
    for factor, modes in res.ranef().items():
        table = pd.DataFrame(
            np.tile(fixef.to_numpy(), (len(modes), 1)), index=modes.index, columns=fixef.index
        )
        for column in modes.columns:
            if column in table.columns:
                table[column] = table[column] + modes[column]
            else:
                table[column] = modes[column]
        out[factor] = table
    return out


def is_singular(res: Any, tol: float = 1e-4) -> bool:
    """lme4's ``isSingular``: a bounded (diagonal) entry of theta below ``tol``."""
    lower = lower_bounds(res.design.groupings)
    return bool(np.any(res.theta.to_numpy()[np.isfinite(lower)] < tol))


def parameter_names(res: Any) -> list[str]:
    """lme4's ``confint(oldNames = FALSE)`` row names: per term, the SDs and correlations in
    theta's order (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ...), then
    ``sigma`` for families with a scale, then the fixed effects."""
    names = sdcor_names(res.design.groupings)
    if res.has_scale:
        names.append("sigma")
    return names + list(res.design.fixed_names)


def _interval_columns(level: float) -> list[str]:
    lo = 100 * (1 - level) / 2
    return [f"{lo:.3g} %", f"{100 - lo:.3g} %"]


def wald_confint(res: Any, level: float = 0.95, parm: Any = None) -> pd.DataFrame:
    """lme4's ``confint(m, method = "Wald")``: ``beta +- z se`` for the fixed effects, NaN for
    the variance parameters."""
    if not 0 < level < 1:
        raise OptionError(f"level must be in (0, 1); got {level!r}.")
    names = parameter_names(res)
    table = pd.DataFrame(np.nan, index=names, columns=_interval_columns(level))
    q = stats.norm.ppf(0.5 + level / 2)
    est, se = res.fixef(), res.bse()
    table.loc[list(est.index), table.columns[0]] = (est - q * se).to_numpy()
    table.loc[list(est.index), table.columns[1]] = (est + q * se).to_numpy()
    return _select(table, parm)


def _select(table: pd.DataFrame, parm: Any) -> pd.DataFrame:
    if parm is None:
        return table
    wanted = [parm] if isinstance(parm, str) else list(parm)
    unknown = [p for p in wanted if p not in table.index]
    if unknown:
        raise OptionError(
            f"parm: {unknown} are not parameters; the parameters are {list(table.index)}."
        )
    return table.loc[wanted]


def simulate(
    res: Any,
    nsim: int = 1,
    seed: int | None = None,
    newdata: Any = None,
    use_u: bool = False,
    allow_new_levels: bool = False,
) -> pd.DataFrame:
    """lme4's ``simulate(m, nsim, seed, newdata, use.u, allow.new.levels)``: ``nsim``
    responses drawn from the fitted model, one column each (``sim_1``, ...).

    ``use_u=False`` (lme4's default, ``re.form = NA``) draws new random effects from their
    fitted distribution -- the parametric bootstrap's simulation; ``use_u=True``
    (``re.form = NULL``) conditions on the conditional modes. With ``newdata`` and
    ``use_u=True``, levels unseen in training get fresh draws when ``allow_new_levels``
    (else an error). Binomial responses are successes out of the trials for ``cbind``
    responses, proportions otherwise (0/1 for 0/1 data); ordinal responses the category
    labels; Gaussian responses use the prior weights of the fitted rows.
    """
    if int(nsim) < 1:
        raise OptionError(f"nsim must be a positive integer; got {nsim!r}.")
    rng = np.random.default_rng(seed)
    d = res.design
    rows = d if newdata is None else d.transform(newdata)
    index = d.index if newdata is None else rows.index
    fixed = rows.X @ res.fixef().to_numpy() + rows.offset
    nsim = int(nsim)
    unseen = any((g.codes < 0).any() for g in rows.groupings)
    if use_u and unseen and not allow_new_levels:
        raise OptionError(
            "newdata has levels not seen in training; pass allow_new_levels=True to draw "
            "their effects from the fitted distribution."
        )
    if use_u:
        effects = res._modes
    else:  # all simulations' effects at once: [nsim, L, k] per grouping
        effects = [
            rng.multivariate_normal(np.zeros(g.k), cov, size=(nsim, g.n_levels))
            for g, cov in zip(d.groupings, res.covariances, strict=True)
        ]
    etas = fixed + _random_with_new_levels(rows.groupings, effects, res, rng, nsim)
    etas = np.broadcast_to(etas, (nsim, fixed.size))
    values = _draw_response(res, etas, rng, None if newdata is None else rows)
    return pd.DataFrame(values.T, index=index, columns=[f"sim_{s + 1}" for s in range(nsim)])


def _random_with_new_levels(groupings, effects, res, rng, nsim: int) -> np.ndarray:
    """``Z b`` (``[nsim, n]``) with the effects; rows of an unseen level draw their own."""
    total = np.broadcast_to(
        random_part(groupings, effects, "population"),
        (nsim, groupings[0].codes.size if groupings else 0),
    ).copy()
    for g, cov in zip(groupings, res.covariances, strict=True):
        unseen = g.codes < 0
        if unseen.any():
            b = rng.multivariate_normal(np.zeros(g.k), cov, size=(nsim, int(unseen.sum())))
            total[:, unseen] += (g.z[unseen] * b).sum(axis=-1)
    return total


def _draw_response(res, etas: np.ndarray, rng, rows) -> np.ndarray:
    """Responses at linear predictors ``etas [nsim, n]``."""
    d, family = res.design, res.design.family
    spec = d.family_spec
    if family == "ordinal":
        probs = category_probabilities(etas, res.cutpoints)  # [nsim, n, K]
        u = rng.uniform(size=(*probs.shape[:-1], 1))
        codes = (np.cumsum(probs, axis=-1) < u).sum(axis=-1)
        levels = np.array(d.response_levels or [str(k + 1) for k in range(probs.shape[-1])])
        return levels[np.minimum(codes, probs.shape[-1] - 1)]
    mu = spec.inverse_link(etas)
    if family == "gaussian":
        weights = d.prior_weights if rows is None else None
        scale = res.sigma / np.sqrt(weights) if weights is not None else res.sigma
        return mu + rng.normal(size=mu.shape) * scale
    if family == "binomial":
        if rows is not None:
            return rng.binomial(1, mu).astype(float)
        trials = d.trials.astype(int)
        draws = rng.binomial(trials, mu).astype(float)
        return draws if d.y.ndim == 2 else draws / trials
    if family == "poisson":
        return rng.poisson(mu).astype(float)
    if family == "negative_binomial":
        theta = res.family_params.get("theta", getattr(spec, "theta", None))
        return rng.negative_binomial(theta, theta / (theta + mu)).astype(float)
    dispersion = res.sigma**2
    if family == "gamma":
        return rng.gamma(1.0 / dispersion, mu * dispersion)
    return rng.wald(mu, 1.0 / dispersion)  # inverse Gaussian: lambda = 1 / dispersion


def variance_components(res: Any) -> tuple[float, float, float]:
    """Nakagawa & Schielzeth's variances, as ``performance`` 0.10 (``insight::get_variance``):
    the fixed part ``var(X beta)``, the random part (Johnson 2014: per term the mean over
    rows of ``z_i' Sigma z_i``, summed over terms), and the distribution-specific variance
    (:func:`distribution_variance`)."""
    d = res.design
    residual = distribution_variance(res)
    fixed = float(np.var(d.X @ res.fixef().to_numpy(), ddof=1))
    random = sum(
        float(np.mean(np.einsum("ia,ab,ib->i", g.z, cov, g.z)))
        for g, cov in zip(d.groupings, res.covariances, strict=True)
    )
    return fixed, random, residual


# the latent scale's residual variance of a binomial model, as performance's
# (Nakagawa, Johnson & Schielzeth 2017): logistic pi^2 / 3, normal 1, Gumbel pi^2 / 6
_LATENT_VARIANCE = {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}


def distribution_variance(res: Any) -> float:
    """The distribution-specific variance of ``insight`` 0.19: Gaussian ``sigma^2``;
    binomial the latent scale's (logit ``pi^2 / 3``, probit 1, cloglog ``pi^2 / 6``);
    Poisson and negative binomial with the log link the lognormal approximation
    ``log(1 + V(mu) / mu^2)`` at ``mu = exp(b_0)``, ``b_0`` the intercept of the null model
    ``y ~ 1 + (random terms)`` refitted by the same method (``V(mu) = mu``, or
    ``mu + mu^2 / theta`` with the fit's theta), with the sqrt link 0.25; Gamma
    ``sigma^2`` (``phi``, its variance function at sigma); inverse Gaussian ``sigma``, as
    insight's fall-through for other families."""
    d = res.design
    link = d.family_spec.link
    if d.family == "gaussian":
        return res.sigma**2
    if d.family == "binomial" and link in _LATENT_VARIANCE:
        return float(_LATENT_VARIANCE[link])
    if d.family in ("poisson", "negative_binomial") and link == "sqrt":
        return 0.25
    if d.family in ("poisson", "negative_binomial") and link == "log":
        mu = float(np.exp(res.null_model.fixef().iloc[0]))
        variance = mu if d.family == "poisson" else mu + mu**2 / res.family_params["theta"]
        return float(np.log1p(variance / mu**2))
    if d.family == "gamma":
        return res.sigma**2
    if d.family == "inverse_gaussian":
        return res.sigma
    raise OptionError(
        "R2 and ICC are computed for Gaussian, binomial (logit, probit, cloglog links), "
        "Poisson and negative binomial (log, sqrt), Gamma and inverse Gaussian models, as "
        f"performance::r2_nakagawa; this is {d.family!r} with link {link!r}."
    )


def null_model(res: Any) -> Any:
    """``insight::null_model``: the fit's random terms, its family, offset and weights, an
    intercept as the only fixed effect, refitted by the fit's method."""
    if "null_model" not in REFITS:
        raise ModelComparisonError("refitting needs mixedtf.update; import mixedtf first.")
    return REFITS["null_model"](res)


def r2(res: Any) -> dict[str, float]:
    """``performance::r2_nakagawa``: marginal (fixed part) and conditional (fixed and random)
    R^2 of a mixed model, with the distribution-specific variance of
    :func:`distribution_variance` (count models refit their null model once)."""
    fixed, random, residual = variance_components(res)
    total = fixed + random + residual
    return {"marginal": fixed / total, "conditional": (fixed + random) / total}


def icc(res: Any) -> dict[str, float]:
    """``performance::icc``: adjusted (random over random and residual) and unadjusted
    (random over all three) intraclass correlation, the variances of :func:`r2`."""
    fixed, random, residual = variance_components(res)
    return {
        "adjusted": random / (random + residual),
        "unadjusted": random / (fixed + random + residual),
    }
