"""Parser for lme4 model formulas.

``parse_formula("y ~ x + (1 + x | g) + (1 | a/b)")`` splits the right-hand side at
top-level ``+``/``-`` into fixed pieces (handed to formulaic as text) and random
terms ``(lhs | group)``. Nesting follows lme4's ``expandSlash``: ``(1 | a/b)`` becomes
``(1 | b:a) + (1 | a)``; ``(x || g)`` stays one term marked uncorrelated, which the
design builder splits as lme4's ``expandDoubleVerts``: one block per formula term.
"""

from __future__ import annotations

from mixedtf.errors import FormulaSyntaxError
from mixedtf.formula.rsyntax import to_python
from mixedtf.formula.terms import Formula, RandomTerm, Response
from mixedtf.formula.tokens import Token, python_text, source_text, split_top_level, tokenize

_BARS = ("|", "||")


def parse_formula(text: str) -> Formula:
    """Parse an lme4 formula into a frozen :class:`Formula`.

    Raises:
        FormulaSyntaxError: with a caret under the offending position.
    """
    if not isinstance(text, str):
        raise TypeError(
            f"formula must be a string such as 'y ~ x + (1 | g)'; got {type(text).__name__}"
        )
    if not text.strip():
        raise FormulaSyntaxError(
            "empty formula", text, 0, "Write a formula such as 'y ~ x + (1 | g)'."
        )
    tokens = tokenize(text)
    tildes = [i for i, t in enumerate(tokens) if t.kind == "OP" and t.text == "~"]
    if not tildes:
        raise FormulaSyntaxError(
            "missing '~' between the response and the predictors",
            text,
            len(text),
            "Write 'response ~ predictors', e.g. 'y ~ x + (1 | g)'.",
        )
    if len(tildes) > 1:
        raise FormulaSyntaxError("a formula has exactly one '~'", text, tokens[tildes[1]].start)
    tilde = tokens[tildes[0]]
    lhs, rhs = tokens[: tildes[0]], tokens[tildes[0] + 1 :]
    if not lhs:
        raise FormulaSyntaxError(
            "missing response on the left of '~'",
            text,
            tilde.start,
            "mixedtf fits models: name the response, e.g. 'y ~ x + (1 | g)'.",
        )
    if not rhs:
        raise FormulaSyntaxError(
            "nothing on the right of '~'",
            text,
            len(text),
            "Write '~ 1' for an intercept-only model.",
        )
    response = _parse_response(text, lhs)
    fixed, random, offsets = _parse_rhs(text, rhs)
    return Formula(
        text=text, response=response, fixed=fixed, random=tuple(random), offsets=tuple(offsets)
    )


def _first_bar(tokens: list[Token], depth_wanted: int | None = 0) -> Token | None:
    """The first ``|``/``||`` token at paren depth ``depth_wanted`` (any depth if None)."""
    depth = 0
    for tok in tokens:
        if tok.kind == "LPAREN":
            depth += 1
        elif tok.kind == "RPAREN":
            depth -= 1
        elif (
            tok.kind == "OP"
            and tok.text in _BARS
            and (depth_wanted is None or depth == depth_wanted)
        ):
            return tok
    return None


def _bar_outside(text: str, bar: Token) -> FormulaSyntaxError:
    return FormulaSyntaxError(
        f"'{bar.text}' outside parentheses",
        text,
        bar.start,
        "A random-effects term goes in its own parentheses, e.g. 'y ~ x + (1 + x | g)'.",
    )


def _split_call_args(call: str) -> list[str]:
    """Top-level comma-separated arguments of ``name(args)`` (strings and brackets respected)."""
    inner = call[call.index("(") + 1 : -1]
    args, depth, start, i = [], 0, 0, 0
    while i < len(inner):
        c = inner[i]
        if c in "'\"":
            close = inner.find(c, i + 1)
            i = len(inner) if close < 0 else close + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(inner[start:i].strip())
            start = i + 1
        i += 1
    args.append(inner[start:].strip())
    return args


