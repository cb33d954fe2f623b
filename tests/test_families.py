"""The family registry: public, TF-free, one validated family/link pair per model; a pair
is fitted end to end or refused with a FamilyError."""

from __future__ import annotations

import numpy as np
import pytest
from references import reference

import mixedtf as mtf
from mixedtf.errors import FamilyError

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def test_registry_names_links_and_defaults():
    fam = mtf.families
    assert sorted(fam.FAMILIES) == [
        "binomial",
        "gamma",
        "gaussian",
        "inverse_gaussian",
        "negative_binomial",
        "ordinal",
        "poisson",
    ]
    assert fam.get("inverse.gaussian").link == "1/mu^2" and fam.get("gamma").link == "inverse"
    assert fam.get("negative.binomial") == fam.NegativeBinomial()  # R's spelling
    assert fam.Binomial().link == "logit" and fam.Binomial(link="probit").link == "probit"
    assert fam.get("poisson").link == "log" and fam.get("Gaussian").has_scale
    assert fam.get("ordinal").has_cutpoints and not fam.get("binomial").has_scale
    assert fam.get(fam.Binomial(link="probit")) == fam.Binomial(link="probit")


@pytest.mark.parametrize(
    ("family", "link", "says"),
    [
        ("binomial", "identity", "'binomial' is fitted with link 'logit', 'probit', 'cloglog'"),
        ("poisson", "logit", "'poisson' is fitted with link 'log', 'sqrt' or 'identity'; got"),
        ("gaussian", "log", "'gaussian' is fitted with link 'identity'"),
        ("tweedie", None, "family must be one of 'gaussian', 'binomial', 'poisson'"),
    ],
)
def test_unfitted_family_link_pairs_are_refused(family, link, says):
    # glmer(..., "binomial", link="log") once "converged" on cbpp (logLik -98.36) mixing one
    # link's likelihood with another's derivatives; Poisson "logit" died in a LinAlgError;
    # now R's links are fitted (test_links.py) and the rest refused
    cbpp = mtf.datasets.load("cbpp")
    with pytest.raises(FamilyError, match=says):
        mtf.glmer(CBPP, cbpp, family=family, link=link)
    with pytest.raises(FamilyError, match=says):
        mtf.MixedLM.from_formula(CBPP, cbpp, family=family, link=link)


def test_link_given_twice_must_agree():
    with pytest.raises(FamilyError, match="contradicts the family object's link 'probit'"):
        mtf.families.get(mtf.families.Binomial(link="probit"), "logit")


def test_probit_is_fitted_end_to_end_as_lme4():
    # glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
    #       family = binomial(link = "probit"))
    ref = reference("cbpp_probit_laplace")
    cbpp = mtf.datasets.load("cbpp")
    res = mtf.glmer(CBPP, cbpp, family=mtf.families.Binomial(link="probit"))
    np.testing.assert_allclose(res.fixef(), list(ref["fixed_effects"].values()), rtol=2e-4)
    # vcov(fit, use.hessian = FALSE): mixedtf's GLMM vcov is lme4's RX Schur complement
    np.testing.assert_allclose(res.bse(), list(ref["std_error_rx"].values()), rtol=2e-3)
    assert res.theta.iloc[0] == pytest.approx(ref["theta"], rel=1e-3)
    assert res.loglik == pytest.approx(ref["logLik"], abs=1e-4)  # logLik(fit)
    np.testing.assert_allclose(res.fitted(), ref["fitted"], rtol=1e-3)  # fitted(fit)
    np.testing.assert_allclose(res.predict(cbpp), ref["predict_link"], rtol=1e-3, atol=1e-4)
    population = res.predict(cbpp, include_random=False, type="response")
    np.testing.assert_allclose(population, ref["predict_population"], rtol=1e-3)
    assert res.link == "probit" and res.fit_info.link == "probit"
    assert "binomial / probit" in str(res.summary())
    # by name and link, the same model
    again = mtf.glmer(CBPP, cbpp, family="binomial", link="probit")
    np.testing.assert_allclose(again.fixef(), res.fixef())
