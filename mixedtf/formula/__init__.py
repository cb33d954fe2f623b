"""lme4 formula syntax: ``parse_formula`` and the frozen term objects. Imports no TensorFlow."""

from mixedtf.formula.parser import parse_formula
from mixedtf.formula.terms import Formula, RandomTerm, Response

__all__ = ["Formula", "RandomTerm", "Response", "parse_formula"]
