r"""R's meaning for R syntax inside formula terms, and R's names for them.

Inside a function call a formula term is R arithmetic, which formulaic would read as
Python: ``I(x^2)`` would be a bitwise XOR, ``scale(x, center = FALSE)`` a column named
``FALSE``, ``as.numeric(f)`` an attribute lookup. :func:`to_python` rewrites one call to
the Python that means what R means:

* ``^`` -> ``**`` (a power inside a call; outside calls ``(a + b)^2`` stays formula
  crossing, which formulaic reads as R does);
* ``TRUE``/``FALSE`` -> ``True``/``False``; ``1L`` -> ``1``;
* ``as.numeric``/``as.integer``/``as.factor`` -> the design layer's ``as_numeric``,
  ``as_integer``, ``factor``; a data column with a dot in its name is quoted;
* R operators with no Python counterpart (``%in%``, ``%%``, ``%/%``) and R functions that
  mixedtf does not evaluate are refused with an error that says so.

:func:`r_deparse` turns formulaic's Python spelling of a term back into R's
``deparse``: ``I(x ** 2)`` -> ``I(x^2)``, ``scale(year, center=False)`` ->
``scale(year, center = FALSE)``, ``as_numeric(f)`` -> ``as.numeric(f)``, so that
coefficient names match R's ``model.matrix``.
"""

from __future__ import annotations

import ast
import re

from mixedtf.errors import FormulaSyntaxError

# R spellings with a Python name in the design layer's evaluation context
R_FUNCTIONS = {"as.numeric": "as_numeric", "as.integer": "as_integer", "as.factor": "factor"}
PY_TO_R = {"as_numeric": "as.numeric", "as_integer": "as.integer"}
# functions a formula term may call: R's (with the design layer's implementation),
# formulaic's transforms, and numpy's under np. / numpy.
FUNCTIONS = frozenset(
    {
        "I", "C", "Q", "log", "log1p", "log2", "log10", "exp", "sqrt", "abs", "factor",
        "relevel", "c", "poly", "scale", "center", "bs", "lag", "offset",
        "as_numeric", "as_integer", "Treatment", "Sum", "Helmert", "Diff", "Poly",
    }
)  # fmt: skip
NAMESPACES = ("np", "numpy", "contr")
_IDENT = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"\d+\.?\d*(?:[eE][+-]?\d+)?L?|\.\d+(?:[eE][+-]?\d+)?L?")


def to_python(code: str, formula: str = "", start: int = 0) -> str:
    """The Python (formulaic) spelling of an R expression ``code``; ``formula`` and
    ``start`` (the offset of ``code`` in it) place the caret of an error."""
    out: list[str] = []
    i = 0
    while i < len(code):
        c = code[i]
        if c in "'\"":
            j = string_end(code, i)
            j = len(code) if j < 0 else j
            out.append(code[i:j])
            i = j
        elif c == "`":
            j = code.index("`", i + 1) + 1
            out.append(code[i:j])
            i = j
        elif c == "^":
            out.append("**")
            i += 1
        elif c == "%":
            j = code.find("%", i + 1)
            op = code[i : j + 1] if j > 0 else "%"
            raise FormulaSyntaxError(
                f"R operator {op!r} inside a formula term is not supported",
                formula or code,
                start + i,
                "Compute the column in the data frame before fitting.",
            )
        elif c.isdigit() or (c == "." and i + 1 < len(code) and code[i + 1].isdigit()):
            m = _NUMBER.match(code, i)
            out.append(m.group(0).rstrip("L"))
            i = m.end()
        elif c.isalpha() or c in "_.":
            m = _IDENT.match(code, i)
            out.append(_name(m.group(0), _is_call(code, m.end()), formula or code, start + i))
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def string_end(text: str, i: int) -> int:
    """Index just past the quoted string starting at ``text[i]``, or -1 if unterminated."""
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            return j + 1
        j += 1
    return -1


def _is_call(code: str, end: int) -> bool:
    rest = code[end:].lstrip()
    return rest.startswith("(")


def _name(name: str, called: bool, formula: str, at: int) -> str:
    """One identifier of R code in Python: a function or a variable."""
    if name in ("TRUE", "FALSE"):
        return name.capitalize()
    root = name.split(".")[0]
    if called:
        if name in R_FUNCTIONS:
            return R_FUNCTIONS[name]
        if root in NAMESPACES and "." in name:
            return name
        if name not in FUNCTIONS:
            raise FormulaSyntaxError(
                f"function {name!r} is not one mixedtf evaluates in a formula",
                formula,
                at,
                "Formulas may call " + ", ".join(sorted(FUNCTIONS - set(PY_TO_R))) + ", "
                "as.numeric, as.integer, as.factor and numpy's np.*; compute other columns in "
                "the data frame before fitting.",
            )
        return name
    if "." in name and root not in NAMESPACES:
        return f"`{name}`"  # an R column name with a dot
    return name


_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.FloorDiv: 2, ast.Mod: 2}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}


def r_deparse(expr: str) -> str:
    """R's ``deparse`` of a Python expression (a formula term as formulaic spells it);
    the text itself when it is not Python."""
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        return expr
    try:
        return _deparse(tree)
    except _NotRError:
        return expr


class _NotRError(Exception):
    """A Python construct with no R spelling here; keep formulaic's text."""


def _deparse(node: ast.AST, parent: int = 0) -> str:
    if isinstance(node, ast.Name):
        return PY_TO_R.get(node.id, node.id)
    if isinstance(node, ast.Constant):
        return _constant(node.value)
    if isinstance(node, ast.Attribute):
        return f"{_deparse(node.value, 9)}.{node.attr}"
    if isinstance(node, ast.Call):
        args = [_deparse(a) for a in node.args]
        args += [f"{k.arg} = {_deparse(k.value)}" for k in node.keywords if k.arg]
        return f"{_deparse(node.func, 9)}({', '.join(args)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = "-" if isinstance(node.op, ast.USub) else "+"
        text = f"{sign}{_deparse(node.operand, 4)}"
        return f"({text})" if parent > 3 else text
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        text = f"{_deparse(node.left, 6)}^{_deparse(node.right, 5)}"
        return f"({text})" if parent > 5 else text
    if isinstance(node, ast.BinOp) and type(node.op) in _SYMBOL:
        level = _PRECEDENCE[type(node.op)]
        right = _deparse(node.right, level + 1)
        text = f"{_deparse(node.left, level)} {_SYMBOL[type(node.op)]} {right}"
        return f"({text})" if parent > level else text
    if isinstance(node, ast.List | ast.Tuple):
        return f"c({', '.join(_deparse(e) for e in node.elts)})"
    raise _NotRError


def _constant(value: object) -> str:
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
