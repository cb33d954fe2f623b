"""``res.summary()``: statsmodels' MixedLM summary crossed with lme4's.

The numbers come from the results object as DataFrames (``coef_table``, ``varcorr``);
this module only lays them out as text (``as_text``) or HTML (``_repr_html_``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

WIDTH = 78


@dataclass(frozen=True)
class Summary:
    """The pieces of a fit's summary; ``str(summary)`` is the text."""

    header: list[tuple[str, str]]
    fixed: pd.DataFrame
    random: pd.DataFrame
    diagnostics: list[tuple[str, str]]
    warnings: list[str]
    cutpoints: pd.DataFrame | None = None  # ordinal models: the threshold coefficients

    def as_text(self) -> str:
        lines = ["Mixed Linear Model Results (mixedtf)".center(WIDTH).rstrip(), "=" * WIDTH]
        pairs = self.header
        half = (len(pairs) + 1) // 2
        for left, right in zip(pairs[:half], [*pairs[half:], ("", "")], strict=False):
            right_cell = f"{right[0] + ':' if right[0] else '':<20}{right[1]}"
            if len(left[1]) > 20:  # a long left value (many groups) gets its own line
                lines.append(f"{left[0] + ':':<18}{left[1]}")
                lines.append(f"{'':<39}{right_cell}".rstrip())
            else:
                lines.append(f"{left[0] + ':':<18}{left[1]:<21}{right_cell}".rstrip())
        lines.append("-" * WIDTH)
        lines += _fixed_lines(self.fixed)
        if self.cutpoints is not None:
            lines.append("-" * WIDTH)
            lines.append("Cutpoints (threshold coefficients):")
            lines += _fixed_lines(self.cutpoints)
        lines.append("-" * WIDTH)
        lines.append("Random effects:")
        lines += _random_lines(self.random)
        if self.diagnostics:
            lines.append("-" * WIDTH)
            lines.append("Monte Carlo EM:")
            lines += [f"  {k + ':':<30}{v}" for k, v in self.diagnostics]
        lines.append("=" * WIDTH)
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        head = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self.header
        )
        diag = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self.diagnostics
        )
        warn = "".join(f"<p><b>Warning:</b> {html.escape(w)}</p>" for w in self.warnings)
        return (
            "<div><h4>Mixed Linear Model Results (mixedtf)</h4>"
            f"<table>{head}</table>{self.fixed.to_html(float_format=_fmt)}"
            + (
                ""
                if self.cutpoints is None
                else f"<p>Cutpoints</p>{self.cutpoints.to_html(float_format=_fmt)}"
            )
            + f"<p>Random effects</p>{self.random.to_html(index=False, na_rep='')}"
            f"{f'<p>Monte Carlo EM</p><table>{diag}</table>' if diag else ''}{warn}</div>"
        )


def _fixed_lines(table: pd.DataFrame) -> list[str]:
    width = max(12, *(len(str(i)) for i in table.index)) + 1
    cols = list(table.columns)
    out = [" " * width + "".join(f"{c:>11}" for c in cols)]
    for name, row in table.iterrows():
        cells = [
            f"{v:>11.3g}"
            if c in ("P>|z|", "P>|t|")
            else f"{v:>11.2f}"
            if c == "df"
            else f"{v:>11.4f}"
            for c, v in zip(cols, row, strict=True)
        ]
        out.append(f"{name:<{width}}" + "".join(cells))
    return out


def _random_lines(table: pd.DataFrame) -> list[str]:
    w_group = max(9, *(len(g) for g in table.Group)) + 1
    w_name = max(12, *(len(n) for n in table.Name)) + 1
    out = [f" {'Group':<{w_group}}{'Name':<{w_name}}{'Variance':>12}{'Std.Dev.':>12}  Corr"]
    for r in table.itertuples():
        out.append(
            f" {r.Group:<{w_group}}{r.Name:<{w_name}}{r.Variance:>12}{r._4:>12}  {r.Corr}".rstrip()
        )
    return out


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3e}"


def _random_table(res) -> pd.DataFrame:
    """Group, Name, Variance, Std.Dev., Corr (lme4's print layout: correlations beside the SD)."""
    vc = res.varcorr()
    rows = []
    for g in res.design.groupings:
        part = vc[(vc.grp == g.name) & vc.var2.isna()]
        corr = vc[(vc.grp == g.name) & vc.var2.notna()]
        for i, r in enumerate(part.itertuples()):
            cors = [c.sdcor for c in corr.itertuples() if c.var2 == r.var1]
            rows.append(
                (
                    g.name if i == 0 else "",
                    r.var1,
                    f"{r.vcov:.4f}",
                    f"{r.sdcor:.4f}",
                    " ".join(f"{c:.2f}" for c in cors),
                )
            )
    if res.has_scale:
        rows.append(("Residual", "", f"{res.sigma**2:.4f}", f"{res.sigma:.4f}", ""))
    return pd.DataFrame(rows, columns=["Group", "Name", "Variance", "Std.Dev.", "Corr"])


