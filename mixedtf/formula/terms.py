"""Frozen term objects produced by the lme4 formula parser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Response:
    """The left-hand side.

    ``expr`` is the response expression (a column name or Python code such as
    ``np.log(y)``); for a binomial ``cbind(successes, failures)`` response,
    ``cbind`` holds the two argument expressions and ``expr`` the whole call.
    """

    expr: str
    cbind: tuple[str, str] | None = None


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(lhs | group)`` after nesting is expanded.

    Attributes:
        intercept: whether the term has a random intercept (``1`` implied unless
            ``0 +`` or ``-1`` is given).
        covariates: the remaining left-hand terms, as formulaic term strings.
        group: lme4's name of the grouping factor, e.g. ``"Subject"`` or ``"cask:batch"``.
        factors: the data columns whose interaction forms the grouping factor,
            first one varying slowest (``("cask", "batch")`` for ``cask:batch``).
        correlated: ``False`` for ``||`` terms: one block per formula term (lme4).
        source: the original text of the term, for messages.
    """

    intercept: bool
    covariates: tuple[str, ...]
    group: str
    factors: tuple[str, ...]
    correlated: bool = True
    source: str = ""

    @property
    def lhs_formula(self) -> str:
        """The term's column formula for formulaic, e.g. ``"1 + Days"`` or ``"0 + x"``."""
        parts = ["1" if self.intercept else "0", *self.covariates]
        return " + ".join(parts)

    def __str__(self) -> str:
        bar = "|" if self.correlated else "||"
        return f"({self.lhs_formula} {bar} {self.group})"


@dataclass(frozen=True)
class Formula:
    """A parsed lme4 formula.

    Attributes:
        text: the formula as given.
        response: the left-hand side.
        fixed: the fixed-effects right-hand side in formulaic syntax (``"1"`` when only
            an intercept remains, ``"0"`` when none).
        random: the random terms, nesting ``a/b`` already expanded to ``b:a`` and ``a``.
        offsets: expressions given as ``offset(...)`` in the fixed part.
    """

    text: str
    response: Response
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...] = ()

    @property
    def fixed_formula(self) -> str:
        """The formulaic formula for the fixed part, response included."""
        return f"{self.response.expr} ~ {self.fixed}"

    def __str__(self) -> str:
        rhs = [self.fixed, *(f"offset({o})" for o in self.offsets), *map(str, self.random)]
        return f"{self.response.expr} ~ {' + '.join(rhs)}"