def _parse_response(text: str, lhs: list[Token]) -> Response:
    bar = _first_bar(lhs, None)
    if bar is not None:
        raise _bar_outside(text, bar)
    if (
        len(lhs) == 1
        and lhs[0].kind == "CALL"
        and lhs[0].text.replace(" ", "").startswith("cbind(")
    ):
        args = [to_python(a, text, lhs[0].start) for a in _split_call_args(lhs[0].text)]
        if len(args) != 2 or not all(args):
            raise FormulaSyntaxError(
                f"cbind() takes two arguments (successes, failures); got {len(args)}",
                text,
                lhs[0].start,
                "For a binomial response write 'cbind(successes, failures) ~ ...'.",
            )
        expr = f"cbind({args[0]}, {args[1]})"
        return Response(expr=expr, cbind=(args[0], args[1]))
    return Response(expr=python_text(text, lhs))


def _parse_rhs(text: str, rhs: list[Token]) -> tuple[str, list[RandomTerm], list[str]]:
    fixed_parts: list[tuple[str, str]] = []
    random: list[RandomTerm] = []
    offsets: list[str] = []
    pieces = split_top_level(rhs, ("+", "-"))
    for index, (op, toks) in enumerate(pieces):
        sign = op.text if op is not None else "+"
        if not toks:
            if index == 0 and len(pieces) > 1:  # leading sign, as in "~ -1 + x"
                continue
            where = op.end if op is not None else rhs[0].start
            raise FormulaSyntaxError(
                f"missing term after '{sign}'",
                text,
                where,
                "Remove the stray operator or add a term.",
            )
        term_toks = _random_term_tokens(toks)
        if term_toks is not None:
            if sign == "-":
                raise FormulaSyntaxError(
                    "a random-effects term cannot be removed with '-'", text, op.start if op else 0
                )
            random.extend(_parse_random_term(text, term_toks))
            continue
        bar = _first_bar(toks, 0)
        if bar is not None:
            raise _bar_outside(text, bar)
        nested_bar = _first_bar(toks, None)
        if nested_bar is not None:
            raise FormulaSyntaxError(
                "a random-effects term must stand on its own, added with '+'",
                text,
                nested_bar.start,
                "Write 'y ~ x + (1 | g)', not products or functions of '(1 | g)'.",
            )
        if len(toks) == 1 and toks[0].kind == "CALL" and toks[0].text.startswith("offset("):
            args = _split_call_args(toks[0].text)
            if sign == "-" or len(args) != 1 or not args[0]:
                raise FormulaSyntaxError(
                    "offset() takes one expression and is added with '+'", text, toks[0].start
                )
            offsets.append(to_python(args[0], text, toks[0].start))
            continue
        fixed_parts.append((sign, python_text(text, toks)))
    return _join_fixed(fixed_parts), random, offsets


def _join_fixed(parts: list[tuple[str, str]]) -> str:
    if not parts:
        return "1"
    out = ""
    for sign, piece in parts:
        out += f" {sign} {piece}" if out else (piece if sign == "+" else f"1 - {piece}")
    return out


def _wrapped(toks: list[Token]) -> bool:
    """True when the first '(' of ``toks`` closes at the last token."""
    if len(toks) < 2 or toks[0].kind != "LPAREN" or toks[-1].kind != "RPAREN":
        return False
    depth = 0
    for i, tok in enumerate(toks):
        if tok.kind == "LPAREN":
            depth += 1
        elif tok.kind == "RPAREN":
            depth -= 1
            if depth == 0 and i != len(toks) - 1:
                return False  # "(a) * (b)": the first parenthesis closes early
    return True


def _random_term_tokens(toks: list[Token]) -> list[Token] | None:
    """``( ... | ... )`` with redundant outer parentheses removed, or None if not a random term."""
    while _wrapped(toks) and _wrapped(toks[1:-1]):
        toks = toks[1:-1]
    return toks if _wrapped(toks) and _first_bar(toks[1:-1], 0) is not None else None