METHOD_NAMES = {
    "ml": "ML (exact)",
    "reml": "REML (exact)",
    "mcem": "Monte Carlo EM (ML)",
    "laplace": "Laplace (ML)",
}


def _method_name(res) -> str:
    info = res.fit_info
    if res.method == "agq":
        return f"AGQ, {info.n_agq} nodes (ML)"
    return METHOD_NAMES.get(res.method, res.method)


def _header(res) -> list[tuple[str, str]]:
    info = res.fit_info
    groups = ", ".join(f"{k} ({v})" for k, v in res.ngroups.items())
    loglik = f"{res.loglik:.4f}" if np.isfinite(res.loglik) else "n/a"
    if res.method == "mcem" and info.loglik_method != "exact" and np.isfinite(res.loglik):
        loglik += f" ({info.loglik_method.capitalize()})"
    family = [
        (f"Family {name}", f"{value:.4f} (s.e. {res.family_params_se.get(name, np.nan):.4f})")
        for name, value in res.family_params.items()
    ]
    return [
        ("Model", "MixedLM"),
        ("Family / link", f"{res.design.family} / {res.link}"),
        *family,
        ("Method", _method_name(res)),
        ("No. observations", str(res.nobs)),
        ("Groups", groups),
        ("Formula", res.design.formula.text),
        ("Log-likelihood", loglik),
        ("AIC / BIC", f"{res.aic:.2f} / {res.bic:.2f}"),
        ("Converged", "yes" if info.converged else "no"),
        ("Device / wall time", f"{info.device} / {info.wall_time:.2f} s"),
    ]


def _interval_names(alpha: float) -> tuple[str, str]:
    return f"[{alpha / 2:.3f}", f"{1 - alpha / 2:.3f}]"


def _fixed_table(res, alpha: float, ddf: str | None = None) -> pd.DataFrame:
    lo, hi = _interval_names(alpha)
    p_name = "P>|t|" if ddf else "P>|z|"
    table = res.coef_table(alpha, ddf)
    if ddf:  # lmerTest's columns; the intervals are confint()'s
        table = table.drop(columns=["ci_lower", "ci_upper"])
    return table.rename(
        columns={
            "estimate": "Coef.",
            "std_error": "Std.Err.",
            "df": "df",
            "z": "z",
            "t": "t",
            "p_value": p_name,
            "ci_lower": lo,
            "ci_upper": hi,
        }
    )


def _cutpoint_table(res, alpha: float) -> pd.DataFrame | None:
    if res.cutpoints is None:
        return None
    lo, hi = _interval_names(alpha)
    table = res.cutpoint_table(alpha).rename(
        columns={"estimate": "Coef.", "std_error": "Std.Err.", "ci_lower": lo, "ci_upper": hi}
    )
    table.index.name = None
    return table


def _mcem_diagnostics(res) -> list[tuple[str, str]]:
    """Iterations, acceptance, the largest Monte Carlo s.e. and the check (MCEM fits)."""
    if res.method != "mcem":
        return []
    info = res.fit_info
    extra = info.extra
    mc = extra.get("mcse", {})
    acceptance = extra.get("acceptance", float("nan"))
    step = extra.get("step_size", float("nan"))
    sampler = (
        ("E-step", "Gibbs sweeps (exact draws)")
        if np.isnan(step)
        else ("acceptance / step size", f"{acceptance:.2f} / {step:.4f}")
    )
    out = [
        ("iterations x chains", f"{info.iterations} x {extra.get('chains')} ({info.message})"),
        sampler,
        ("largest Monte Carlo s.e.", f"{max(mc.values()):.3e}" if mc else "n/a"),
    ]
    if res.check is None and extra.get("check_skipped"):
        out.append(("check vs exact ML", f"skipped: {extra['check_skipped']}"))
    if res.check is not None:
        worst = res.check.table.dropna(subset=["diff_in_se"]).diff_in_se.abs().max()
        out.append(
            (
                "check vs exact ML",
                f"logLik gap {res.check.gap:.4f}; largest |diff| {worst:.2f} s.e.",
            )
        )
    return out


def summarize(res, alpha: float = 0.05, ddf: str | None = None) -> Summary:
    """The :class:`Summary` of a fitted model (``ddf``: see ``coef_table``)."""
    return Summary(
        _header(res),
        _fixed_table(res, alpha, ddf),
        _random_table(res),
        _mcem_diagnostics(res),
        list(res.fit_info.warnings),
        _cutpoint_table(res, alpha),
    )
