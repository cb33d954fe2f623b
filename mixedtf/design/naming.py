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
from mixedtf.formula.rsyntax import r_deparse

_LEVEL = re.compile(r"^(.*?)\[(?:T\.)?([^\[\]]*)\]$")
_RAW_POLY = re.compile(r"^poly\(.*raw\s*=\s*True.*\)$")


def r_name(formulaic_name: str) -> str:
    """R's name for one formulaic column name: ``"service[T.1]:x"`` -> ``"service1:x"``,
    ``"I(x ** 2)"`` -> ``"I(x^2)"``, ``"poly(x, 2, raw=True)[0]"`` ->
    ``"poly(x, 2, raw = TRUE)1"`` (R numbers a raw polynomial's powers from 1)."""
    if formulaic_name == "Intercept":
        return "(Intercept)"
    return ":".join(_r_part(part) for part in _split_interaction(formulaic_name))


def _r_part(part: str) -> str:
    m = _LEVEL.match(part)
    base, level = (m.group(1), m.group(2)) if m else (part, "")
    if level.isdigit() and _RAW_POLY.match(base):
        level = str(int(level) + 1)
    return r_deparse(base) + level


def _split_interaction(name: str) -> list[str]:
    """``name`` split at the ``:`` between factors (not inside brackets or calls)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(name):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return parts


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
