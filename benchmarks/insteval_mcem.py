"""Monte Carlo EM on the full InstEval, next to the exact ML fit and the TFP tutorial's schedule.

    python benchmarks/insteval_mcem.py [--seeds 1 2 3] [--skip-tutorial]

For ``y ~ service + (1|s) + (1|d) + (1|dept)`` prints, per seed: the wall time of the whole
``fit()`` and the compile time, each SD and fixed effect next to the exact ML value with
its Monte Carlo standard error, the log-likelihood gap, peak memory and device. Then it
runs the TFP "Linear Mixed Effects Models" tutorial's schedule in the same process as the
peer -- float32; intercept, service and the three log-SDs as parameters; residual scale
fixed at 1; all starting at 0 / SD 1; HMC step 0.015 with 3 leapfrog steps; 1000 warm-up
steps, then 1500 iterations of 5 HMC steps + 1 Adam step (learning rate 0.01) -- with the
gradient flowing to the SDs (the tutorial's own code gives them none, TFP issue #1800),
and prints how far it ends from the exact ML fit of the same fixed-scale model.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from scipy.optimize import minimize

import mixedtf as mtf
from mixedtf.fit import marginal_loglik
from mixedtf.linalg import CrossProducts, factorize, theta_from_factors

FORMULA = "y ~ service + (1|s) + (1|d) + (1|dept)"


def run_mcem(df, exact, seed: int, options: dict) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mtf.MixedLM.from_formula(FORMULA, df).fit(seed=seed, progress=False, **options)
    wall = time.perf_counter() - t0
    info = res.fit_info
    print(
        f"\nseed {seed}: fit() {wall:.1f} s (first chunk incl. XLA compile {info.extra['compile_time']:.1f} s), "
        f"{info.iterations} iterations x {info.extra['chains']} chains, {info.message}, device {info.device}, "
        f"acceptance {info.extra['acceptance']:.2f}"
    )
    mc = info.extra["mcse"]
    rows = []
    for name, est, ref, se in zip(
        res.fixef().index, res.fixef(), exact.fixef(), exact.bse(), strict=True
    ):
        rows.append((f"beta {name}", est, ref, (est - ref) / se, "SE", mc[f"beta:{name}"] / se))
    for ours, theirs in zip(res.varcorr().itertuples(), exact.varcorr().itertuples(), strict=True):
        key = "sigma2" if ours.grp == "Residual" else f"var:{ours.grp}:{ours.var1}"
        sd_mcse = mc[key] / (2 * ours.sdcor)
        rows.append(
            (
                f"SD {ours.grp}",
                ours.sdcor,
                theirs.sdcor,
                ours.sdcor / theirs.sdcor - 1,
                "rel",
                sd_mcse / ours.sdcor,
            )
        )
    print(f"  {'parameter':20s} {'mcem':>10s} {'exact ML':>10s} {'difference':>12s}   MCSE")
    for name, est, ref, diff, unit, m in rows:
        shown = f"{diff:+.2f} SE" if unit == "SE" else f"{100 * diff:+.2f} %"
        mshown = f"{m:.3f} SE" if unit == "SE" else f"{100 * m:.2f} %"
        print(f"  {name:20s} {est:10.5f} {ref:10.5f} {shown:>12s}   {mshown}")
    checked = "" if res.check is None else " (res.check ran)"
    print(f"  log-likelihood gap to the exact optimum: {exact.loglik - res.loglik:.4f}{checked}")
    return {"wall": wall, "compile": info.extra["compile_time"]}


def fixed_scale_ml(design) -> dict:
    """Exact ML of the tutorial's model: residual SD fixed at 1, beta and the three SDs free."""
    cp = CrossProducts.build(design)

    def negll(log_sd):
        f = factorize(cp, np.exp(log_sd))  # theta = SD / sigma with sigma = 1
        beta = f.beta()
        return -marginal_loglik(
            design,
            {
                "beta": beta,
                "sigma": 1.0,
                "covariances": [np.atleast_2d(v) for v in np.exp(2 * log_sd)],
            },
        )

    fit = minimize(negll, np.log([0.3, 0.5, 0.1]), method="L-BFGS-B")
    sds = np.exp(fit.x)
    beta = factorize(cp, theta_from_factors([np.atleast_2d(s) for s in sds])).beta()
    return {"beta": beta, "sds": sds, "loglik": -fit.fun}


