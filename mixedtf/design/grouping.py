"""Grouping specs: the gather form of one random-effects term.

For term ``j`` with ``k`` columns and levels ``0..L-1`` the contribution to the
linear predictor of row ``i`` is ``sum_c z[i, c] * b[codes[i], c]``: int32 level
codes plus a dense ``n x k`` block, never a dense ``n x (L k)`` Z.

Levels follow R's ``factor()``: a pandas categorical keeps its category order
(unused categories dropped), other columns are sorted. An interaction ``a:b``
has labels ``"a_level:b_level"`` with the first factor varying slowest and only
observed combinations kept, as lme4 builds ``cask:batch``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from formulaic import Formula as Terms
from formulaic import ModelSpec

from mixedtf.design.data import EVAL_CONTEXT
from mixedtf.design.naming import make_unique, r_model_matrix
from mixedtf.errors import DesignError
from mixedtf.formula import RandomTerm


@dataclass(frozen=True, eq=False)
class GroupingSpec:
    """One random-effects block in gather form.

    Attributes:
        name: lme4's VarCorr group name (``"Subject"``, ``"Subject.1"``, ``"cask:batch"``).
        factor: the grouping factor's name (``"Subject"``, ``"cask:batch"``).
        levels: level labels in R's order.
        codes: int32 level code of each row (``-1`` marks a level unseen in training,
            only in :meth:`DesignSpec.transform` output).
        z: float64 ``n x k`` block of the term's columns.
        colnames: R names of the columns (``"(Intercept)"``, ``"Days"``).
        correlated: ``False`` for a block split from a ``||`` term.
        term: the random term it came from.
    """

    name: str
    factor: str
    levels: tuple[str, ...]
    codes: np.ndarray
    z: np.ndarray
    colnames: tuple[str, ...]
    correlated: bool
    term: RandomTerm
    column_spec: ModelSpec
    column_index: tuple[int, ...]

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def k(self) -> int:
        """Number of columns (random effects per level)."""
        return self.z.shape[1]

    def with_data(self, codes: np.ndarray, z: np.ndarray) -> GroupingSpec:
        """The same spec over other rows (used for new data)."""
        return replace(self, codes=codes, z=z)

    def __repr__(self) -> str:
        return (
            f"GroupingSpec(name={self.name!r}, levels={self.n_levels}, "
            f"columns={list(self.colnames)}, correlated={self.correlated})"
        )


def _value_labels(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes and R-ordered labels of one factor column (no missing values)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy(np.int64), [str(c) for c in cat.cat.categories]
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.int64), [_label(u) for u in uniques]


def _label(value: object) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def factor_levels(
    frame: pd.DataFrame, factors: tuple[str, ...]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Level codes and labels of the (interaction) factor ``factors`` over ``frame``."""
    parts = [_value_labels(frame[f]) for f in factors]
    if len(parts) == 1:
        codes, labels = parts[0]
        return codes.astype(np.int32), tuple(labels)
    combined = np.ravel_multi_index([c for c, _ in parts], [len(lab) for _, lab in parts])
    observed, codes = np.unique(combined, return_inverse=True)
    combos = np.unravel_index(observed, [len(lab) for _, lab in parts])
    labels = tuple(
        ":".join(parts[j][1][combos[j][i]] for j in range(len(parts))) for i in range(len(observed))
    )
    return codes.astype(np.int32), labels


def row_labels(frame: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    """The label of each row's level of ``factors`` (for re-encoding new data)."""
    labels = frame[factors[0]].map(_label).astype(str)
    for f in factors[1:]:
        labels = labels + ":" + frame[f].map(_label).astype(str)
    return labels.to_numpy()


def term_columns(
    term: RandomTerm, frame: pd.DataFrame
) -> tuple[np.ndarray, tuple[str, ...], ModelSpec]:
    """The term's dense column block, its R names and the formulaic spec for new data."""
    return r_model_matrix(
        term.lhs_formula, frame, EVAL_CONTEXT, f"the columns of random term {term.source}"
    )


def uncorrelated_parts(term: RandomTerm) -> list[RandomTerm]:
    """lme4's ``expandDoubleVerts``: ``(x + z || g)`` is ``(1 | g) + (0 + x | g) +
    (0 + z | g)``, one block per *formula term* (``x*z`` gives ``x``, ``z`` and ``x:z``);
    a factor's block has a column per level, correlated within it, as in R. A ``|``
    term is itself."""
    if term.correlated:
        return [term]
    parts = [replace(term, covariates=())] if term.intercept else []
    if term.covariates:
        labels = [str(t) for t in Terms("0 + " + " + ".join(term.covariates))]
        parts += [replace(term, intercept=False, covariates=(label,)) for label in labels]
    return parts


def build_groupings(terms: tuple[RandomTerm, ...], frame: pd.DataFrame) -> list[GroupingSpec]:
    """Grouping specs for ``terms`` in lme4's order with lme4's group names.

    ``||`` terms are split as lme4 splits them (:func:`uncorrelated_parts`). As lme4's ``mkReTrms``, blocks are
    reordered by decreasing number of levels when any later block has more levels than
    an earlier one (``rev(order(nl))``), and duplicate factor names are made unique.
    """
    blocks: list[GroupingSpec] = []
    for term in terms:
        codes, levels = factor_levels(frame, term.factors)
        for part in uncorrelated_parts(term):
            z, colnames, spec = term_columns(part, frame)
            index = tuple(range(z.shape[1]))
            blocks.append(
                GroupingSpec(
                    name=term.group,
                    factor=term.group,
                    levels=levels,
                    codes=codes,
                    z=z,
                    colnames=colnames,
                    correlated=term.correlated,
                    term=part,
                    column_spec=spec,
                    column_index=index,
                )
            )
    n_levels = [b.n_levels for b in blocks]
    if any(b > a for a, b in itertools.pairwise(n_levels)):
        blocks = [blocks[i] for i in np.argsort(n_levels, kind="stable")[::-1]]
    names = make_unique([b.factor for b in blocks])
    return [replace(b, name=name) for b, name in zip(blocks, names, strict=True)]


def check_groupings(groupings: list[GroupingSpec], nobs: int, family: str) -> None:
    """lme4's identifiability checks on the number of levels (``check.nlev.gtr.1`` and,
    for models with a residual scale, ``check.nobs.vs.nlev`` and ``check.nobs.vs.nRE``)."""
    for g in groupings:
        if g.n_levels < 2:
            raise DesignError(
                f"grouping factor {g.factor!r} has a single level ({g.levels[0]!r}) in the data used; "
                "a random effect needs at least 2 levels. Drop the term "
                f"{g.term.source} or check the data."
            )
        if family == "gaussian" and g.n_levels >= nobs:
            raise DesignError(
                f"grouping factor {g.factor!r} has {g.n_levels} levels for {nobs} observations; "
                "the number of levels must be less than the number of observations, otherwise its "
                f"effects cannot be told apart from the residual. Drop {g.term.source}."
            )
    if family == "gaussian":
        for term in {g.term for g in groupings}:
            blocks = [g for g in groupings if g.term is term]
            n_re = sum(g.n_levels * g.k for g in blocks)
            if n_re >= nobs:
                raise DesignError(
                    f"random term {term.source} has {n_re} random effects for {nobs} observations; "
                    "they must be fewer than the observations for its variance and the residual "
                    "variance to be identifiable. Simplify the term, e.g. use (1 | g)."
                )
