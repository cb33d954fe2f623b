"""Table-driven tests of the lme4 formula parser.

Expected random terms follow lme4's ``findbars``/``expandSlash``:
``(1|a/b)`` -> ``(1|b:a) + (1|a)``; ``||`` terms stay one term marked uncorrelated.
"""

from __future__ import annotations

import pytest

from mixedtf import FormulaSyntaxError, MixedTFError
from mixedtf.formula import parse_formula

# (formula, response, fixed part handed to formulaic, random terms as str(), offsets)
VALID = [
    ("y ~ x", "y", "x", [], []),
    ("y ~ 1 + (1|g)", "y", "1", ["(1 | g)"], []),
    ("y ~ (1|g)", "y", "1", ["(1 | g)"], []),
    ("y~x+(1|g)", "y", "x", ["(1 | g)"], []),
    ("  y   ~   x   +   ( 1  |  g )  ", "y", "x", ["(1 | g)"], []),
    ("y ~ x + (x|g)", "y", "x", ["(1 + x | g)"], []),
    ("y ~ x + (1 + x|g)", "y", "x", ["(1 + x | g)"], []),
    ("y ~ x + (0 + x|g)", "y", "x", ["(0 + x | g)"], []),
    ("y ~ x + (-1 + x|g)", "y", "x", ["(0 + x | g)"], []),
    ("y ~ x + (x - 1|g)", "y", "x", ["(0 + x | g)"], []),
    ("y ~ x + (x + 0|g)", "y", "x", ["(0 + x | g)"], []),
    ("y ~ x + (x||g)", "y", "x", ["(1 + x || g)"], []),
    ("y ~ x + (1 + x + z || g)", "y", "x", ["(1 + x + z || g)"], []),
    ("y ~ x + (0 + x || g)", "y", "x", ["(0 + x || g)"], []),
    ("y ~ (1|a/b)", "y", "1", ["(1 | b:a)", "(1 | a)"], []),
    ("y ~ (1|a/b/c)", "y", "1", ["(1 | c:b:a)", "(1 | b:a)", "(1 | a)"], []),
    ("y ~ (x|a/b)", "y", "1", ["(1 + x | b:a)", "(1 + x | a)"], []),
    ("y ~ (1|a:b)", "y", "1", ["(1 | a:b)"], []),
    ("y ~ (1|a:b/c)", "y", "1", ["(1 | c:a:b)", "(1 | a:b)"], []),
    ("strength ~ 1 + (1 | batch/cask)", "strength", "1", ["(1 | cask:batch)", "(1 | batch)"], []),
    ("y ~ (1|g) + (0 + x|g)", "y", "1", ["(1 | g)", "(0 + x | g)"], []),
    ("y ~ x + (1|g) + (1|h)", "y", "x", ["(1 | g)", "(1 | h)"], []),
    (
        "y ~ service + (1|s) + (1|d) + (1|dept)",
        "y",
        "service",
        ["(1 | s)", "(1 | d)", "(1 | dept)"],
        [],
    ),
    ("y ~ (1|g) + x", "y", "x", ["(1 | g)"], []),
    ("y ~ (1|g) + x + z", "y", "x + z", ["(1 | g)"], []),
    ("y ~ a*b + (1|g)", "y", "a*b", ["(1 | g)"], []),
    ("y ~ a:b + (1|g)", "y", "a:b", ["(1 | g)"], []),
    ("y ~ a + b + a:b + (1|g)", "y", "a + b + a:b", ["(1 | g)"], []),
    ("y ~ C(x) + (1|g)", "y", "C(x)", ["(1 | g)"], []),
    ("y ~ np.log(x) + (1|g)", "y", "np.log(x)", ["(1 | g)"], []),
    ("y ~ I(x ** 2) + (1|g)", "y", "I(x ** 2)", ["(1 | g)"], []),
    ("y ~ C(f, Treatment('b')) + (1|g)", "y", "C(f, Treatment('b'))", ["(1 | g)"], []),
    ("y ~ 0 + x + (1|g)", "y", "0 + x", ["(1 | g)"], []),
    ("y ~ x - 1 + (1|g)", "y", "x - 1", ["(1 | g)"], []),
    ("y ~ -1 + x + (1|g)", "y", "1 - 1 + x", ["(1 | g)"], []),
    ("y ~ (1|g) - 1", "y", "1 - 1", ["(1 | g)"], []),
    ("y ~ x + offset(log(t)) + (1|g)", "y", "x", ["(1 | g)"], ["log(t)"]),
    ("y ~ offset(o) + (1|g)", "y", "1", ["(1 | g)"], ["o"]),
    ("np.log(y) ~ x + (1|g)", "np.log(y)", "x", ["(1 | g)"], []),
    ("Reaction ~ Days + (Days | Subject)", "Reaction", "Days", ["(1 + Days | Subject)"], []),
    ("Reaction ~ Days + (Days || Subject)", "Reaction", "Days", ["(1 + Days || Subject)"], []),
    ("y ~ (a + b)*c + (1|g)", "y", "(a + b)*c", ["(1 | g)"], []),
    ("y ~ x + (1 + C(f)|g)", "y", "x", ["(1 + C(f) | g)"], []),
    ("y ~ x + (1|`my group`)", "y", "x", ["(1 | my group)"], []),
    ("y ~ x + (1|g.h)", "y", "x", ["(1 | g.h)"], []),
    ("y ~ x + ((1|g))", "y", "x", ["(1 | g)"], []),
]


