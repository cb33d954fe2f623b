"""Options: one spelling each, validated before any work, never dropped. Every call here
either fits or raises an OptionError that names the option and lists what the method takes."""

from __future__ import annotations

import numpy as np
import pytest
from references import reference

import mixedtf as mtf
from mixedtf.fit.options import (
    ExactOptions,
    LaplaceOptions,
    MCEMOptions,
    make_options,
    options_of,
)

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return mtf.datasets.load("cbpp")


@pytest.mark.parametrize(
    ("method", "option", "says"),
    [
        ("reml", {"chains": 8}, "chains= is an option of method='mcem', not of 'reml'"),
        ("ml", {"n_agq": 5}, "n_agq= is an option of method='laplace', not of 'ml'"),
        ("mcem", {"max_dense_bytes": 10}, "max_dense_bytes= is an option of method='ml' / 'reml'"),
        (
            "reml",
            {"max_evaluation": 10},
            "unknown option max_evaluation= (did you mean max_evaluations=?)",
        ),
        ("mcem", {"link": "probit"}, "link= is not an estimator option"),
        ("reml", {"REML": False}, "REML= is lmer()'s door"),
    ],
)
def test_unknown_or_misplaced_options_are_named_with_the_methods_options(
    sleepstudy, method, option, says
):
    model = mtf.MixedLM.from_formula(SLEEP, sleepstudy)
    with pytest.raises(mtf.OptionError) as info:
        model.fit(method=method, **option)
    message = str(info.value)
    assert says in message
    assert f"method={method!r} takes:" in message
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_laplace_options_and_mcem_options_are_listed(cbpp):
    model = mtf.MixedLM.from_formula(CBPP, cbpp, family="binomial")
    with pytest.raises(mtf.OptionError, match="method='laplace' takes: n_agq, max_evaluations"):
        model.fit(method="laplace", chains=4)
    with pytest.raises(
        mtf.OptionError, match=r"nAGQ= is an option of method='laplace'.*takes: chains"
    ):
        model.fit(method="mcem", nAGQ=5)


@pytest.mark.parametrize(
    ("method", "option", "says"),
    [
        ("reml", {"max_evaluations": 0}, "max_evaluations must be a positive integer"),
        ("reml", {"tolerance": -1.0}, "tolerance must be a positive number"),
        ("reml", {"profile_tail": "yes"}, "profile_tail must be True or False"),
        ("reml", {"start": [1.0, 0.0]}, "start must have 3 theta values"),
        ("mcem", {"chains": 1}, "chains must be at least 2"),
        ("mcem", {"dtype": "float16"}, "dtype must be"),
        ("mcem", {"device": "TPU"}, "device must be 'CPU' or 'GPU'"),
        ("mcem", {"scale": -1.0}, "scale"),
        ("mcem", {"warmup": 50, "burnin": 10}, "burnin"),
        ("mcem", {"target_accept": 1.5}, "target_accept"),
        ("mcem", {"rtol": 0}, "rtol must be a positive number"),
        ("mcem", {"trace_levels": -1}, "trace_levels must be >= 0"),
    ],
)
def test_bad_values_are_refused_before_any_work(sleepstudy, method, option, says):
    model = mtf.MixedLM.from_formula(SLEEP, sleepstudy)
    with pytest.raises(mtf.OptionError, match=says):
        model.fit(method=method, **option)


def test_laplace_values_are_validated(cbpp):
    model = mtf.MixedLM.from_formula(CBPP, cbpp, family="binomial")
    with pytest.raises(mtf.OptionError, match="n_agq must be a positive integer"):
        model.fit(method="laplace", n_agq=0)
    herd_and_period = "cbind(incidence, size - incidence) ~ 1 + (1 | herd) + (1 | period)"
    two_terms = mtf.MixedLM.from_formula(herd_and_period, cbpp, family="binomial")
    with pytest.raises(mtf.OptionError, match="single scalar random term"):
        two_terms.fit(method="laplace", n_agq=5)


def test_seed_and_progress_are_accepted_by_every_method(sleepstudy, cbpp):
    # lmer(Reaction ~ Days + (Days | Subject), sleepstudy): the exact fit ignores them
    res = mtf.MixedLM.from_formula(SLEEP, sleepstudy).fit(method="reml", seed=1, progress=True)
    assert res.loglik == pytest.approx(reference("sleepstudy_slope_REML")["logLik"], abs=1e-4)
    lap = mtf.glmer(CBPP, cbpp, family="binomial", seed=3, progress=False)
    assert lap.loglik == pytest.approx(reference("cbpp_binomial_laplace")["logLik"], abs=1e-3)


