"""Interval times on sleepstudy, ``Reaction ~ Days + (Days | Subject)``, next to the peers
in one run: profile intervals (all six of lme4's parameters) and the parametric bootstrap.

    python benchmarks/inference.py [--nsim 200]

mixedtf (``mtf.confint``), ``mixedlm`` (PyPI, the ``bench`` extra; its profile intervals
cover the fixed effects only) and lme4's ``confint`` when ``Rscript`` is on the PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
import warnings

FORMULA = "Reaction ~ Days + (Days | Subject)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsim", type=int, default=200)
    args = parser.parse_args()
    import mixedtf as mtf

    sleep = mtf.datasets.load("sleepstudy")
    res = mtf.lmer(FORMULA, sleep)
    t0 = time.perf_counter()
    profile = mtf.confint(res, method="profile")
    t_profile = time.perf_counter() - t0
    t0 = time.perf_counter()
    mtf.confint(res, method="boot", nsim=args.nsim, seed=1)
    t_boot = time.perf_counter() - t0
    print(f"{'mixedtf':<12} profile {t_profile:7.2f} s   bootstrap ({args.nsim}) {t_boot:7.2f} s")
    print(profile.round(4).to_string(), "\n")
    try:
        import mixedlm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = mixedlm.lmer(FORMULA, sleep)
            t0 = time.perf_counter()
            m.confint(method="profile")
            t_p = time.perf_counter() - t0
            t0 = time.perf_counter()
            m.confint(method="boot", n_boot=args.nsim, seed=1)
            t_b = time.perf_counter() - t0
        print(f"{'mixedlm':<12} profile {t_p:7.2f} s (fixed effects only)   bootstrap {t_b:7.2f} s")
    except ImportError:
        print("mixedlm      not installed (pip install -e '.[bench]')")
    if shutil.which("Rscript") is None:
        print("lme4         Rscript not on the PATH")
        return
    script = (
        "suppressPackageStartupMessages(library(lme4)); m <- lmer(Reaction ~ Days + "
        "(Days | Subject), sleepstudy); p <- system.time(confint(m, quiet = TRUE))[['elapsed']];"
        f"b <- system.time(confint(m, method = 'boot', nsim = {args.nsim}, seed = 1))"
        "[['elapsed']]; cat(p, b)"
    )
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        print(f"lme4         failed: {out.stderr.strip()[-200:]}")
        return
    p, b = (float(v) for v in out.stdout.split())
    print(f"{'lme4 (R)':<12} profile {p:7.2f} s   bootstrap ({args.nsim}) {b:7.2f} s")


if __name__ == "__main__":
    main()
