"""Design builder: lme4's grouping names, terms and levels; the NA policy; input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from references import CASES, reference

import mixedtf as mtf
from mixedtf import DesignError, MissingValuesWarning, MixedTFWarning
from mixedtf.design import build_design


def _design(case: str):
    ref = reference(case)
    return build_design(
        ref["formula"], mtf.datasets.load(ref["dataset"]), family=ref["family"]
    ), ref


@pytest.mark.parametrize("case", CASES)
def test_groupings_match_lme4(case):
    design, ref = _design(case)
    expected = ref["random_effects"]  # as.data.frame(VarCorr(m)) groups, ngrps(m), levels(ranef)
    assert [g.name for g in design.groupings] == [e["name"] for e in expected]
    assert [g.factor for g in design.groupings] == [e["grouping_factor"] for e in expected]
    assert [g.n_levels for g in design.groupings] == [e["n_levels"] for e in expected]
    assert [list(g.colnames) for g in design.groupings] == [
        list(np.atleast_1d(e["terms"])) for e in expected
    ]
    assert design.ngroups == ref["ngroups"]  # ngrps(m)
    assert design.nobs == ref["nobs"]  # nobs(m)
    for g in design.groupings:
        first5 = ref["ranef_first5"][g.factor]["levels"]  # head(levels(m@flist[[g]]), 5)
        assert list(g.levels[:5]) == first5


@pytest.mark.parametrize("case", CASES)
def test_fixed_effect_names_match_lme4(case):
    design, ref = _design(case)
    assert list(design.fixed_names) == [f["term"] for f in ref["fixed_effects"]]  # names(fixef(m))


def test_gather_form_reconstructs_dense_z(sleepstudy):
    d = build_design("Reaction ~ Days + (Days | Subject)", sleepstudy)
    g = d.groupings[0]
    assert g.codes.dtype == np.int32 and g.z.shape == (180, 2)
    dense = np.zeros((180, g.n_levels * 2))
    for c in range(2):
        dense[np.arange(180), g.codes * 2 + c] = g.z[:, c]
    b = np.arange(g.n_levels * 2, dtype=float)
    gathered = (g.z * b.reshape(-1, 2)[g.codes]).sum(axis=1)
    np.testing.assert_allclose(dense @ b, gathered)
    subjects = sleepstudy["Subject"].astype(str).to_numpy()
    assert all(g.levels[c] == s for c, s in zip(g.codes, subjects, strict=True))


def test_response_and_x(sleepstudy):
    d = build_design("Reaction ~ Days + (Days | Subject)", sleepstudy)
    np.testing.assert_array_equal(d.y, sleepstudy["Reaction"].to_numpy())
    np.testing.assert_array_equal(d.X[:, 1], sleepstudy["Days"].to_numpy())
    assert d.X.dtype == np.float64 and d.y.dtype == np.float64


def test_cbind_response_is_successes_and_failures():
    cbpp = mtf.datasets.load("cbpp")
    d = build_design(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"
    )
    np.testing.assert_array_equal(d.y[:, 0], cbpp["incidence"])
    np.testing.assert_array_equal(d.y.sum(axis=1), cbpp["size"])


def _toy(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "g": np.repeat(["b", "a", "c"], n // 3),
            "h": np.tile(["u", "v"], n // 2),
            "f": pd.Categorical(
                np.tile(["hi", "lo", "mid"], n // 3), categories=["lo", "mid", "hi"]
            ),
        }
    )


def test_levels_sorted_for_plain_columns_and_kept_for_categoricals():
    d = build_design("y ~ x + (1|g) + (1|f)", _toy())
    assert d.groupings[0].levels == ("a", "b", "c")  # factor(): sorted
    assert d.groupings[1].levels == ("lo", "mid", "hi")  # categorical order kept


def test_interaction_levels_first_factor_slowest_and_observed_only():
    df = _toy()
    d = build_design("y ~ (1|g:h)", df)
    assert d.groupings[0].levels == ("a:u", "a:v", "b:u", "b:v", "c:u", "c:v")
    df = df[~((df.g == "a") & (df.h == "v"))]
    assert "a:v" not in build_design("y ~ (1|g:h)", df).groupings[0].levels


def test_numeric_grouping_labels_sort_numerically():
    df = _toy()
    df["k"] = np.tile([10, 9, 100], 4)
    assert build_design("y ~ (1|k)", df).groupings[0].levels == ("9", "10", "100")


def test_uncorrelated_term_gives_one_block_per_formula_term():
    # lme4's expandDoubleVerts: (1 + x + f || g) is (1|g) + (0 + x|g) + (0 + f|g), and a
    # factor's block has a column per level (correlated within it), as in R
    d = build_design("y ~ x + (1 + x + f || g)", _toy(n=24))
    assert [g.name for g in d.groupings] == ["g", "g.1", "g.2"]
    assert [g.colnames for g in d.groupings] == [("(Intercept)",), ("x",), ("flo", "fmid", "fhi")]
    assert not any(g.correlated for g in d.groupings)
    inter = build_design("y ~ x + (0 + x * f || g)", _toy(n=24))
    assert [g.colnames for g in inter.groupings] == [
        ("x",),
        ("flo", "fmid", "fhi"),
        ("x:flo", "x:fmid", "x:fhi"),  # R: colnames(model.matrix(~ 0 + x:f))
    ]


def test_factor_in_random_term_uses_r_names():
    d = build_design("y ~ (0 + f | g)", _toy(n=24))
    assert d.groupings[0].colnames == ("flo", "fmid", "fhi")


def test_lme4_reorders_by_number_of_levels():
    df = _toy(n=24)
    df["id"] = np.repeat(np.arange(8), 3)
    d = build_design("y ~ (1|g) + (1|id)", df)
    assert [g.name for g in d.groupings] == ["id", "g"]


def test_offset_summed():
    df = _toy()
    d = build_design("y ~ x + offset(x) + offset(2 * x) + (1|g)", df)
    np.testing.assert_allclose(d.offset, 3 * df["x"])


def test_dict_input():
    df = _toy()
    d = build_design("y ~ x + (1|g)", {c: df[c].to_numpy() for c in df.columns})
    assert d.nobs == 12


def test_rows_with_missing_values_are_dropped_with_a_count():
    df = _toy()
    df.loc[0, "x"] = np.nan
    df.loc[1, "g"] = None
    df.loc[2, "h"] = None  # not used by the formula: the row stays
    with pytest.warns(MissingValuesWarning, match=r"dropped 2 of 12 rows .*'x': 1, 'g': 1"):
        d = build_design("y ~ x + (1|g)", df)
    assert d.nobs == 10 and d.n_dropped == 2
    assert list(d.index) == list(range(2, 12))


def test_rank_deficient_columns_dropped_with_warning():
    df = _toy()
    df["x2"] = 2 * df["x"]
    with pytest.warns(MixedTFWarning, match=r"rank deficient so dropping 1 column\(s\): \['x2'\]"):
        d = build_design("y ~ x + x2 + (1|g)", df)
    assert d.fixed_names == ("(Intercept)", "x")


ERRORS = [
    ("y ~ x + (1|gg)", "column 'gg', which is not in the data. Did you mean 'g'?"),
    ("y ~ xx + (1|g)", "column 'xx', which is not in the data. Did you mean 'x'?"),
    ("yy ~ x + (1|g)", "column 'yy'"),
    ("y ~ zzz + (1|g)", "The data have columns 'y', 'x', 'g', 'h', 'f'"),
    ("g ~ x + (1|h)", "response 'g' must be numeric"),
    ("y ~ x + (1|one)", "grouping factor 'one' has a single level"),
    ("y ~ x + (1|row)", "has 12 levels for 12 observations"),
    ("y ~ x + (1 + x|h:g)", "12 random effects for 12 observations"),
    ("y ~ x + (1|allna)", "column 'allna' is entirely missing"),
    ("np.log(y) ~ x + (1|g)", "not finite"),
]


@pytest.mark.parametrize(("formula", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_design_errors(formula, message):
    df = _toy()
    df["one"] = "only"
    df["row"] = np.arange(12)
    df["allna"] = np.nan
    with pytest.raises(DesignError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log of negatives
        build_design(formula, df)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)


def test_empty_data():
    with pytest.raises(DesignError, match="no rows"):
        build_design("y ~ x + (1|g)", _toy().iloc[:0])


def test_bad_data_type():
    with pytest.raises(DesignError, match="DataFrame or a dict of arrays; got list"):
        build_design("y ~ x + (1|g)", [1, 2, 3])


def test_non_numeric_response_hints_at_families():
    with pytest.raises(DesignError, match="family='binomial'"):
        build_design("f ~ x + (1|g)", _toy())


def test_transform_reencodes_new_data_with_training_levels():
    df = _toy()
    d = build_design("y ~ x + f + (1 + x|g)", df)
    new = pd.DataFrame({"x": [0.5, 1.0], "f": ["hi", "lo"], "g": ["c", "zzz"]})
    out = d.transform(new)
    np.testing.assert_array_equal(out.groupings[0].codes, [2, -1])
    np.testing.assert_array_equal(out.unseen("g"), [False, True])
    assert d.fixed_names == ("(Intercept)", "x", "fmid", "fhi")
    np.testing.assert_array_equal(out.X, [[1, 0.5, 0, 1], [1, 1.0, 0, 0]])
    np.testing.assert_array_equal(out.groupings[0].z, [[1, 0.5], [1, 1.0]])


def test_transform_reports_rows_with_missing_predictors():
    d = build_design("y ~ x + (1|g)", _toy())
    with pytest.raises(
        DesignError, match=r"1 rows of the new data have missing predictors \(rows \[1\]"
    ):
        d.transform(pd.DataFrame({"x": [0.5, np.nan], "g": ["a", "b"]}))


def test_from_formula_surfaces_errors_and_keeps_design(sleepstudy):
    with pytest.raises(mtf.FormulaSyntaxError):
        mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject", sleepstudy)
    with pytest.raises(DesignError, match="Did you mean 'Days'"):
        mtf.MixedLM.from_formula("Reaction ~ days + (Days | Subject)", sleepstudy)
    model = mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleepstudy)
    assert model.design.ngroups == {"Subject": 18}
    assert mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)").design is None


def test_failed_build_leaves_data_untouched():
    df = _toy()
    before = df.copy()
    df.loc[0, "x"] = np.nan
    before.loc[0, "x"] = np.nan
    with pytest.warns(MissingValuesWarning), pytest.raises(DesignError):
        build_design("y ~ x + (1|h:g) + (1 + x | h:g)", df)
    pd.testing.assert_frame_equal(df, before)
