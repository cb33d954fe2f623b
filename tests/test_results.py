"""Results methods: coef_table, fitted, resid, predict and anova, against lme4's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from references import REFERENCE, reference

import mixedtf as mtf
from mixedtf import DesignError


@pytest.fixture(scope="module")
def slope_reml(sleepstudy):
    return mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        method="reml"
    )


def lme4_fitted(sleepstudy) -> np.ndarray:
    """lme4's ``fitted(m)`` of ``lmer(Reaction ~ Days + (Days | Subject), sleepstudy)``,
    from its ``fixef(m)`` and ``ranef(m)`` in the reference files."""
    ref = reference("sleepstudy_slope_REML")
    beta = np.array([f["estimate"] for f in ref["fixed_effects"]])  # fixef(m)
    modes = pd.read_csv(
        REFERENCE / "ranef" / "sleepstudy_slope_REML.ranef.csv", dtype={"level": str}
    )
    b = modes.pivot(index="level", columns="term", values="conditional_mode")  # ranef(m)$Subject
    subj = sleepstudy["Subject"].astype(str)
    # fitted(m) = X beta + Z b
    return (
        beta[0]
        + beta[1] * sleepstudy["Days"].to_numpy()
        + b.loc[subj, "(Intercept)"].to_numpy()
        + (b.loc[subj, "Days"].to_numpy() * sleepstudy["Days"].to_numpy())
    )


def test_fitted_and_resid_equal_lme4s(slope_reml, sleepstudy):
    expected = lme4_fitted(sleepstudy)
    np.testing.assert_allclose(slope_reml.fitted(), expected, rtol=1e-5)
    np.testing.assert_allclose(slope_reml.resid(), sleepstudy["Reaction"] - expected, atol=2e-3)


def test_coef_table_is_wald(slope_reml):
    ref = reference("sleepstudy_slope_REML")
    table = slope_reml.coef_table()
    assert list(table.columns) == ["estimate", "std_error", "z", "p_value", "ci_lower", "ci_upper"]
    np.testing.assert_allclose(
        table.z, [f["statistic"] for f in ref["fixed_effects"]], rtol=1e-3
    )  # t value
    # 2 * pnorm(-abs(coef(summary(m))[, "t value"])) in R
    p_r = reference("sleepstudy_anova_ML")["reml_wald_p_value"]
    assert table.p_value.iloc[1] == pytest.approx(p_r["Days"], rel=1e-3)
    np.testing.assert_allclose(table.ci_upper - table.estimate, 1.959963985 * table.std_error)
    narrow = slope_reml.coef_table(alpha=0.32)
    assert np.all(narrow.ci_upper < table.ci_upper)
    with pytest.raises(ValueError, match="alpha"):
        slope_reml.coef_table(alpha=1.5)


def test_predict_training_rows_new_levels_and_population(slope_reml, sleepstudy):
    # predict(m, newdata = sleepstudy): the new-data path re-encodes the rows
    np.testing.assert_allclose(slope_reml.predict(sleepstudy), lme4_fitted(sleepstudy), rtol=1e-5)
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


def test_anova_likelihood_ratio_equals_lme4s(sleepstudy):
    m0 = mtf.MixedLM.from_formula("Reaction ~ Days + (1 | Subject)", sleepstudy).fit(method="ml")
    m1 = mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(method="ml")
    ref = reference("sleepstudy_anova_ML")  # anova(m0, m1), both REML = FALSE
    table = mtf.anova(m1, m0)
    assert list(table.index) == ["m0", "m1"] and list(table.npar) == ref["npar"]
    for column in ("AIC", "BIC", "logLik", "deviance"):
        np.testing.assert_allclose(table[column], ref[column], atol=2e-3)
    assert table["Chisq"].iloc[1] == pytest.approx(ref["Chisq"], abs=2e-3)
    assert table["Df"].iloc[1] == ref["Df"]
    assert table["Pr(>Chisq)"].iloc[1] == pytest.approx(ref["p_value"], rel=1e-3)


def test_anova_refuses_what_it_cannot_compare(sleepstudy):
    def fit(formula, method):
        return mtf.MixedLM.from_formula(formula, sleepstudy).fit(method=method)

    with pytest.raises(mtf.ModelComparisonError, match="not nested"):
        mtf.anova(
            fit("Reaction ~ Days + (1 | Subject)", "ml"),
            fit("Reaction ~ I(Days**2) + (1 | Subject)", "ml"),
        )
    with pytest.raises(mtf.ModelComparisonError, match="same rows"):
        mtf.anova(
            fit("Reaction ~ Days + (1 | Subject)", "ml"),
            mtf.MixedLM.from_formula(
                "Reaction ~ Days + (Days | Subject)", sleepstudy.iloc[:170]
            ).fit(method="ml"),
        )
    with pytest.raises(mtf.ModelComparisonError, match="takes one fit"):
        mtf.anova()
