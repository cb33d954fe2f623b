"""Design builder: y, X (formulaic) and gather-form grouping specs. Imports no TensorFlow."""

from mixedtf.design.builder import Design, NewData, build_design
from mixedtf.design.grouping import GroupingSpec

__all__ = ["Design", "GroupingSpec", "NewData", "build_design"]
