"""The ops of the compiled model and the MCEM kernels on TensorFlow (the default backend;
the names and their meaning are those of :mod:`mixedtf.model.backend.jax_ops`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mixedtf.model import compile_cache

compile_cache.enable()  # before TensorFlow's first operation reads its flags
import tensorflow as tf  # noqa: E402

NAME = "tensorflow"
KEEPS_PROGRAMS = False  # jit ignores program_key: only the compiled program is cached
float32, float64, int32 = np.dtype("float32"), np.dtype("float64"), np.dtype("int32")

# -- creation, dtypes, conversion ------------------------------------------------------
asarray = tf.convert_to_tensor
zeros, ones, zeros_like, ones_like, eye = tf.zeros, tf.ones, tf.zeros_like, tf.ones_like, tf.eye
cast = tf.cast


def full(shape, value, dtype) -> tf.Tensor:
    return tf.fill(shape, tf.constant(value, dtype))


def constant(x, dtype=None) -> tf.Tensor:
    return tf.constant(x, dtype)


def to_numpy(tree):
    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, tree)


def to_device(tree):
    """Arrays of a pytree on the current device (inside :func:`device_scope`)."""
    return tf.nest.map_structure(tf.convert_to_tensor, tree)


def shard_rows(tree, axes, n_devices: int):
    from mixedtf.errors import OptionError

    raise OptionError("sharding the rows over devices needs backend='jax'.")


# -- elementwise -----------------------------------------------------------------------
exp, log, log1p, expm1, sqrt, square, abs = (
    tf.exp, tf.math.log, tf.math.log1p, tf.math.expm1, tf.sqrt, tf.square, tf.abs,
)  # fmt: skip
rsqrt, softplus, sigmoid, lgamma, erfc, atan = (
    tf.math.rsqrt, tf.math.softplus, tf.math.sigmoid, tf.math.lgamma, tf.math.erfc, tf.math.atan,
)  # fmt: skip
maximum, minimum, where, isfinite, logical_or, equal = (
    tf.maximum, tf.minimum, tf.where, tf.math.is_finite, tf.logical_or, tf.equal,
)  # fmt: skip


def log_ndtr(x: tf.Tensor) -> tf.Tensor:
    """``log Phi(x)``, accurate in both tails."""
    import tensorflow_probability as tfp

    normal = tfp.distributions.Normal(tf.zeros([], x.dtype), tf.ones([], x.dtype))
    return normal.log_cdf(x)


# -- reductions and shapes -------------------------------------------------------------
def sum(x, axis=None, keepdims=False):
    return tf.reduce_sum(x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    return tf.reduce_mean(x, axis, keepdims)


def min(x, axis=None):
    return tf.reduce_min(x, axis)


def reshape(x, shape):
    return tf.reshape(x, shape)


def transpose(x, perm=None):
    return tf.transpose(x, perm)


def concat(xs, axis=0):
    return tf.concat(xs, axis)


def stack(xs, axis=0):
    return tf.stack(xs, axis)


def split(x, sizes):
    return tf.split(x, sizes)


broadcast_to, tile, one_hot = tf.broadcast_to, tf.tile, tf.one_hot


def moveaxis(x, source, destination):
    return tf.experimental.numpy.moveaxis(x, source, destination)


def take(x, indices, axis=0):
    return tf.gather(x, indices, axis=axis)


def gather_nd(x, indices):
    """``x[indices[:, 0], indices[:, 1], ...]``."""
    return tf.gather_nd(x, indices)


# -- linear algebra --------------------------------------------------------------------
einsum, cholesky, inv, diag_part, diag = (
    tf.einsum, tf.linalg.cholesky, tf.linalg.inv, tf.linalg.diag_part, tf.linalg.diag,
)  # fmt: skip


def matmul(a, b, transpose_a=False, transpose_b=False):
    return tf.linalg.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)


def matvec(a, x, transpose_a=False):
    return tf.linalg.matvec(a, x, transpose_a=transpose_a)


def cholesky_solve(chol, rhs):
    return tf.linalg.cholesky_solve(chol, rhs)


def triangular_solve(tri, rhs, lower=True, adjoint=False):
    return tf.linalg.triangular_solve(tri, rhs, lower=lower, adjoint=adjoint)


# -- segment sums and the gather of random effects -------------------------------------
def segment_sum(data, segment_ids, num_segments, sorted_ids=False):
    """Sum of ``data``'s rows (first axis) by segment; ``sorted_ids``: the ids ascend
    (``tf.math.segment_sum``, contention-free on GPUs; no XLA CPU kernel)."""
    if not sorted_ids:
        return tf.math.unsorted_segment_sum(data, segment_ids, num_segments)
    summed = tf.math.segment_sum(data, segment_ids)
    pad = num_segments - tf.shape(summed)[0]  # levels after the last observed one
    return tf.concat([summed, tf.zeros(tf.concat([[pad], tf.shape(summed)[1:]], 0), data.dtype)], 0)


def gather_levels(b, codes, scatter: Callable) -> tf.Tensor:
    """``b[..., codes, :]`` with the gradient ``scatter(dy)`` (a sum of rows into levels)."""

    @tf.custom_gradient
    def gather(b):
        return tf.gather(b, codes, axis=-2), scatter

    return gather(b)


# -- derivatives -----------------------------------------------------------------------
def value_and_grad(f: Callable, xs: list) -> tuple[Any, list]:
    """``f(xs)`` (one value per chain) and the gradient of its sum with respect to ``xs``."""
    with tf.GradientTape() as tape:
        tape.watch(xs)
        value = f(xs)
    return value, tape.gradient(value, xs)


def vjp(f: Callable, xs: list) -> tuple[Any, Callable]:
    """``f(xs)`` and its pullback ``cotangent -> [J_f(xs)' cotangent for each of xs]``."""
    with tf.GradientTape() as tape:
        tape.watch(xs)
        out = f(xs)
    return out, lambda cotangent: tape.gradient(out, xs, output_gradients=cotangent)


def _score(outer: tf.GradientTape, f: Callable, x):
    """``grad f(x)``, recorded on ``outer`` for a second derivative."""
    outer.watch(x)
    with tf.GradientTape() as inner:
        inner.watch(x)
        total = f(x)
    return inner.gradient(total, x)


def diag_hessian(f: Callable, x):
    """``d^2 f / dx_i^2`` of a separable scalar ``f`` (sum of functions of one ``x_i``)."""
    with tf.GradientTape() as outer:
        score = _score(outer, f, x)
    return outer.gradient(score, x)


def scores_and_hessian(f: Callable, x):
    """For ``f(x) = sum_c f_c(x_c)`` over the rows of ``x [C, d]``: the per-row scores
    ``[C, d]`` and ``sum_c`` of the rows' Hessians ``[d, d]``."""
    with tf.GradientTape() as outer:
        scores = _score(outer, f, x)
        summed = tf.reduce_sum(scores, 0)
    hess = tf.reduce_sum(outer.jacobian(summed, x, experimental_use_pfor=True), 1)
    return scores, hess


# -- control flow, noise, compilation --------------------------------------------------
def fori_loop(n: int, body: Callable, init):
    """``carry = body(i, carry)`` for ``i = 0..n-1``."""
    out = tf.while_loop(
        lambda i, *_: i < n, lambda i, c: (i + 1, body(i, c)), (tf.constant(0), init)
    )
    return out[1]


def scan(n: int, body: Callable, init, row_size: int, dtype):
    """``carry, row = body(i, carry)`` for ``i = 0..n-1``; returns the carry and the rows
    stacked ``[n, row_size]``."""
    rows = tf.TensorArray(dtype, size=n, element_shape=[row_size])

    def step(i, carry, rows):
        carry, row = body(i, carry)
        return i + 1, carry, rows.write(i, row)

    _, carry, rows = tf.while_loop(lambda i, *_: i < n, step, (tf.constant(0), init, rows))
    return carry, rows.stack()


def cond(pred, true_fn: Callable, false_fn: Callable):
    return tf.cond(pred, true_fn, false_fn)


def _through_loop(x):
    """``x`` through a loop XLA can neither remove nor fuse across: its trip count is 1
    read from the data (0 for a NaN first entry: the result is ``x`` either way), its
    body not the identity."""
    first = tf.reshape(x, [-1])[0]
    trips = tf.cast(tf.equal(first, first), tf.int32)

    def body(i, v):
        return i + 1, v + 0.0 * tf.cast(i, v.dtype)

    return tf.while_loop(lambda i, v: i < trips, body, (0, x))[1]


@tf.custom_gradient
def computed_once(x):
    """``x``, computed once: XLA fuses a cheap per-row producer (a linear predictor's
    gathers) into each of its consumers and recomputes it there -- the residual of the
    Gibbs sweep in every scatter, the linear predictor and its cotangent in every term's
    scatter of an HMC gradient (2x the gradient's cost on InstEval). Its cotangent is
    computed once too. An optimization barrier does not do this: the CPU compiler drops
    it before fusion."""
    return _through_loop(x), _through_loop


def normal(seed, counter, size: int, dtype):
    """``size`` standard normals from one Philox call keyed by ``(seed[0], seed[1] +
    counter)``. One raw call, not ``fold_in``/``split`` per use: each such op expands to
    ~700 HLO instructions, and they were a third of the XLA compile time."""
    u64 = tf.uint64
    low = tf.cast(tf.bitcast(seed[1] + counter, tf.uint32), u64)
    key = tf.bitwise.bitwise_or(tf.bitwise.left_shift(tf.cast(seed[0], u64), 32), low)
    return tf.raw_ops.StatelessRandomNormalV2(
        shape=[size], key=tf.reshape(key, [1]), counter=tf.zeros([2], u64), alg=1, dtype=dtype
    )


def jit(fn: Callable, program_key: str | None = None) -> Callable:
    """``fn`` compiled once with XLA (arguments: pytrees of arrays). ``program_key`` is
    the JAX backend's (the traced program kept between processes); TensorFlow keeps only
    the compiled one, in its XLA cache."""
    return tf.function(fn, jit_compile=True, reduce_retracing=True, autograph=False)


def default_device(requested: str | None = None) -> str:
    """``requested`` upper-cased, or ``"GPU"`` when TensorFlow sees one, else ``"CPU"``."""
    if requested:
        return str(requested).upper()
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


@contextlib.contextmanager
def device_scope(device: str) -> Iterator[None]:
    with tf.device(f"/{device}:0"):
        yield


def set_deterministic() -> None:
    tf.config.experimental.enable_op_determinism()


def versions() -> dict[str, str]:
    import tensorflow_probability as tfp

    return {"tensorflow": tf.__version__, "tensorflow_probability": tfp.__version__}


def tfp_module():
    """TensorFlow Probability for this backend (the inspectable JointDistribution)."""
    import tensorflow_probability as tfp

    return tfp


def compile_cache_directory() -> str | None:
    return compile_cache.ACTIVE
