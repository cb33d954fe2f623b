"""The two array backends run one kernel source: the pieces agree to rounding on the same
inputs (log densities, gradients, working weights, the gather forms, the joint move), the
JAX path imports no TensorFlow, the same seed gives the same fit on each backend, and the
fits of the two backends agree within Monte Carlo error of each other and of the exact (or
Laplace, or lme4) fit: Gaussian, crossed, vector and nested terms (joint moves),
binomial, Poisson and ordinal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from references import reference

import mixedtf as mtf
from mixedtf.design import build_design
from mixedtf.fit.mcem.joint_move import joint_move, nested_pairs, pair_noise_shapes
from mixedtf.model import LevelGather, backend, compile_model

pytest.importorskip("jax")

BACKENDS = ("tensorflow", "jax")


def _frame(response, n: int = 60, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "y": response(rng, n),
            "x": rng.normal(size=n),
            "g": rng.integers(0, 5, n).astype(str),
            "h": rng.integers(0, 3, n).astype(str),
        }
    )


CASES = {
    "gaussian": ("y ~ x + (x | g) + (1 | h)", "gaussian", lambda r, n: r.normal(size=n)),
    "binomial": ("y ~ x + (1 | g)", "binomial", lambda r, n: r.integers(0, 2, n).astype(float)),
    "probit": (
        "y ~ x + (1 | g)",
        mtf.families.Binomial(link="probit"),
        lambda r, n: r.integers(0, 2, n).astype(float),
    ),
    "poisson": ("y ~ x + (1 | g) + (1 | h)", "poisson", lambda r, n: r.poisson(2.0, n) * 1.0),
    "negative_binomial": (
        "y ~ x + (1 | g)",
        "negative_binomial",
        lambda r, n: r.poisson(2.0, n) * 1.0,
    ),
    "gamma": ("y ~ x + (1 | g)", mtf.families.Gamma(link="log"), lambda r, n: r.gamma(3.0, 1.0, n)),
    "ordinal": ("y ~ x + (1 | g)", "ordinal", lambda r, n: r.integers(1, 5, n).astype(float)),
}


def _params(model) -> dict:
    """Parameter values away from the start: beta, SDs, a correlated scale, cutpoints..."""
    out = {}
    for p in model.parameters:
        if p.name == "beta":
            out[p.name] = np.linspace(0.3, -0.2, p.shape[0])
        elif p.name == "cutpoints":
            out[p.name] = np.linspace(-1.0, 1.5, p.shape[0])
        elif p.shape == ():
            out[p.name] = np.array(1.3)
        else:
            out[p.name] = np.array([[0.9, 0.0], [0.3, 0.6]])
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_log_density_gradient_and_weights_agree_across_backends(case):
    formula, family, response = CASES[case]
    design = build_design(formula, _frame(response), family)
    rng = np.random.default_rng(3)
    effects = [rng.normal(0, 0.7, (3, g.n_levels, g.k)) for g in design.groupings]
    out = {}
    for name in BACKENDS:
        model = compile_model(design, family, backend=name)
        o = model.ops
        params = {name: o.constant(value) for name, value in _params(model).items()}
        value, grads = o.value_and_grad(
            lambda bs, m=model, p=params: m.log_prob64(p, bs), [o.constant(b) for b in effects]
        )
        eta = model.linear_predictor(params["beta"], [o.constant(b[:1]) for b in effects])[0]
        weights = model.family.working_weights(eta, params, model.y, model.trials)
        out[name] = [o.to_numpy(value), *o.to_numpy(grads), o.to_numpy(weights)]
        assert out[name][0].shape == (3,) and np.all(np.isfinite(out[name][0]))
    for got, want in zip(out["jax"], out["tensorflow"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["unsorted", "sorted", "onehot"])
def test_jax_gather_forms_give_the_plain_gathers_values_and_gradients(mode):
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 7, size=200).astype(np.int32)
    codes[codes == 6] = 5  # the last level unobserved: the sorted form must leave it 0
    b = jnp.asarray(rng.normal(size=(3, 7, 2)))
    w = jnp.asarray(rng.normal(size=(3, 200, 2)))
    gather = LevelGather.build(codes, 7, mode, np.float64, backend.get("jax"))

    @jax.jit
    def ours(b, arrays):  # the arrays as jit arguments, as the kernels pass them
        return jax.value_and_grad(lambda b: jnp.sum(gather.bind(arrays)(b) * w))(b)

    value, grad = ours(b, gather.arrays)
    plain_value, plain_grad = jax.value_and_grad(lambda b: jnp.sum(b[:, codes, :] * w))(b)
    assert float(value) == pytest.approx(float(plain_value))
    np.testing.assert_allclose(grad, plain_grad, atol=1e-12)


def test_joint_move_is_the_same_on_both_backends():
    rng = np.random.default_rng(8)
    n = 90
    a = rng.choice(list("PQR"), n)
    df = pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "a": a,
            "b": [f"{x}{rng.integers(4)}" for x in a],
        }
    )
    design = build_design("y ~ x + (x|a) + (1|a:b)", df)
    (pair,) = nested_pairs(design.groupings, design.nobs)
    covs = [
        np.array([[0.8, 0.2], [0.2, 0.5]]) if g.k == 2 else np.array([[0.7]])
        for g in design.groupings
    ]
    effects = [rng.normal(size=(5, g.n_levels, g.k)) for g in design.groupings]
    noise = [rng.normal(size=s) for s in pair_noise_shapes(pair, design.groupings, 5)]
    A = []
    for g in design.groupings:
        acc = np.zeros((g.n_levels, g.k, g.k))
        np.add.at(acc, g.codes, g.z[:, :, None] * g.z[:, None, :])
        A.append(acc)
    out = {}
    for name in BACKENDS:
        model = compile_model(design, backend=name)
        o = model.ops

        def c(x, o=o):
            return o.constant(np.asarray(x, np.float64))

        new, mean_a, var_a = joint_move(
            model,
            pair,
            [c(x) for x in A],
            [c(x) for x in effects],
            c(np.array([0.3, -0.2])),
            [c(x) for x in covs],
            c(0.6),
            [c(z) for z in noise],
        )
        out[name] = o.to_numpy([*new, mean_a, var_a])
    for got, want in zip(out["jax"], out["tensorflow"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", BACKENDS)
def test_computed_once_is_the_identity_with_the_identity_cotangent(name):
    # compiled, as the kernels run it: the value and the gradient of sum(w * x^2) are
    # those without it, and a NaN first entry (no loop trip) passes through unchanged
    o = backend.get(name)
    x = np.array([[0.5, -1.5, 2.0], [3.0, 0.25, -4.0]])
    w = np.array([1.0, 2.0, 3.0])

    def f(v):
        return o.sum(w * o.computed_once(v) ** 2)

    step = o.jit(lambda v: o.value_and_grad(lambda vs: f(vs[0]), [v]))
    value, (grad,) = o.to_numpy(step(o.to_device(x)))
    assert value == pytest.approx(np.sum(w * x**2), rel=1e-12)
    np.testing.assert_allclose(grad, 2 * w * x, rtol=1e-12)
    x[0, 0] = np.nan
    out = o.to_numpy(o.jit(o.computed_once)(o.to_device(x)))
    np.testing.assert_array_equal(out, x)


def test_jax_noise_is_keyed_by_seed_and_iteration():
    o = backend.get("jax")
    seed = o.constant(np.array([3, 11], np.int32))
    one, again = o.normal(seed, 5, 1000, o.float64), o.normal(seed, 5, 1000, o.float64)
    np.testing.assert_array_equal(one, again)
    assert not np.allclose(one, o.normal(seed, 6, 1000, o.float64))
    z = np.asarray(o.normal(seed, 0, 100_000, o.float32))
    assert z.dtype == np.float32 and abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


def test_the_jax_path_imports_no_tensorflow(tmp_path):
    code = (
        "import json, sys, mixedtf as mtf\n"
        "d = mtf.datasets.load('sleepstudy')\n"
        "r = mtf.MixedLM.from_formula('Reaction ~ Days + (1|Subject)', d).fit(backend='jax',\n"
        "    seed=1, progress=False, max_iterations=20, burnin=5, min_averaged=10, check=False)\n"
        "tf = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras'))\n"
        "info = r.fit_info.extra\n"
        "print(json.dumps([tf, info['backend'], info['versions'], info['compile_cache']]))\n"
    )
    env = {**os.environ, "MIXEDTF_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded, name, versions, cache = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [] and name == "jax" and "jax" in versions
    assert cache == str(tmp_path / "jax") and any((tmp_path / "jax").iterdir())


def test_the_joint_distribution_on_jax_needs_tfps_jax_substrate():
    design = build_design(*CASES["binomial"][::2][:1], _frame(CASES["binomial"][2]), "binomial")
    model = compile_model(design, backend="jax")
    try:
        model.ops.tfp_module()
    except mtf.MixedTFError:  # TFP 0.25 against JAX >= 0.7: refused, saying what to do
        with pytest.raises(mtf.MixedTFError, match="tfp-nightly"):
            model.joint_distribution(_params(model))
    else:
        jd = model.joint_distribution(_params(model))
        assert dict(jd.resolve_graph()) == {"b_g": (), "y": ("b_g",)}


def test_options_name_the_backends():
    with pytest.raises(mtf.OptionError, match=r"backend must be one of \['tensorflow', 'jax'\]"):
        mtf.MixedLM.from_formula(
            "Reaction ~ Days + (1|Subject)", mtf.datasets.load("sleepstudy")
        ).fit(backend="torch")
    with pytest.raises(mtf.OptionError, match="backend must be one of"):
        backend.get("numpy")


# -- whole fits: each backend against the other and against the reference ---------------
def _sds(res) -> np.ndarray:
    return np.concatenate([np.sqrt(np.diag(c)) for c in res.covariances])


def _sd_mcse(res) -> np.ndarray:
    """Monte Carlo s.e. of each SD from its variance's (``se(v) / (2 sd)``)."""
    mcse = res.fit_info.extra["mcse"]
    sds = _sds(res)
    var = [v for k, v in mcse.items() if k.startswith("var:")]
    return np.asarray(var) / (2.0 * sds)


