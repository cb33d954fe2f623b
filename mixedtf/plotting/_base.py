"""What every plot shares: matplotlib on demand, one figure style legible in print and in
the docs' light and dark themes (an opaque white face, dark ink, a colour-blind-safe
palette), and tick labels that do not collide."""

from __future__ import annotations

from typing import Any

import numpy as np

# Okabe-Ito: distinguishable in colour-blind vision and in grey print
INK, BLUE, ORANGE, GREEN, VERMILION, GREY = (
    "#222222",
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#999999",
)
STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "font.size": 9,
    "axes.titlesize": 10,
}


def pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib: pip install 'mixedtf[plot]' (or pip install matplotlib)."
        ) from err
    return plt


def new_axes(ax: Any = None, figsize: tuple[float, float] = (5.0, 3.6)):
    """``ax``, or the axes of a new styled figure."""
    if ax is not None:
        return ax
    plt = pyplot()
    with plt.rc_context(STYLE):
        return plt.subplots(figsize=figsize, layout="constrained")[1]


def new_grid(n: int, figsize_per: tuple[float, float] = (4.0, 3.4), ncols: int | None = None):
    """A styled figure with ``n`` panels in a row (or ``ncols`` columns); its flat axes."""
    plt = pyplot()
    ncols = n if ncols is None else ncols
    nrows = int(np.ceil(n / ncols))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(figsize_per[0] * ncols, figsize_per[1] * nrows),
            squeeze=False,
            layout="constrained",
        )
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def label_levels(ax: Any, positions: np.ndarray, labels: list[str]) -> None:
    """Level names as y tick labels at ``positions``, thinned to every k-th so that they
    do not overlap at the axes' height (none when even one per 8 points would collide)."""
    ax.figure.canvas.draw()  # the axes' size in display units
    height_pt = ax.get_window_extent().height * 72.0 / ax.figure.dpi
    fontsize = 7.0
    room = max(int(height_pt / (1.5 * fontsize)), 1)
    if len(labels) > 8 * room:
        ax.set_yticks([])
        return
    step = int(np.ceil(len(labels) / room))
    ax.set_yticks(positions[::step], labels[::step])
    ax.tick_params(axis="y", labelsize=fontsize)


def normal_quantiles(n: int) -> np.ndarray:
    """R's ``qnorm(ppoints(n))``: ``(i - a) / (n + 1 - 2a)``, ``a = 3/8`` for ``n <= 10``,
    else ``1/2``."""
    from scipy.stats import norm

    a = 3.0 / 8.0 if n <= 10 else 0.5
    return norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))
