"""The random effects as mixed-model users look at them: lme4's
``dotplot(ranef(m, condVar = TRUE))`` (:func:`plot_caterpillar`), its normal-QQ form
(:func:`plot_qqcaterpillar`, MixedModelsMakie's ``qqcaterpillar!``) and the shrinkage of
per-group least-squares fits towards the population (:func:`plot_shrinkage`,
MixedModelsMakie's ``shrinkageplot!``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from mixedtf.errors import OptionError
from mixedtf.plotting._base import BLUE, GREY, INK, VERMILION, label_levels, new_grid
from mixedtf.plotting._base import normal_quantiles as _normal_quantiles


def _grouping(res: Any, group: str | None):
    factors = list(dict.fromkeys(g.factor for g in res.design.groupings))
    group = factors[0] if group is None else group
    if group not in factors:
        raise OptionError(f"group must be one of the grouping factors {factors}; got {group!r}.")
    return group


def _intervals(res: Any, group: str, level: float) -> pd.DataFrame:
    if not 0 < level < 1:
        raise OptionError(f"level must be in (0, 1); got {level!r}.")
    table = res.ranef(condvar=True)
    table = table[table.grpvar == group]
    z = norm.ppf(0.5 + level / 2)
    return table.assign(
        lower=table.condval - z * table.condsd, upper=table.condval + z * table.condsd
    )


def _shown(order: np.ndarray, max_levels: int | None) -> np.ndarray:
    """``order`` (levels sorted), evenly thinned to ``max_levels`` keeping both ends."""
    if max_levels is None or order.size <= max_levels:
        return order
    return order[np.unique(np.linspace(0, order.size - 1, max_levels).round().astype(int))]


def plot_caterpillar(
    res: Any,
    group: str | None = None,
    level: float = 0.95,
    max_levels: int | None = 1000,
    axes: Any = None,
):
    """Conditional modes of ``group``'s levels (default: the first grouping factor) with
    their ``level`` intervals ``mode +- z * condsd``, one panel per term column, the levels
    sorted by the first column's mode (as lme4's ``dotplot``). More than ``max_levels``
    levels are thinned evenly over the sorted order (both extremes kept; the title says
    how many are shown); level names label the axis only where they do not collide.

    Returns the panels' Axes (``ax.lines[0]`` holds the modes, ``ax.collections[0]`` the
    intervals)."""
    group = _grouping(res, group)
    table = _intervals(res, group, level)
    terms = list(dict.fromkeys(table.term))
    first = table[table.term == terms[0]]
    order = _shown(np.argsort(first.condval.to_numpy(), kind="stable"), max_levels)
    labels = [str(v) for v in first.grp.to_numpy()[order]]
    if axes is None:
        _, axes = new_grid(len(terms), (3.6, max(3.0, min(9.0, 0.16 * order.size + 1))))
    axes = np.atleast_1d(axes)
    if axes.size < len(terms):
        raise OptionError(f"plot_caterpillar needs {len(terms)} axes; got {axes.size}.")
    y = np.arange(order.size)
    small = order.size > 200
    for ax, term in zip(axes, terms, strict=False):
        rows = table[table.term == term].iloc[order]
        ax.hlines(y, rows.lower, rows.upper, color=GREY if small else BLUE, lw=0.4 if small else 1)
        ax.plot(rows.condval, y, "o", color=INK, ms=1.5 if small else 3.5, ls="none")
        ax.axvline(0.0, color=VERMILION, lw=0.8, ls="--")
        ax.set_title(term)
        ax.set_xlabel("conditional mode")
        ax.set_ylim(-1, order.size)
        label_levels(ax, y, labels)
    shown = f"{order.size} of {len(first)} levels" if order.size < len(first) else group
    axes[0].set_ylabel(f"{shown}, sorted")
    axes[0].figure.suptitle(f"{group}: conditional modes, {level:.0%} intervals")
    return axes[: len(terms)]


def plot_qqcaterpillar(res: Any, group: str | None = None, level: float = 0.95, axes: Any = None):
    """The caterpillar against normal quantiles: per term column, the sorted conditional
    modes (with their ``level`` intervals) at ``qnorm(ppoints(n))``; a straight band is
    what the normal random-effects assumption predicts."""
    group = _grouping(res, group)
    table = _intervals(res, group, level)
    terms = list(dict.fromkeys(table.term))
    if axes is None:
        _, axes = new_grid(len(terms), (3.6, 3.4))
    axes = np.atleast_1d(axes)
    for ax, term in zip(axes, terms, strict=False):
        rows = table[table.term == term].sort_values("condval", kind="stable")
        q = _normal_quantiles(len(rows))
        small = len(rows) > 200
        ax.hlines(q, rows.lower, rows.upper, color=GREY if small else BLUE, lw=0.4 if small else 1)
        ax.plot(rows.condval, q, "o", color=INK, ms=1.5 if small else 3.5, ls="none")
        ax.set_title(term)
        ax.set_xlabel("conditional mode")
    axes[0].set_ylabel("standard normal quantile")
    axes[0].figure.suptitle(f"{group}: conditional modes against normal quantiles")
    return axes[: len(terms)]


def shrinkage(res: Any, group: str | None = None) -> pd.DataFrame:
    """Per level of ``group``: the least-squares fit of its own rows (columns
    ``ols:<term>``) next to the model's per-group coefficients (``coef:<term>``, lme4's
    ``coef(m)``), for a Gaussian model. The least-squares fit regresses
    ``y - X beta - (the other groupings' modes)`` on the level's term columns and adds the
    fixed effect of each column that has one, so with one grouping factor whose columns
    are fixed effects it is ``lmList``'s per-group fit. Levels with fewer rows than
    columns, or rank-deficient ones, get NaN."""
    d = res.design
    if d.family != "gaussian":
        raise OptionError(
            f"the shrinkage plot compares per-group least-squares fits: Gaussian models only; "
            f"this is {d.family!r}."
        )
    group = _grouping(res, group)
    fixef = res.fixef()
    modes = res._modes
    index = [i for i, g in enumerate(d.groupings) if g.factor == group]
    partial = d.proportion - d.X @ fixef.to_numpy() - d.offset
    for i, (g, mode) in enumerate(zip(d.groupings, modes, strict=True)):
        if i not in index:
            partial = partial - np.einsum("ik,ik->i", g.z, mode[g.codes])
    g0 = d.groupings[index[0]]
    Z = np.column_stack([d.groupings[i].z for i in index])
    terms = [c for i in index for c in d.groupings[i].colnames]
    ols = np.full((g0.n_levels, Z.shape[1]), np.nan)
    for level in range(g0.n_levels):
        rows = g0.codes == level
        if rows.sum() >= Z.shape[1] and np.linalg.matrix_rank(Z[rows]) == Z.shape[1]:
            ols[level] = np.linalg.lstsq(Z[rows], partial[rows], rcond=None)[0]
    shift = np.array([fixef.get(t, 0.0) for t in terms])
    coef = res.coef()[group]
    out = pd.DataFrame(ols + shift, index=coef.index, columns=[f"ols:{t}" for t in terms])
    for t in terms:
        out[f"coef:{t}"] = coef[t].to_numpy()
    return out


def plot_shrinkage(
    res: Any, group: str | None = None, terms: tuple[str, str] | None = None, ax: Any = None
):
    """Per level, an arrow from its own least-squares fit to the model's coefficient
    (:func:`shrinkage`), in the plane of two term columns (default: the first two), with
    the population estimate marked; one column: least squares on x, model on y, against
    the identity line. Returns the Axes: two columns, ``ax.collections[0]`` holds the
    least-squares points and ``[1]`` the model's; one column, ``ax.collections[0]`` holds
    the (least squares, model) pairs."""
    from mixedtf.plotting._base import new_axes

    table = shrinkage(res, group).dropna()
    names = [c[4:] for c in table.columns if c.startswith("ols:")]
    ax = new_axes(ax, (4.6, 4.2))
    if len(names) == 1:
        t = names[0]
        ax.scatter(table[f"ols:{t}"], table[f"coef:{t}"], s=14, color=BLUE, label="levels")
        lims = [table.to_numpy().min(), table.to_numpy().max()]
        ax.plot(lims, lims, color=VERMILION, lw=0.8, ls="--", label="no shrinkage")
        ax.set_xlabel(f"least squares: {t}")
        ax.set_ylabel(f"model: {t}")
    else:
        a, b = terms if terms is not None else names[:2]
        for t in (a, b):
            if t not in names:
                raise OptionError(f"terms must be columns of the grouping {names}; got {t!r}.")
        ax.scatter(table[f"ols:{a}"], table[f"ols:{b}"], s=14, color=GREY, label="least squares")
        ax.scatter(table[f"coef:{a}"], table[f"coef:{b}"], s=14, color=BLUE, label="model")
        for _, row in table.iterrows():
            ax.annotate(
                "",
                xy=(row[f"coef:{a}"], row[f"coef:{b}"]),
                xytext=(row[f"ols:{a}"], row[f"ols:{b}"]),
                arrowprops={"arrowstyle": "->", "color": GREY, "lw": 0.6},
            )
        fixef = res.fixef()
        if a in fixef.index and b in fixef.index:
            ax.plot(fixef[a], fixef[b], "+", color=VERMILION, ms=12, mew=2, label="population")
        ax.set_xlabel(a)
        ax.set_ylabel(b)
    ax.set_title(f"Shrinkage: {_grouping(res, group)}")
    ax.legend(loc="best", fontsize="small")
    return ax
