"""``build_design``: from a parsed formula and data to y, X and the grouping specs."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from formulaic import ModelSpec

from mixedtf import families
from mixedtf.design.data import (
    EVAL_CONTEXT,
    as_frame,
    check_columns,
    drop_missing,
    evaluate,
    used_columns,
)
from mixedtf.design.grouping import (
    GroupingSpec,
    build_groupings,
    check_groupings,
    row_labels,
)
from mixedtf.design.naming import r_model_matrix
from mixedtf.design.response import build_response
from mixedtf.errors import DesignError, FamilyError, MixedTFWarning
from mixedtf.formula import Formula, parse_formula


@dataclass(frozen=True, eq=False)
class NewData:
    """New data re-encoded with the training levels and contrasts.

    ``groupings[j].codes`` is ``-1`` where a level was not seen in training.
    """

    X: np.ndarray
    offset: np.ndarray
    groupings: tuple[GroupingSpec, ...]
    index: pd.Index

    def unseen(self, name: str) -> np.ndarray:
        """Boolean mask of rows whose level of group ``name`` was not seen in training."""
        return next(g for g in self.groupings if g.name == name).codes < 0


@dataclass(frozen=True, eq=False)
class Design:
    """Everything the estimators need, in arrays; and what re-encodes new data.

    Attributes:
        formula: the parsed formula.
        family: family name, which decides how the response is coerced.
        link: the family's link (see :mod:`mixedtf.families`).
        y: float64 response (``n x 2`` successes/failures for ``cbind``).
        response_levels: labels of a factor response, else ``None``.
        X: float64 ``n x p`` fixed-effects model matrix.
        fixed_names: R names of X's columns (``"(Intercept)"``, ``"service1"``).
        offset: float64 ``n`` offset (zeros when the formula has none).
        groupings: grouping specs in lme4's order.
        index: index labels of the rows used (rows with missing values dropped).
        n_dropped: how many rows were dropped for missing values.
        data: the used columns of the rows used (what ``save`` stores to rebuild the design).
    """

    formula: Formula
    family: str
    y: np.ndarray
    response_levels: tuple[str, ...] | None
    X: np.ndarray
    fixed_names: tuple[str, ...]
    fixed_spec: ModelSpec
    fixed_keep: tuple[int, ...]
    offset: np.ndarray
    groupings: tuple[GroupingSpec, ...]
    index: pd.Index
    n_dropped: int
    data: pd.DataFrame | None = None
    link: str = ""
    spec: families.Family | None = None
    prior_weights: np.ndarray | None = None

    def whitened(self) -> Design:
        """The Gaussian model with prior weights as an unweighted one: every row of y, X,
        the offset and the random-effect columns times ``sqrt(w)`` (``e_i / sqrt(w_i)`` has
        variance ``sigma^2``). Its log-likelihood is this design's minus ``sum(log w) / 2``."""
        if self.prior_weights is None:
            return self
        s = np.sqrt(self.prior_weights)
        return replace(
            self,
            y=self.y * s,
            X=self.X * s[:, None],
            offset=self.offset * s,
            groupings=tuple(g.with_data(g.codes, g.z * s[:, None]) for g in self.groupings),
            prior_weights=None,
        )

    @property
    def log_weights(self) -> float:
        """``sum(log w)`` of the prior weights (0 without them): lme4's ``ldW``."""
        return 0.0 if self.prior_weights is None else float(np.log(self.prior_weights).sum())

    @property
    def family_spec(self) -> families.Family:
        """The family object (:mod:`mixedtf.families`): its link, a fixed negative binomial
        theta."""
        return self.spec if self.spec is not None else families.get(self.family, self.link or None)

    @property
    def nobs(self) -> int:
        return self.X.shape[0]

    @property
    def outcome(self) -> np.ndarray:
        """The response as the likelihood reads it, one number per row: the successes of a
        binomial response, the category ``1..K`` of an ordinal one, else ``y``."""
        return self.y[:, 0] if self.y.ndim == 2 else self.y

    @property
    def trials(self) -> np.ndarray | None:
        """Binomial trials per row (``s + f`` of ``cbind(s, f)``, 1 for a 0/1 response);
        None for the other families."""
        if self.family != "binomial":
            return None
        return self.y.sum(axis=1) if self.y.ndim == 2 else np.ones_like(self.y)

    @property
    def proportion(self) -> np.ndarray:
        """The response on the mean's scale: successes per trial (binomial), else ``y``."""
        trials = self.trials
        return self.outcome if trials is None else self.outcome / np.maximum(trials, 1.0)

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels per grouping factor, as lme4's ``ngrps``."""
        return {g.factor: g.n_levels for g in self.groupings}

    def transform(self, newdata: Any) -> NewData:
        """Re-encode ``newdata`` with the training levels and contrasts (for ``predict``).

        Raises:
            DesignError: a used column is missing, or a row has a missing predictor.
        """
        frame = as_frame(newdata)
        needed = used_columns(self.formula, include_response=False)
        check_columns(frame, needed)
        rows = frame[needed].isna().any(axis=1).to_numpy()
        if rows.any():
            labels = list(frame.index[rows][:10])
            raise DesignError(
                f"{int(rows.sum())} rows of the new data have missing predictors (rows {labels}"
                f"{' ...' if rows.sum() > 10 else ''}); fill them in or drop them before predicting."
            )
        X = np.asarray(
            self.fixed_spec.get_model_matrix(frame, na_action="raise", context=EVAL_CONTEXT),
            dtype=np.float64,
        )
        groupings = []
        for g in self.groupings:
            lookup = pd.Index(g.levels)
            codes = lookup.get_indexer(row_labels(frame, g.term.factors)).astype(np.int32)
            z = np.asarray(
                g.column_spec.get_model_matrix(frame, na_action="raise", context=EVAL_CONTEXT),
                dtype=np.float64,
            )
            groupings.append(g.with_data(codes, z[:, list(g.column_index)]))
        return NewData(
            X=X[:, list(self.fixed_keep)],
            offset=_offset(self.formula, frame),
            groupings=tuple(groupings),
            index=frame.index,
        )

    def __repr__(self) -> str:
        groups = ", ".join(
            f"{g.name}: {g.n_levels} levels x {list(g.colnames)}" for g in self.groupings
        )
        return f"Design(n={self.nobs}, fixed={list(self.fixed_names)}, random=[{groups}])"


