"""InstEval walkthrough: the TFP "Linear Mixed Effects Models" tutorial, done with mixedtf.

    python examples/insteval.py [--quick] [--out DIR] [--seed N]

lme4's InstEval (bundled): 73,421 lecture ratings (1-5) by 2,972 students of 1,128
instructors in 14 departments. As the tutorial: rename the columns, hold out 20% of the
ratings, fit ``ratings ~ service + (1|students) + (1|instructors) + (1|departments)`` by
Monte Carlo EM on the compiled TFP model, print the summary with the analytic check,
compare with the exact ML fit, draw the objective, draws of three departments, held-out residuals, the
instructors' caterpillar and the residual panels to PNG files, and report the held-out
RMSE. ``--quick`` fits a 15% subset with a shorter schedule (what the tests run). Ends by checking the exact ML fit of
the full data against lme4 1.1-31.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

import mixedtf as mtf

FORMULA = "ratings ~ service + (1|students) + (1|instructors) + (1|departments)"
# logLik(lmer(y ~ service + (1|s) + (1|d) + (1|dept), InstEval, REML = FALSE)), lme4 1.1-31
# (tests/reference/insteval_service_ML.json)
LME4_ML_LOGLIK = -118860.884387934
QUICK = {"max_iterations": 200, "burnin": 60, "min_averaged": 100}


def load(quick: bool, seed: int):
    """InstEval with the tutorial's column names, split 80/20 at random."""
    df = mtf.datasets.load("InstEval").rename(
        columns={"s": "students", "d": "instructors", "dept": "departments", "y": "ratings"}
    )
    rng = np.random.default_rng(seed)
    if quick:
        df = df.iloc[np.sort(rng.choice(len(df), size=len(df) * 15 // 100, replace=False))]
    test = rng.random(len(df)) < 0.2
    return df, df[~test], df[test]


def rmse(res, data, include_random: bool = True) -> float:
    pred = res.predict(data, include_random=include_random)
    return float(np.sqrt(np.mean((data["ratings"].to_numpy() - pred.to_numpy()) ** 2)))


def plots(res, test, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixedtf import plotting

    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "objective.png": lambda: plotting.plot_objective(res),
        "traces_departments.png": lambda: plotting.plot_traces(res, "departments"),
        "heldout_residuals.png": lambda: plotting.plot_residuals(res, test),
        "caterpillar_instructors.png": lambda: plotting.plot_caterpillar(res, "instructors"),
        "diagnostics.png": lambda: plotting.plot_diagnostics(res),
    }
    paths = []
    for name, draw in figures.items():
        drawn = draw()  # a Figure, an Axes or an array of Axes
        fig = drawn if hasattr(drawn, "savefig") else np.ravel(drawn)[0].figure
        fig.savefig(out / name, dpi=90, bbox_inches="tight")
        plt.close(fig)
        paths.append(out / name)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="15%% subset, short schedule")
    parser.add_argument("--out", default="insteval-plots", help="directory for the PNG files")
    parser.add_argument("--seed", type=int, default=1, help="seed of the split and of MCEM")
    args = parser.parse_args()

    _, train, test = load(args.quick, args.seed)
    print(
        f"InstEval{' (quick: 15% subset)' if args.quick else ''}: {len(train)} training and "
        f"{len(test)} held-out ratings\nformula: {FORMULA}\n"
    )

    model = mtf.MixedLM.from_formula(FORMULA, train)
    t0 = time.perf_counter()
    # check=True: the comparison with the exact ML fit, which the default skips where that
    # fit would take over a tenth of the MCEM fit's time (here it does)
    res = model.fit(method="mcem", seed=args.seed, check=True, **(QUICK if args.quick else {}))
    wall = time.perf_counter() - t0
    print(
        f"Monte Carlo EM: {wall:.1f} s (XLA compile and first chunk "
        f"{res.fit_info.extra['compile_time']:.1f} s)\n"
    )
    print(res.summary(), "\n")

    t0 = time.perf_counter()
    exact = model.fit(method="ml")
    print(
        f"Exact ML on the same rows: {time.perf_counter() - t0:.2f} s. MCEM against it "
        f"(res.check; Monte Carlo s.e. for the SDs, exact s.e. for the fixed effects):"
    )
    print(res.check.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "\n")

    print("held-out RMSE:")
    print(f"  MCEM, with random effects      {rmse(res, test):.4f}")
    print(f"  exact ML, with random effects  {rmse(exact, test):.4f}")
    print(f"  fixed effects only             {rmse(res, test, include_random=False):.4f}\n")

    for path in plots(res, test, Path(args.out)):
        print(f"wrote {path}")

    # lme4's number: the exact ML fit of the full data with lme4's column names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = mtf.MixedLM.from_formula(
            "y ~ service + (1|s) + (1|d) + (1|dept)", mtf.datasets.load("InstEval")
        ).fit(method="ml")
    gap = full.loglik - LME4_ML_LOGLIK
    print(
        f"\nfull data, exact ML logLik {full.loglik:.4f}; lme4 1.1-31: {LME4_ML_LOGLIK:.4f} "
        f"(difference {gap:+.1e})"
    )
    if abs(gap) > 1e-3:
        raise SystemExit(f"the exact ML log-likelihood differs from lme4's by {gap:.2e}")
    if res.check.gap > 1.0:
        raise SystemExit(f"MCEM ends {res.check.gap:.2f} log-likelihood units below exact ML")


if __name__ == "__main__":
    main()
