"""MCEM on a GPU (or any device JAX sees): InstEval and the synthetic crossed model of
``benchmarks/scale.py`` at 1M and 10M rows, as one prepared run that writes a JSON.

    PYTHONPATH=. python benchmarks/gpu.py [--out results.json] [--sizes 1000000 10000000]
        [--chains 128] [--backend jax] [--exact-up-to 1000000] [--small]

Made for the GPU machines this project is lent (JAX, no TensorFlow): the default backend
is JAX, and mixedtf runs from the checkout (``PYTHONPATH=.``), its dependencies being
there. Each fit runs in its own process with the persistent compilation cache in a fresh
folder, so that:

* **cold**: a first process, compiling the kernel;
* **warm**: a second process of the same model shape, its compiled kernel loaded from
  the persistent cache (the data built again: the design's time is reported apart).

For each fit: wall time of ``fit()``, the first chunk (compile included), iterations,
chains, peak device memory (JAX's ``peak_bytes_in_use``), peak host RSS, and each SD and
fixed effect next to the exact ML fit's (computed once per data set, on the CPU, where
``N <= --exact-up-to``) or the simulated truth. The JSON is rewritten after every fit, so
a run stopped by its time limit keeps what it finished. ``--small`` runs 20k/50k rows
instead (a check of the script on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, os, resource, sys, time, warnings
sys.path.insert(0, {here!r})
import numpy as np
import mixedtf as mtf
which, n, options = {which!r}, {n}, {options!r}
t0 = time.perf_counter()
if which == "InstEval":
    df = mtf.datasets.load("InstEval")
    formula = "y ~ service + (1|s) + (1|d) + (1|dept)"
else:
    from scale import FORMULA as formula, synthetic
    df = synthetic(n)
model = mtf.MixedLM.from_formula(formula, df)  # builds the design
data_time = time.perf_counter() - t0
t1 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    res = model.fit(**options)
wall = time.perf_counter() - t1
info = res.fit_info
vc = res.varcorr()
out = dict(
    data_time=data_time, wall=wall, compile_time=info.extra.get("compile_time"),
    iterations=info.iterations, chains=info.extra.get("chains"), device=info.device,
    backend=info.extra.get("backend"), versions=info.extra.get("versions"),
    converged=bool(info.converged), check_skipped=info.extra.get("check_skipped"),
    fixef=res.fixef().to_dict(), bse=res.bse().to_dict(),
    sd={{r.grp: float(r.sdcor) for r in vc[vc.var2.isna()].itertuples()}},
    mcse={{k: float(v) for k, v in info.extra.get("mcse", {{}}).items()}},
    rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
)
try:
    import jax
    stats = jax.devices()[0].memory_stats() or {{}}
    out["device_peak_gib"] = stats.get("peak_bytes_in_use", 0) / 2**30
    out["jax_devices"] = [str(d) for d in jax.devices()]
except Exception as err:  # noqa: BLE001
    out["device_peak_gib"] = None
    out["jax_devices"] = repr(err)
print("RESULT " + json.dumps(out))
"""


def child(which: str, n: int, options: dict, cache: str, timeout: float) -> dict:
    code = CHILD.format(here=str(HERE), which=which, n=n, options=options)
    env = {**os.environ, "MIXEDTF_CACHE_DIR": cache, "TF_CPP_MIN_LOG_LEVEL": "3"}
    tic = time.perf_counter()
    try:
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    if run.returncode != 0 or not lines:
        return {"error": run.stderr[-3000:], "returncode": run.returncode}
    out = json.loads(lines[-1][7:])
    out["process_wall"] = time.perf_counter() - tic
    return out


def reference(which: str, n: int, exact_up_to: int) -> dict:
    """The exact ML fit (fixed effects and SDs) where N is small enough, else the truth."""
    import mixedtf as mtf

    if which == "InstEval":
        df, formula = mtf.datasets.load("InstEval"), "y ~ service + (1|s) + (1|d) + (1|dept)"
    else:
        sys.path.insert(0, str(HERE))
        from scale import FORMULA, TRUTH, synthetic

        if n > exact_up_to:
            sd = {"a": TRUTH["sd_a"], "b": TRUTH["sd_b"], "c": TRUTH["sd_c"]}
            sd["Residual"] = TRUTH["sigma"]
            return {"kind": "truth", "fixef": {k: TRUTH[k] for k in ("(Intercept)", "x")}, "sd": sd}
        df, formula = synthetic(n), FORMULA
    tic = time.perf_counter()
    res = mtf.MixedLM.from_formula(formula, df).fit(method="ml")
    vc = res.varcorr()
    return {
        "kind": "exact ML",
        "wall": time.perf_counter() - tic,
        "fixef": res.fixef().to_dict(),
        "bse": res.bse().to_dict(),
        "sd": {r.grp: float(r.sdcor) for r in vc[vc.var2.isna()].itertuples()},
    }


def compare(fit: dict, ref: dict) -> dict:
    """Each SD's relative error and each fixed effect's error in standard errors."""
    if "sd" not in fit:
        return {}
    sd = {k: fit["sd"][k] / v - 1.0 for k, v in ref["sd"].items() if k in fit["sd"]}
    se = ref.get("bse") or fit["bse"]
    fe = {k: (fit["fixef"][k] - v) / se[k] for k, v in ref["fixef"].items()}
    return {
        "sd_rel_error": sd,
        "fixef_error_in_se": fe,
        "max_abs_sd_rel_error": max(map(abs, sd.values())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu.json"))
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--chains", type=int, default=128, help="InstEval's (the others: default)")
    ap.add_argument("--backend", default="jax")
    ap.add_argument("--exact-up-to", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per process")
    ap.add_argument("--small", action="store_true", help="20k/50k rows (checks the script)")
    args = ap.parse_args()
    sizes = [20_000, 50_000] if args.small else args.sizes
    options = {"seed": 1, "progress": False, "backend": args.backend}
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "options": options, "runs": []}

    def save() -> None:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))

    jobs = [("InstEval", 0)] + [("synthetic", n) for n in sizes]
    for which, n in jobs:
        ref = reference(which, n, args.exact_up_to)
        cache = tempfile.mkdtemp(prefix="mixedtf-cache-")  # cold: nothing compiled yet
        for start in ("cold", "warm"):
            chains = {"chains": args.chains} if which == "InstEval" else {}
            fit = child(which, n, {**options, **chains}, cache, args.timeout)
            entry = {"data": which, "n": n, "start": start, "reference": ref, "fit": fit}
            entry["accuracy"] = compare(fit, ref) if "error" not in fit else {}
            report["runs"].append(entry)
            save()
            print(
                f"{which} {n or ''} {start}: "
                + (
                    f"fit {fit['wall']:.2f} s (first chunk {fit['compile_time']:.2f} s), "
                    f"{fit['iterations']} it x {fit['chains']} chains, device peak "
                    f"{fit['device_peak_gib']} GiB, max SD error "
                    f"{entry['accuracy'].get('max_abs_sd_rel_error', float('nan')):.4f}"
                    if "error" not in fit
                    else f"error: {fit['error'][-500:]}"
                ),
                flush=True,
            )
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()


if __name__ == "__main__":
    main()