def _offset(formula: Formula, frame: pd.DataFrame) -> np.ndarray:
    total = np.zeros(len(frame))
    for expr in formula.offsets:
        value = evaluate(expr, frame)
        if not pd.api.types.is_numeric_dtype(value.dtype):
            raise DesignError(f"offset({expr}) must be numeric; it has dtype {value.dtype}.")
        total += value.to_numpy(np.float64)
    return total


def _fixed_matrix(
    formula: Formula, frame: pd.DataFrame
) -> tuple[np.ndarray, tuple[str, ...], ModelSpec]:
    what = f"the fixed-effects matrix of {formula.fixed!r}"
    return r_model_matrix(formula.fixed, frame, EVAL_CONTEXT, what)


def _full_rank_columns(X: np.ndarray, names: tuple[str, ...]) -> tuple[int, ...]:
    """Columns to keep, dropping later columns that are linear in earlier ones (as lme4)."""
    if X.shape[1] == 0:
        return ()
    scale = np.linalg.norm(X, axis=0)
    scale[scale == 0] = 1.0
    r = np.abs(np.diag(np.linalg.qr(X / scale, mode="r")))
    keep = tuple(int(j) for j in np.flatnonzero(r > 1e-7 * max(r.max(), 1.0)))
    if len(keep) < X.shape[1]:
        dropped = [names[j] for j in range(X.shape[1]) if j not in keep]
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column(s): {dropped}",
            MixedTFWarning,
            stacklevel=4,
        )
    return keep


WEIGHTS = "(weights)"


