"""Tokenizer for lme4 formulas.

A formula is cut into a flat list of :class:`Token` objects that remember their
character offsets, so that every parse error can put a caret under its cause.
A function call such as ``np.log(x)`` or ``C(f, Treatment('b'))`` is one ``CALL``
token: its arguments are Python code that formulaic evaluates, not formula syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from mixedtf.errors import FormulaSyntaxError
from mixedtf.formula.rsyntax import string_end, to_python

TokenKind = Literal["NAME", "NUMBER", "CALL", "OP", "LPAREN", "RPAREN"]

# Longest first, so "||" wins over "|" and "**" over "*".
OPERATORS: tuple[str, ...] = ("%in%", "||", "**", "~", "+", "-", "*", "/", ":", "^", "|")

_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Token:
    """One lexical unit: its kind, its exact text and where it starts and ends."""

    kind: TokenKind
    text: str
    start: int
    end: int


def _call_end(formula: str, open_pos: int) -> int:
    """Index just past the parenthesis matching ``formula[open_pos]`` (Python-aware)."""
    depth = 0
    i = open_pos
    while i < len(formula):
        c = formula[i]
        if c in "'\"":
            j = string_end(formula, i)
            if j < 0:
                raise FormulaSyntaxError("unterminated string", formula, i)
            i = j
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise FormulaSyntaxError(
        "unbalanced parentheses: this '(' is never closed",
        formula,
        open_pos,
        "Add the missing ')'.",
    )


def tokenize(formula: str) -> list[Token]:
    """Cut ``formula`` into tokens; unknown characters raise :class:`FormulaSyntaxError`."""
    tokens: list[Token] = []
    i = 0
    n = len(formula)
    while i < n:
        c = formula[i]
        if c.isspace():
            i += 1
            continue
        if c == "`":
            j = formula.find("`", i + 1)
            if j < 0:
                raise FormulaSyntaxError("unterminated backtick-quoted name", formula, i)
            tokens.append(Token("NAME", formula[i : j + 1], i, j + 1))
            i = j + 1
            continue
        m = _NAME.match(formula, i)
        if m and not (c == "." and i + 1 < n and formula[i + 1].isdigit()):
            j = m.end()
            k = j
            while k < n and formula[k] == " ":
                k += 1
            if k < n and formula[k] == "(":
                end = _call_end(formula, k)
                tokens.append(Token("CALL", formula[i:end], i, end))
                i = end
            else:
                tokens.append(Token("NAME", m.group(), i, j))
                i = j
            continue
        m = _NUMBER.match(formula, i)
        if m:
            tokens.append(Token("NUMBER", m.group(), i, m.end()))
            i = m.end()
            continue
        if c == "(":
            tokens.append(Token("LPAREN", c, i, i + 1))
            i += 1
            continue
        if c == ")":
            tokens.append(Token("RPAREN", c, i, i + 1))
            i += 1
            continue
        op = next((o for o in OPERATORS if formula.startswith(o, i)), None)
        if op is None:
            raise FormulaSyntaxError(
                f"unknown operator {c!r}",
                formula,
                i,
                "A formula uses ~ + - * / : ^ | || and %in%; put other Python code inside a "
                "function call such as I(...).",
            )
        tokens.append(Token("OP", op, i, i + len(op)))
        i += len(op)
    _check_parentheses(formula, tokens)
    return tokens


def _check_parentheses(formula: str, tokens: list[Token]) -> None:
    stack: list[Token] = []
    for tok in tokens:
        if tok.kind == "LPAREN":
            stack.append(tok)
        elif tok.kind == "RPAREN":
            if not stack:
                raise FormulaSyntaxError(
                    "unbalanced parentheses: this ')' has no matching '('",
                    formula,
                    tok.start,
                    "Remove it or add the missing '('.",
                )
            stack.pop()
    if stack:
        raise FormulaSyntaxError(
            "unbalanced parentheses: this '(' is never closed",
            formula,
            stack[-1].start,
            "Add the missing ')'.",
        )


def split_top_level(
    tokens: list[Token], ops: tuple[str, ...]
) -> list[tuple[Token | None, list[Token]]]:
    """Split ``tokens`` at operators in ``ops`` outside parentheses.

    Returns ``(operator token before the piece or None, piece tokens)`` pairs.
    """
    pieces: list[tuple[Token | None, list[Token]]] = []
    current: list[Token] = []
    before: Token | None = None
    depth = 0
    for tok in tokens:
        if tok.kind == "LPAREN":
            depth += 1
        elif tok.kind == "RPAREN":
            depth -= 1
        if depth == 0 and tok.kind == "OP" and tok.text in ops:
            pieces.append((before, current))
            before, current = tok, []
            continue
        current.append(tok)
    pieces.append((before, current))
    return pieces


def source_text(formula: str, tokens: list[Token]) -> str:
    """The exact formula text spanned by ``tokens`` (empty for no tokens)."""
    if not tokens:
        return ""
    return formula[tokens[0].start : tokens[-1].end]


def python_text(formula: str, tokens: list[Token]) -> str:
    """The text spanned by ``tokens`` with R's meaning spelled in Python: each call through
    :func:`mixedtf.formula.rsyntax.to_python`, a column name with a dot quoted."""
    if not tokens:
        return ""
    out, at = [], tokens[0].start
    for tok in tokens:
        out.append(formula[at : tok.start])
        if tok.kind == "CALL" or (
            tok.kind == "NAME" and "." in tok.text and not tok.text.startswith("`")
        ):
            out.append(to_python(tok.text, formula, tok.start))
        else:
            out.append(tok.text)
        at = tok.end
    return "".join(out)