def _parse_random_term(text: str, toks: list[Token]) -> list[RandomTerm]:
    inner = toks[1:-1]
    bars = [t for t in inner if t.kind == "OP" and t.text in _BARS]
    bar = _first_bar(inner, 0)
    assert bar is not None  # guaranteed by _random_term_tokens
    if len(bars) > 1:
        raise FormulaSyntaxError(
            "a random-effects term has one '|'", text, bars[1].start, "Split it into two terms."
        )
    cut = inner.index(bar)
    lhs, rhs = inner[:cut], inner[cut + 1 :]
    if not lhs:
        raise FormulaSyntaxError(
            f"empty left side of '{bar.text}'",
            text,
            bar.start,
            "Write (1 | g) for a random intercept or (x | g) for intercept and slope.",
        )
    if not rhs:
        raise FormulaSyntaxError(
            f"random-effects term with no grouping factor after '{bar.text}'",
            text,
            bar.end,
            "Name the grouping column, e.g. (1 | subject).",
        )
    intercept, covariates = _parse_random_lhs(text, lhs)
    source = source_text(text, toks)
    return [
        RandomTerm(intercept, covariates, ":".join(names), names, bar.text == "|", source)
        for names in _parse_grouping(text, rhs)
    ]


def _parse_random_lhs(text: str, lhs: list[Token]) -> tuple[bool, tuple[str, ...]]:
    intercept = True
    covariates: list[str] = []
    pieces = split_top_level(lhs, ("+", "-"))
    for index, (op, toks) in enumerate(pieces):
        sign = op.text if op is not None else "+"
        if not toks:
            if index == 0 and len(pieces) > 1:
                continue
            where = op.end if op is not None else lhs[0].start
            raise FormulaSyntaxError(f"missing term after '{sign}'", text, where)
        piece = python_text(text, toks)
        if piece in ("0", "1") and len(toks) == 1:
            intercept = (piece == "1") == (sign == "+")
        elif sign == "-":
            raise FormulaSyntaxError(
                "only '- 1' (no intercept) may be removed on the left of '|'", text, op.start
            )
        else:
            covariates.append(piece)
    if not intercept and not covariates:
        raise FormulaSyntaxError(
            "random-effects term with no columns",
            text,
            lhs[0].start,
            "Write (1 | g) or (0 + x | g).",
        )
    return intercept, tuple(covariates)


def _parse_grouping(text: str, rhs: list[Token]) -> list[tuple[str, ...]]:
    """Grouping factors of ``a``, ``a:b`` or ``a/b/c``, deepest nesting first (lme4 order)."""
    components: list[list[str]] = [[]]
    expect_name = True
    for tok in rhs:
        if tok.kind == "NAME" and expect_name:
            components[-1].append(tok.text.strip("`"))
            expect_name = False
        elif tok.kind == "OP" and tok.text in ("/", ":") and not expect_name:
            if tok.text == "/":
                components.append([])
            expect_name = True
        elif tok.kind == "NUMBER":
            raise FormulaSyntaxError(
                f"random-effects term with no grouping factor: '{tok.text}' is a number",
                text,
                tok.start,
                "The right of '|' names a grouping column, e.g. (1 | subject).",
            )
        else:
            raise FormulaSyntaxError(
                f"unexpected {tok.text!r} in a grouping factor",
                text,
                tok.start,
                "A grouping factor is a column g, an interaction a:b, or a nesting a/b.",
            )
    if expect_name:
        raise FormulaSyntaxError("grouping factor ends with an operator", text, rhs[-1].end)
    factors = []
    for depth in range(len(components), 0, -1):
        names: list[str] = []
        for comp in reversed(components[:depth]):
            names.extend(comp)
        factors.append(tuple(names))
    return factors
