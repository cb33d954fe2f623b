"""Fitted values and predictions from fixed effects and conditional modes.

``eta = X beta + offset + sum_j sum_c z_j[:, c] * b_j[codes_j, c]``; levels not seen in
training contribute zero (the population level) or raise, as the caller chooses.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from mixedtf.design import GroupingSpec
from mixedtf.errors import DesignError, OptionError
from mixedtf.links import LINKS

NewLevels = Literal["population", "error"]


def random_part(
    groupings: tuple[GroupingSpec, ...], effects: list[np.ndarray], new_levels: NewLevels
) -> np.ndarray:
    """``Z b`` over the rows of ``groupings`` (codes ``-1`` mark unseen levels); ``effects``
    per grouping ``[..., L, k]`` (leading dimensions, such as draws, are kept)."""
    n = groupings[0].codes.shape[0] if groupings else 0
    total = np.zeros(n)
    for g, b in zip(groupings, effects, strict=True):
        unseen = g.codes < 0
        if unseen.any() and new_levels == "error":
            rows = np.flatnonzero(unseen)
            raise DesignError(
                f"{rows.size} rows have levels of {g.factor!r} not seen in training (rows {rows[:10].tolist()}); "
                "pass new_levels='population' to predict them at the population level (effect 0)."
            )
        contribution = (g.z * b[..., np.where(unseen, 0, g.codes), :]).sum(axis=-1)
        total = total + np.where(unseen, 0.0, contribution)
    return total


def check_new_levels(new_levels: str) -> NewLevels:
    if new_levels not in ("population", "error"):
        raise OptionError(f"new_levels must be 'population' or 'error'; got {new_levels!r}.")
    return new_levels  # type: ignore[return-value]


def predict(res, newdata, include_random: bool, new_levels: NewLevels, type: str):
    """:meth:`MixedLMResults.predict` (see there)."""
    if type not in ("link", "response"):
        raise OptionError(f"type must be 'link' or 'response'; got {type!r}.")
    d = res.design
    if newdata is None:
        X, offset, groupings, index = d.X, d.offset, d.groupings, d.index
    else:
        new = d.transform(newdata)
        X, offset, groupings, index = new.X, new.offset, new.groupings, new.index
    fixed = X @ res.fixef().to_numpy() + offset
    if type == "link" or d.family == "gaussian":
        eta = fixed + (random_part(groupings, res._modes, new_levels) if include_random else 0.0)
        return pd.Series(eta, index=index, name="predicted")
    if include_random and res.draws is not None:  # posterior predictive: one eta per draw
        etas = fixed + random_part(groupings, res.draws, new_levels)
    else:
        etas = (
            fixed + (random_part(groupings, res._modes, new_levels) if include_random else 0.0)
        )[None, :]
    if d.family == "ordinal":
        probs = category_probabilities(etas, res.cutpoints).mean(axis=0)
        levels = d.response_levels or [str(k + 1) for k in range(probs.shape[1])]
        return pd.DataFrame(probs, index=index, columns=list(levels))
    mean = d.family_spec.inverse_link(etas).mean(axis=0)
    return pd.Series(mean, index=index, name="predicted")


def category_probabilities(eta: np.ndarray, cutpoints: np.ndarray) -> np.ndarray:
    """Ordinal category probabilities ``[..., K]`` at ``eta [...]`` (numpy)."""
    from scipy.special import expit

    cum = expit(np.asarray(cutpoints)[None, :] - np.asarray(eta).reshape(-1, 1))
    cum = np.concatenate([np.zeros((cum.shape[0], 1)), cum, np.ones((cum.shape[0], 1))], axis=1)
    return np.diff(cum, axis=1).reshape(*np.shape(eta), len(cutpoints) + 1)


def predict_with_intervals(
    res, newdata, include_random: bool, new_levels: NewLevels, type: str, interval, level, se_fit
) -> pd.DataFrame:
    """Predictions with standard errors and intervals (see :meth:`MixedLMResults.predict`).

    On the link scale ``var = x' V x`` (the fixed effects' covariance), plus with
    ``include_random`` each term's ``z' C_l z`` (``C_l`` the level's conditional covariance;
    ``Sigma`` for a level not seen in training), or without it ``z' Sigma z`` for a
    prediction interval (a new group); a prediction interval adds ``sigma^2``. Confidence
    bounds on the response scale are the link-scale bounds through ``g^{-1}``.
    """
    if interval not in (None, "confidence", "prediction"):
        raise OptionError(f"interval must be None, 'confidence' or 'prediction'; got {interval!r}.")
    if not 0 < level < 1:
        raise OptionError(f"level must be in (0, 1); got {level!r}.")
    d = res.design
    if d.family == "ordinal":
        raise OptionError(
            "intervals of ordinal predictions (category probabilities) are not available."
        )
    if interval == "prediction" and d.family != "gaussian":
        raise OptionError(
            "prediction intervals are for Gaussian models; for other families simulate new "
            "responses with res.simulate()."
        )
    rows = d if newdata is None else d.transform(newdata)
    index = d.index if newdata is None else rows.index
    eta = rows.X @ res.fixef().to_numpy() + rows.offset
    var = np.einsum("ij,jk,ik->i", rows.X, res.vcov().to_numpy(), rows.X)
    condcov = res._condcov if include_random else None
    for j, (g, cov) in enumerate(zip(rows.groupings, res.covariances, strict=True)):
        unseen = g.codes < 0
        if include_random:
            eta = eta + np.where(unseen, 0.0, _term_part(g, res._modes[j], new_levels))
            within = condcov[j][np.where(unseen, 0, g.codes)]
            var += np.where(unseen, np.einsum("ia,ab,ib->i", g.z, cov, g.z),
                            np.einsum("ia,iab,ib->i", g.z, within, g.z))  # fmt: skip
        elif interval == "prediction":
            var += np.einsum("ia,ab,ib->i", g.z, cov, g.z)
    if interval == "prediction":
        var = var + res.sigma**2
    se = np.sqrt(var)
    q = stats.norm.ppf(0.5 + level / 2)
    out = pd.DataFrame({"fit": eta}, index=index)
    if se_fit:
        out["se_fit"] = se
    if interval is not None:
        out["lower"], out["upper"] = eta - q * se, eta + q * se
    if type == "response" and d.family != "gaussian":
        inverse = d.family_spec.inverse_link
        out["fit"] = inverse(out["fit"].to_numpy())
        if interval is not None:  # monotone links: bounds map to bounds
            lo, hi = inverse(out["lower"].to_numpy()), inverse(out["upper"].to_numpy())
            out["lower"], out["upper"] = np.minimum(lo, hi), np.maximum(lo, hi)
        if se_fit:  # delta method
            out["se_fit"] = se * np.abs(LINKS[d.family_spec.link].mu_eta(eta))
    return out


def _term_part(g, modes: np.ndarray, new_levels: NewLevels) -> np.ndarray:
    return random_part((g,), [modes], new_levels)
