"""The ops of the compiled model and the MCEM kernels on JAX (``backend="jax"``).

Importing this module turns on ``jax_enable_x64`` (the kernels keep float64 statistics and
log densities beside float32 draws) and, unless ``MIXEDTF_CACHE_DIR=none``, JAX's
persistent compilation cache in the user cache directory
(:func:`mixedtf.model.compile_cache.cache_directory`, subfolder ``jax``). It imports no
TensorFlow. The noise is threefry (JAX's), so the draws differ from the TensorFlow
backend's Philox ones: the two agree within Monte Carlo error, not digit for digit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mixedtf.model import compile_cache

jax.config.update("jax_enable_x64", True)

NAME = "jax"
KEEPS_PROGRAMS = True  # jit(program_key=...) keeps the traced program between processes
float32, float64, int32 = np.dtype("float32"), np.dtype("float64"), np.dtype("int32")


def _enable_cache() -> str | None:
    directory = compile_cache.cache_directory()
    if directory is None:
        return None
    directory = directory.parent / "jax"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except (OSError, AttributeError):  # read-only home, or an option this JAX lacks
        return None
    return str(directory)


CACHE = _enable_cache()

# -- creation, dtypes, conversion ------------------------------------------------------
asarray = jnp.asarray
zeros, ones, zeros_like, ones_like, eye = (
    jnp.zeros,
    jnp.ones,
    jnp.zeros_like,
    jnp.ones_like,
    jnp.eye,
)


def cast(x, dtype):
    return jnp.asarray(x).astype(dtype)


def full(shape, value, dtype):
    return jnp.full(shape, value, dtype)


def constant(x, dtype=None):
    return jnp.asarray(x, dtype)


def to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def to_device(tree):
    """The arrays of a pytree on the default device (``device_put``: no per-array
    conversion program, which cost 0.3 s of a warm InstEval fit through ``asarray``)."""
    return jax.device_put(tree)


def shard_rows(tree, axes, n_devices: int):
    """The arrays of ``tree`` on the first ``n_devices`` devices (of the default kind):
    split along their row axis (``axes``: a tree of axes, -1 for none: replicated)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from mixedtf.errors import OptionError

    devices = jax.devices()[:n_devices]
    if len(devices) < n_devices:
        raise OptionError(
            f"devices={n_devices}, but JAX sees {len(jax.devices())}: {jax.devices()}. "
            "On a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N."
        )
    mesh = Mesh(np.array(devices), ("rows",))

    def put(x, axis):
        spec = PartitionSpec() if axis < 0 else PartitionSpec(*([None] * axis), "rows")
        return jax.device_put(x, NamedSharding(mesh, spec))

    return jax.tree_util.tree_map(put, tree, axes)


# -- elementwise -----------------------------------------------------------------------
exp, log, log1p, expm1, sqrt, square, abs = (
    jnp.exp, jnp.log, jnp.log1p, jnp.expm1, jnp.sqrt, jnp.square, jnp.abs,
)  # fmt: skip
rsqrt, sigmoid, lgamma, erfc, atan = (
    lax.rsqrt, jax.nn.sigmoid, jax.scipy.special.gammaln, jax.scipy.special.erfc, jnp.arctan,
)  # fmt: skip


def softplus(x):
    """``log(1 + e^x)`` as ``max(x, 0) + log1p(e^{-|x|})``: on a CPU a quarter of the
    time of ``jax.nn.softplus`` (``logaddexp``, with its infinity handling)."""
    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


maximum, minimum, where, isfinite, logical_or, equal = (
    jnp.maximum, jnp.minimum, jnp.where, jnp.isfinite, jnp.logical_or, jnp.equal,
)  # fmt: skip
log_ndtr = jax.scipy.special.log_ndtr


