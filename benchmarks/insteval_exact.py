"""Exact ML fit of InstEval: mixedtf against mixedlm (PyPI) and R's lme4, in one run.

    python benchmarks/insteval_exact.py [--reps 3] [--lme4-reps 1]

Times ``y ~ service + (1|s) + (1|d) + (1|dept)`` by ML on the bundled InstEval:
the whole call from formula to fitted results (formula parsing and design included,
imports and data loading excluded). Peak memory is measured in a fresh process as the
growth of the peak resident set over the process after loading the data. Peers:
``mixedlm.lmer`` when the ``bench`` extra is installed, ``lme4::lmer`` when ``Rscript``
with lme4 is on the PATH (it fits lme4's own copy of InstEval, the same rows).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

FORMULA = "y ~ service + (1|s) + (1|d) + (1|dept)"
LME4_LOGLIK = (
    -118860.884387934
)  # logLik(lmer(..., REML = FALSE)), tests/reference/insteval_service_ML.json


def time_mixedtf(reps: int) -> tuple[list[float], float, int]:
    import mixedtf as mtf

    df = mtf.datasets.load("InstEval")
    times, res = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        res = mtf.MixedLM.from_formula(FORMULA, df).fit(method="ml")
        times.append(time.perf_counter() - t0)
    return times, res.loglik, res.fit_info.n_evaluations


def time_mixedlm(reps: int) -> tuple[list[float], float] | None:
    try:
        import mixedlm
    except ImportError:
        return None
    import mixedtf as mtf

    df = mtf.datasets.load("InstEval")
    times, fit = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = mixedlm.lmer(FORMULA, df, REML=False)
        times.append(time.perf_counter() - t0)
    ll = fit.logLik()
    return times, float(getattr(ll, "value", ll))


def time_lme4(reps: int) -> tuple[list[float], float] | None:
    if shutil.which("Rscript") is None:
        return None
    script = f"""
suppressPackageStartupMessages(library(lme4))
data(InstEval, package = "lme4")
times <- numeric(0)
for (i in seq_len({reps})) {{
  gc()
  times[i] <- system.time(m <- lmer({FORMULA}, InstEval, REML = FALSE))[["elapsed"]]
}}
cat(paste0('{{"times": [', paste(times, collapse = ","), '], "loglik": ',
    format(as.numeric(logLik(m)), digits = 15), '}}'), "\\n")
"""
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(script)
    out = subprocess.run(["Rscript", fh.name], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"(lme4 run failed: {out.stderr.strip()[:300]})")
        return None
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["times"], result["loglik"]


def peak_memory_mib() -> tuple[float, float]:
    """Peak memory of one fit, in a fresh interpreter: the fit's own peak allocation
    (tracemalloc, which numpy reports its buffers to) and the process's peak RSS."""
    code = (
        "import resource, tracemalloc, mixedtf as mtf\n"
        "df = mtf.datasets.load('InstEval')\n"
        "tracemalloc.start()\n"
        f"mtf.MixedLM.from_formula({FORMULA!r}, df).fit(method='ml')\n"
        "peak = tracemalloc.get_traced_memory()[1] / 2**20\n"
        "print(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fit_peak, rss = out.stdout.strip().splitlines()[-1].split()
    return float(fit_peak), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reps", type=int, default=3, help="fits per Python library (median reported)"
    )
    parser.add_argument("--lme4-reps", type=int, default=1, help="fits in R (about 25 s each)")
    args = parser.parse_args()

    print(f"InstEval, {FORMULA}, ML; medians of {args.reps} fits")
    ours, our_ll, nfev = time_mixedtf(args.reps)
    rows = [("mixedtf (exact, blocked Cholesky)", ours, our_ll)]
    peer = time_mixedlm(args.reps)
    if peer:
        rows.append(("mixedlm (PyPI, Rust)", *peer))
    else:
        print("(mixedlm not installed: pip install -e '.[bench]')")
    lme4 = time_lme4(args.lme4_reps) if args.lme4_reps > 0 else None
    if lme4:
        rows.append(("lme4 (R, lmer)", *lme4))
    elif args.lme4_reps > 0:
        print("(Rscript with lme4 not found: apt-get install r-cran-lme4)")

    base = statistics.median(ours)
    print(f"{'library':36s} {'median s':>9s} {'runs':>24s} {'vs mixedtf':>10s} {'logLik':>16s}")
    for name, times, ll in rows:
        med = statistics.median(times)
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name:36s} {med:9.3f} {runs:>24s} {med / base:9.2f}x {ll:16.4f}")
    print(f"mixedtf: {nfev} deviance evaluations; logLik - lme4's = {our_ll - LME4_LOGLIK:+.2e}")
    if peer:
        print(
            f"mixedtf time / mixedlm time = {base / statistics.median(peer[0]):.3f} (target <= 0.25)"
        )
    fit_peak, rss = peak_memory_mib()
    print(
        f"peak memory: {fit_peak:.0f} MiB allocated by the fit, {rss:.0f} MiB peak RSS of the whole process"
    )


if __name__ == "__main__":
    main()