def build_design(
    formula: str | Formula,
    data: Any,
    family: str | families.Family = "gaussian",
    weights: Any = None,
) -> Design:
    """Build the design of an lme4 formula on ``data`` (DataFrame or dict of arrays).

    Rows with a missing value in any used column are dropped with a
    :class:`~mixedtf.errors.MissingValuesWarning`. For ``family="ordinal"`` the fixed part
    has no intercept (the cutpoints take its place, as ``ordinal::clmm``).

    Args:
        family: a family name or object (:mod:`mixedtf.families`); decides how the response
            is coerced, and carries the link to the estimators.
        weights: a column name or an array. Gaussian: prior weights, ``Var(e_i) = sigma^2 /
            w_i`` (lmer's ``weights``; positive). Binomial: trials per row with a response
            of proportions, as ``glmer(y ~ ..., weights = n)``; stored as
            ``cbind(y * n, n - y * n)``.

    Raises:
        FormulaSyntaxError: the formula does not parse.
        DesignError: the data do not fit the formula.
        FamilyError: an unknown family or link, or a response the family cannot take.
    """
    parsed = parse_formula(formula) if isinstance(formula, str) else formula
    spec = families.get(family)
    family = spec.name
    frame = as_frame(data)
    names = used_columns(parsed)
    check_columns(frame, names)
    if weights is not None:
        frame = _with_weights(frame, weights, family)
        names = [*names, WEIGHTS]
    complete = drop_missing(frame, names)
    y, levels = build_response(parsed.response, complete, family)
    prior_weights = None
    if weights is not None and family == "binomial":
        y = _trials_response(y, complete[WEIGHTS].to_numpy(np.float64), parsed.response.expr)
    elif weights is not None:
        prior_weights = _prior_weights(complete[WEIGHTS].to_numpy(np.float64))
    X, fixed_names, fixed_spec = _fixed_matrix(parsed, complete)
    keep = _full_rank_columns(X, fixed_names)
    if family == "ordinal":
        keep = tuple(j for j in keep if fixed_names[j] != "(Intercept)")
    groupings = build_groupings(parsed.random, complete)
    check_groupings(groupings, len(complete), family)
    offset = _offset(parsed, complete)
    if not np.isfinite(X).all() or not np.isfinite(offset).all():
        raise DesignError(
            "the fixed-effects matrix or the offset has non-finite values after transformation "
            "(e.g. log of zero); check the transformed columns."
        )
    return Design(
        formula=parsed,
        family=family,
        y=y,
        response_levels=levels,
        X=X[:, list(keep)],
        fixed_names=tuple(fixed_names[j] for j in keep),
        fixed_spec=fixed_spec,
        fixed_keep=keep,
        offset=offset,
        groupings=tuple(groupings),
        index=complete.index,
        n_dropped=len(frame) - len(complete),
        data=complete[names],
        link=spec.link,
        spec=spec,
        prior_weights=prior_weights,
    )


def _with_weights(frame: pd.DataFrame, weights: Any, family: str) -> pd.DataFrame:
    if family not in ("gaussian", "binomial", "poisson", "gamma", "inverse_gaussian"):
        raise DesignError(
            f"weights= are prior weights (Gaussian, Poisson, Gamma, inverse Gaussian) or binomial "
            f"trials; family={family!r} does not take them yet."
        )
    if isinstance(weights, str):
        check_columns(frame, [weights])
        values = frame[weights]
    else:
        values = np.asarray(weights, dtype=np.float64).ravel()
        if values.size != len(frame):
            raise DesignError(
                f"weights must have one value per row of the data ({len(frame)}); got {values.size}."
            )
    out = frame.copy()
    out[WEIGHTS] = pd.Series(np.asarray(values, dtype=np.float64), index=frame.index)
    return out


def _prior_weights(w: np.ndarray) -> np.ndarray:
    """Prior weights (Gaussian: ``Var(e_i) = sigma^2 / w_i``; the other families: each
    row's log-likelihood times ``w_i``, as glm's): positive and finite."""
    bad = ~np.isfinite(w) | (w <= 0)
    if bad.any():
        zero = int(np.sum(w == 0))
        raise DesignError(
            f"prior weights must be positive and finite; {int(bad.sum())} rows are not "
            f"(first at position {int(np.flatnonzero(bad)[0])}"
            + (f"; {zero} are 0, which lme4 fits with logLik -Inf" if zero else "")
            + "). Drop those rows or give them a positive weight."
        )
    return w


def _trials_response(y: np.ndarray, trials: np.ndarray, expr: str) -> np.ndarray:
    """``cbind(successes, failures)`` from proportions ``y`` out of ``trials``."""

    if y.ndim != 1:
        raise DesignError("weights= go with a response of proportions, not with cbind(...).")
    successes = y * trials
    bad = (
        (trials <= 0)
        | (trials != np.round(trials))
        | (np.abs(successes - np.round(successes)) > 1e-8)
    )
    if bad.any():
        raise FamilyError(
            f"weights= are binomial trials: positive whole numbers with {expr!r} * weights whole "
            f"successes; {int(bad.sum())} rows are not (first at position {int(np.flatnonzero(bad)[0])})."
        )
    successes = np.round(successes)
    return np.column_stack([successes, trials - successes])