# -- reductions and shapes -------------------------------------------------------------
def sum(x, axis=None, keepdims=False):
    return jnp.sum(x, axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return jnp.mean(x, axis, keepdims=keepdims)


def min(x, axis=None):
    return jnp.min(x, axis)


reshape, transpose, moveaxis, broadcast_to, tile = (
    jnp.reshape, jnp.transpose, jnp.moveaxis, jnp.broadcast_to, jnp.tile,
)  # fmt: skip


def concat(xs, axis=0):
    return jnp.concatenate(xs, axis)


def stack(xs, axis=0):
    return jnp.stack(xs, axis)


def split(x, sizes):
    return jnp.split(x, np.cumsum(sizes)[:-1].tolist())


def one_hot(index, depth, dtype=None):
    return jax.nn.one_hot(index, depth, dtype=dtype)


def take(x, indices, axis=0):
    return jnp.take(x, indices, axis=axis)


def gather_nd(x, indices):
    return x[tuple(np.asarray(indices).T)]


# -- linear algebra --------------------------------------------------------------------
einsum, inv = partial(jnp.einsum, optimize="optimal"), jnp.linalg.inv


def cholesky(a):
    return jnp.linalg.cholesky(a)


def diag_part(a):
    return jnp.diagonal(a, axis1=-2, axis2=-1)


def diag(v):
    return v[..., :, None] * jnp.eye(v.shape[-1], dtype=v.dtype)


def matmul(a, b, transpose_a=False, transpose_b=False):
    a = jnp.swapaxes(a, -1, -2) if transpose_a else a
    b = jnp.swapaxes(b, -1, -2) if transpose_b else b
    return a @ b


def matvec(a, x, transpose_a=False):
    a = jnp.swapaxes(a, -1, -2) if transpose_a else a
    return jnp.einsum("...ij,...j->...i", a, x)


def triangular_solve(tri, rhs, lower=True, adjoint=False):
    return lax.linalg.triangular_solve(
        tri, rhs, left_side=True, lower=lower, transpose_a=adjoint, conjugate_a=False
    )


def cholesky_solve(chol, rhs):
    y = triangular_solve(chol, rhs, lower=True)
    return triangular_solve(chol, y, lower=True, adjoint=True)


# -- segment sums and the gather of random effects -------------------------------------
def segment_sum(data, segment_ids, num_segments, sorted_ids=False):
    """Sum of ``data``'s rows (first axis) by segment, as one 2-D scatter-add with the ids
    promised in range (they are level codes): on a CPU, InstEval's three terms at 32
    chains took 1.9 ms this way, against 8.1 ms through ``jax.ops.segment_sum`` on
    ``[n, chains, 1]`` with its bounds checks."""
    rows = jnp.reshape(data, (data.shape[0], -1))
    out = jnp.zeros((num_segments, rows.shape[1]), data.dtype)
    out = out.at[segment_ids].add(rows, mode="promise_in_bounds", indices_are_sorted=sorted_ids)
    return jnp.reshape(out, (num_segments, *data.shape[1:]))


def gather_levels(b, codes, scatter: Callable):
    """``b[..., codes, :]`` with the gradient ``scatter(dy)``."""

    @jax.custom_vjp
    def gather(b):
        return jnp.take(b, codes, axis=-2)

    gather.defvjp(lambda b: (gather(b), None), lambda _, dy: (scatter(dy),))
    return gather(b)


# -- derivatives -----------------------------------------------------------------------
def value_and_grad(f: Callable, xs: list) -> tuple[Any, list]:
    def total(xs):
        value = f(xs)
        return jnp.sum(value), value

    (_, value), grads = jax.value_and_grad(total, has_aux=True)(xs)
    return value, grads


def vjp(f: Callable, xs: list) -> tuple[Any, Callable]:
    out, pull = jax.vjp(f, xs)
    return out, lambda cotangent: pull(cotangent)[0]


def diag_hessian(f: Callable, x):
    return jax.grad(lambda x: jnp.sum(jax.grad(f)(x)))(x)


def scores_and_hessian(f: Callable, x):
    """Per-row scores ``[C, d]`` of ``f(x) = sum_c f_c(x_c)`` and the summed Hessian
    ``[d, d]``: the Hessian of ``phi -> f(tile(phi))``, ``d`` forward passes (not ``C d``)."""
    scores = jax.grad(f)(x)
    phi = x[0]
    hess = jax.hessian(lambda p: f(jnp.broadcast_to(p, x.shape)))(phi)
    return scores, hess


# -- control flow, noise, compilation --------------------------------------------------
def fori_loop(n: int, body: Callable, init):
    return lax.fori_loop(0, n, body, init)


def scan(n: int, body: Callable, init, row_size: int, dtype):
    carry, rows = lax.scan(lambda c, i: body(i, c), init, jnp.arange(n))
    return carry, rows.astype(dtype)


def cond(pred, true_fn: Callable, false_fn: Callable):
    return lax.cond(pred, true_fn, false_fn)


def _through_loop(x):
    """``x`` through a loop XLA can neither remove nor fuse across: its trip count is 1
    read from the data (0 for a NaN first entry: the result is ``x`` either way), its
    body not the identity."""
    first = jnp.reshape(x, [-1])[0]
    trips = (first == first).astype(jnp.int32)
    return lax.fori_loop(0, trips, lambda i, v: v + 0.0 * i.astype(v.dtype), x)


@jax.custom_vjp
def computed_once(x):
    """``x`` computed once, its cotangent too (see ``tf_ops.computed_once``)."""
    return _through_loop(x)


computed_once.defvjp(lambda x: (_through_loop(x), None), lambda _, g: (_through_loop(g),))


def normal(seed, counter, size: int, dtype):
    """``size`` standard normals keyed by ``(seed[0], seed[1] + counter)`` (threefry)."""
    key = jax.random.fold_in(jax.random.key(seed[0]), seed[1] + counter)
    return jax.random.normal(key, (size,), dtype)


def jit(fn: Callable, program_key: str | None = None) -> Callable:
    """``fn`` compiled with XLA. With a ``program_key`` (:mod:`mixedtf.model.program_key`)
    and the cache on, the traced and lowered program is kept under that key and the
    arguments' shapes (``jax.export``), so a later process skips tracing and lowering
    and XLA's cache serves the compiled program; the callable's ``origin`` then says
    ``"exported"`` (kept now) or ``"loaded"``."""
    if program_key is None or CACHE is None:
        return jax.jit(fn)
    return _KeptProgram(fn, program_key)


class _KeptProgram:
    """A ``jax.jit`` whose lowered program is kept in ``<cache>/programs`` (see :func:`jit`)."""

    def __init__(self, fn: Callable, key: str) -> None:
        self.fn, self.key, self.origin = fn, key, None
        self._call: Callable | None = None

    def __call__(self, *args):
        if self._call is None:
            self._call = self._program(args)
        return self._call(*args)

    def _program(self, args) -> Callable:
        from jax import export  # only where programs are kept

        leaves, tree = jax.tree_util.tree_flatten(args)
        shapes = [(tuple(np.shape(x)), str(jnp.result_type(x))) for x in leaves]
        platform = jax.default_backend()
        placed = {d.platform for x in leaves if isinstance(x, jax.Array) for d in x.devices()}
        if placed - {platform}:  # e.g. device="CPU" beside a GPU: export lowers for the default
            self.origin = "traced"
            return jax.jit(self.fn)
        config = sorted((k, str(v)) for k, v in jax.config.values.items())  # x64, PRNG...
        text = f"{self.key}|{tree}|{shapes}|{jax.__version__}|{platform}|{config}"
        path = (
            Path(CACHE).parent
            / "programs"
            / f"{hashlib.blake2b(text.encode(), digest_size=20).hexdigest()}.bin"
        )
        try:
            exported = export.deserialize(bytearray(path.read_bytes()))
            self.origin = "loaded"
        except Exception:  # absent, unreadable or from another JAX: trace it again
            exported = export.export(jax.jit(self.fn))(*args)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(exported.serialize())
                os.replace(tmp, path)
            except OSError:
                pass
            self.origin = "exported"
        return jax.jit(exported.call)


def default_device(requested: str | None = None) -> str:
    if requested:
        return str(requested).upper()
    return "GPU" if any(d.platform == "gpu" for d in jax.devices()) else "CPU"


@contextlib.contextmanager
def device_scope(device: str) -> Iterator[None]:
    devices = jax.devices("gpu" if device.upper() == "GPU" else "cpu")
    with jax.default_device(devices[0]):
        yield


def set_deterministic() -> None:
    """JAX's XLA programs are deterministic on a CPU; on a GPU the scatters are sorted
    (the device-chosen gathers), so nothing to switch."""


def versions() -> dict[str, str]:
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}


def tfp_module():
    """TensorFlow Probability's JAX substrate (the inspectable JointDistribution). It
    imports with a TFP built for this JAX (tfp-nightly for JAX >= 0.7; TFP 0.25 does not)."""
    from mixedtf.errors import MixedTFError

    try:
        from tensorflow_probability.substrates import jax as tfp

        tfp.distributions.Normal(0.0, 1.0).log_prob(0.0)  # fails at use with a newer JAX
    except Exception as err:  # ImportError, or the substrate failing against this JAX
        raise MixedTFError(
            f"the JointDistribution on the JAX backend needs TensorFlow Probability's JAX "
            f"substrate, which did not import with JAX {jax.__version__} ({type(err).__name__}: "
            f"{str(err)[:200]}). Install a TFP built for this JAX (tfp-nightly), or compile "
            "the model with backend='tensorflow' to inspect it; fitting does not need it."
        ) from err
    return tfp


def compile_cache_directory() -> str | None:
    return CACHE
