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


def factor(x: Any, levels: Any = None) -> pd.Series:
    """R's ``factor(x)`` (and ``as.factor``): a categorical whose levels are the sorted
    distinct values (numbers numerically), or ``levels`` in the order given; a categorical
    keeps its level order and drops unused levels, as R's."""
    s = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x))
    if isinstance(s.dtype, pd.CategoricalDtype):
        f = s.cat.remove_unused_categories()
        return f if levels is None else f.cat.set_categories([str(v) for v in levels])
    labels = s.map(_r_label, na_action="ignore")
    if levels is None:
        levels = [_r_label(v) for v in sorted(pd.unique(s.dropna()))]
    else:
        levels = [_r_label(v) for v in levels]
    return pd.Series(pd.Categorical(labels, categories=levels), index=s.index)


def _r_label(value: Any) -> str:
    """R's ``as.character`` of one value: ``1`` for 1.0, ``0.5``, ``TRUE``, the string."""
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def relevel(x: Any, ref: Any) -> pd.Series:
    """R's ``relevel(f, ref)``: ``ref`` becomes the first (reference) level."""
    f = factor(x)
    levels = list(f.cat.categories)
    match = [v for v in levels if str(v) == str(ref)]
    if not match:
        raise DesignError(f"relevel: {ref!r} is not a level (levels {levels[:10]}).")
    return f.cat.reorder_categories([match[0], *[v for v in levels if v is not match[0]]])


def as_numeric(x: Any) -> pd.Series:
    """R's ``as.numeric``: a factor's integer codes ``1..K`` (not its labels, as R), numbers
    as they are, logicals as 0/1."""
    s = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x))
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy(np.float64) + 1.0
        return pd.Series(np.where(s.cat.codes.to_numpy() < 0, np.nan, codes), index=s.index)
    try:
        return pd.to_numeric(s).astype(np.float64)
    except (TypeError, ValueError) as err:
        raise DesignError(
            f"as.numeric: values such as {list(s.iloc[:3])} are not numbers."
        ) from err


def as_integer(x: Any) -> pd.Series:
    """R's ``as.integer``: a factor's codes ``1..K``, numbers truncated towards zero."""
    return np.trunc(as_numeric(x))


# Names formulas may call or reference without them being data columns (R spellings are
# translated to these by mixedtf.formula.rsyntax).
EVAL_CONTEXT: dict[str, Any] = {
    "np": np,
    "numpy": np,
    "log": np.log,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "factor": factor,
    "relevel": relevel,
    "as_numeric": as_numeric,
    "as_integer": as_integer,
    "c": lambda *values: list(values),
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
