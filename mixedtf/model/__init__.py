"""Model compiler: design + family -> TFP JointDistribution (imports TensorFlow)."""

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
    "compile_model",
    "default_device",
    "likelihood_of",
    "node_name",
    "parameter_table",
    "table_frame",
]
