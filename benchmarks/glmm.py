"""GLMM fits: cbpp (binomial) and the ordinal InstEval model, next to the peers, in one run.

    python benchmarks/glmm.py [--reps 3] [--seeds 1 2 3] [--skip-insteval] [--clmm-timeout 300]

cbpp, ``cbind(incidence, size - incidence) ~ period + (1 | herd)``: mixedtf's Laplace fit
(``mtf.glmer``), AGQ(25) and MCEM (one fit per seed), ``mixedlm.glmer`` (PyPI, the
``bench`` extra) and ``lme4::glmer`` when ``Rscript`` with lme4 is on the PATH; estimates
against lme4's nAGQ = 25 fit (tests/reference/cbpp_binomial_agq25.json) in its standard
errors. Wall times are whole calls from formula to results (medians over ``--reps``; MCEM
includes its XLA compile, reported apart).

The families and links beyond logit/probit (negative binomial with theta estimated on
grouseticks, Gamma with the log link on simulated data, binomial cloglog on cbpp): mixedtf's
Laplace fit, ``mixedlm.glmer`` (its negative binomial theta held at lme4's estimate, since
mixedlm does not estimate it) and ``lme4`` (``glmer.nb`` / ``glmer``), each against lme4's
fit in tests/reference/local (made by tests/reference/R/*.R).

Ordinal InstEval, ``y ~ service + (1|s) + (1|d) + (1|dept)`` with the ratings as ordered
categories: mixedtf's MCEM on the full data; R's ``ordinal::clmm`` when installed, stopped
after ``--clmm-timeout`` seconds (it did not finish this model in 5 minutes here).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
INSTEVAL = "y ~ service + (1|s) + (1|d) + (1|dept)"
REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference"


def agq25() -> dict:
    ref = json.loads((REFERENCE / "cbpp_binomial_agq25.json").read_text())
    fixed = {fe["term"]: (fe["estimate"], fe["std_error"]) for fe in ref["fixed_effects"]}
    return {"fixed": fixed, "sd": ref["VarCorr_table"][0]["stddev_or_correlation"]}


def compare(name: str, fixef: dict, sd: float, ref: dict) -> str:
    worst = max(abs(fixef[k] - est) / se for k, (est, se) in ref["fixed"].items())
    return (
        f"{name:<28} max |FE diff| {worst:5.3f} SE   SD(herd) {sd:.4f} ({sd / ref['sd'] - 1:+.2%})"
    )


def cbpp_mixedtf(reps: int, seeds: list[int]) -> list[str]:
    import numpy as np

    import mixedtf as mtf

    df = mtf.datasets.load("cbpp")
    ref, lines = agq25(), []
    for label, n_agq in (("mixedtf Laplace", 1), ("mixedtf AGQ(25)", 25)):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            res = mtf.glmer(CBPP, df, family="binomial", nAGQ=n_agq)
            times.append(time.perf_counter() - t0)
        sd = float(np.sqrt(res.covariances[0][0, 0]))
        lines.append(f"{label:<28} {statistics.median(times):8.3f} s (median of {reps})")
        lines.append("  " + compare(label, res.fixef().to_dict(), sd, ref))
    for seed in seeds:
        t0 = time.perf_counter()
        res = mtf.MixedLM.from_formula(CBPP, df, family="binomial").fit(seed=seed, progress=False)
        wall = time.perf_counter() - t0
        info = res.fit_info
        sd = float(np.sqrt(res.covariances[0][0, 0]))
        mc = info.extra["mcse"]["var:herd:(Intercept)"] / (2 * sd)
        lines.append(
            f"{'mixedtf MCEM seed ' + str(seed):<28} {wall:8.3f} s (compile + 1st chunk "
            f"{info.extra['compile_time']:.1f} s, {info.iterations} it x {info.extra['chains']} chains)"
        )
        lines.append(
            "  " + compare("", res.fixef().to_dict(), sd, ref) + f"  MCSE(SD) {mc * sd:.4f}"
        )
    return lines


def cbpp_mixedlm(reps: int) -> list[str]:
    try:
        import mixedlm
    except ImportError:
        return ["mixedlm.glmer               not installed (pip install -e '.[bench]')"]
    import numpy as np

    import mixedtf as mtf

    df = mtf.datasets.load("cbpp")
    df["prop"] = df.incidence / df["size"]
    times = []
    for _ in range(reps):  # mixedlm's parser has no cbind(): proportions with weights= trials
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = mixedlm.glmer(
                "prop ~ period + (1 | herd)",
                df,
                family=mixedlm.families.Binomial(),
                weights=df["size"].to_numpy(float),
            )
        times.append(time.perf_counter() - t0)
    names = list(agq25()["fixed"])  # mixedlm names the columns period.1, ...: by position
    fixef = dict(zip(names, np.asarray(list(fit.fixef().values())), strict=True))
    sd = float(np.asarray(fit.theta)[0])
    return [
        f"{'mixedlm.glmer (PyPI)':<28} {statistics.median(times):8.3f} s (median of {reps})",
        "  " + compare("mixedlm.glmer", fixef, sd, agq25()),
    ]


def cbpp_lme4(reps: int) -> list[str]:
    if shutil.which("Rscript") is None:
        return ["lme4::glmer                 Rscript not on the PATH"]
    script = (
        "suppressPackageStartupMessages(library(lme4)); t <- c();"
        f"for (i in 1:{reps}) t <- c(t, system.time(glmer(cbind(incidence, size - incidence) ~ "
        "period + (1 | herd), cbpp, binomial))[['elapsed']]); cat(median(t))"
    )
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return [f"lme4::glmer                 failed: {out.stderr.strip()[-200:]}"]
    return [f"{'lme4::glmer (R)':<28} {float(out.stdout):8.3f} s (median of {reps})"]


FAMILY_CASES = [  # (label, reference file, case, formula, data, mixedtf family, R family)
    ("negative binomial", "negbin", "ticks_nb", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD)",
     "grouseticks", ("negative_binomial", "log"), None),
    ("Gamma, log link", "gamma", "gamma_log", "y_gamma ~ x + (1 | g)", "gamma_data.csv",
     ("gamma", "log"), 'Gamma("log")'),
    ("binomial, cloglog", "glmm_links", "cbpp_cloglog", CBPP, "cbpp", ("binomial", "cloglog"),
     'binomial("cloglog")'),
]  # fmt: skip


def _family_data(name: str):
    import pandas as pd

    import mixedtf as mtf

    if name.endswith(".csv"):
        return pd.read_csv(REFERENCE / "local" / name, dtype={"g": str})
    return mtf.datasets.load(name)


def _against(ref: dict, fixef, loglik: float) -> str:
    import numpy as np

    diff = np.abs(np.asarray(list(fixef), float) - list(ref["fixef"].values()))
    worst = float(np.max(diff / np.asarray(ref["std_error"])))
    return f"max |FE - lme4| {worst:6.3f} SE, logLik {loglik:.4f} (lme4 {ref['logLik']:.4f})"


def family_cases(reps: int) -> list[str]:
    import mixedtf as mtf

    lines = []
    for label, file, case, formula, data_name, (family, link), r_family in FAMILY_CASES:
        ref = json.loads((REFERENCE / "local" / f"{file}.json").read_text())[case]
        data = _family_data(data_name)
        lines.append(f"\n{label}: {formula}")
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = mtf.glmer(formula, data, family=family, link=link)
            times.append(time.perf_counter() - t0)
        lines.append(f"{'mixedtf Laplace':<28} {statistics.median(times):8.3f} s   "
                     + _against(ref, res.fixef(), res.loglik))  # fmt: skip
        lines += _family_mixedlm(reps, ref, formula, data, family, link)
        lines += _family_lme4(reps, formula, data_name, r_family)
    return lines


def _family_mixedlm(reps, ref, formula, data, family, link) -> list[str]:
    try:
        import mixedlm
    except ImportError:
        return ["mixedlm.glmer               not installed (pip install -e '.[bench]')"]
    fam = mixedlm.families
    make = {
        "negative_binomial": lambda: fam.NegativeBinomial(theta=ref["nb_theta"], link=link),
        "gamma": lambda: fam.Gamma(link=link),
        "binomial": lambda: fam.Binomial(link=link),
    }[family]
    if formula.startswith("cbind"):  # mixedlm has no cbind(): proportions, weights= trials
        data = data.assign(prop=data.incidence / data["size"])
        formula, weights = "prop ~ period + (1 | herd)", data["size"].to_numpy(float)
    else:
        weights = None
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = mixedlm.glmer(formula, data, family=make(), weights=weights)
        times.append(time.perf_counter() - t0)
    loglik = float(str(fit.logLik()).split()[2])
    return [f"{'mixedlm.glmer (PyPI)':<28} {statistics.median(times):8.3f} s   "
            + _against(ref, fit.fixef().values(), loglik)]  # fmt: skip


def _family_lme4(reps, formula, data_name, r_family) -> list[str]:
    if shutil.which("Rscript") is None:
        return ["lme4                        Rscript not on the PATH"]
    data = (
        f"read.csv('{REFERENCE / 'local' / data_name}')"
        if data_name.endswith(".csv")
        else data_name
    )
    call = f"glmer.nb({formula}, d)" if r_family is None else f"glmer({formula}, d, {r_family})"
    script = (
        f"suppressPackageStartupMessages(library(lme4)); d <- {data}; t <- c();"
        f"for (i in 1:{reps}) t <- c(t, system.time({call})[['elapsed']]); cat(median(t))"
    )
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return [f"lme4                        failed: {out.stderr.strip()[-200:]}"]
    name = "lme4::glmer.nb (R)" if r_family is None else "lme4::glmer (R)"
    return [f"{name:<28} {float(out.stdout):8.3f} s (median of {reps})"]


def insteval_ordinal(seeds: list[int]) -> list[str]:
    import numpy as np

    import mixedtf as mtf

    df = mtf.datasets.load("InstEval")
    lines = []
    for seed in seeds:
        t0 = time.perf_counter()
        res = mtf.MixedLM.from_formula(INSTEVAL, df, family="ordinal").fit(
            seed=seed, progress=False
        )
        wall = time.perf_counter() - t0
        info = res.fit_info
        sds = " ".join(
            f"{g.name} {np.sqrt(c[0, 0]):.4f}"
            for g, c in zip(res.design.groupings, res.covariances, strict=True)
        )
        lines.append(
            f"{'mixedtf MCEM seed ' + str(seed):<28} {wall:8.1f} s (compile + 1st chunk "
            f"{info.extra['compile_time']:.1f} s, {info.iterations} it x {info.extra['chains']} chains)"
        )
        lines.append(
            f"  service1 {res.fixef()['service1']:.4f} (SE {res.bse()['service1']:.4f}); "
            f"cutpoints {np.round(res.cutpoints, 4).tolist()}; SD {sds}; "
            f"logLik (Laplace) {res.loglik:.2f}"
        )
    return lines


def insteval_clmm(timeout: float) -> list[str]:
    if shutil.which("Rscript") is None:
        return ["ordinal::clmm               Rscript not on the PATH"]
    check = subprocess.run(
        ["Rscript", "-e", "cat(requireNamespace('ordinal', quietly = TRUE))"],
        capture_output=True,
        text=True,
    )
    if check.stdout.strip() != "TRUE":
        return ["ordinal::clmm               R package 'ordinal' not installed"]
    script = (
        "suppressPackageStartupMessages({library(ordinal); library(lme4)});"
        "d <- InstEval; d$y <- factor(d$y, ordered = TRUE);"
        "t <- system.time(f <- clmm(y ~ service + (1|s) + (1|d) + (1|dept), data = d));"
        "cat(t[['elapsed']], logLik(f), '\\n')"
    )
    t0 = time.perf_counter()
    try:
        out = subprocess.run(
            ["Rscript", "-e", script], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return [f"{'ordinal::clmm (R)':<28} did not finish in {timeout:.0f} s (stopped)"]
    if out.returncode != 0:
        return [f"ordinal::clmm               failed: {out.stderr.strip()[-200:]}"]
    elapsed, loglik = out.stdout.split()
    return [
        f"{'ordinal::clmm (R)':<28} {float(elapsed):8.1f} s "
        f"(process {time.perf_counter() - t0:.1f} s); logLik {float(loglik):.2f}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--skip-insteval", action="store_true")
    parser.add_argument("--clmm-timeout", type=float, default=300.0)
    args = parser.parse_args()
    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(f"device: {device}; Python {sys.version.split()[0]}\n")
    print("cbpp, binomial:", CBPP)
    for line in (
        cbpp_mixedtf(args.reps, args.seeds) + cbpp_mixedlm(args.reps) + cbpp_lme4(args.reps)
    ):
        print(line, flush=True)
    print("\nOther families and links (Laplace):")
    for line in family_cases(args.reps):
        print(line, flush=True)
    if args.skip_insteval:
        return
    print("\nInstEval, ordinal (cumulative logit):", INSTEVAL)
    for line in insteval_ordinal(args.seeds[:1]) + insteval_clmm(args.clmm_timeout):
        print(line, flush=True)


if __name__ == "__main__":
    main()