def _beta_mcse(res) -> np.ndarray:
    return np.array([v for k, v in res.fit_info.extra["mcse"].items() if k.startswith("beta:")])


def _agree(fits: dict, sd_floor: float, beta_floor: float) -> None:
    """The two backends' estimates within 4 combined Monte Carlo s.e. (plus a floor: the
    MCEM fixed point moves with the chains' finite number, the same on both backends)."""
    tf_fit, jax_fit = fits["tensorflow"], fits["jax"]
    sd_gap = np.abs(_sds(jax_fit) - _sds(tf_fit))
    sd_err = 4 * np.hypot(_sd_mcse(jax_fit), _sd_mcse(tf_fit)) + sd_floor * _sds(tf_fit)
    assert np.all(sd_gap <= sd_err), (sd_gap, sd_err)
    b_gap = np.abs(jax_fit.fixef().to_numpy() - tf_fit.fixef().to_numpy())
    b_err = 4 * np.hypot(_beta_mcse(jax_fit), _beta_mcse(tf_fit)) + beta_floor * tf_fit.bse()
    assert np.all(b_gap <= b_err), (b_gap, b_err)


def _both(formula, data, family="gaussian", seed=1, **options) -> dict:
    model = mtf.MixedLM.from_formula(formula, data, family=family)
    return {
        name: model.fit(method="mcem", seed=seed, progress=False, backend=name, **options)
        for name in BACKENDS
    }


