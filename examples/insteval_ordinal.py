"""InstEval's ratings as what they are: ordered categories 1-5.

    python examples/insteval_ordinal.py [--quick] [--seed N]

The TFP tutorial ends by noting that the ratings are ordinal. This fits the cumulative
logit mixed model ``y ~ service + (1|s) + (1|d) + (1|dept)`` (R's ``ordinal::clmm``, which
did not finish this crossed model in 5 minutes here) by Monte Carlo EM on 80% of the
ratings, next to the Gaussian model of the tutorial (exact ML), and compares how well each
predicts the held-out 20%:

* ordinal: the posterior predictive probability of the observed rating, the average over
  the E-step's draws of the random effects of the model's category probability;
* Gaussian: the probability its predictive distribution ``N(eta_hat, sigma^2 + sum of
  conditional variances)`` gives the interval ``(k - 1/2, k + 1/2)`` (open at 1 and 5), so
  both are probabilities of the same discrete outcomes.

``--quick`` fits a 15% subset with a shorter schedule and 32 chains (what the tests run).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from scipy import stats

import mixedtf as mtf

FORMULA = "y ~ service + (1|s) + (1|d) + (1|dept)"
QUICK = {"max_iterations": 200, "burnin": 60, "min_averaged": 100, "chains": 32}


def split(quick: bool, seed: int):
    df = mtf.datasets.load("InstEval")
    rng = np.random.default_rng(seed)
    if quick:
        df = df.iloc[np.sort(rng.choice(len(df), size=len(df) * 15 // 100, replace=False))]
    test = rng.random(len(df)) < 0.2
    return df[~test], df[test]


def ordinal_log_predictive(res, test) -> np.ndarray:
    """log P(y_i | training data) per held-out row: the posterior predictive mean."""
    probs = res.predict(test, type="response").to_numpy()
    k = test["y"].to_numpy().astype(int) - 1
    return np.log(probs[np.arange(k.size), k])


def gaussian_log_predictive(res, test) -> np.ndarray:
    """log P(k - 1/2 < y* <= k + 1/2) under the Gaussian predictive distribution."""
    eta = res.predict(test).to_numpy()
    var = np.full(eta.size, res.sigma**2)
    new = res.design.transform(test)
    condvar = res.ranef(condvar=True)
    for g, cov in zip(new.groupings, res.covariances, strict=True):
        sd = condvar[condvar.grpvar == g.factor].condsd.to_numpy()  # unseen levels: the prior
        var += np.where(g.codes >= 0, sd[np.maximum(g.codes, 0)] ** 2, cov[0, 0])
    y = test["y"].to_numpy().astype(float)
    sd = np.sqrt(var)
    upper = np.where(y >= 5, np.inf, (y + 0.5 - eta) / sd)
    lower = np.where(y <= 1, -np.inf, (y - 0.5 - eta) / sd)
    return np.log(stats.norm.cdf(upper) - stats.norm.cdf(lower))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15%% subset, short schedule")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    train, test = split(args.quick, args.seed)
    print(f"InstEval: {len(train)} training and {len(test)} held-out ratings\n")

    tic = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ordinal = mtf.MixedLM.from_formula(FORMULA, train, family="ordinal").fit(
            seed=args.seed, progress=False, **(QUICK if args.quick else {})
        )
    print(f"Ordinal model by MCEM: {time.perf_counter() - tic:.1f} s")
    for w in caught:
        print(f"  ({type(w.message).__name__}: {w.message})")
    print(ordinal.summary())

    gaussian = mtf.MixedLM.from_formula(FORMULA, train).fit(method="ml")
    print(f"\nGaussian model (exact ML): logLik {gaussian.loglik:.1f}, sigma {gaussian.sigma:.3f}")

    lp_ord = ordinal_log_predictive(ordinal, test)
    lp_gau = gaussian_log_predictive(gaussian, test)
    diff = lp_ord - lp_gau
    se = diff.std(ddof=1) * np.sqrt(diff.size)
    print("\nHeld-out predictive log-likelihood of the ratings (sum over rows):")
    print(f"  {'ordinal (cumulative logit), MCEM':<40}{lp_ord.sum():>12.1f}")
    print(f"  {'Gaussian (discretised), exact ML':<40}{lp_gau.sum():>12.1f}")
    print(f"  {'difference (ordinal - Gaussian)':<40}{diff.sum():>12.1f}  (s.e. {se:.1f})")
    print(f"  {'per held-out rating':<40}{diff.mean():>12.4f}")


if __name__ == "__main__":
    main()
