"""Plots render with the Agg backend and draw what they say."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import mixedtf as mtf
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


def _no_overlap(labels) -> bool:
    boxes = sorted((b.y0, b.y1) for b in (t.get_window_extent() for t in labels if t.get_text()))
    return all(hi <= lo2 + 0.5 for (_, hi), (lo2, _) in itertools.pairwise(boxes))


def test_caterpillar_draws_ranef_and_conditional_sds(sleep_reml):
    axes = plotting.plot_caterpillar(sleep_reml)
    table = sleep_reml.ranef(condvar=True)
    z = norm.ppf(0.975)
    first = table[table.term == "(Intercept)"]
    order = np.argsort(first.condval.to_numpy(), kind="stable")
    assert [ax.get_title() for ax in axes] == ["(Intercept)", "Days"]
    for ax, term in zip(axes, ["(Intercept)", "Days"], strict=True):
        rows = table[table.term == term].iloc[order]
        np.testing.assert_allclose(ax.lines[0].get_xdata(), rows.condval)  # the modes
        segments = np.array(ax.collections[0].get_segments())  # the intervals
        np.testing.assert_allclose(segments[:, 0, 0], rows.condval - z * rows.condsd)
        np.testing.assert_allclose(segments[:, 1, 0], rows.condval + z * rows.condsd)
    # the 18 subjects are named, sorted by their intercept, without collisions
    labels = axes[0].get_yticklabels()
    assert [t.get_text() for t in labels] == list(first.grp.to_numpy()[order])
    assert _no_overlap(labels)


@pytest.fixture(scope="module")
def insteval_small():
    # all 2,972 students and 14 departments (the instructors left out: a cheap exact fit)
    data = mtf.datasets.load("InstEval")
    return mtf.lmer("y ~ service + (1 | s) + (1 | dept)", data, REML=False)


@pytest.mark.parametrize("group", ["dept", "s"])
def test_caterpillar_labels_never_collide(insteval_small, group):
    # 14 departments: every name fits; 2,000+ students: thinned or none, never overlapping
    axes = plotting.plot_caterpillar(insteval_small, group)
    n = insteval_small.design.groupings[
        [g.name for g in insteval_small.design.groupings].index(group)
    ].n_levels
    labels = [t for t in axes[0].get_yticklabels() if t.get_text()]
    assert _no_overlap(labels)
    if group == "dept":
        assert len(labels) == n == 14
    else:
        assert n == 2972 and len(labels) < n
        assert len(axes[0].lines[0].get_xdata()) == 1000  # thinned evenly, extremes kept
        modes = insteval_small.ranef()["s"]["(Intercept)"]
        shown = axes[0].lines[0].get_xdata()
        assert shown.min() == modes.min() and shown.max() == modes.max()


def test_qqcaterpillar_quantiles(sleep_reml):
    ax = plotting.plot_qqcaterpillar(sleep_reml)[1]
    modes = np.sort(sleep_reml.ranef()["Subject"]["Days"].to_numpy())
    np.testing.assert_allclose(ax.lines[0].get_xdata(), modes)
    # R: qnorm(ppoints(18))
    np.testing.assert_allclose(
        ax.lines[0].get_ydata(), norm.ppf((np.arange(1, 19) - 0.5) / 18), rtol=1e-12
    )


def test_shrinkage_points_are_the_per_subject_least_squares_fits(sleep_reml, sleepstudy):
    # lmList(Reaction ~ Days | Subject): one regression per subject, against coef(m)
    ols = {
        subject: np.polyfit(rows.Days, rows.Reaction, 1)[::-1]
        for subject, rows in sleepstudy.groupby("Subject", observed=True)
    }
    table = plotting.shrinkage(sleep_reml)
    want = np.array([ols[s] for s in table.index])
    np.testing.assert_allclose(table[["ols:(Intercept)", "ols:Days"]], want, rtol=1e-10)
    coef = sleep_reml.coef()["Subject"]
    np.testing.assert_allclose(table["coef:Days"], coef["Days"])
    ax = plotting.plot_shrinkage(sleep_reml)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), want, rtol=1e-10)
    np.testing.assert_allclose(ax.collections[1].get_offsets(), coef[["(Intercept)", "Days"]])
    glmm = mtf.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        mtf.datasets.load("cbpp"),
        family="binomial",
    )
    with pytest.raises(mtf.OptionError, match="Gaussian models only"):
        plotting.plot_shrinkage(glmm)


def test_residual_panels(sleep_reml):
    fig = sleep_reml.plot()
    resid_ax, scale_ax, qq_ax = fig.axes
    np.testing.assert_allclose(resid_ax.lines[0].get_xdata(), sleep_reml.fitted())
    np.testing.assert_allclose(resid_ax.lines[0].get_ydata(), sleep_reml.resid())
    standardised = sleep_reml.resid().to_numpy() / sleep_reml.sigma
    np.testing.assert_allclose(scale_ax.lines[0].get_ydata(), np.sqrt(np.abs(standardised)))
    # R: qqnorm(resid(m) / sigma(m)): sorted residuals at qnorm(ppoints(180))
    n = len(standardised)
    np.testing.assert_allclose(
        qq_ax.lines[0].get_xdata(), norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    )
    np.testing.assert_allclose(qq_ax.lines[0].get_ydata(), np.sort(standardised))


def test_pearson_residuals_of_a_binomial_fit():
    # residuals(glmer(...), type = "pearson"): (y - mu) / sqrt(mu (1 - mu) / size)
    cbpp = mtf.datasets.load("cbpp")
    g = mtf.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"
    )
    mu = g.fitted().to_numpy()
    p = (cbpp.incidence / cbpp["size"]).to_numpy()
    want = (p - mu) / np.sqrt(mu * (1 - mu) / cbpp["size"].to_numpy())
    np.testing.assert_allclose(plotting.pearson_residuals(g), want, rtol=1e-10)
    fig = plotting.plot_simulated_residuals(g, nsim=100, seed=1)
    assert len(fig.axes) == 2


def test_simulated_residuals_are_the_simulation_ranks(sleep_reml):
    r = plotting.simulated_residuals(sleep_reml, nsim=200, seed=4)
    sims = sleep_reml.simulate(200, seed=4).to_numpy()
    y = sleep_reml.design.y[:, None]
    np.testing.assert_allclose(r, (sims < y).mean(axis=1))  # continuous: no ties
    # the model is right for data drawn from it: the scaled residuals are uniform
    fake = sleep_reml.simulate(1, seed=9).iloc[:, 0].to_numpy()
    refit = mtf.refit(sleep_reml, fake)
    u = plotting.simulated_residuals(refit, nsim=200, seed=5).to_numpy()
    from scipy.stats import kstest

    assert kstest(u, "uniform").pvalue > 1e-3
    with pytest.raises(mtf.OptionError, match="nsim must be at least 2"):
        plotting.simulated_residuals(sleep_reml, nsim=1)


def test_profile_zeta_plot(sleepstudy):
    res = mtf.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, REML=False)
    prof = mtf.profile(res, level=0.95)
    assert list(dict.fromkeys(prof.parameter)) == [
        "sd_(Intercept)|Subject",
        "sigma",
        "(Intercept)",
        "Days",
    ]
    ci = prof.attrs["intervals"]
    for name, rows in prof.groupby("parameter", sort=False):
        # zeta rises through 0 at the estimate and reaches +-1.96 at the bounds
        assert np.all(np.diff(rows.zeta.to_numpy()) > -1e-6)
        low, high = ci.loc[name]
        assert np.interp(low, rows.value, rows.zeta) == pytest.approx(-norm.ppf(0.975), abs=0.02)
        assert np.interp(high, rows.value, rows.zeta) == pytest.approx(norm.ppf(0.975), abs=0.02)
    fig = plotting.plot_profile(prof)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == list(ci.index)
    with pytest.raises(mtf.OptionError, match=r"mtf\.profile"):
        plotting.plot_profile(pd.DataFrame({"x": [1]}))


def test_bootstrap_distributions(sleep_reml):
    draws = mtf.bootstrap(sleep_reml, nsim=200, seed=2)
    assert list(draws.columns) == list(sleep_reml.confint(method="wald").index)
    table = mtf.confint(sleep_reml, method="boot", nsim=200, seed=2)
    np.testing.assert_allclose(table.iloc[:, 0], draws.quantile(0.025), rtol=1e-12)
    fig = plotting.plot_bootstrap(draws)
    ax = fig.axes[5]
    assert ax.get_title() == "Days"
    assert sum(p.get_height() for p in ax.patches) == 200
    np.testing.assert_allclose(
        [line.get_xdata()[0] for line in ax.lines], draws["Days"].quantile([0.025, 0.975])
    )


def test_mcem_diagnostics(sleep_mcem):
    fig = plotting.plot_parameters(sleep_mcem)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[:2] == ["beta:(Intercept)", "beta:Days"] and "sigma2" in titles
    ax = fig.axes[titles.index("beta:Days")]
    trace = sleep_mcem.fit_info.extra["trace"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), trace["beta:Days"])
    band = ax.collections[-1].get_paths()[0].vertices[:, 1]  # the fill, after the estimate line
    width = band.max() - band.min()
    assert width == pytest.approx(4 * sleep_mcem.fit_info.extra["mcse"]["beta:Days"], rel=1e-6)
    # a Gaussian fit's E-step is a Gibbs sweep: the objective only, no sampler panels
    fig = plotting.plot_mcem(sleep_mcem)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["MCEM objective"]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), trace["logp"])
    with pytest.raises(mtf.OptionError, match="Gibbs sweep"):
        plotting.plot_sampler(sleep_mcem)


def test_bad_plot_arguments_are_named(sleep_reml, sleepstudy):
    with pytest.raises(
        mtf.OptionError, match=r"group must be one of the grouping factors \['Subject'\]"
    ):
        plotting.plot_caterpillar(sleep_reml, "Days")
    with pytest.raises(mtf.OptionError, match="level must be in"):
        plotting.plot_qqcaterpillar(sleep_reml, level=95)
    with pytest.raises(mtf.OptionError, match="terms must be columns of the grouping"):
        plotting.plot_shrinkage(sleep_reml, terms=("(Intercept)", "Hours"))
    draws = mtf.bootstrap(sleep_reml, nsim=20, seed=1)
    with pytest.raises(mtf.OptionError, match="level must be in"):
        plotting.plot_bootstrap(draws, level=1.5)
    with pytest.raises(mtf.OptionError, match="only Monte Carlo EM fits"):
        plotting.plot_parameters(sleep_reml)
