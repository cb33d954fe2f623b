"""R syntax in formulas means what it means in R, and its columns carry R's names:
factor(), as.numeric(), I(x^2) as a power, poly(), scale(), log()... against lme4's fits
(tests/reference/R/formula_cases.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from references import reference

import mixedtf as mtf
from mixedtf.formula.rsyntax import r_deparse, to_python

CASES = reference("formula_r_syntax")
FITTED = [k for k in CASES if k not in ("software", "slope_power")]


@pytest.mark.parametrize("case", FITTED)
def test_r_syntax_fits_as_lme4_with_rs_names(case):
    ref = CASES[case]  # fixef(lmer(formula, data, REML = FALSE)), logLik(m)
    data = mtf.datasets.load(ref["data"])
    res = mtf.lmer(ref["formula"], data, REML=False)
    assert list(res.fixef().index) == list(ref["fixef"])
    np.testing.assert_allclose(res.fixef(), list(ref["fixef"].values()), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.varcorr().sdcor, ref["sdcor"], rtol=2e-3)
    assert res.loglik == pytest.approx(ref["logLik"], abs=1e-3)


def test_power_of_an_integer_column_is_a_power_not_xor(sleepstudy):
    # I(Days^2) on an integer column was fitted as Days XOR 2
    data = sleepstudy.assign(Days=sleepstudy["Days"].astype("int64"))
    ref = CASES["power"]
    res = mtf.lmer(ref["formula"], data, REML=False)
    np.testing.assert_allclose(res.fixef(), list(ref["fixef"].values()), rtol=1e-4)


def test_random_slope_terms_take_r_syntax_and_names(sleepstudy):
    design = mtf.build_design(CASES["slope_power"]["formula"], sleepstudy)
    assert list(design.groupings[0].colnames) == CASES["slope_power"]["ranef_terms"]
    np.testing.assert_allclose(design.groupings[0].z[:, 1], sleepstudy["Days"] ** 2)


@pytest.mark.parametrize(
    "rhs",
    ["factor(Days)", "poly(Days, 2)", "scale(Days, center = FALSE)", "relevel(factor(Days), 3)"],
)
def test_predict_on_new_data_reuses_the_training_encoding(sleepstudy, rhs):
    # factor levels, poly and scale carry their training state to new rows (R's predict)
    res = mtf.lmer(f"Reaction ~ {rhs} + (1 | Subject)", sleepstudy)
    new = pd.DataFrame({"Days": [3.0, 9.0], "Subject": ["308", "308"]})
    rows = sleepstudy[(sleepstudy.Subject == "308") & sleepstudy.Days.isin([3, 9])]
    np.testing.assert_allclose(res.predict(new), res.predict(rows), rtol=1e-10)


@pytest.mark.parametrize(
    ("r", "python"),
    [
        ("I(x^2)", "I(x**2)"),
        ("scale(x, center = FALSE)", "scale(x, center = False)"),
        ("as.numeric(f)", "as_numeric(f)"),
        ("as.factor(year)", "factor(year)"),
        ("log(Sepal.Length)", "log(`Sepal.Length`)"),
        ("poly(x, 2L, raw = TRUE)", "poly(x, 2, raw = True)"),
        ("np.log(x)", "np.log(x)"),
        ("I('a^b')", "I('a^b')"),
    ],
)
def test_r_code_becomes_python_that_means_the_same(r, python):
    assert to_python(r) == python


@pytest.mark.parametrize(
    ("python", "r"),
    [
        ("I(x ** 2)", "I(x^2)"),
        ("I((x + 1) ** 2)", "I((x + 1)^2)"),
        ("scale(x, center=False)", "scale(x, center = FALSE)"),
        ("exp(-Days)", "exp(-Days)"),
        ("log(Days+1)", "log(Days + 1)"),
        ("as_numeric(f)", "as.numeric(f)"),
        ("relevel(f, ref='b')", 'relevel(f, ref = "b")'),
        ("I(a - (b - c))", "I(a - (b - c))"),
    ],
)
def test_names_are_rs_deparse(python, r):
    assert r_deparse(python) == r


@pytest.mark.parametrize(
    ("formula", "says"),
    [
        ("y ~ ns(x, 3) + (1 | g)", "function 'ns' is not one mixedtf evaluates"),
        ("y ~ I(x %% 2) + (1 | g)", "R operator '%%' inside a formula term is not supported"),
        ("y ~ as.character(x) + (1 | g)", "function 'as.character' is not one"),
    ],
)
def test_r_only_syntax_without_a_meaning_here_is_refused(formula, says):
    with pytest.raises(mtf.FormulaSyntaxError, match=says):
        mtf.parse_formula(formula)
