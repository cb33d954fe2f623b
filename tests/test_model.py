"""Model compiler: the TFP JointDistribution, its gradients, and the device-chosen gather."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from scipy.stats import multivariate_normal, norm

import mixedtf as mtf
from mixedtf.design import build_design
from mixedtf.model import LevelGather, backend, choose_mode, compile_model


def _tiny():
    rng = np.random.default_rng(5)
    n = 30
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "g": rng.choice(list("abcd"), n),
            "h": rng.choice(list("uvw"), n),
        }
    )


def test_nodes_named_after_terms_and_graph_resolves():
    design = build_design("y ~ service + (1|s) + (1|d) + (1|dept)", mtf.datasets.load("InstEval"))
    cm = compile_model(design, dtype=tf.float32)
    assert cm.nodes == ("b_s", "b_d", "b_dept")
    jd = cm.joint_distribution(cm.initial_params())
    assert dict(jd.resolve_graph()) == {
        "b_s": (),
        "b_d": (),
        "b_dept": (),
        "y": ("b_s", "b_d", "b_dept"),
    }
    draw = jd.sample(seed=(1, 2))
    assert draw["b_dept"].shape == (design.groupings[2].n_levels, 1)
    assert draw["y"].shape == (73421,)


def test_vector_term_is_multivariate_normal(sleepstudy):
    design = build_design("Reaction ~ Days + (Days|Subject)", sleepstudy)
    cm = compile_model(design)
    assert [p.name for p in cm.parameters] == ["beta", "scale_tril_Subject", "sigma"]
    jd = cm.joint_distribution(cm.initial_params())
    assert "MultivariateNormalTriL" in repr(jd.model["b_Subject"].distribution)


def test_complete_data_log_prob_matches_hand_computation():
    design = build_design("y ~ x + (x|g) + (1|h)", _tiny())
    cm = compile_model(design)
    rng = np.random.default_rng(3)
    beta, sigma = np.array([0.3, -0.2]), 0.7
    L = np.array([[0.9, 0.0], [0.4, 0.5]])
    sd_h = 1.3
    b_g = rng.normal(size=(4, 2))
    b_h = rng.normal(size=(3, 1))
    params = {"beta": beta, "scale_tril_g": L, "sd_h": sd_h, "sigma": sigma}
    got = cm.log_prob(params, [tf.constant(b_g[None]), tf.constant(b_h[None])]).numpy()[0]
    g, h = design.groupings
    eta = design.X @ beta + (g.z * b_g[g.codes]).sum(1) + b_h[h.codes, 0]
    expected = (
        norm(eta, sigma).logpdf(design.y).sum()
        + multivariate_normal(np.zeros(2), L @ L.T).logpdf(b_g).sum()
        + norm(0, sd_h).logpdf(b_h).sum()
    )
    assert got == pytest.approx(expected, abs=1e-9)


def test_every_parameter_receives_a_gradient(sleepstudy):
    """The TFP tutorial's bug (tensorflow/probability#1800): its variance components get none."""
    design = build_design("Reaction ~ Days + (Days|Subject) + (1|Subject)", sleepstudy)
    cm = compile_model(design)
    u = cm.unconstrain(cm.initial_params())
    b = [
        tf.random.stateless_normal([2, g.n_levels, g.k], (1, 2), dtype=tf.float64)
        for g in design.groupings
    ]
    with tf.GradientTape() as tape:
        tape.watch(list(u.values()))
        lp = tf.reduce_sum(cm.log_prob(cm.constrain(u), b))
    grads = tape.gradient(lp, u)
    assert set(grads) == {"beta", "scale_tril_Subject", "sd_Subject_1", "sigma"}
    for name, grad in grads.items():
        assert grad is not None, name
        assert np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0), name


