"""Model criticism plots, one call each (matplotlib, from the ``plot`` extra).

The checks the TFP "Linear Mixed Effects Models" tutorial does by hand:

* :func:`plot_objective`: the complete-data log density over the EM iterations (MCEM);
* :func:`plot_traces`: HMC draws of chosen levels of a term over the iterations (MCEM;
  which levels are kept is the ``trace_levels`` fit option);
* :func:`plot_residuals`: residuals (on held-out data when given) against the normal
  density with the fitted residual SD;
* :func:`plot_ranef`: a histogram of each term's conditional modes.

Each returns the matplotlib ``Axes`` it drew on (an array of them for ``plot_ranef``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mixedtf.errors import OptionError
from mixedtf.results.results import MixedLMResults


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib: pip install 'mixedtf[plot]' (or pip install matplotlib)."
        ) from err
    return plt


def _axes(ax):
    return ax if ax is not None else _pyplot().subplots()[1]


def _trace(res: MixedLMResults) -> pd.DataFrame:
    trace = res.fit_info.extra.get("trace")
    if trace is None:
        raise OptionError(
            f"this is a {res.method.upper()} fit; only Monte Carlo EM fits (method='mcem') keep an "
            "iteration trace."
        )
    return trace


def plot_objective(res: MixedLMResults, ax: Any = None):
    """Mean complete-data log density ``log p(y, b | params)`` of the chains per EM iteration,
    with the end of the burn-in marked (iterates after it are averaged)."""
    trace = _trace(res)
    ax = _axes(ax)
    it = np.arange(1, len(trace) + 1)
    ax.plot(it, trace["logp"].to_numpy(), lw=1, label="log p(y, b)")
    burnin = res.fit_info.iterations - res.fit_info.extra.get("averaged_iterations", 0)
    if 0 < burnin < len(trace):
        ax.axvline(burnin, color="grey", ls="--", lw=1, label="end of burn-in")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("complete-data log density")
    ax.set_title("MCEM objective")
    ax.legend(loc="lower right")
    return ax


def plot_traces(res: MixedLMResults, group: str, ax: Any = None):
    """HMC draws (first chain) of the traced levels of grouping ``group`` over the EM
    iterations, one line per level and column."""
    trace = _trace(res)
    prefix = f"b:{group}:"
    cols = [c for c in trace.columns if c.startswith(prefix)]
    if not cols:
        groups = sorted({c.split(":")[1] for c in trace.columns if c.startswith("b:")})
        raise OptionError(
            f"no traced levels of {group!r}; traced groupings: {groups}. Fit with "
            f"trace_levels={{{group!r}: [level, ...]}} to keep some."
        )
    ax = _axes(ax)
    it = np.arange(1, len(trace) + 1)
    for c in cols:
        _, _, level, column = c.split(":", 3)
        ax.plot(it, trace[c].to_numpy(), lw=0.8, label=f"{level} ({column})")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel(f"b[{group}]")
    ax.set_title(f"HMC draws, {group}")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def residuals(res: MixedLMResults, newdata: Any = None) -> pd.Series:
    """``y - predict``: on the training rows, or on ``newdata`` (which must hold the response)."""
    if newdata is None:
        return res.resid()
    from mixedtf.design.data import as_frame
    from mixedtf.design.response import build_response

    frame = as_frame(newdata)
    y, _ = build_response(res.design.formula.response, frame, res.design.family)
    pred = res.predict(frame)
    return pd.Series(y - pred.to_numpy(), index=pred.index, name="resid")


def plot_residuals(res: MixedLMResults, newdata: Any = None, ax: Any = None, bins: int = 50):
    """Histogram of the residuals (held-out when ``newdata`` is given) with the normal density
    of the fitted residual SD."""
    r = residuals(res, newdata).to_numpy()
    ax = _axes(ax)
    ax.hist(r, bins=bins, density=True, alpha=0.6, label="residuals")
    grid = np.linspace(r.min(), r.max(), 200)
    dens = np.exp(-0.5 * (grid / res.sigma) ** 2) / (res.sigma * np.sqrt(2 * np.pi))
    ax.plot(grid, dens, color="black", lw=1.5, label=f"N(0, {res.sigma:.3g}²)")
    ax.set_xlabel("held-out residual" if newdata is not None else "residual")
    ax.set_ylabel("density")
    ax.set_title("Residuals")
    ax.legend(loc="upper right")
    return ax


def plot_ranef(res: MixedLMResults, axes: Any = None, bins: int = 30):
    """One histogram per random-effects term (grouping x column) of the conditional modes."""
    panels = [
        (g.name, c, mode[:, j])
        for g, mode in zip(res.design.groupings, res._modes, strict=True)
        for j, c in enumerate(g.colnames)
    ]
    if axes is None:
        _, axes = _pyplot().subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    axes = np.asarray(axes).ravel()
    if axes.size < len(panels):
        raise OptionError(f"plot_ranef needs {len(panels)} axes; got {axes.size}.")
    for ax, (name, col, values) in zip(axes, panels, strict=False):
        ax.hist(values, bins=bins, alpha=0.7)
        ax.set_title(f"{name}: {col} ({values.size} levels)")
        ax.set_xlabel("conditional mode")
    axes[0].set_ylabel("count")
    return axes[: len(panels)]
