"""The analytic check of a Gaussian MCEM fit: its estimates next to the exact ML optimum
(same design, same cross-products), the differences in standard errors, and a warning when
the log-likelihood gap is large."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mixedtf.errors import MonteCarloWarning, warn
from mixedtf.fit.exact import fit_exact
from mixedtf.linalg.blocked import CrossProducts
from mixedtf.results.info import AnalyticCheck
from mixedtf.results.results import MixedLMResults


def analytic_check(
    res: MixedLMResults, mc_se: np.ndarray, layout, cp: CrossProducts | None = None
) -> AnalyticCheck:
    """Compare an MCEM fit with the exact ML optimum; warn when the log-likelihood gap is large."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = fit_exact(res.design, reml=False, cross_products=cp)
    rows = []
    for name, est, ref, se in zip(
        res.fixef().index, res.fixef(), exact.fixef(), exact.bse(), strict=True
    ):
        rows.append(
            (
                f"beta:{name}",
                est,
                ref,
                est - ref,
                (est - ref) / abs(ref) if ref else np.nan,
                (est - ref) / se,
            )
        )
    ours, theirs = res.varcorr(), exact.varcorr()
    for a, b in zip(ours.itertuples(), theirs.itertuples(), strict=True):
        if pd.isna(a.var2):
            name = f"sd:{a.grp}:{a.var1}" if a.grp != "Residual" else "sigma"
            col = layout.names.index("sigma2" if a.grp == "Residual" else f"var:{a.grp}:{a.var1}")
            se = mc_se[col] / (2 * a.sdcor) if a.sdcor > 0 else np.nan
            rows.append(
                (
                    name,
                    a.sdcor,
                    b.sdcor,
                    a.sdcor - b.sdcor,
                    a.sdcor / b.sdcor - 1 if b.sdcor > 0 else np.nan,  # a singular exact fit
                    (a.sdcor - b.sdcor) / se,
                )
            )
        else:
            rows.append(
                (
                    f"cor:{a.grp}:{a.var1}:{a.var2}",
                    a.sdcor,
                    b.sdcor,
                    a.sdcor - b.sdcor,
                    np.nan,
                    np.nan,
                )
            )
    table = pd.DataFrame(
        rows, columns=["parameter", "mcem", "exact", "diff", "rel_diff", "diff_in_se"]
    )
    gap = exact.loglik - res.loglik
    if gap > 1.0:
        warn(
            res.fit_info.warnings,
            f"the MCEM estimate's log-likelihood is {gap:.2f} below the exact optimum's; "
            "more chains or iterations (or method='ml') will help.",
            MonteCarloWarning,
        )
    return AnalyticCheck(res.loglik, exact.loglik, gap, table)
