"""Sums over many rows that stay exact enough in float32 kernels.

A float32 sum of ten million terms accumulates rounding of the order of its own ulp per
addition: at 10M rows a Gaussian log-density (~1e7) has an ulp of 1, which corrupts the
Metropolis test, and the M-step's residual sum of squares lost all its digits (the first
M-step of the 10M-row benchmark returned NaN). :func:`precise_sum` sums blocks of rows in
the input's precision, then the block sums in float64: the error of a block of 4096 terms
stays near float32's epsilon, and there are few blocks.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

BLOCK = 4096


def precise_sum(ops: ModuleType, x: Any, axis: int = -1) -> Any:
    """``sum(x, axis)`` in float64, from float32 sums of blocks of ``BLOCK`` entries (a
    plain float64 sum for short axes and float64 inputs); ``ops`` is the backend."""
    axis = axis % len(x.shape)
    if axis != len(x.shape) - 1:
        x = ops.moveaxis(x, axis, -1)
    n = x.shape[-1]
    if getattr(x.dtype, "name", str(x.dtype)) == "float64" or n is None or n <= BLOCK:
        return ops.sum(ops.cast(x, ops.float64), -1)
    lead = list(x.shape[:-1])
    whole = n - n % BLOCK  # whole blocks, then the rest (slices fuse; padding copied x)
    blocks = ops.reshape(x[..., :whole], [*lead, whole // BLOCK, BLOCK])
    total = ops.sum(ops.cast(ops.sum(blocks, -1), ops.float64), -1)
    if whole < n:
        total = total + ops.cast(ops.sum(x[..., whole:], -1), ops.float64)
    return total


def normal_log_density(
    ops: ModuleType, squares: Any, count: int, log_det: Any, dims: int = 1
) -> Any:
    """``count`` independent ``dims``-variate normals with whitened squares ``squares``
    (summed over all but the last axis) and ``log|scale| = log_det``:
    ``-0.5 sum(squares) - count (log_det + dims log(2 pi) / 2)``, in float64.

    The squares are summed centred, ``sum(squares - dims) + count dims``: terms of mean
    about 0 keep the float32 block sums near ``sqrt(BLOCK)`` in size rather than
    ``BLOCK``, and so their rounding (at 10M rows the sampler differences two such sums)."""
    log_2pi = float(np.log(2.0 * np.pi))
    centred = precise_sum(ops, squares - float(dims)) + ops.cast(count, ops.float64) * dims
    return -0.5 * centred - count * (ops.cast(log_det, ops.float64) + 0.5 * dims * log_2pi)
