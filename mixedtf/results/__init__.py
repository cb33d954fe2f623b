"""Results of a fit: numbers (``MixedLMResults``) and fit diagnostics (``FitInfo``)."""

from mixedtf.results.anova import anova
from mixedtf.results.results import FitInfo, MixedLMResults

__all__ = ["FitInfo", "MixedLMResults", "anova"]
