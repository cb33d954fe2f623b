"""Interval plots: lme4's ``xyplot(profile(m))`` (:func:`plot_profile`: the signed root
of the profiled deviance of each parameter) and the bootstrap distributions of
``bootMer`` (:func:`plot_bootstrap`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from mixedtf.errors import OptionError
from mixedtf.plotting._base import BLUE, GREY, INK, VERMILION, new_grid

LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)  # lme4's xyplot(profile) reference lines


def plot_profile(profile: pd.DataFrame, ncols: int = 3):
    """One panel per parameter of ``mtf.profile(res)``: zeta against the parameter, with
    the ``+-z`` lines of the 50/80/90/95/99% intervals (lme4's ``xyplot(profile(m))``);
    a straight line is a quadratic log-likelihood, where Wald intervals are right.
    Returns the Figure."""
    if not {"parameter", "value", "zeta"} <= set(profile.columns):
        raise OptionError(
            "plot_profile takes the table of mtf.profile(res) (columns parameter, value, "
            f"zeta); got columns {list(profile.columns)}."
        )
    names = list(dict.fromkeys(profile.parameter))
    fig, axes = new_grid(len(names), (3.2, 2.8), ncols=min(ncols, len(names)))
    top = max(float(np.abs(profile.zeta).max()), 1.0)
    for ax, name in zip(axes, names, strict=True):
        rows = profile[profile.parameter == name].sort_values("value")
        for level in LEVELS:
            z = norm.ppf(0.5 + level / 2)
            if z <= top * 1.05:
                ax.axhline(z, color=GREY, lw=0.6, ls=":")
                ax.axhline(-z, color=GREY, lw=0.6, ls=":")
        ax.plot(rows.value, rows.zeta, "-o", color=BLUE, ms=2.5, lw=1.2)
        ax.axhline(0.0, color=INK, lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_ylim(-top * 1.1, top * 1.1)
    for ax in axes[:: min(ncols, len(names))]:
        ax.set_ylabel("zeta")
    fig.suptitle("Profile zeta (signed root of the deviance increase)")
    return fig


def plot_bootstrap(draws: pd.DataFrame, level: float = 0.95, ncols: int = 3, bins: int = 40):
    """Histograms of ``mtf.bootstrap(res)``'s replicates, one panel per parameter, with
    the percentile interval of ``level`` (``confint(method="boot")``) marked. Returns the
    Figure."""
    if not 0 < level < 1:
        raise OptionError(f"level must be in (0, 1); got {level!r}.")
    values = draws.dropna()
    if values.empty:
        raise OptionError("no bootstrap replicate was fitted; nothing to plot.")
    names = list(values.columns)
    fig, axes = new_grid(len(names), (3.2, 2.6), ncols=min(ncols, len(names)))
    alpha = (1 - level) / 2
    for ax, name in zip(axes, names, strict=True):
        x = values[name].to_numpy()
        ax.hist(x, bins=bins, color=BLUE, alpha=0.7)
        for q in np.quantile(x, [alpha, 1 - alpha]):
            ax.axvline(q, color=VERMILION, lw=1, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_yticks([])
    fig.suptitle(f"Bootstrap distributions ({len(values)} replicates, {level:.0%} percentile)")
    return fig
