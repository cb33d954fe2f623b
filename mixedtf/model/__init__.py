"""Model compiler: design + family -> TFP JointDistribution on an array backend
(:mod:`mixedtf.model.backend`: TensorFlow by default, or JAX). Importing this package
imports no array library; compiling a model imports its backend's."""

from mixedtf.model import backend, compile_cache
from mixedtf.model.compiler import CompiledModel, as_dtype, compile_model, default_device
from mixedtf.model.family import Likelihood, likelihood_of
from mixedtf.model.gather import LevelGather, choose_mode
from mixedtf.model.parameters import Parameter, node_name, parameter_table, table_frame

__all__ = [
    "CompiledModel",
    "LevelGather",
    "Likelihood",
    "Parameter",
    "as_dtype",
    "backend",
    "choose_mode",
    "compile_cache",
    "compile_model",
    "default_device",
    "likelihood_of",
    "node_name",
    "parameter_table",
    "table_frame",
]
