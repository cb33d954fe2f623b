"""Bundled data sets: same bytes as R's export, R's column types and factor level order."""

from __future__ import annotations

import hashlib
import io
import lzma
import re
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from references import shared_oracle

import mixedtf as mtf
from mixedtf.datasets import DatasetNotFoundError, columns

SOURCES = Path(mtf.datasets.__file__).parent / "SOURCES.md"


def _sha_table() -> dict[str, str]:
    return dict(re.findall(r"^\| (\w+) \|.*\| `([0-9a-f]{64})` \|$", SOURCES.read_text(), re.M))


def test_names_cover_the_issue_list():
    wanted = {
        "InstEval",
        "sleepstudy",
        "Penicillin",
        "Pastes",
        "cbpp",
        "Dyestuff",
        "grouseticks",
        "VerbAgg",
    }
    assert wanted <= set(mtf.datasets.names())
    assert set(_sha_table()) == set(mtf.datasets.names())


@pytest.mark.parametrize("name", mtf.datasets.names())
def test_bundled_csv_matches_sources_sha256(name):
    raw = lzma.decompress(
        resources.files("mixedtf.datasets").joinpath("data", f"{name}.csv.xz").read_bytes()
    )
    assert hashlib.sha256(raw).hexdigest() == _sha_table()[name]
    oracle = shared_oracle()
    if oracle is not None and (oracle / "data" / f"{name}.csv").exists():
        assert raw == (oracle / "data" / f"{name}.csv").read_bytes()


@pytest.mark.parametrize("name", mtf.datasets.names())
def test_types_and_levels_follow_r(name):
    frame = mtf.datasets.load(name)
    meta = columns(name)
    assert len(frame) == meta["rows"]
    for col in meta["columns"]:
        series = frame[col["name"]]
        assert int(series.isna().sum()) == col["n_missing"]
        if col["is_factor"]:
            assert isinstance(series.dtype, pd.CategoricalDtype)
            assert list(series.cat.categories) == col["levels_in_R_order"]
            assert series.cat.ordered == col["ordered"]
        else:
            assert pd.api.types.is_numeric_dtype(series.dtype)
            assert series.mean() == pytest.approx(col["mean"], rel=1e-12)


def test_insteval_dept_order_is_rs_not_sorted():
    dept = mtf.datasets.load("InstEval")["dept"]
    # levels(InstEval$dept) in R
    assert list(dept.cat.categories) == [
        "15",
        "5",
        "10",
        "12",
        "6",
        "7",
        "4",
        "8",
        "9",
        "14",
        "1",
        "3",
        "11",
        "2",
    ]


def test_labels_that_look_like_numbers_stay_labels():
    s = mtf.datasets.load("InstEval")["s"]
    assert s.cat.categories[0] == "1" and isinstance(s.cat.categories[0], str)


def test_load_is_case_insensitive_and_returns_copies():
    a = mtf.datasets.load("SLEEPSTUDY")
    a.loc[0, "Reaction"] = -1.0
    assert mtf.datasets.load("sleepstudy").loc[0, "Reaction"] == pytest.approx(249.56)


def test_unknown_dataset_lists_the_names():
    with pytest.raises(DatasetNotFoundError, match="available: InstEval"):
        mtf.datasets.load("iris")


def test_csv_is_readable_as_plain_csv():
    raw = lzma.decompress(
        resources.files("mixedtf.datasets").joinpath("data", "cbpp.csv.xz").read_bytes()
    )
    assert pd.read_csv(io.BytesIO(raw)).shape == (56, 4)
