"""Residual checks, what ``plot(m)`` and ``performance::check_model`` show first:
residuals against fitted values (:func:`plot_resid_fitted`), scale-location
(:func:`plot_scale_location`), normal QQ (:func:`plot_qq`), the three at once
(:func:`plot_diagnostics`, ``res.plot()``), held-out residuals against their normal
density (:func:`plot_residuals`), and simulation-based residuals (DHARMa's idea:
:func:`simulated_residuals`, :func:`plot_simulated_residuals`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mixedtf.errors import OptionError
from mixedtf.plotting._base import (
    BLUE,
    GREY,
    INK,
    VERMILION,
    new_axes,
    new_grid,
    normal_quantiles,
)


def residuals(res: Any, newdata: Any = None) -> pd.Series:
    """``y - predict``: on the training rows, or on ``newdata`` (which must hold the response)."""
    if newdata is None:
        return res.resid()
    from mixedtf.design.data import as_frame
    from mixedtf.design.response import build_response

    frame = as_frame(newdata)
    y, _ = build_response(res.design.formula.response, frame, res.design.family)
    pred = res.predict(frame)
    return pd.Series(y - pred.to_numpy(), index=pred.index, name="resid")


def pearson_residuals(res: Any) -> pd.Series:
    """lme4's ``residuals(m, type = "pearson")``: ``(y - mu) sqrt(w / V(mu))``, ``V`` the
    family's variance function (Gaussian 1, binomial ``mu (1 - mu) / trials``, Poisson
    ``mu``, negative binomial ``mu + mu^2 / theta``, Gamma ``mu^2``, inverse Gaussian
    ``mu^3``), ``w`` the prior weights."""
    d = res.design
    mu = res.fitted().to_numpy()
    variance = {
        "gaussian": lambda: np.ones_like(mu),
        "binomial": lambda: mu * (1 - mu) / np.maximum(d.trials, 1.0),
        "poisson": lambda: mu,
        "negative_binomial": lambda: mu + mu**2 / res.family_params["theta"],
        "gamma": lambda: mu**2,
        "inverse_gaussian": lambda: mu**3,
    }
    if d.family not in variance:
        raise OptionError(
            f"residual plots need a mean and a variance per row; not defined for {d.family!r} "
            f"models (families: {sorted(variance)})."
        )
    w = 1.0 if d.prior_weights is None else d.prior_weights
    r = (d.proportion - mu) * np.sqrt(w / variance[d.family]())
    return pd.Series(r, index=d.index, name="pearson")


def _standardised(res: Any) -> np.ndarray:
    r = pearson_residuals(res).to_numpy()
    return r / res.sigma if res.has_scale else r


def _smooth(x: np.ndarray, y: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Running mean over ``bins`` equal-count bins of ``x`` (a lowess stand-in)."""
    order = np.argsort(x, kind="stable")
    parts = np.array_split(order, min(bins, max(x.size // 5, 1)))
    return (
        np.array([x[p].mean() for p in parts if p.size]),
        np.array([y[p].mean() for p in parts if p.size]),
    )


def _points(ax: Any, x, y, n: int) -> None:
    ax.plot(x, y, "o", color=BLUE, ms=2.5 if n < 2000 else 1, alpha=0.6 if n < 2000 else 0.25)


def _against_fitted(res: Any, values: np.ndarray, ax: Any, ylabel: str, title: str):
    """``values`` per row against the fitted values, with a running mean."""
    fitted = res.fitted().to_numpy()
    ax = new_axes(ax)
    _points(ax, fitted, values, values.size)
    ax.plot(*_smooth(fitted, values), color=INK, lw=1.5)
    ax.set_xlabel("fitted")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax


def plot_resid_fitted(res: Any, ax: Any = None):
    """Pearson residuals against fitted values (``plot(m)``), with a running mean."""
    r = pearson_residuals(res).to_numpy()
    ax = _against_fitted(res, r, ax, "Pearson residual", "Residuals vs fitted")
    ax.axhline(0.0, color=VERMILION, lw=0.8, ls="--")
    return ax


def plot_scale_location(res: Any, ax: Any = None):
    """``sqrt(|standardised residual|)`` against fitted values: a flat band is constant
    variance (standardised: Pearson over sigma for families with a scale)."""
    s = np.sqrt(np.abs(_standardised(res)))
    return _against_fitted(res, s, ax, "sqrt(|standardised residual|)", "Scale-location")


def plot_qq(res: Any, ax: Any = None):
    """Sorted standardised residuals against ``qnorm(ppoints(n))`` (R's ``qqnorm``), with
    the line through the quartiles (``qqline``)."""
    r = np.sort(_standardised(res))
    q = normal_quantiles(r.size)
    ax = new_axes(ax)
    _points(ax, q, r, r.size)
    (q1, q3), (r1, r3) = np.quantile(q, [0.25, 0.75]), np.quantile(r, [0.25, 0.75])
    slope = (r3 - r1) / (q3 - q1)
    ax.axline((q1, r1), slope=slope, color=VERMILION, lw=0.8, ls="--")
    ax.set_xlabel("standard normal quantile")
    ax.set_ylabel("standardised residual")
    ax.set_title("Normal QQ")
    return ax


def plot_diagnostics(res: Any):
    """``res.plot()``: residuals vs fitted, scale-location and normal QQ side by side.
    Returns the Figure."""
    fig, axes = new_grid(3, (3.8, 3.4))
    plot_resid_fitted(res, axes[0])
    plot_scale_location(res, axes[1])
    plot_qq(res, axes[2])
    return fig


def plot_residuals(res: Any, newdata: Any = None, ax: Any = None, bins: int = 50):
    """Histogram of the residuals (held-out when ``newdata`` is given) with the normal density
    of the fitted residual SD."""
    r = residuals(res, newdata).to_numpy()
    ax = new_axes(ax)
    ax.hist(r, bins=bins, density=True, alpha=0.6, color=BLUE, label="residuals")
    grid = np.linspace(r.min(), r.max(), 200)
    dens = np.exp(-0.5 * (grid / res.sigma) ** 2) / (res.sigma * np.sqrt(2 * np.pi))
    ax.plot(grid, dens, color=INK, lw=1.5, label=f"N(0, {res.sigma:.3g}²)")
    ax.set_xlabel("held-out residual" if newdata is not None else "residual")
    ax.set_ylabel("density")
    ax.set_title("Residuals")
    ax.legend(loc="upper right")
    return ax


def simulated_residuals(res: Any, nsim: int = 250, seed: int | None = None) -> pd.Series:
    """DHARMa's scaled residuals: per row, where the observed response falls among
    ``nsim`` responses simulated from the fit (new random effects, as
    ``simulateResiduals``): ``(#{sim < y} + U #{sim = y}) / nsim``, ``U ~ Uniform(0, 1)``
    breaking ties of discrete responses. Uniform on (0, 1) when the model is right,
    whatever the family."""
    if int(nsim) < 2:
        raise OptionError(f"nsim must be at least 2; got {nsim!r}.")
    sims = res.simulate(int(nsim), seed=seed).to_numpy()
    d = res.design  # simulate() gives successes for cbind responses, else proportions
    y = (d.outcome if d.y.ndim == 2 else d.proportion)[:, None]
    below = (sims < y).sum(axis=1)
    ties = (sims == y).sum(axis=1)
    u = np.random.default_rng(seed).uniform(size=below.size)
    return pd.Series((below + u * ties) / nsim, index=res.design.index, name="scaled")


def plot_simulated_residuals(res: Any, nsim: int = 250, seed: int | None = None):
    """DHARMa's two panels: the scaled residuals' QQ plot against the uniform, and the
    residuals against the rank of the fitted values with the 0.25/0.5/0.75 lines. Returns
    the Figure."""
    r = simulated_residuals(res, nsim, seed).to_numpy()
    fig, axes = new_grid(2, (3.8, 3.4))
    n = r.size
    expected = (np.arange(1, n + 1) - 0.5) / n
    _points(axes[0], expected, np.sort(r), n)
    axes[0].axline((0, 0), slope=1, color=VERMILION, lw=0.8, ls="--")
    axes[0].set_xlabel("expected (uniform)")
    axes[0].set_ylabel("observed scaled residual")
    axes[0].set_title("QQ of simulated residuals")
    rank = pd.Series(res.fitted().to_numpy()).rank(pct=True).to_numpy()
    _points(axes[1], rank, r, n)
    for q in (0.25, 0.5, 0.75):
        axes[1].axhline(q, color=GREY, lw=0.8, ls="--")
    axes[1].set_xlabel("fitted (rank, 0-1)")
    axes[1].set_ylabel("scaled residual")
    axes[1].set_title("Simulated residuals vs fitted")
    return fig
