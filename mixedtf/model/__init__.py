"""Model compiler: design + family -> TFP JointDistribution (imports TensorFlow).

The persistent XLA compilation cache is switched on first
(:mod:`mixedtf.model.compile_cache`): TensorFlow reads its flags at its first operation."""

from mixedtf.model import compile_cache  # first: it sets TensorFlow's XLA flags
from mixedtf.model.compiler import CompiledModel, compile_model, default_device
from mixedtf.model.family import Likelihood, likelihood_of
from mixedtf.model.gather import LevelGather, choose_mode
from mixedtf.model.parameters import Parameter, node_name, parameter_table, table_frame

__all__ = [
    "CompiledModel",
    "LevelGather",
    "Likelihood",
    "Parameter",
    "choose_mode",
    "compile_cache",
    "compile_model",
    "default_device",
    "likelihood_of",
    "node_name",
    "parameter_table",
    "table_frame",
]