@pytest.mark.parametrize(
    ("formula", "dataset"),
    [
        ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),  # vector term
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),  # crossed
        ("strength ~ 1 + (1 | batch) + (1 | batch:cask)", "Pastes"),  # nested: joint moves
    ],
)
def test_gaussian_fits_agree_with_each_other_and_exact_ml(formula, dataset):
    data = mtf.datasets.load(dataset)
    fits = _both(formula, data, check=False)
    exact = mtf.MixedLM.from_formula(formula, data).fit(method="ml")
    for res in fits.values():
        assert res.fit_info.converged
        np.testing.assert_allclose(_sds(res), _sds(exact), rtol=0.05)
        assert res.sigma == pytest.approx(exact.sigma, rel=0.02)
        assert np.all(np.abs(res.fixef() - exact.fixef()) < 0.25 * exact.bse())
    _agree(fits, sd_floor=0.02, beta_floor=0.1)
    if dataset == "Pastes":
        assert nested_pairs(fits["jax"].design.groupings, fits["jax"].design.nobs)


def test_binomial_fits_agree_with_each_other_and_glmer():
    cbpp = mtf.datasets.load("cbpp")
    fits = _both("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, "binomial")
    ref = reference("cbpp_binomial_agq25")
    sd = ref["VarCorr_table"][0]["stddev_or_correlation"]
    for res in fits.values():
        for fe in ref["fixed_effects"]:
            assert abs(res.fixef()[fe["term"]] - fe["estimate"]) < 0.25 * fe["std_error"]
        assert _sds(res)[0] == pytest.approx(sd, rel=0.05)
    _agree(fits, sd_floor=0.02, beta_floor=0.1)


def test_same_seed_same_fit_on_jax():
    sleep = mtf.datasets.load("sleepstudy")
    model = mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleep)
    one, two = (
        model.fit(seed=5, progress=False, backend="jax", check=False, max_iterations=60)
        for _ in range(2)
    )
    np.testing.assert_array_equal(one.fixef(), two.fixef())
    np.testing.assert_array_equal(one.covariances[0], two.covariances[0])


