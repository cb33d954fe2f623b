r"""Monte Carlo EM: the driver around the compiled kernel (:mod:`mixedtf.fit.kernel`).

Schedule: ``warmup`` iterations adapt the HMC step size (dual averaging); the EM iterates
until ``burnin`` are discarded; after that the estimate is the average of the iterates
(Polyak), reported with its Monte Carlo standard error (autocorrelation-aware). Every chunk the
stopping rule checks those standard errors: each SD and the residual SD to ``rtol`` of
its value, each fixed effect to ``se_tol`` of its standard error (Louis' method).
Parameter change is not a stopping rule: a "<0.5% change over 10 iterations" rule fired
with SD(dept) 5-11% off on InstEval.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from mixedtf.design import Design
from mixedtf.errors import ConvergenceWarning, ModelTooLargeError, MonteCarloWarning, warn
from mixedtf.fit.blocked import CrossProducts, factorize
from mixedtf.fit.covariance import psd_factor, theta_from_factors, theta_names
from mixedtf.fit.joint_move import nested_pairs
from mixedtf.fit.kernel import EMKernel
from mixedtf.fit.marginal import fit_marginal, loglik_at
from mixedtf.model import compile_model
from mixedtf.model.parameters import scale_name, start_values
from mixedtf.results.results import AnalyticCheck, FitInfo, MixedLMResults

# The schedule's defaults. Gaussian models sample with joint moves of few-level terms and
# Rao-Blackwellised statistics (:mod:`mixedtf.fit.kernel`): their iterates mix in a few
# iterations (InstEval's settled in 8), and 20 + 40 met every accuracy target there. The other
# families' E-step draws alone and needs the longer schedule.
SCHEDULES = {
    "gaussian": {"n_leapfrog": 5, "chunk_size": 10, "warmup": 15, "burnin": 20, "min_averaged": 40},
    "other": {"n_leapfrog": 10, "chunk_size": 25, "warmup": 50, "burnin": 100, "min_averaged": 200},
}


@dataclass(frozen=True)
class MCEMOptions:
    """Options of :func:`fit_mcem`, validated on construction. The schedule (``None``:
    ``SCHEDULES`` by family, see :meth:`for_family`): leapfrog steps per HMC transition,
    iterations per compiled chunk, step-size adaptation, burn-in and the fewest averaged
    iterations before the stopping rule may fire."""

    chains: int | None = None  # default: see default_chains
    n_leapfrog: int | None = None
    chunk_size: int | None = None
    warmup: int | None = None
    burnin: int | None = None
    max_iterations: int = 1000
    min_averaged: int | None = None
    rtol: float = 0.02
    se_tol: float = 0.05
    target_accept: float = 0.75
    px_scale: bool = True  # scale parameter expansion in the M-step (PX-EM)
    joint_moves: bool = True  # Gaussian: exact joint draws of a few-level term with its nested one
    sa_exponent: float = 0.0  # > 0: SAEM steps (t - burnin)^-a on the covariance statistics
    dtype: str = "float32"
    scale: float | None = None
    device: str | None = None
    deterministic: bool = False
    progress: bool | None = None
    check: bool = True
    trace_levels: int | dict = 3  # levels per term whose draws (first chain) the trace keeps

    def __post_init__(self) -> None:
        for name in ("n_leapfrog", "chunk_size", "max_iterations"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if self.chains is not None and self.chains < 2:
            raise ValueError(
                f"chains must be at least 2 (the Louis covariance needs two); got {self.chains}."
            )
        if not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1); got {self.target_accept}.")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}.")
        if self.scale is not None and self.scale <= 0:
            raise ValueError(f"scale (a fixed residual SD) must be positive; got {self.scale}.")
        if not 0.0 <= self.sa_exponent <= 1.0:
            raise ValueError(
                f"sa_exponent must be in [0, 1] (0: plain MCEM); got {self.sa_exponent}."
            )
        if self.burnin is not None and self.warmup is not None and self.burnin < self.warmup:
            raise ValueError(f"burnin ({self.burnin}) must be at least warmup ({self.warmup}).")

    def for_family(self, family: str) -> MCEMOptions:
        """These options with the unset schedule filled in for ``family``; a burn-in left
        unset is never shorter than the warm-up."""
        defaults = SCHEDULES["gaussian" if family == "gaussian" else "other"]
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if "burnin" in filled and self.warmup is not None:
            filled["burnin"] = max(filled["burnin"], self.warmup)
        if "warmup" in filled and self.burnin is not None:
            filled["warmup"] = min(filled["warmup"], self.burnin)
        return replace(self, **filled)


def mcse(x: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the mean of each column of ``x`` (iterates in rows).

    ``sqrt(var * tau / T)``, with the integrated autocorrelation time ``tau`` the larger of
    Geyer's (1992) initial monotone sequence and an AR(1)'s ``(1 + rho) / (1 - rho)`` from
    the lag-1 autocorrelation, corrected for its bias ``-(1 + 3 rho) / T`` (Kendall). EM
    iterates are close to an AR(1) (the EM map's contraction feeds the Monte Carlo noise
    forward); on short runs Geyer's sequence stops at the first noisy negative pair and
    underestimated SD(dept)'s error on InstEval 2-3 fold with 40 iterates.
    """
    T = x.shape[0]
    if T < 4:
        return np.full(x.shape[1], np.nan)
    xc = x - x.mean(axis=0)
    n_fft = 1 << int(np.ceil(np.log2(2 * T)))
    f = np.fft.rfft(xc, n=n_fft, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=n_fft, axis=0)[:T] / T
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        if acov[0, j] <= 0:
            out[j] = 0.0
            continue
        rho = acov[:, j] / acov[0, j]
        pairs = rho[0 : T - 1 : 2][: (T - 1) // 2] + rho[1:T:2][: (T - 1) // 2]
        positive = np.flatnonzero(pairs <= 0)
        m = positive[0] if positive.size else pairs.size
        monotone = np.minimum.accumulate(pairs[:m])  # Geyer's initial monotone sequence
        tau = max(1.0, -1.0 + 2.0 * monotone.sum())
        r1 = rho[1]
        r1 = min(r1 + (1.0 + 3.0 * r1) / T, 0.95) if r1 > 0 else r1
        if r1 > 0:
            tau = max(tau, (1.0 + r1) / (1.0 - r1))
        out[j] = np.sqrt(acov[0, j] * tau / T)
    return out


def default_chains(design: Design, device: str, paired: frozenset[int] = frozenset()) -> int:
    """Chains per iteration: 128 on a GPU. On a CPU, Gaussian models get 16, or enough for
    ~256 draws per iteration of the fewest-level grouping without a joint move (``paired``:
    indices of the groupings with one), up to 32. With joint moves and Rao-Blackwellised
    statistics 16 chains met every accuracy target on InstEval (32 were needed without).

    Non-Gaussian models get ~4096 draws (a power of two in [16, 128], at most ~2.5 million
    chain-rows per gradient): their MCEM fixed point moved with the chain count -- cbpp's
    SD(herd) sat 0.8% low at 32 chains (4-8 Monte Carlo s.e.) and within 0.2% at 128;
    grouseticks' intercept was 0.55 SE off at 16 chains and 0.13 SE at 128."""
    if device == "GPU":
        return 128
    if design.family == "gaussian":
        unpaired = [g.n_levels for i, g in enumerate(design.groupings) if i not in paired]
        fewest = min(unpaired, default=256)
        return int(np.clip(2 ** int(np.ceil(np.log2(256 / fewest))), 16, 32))
    fewest = min(g.n_levels for g in design.groupings)
    chains = int(np.clip(2 ** int(np.ceil(np.log2(4096 / fewest))), 16, 128))
    while chains > 16 and chains * design.nobs > 2_500_000:
        chains //= 2
    return chains


def traced_levels(design: Design, spec: int | dict) -> tuple[np.ndarray, ...]:
    """Indices of the levels whose draws the trace keeps: the first ``spec`` levels of each
    grouping, or ``{group name: [level labels]}`` (other groupings: none)."""
    out = []
    for g in design.groupings:
        if isinstance(spec, dict):
            labels = [str(v) for v in spec.get(g.name, spec.get(g.factor, []))]
            lookup = {str(v): i for i, v in enumerate(g.levels)}
            missing = [v for v in labels if v not in lookup]
            if missing:
                raise ValueError(
                    f"trace_levels: {missing[:5]} are not levels of {g.name!r} "
                    f"(levels such as {list(g.levels[:5])})."
                )
            out.append(np.array([lookup[v] for v in labels], np.int32))
        else:
            if int(spec) < 0:
                raise ValueError(f"trace_levels must be >= 0 or a dict; got {spec!r}.")
            out.append(np.arange(min(int(spec), g.n_levels), dtype=np.int32))
    return tuple(out)


def _device_name(requested: str | None) -> str:
    if requested:
        return requested.upper()
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def fit_mcem(design: Design, seed: int | None = None, **options) -> MixedLMResults:
    """Fit a mixed model by Monte Carlo EM (see the module docstring; binomial, Poisson and
    ordinal models: :mod:`mixedtf.fit.mcem_glmm`, with option ``link``).

    ``seed`` makes the fit reproducible (same seed, same machine, same estimates on a CPU;
    on a GPU pass ``deterministic=True``, about 3x slower). Options: :class:`MCEMOptions`.

    Warns:
        ConvergenceWarning: the iteration budget ran out before the stopping rule held.
        MonteCarloWarning: the analytic check finds the estimate far from the exact optimum.
    """
    link = options.pop("link", None)
    opts = MCEMOptions(**options).for_family(design.family)
    if design.family != "gaussian":
        from mixedtf.fit.mcem_glmm import fit_mcem_glmm

        return fit_mcem_glmm(design, seed, opts, link)
    if not design.groupings:
        raise ValueError(
            "the formula has no random-effects term such as (1 | g); nothing to integrate."
        )
    t0 = time.perf_counter()
    pairs = nested_pairs(design.groupings, design.nobs) if opts.joint_moves else []
    device, chains, seed = run_settings(design, seed, opts, frozenset(p.few for p in pairs))
    dtype = tf.float32 if opts.dtype == "float32" else tf.float64
    with tf.device(f"/{device}:0"):
        model = compile_model(design, "gaussian", dtype=dtype, device=device)
        kernel = EMKernel(
            model,
            chains,
            opts.n_leapfrog,
            opts.target_accept,
            opts.chunk_size,
            fixed_sigma=opts.scale,
            sa_exponent=opts.sa_exponent,
            px_scale=opts.px_scale,
            pairs=pairs,
            traced=traced_levels(design, opts.trace_levels),
        )
        start = start_values(design)
        init = {
            "beta": start["beta"],
            "covs": [
                np.atleast_2d(start[scale_name(g)]) ** 2
                if g.k == 1
                else start[scale_name(g)] @ start[scale_name(g)].T
                for g in design.groupings
            ],
            "sigma2": (opts.scale if opts.scale is not None else float(start["sigma"])) ** 2,
        }
        state = kernel.initial_state(init, seed)
        try:  # formed once: the stopping rule's standard errors and the log-likelihood use it
            cp = CrossProducts.build(design)
        except ModelTooLargeError:
            cp = None
        result = iterate(kernel, state, opts, lambda st, av: _converged(kernel, st, av, opts, cp))
    return _results(design, MCEMRun(kernel, opts, *result, chains, device, seed, t0), cp)


def iterate(kernel, state: dict, opts: MCEMOptions, converged, on_chunk=None):
    """Run chunks until ``converged(state, averaged)`` holds after ``min_averaged`` averaged
    iterations, or the budget runs out; ``on_chunk(state, accumulate)`` sees every chunk.
    Returns the state, the trace, the first chunk's time (compile included) and why it
    stopped (``"tolerance"`` or ``"budget"``)."""
    from tqdm.auto import tqdm

    layout = kernel.layout
    show = sys.stderr.isatty() if opts.progress is None else opts.progress
    bar = tqdm(total=opts.max_iterations, disable=not show, desc="MCEM", unit="it")
    rows: list[np.ndarray] = []
    compile_time = None
    stopped = "budget"
    iteration = 0
    while iteration < opts.max_iterations:
        adapt = iteration < opts.warmup
        accumulate = iteration >= opts.burnin
        tic = time.perf_counter()
        state, trace = kernel.run(state, adapt, accumulate)
        if compile_time is None:
            compile_time = time.perf_counter() - tic  # first chunk: XLA compile + one chunk
        rows.append(trace)
        if on_chunk is not None:
            on_chunk(state, accumulate)
        iteration += trace.shape[0]
        full = np.concatenate(rows)
        bar.update(trace.shape[0])
        bar.set_postfix(
            accept=f"{trace[:, layout.names.index('accept')].mean():.2f}",
            logp=f"{trace[-1, layout.names.index('logp')]:.1f}",
        )
        averaged = full[opts.burnin :]
        if averaged.shape[0] >= opts.min_averaged and converged(state, averaged):
            stopped = "tolerance"
            break
    bar.close()
    return state, np.concatenate(rows), compile_time, stopped


def _sd_columns(layout) -> list[int]:
    return [i for i, n in enumerate(layout.names) if n.startswith("var:") or n == "sigma2"]


def _louis_vcov(kernel: EMKernel, state: dict, sigma2: float) -> np.ndarray:
    X = kernel.model.design.X
    missing = state["louis"] / max(float(state["n_louis"]), 1.0)
    info = X.T @ X / sigma2 - missing / sigma2**2
    try:
        return np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return np.full_like(info, np.nan)


def _fixed_vcov(
    kernel: EMKernel, state: dict, beta_covs_sigma2, cp: CrossProducts | None
) -> np.ndarray:
    """Covariance of the fixed effects at the given parameters: lme4's ``vcov``,
    ``sigma^2 (R_X' R_X)^{-1}`` (conditional on the covariance parameters), evaluated at the
    MCEM estimates with the blocked factor; Louis' method when that is too large. Louis'
    observed information is a small difference of two large matrices when most of an
    effect's information is missing (InstEval's intercept) and came out 5-120% off."""
    _, covs, sigma2 = beta_covs_sigma2
    f = (
        None
        if cp is None
        else factorize(cp, theta_from_factors([psd_factor(c / sigma2) for c in covs]))
    )
    return _louis_vcov(kernel, state, sigma2) if f is None else f.fixed_vcov(sigma2)


def _converged(kernel: EMKernel, state: dict, averaged: np.ndarray, opts: MCEMOptions, cp) -> bool:
    layout = kernel.layout
    mean, mc_se = averaged.mean(axis=0), mcse(averaged)
    var_cols = _sd_columns(layout)
    # relative MCSE of an SD is half the relative MCSE of its variance
    sd_ok = all(mc_se[i] / (2.0 * max(mean[i], 1e-12)) <= opts.rtol for i in var_cols)
    se = np.sqrt(
        np.diag(_fixed_vcov(kernel, state, _unpack(kernel.model.design, layout, mean), cp))
    )
    beta_ok = bool(np.all(mc_se[: layout.p] <= opts.se_tol * se))
    return sd_ok and beta_ok


def unpack_covariances(design: Design, layout, mean: np.ndarray, at: int) -> list[np.ndarray]:
    """Each grouping's covariance from its vech columns of a trace row, from column ``at``."""
    covs = []
    for g, size in zip(design.groupings, layout.vech_sizes, strict=True):
        cov = np.zeros((g.k, g.k))
        rows, cols = np.tril_indices(g.k)
        cov[rows, cols] = mean[at : at + size]
        cov[cols, rows] = mean[at : at + size]
        covs.append(cov)
        at += size
    return covs


def _unpack(design: Design, layout, mean: np.ndarray):
    p = layout.p
    covs = unpack_covariances(design, layout, mean, p)
    sigma2 = float(mean[layout.names.index("sigma2")])
    return mean[:p], covs, sigma2


def run_settings(
    design: Design, seed: int | None, opts: MCEMOptions, paired: frozenset[int] = frozenset()
) -> tuple[str, int, int]:
    """Device, chain count and seed of a fit (turns on op determinism when asked)."""
    if opts.deterministic:
        tf.config.experimental.enable_op_determinism()
    device = _device_name(opts.device)
    chains = opts.chains or default_chains(design, device, paired)
    seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
    return device, chains, seed


@dataclass(frozen=True, eq=False)
class MCEMRun:
    """What a finished run of the kernel left: its final state, trace and bookkeeping, with
    the Polyak averages, their Monte Carlo standard errors and the posterior moments."""

    kernel: Any
    opts: MCEMOptions
    state: dict
    trace: np.ndarray
    compile_time: float
    stopped: str  # "tolerance" or "budget"
    chains: int
    device: str
    seed: int
    t0: float

    @cached_property
    def averaged(self) -> np.ndarray:
        """The iterates after burn-in (the second half if the run was shorter)."""
        T, burnin = self.trace.shape[0], self.opts.burnin
        return self.trace[burnin:] if burnin < T else self.trace[T // 2 :]

    @cached_property
    def mean(self) -> np.ndarray:
        return self.averaged.mean(axis=0)

    @cached_property
    def mc_se(self) -> np.ndarray:
        return mcse(self.averaged)

    def posterior_moments(self) -> tuple[list, list]:
        """Per grouping, the mean and covariance of the draws after burn-in (the conditional
        modes and variances)."""
        n_draws = max(float(self.state["n_louis"]), 1.0) * self.chains
        modes = [sb / n_draws for sb in self.state["sum_b"]]
        condcov = [
            sbb / n_draws - np.einsum("lk,lm->lkm", m, m)
            for sbb, m in zip(self.state["sum_bb"], modes, strict=True)
        ]
        return modes, condcov

    def fit_info(self, m_step: str, recorded: list[str], **extra) -> FitInfo:
        """``FitInfo`` of the run (warns with ``ConvergenceWarning`` when the budget ran out);
        ``extra`` adds to its ``extra`` dict."""
        opts, layout, trace = self.opts, self.kernel.layout, self.trace
        if self.stopped == "budget":
            warn(
                recorded,
                f"MCEM used its budget of {opts.max_iterations} iterations before the Monte "
                f"Carlo standard errors met rtol={opts.rtol} / se_tol={opts.se_tol}; the "
                "estimates carry the Monte Carlo errors in fit_info.extra['mcse']. Raise "
                "max_iterations or chains.",
                ConvergenceWarning,
            )
        k = layout.n_parameters
        return FitInfo(
            method="mcem",
            converged=self.stopped == "tolerance",
            iterations=int(trace.shape[0]),
            n_evaluations=int(trace.shape[0]) * (opts.n_leapfrog + 1),
            wall_time=time.perf_counter() - self.t0,
            optimizer=(
                f"MCEM: HMC E-step ({self.chains} chains x {opts.n_leapfrog} leapfrog steps), "
                + m_step
            ),
            message=f"stopped by {self.stopped}",
            device=self.device,
            seed=self.seed,
            extra={
                "mcse": dict(zip(layout.names[:k], self.mc_se[:k], strict=True)),
                "acceptance": float(trace[opts.warmup :, layout.names.index("accept")].mean()),
                "step_size": float(np.exp(self.state["log_eps_bar"])),
                "compile_time": self.compile_time,
                "chains": self.chains,
                "averaged_iterations": int(self.averaged.shape[0]),
                "trace": pd.DataFrame(trace, columns=list(layout.names)),
                "warnings": recorded,
                **extra,
            },
        )


def _results(design: Design, run: MCEMRun, cp: CrossProducts | None) -> MixedLMResults:
    beta, covs, sigma2 = _unpack(design, run.kernel.layout, run.mean)
    sigma = float(np.sqrt(sigma2))
    modes, condcov = run.posterior_moments()
    params = {"beta": beta, "sigma": sigma, "covariances": covs}
    loglik = loglik_at(cp, params) if cp is not None else float("nan")
    info = run.fit_info("closed-form PX M-step", [])
    res = MixedLMResults(
        design=design,
        method="mcem",
        beta=beta,
        beta_cov=_fixed_vcov(run.kernel, run.state, (beta, covs, sigma2), cp),
        theta=theta_from_factors([psd_factor(c / sigma2) for c in covs]),
        theta_names=theta_names(design.groupings),
        sigma=sigma,
        covariances=covs,
        modes=modes,
        loglik=loglik,
        deviance=-2.0 * loglik,
        fit_info=info,
        conditional_covariances=lambda: condcov,
    )
    if run.opts.check and np.isfinite(loglik):
        res.check = analytic_check(res, run.mc_se, run.kernel.layout, cp)
    return res


def analytic_check(
    res: MixedLMResults, mc_se: np.ndarray, layout, cp: CrossProducts | None = None
) -> AnalyticCheck:
    """Compare an MCEM fit with the exact ML optimum; warn when the log-likelihood gap is large."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = fit_marginal(res.design, reml=False, cross_products=cp)
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
                    a.sdcor / b.sdcor - 1,
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
            res.fit_info.extra.setdefault("warnings", []),
            f"the MCEM estimate's log-likelihood is {gap:.2f} below the exact optimum's; "
            "more chains or iterations (or method='ml') will help.",
            MonteCarloWarning,
        )
    return AnalyticCheck(res.loglik, exact.loglik, gap, table)
