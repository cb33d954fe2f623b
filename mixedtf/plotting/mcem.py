"""Monte Carlo EM diagnostics: the objective (:func:`plot_objective`), the parameter
iterates with their Monte Carlo bands (:func:`plot_parameters`), the HMC sampler's
acceptance and step size (non-Gaussian fits: :func:`plot_sampler`), draws of chosen levels
(:func:`plot_traces`; which levels are kept is the ``trace_levels`` fit option), and all
of them at once (:func:`plot_mcem`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mixedtf.errors import OptionError
from mixedtf.plotting._base import BLUE, GREY, INK, ORANGE, VERMILION, new_axes, new_grid

MixedLMResults = Any  # a fitted model (mixedtf.results); not imported: results plots itself


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
    ax = new_axes(ax)
    it = np.arange(1, len(trace) + 1)
    ax.plot(it, trace["logp"].to_numpy(), lw=1, color=BLUE, label="log p(y, b)")
    burnin = res.fit_info.iterations - res.fit_info.extra.get("averaged_iterations", 0)
    if 0 < burnin < len(trace):
        ax.axvline(burnin, color=GREY, ls="--", lw=1, label="end of burn-in")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("complete-data log density")
    ax.set_title("MCEM objective")
    ax.legend(loc="lower right")
    return ax


def plot_traces(res: MixedLMResults, group: str, ax: Any = None):
    """Draws (first chain) of the traced levels of grouping ``group`` over the EM
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
    ax = new_axes(ax)
    it = np.arange(1, len(trace) + 1)
    for c in cols:
        _, _, level, column = c.split(":", 3)
        ax.plot(it, trace[c].to_numpy(), lw=0.8, label=f"{level} ({column})")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel(f"b[{group}]")
    ax.set_title(f"HMC draws, {group}")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _burnin(res: MixedLMResults) -> int:
    return res.fit_info.iterations - res.fit_info.extra.get("averaged_iterations", 0)


def plot_parameters(res: MixedLMResults, ncols: int = 3):
    """Each estimated parameter's iterates over the EM iterations (fixed effects,
    covariances, residual variance), the burn-in marked, and over the averaged iterations
    the estimate with its band of +- 2 Monte Carlo standard errors (``mcse`` in the fit's
    information, where the fit reports one). Returns the Figure."""
    trace = _trace(res)
    names = [c for c in trace.columns if c.split(":")[0] in ("beta", "var", "cov") or c == "sigma2"]
    mcse = res.fit_info.extra.get("mcse", {})
    fig, axes = new_grid(len(names), (3.2, 2.4), ncols=min(ncols, len(names)))
    it = np.arange(1, len(trace) + 1)
    start = _burnin(res)
    for ax, name in zip(axes, names, strict=True):
        values = trace[name].to_numpy()
        ax.plot(it, values, lw=0.9, color=BLUE)
        if 0 < start < len(trace):
            ax.axvline(start, color=GREY, ls="--", lw=0.8)
            estimate = float(values[start:].mean())
            ax.hlines(estimate, start, it[-1], color=INK, lw=1)
            if name in mcse:
                band = 2 * float(mcse[name])
                ax.fill_between(
                    it[start:], estimate - band, estimate + band, color=ORANGE, alpha=0.35, lw=0
                )
        ax.set_title(name, fontsize=9)
    for ax in axes[-min(ncols, len(names)) :]:
        ax.set_xlabel("EM iteration")
    fig.suptitle("MCEM iterates (band: +- 2 Monte Carlo s.e.)")
    return fig


def _hmc(res: MixedLMResults) -> bool:
    """Whether the fit's E-step was HMC (a Gaussian fit's Gibbs sweep has no step size)."""
    return not np.isnan(res.fit_info.extra.get("step_size", np.nan))


def plot_sampler(res: MixedLMResults, axes: Any = None):
    """HMC acceptance rate (mean over chains) and leapfrog step size per EM iteration,
    with the fit's target acceptance where it records one. Returns the two Axes."""
    trace = _trace(res)
    if not _hmc(res):
        raise OptionError(
            "this fit's E-step is a Gibbs sweep (a Gaussian model): every draw is exact, "
            "with no acceptance rate or step size to plot; plot_objective and "
            "plot_parameters show its iterates."
        )
    if axes is None:
        _, axes = new_grid(2, (3.8, 2.8))
    it = np.arange(1, len(trace) + 1)
    axes[0].plot(it, trace["accept"].to_numpy(), lw=0.9, color=BLUE)
    target = res.fit_info.options.get("target_accept") if res.fit_info.options else None
    if target is not None:
        axes[0].axhline(float(target), color=VERMILION, ls="--", lw=0.8, label="target")
        axes[0].legend(loc="lower right", fontsize="small")
    axes[0].set_ylim(0, 1.02)
    axes[0].set_title("HMC acceptance")
    axes[1].plot(it, trace["step_size"].to_numpy(), lw=0.9, color=BLUE)
    axes[1].set_title("leapfrog step size")
    for ax in axes:
        ax.set_xlabel("EM iteration")
    return axes


def plot_mcem(res: MixedLMResults):
    """The objective, and for an HMC E-step its acceptance and step size, of an MCEM fit
    in one row. Returns the Figure (the parameter iterates: :func:`plot_parameters`)."""
    _trace(res)  # an MCEM fit, or OptionError
    hmc = _hmc(res)
    fig, axes = new_grid(3 if hmc else 1, (3.6, 2.9))
    plot_objective(res, axes[0])
    if hmc:
        plot_sampler(res, axes[1:])
    return fig