@pytest.mark.parametrize("family", ["poisson", pytest.param("ordinal", marks=pytest.mark.slow)])
def test_count_and_ordinal_fits_agree_with_each_other_and_laplace(family):
    from test_glmm_mcem import simulate

    df, _ = simulate(family)
    fits = _both("y ~ x + (1 | g)", df, family, seed=3)
    lap = mtf.MixedLM.from_formula("y ~ x + (1 | g)", df, family=family).fit(method="laplace")
    for res in fits.values():
        assert np.all(np.abs(res.fixef() - lap.fixef()) < 0.25 * lap.bse())
        assert _sds(res)[0] == pytest.approx(_sds(lap)[0], rel=0.05)
        if family == "ordinal":
            np.testing.assert_allclose(res.cutpoints, lap.cutpoints, atol=0.1)
    _agree(fits, sd_floor=0.02, beta_floor=0.1)


# -- rows sharded over devices (JAX) ----------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", BACKENDS)
def test_padding_rows_changes_no_log_density(case, name):
    # the padding that shards rows evenly is masked out of every family's log density, its
    # gradient, and the GLMM M-step's likelihood
    formula, family, response = CASES[case]
    design = build_design(formula, _frame(response, n=61), family)
    model = compile_model(design, family, backend=name)
    padded = model.padded(4)
    assert padded.y.shape == (64,) and int(padded.mask.sum()) == 61
    assert model.padded(1) is model and padded.padded(4).y.shape == (64,)
    o = model.ops
    rng = np.random.default_rng(4)
    effects = [o.constant(rng.normal(0, 0.7, (3, g.n_levels, g.k))) for g in design.groupings]
    params = {k: o.constant(v) for k, v in _params(model).items()}
    out = []
    for m in (model, padded):
        value, grads = o.value_and_grad(lambda bs, m=m: m.log_prob64(params, bs), effects)
        eta = m.linear_predictor(params["beta"], effects)
        plain = m.family.log_likelihood(eta, params, m.y, m.trials, m.mask)
        out.append([o.to_numpy(value), *o.to_numpy(grads), o.to_numpy(plain)])
    for got, want in zip(out[1], out[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


SHARDED = """
import json, warnings
import numpy as np
import mixedtf as mtf
warnings.simplefilter("ignore")
cases = [
    ("Reaction ~ Days + (Days|Subject)", mtf.datasets.load("sleepstudy").iloc[:179], "gaussian"),
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)",
     mtf.datasets.load("cbpp").iloc[:55], "binomial"),
]
out = []
for formula, data, family in cases:
    model = mtf.MixedLM.from_formula(formula, data, family=family)
    kw = dict(seed=3, progress=False, backend="jax", dtype="float64", max_iterations=30,
              burnin=10, min_averaged=10)
    fits = [model.fit(devices=d, **kw) for d in (1, 4)]
    out.append([[list(f.fixef()), f.covariances[0].ravel().tolist(), f.fit_info.extra["devices"]]
                for f in fits])
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow  # a four-device process, ~12 s
def test_rows_sharded_over_four_devices_give_the_one_device_fit():
    # four logical CPU devices; 179 and 55 rows do not divide by 4, so the rows are padded
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    run = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    gaussian, binomial = json.loads(line[7:])
    # the binomial E-step's accept decisions amplify the last bits of the sharded sums
    # (1.6e-4 after 30 iterations of 5 leapfrog steps); a lost all-reduce or a padded row
    # in a sum moves the fit by whole percents
    for (one, four), rtol in ((gaussian, 1e-9), (binomial, 1e-3)):
        assert one[2] == 1 and four[2] == 4
        np.testing.assert_allclose(four[0], one[0], rtol=rtol)  # fixed effects
        np.testing.assert_allclose(four[1], one[1], rtol=rtol)  # covariance


def test_devices_need_the_jax_backend():
    sleep = mtf.datasets.load("sleepstudy")
    with pytest.raises(mtf.OptionError, match="backend='jax'"):
        mtf.MixedLM.from_formula("Reaction ~ Days + (1|Subject)", sleep).fit(devices=2)


@pytest.mark.parametrize("devices", [0, -2, 1.5, "4"])
def test_devices_must_be_a_positive_integer(devices):
    sleep = mtf.datasets.load("sleepstudy")
    model = mtf.MixedLM.from_formula("Reaction ~ Days + (1|Subject)", sleep)
    with pytest.raises(mtf.OptionError, match="devices must be a positive integer"):
        model.fit(backend="jax", devices=devices)


def test_more_devices_than_jax_sees_is_refused_with_the_way_to_make_them():
    import jax

    sleep = mtf.datasets.load("sleepstudy")
    model = mtf.MixedLM.from_formula("Reaction ~ Days + (1|Subject)", sleep)
    too_many = len(jax.devices()) + 1
    with pytest.raises(mtf.OptionError, match="xla_force_host_platform_device_count"):
        model.fit(backend="jax", devices=too_many, progress=False)
