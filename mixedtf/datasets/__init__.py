"""Data sets of lme4 (and ordinal's ``wine``), bundled with the package.

``load("sleepstudy")`` returns a DataFrame with R's column types: factors are
pandas categoricals with R's level order (the first level is the reference of
treatment contrasts), integers are int64, numerics float64. See SOURCES.md.
"""

from __future__ import annotations

import io
import json
import lzma
from functools import cache
from importlib import resources

import pandas as pd

from mixedtf.errors import MixedTFError

__all__ = ["load", "names"]

_NAMES = (
    "InstEval",
    "sleepstudy",
    "Penicillin",
    "Pastes",
    "cbpp",
    "Dyestuff",
    "grouseticks",
    "VerbAgg",
    "wine",
)


class DatasetNotFoundError(MixedTFError, KeyError):
    """No bundled data set has that name."""


def names() -> list[str]:
    """Names of the bundled data sets."""
    return list(_NAMES)


def _read(filename: str) -> bytes:
    return lzma.decompress(resources.files(__name__).joinpath("data", filename).read_bytes())


def columns(name: str) -> dict:
    """R's description of each column (class, factor levels in R order) for data set ``name``."""
    return json.loads(_read(f"{_canonical(name)}.columns.json.xz"))


def _canonical(name: str) -> str:
    matches = [n for n in _NAMES if n.lower() == str(name).lower()]
    if not matches:
        raise DatasetNotFoundError(f"no bundled data set {name!r}; available: {', '.join(_NAMES)}.")
    return matches[0]


@cache
def _load(name: str) -> pd.DataFrame:
    meta = columns(name)["columns"]
    factors = {c["name"]: str for c in meta if c["is_factor"]}
    frame = pd.read_csv(
        io.BytesIO(_read(f"{name}.csv.xz")), dtype=factors, keep_default_na=False, na_values=[""]
    )
    for col in meta:
        if col["is_factor"]:
            frame[col["name"]] = pd.Categorical(
                frame[col["name"]], categories=col["levels_in_R_order"], ordered=col["ordered"]
            )
        elif col["storage"] == "integer" and not frame[col["name"]].isna().any():
            frame[col["name"]] = frame[col["name"]].astype("int64")
        else:
            frame[col["name"]] = frame[col["name"]].astype("float64")
    return frame


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set by name (case-insensitive); returns a fresh copy."""
    return _load(_canonical(name)).copy()
