"""Results of a fit: numbers (``MixedLMResults``) and fit diagnostics (``FitInfo``)."""

from mixedtf.results.anova import anova
from mixedtf.results.results import AnalyticCheck, FitInfo, MixedLMResults
from mixedtf.results.storage import load_results as load

__all__ = ["AnalyticCheck", "FitInfo", "MixedLMResults", "anova", "load"]
