"""The response vector, coerced as the family needs it.

* gaussian: numeric (booleans become 0/1); poisson, negative_binomial: whole counts.
* binomial: ``cbind(successes, failures)`` gives an ``n x 2`` array; otherwise 0/1
  numbers, booleans, or a two-level factor whose first level is failure (as R's glm).
* ordinal: an ordered categorical or whole numbers; coded ``1..K`` (sorted values) with the
  level labels kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixedtf.design.data import evaluate
from mixedtf.errors import DesignError, FamilyError
from mixedtf.formula import Response


def _numeric(values: pd.Series, expr: str, family: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(np.float64)
    if not pd.api.types.is_numeric_dtype(values.dtype):
        hint = (
            " For a two-level factor use family='binomial'; for ordered categories family='ordinal'."
            if family == "gaussian"
            else ""
        )
        example = ", ".join(repr(v) for v in pd.unique(values)[:3])
        raise DesignError(
            f"the response {expr!r} must be numeric for family={family!r}; it has dtype "
            f"{values.dtype} (values such as {example}).{hint}"
        )
    y = values.to_numpy(np.float64)
    if not np.isfinite(y).all():
        bad = np.flatnonzero(~np.isfinite(y))
        raise DesignError(
            f"the response {expr!r} is not finite in {bad.size} rows (first at position {bad[0]}); "
            "check the transformation (e.g. log of zero)."
        )
    return y


def build_response(
    response: Response, frame: pd.DataFrame, family: str
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """The response array and, for factor responses, the level labels."""
    if response.cbind is not None:
        if family not in ("binomial",):
            raise DesignError(
                f"cbind(successes, failures) is a binomial response; got family={family!r}. "
                "Use family='binomial'."
            )
        cols = [_numeric(evaluate(e, frame), e, family) for e in response.cbind]
        for e, c in zip(response.cbind, cols, strict=True):
            _check_counts(c, f"cbind(...) column {e!r}", "binomial")
        return np.column_stack(cols), None
    values = evaluate(response.expr, frame)
    if (
        isinstance(values.dtype, pd.CategoricalDtype)
        or values.dtype == object
        or (
            pd.api.types.is_string_dtype(values.dtype)
            and not pd.api.types.is_numeric_dtype(values.dtype)
        )
    ):
        cat = (
            values.astype("category")
            if not isinstance(values.dtype, pd.CategoricalDtype)
            else values
        )
        cat = cat.cat.remove_unused_categories()
        levels = tuple(str(c) for c in cat.cat.categories)
        if family == "binomial":
            if len(levels) != 2:
                raise DesignError(
                    f"a factor response for family='binomial' has two levels; {response.expr!r} "
                    f"has {len(levels)}: {list(levels)[:6]}."
                )
            return (cat.cat.codes.to_numpy() == 1).astype(np.float64), levels
        if family == "ordinal":
            _check_categories(len(levels), response.expr)
            return cat.cat.codes.to_numpy(np.float64) + 1.0, levels
    y = _numeric(values, response.expr, family)
    if family == "binomial" and (np.any(y < 0) or np.any(y > 1)):
        bad = y[(y < 0) | (y > 1)]
        raise FamilyError(
            f"a numeric binomial response must be 0/1 (or a proportion); {response.expr!r} has "
            f"{bad.size} values outside [0, 1], such as {bad[:3].tolist()}. For counts out of "
            "trials write cbind(successes, failures) ~ ..."
        )
    if family in ("poisson", "negative_binomial"):
        _check_counts(y, f"the response {response.expr!r}", family)
    if family in ("gamma", "inverse_gaussian") and np.any(y <= 0):
        bad = y[y <= 0]
        raise FamilyError(
            f"the response {response.expr!r} must be positive for family={family!r}; "
            f"{bad.size} values are not, such as {bad[:3].tolist()}."
        )
    if family == "ordinal":
        values = np.unique(y)
        _check_categories(values.size, response.expr)
        if np.any(values != np.round(values)):
            raise FamilyError(
                f"a numeric ordinal response must hold whole numbers (ordered categories); "
                f"{response.expr!r} has values such as {values[values != np.round(values)][:3].tolist()}. "
                "Pass an ordered categorical instead."
            )
        codes = np.searchsorted(values, y) + 1.0
        return codes, tuple(str(int(v)) for v in values)
    return y, None


def _check_counts(y: np.ndarray, what: str, family: str) -> None:
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        raise FamilyError(
            f"{what} must be non-negative whole counts for family={family!r}; {int(bad.sum())} "
            f"values are not, such as {y[bad][:3].tolist()}."
        )


def _check_categories(k: int, expr: str) -> None:
    if k < 2:
        raise FamilyError(f"an ordinal response needs at least two categories; {expr!r} has {k}.")


def check_response(y: np.ndarray, family: str, what: str = "the response") -> None:
    """Raise unless ``y`` (numbers as the likelihood reads them: 0/1 or an ``n x 2``
    ``cbind`` for binomial, categories ``1..K`` for ordinal) fits ``family``."""
    if not np.all(np.isfinite(y)):
        raise DesignError(f"{what} must be finite; {int(np.sum(~np.isfinite(y)))} values are not.")
    if family == "binomial":
        if y.ndim == 2:
            _check_counts(y.ravel(), what, family)
        elif np.any((y < 0) | (y > 1)):
            raise FamilyError(f"{what} must be 0/1 (or a proportion) for family='binomial'.")
    elif family in ("poisson", "negative_binomial"):
        _check_counts(y, what, family)
    elif family in ("gamma", "inverse_gaussian") and np.any(y <= 0):
        raise FamilyError(f"{what} must be positive for family={family!r}.")
    elif family == "ordinal" and np.any((y < 1) | (y != np.round(y))):
        raise FamilyError(f"{what} must hold the categories 1..K for family='ordinal'.")
