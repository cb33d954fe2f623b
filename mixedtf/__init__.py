"""mixedtf: lme4-style mixed-effects models on TensorFlow Probability.

Importing the package, its formula layer or its design builder does not import
TensorFlow; the estimators load it when a fit needs it.
"""

from mixedtf import datasets, errors, families
from mixedtf._version import __version__
from mixedtf.comparison import anova, bootstrap, confint, drop1, profile
from mixedtf.design import Design, build_design
from mixedtf.errors import (
    ConvergenceWarning,
    DesignError,
    FamilyError,
    FormulaSyntaxError,
    MissingValuesWarning,
    MixedTFError,
    MixedTFWarning,
    ModelComparisonError,
    ModelTooLargeError,
    MonteCarloWarning,
    OptionError,
    SingularFitWarning,
)
from mixedtf.formula import parse_formula
from mixedtf.mixedlm import MixedLM, glmer, glmer_nb, lmer
from mixedtf.results import load
from mixedtf.update import refit, update

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
    "ModelComparisonError",
    "ModelTooLargeError",
    "MonteCarloWarning",
    "OptionError",
    "SingularFitWarning",
    "__version__",
    "anova",
    "bootstrap",
    "build_design",
    "confint",
    "datasets",
    "drop1",
    "errors",
    "families",
    "glmer",
    "glmer_nb",
    "lmer",
    "load",
    "parse_formula",
    "profile",
    "refit",
    "update",
]
