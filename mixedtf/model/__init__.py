"""Model compiler: design + family -> TFP JointDistribution (imports TensorFlow)."""

from mixedtf.model.compiler import CompiledModel, compile_model, default_device
from mixedtf.model.family import Family, Gaussian, get_family
from mixedtf.model.gather import LevelGather, choose_mode
from mixedtf.model.parameters import Parameter, node_name, parameter_table, table_frame

__all__ = [
    "CompiledModel",
    "Family",
    "Gaussian",
    "LevelGather",
    "Parameter",
    "choose_mode",
    "compile_model",
    "default_device",
    "get_family",
    "node_name",
    "parameter_table",
    "table_frame",
]
