"""InstEval: lecture ratings with crossed random effects for students, instructors and departments.

    python examples/insteval.py [--reml]

Loads lme4's InstEval (bundled), fits ``y ~ service + (1|s) + (1|d) + (1|dept)`` by the
exact marginal likelihood and prints what lme4's ``summary(lmer(...))`` shows. Ends by
checking the log-likelihood against lme4 1.1-31's.
"""

from __future__ import annotations

import argparse
import time

import mixedtf as mtf

FORMULA = "y ~ service + (1|s) + (1|d) + (1|dept)"
LME4 = {  # logLik(lmer(FORMULA, InstEval, REML = ...)), tests/reference/insteval_service_*.json
    "ml": -118860.884387934,
    "reml": -118866.917063771,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reml", action="store_true", help="fit by REML instead of ML")
    args = parser.parse_args()
    method = "reml" if args.reml else "ml"

    df = mtf.datasets.load("InstEval")
    print(f"InstEval: {len(df)} ratings; formula {FORMULA}; method {method.upper()}")
    t0 = time.perf_counter()
    res = mtf.MixedLM.from_formula(FORMULA, df).fit(method=method)
    elapsed = time.perf_counter() - t0
    print(
        f"groups: {res.ngroups}; fitted in {elapsed:.2f} s ({res.fit_info.n_evaluations} deviance evaluations)\n"
    )
    print(res.summary(), "\n")
    gap = res.loglik - LME4[method]
    print(f"lme4 1.1-31 logLik: {LME4[method]:.4f} (difference {gap:+.1e})")
    if gap < -1e-3:
        raise SystemExit(f"log-likelihood is {gap:.2e} below lme4's")


if __name__ == "__main__":
    main()