def test_lmer_takes_reml_or_a_method(sleepstudy):
    ml = mtf.lmer(SLEEP, sleepstudy, REML=False)
    assert ml.method == "ml"
    assert ml.loglik == pytest.approx(reference("sleepstudy_slope_ML")["logLik"], abs=1e-4)
    assert mtf.lmer(SLEEP, sleepstudy, method="ml").loglik == pytest.approx(ml.loglik)
    with pytest.raises(mtf.OptionError, match="REML=False contradicts method='reml'"):
        mtf.lmer(SLEEP, sleepstudy, REML=False, method="reml")
    with pytest.raises(mtf.OptionError, match="REML=True contradicts method='mcem'"):
        mtf.lmer(SLEEP, sleepstudy, REML=True, method="mcem")


def test_lmer_with_mcem_fits(sleepstudy):
    # lmer(..., method="mcem") once raised "got multiple values for keyword argument 'method'"
    res = mtf.lmer(
        "Reaction ~ Days + (1 | Subject)", sleepstudy, method="mcem", seed=2, progress=False
    )
    exact = mtf.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, REML=False)
    assert res.method == "mcem"
    np.testing.assert_allclose(res.varcorr().sdcor, exact.varcorr().sdcor, rtol=0.05)


def test_glmer_nagq_is_lme4s_name_for_n_agq(cbpp):
    # glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial, nAGQ = 25)
    ref = reference("cbpp_binomial_agq25")
    model = mtf.MixedLM.from_formula(CBPP, cbpp, family="binomial")
    res = model.fit(method="laplace", nAGQ=25)
    assert res.fit_info.n_agq == 25 and res.method == "agq"
    np.testing.assert_allclose(
        res.fixef(), [f["estimate"] for f in ref["fixed_effects"]], rtol=1e-4
    )
    with pytest.raises(mtf.OptionError, match="nAGQ= and n_agq= are one option"):
        model.fit(method="laplace", nAGQ=25, n_agq=25)
    with pytest.raises(mtf.OptionError, match="nAGQ= is an option of method='laplace'"):
        mtf.glmer(CBPP, cbpp, family="binomial", nAGQ=5, method="mcem")


def test_methods_that_do_not_fit_the_family_are_refused(sleepstudy, cbpp):
    with pytest.raises(mtf.OptionError, match="exact Gaussian likelihood; family is 'binomial'"):
        mtf.MixedLM.from_formula(CBPP, cbpp, family="binomial").fit(method="reml")
    with pytest.raises(mtf.OptionError, match="use method='ml' or 'reml'"):
        mtf.MixedLM.from_formula(SLEEP, sleepstudy).fit(method="laplace")
    with pytest.raises(mtf.OptionError, match="method must be one of"):
        mtf.MixedLM.from_formula(SLEEP, sleepstudy).fit(method="bogus")


def test_option_objects_are_frozen_and_resolved_per_family():
    opts = make_options("mcem", "gaussian", {"burnin": 30})
    assert isinstance(opts, MCEMOptions) and opts.burnin == 30 and opts.warmup == 0
    assert (
        opts.joint_moves is True and opts.check is None and opts.scale is None
    )  # check None: where cheap
    glmm = make_options("mcem", "poisson", None)
    assert glmm.n_leapfrog == 5 and glmm.joint_moves is True  # ridge moves: every family
    assert glmm.target_accept == 0.75 and glmm.warmup == 50 and opts.n_leapfrog is None
    with pytest.raises(AttributeError):
        opts.burnin = 10  # type: ignore[misc]
    assert make_options("ml", "gaussian", ExactOptions(max_evaluations=5)).max_evaluations == 5
    assert make_options("laplace", "poisson", {"nAGQ": 3}) == LaplaceOptions(n_agq=3)


@pytest.mark.parametrize("option", [{"n_leapfrog": 3}, {"target_accept": 0.8}, {"warmup": 10}])
def test_gaussian_mcem_refuses_hmc_settings(sleepstudy, option):
    # a Gaussian model's E-step is a Gibbs sweep: an HMC setting would be silently ignored
    (name,) = option
    model = mtf.MixedLM.from_formula(SLEEP, sleepstudy)
    with pytest.raises(mtf.OptionError, match=rf"{name}= sets the HMC E-step.*takes: chains,"):
        model.fit(method="mcem", **option)
    assert "n_leapfrog" not in options_of("mcem", "gaussian")
    assert {"n_leapfrog", "warmup"} <= set(options_of("mcem", "poisson"))


def test_restart_edge_must_be_a_flag():
    with pytest.raises(mtf.OptionError, match="restart_edge"):
        ExactOptions(restart_edge="yes")
    assert ExactOptions().restart_edge is True


def test_joint_moves_is_a_flag_for_every_family():
    # accepted for non-Gaussian models since the ridge move; a non-flag is refused, not
    # read as true, and False turns the move off
    for family in ("gaussian", "poisson", "ordinal"):
        with pytest.raises(mtf.OptionError, match="joint_moves must be True or False"):
            make_options("mcem", family, {"joint_moves": "no"})
        assert make_options("mcem", family, {"joint_moves": False}).joint_moves is False
