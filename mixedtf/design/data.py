"""Data coercion, used-column discovery and the missing-value policy.

The policy is lme4's ``na.omit``: a row with a missing value in any column the
formula uses is dropped, and the user is told how many rows went and why.
"""

from __future__ import annotations

import ast
import difflib
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula as FormulaicFormula

from mixedtf.errors import DesignError, MissingValuesWarning
from mixedtf.formula import Formula

# Names formulas may call or reference without them being data columns.
EVAL_CONTEXT: dict[str, Any] = {
    "np": np,
    "numpy": np,
    "log": np.log,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}


def as_frame(data: Any) -> pd.DataFrame:
    """A DataFrame from a DataFrame or a mapping of equal-length arrays."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Mapping):
        try:
            frame = pd.DataFrame(
                {str(k): np.asarray(v) if np.ndim(v) else [v] for k, v in data.items()}
            )
        except ValueError as err:
            lengths = {str(k): len(np.atleast_1d(v)) for k, v in data.items()}
            raise DesignError(
                f"data columns must have equal lengths; got {lengths}. "
                "Pass a pandas DataFrame or a dict of arrays of one length."
            ) from err
    else:
        raise DesignError(
            f"data must be a pandas DataFrame or a dict of arrays; got {type(data).__name__}."
        )
    if len(frame) == 0:
        raise DesignError("data has no rows: a model needs observations to fit.")
    return frame


def expression_names(expr: str) -> set[str]:
    """Variable names an expression reads, not counting called functions or module roots."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return {expr.strip().strip("`")}
    called: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called.add(id(node.func))
        if isinstance(node, ast.Attribute):
            called.add(id(node.value))  # np.log, contr.treatment: roots are namespaces
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and id(node) not in called and node.id not in EVAL_CONTEXT
    }


def formulaic_names(rhs: str) -> set[str]:
    """Variables a formulaic right-hand side reads (``poly(z, 2)`` included)."""
    names: set[str] = set()
    for term in FormulaicFormula(rhs):
        for factor in term.factors:
            if factor.eval_method.value == "lookup":
                names.add(factor.expr)
            elif factor.eval_method.value == "python":
                names |= expression_names(factor.expr)
    return names


def used_columns(formula: Formula, include_response: bool = True) -> list[str]:
    """Every data column the formula reads, in a stable order."""
    names: list[str] = []
    response = formula.response
    if include_response:
        for expr in response.cbind or (response.expr,):
            names.extend(sorted(expression_names(expr)))
    names.extend(sorted(formulaic_names(formula.fixed)))
    for expr in formula.offsets:
        names.extend(sorted(expression_names(expr)))
    for term in formula.random:
        names.extend(sorted(formulaic_names(term.lhs_formula)))
        names.extend(term.factors)
    return list(dict.fromkeys(names))


def check_columns(frame: pd.DataFrame, names: Iterable[str]) -> None:
    """Raise :class:`DesignError` for a name that is not a column, suggesting the closest."""
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name in frame.columns:
            continue
        close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
        suggestion = f" Did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(repr(c) for c in columns[:20]) + (" ..." if len(columns) > 20 else "")
        raise DesignError(
            f"the formula uses column {name!r}, which is not in the data.{suggestion} "
            f"The data have columns {shown}."
        )


def drop_missing(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Rows complete in ``names``, unused categories removed; warns how many rows were dropped."""
    sub = frame[names]
    missing = sub.isna()
    for name in names:
        if missing[name].all():
            raise DesignError(
                f"column {name!r} is entirely missing ({len(frame)} rows, none observed); "
                "fill it in or take it out of the formula."
            )
    incomplete = missing.any(axis=1).to_numpy()
    if incomplete.any():
        per_column = {n: int(c) for n, c in missing.sum().items() if c}
        n_drop = int(incomplete.sum())
        if n_drop == len(frame):
            raise DesignError(
                f"every row has a missing value in a used column (missing per column: {per_column}); "
                "no complete observation is left."
            )
        warnings.warn(
            f"dropped {n_drop} of {len(frame)} rows with missing values "
            f"(missing per column: {per_column}), as lme4's na.omit does.",
            MissingValuesWarning,
            stacklevel=4,
        )
        sub = sub.loc[~incomplete]
    return sub.apply(
        lambda col: (
            col.cat.remove_unused_categories()
            if isinstance(col.dtype, pd.CategoricalDtype)
            else col
        )
    )


def evaluate(expr: str, frame: pd.DataFrame) -> pd.Series:
    """Evaluate a response or offset expression (a column name or Python code) on ``frame``."""
    name = expr.strip().strip("`")
    if name in frame.columns:
        return frame[name]
    namespace = {**EVAL_CONTEXT, **{str(c): frame[c] for c in frame.columns}}
    try:
        value = eval(compile(expr.strip(), "<formula>", "eval"), {"__builtins__": {}}, namespace)
    except Exception as err:  # the user's expression: report it, whatever it raised
        raise DesignError(f"could not evaluate {expr!r} on the data: {err}") from err
    if np.ndim(value) == 0:
        value = np.full(len(frame), value)
    return pd.Series(np.asarray(value), index=frame.index, name=expr)
