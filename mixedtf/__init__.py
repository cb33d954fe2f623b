"""mixedtf: lme4-style mixed-effects models on TensorFlow Probability.

Importing the package, its formula layer or its design builder does not import
TensorFlow; the estimators load it when a fit needs it.
"""

from mixedtf import datasets, errors
from mixedtf.design import Design, build_design
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
from mixedtf.formula import parse_formula
from mixedtf.mixedlm import MixedLM, glmer, lmer
from mixedtf.results import anova, load

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "Design",
    "DesignError",
    "FamilyError",
    "FormulaSyntaxError",
    "MissingValuesWarning",
    "MixedLM",
    "MixedTFError",
    "MixedTFWarning",
    "ModelTooLargeError",
    "MonteCarloWarning",
    "SingularFitWarning",
    "anova",
    "build_design",
    "datasets",
    "errors",
    "glmer",
    "lmer",
    "load",
    "parse_formula",
]
