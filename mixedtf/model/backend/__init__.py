"""The array backends of the compiled model and the MCEM kernels: one kernel source over a
small ops module, implemented twice.

* ``"tensorflow"`` (default): :mod:`~mixedtf.model.backend.tf_ops`, XLA through
  ``tf.function(jit_compile=True)``, Philox noise;
* ``"jax"`` (``pip install mixedtf[jax]``): :mod:`~mixedtf.model.backend.jax_ops`,
  ``jax.jit``, threefry noise, float64 through ``jax_enable_x64``. Nothing on this path
  imports TensorFlow.

Both modules define the same names (numpy's spelling where numpy has one): dtypes,
creation, elementwise maths, reductions and shapes, ``einsum`` and the small dense linear
algebra, segment sums, the gather of random effects with its device-chosen gradient
(``gather_levels``), derivatives (``value_and_grad``, ``vjp``, ``diag_hessian``,
``scores_and_hessian``), loops (``fori_loop``, ``scan``, ``cond``), the one noise call
(``normal``), ``jit``, device and conversion helpers. The kernels take the module as
``ops`` and never import either array library.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mixedtf.errors import OptionError

BACKENDS = ("tensorflow", "jax")
_MODULES = {"tensorflow": "tf_ops", "jax": "jax_ops"}


def get(name: str | ModuleType | None = None) -> ModuleType:
    """The ops module of backend ``name`` (default ``"tensorflow"``); an ops module is
    returned as it is."""
    if isinstance(name, ModuleType):
        return name
    key = "tensorflow" if name is None else str(name).lower()
    key = {"tf": "tensorflow"}.get(key, key)
    if key not in _MODULES:
        raise OptionError(
            f"backend must be one of {list(BACKENDS)}; got {name!r}. The JAX backend needs "
            "`pip install mixedtf[jax]`."
        )
    try:
        return importlib.import_module(f"mixedtf.model.backend.{_MODULES[key]}")
    except ImportError as err:  # the library itself is missing
        raise OptionError(
            f"backend={key!r} needs its array library, which did not import ({err}). "
            f"Install it (`pip install mixedtf[{'jax' if key == 'jax' else 'tf'}]`) or use "
            f"backend={'tensorflow' if key == 'jax' else 'jax'!r}."
        ) from err
