"""lme4's ``update`` and ``refit`` for a fitted model: the same model on a new formula or
new data, or on a new response vector, fitted by the same method with the same options.

>>> import mixedtf as mtf
>>> sleep = mtf.datasets.load("sleepstudy")
>>> m1 = mtf.lmer("Reaction ~ Days + (Days | Subject)", sleep)
>>> m0 = mtf.update(m1, ". ~ . - Days")  # lme4's update(m1, . ~ . - Days)
>>> list(m0.fixef().index)
['(Intercept)']
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mixedtf.design import Design, build_design
from mixedtf.design.builder import WEIGHTS
from mixedtf.design.response import check_response
from mixedtf.errors import DesignError
from mixedtf.fit import fit
from mixedtf.results import MixedLMResults
from mixedtf.results.inference import REFITS

__all__ = ["refit", "update"]


def _method(res: MixedLMResults) -> tuple[str, dict[str, Any]]:
    """The fit method and options that produced ``res``."""
    options = dict(res.fit_info.options)
    method = "laplace" if res.method == "agq" else res.method
    if res.method == "agq":
        options.setdefault("n_agq", res.fit_info.n_agq)
    return method, options


def refit(
    res: MixedLMResults, newresp: Any, seed: int | None = None, progress: bool | None = None
) -> MixedLMResults:
    """lme4's ``refit(m, newresp)``: the same design with a new response (one value per
    row used in the fit; for ``cbind(s, f)`` binomial models an ``n x 2`` array), fitted by
    the same method and options (MCEM: the same seed unless ``seed`` is given). The
    parametric bootstrap refits simulated responses this way.

    Raises:
        DesignError: the new response has the wrong shape or is not finite.
        FamilyError: the family cannot take it (negative counts, ...).
    """
    design = res.design
    y = np.asarray(newresp, dtype=np.float64)
    if y.shape != design.y.shape:
        raise DesignError(
            f"newresp must have the shape of the fitted response, {design.y.shape} (one value "
            f"per row used in the fit); got {y.shape}."
        )
    check_response(y, design.family, "newresp")
    method, options = _method(res)
    seed = res.fit_info.seed if seed is None else seed
    return fit(replace(design, y=y), method, options, seed, progress)


def update(
    res: MixedLMResults,
    formula: str | None = None,
    data: Any = None,
    seed: int | None = None,
    progress: bool | None = None,
    method_override: str | None = None,
    **options: Any,
) -> MixedLMResults:
    """lme4's ``update(m, formula, data = ...)``: the model refitted with a new formula
    (``"."`` on either side stands for the old side, as R's ``update.formula``: ``". ~ . +
    x"``, ``". ~ . - x"``) and/or new data, by the same method (or ``method_override``, as
    ``anova`` refits REML fits with ``"ml"``); ``options`` override the fit's options.

    Raises:
        DesignError: the new formula reads columns the fit did not keep (pass ``data``),
            or prior weights were used and new data are given without them.
    """
    design = res.design
    text = design.formula.text if formula is None else _expand_dots(formula, design)
    weights = None
    if data is None:
        data = design.data
        weights = WEIGHTS if WEIGHTS in data.columns else None
    elif design.data is not None and WEIGHTS in design.data.columns:
        raise DesignError(
            "the fit used weights=; with new data, refit with MixedLM.from_formula(formula, "
            "data, weights=...) so that the weights of the new rows are known."
        )
    try:
        new = build_design(text, data, design.family_spec, weights)
    except DesignError as err:
        if data is not design.data or "not in the data" not in str(err):
            raise
        raise DesignError(
            f"{err} A fit keeps only the columns it used; pass data= to update() for others."
        ) from err
    method, fit_options = _method(res)
    fit_options.update(options)
    method = method_override or method
    seed = res.fit_info.seed if seed is None else seed
    return fit(new, method, fit_options, seed, progress)


def _expand_dots(formula: str, design: Design) -> str:
    """R's ``update.formula``: ``.`` on the left is the old response, on the right the old
    right-hand side."""
    if "~" not in formula:
        raise DesignError(
            f"update() takes a formula with '~' such as '. ~ . + x'; got {formula!r}."
        )
    lhs, rhs = (part.strip() for part in formula.split("~", 1))
    old_lhs, old_rhs = (part.strip() for part in design.formula.text.split("~", 1))
    lhs = old_lhs if lhs == "." else lhs
    if rhs == "." or rhs.startswith(". ") or rhs.startswith(".+") or rhs.startswith(".-"):
        rhs = old_rhs + rhs[1:]
    return f"{lhs} ~ {rhs}"


def null_model(res: MixedLMResults) -> MixedLMResults:
    """``insight::null_model``: ``update(m, y ~ 1 + offsets + random terms)``, the
    fit's data, weights, family and method kept."""
    return update(res, str(replace(res.design.formula, fixed="1")), progress=False)


REFITS["null_model"] = null_model
