"""Monte Carlo EM where exact methods struggle: a synthetic crossed model of N rows.

    python benchmarks/scale.py N [--skip-exact] [--skip-mixedlm] [--mixedlm-limit 600]

``y ~ x + (1|a) + (1|b) + (1|c)`` with a Zipf-like ``a`` of N/10 levels (level ``j``
drawn with probability proportional to ``1 / j``), ``b`` of N/100 uniform levels and ``c``
of 100; beta = (1, 0.5), SDs 0.5, 0.3, 0.2, residual SD 1; numpy seed 2026. Each method
runs in its own process (so peak RSS is its own): exact ML (``method="ml"``), the default
``fit()`` (Monte Carlo EM), and ``mixedlm.lmer`` (the ``bench`` extra) under a time limit.
Prints wall time, peak RSS and each estimate against the exact fit (the simulated truth
when the exact fit is skipped). Exact ML and mixedlm are skipped by default at 10M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

FORMULA = "y ~ x + (1|a) + (1|b) + (1|c)"
TRUTH = {"(Intercept)": 1.0, "x": 0.5, "sd_a": 0.5, "sd_b": 0.3, "sd_c": 0.2, "sigma": 1.0}


def synthetic(n: int, seed: int = 2026) -> pd.DataFrame:
    """The benchmark's data: N rows of the crossed model (see the module docstring)."""
    rng = np.random.default_rng(seed)
    la, lb, lc = max(n // 10, 2), max(n // 100, 2), 100
    p = 1.0 / np.arange(1, la + 1)
    a = rng.choice(la, size=n, p=p / p.sum())
    b, c = rng.integers(lb, size=n), rng.integers(lc, size=n)
    x = rng.standard_normal(n)
    eta = (
        TRUTH["(Intercept)"]
        + TRUTH["x"] * x
        + rng.normal(0, TRUTH["sd_a"], la)[a]
        + rng.normal(0, TRUTH["sd_b"], lb)[b]
        + rng.normal(0, TRUTH["sd_c"], lc)[c]
    )
    y = eta + rng.normal(0, TRUTH["sigma"], n)
    factor = pd.Categorical.from_codes  # grouping factors as categoricals, as a user would
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "a": factor(a, [f"a{j}" for j in range(la)]),
            "b": factor(b, [f"b{j}" for j in range(lb)]),
            "c": factor(c, [f"c{j}" for j in range(lc)]),
        }
    )


CHILD = """
import json, os, resource, sys, time, warnings
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, {here!r})
from scale import FORMULA, synthetic
which, n = {which!r}, {n}
df = synthetic(n)
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if which == "mixedlm":
        import mixedlm
        m = mixedlm.lmer(FORMULA, df, REML=False)
        fe = dict(zip(["(Intercept)", "x"], [float(v) for v in m.fixef().values()] if hasattr(m.fixef(), "values") else list(map(float, m.fixef()))))
        out = {{"fixef": fe}}
    else:
        import mixedtf as mtf
        res = mtf.MixedLM.from_formula(FORMULA, df).fit(
            **({{"method": "ml"}} if which == "exact" else {{"seed": 1, "progress": False}}))
        vc = res.varcorr()
        out = {{
            "fixef": res.fixef().to_dict(),
            "se": res.bse().to_dict(),
            "sd": {{f"sd_{{g}}": float(s) for g, s in zip(vc.grp, vc.sdcor) if g != "Residual"}},
            "sigma": float(res.sigma),
            "loglik": float(res.loglik),
            "info": {{k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in res.fit_info.extra.items()
                     if k in ("compile_time", "vcov_method", "check", "chains")}},
            "vcov_method": res.fit_info.vcov_method,
            "iterations": res.fit_info.iterations,
        }}
out["wall"] = time.perf_counter() - t0
out["rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print("RESULT " + json.dumps(out))
"""


def run(which: str, n: int, limit: float | None) -> dict | None:
    code = CHILD.format(here=os.path.dirname(os.path.abspath(__file__)), which=which, n=n)
    t0 = time.perf_counter()
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        print(f"{which:<8} did not finish in {limit:.0f} s")
        return None
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        print(
            f"{which:<8} failed after {time.perf_counter() - t0:.0f} s: {out.stderr.strip()[-400:]}"
        )
        return None
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--skip-exact", action="store_true")
    parser.add_argument("--skip-mixedlm", action="store_true")
    parser.add_argument("--mixedlm-limit", type=float, default=600.0)
    args = parser.parse_args()
    big = args.n >= 5_000_000
    results = {}
    if not (args.skip_exact or big):
        results["exact"] = run("exact", args.n, None)
    results["mcem"] = run("mcem", args.n, None)
    if not (args.skip_mixedlm or big):
        try:
            import mixedlm  # noqa: F401

            results["mixedlm"] = run("mixedlm", args.n, args.mixedlm_limit)
        except ImportError:
            print("mixedlm  not installed (pip install -e '.[bench]')")
    print(f"\nN = {args.n:,}: {FORMULA}")
    for name, r in results.items():
        if r is not None:
            extra = f", vcov {r.get('vcov_method')}" if name == "mcem" else ""
            print(f"{name:<8} {r['wall']:8.1f} s   peak RSS {r['rss_gib']:5.2f} GiB{extra}")
    exact, mcem = results.get("exact"), results.get("mcem")
    if exact and mcem:
        print(f"MCEM time / exact time = {mcem['wall'] / exact['wall']:.3f} (target <= 0.25)")
    if mcem:
        ref = exact or {
            "fixef": {k: TRUTH[k] for k in ("(Intercept)", "x")},
            "sd": {k: TRUTH[k] for k in ("sd_a", "sd_b", "sd_c")},
            "sigma": TRUTH["sigma"],
            "se": mcem["se"],
        }
        label = "exact" if exact else "truth"
        print(f"\nparameter      mcem        {label:<10}  difference")
        for k, v in mcem["fixef"].items():
            d = (v - ref["fixef"][k]) / ref["se"][k]
            print(f"{k:<13} {v:10.5f}  {ref['fixef'][k]:10.5f}  {d:+.3f} SE")
        for k, v in [*mcem["sd"].items(), ("sigma", mcem["sigma"])]:
            r = ref["sd"][k] if k != "sigma" else ref["sigma"]
            print(f"{k:<13} {v:10.5f}  {r:10.5f}  {100 * (v / r - 1):+.3f} %")


if __name__ == "__main__":
    main()
