"""sleepstudy: correlated random intercepts and slopes, fitted by REML as lme4's ``lmer``.

    python examples/sleepstudy.py

Reaction times of 18 subjects over 10 days of sleep deprivation (lme4's sleepstudy,
bundled). Fits ``Reaction ~ Days + (Days | Subject)`` by REML, prints the summary, the
per-subject intercepts and slopes (lme4's ``coef``: fixed plus random), the profile
intervals (lme4's ``confint``), compares with the uncorrelated model ``(Days || Subject)``
and with an MCEM fit, and ends by checking the estimates and intervals against lme4
1.1-31's (estimates to 1e-4, the 4-digit intervals to 2e-3).
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd

import mixedtf as mtf

# lmer(Reaction ~ Days + (Days | Subject), sleepstudy), lme4 1.1-31
# (tests/reference/sleepstudy_slope_REML.json)
LME4 = {
    "fixef": {"(Intercept)": 251.405104848485, "Days": 10.467285959596},
    "sd": {"(Intercept)": 24.7406579949841, "Days": 5.92213765889808},
    "sigma": 25.5917957216753,
    "REML criterion": 1743.62827195995,
}
# confint(m) (profile; lme4 profiles a REML fit by ML), oldNames = FALSE
# (tests/reference/local/confint.json)
LME4_PROFILE = {
    "sd_(Intercept)|Subject": (14.3814, 37.7160),
    "cor_Days.(Intercept)|Subject": (-0.4815, 0.6850),
    "sd_Days|Subject": (3.8012, 8.7534),
    "sigma": (22.8983, 28.8580),
    "(Intercept)": (237.6807, 265.1295),
    "Days": (7.3587, 13.5759),
}


def main() -> None:
    sleep = mtf.datasets.load("sleepstudy")
    model = mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleep)
    res = model.fit(method="reml")
    print(res.summary(), "\n")

    per_subject = res.coef()["Subject"]  # lme4's coef(fit)$Subject
    print("per-subject intercept and slope (fixed + random), first five subjects:")
    print(per_subject.head().round(3), "\n")

    profile = mtf.confint(res, method="profile")  # lme4's confint(m)
    print("95% profile intervals (lme4's confint(m)):")
    print(profile.round(4).to_string(), "\n")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = model.fit(method="ml")
        uncorrelated = mtf.MixedLM.from_formula("Reaction ~ Days + (Days || Subject)", sleep).fit(
            method="ml"
        )
    print("does the intercept-slope correlation matter? (ML fits, likelihood-ratio test)")
    with pd.option_context("display.width", 120, "display.max_columns", 10):
        print(mtf.anova(uncorrelated, ml), "\n")

    mcem = model.fit(method="mcem", seed=1, progress=False)
    print("Monte Carlo EM (ML) against the exact ML fit (res.check):")
    print(mcem.check.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "\n")

    vc = res.varcorr()
    sds = vc[vc.var2.isna() & (vc.grp == "Subject")].set_index("var1")["sdcor"]
    checks = {
        **{f"fixef {k}": (res.fixef()[k], v) for k, v in LME4["fixef"].items()},
        **{f"SD Subject {k}": (sds[k], v) for k, v in LME4["sd"].items()},
        "sigma": (res.sigma, LME4["sigma"]),
        "REML criterion": (res.reml_criterion, LME4["REML criterion"]),
    }
    for name, (lo, hi) in LME4_PROFILE.items():
        checks[f"profile lower {name}"] = (profile.loc[name].iloc[0], lo)
        checks[f"profile upper {name}"] = (profile.loc[name].iloc[1], hi)
    print("against lme4 1.1-31:")
    for name, (ours, theirs) in checks.items():
        print(f"  {name:42s} {ours:12.5f} {theirs:12.5f}  rel. diff {ours / theirs - 1:+.1e}")
    worst = max(abs(ours / theirs - 1) for ours, theirs in checks.values())
    if not np.isfinite(worst) or worst > 2e-3:
        raise SystemExit(f"an estimate differs from lme4's by {worst:.1e} (relative)")


if __name__ == "__main__":
    main()
