"""Plots render with the Agg backend and draw what they say."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from mixedtf import plotting


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_objective_trace(sleep_mcem):
    ax = plotting.plot_objective(sleep_mcem)
    line = ax.get_lines()[0]
    assert len(line.get_xdata()) == sleep_mcem.fit_info.iterations
    np.testing.assert_array_equal(line.get_ydata(), sleep_mcem.fit_info.extra["trace"]["logp"])
    burnin = ax.get_lines()[1]  # the burn-in marker
    averaged = sleep_mcem.fit_info.extra["averaged_iterations"]
    assert burnin.get_xdata()[0] == sleep_mcem.fit_info.iterations - averaged


def test_traces_of_the_default_levels(sleep_mcem):
    ax = plotting.plot_traces(sleep_mcem, "Subject")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    # the first three levels of Subject, both columns of (Days|Subject)
    assert labels == [
        f"{lv} ({c})" for lv in ("308", "309", "310") for c in ("(Intercept)", "Days")
    ]
    # draws of one chain wander around the conditional mode: a level's mean is near it
    averaged = sleep_mcem.fit_info.extra["averaged_iterations"]
    draws = ax.get_lines()[0].get_ydata()[-averaged:]  # after the burn-in
    mode = sleep_mcem.ranef()["Subject"].loc["308", "(Intercept)"]
    assert abs(draws.mean() - mode) < 0.5 * sleep_mcem.varcorr().sdcor[0]
    with pytest.raises(ValueError, match="traced groupings"):
        plotting.plot_traces(sleep_mcem, "Days")


def test_exact_fits_have_no_trace(sleep_reml):
    with pytest.raises(ValueError, match="only Monte Carlo EM fits"):
        plotting.plot_objective(sleep_reml)


def test_residuals_on_held_out_rows(sleep_reml, sleepstudy):
    held_out = sleepstudy.iloc[::10]
    r = plotting.residuals(sleep_reml, held_out)
    expected = held_out["Reaction"].to_numpy() - sleep_reml.predict(held_out).to_numpy()
    np.testing.assert_allclose(r, expected)
    ax = plotting.plot_residuals(sleep_reml, held_out, bins=5)
    assert len(ax.patches) == 5 and ax.get_xlabel() == "held-out residual"
    heights = sum(p.get_height() * p.get_width() for p in ax.patches)
    assert heights == pytest.approx(1.0)  # a density histogram
    assert len(ax.get_lines()) == 1  # the normal density


def test_ranef_histograms_one_panel_per_term(sleep_reml):
    axes = plotting.plot_ranef(sleep_reml, bins=6)
    assert [ax.get_title() for ax in axes] == [
        "Subject: (Intercept) (18 levels)",
        "Subject: Days (18 levels)",
    ]
    assert all(sum(p.get_height() for p in ax.patches) == 18 for ax in axes)
