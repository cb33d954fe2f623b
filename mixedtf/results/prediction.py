"""Fitted values and predictions from fixed effects and conditional modes.

``eta = X beta + offset + sum_j sum_c z_j[:, c] * b_j[codes_j, c]``; levels not seen in
training contribute zero (the population level) or raise, as the caller chooses.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mixedtf.design import GroupingSpec
from mixedtf.errors import DesignError

NewLevels = Literal["population", "error"]


def random_part(
    groupings: tuple[GroupingSpec, ...], modes: list[np.ndarray], new_levels: NewLevels
) -> np.ndarray:
    """``Z b`` over the rows of ``groupings`` (codes ``-1`` mark unseen levels)."""
    n = groupings[0].codes.shape[0] if groupings else 0
    total = np.zeros(n)
    for g, b in zip(groupings, modes, strict=True):
        unseen = g.codes < 0
        if unseen.any() and new_levels == "error":
            rows = np.flatnonzero(unseen)
            raise DesignError(
                f"{rows.size} rows have levels of {g.factor!r} not seen in training (rows {rows[:10].tolist()}); "
                "pass new_levels='population' to predict them at the population level (effect 0)."
            )
        contribution = (g.z * b[np.where(unseen, 0, g.codes)]).sum(axis=1)
        total += np.where(unseen, 0.0, contribution)
    return total


def check_new_levels(new_levels: str) -> NewLevels:
    if new_levels not in ("population", "error"):
        raise ValueError(f"new_levels must be 'population' or 'error'; got {new_levels!r}.")
    return new_levels  # type: ignore[return-value]
