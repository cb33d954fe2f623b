"""Results methods: coef_table, fitted, resid, predict and anova, against lme4's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, reference
from scipy import stats

import mixedtf as mtf
from mixedtf import DesignError


@pytest.fixture(scope="module")
def slope_reml(sleepstudy):
    return mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        method="reml"
    )


def test_fitted_equals_lme4s_fixef_plus_ranef(slope_reml, sleepstudy):
    ref = reference("sleepstudy_slope_REML")
    beta = np.array([f["estimate"] for f in ref["fixed_effects"]])  # fixef(m)
    modes = pd.read_csv(
        REFERENCE / "ranef" / "sleepstudy_slope_REML.ranef.csv", dtype={"level": str}
    )
    b = modes.pivot(index="level", columns="term", values="conditional_mode")  # ranef(m)$Subject
    subj = sleepstudy["Subject"].astype(str)
    # fitted(m) = X beta + Z b
    expected = (
        beta[0]
        + beta[1] * sleepstudy["Days"]
        + b.loc[subj, "(Intercept)"].to_numpy()
        + (b.loc[subj, "Days"].to_numpy() * sleepstudy["Days"])
    )
    np.testing.assert_allclose(slope_reml.fitted(), expected, rtol=1e-5)
    np.testing.assert_allclose(slope_reml.resid(), sleepstudy["Reaction"] - expected, atol=2e-3)
    np.testing.assert_allclose(slope_reml.resid() + slope_reml.fitted(), sleepstudy["Reaction"])


def test_coef_table_is_wald(slope_reml):
    ref = reference("sleepstudy_slope_REML")
    table = slope_reml.coef_table()
    assert list(table.columns) == ["estimate", "std_error", "z", "p_value", "ci_lower", "ci_upper"]
    np.testing.assert_allclose(
        table.z, [f["statistic"] for f in ref["fixed_effects"]], rtol=1e-3
    )  # t value
    np.testing.assert_allclose(table.p_value, 2 * stats.norm.sf(np.abs(table.z)))
    np.testing.assert_allclose(table.ci_upper - table.estimate, 1.959963985 * table.std_error)
    narrow = slope_reml.coef_table(alpha=0.32)
    assert np.all(narrow.ci_upper < table.ci_upper)
    with pytest.raises(ValueError, match="alpha"):
        slope_reml.coef_table(alpha=1.5)


def test_predict_training_rows_new_levels_and_population(slope_reml, sleepstudy):
    np.testing.assert_allclose(slope_reml.predict(), slope_reml.fitted())
    np.testing.assert_allclose(slope_reml.predict(sleepstudy), slope_reml.fitted())
    beta = slope_reml.fixef()
    np.testing.assert_allclose(
        slope_reml.predict(sleepstudy, include_random=False),
        beta.iloc[0] + beta.iloc[1] * sleepstudy["Days"],
    )
    new = pd.DataFrame({"Days": [2.0, 2.0], "Subject": ["308", "999"]})
    got = slope_reml.predict(new)
    b308 = slope_reml.ranef()["Subject"].loc["308"]
    assert got.iloc[0] == pytest.approx(
        beta.iloc[0] + b308.iloc[0] + 2 * (beta.iloc[1] + b308.iloc[1])
    )
    assert got.iloc[1] == pytest.approx(
        beta.iloc[0] + 2 * beta.iloc[1]
    )  # unseen subject: population level
    with pytest.raises(DesignError, match=r"not seen in training \(rows \[1\]\)"):
        slope_reml.predict(new, new_levels="error")
    with pytest.raises(DesignError, match="missing predictors"):
        slope_reml.predict(pd.DataFrame({"Days": [np.nan], "Subject": ["308"]}))
    with pytest.raises(ValueError, match="new_levels"):
        slope_reml.predict(new, new_levels="zero")


def test_anova_likelihood_ratio(sleepstudy):
    m0 = mtf.MixedLM.from_formula("Reaction ~ Days + (1 | Subject)", sleepstudy).fit(method="ml")
    m1 = mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(method="ml")
    assert m1.loglik == pytest.approx(
        reference("sleepstudy_slope_ML")["logLik"], abs=1e-3
    )  # logLik(m1)
    table = mtf.anova(m1, m0)
    assert list(table.index) == ["m0", "m1"] and list(table.npar) == [4, 6]
    chisq = 2 * (m1.loglik - m0.loglik)
    assert table["Chisq"].iloc[1] == pytest.approx(chisq)
    assert table["Df"].iloc[1] == 2
    assert table["Pr(>Chisq)"].iloc[1] == pytest.approx(stats.chi2.sf(chisq, 2))
    assert table.AIC.tolist() == pytest.approx([m0.aic, m1.aic])


def test_anova_refuses_what_it_cannot_compare(sleepstudy):
    def fit(formula, method):
        return mtf.MixedLM.from_formula(formula, sleepstudy).fit(method=method)

    with pytest.raises(ValueError, match="refit both with method='ml'"):
        mtf.anova(
            fit("Reaction ~ 1 + (1 | Subject)", "reml"),
            fit("Reaction ~ Days + (1 | Subject)", "reml"),
        )
    with pytest.raises(ValueError, match="not nested"):
        mtf.anova(
            fit("Reaction ~ Days + (1 | Subject)", "ml"),
            fit("Reaction ~ I(Days**2) + (1 | Subject)", "ml"),
        )
    with pytest.raises(ValueError, match="same rows"):
        mtf.anova(
            fit("Reaction ~ Days + (1 | Subject)", "ml"),
            mtf.MixedLM.from_formula(
                "Reaction ~ Days + (Days | Subject)", sleepstudy.iloc[:170]
            ).fit(method="ml"),
        )
