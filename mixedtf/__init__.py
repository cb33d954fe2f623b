"""mixedtf: lme4-style mixed-effects models on TensorFlow Probability.

Importing the package, its formula layer or its design builder does not import
TensorFlow; the estimators load it when a fit needs it.
"""

from mixedtf import datasets, errors
from mixedtf.errors import (
    ConvergenceWarning,
    DesignError,
    FamilyError,
    FormulaSyntaxError,
    MissingValuesWarning,
    MixedTFError,
    MixedTFWarning,
    ModelTooLargeError,
    MonteCarloWarning,
    SingularFitWarning,
)

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DesignError",
    "FamilyError",
    "FormulaSyntaxError",
    "MissingValuesWarning",
    "MixedTFError",
    "MixedTFWarning",
    "ModelTooLargeError",
    "MonteCarloWarning",
    "SingularFitWarning",
    "datasets",
    "errors",
]
