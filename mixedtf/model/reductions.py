"""Sums over many rows that stay exact enough in float32 kernels.

A float32 sum of ten million terms accumulates rounding of the order of its own ulp per
addition: at 10M rows a Gaussian log-density (~1e7) has an ulp of 1, which corrupts the
Metropolis test, and the M-step's residual sum of squares lost all its digits (the first
M-step of the 10M-row benchmark returned NaN). :func:`precise_sum` sums blocks of rows in
the input's precision, then the block sums in float64: the error of a block of 4096 terms
stays near float32's epsilon, and there are few blocks.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

BLOCK = 4096


def precise_sum(x: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """``sum(x, axis)`` in float64, from float32 sums of blocks of ``BLOCK`` entries (a
    plain float64 sum for short axes and float64 inputs)."""
    axis = axis % len(x.shape)
    if axis != len(x.shape) - 1:
        x = tf.experimental.numpy.moveaxis(x, axis, -1)
    n = x.shape[-1]
    if x.dtype == tf.float64 or n is None or n <= BLOCK:
        return tf.reduce_sum(tf.cast(x, tf.float64), -1)
    pad = (-n) % BLOCK
    if pad:
        x = tf.concat([x, tf.zeros(tf.concat([tf.shape(x)[:-1], [pad]], 0), x.dtype)], -1)
    blocks = tf.reshape(x, tf.concat([tf.shape(x)[:-1], [(n + pad) // BLOCK, BLOCK]], 0))
    return tf.reduce_sum(tf.cast(tf.reduce_sum(blocks, -1), tf.float64), -1)


def normal_log_density(
    squares: tf.Tensor, count: int, log_det: tf.Tensor, dims: int = 1
) -> tf.Tensor:
    """``count`` independent ``dims``-variate normals with whitened squares ``squares``
    (summed over all but the last axis) and ``log|scale| = log_det``:
    ``-0.5 sum(squares) - count (log_det + dims log(2 pi) / 2)``, in float64."""
    log_2pi = tf.constant(np.log(2.0 * np.pi), tf.float64)
    return -0.5 * precise_sum(squares) - count * (
        tf.cast(log_det, tf.float64) + 0.5 * dims * log_2pi
    )
