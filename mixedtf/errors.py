"""Errors and warnings raised by mixedtf.

Every error is a :class:`MixedTFError`; input errors are also :class:`ValueError`,
so ``except ValueError`` keeps working for callers that do not know the package.
Messages say what must hold, what was given, and what to try.
"""

from __future__ import annotations

import warnings

__all__ = [
    "ConvergenceWarning",
    "DesignError",
    "FamilyError",
    "FormulaSyntaxError",
    "MissingValuesWarning",
    "MixedTFError",
    "MixedTFWarning",
    "ModelComparisonError",
    "ModelTooLargeError",
    "MonteCarloWarning",
    "OptionError",
    "SingularFitWarning",
    "warn",
]


class MixedTFError(Exception):
    """Base class of every error raised by mixedtf."""


class FormulaSyntaxError(MixedTFError, ValueError):
    """An lme4 formula that cannot be parsed.

    The message repeats the formula with a caret under the offending position.
    ``formula`` and ``position`` (0-based character offset) are kept as attributes.
    """

    def __init__(self, message: str, formula: str, position: int, hint: str = "") -> None:
        self.formula = formula
        self.position = max(0, min(position, len(formula)))
        self.reason = message
        self.hint = hint
        text = f"{message}\n    {formula}\n    {' ' * self.position}^"
        if hint:
            text += f"\n{hint}"
        super().__init__(text)


class DesignError(MixedTFError, ValueError):
    """The data do not fit the formula (unknown column, bad response, degenerate factor...)."""


class FamilyError(MixedTFError, ValueError):
    """The response does not fit the chosen family (e.g. negative counts for Poisson)."""


class OptionError(MixedTFError, TypeError, ValueError):
    """An option or argument that the chosen method does not take, or a value it cannot use.

    A ``TypeError`` (an unexpected keyword) and a ``ValueError`` (a bad value) both, so
    callers catching either keep working; the message names the option and lists the
    options the method takes.
    """


class ModelComparisonError(MixedTFError, ValueError):
    """Fits that cannot be compared as asked (``anova``): different data, not nested, or REML
    criteria of different fixed effects."""


class ModelTooLargeError(MixedTFError, MemoryError):
    """The exact estimator would need more memory than allowed; use ``method="mcem"``."""


class MixedTFWarning(UserWarning):
    """Base class of every warning issued by mixedtf."""


class MissingValuesWarning(MixedTFWarning):
    """Rows with missing values in a used column were dropped (lme4's ``na.omit``)."""


class ConvergenceWarning(MixedTFWarning):
    """The optimiser or the Monte Carlo EM loop stopped before its convergence criterion held."""


class SingularFitWarning(MixedTFWarning):
    """The fit is on the boundary of the parameter space (lme4's ``isSingular``)."""


class MonteCarloWarning(MixedTFWarning):
    """Monte Carlo error is large: the MCEM estimate is far from the exact optimum."""


def warn(record: list[str], message: str, category: type[Warning], stacklevel: int = 3) -> None:
    """Issue a warning and keep its text in ``record`` (a fit's ``fit_info.extra["warnings"]``),
    so the summary can show it later."""
    record.append(f"{category.__name__}: {message}")
    warnings.warn(message, category, stacklevel=stacklevel + 1)
