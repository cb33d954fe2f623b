"""Sums over millions of rows in float32 kernels (mixedtf.model.reductions) and the
float64 sampler target built on them (CompiledModel.log_prob64)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import mixedtf as mtf
from mixedtf.model import compile_model
from mixedtf.model.backend import tf_ops
from mixedtf.model.reductions import precise_sum


def test_precise_sum_of_millions_of_float32_terms():
    x = np.random.default_rng(0).normal(1.0, 1.0, (2, 3_000_001)).astype(np.float32)
    exact = x.astype(np.float64).sum(-1)
    got = tf.function(lambda t: precise_sum(tf_ops, t), jit_compile=True)(tf.constant(x)).numpy()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, exact, rtol=1e-8)  # a plain XLA float32 sum: ~6e-6
    np.testing.assert_allclose(
        precise_sum(tf_ops, tf.constant(x.T), axis=0).numpy(), exact, rtol=1e-8
    )
    short = tf.constant([1.0, 2.0], tf.float32)
    assert precise_sum(tf_ops, short).numpy() == 3.0


def test_log_prob64_is_the_joint_log_density(sleepstudy):
    # the samplers' float64 target equals the compiled model's log_prob (float64 model),
    # for a vector term (sleepstudy) and scalar crossed terms (Penicillin)
    cases = [
        ("Reaction ~ Days + (Days | Subject)", sleepstudy),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", mtf.datasets.load("Penicillin")),
    ]
    rng = np.random.default_rng(1)
    for formula, data in cases:
        design = mtf.MixedLM.from_formula(formula, data).design
        for dtype in (tf.float64, tf.float32):
            model = compile_model(design, dtype=dtype)
            params = model.initial_params()
            effects = [
                tf.constant(rng.normal(0, 3, (4, g.n_levels, g.k)), dtype) for g in design.groupings
            ]
            want = model.log_prob(params, effects).numpy()
            got = model.log_prob64(params, effects).numpy()
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == tf.float64 else 1e-6)
