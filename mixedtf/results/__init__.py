"""Results of a fit: numbers (``MixedLMResults``), fit diagnostics (``FitInfo``), the MCEM
check (``AnalyticCheck``) and ``load``."""

from mixedtf.results.info import AnalyticCheck, FitInfo
from mixedtf.results.results import MixedLMResults, load

__all__ = ["AnalyticCheck", "FitInfo", "MixedLMResults", "load"]