def test_gradient_matches_finite_differences():
    design = build_design("y ~ x + (1|g)", _tiny())
    cm = compile_model(design)
    u = cm.unconstrain(cm.initial_params())
    b = [tf.constant(np.random.default_rng(1).normal(size=(1, 4, 1)))]

    def f(log_sigma):
        v = dict(u, sigma=tf.constant(log_sigma, tf.float64))
        return float(cm.log_prob(cm.constrain(v), b).numpy()[0])

    x0 = float(u["sigma"].numpy())
    with tf.GradientTape() as tape:
        tape.watch(u["sigma"])
        lp = cm.log_prob(cm.constrain(u), b)[0]
    grad = float(tape.gradient(lp, u["sigma"]).numpy())
    fd = (f(x0 + 1e-6) - f(x0 - 1e-6)) / 2e-6
    assert grad == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("mode", ["unsorted", "sorted", "onehot"])
def test_gather_forms_give_the_plain_gathers_values_and_gradients(mode):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 7, size=200).astype(np.int32)
    codes[codes == 6] = 5  # the last level unobserved: the sorted form must pad it
    b = tf.constant(rng.normal(size=(3, 7, 2)))
    w = tf.constant(rng.normal(size=(3, 200, 2)))
    gather = LevelGather.build(codes, 7, mode, np.float64, backend.get("tensorflow"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(b)
        ours = tf.reduce_sum(gather(b) * w)
        plain = tf.reduce_sum(tf.gather(b, codes, axis=-2) * w)
    assert float(ours) == pytest.approx(float(plain))
    np.testing.assert_allclose(tape.gradient(ours, b), tape.gradient(plain, b), atol=1e-12)
    # and under XLA
    xla = tf.function(lambda b: tf.gradients(tf.reduce_sum(gather(b) * w), b)[0], jit_compile=True)
    if mode != "sorted":  # segment_sum has no XLA CPU kernel: the sorted form is for GPUs
        np.testing.assert_allclose(xla(b), tape.gradient(plain, b), atol=1e-12)


def test_gather_mode_by_device():
    assert choose_mode("CPU", 14) == "unsorted"
    assert choose_mode("GPU", 14) == "onehot"
    assert choose_mode("GPU", 2972) == "sorted"


def test_public_joint_distribution(sleepstudy):
    model = mtf.MixedLM.from_formula("Reaction ~ Days + (Days|Subject)", sleepstudy)
    jd = model.joint_distribution()
    assert dict(jd.resolve_graph()) == {"b_Subject": (), "y": ("b_Subject",)}
    prior_draw = jd.sample(seed=(3, 4))
    assert prior_draw["b_Subject"].shape == (18, 2) and prior_draw["y"].shape == (180,)
    params = {"beta": [250.0, 10.0], "scale_tril_Subject": [[24.0, 0.0], [0.5, 5.9]], "sigma": 25.6}
    assert float(model.joint_distribution(params).log_prob(prior_draw)) < 0


@pytest.mark.parametrize(
    ("family", "response"),
    [
        ("binomial", lambda rng, n: rng.integers(0, 2, n).astype(float)),
        ("poisson", lambda rng, n: rng.poisson(2.0, n).astype(float)),
        ("negative_binomial", lambda rng, n: rng.poisson(2.0, n).astype(float)),
        (mtf.families.Gamma(link="log"), lambda rng, n: rng.gamma(3.0, 1.0, n)),
        (mtf.families.InverseGaussian(link="log"), lambda rng, n: rng.gamma(3.0, 1.0, n)),
        ("ordinal", lambda rng, n: rng.integers(1, 6, n).astype(float)),
    ],
)
def test_glmm_log_prob_is_the_joint_distributions(family, response):
    # the samplers' fast path (family.log_likelihood) against TFP's own distributions
    rng = np.random.default_rng(7)
    n = 40
    df = pd.DataFrame(
        {"y": response(rng, n), "x": rng.normal(size=n), "g": rng.integers(0, 5, n).astype(str)}
    )
    model = compile_model(mtf.build_design("y ~ x + (1 | g)", df, family), family)
    params = model.constrain(
        {k: v + 0.3 for k, v in model.unconstrain(model.initial_params()).items()}
    )
    b = [tf.constant(rng.normal(size=(3, 5, 1)))]
    fast = model.log_prob(params, b)
    values = {"b_g": b[0], "y": model.y}
    slow = model.joint_distribution(params).log_prob(values)
    np.testing.assert_allclose(fast, slow, rtol=1e-10)
    if family == "ordinal":
        assert "cutpoints" in params and np.all(np.diff(params["cutpoints"].numpy()) > 0)