@pytest.mark.parametrize(
    ("text", "response", "fixed", "random", "offsets"), VALID, ids=[v[0] for v in VALID]
)
def test_parse_valid(text, response, fixed, random, offsets):
    f = parse_formula(text)
    assert f.response.expr == response
    assert f.fixed == fixed
    assert [str(t) for t in f.random] == random
    assert list(f.offsets) == offsets


def test_cbind_response():
    f = parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert f.response.cbind == ("incidence", "size - incidence")
    assert f.response.expr == "cbind(incidence, size - incidence)"
    assert [str(t) for t in f.random] == ["(1 | herd)"]


def test_nested_factor_columns_slowest_first():
    f = parse_formula("y ~ (1|batch/cask)")
    assert [t.factors for t in f.random] == [("cask", "batch"), ("batch",)]
    assert [t.group for t in f.random] == ["cask:batch", "batch"]


def test_uncorrelated_flag_and_terms_are_frozen():
    term = parse_formula("y ~ (x||g)").random[0]
    assert term.correlated is False
    assert term.intercept is True and term.covariates == ("x",)
    with pytest.raises(AttributeError):
        term.group = "h"  # type: ignore[misc]


# (formula, start of the message, caret position)
INVALID = [
    ("y ~ x + (1|g", "unbalanced parentheses", 8),
    ("y ~ x + 1|g)", "unbalanced parentheses", 11),
    ("y ~ (x + (1|g)", "unbalanced parentheses", 4),
    ("y ~ x + (|g)", "empty left side of '|'", 9),
    ("y ~ x + (x|)", "random-effects term with no grouping factor", 11),
    ("y ~ x + (x||)", "random-effects term with no grouping factor", 12),
    ("y ~ x + (1|1)", "random-effects term with no grouping factor", 11),
    ("y x + (1|g)", "missing '~'", 11),
    ("y ~ x | g", "'|' outside parentheses", 6),
    ("y | g ~ x", "'|' outside parentheses", 2),
    ("y ~ x + 1 || g", "'||' outside parentheses", 10),
    ("y ~ x @ z", "unknown operator '@'", 6),
    ("y ~ x $ z + (1|g)", "unknown operator '$'", 6),
    ("y ~ x + (1|g) & z", "unknown operator '&'", 14),
    ("y ~ x ~ z", "a formula has exactly one '~'", 6),
    ("~ x + (1|g)", "missing response", 0),
    ("y ~ ", "nothing on the right", 4),
    ("", "empty formula", 0),
    ("y ~ x + ", "missing term after '+'", 7),
    ("y ~ x + + z", "missing term after '+'", 7),
    ("y ~ x - (1|g)", "cannot be removed", 6),
    ("y ~ x * (1|g)", "must stand on its own", 10),
    ("y ~ (1|g|h)", "has one '|'", 8),
    ("y ~ (0|g)", "no columns", 5),
    ("y ~ (1|g+h)", "unexpected '+' in a grouping factor", 8),
    ("y ~ (1|a/)", "grouping factor ends with an operator", 9),
    ("cbind(a) ~ x", "cbind() takes two arguments", 0),
    ("y ~ (1 - x|g)", "only '- 1'", 7),
    ("y ~ x + (1|g) + offset(a, b)", "offset() takes one expression", 16),
]


@pytest.mark.parametrize(
    ("text", "message", "position"), INVALID, ids=[v[0] or "empty" for v in INVALID]
)
def test_parse_errors_point_with_caret(text, message, position):
    with pytest.raises(FormulaSyntaxError) as info:
        parse_formula(text)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, MixedTFError)
    assert message in err.reason, err.reason
    assert err.position == position
    lines = str(err).splitlines()
    assert lines[1] == f"    {text}"
    assert lines[2] == "    " + " " * position + "^"


def test_error_message_coaches():
    with pytest.raises(FormulaSyntaxError, match=r"e\.g\. 'y ~ x \+ \(1 \+ x \| g\)'"):
        parse_formula("y ~ x | g")


def test_non_string_formula():
    with pytest.raises(TypeError, match="formula must be a string"):
        parse_formula(3)  # type: ignore[arg-type]
