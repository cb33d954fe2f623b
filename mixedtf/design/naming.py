"""lme4 (R ``model.matrix``) column names from formulaic's.

formulaic writes ``Intercept``, ``service[T.1]`` and ``f[a]``; R writes
``(Intercept)``, ``service1`` and ``fa``. Tables and tests use R's spelling.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from formulaic import ModelSpec, model_matrix

from mixedtf.errors import DesignError

_LEVEL = re.compile(r"\[(?:T\.)?([^\[\]]*)\]$")


def r_name(formulaic_name: str) -> str:
    """R's name for one formulaic column name, e.g. ``"service[T.1]:x"`` -> ``"service1:x"``."""
    if formulaic_name == "Intercept":
        return "(Intercept)"
    return ":".join(_LEVEL.sub(r"\1", part) for part in formulaic_name.split(":"))


def r_names(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """R's names for a sequence of formulaic column names."""
    return tuple(r_name(n) for n in names)


def make_unique(names: list[str]) -> list[str]:
    """R's ``make.unique``: later duplicates get ``.1``, ``.2``, ... (``Subject``, ``Subject.1``)."""
    seen: set[str] = set(names)
    counts: dict[str, int] = {}
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        if name not in used:
            out.append(name)
            used.add(name)
            continue
        k = counts.get(name, 0)
        while True:
            k += 1
            candidate = f"{name}.{k}"
            if candidate not in seen and candidate not in used:
                break
        counts[name] = k
        out.append(candidate)
        used.add(candidate)
    return out


def r_model_matrix(
    rhs: str, frame: pd.DataFrame, context: dict, what: str
) -> tuple[np.ndarray, tuple[str, ...], ModelSpec]:
    """formulaic's model matrix of ``rhs`` (full rank, no missing values) as float64, with R's
    column names and the spec that re-encodes new data. ``what`` names it in errors."""
    try:
        mm = model_matrix(rhs, frame, ensure_full_rank=True, na_action="raise", context=context)
    except Exception as err:  # formulaic's message names the failing term
        raise DesignError(f"could not build {what}: {err}") from err
    return np.asarray(mm, dtype=np.float64), r_names(list(mm.columns)), mm.model_spec