def tutorial_schedule(design) -> dict:
    """The TFP tutorial's fitting schedule, with gradients reaching the SDs."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    codes = [tf.constant(g.codes) for g in design.groupings]
    levels = [g.n_levels for g in design.groupings]
    service = tf.constant(design.X[:, 1], tf.float32)
    y = tf.constant(design.y, tf.float32)
    params = [tf.Variable(0.0), tf.Variable(0.0)] + [
        tf.Variable(0.0) for _ in levels
    ]  # log SDs: SD 1

    def target(intercept, effect_service, log_sds, effects):
        # built from the parameter values at each call, so the log-SDs get a gradient
        lp = tf.add_n(
            [
                tf.reduce_sum(tfd.Normal(0.0, tf.exp(s)).log_prob(e))
                for s, e in zip(log_sds, effects, strict=True)
            ]
        )
        eta = (
            intercept
            + effect_service * service
            + tf.add_n([tf.gather(e, c) for e, c in zip(effects, codes, strict=True)])
        )
        return lp + tf.reduce_sum(tfd.Normal(eta, 1.0).log_prob(y))

    def kernel():
        return tfp.mcmc.HamiltonianMonteCarlo(
            lambda *effects: target(params[0], params[1], params[2:], list(effects)),
            step_size=0.015,
            num_leapfrog_steps=3,
        )

    state = [tf.zeros([n]) for n in levels]
    optimizer = tf.optimizers.Adam(learning_rate=0.01)

    @tf.function(jit_compile=True)
    def warmup(state):
        k = kernel()
        results = k.bootstrap_results(state)
        for _ in tf.range(1000):
            state, results = k.one_step(state, results, seed=None)
        return state

    @tf.function(jit_compile=True)
    def em_step(state, seed):
        k = kernel()
        results = k.bootstrap_results(state)
        for i in tf.range(5):
            state, results = k.one_step(
                state, results, seed=tf.random.experimental.stateless_fold_in(seed, i)
            )
        with tf.GradientTape() as tape:
            loss = -target(params[0], params[1], params[2:], state)
        grads = tape.gradient(loss, params)
        optimizer.apply_gradients(zip(grads, params, strict=True))
        return state

    t0 = time.perf_counter()
    state = warmup(state)
    for it in range(1500):
        state = em_step(state, tf.constant([it, 7]))
    wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "beta": np.array([params[0].numpy(), params[1].numpy()]),
        "sds": np.exp([p.numpy() for p in params[2:]]),
    }


PROCESS_FIT = """
import json, os, time, warnings
{imports}  # imported before timing, as in the main run
import mixedtf as mtf
df = mtf.datasets.load("InstEval")
warnings.simplefilter("ignore")
t0 = time.perf_counter()
res = mtf.MixedLM.from_formula({formula!r}, df).fit(seed=1, progress=False, **{options!r})
print("RESULT " + json.dumps({{"wall": time.perf_counter() - t0,
                              "compile": res.fit_info.extra["compile_time"],
                              "check": res.check is not None}}))
"""


IMPORTS = {
    "tensorflow": "import tensorflow, tensorflow_probability",
    "jax": "import jax, mixedtf.model.backend.jax_ops",
}


def cold_and_warm(options: dict) -> tuple[dict, dict]:
    """The default fit in two fresh processes sharing an empty compilation cache: the
    first compiles (cold), the second loads the compiled chunk (warm)."""
    import json
    import subprocess
    import sys
    import tempfile

    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "MIXEDTF_CACHE_DIR": cache, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("TF_XLA_FLAGS", None)
        for _ in range(2):
            run = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    PROCESS_FIT.format(
                        formula=FORMULA,
                        options=options,
                        imports=IMPORTS[options.get("backend", "tensorflow")],
                    ),
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")][-1]
            out.append(json.loads(line[len("RESULT ") :]))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--skip-tutorial", action="store_true")
    parser.add_argument("--backend", default="tensorflow", help="MCEM's: tensorflow or jax")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an MCEM option (MCEMOptions), e.g. --option chains=16; repeatable",
    )
    args = parser.parse_args()
    # TensorFlow is imported before any timing, as a user of either has it loaded: the first
    # MCEM fit would otherwise pay its import (~4 s here), which the tutorial never does
    t0 = time.perf_counter()
    import tensorflow  # noqa: F401
    import tensorflow_probability  # noqa: F401

    if args.backend == "jax":
        import mixedtf.model.backend.jax_ops  # noqa: F401
    print(f"library imports: {time.perf_counter() - t0:.1f} s (not in the timings below)")
    df = mtf.datasets.load("InstEval")
    model = mtf.MixedLM.from_formula(FORMULA, df)
    exact = model.fit(method="ml")
    print(f"InstEval, {FORMULA}; exact ML logLik {exact.loglik:.4f}")
    options = {} if args.backend == "tensorflow" else {"backend": args.backend}
    for item in args.option:
        name, _, value = item.partition("=")
        if value.lower() in ("true", "false"):
            options[name] = value.lower() == "true"
        else:
            options[name] = float(value) if "." in value or "e" in value else int(value)
    if options:
        print(f"MCEM options: {options}")
    runs = [run_mcem(df, exact, seed, options) for seed in args.seeds]
    walls = [r["wall"] for r in runs]
    print(
        f"\nmixedtf MCEM fit(): median {np.median(walls):.1f} s over {len(walls)} seeds "
        f"(compile median {np.median([r['compile'] for r in runs]):.1f} s)"
    )
    print(
        f"peak RSS of this process so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    cold, warm = cold_and_warm(options)
    print(
        f"new process, empty compilation cache (cold): fit() {cold['wall']:.1f} s "
        f"(first chunk {cold['compile']:.1f} s); second process (warm): {warm['wall']:.1f} s "
        f"(first chunk {warm['compile']:.1f} s); analytic check run: {cold['check']}"
    )
    if args.skip_tutorial:
        return
    ref = fixed_scale_ml(model.design)
    tut = tutorial_schedule(model.design)
    print(f"\nTFP tutorial schedule (fixed residual scale 1): {tut['wall']:.1f} s")
    names = ["(Intercept)", "service1"] + [f"SD {g.name}" for g in model.design.groupings]
    for name, got, want in zip(
        names, np.r_[tut["beta"], tut["sds"]], np.r_[ref["beta"], ref["sds"]], strict=True
    ):
        print(
            f"  {name:14s} tutorial {got:9.4f}   exact ML (scale 1) {want:9.4f}   ({100 * (got / want - 1):+.1f} %)"
        )
    print(
        f"\nmixedtf MCEM median / tutorial schedule = {np.median(walls) / tut['wall']:.2f}; "
        f"cold process {cold['wall'] / tut['wall']:.2f} (target <= 0.2), "
        f"warm process {warm['wall'] / tut['wall']:.2f} (target <= 0.1)"
    )


if __name__ == "__main__":
    main()
