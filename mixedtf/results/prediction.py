"""Fitted values and predictions from fixed effects and conditional modes.

``eta = X beta + offset + sum_j sum_c z_j[:, c] * b_j[codes_j, c]``; levels not seen in
training contribute zero (the population level) or raise, as the caller chooses.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from mixedtf.design import GroupingSpec
from mixedtf.errors import DesignError, OptionError

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
