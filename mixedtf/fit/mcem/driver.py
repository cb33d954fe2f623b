"""Monte Carlo EM: the driver every family shares, around a compiled kernel
(:mod:`~mixedtf.fit.mcem.gaussian_kernel`, :mod:`~mixedtf.fit.mcem.glmm_kernel`).

Schedule: ``warmup`` iterations adapt the HMC step size (dual averaging); the EM iterates
until ``burnin`` are discarded; after that the estimate is the average of the iterates
(Polyak), reported with its Monte Carlo standard error (autocorrelation-aware). Every chunk
the stopping rule (:func:`converged`) checks those standard errors: each SD and the
residual SD to ``rtol`` of its value, each fixed effect to ``se_tol`` of its standard
error. Parameter change is not a stopping rule: a "<0.5% change over 10 iterations" rule
fired with SD(dept) 5-11% off on InstEval.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from mixedtf.design import Design
from mixedtf.errors import ConvergenceWarning, OptionError, warn
from mixedtf.fit.options import MCEMOptions
from mixedtf.model import backend, compile_model
from mixedtf.results.info import FitInfo


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


# chain-rows per gradient above which a Gaussian fit halves its chains (to 8 at least):
# with a million rows the per-level statistics are precise, and 8 chains met every
# accuracy target of the 1M-row crossed benchmark (SDs within 0.25%, fixed effects within
# 0.04 SE of exact ML) at 0.74 of the 16-chain time
GAUSSIAN_CHAIN_ROWS = 8_000_000
# ... and on a GPU, where 128 chains are the default: 2^26 chain-rows keep the per-row
# arrays (linear predictor, residuals, gradients: float32 [chains, N]) near 1 GB at 10M
# rows (8 chains) and InstEval at 128
GPU_CHAIN_ROWS = 2**26
# chain-rows per gradient above which a non-Gaussian fit on a CPU halves its chains (to 16
# at least); where the draws rule would exceed it, the terms with a ridge move (whose
# Rao-Blackwellised statistics are the least noisy) no longer count as the fewest-level
# term: ordinal InstEval then runs 16 chains, its var(dept) Monte Carlo s.e. 7.1e-5
# against 3.4e-4 at 32 chains without the move
GLMM_CHAIN_ROWS = 2_500_000


def _halved(chains: int, nobs: int, max_chain_rows: int, floor: int) -> int:
    """``chains`` halved (to ``floor`` at least) while ``chains * nobs`` exceeds
    ``max_chain_rows``: the per-row arrays of a gradient are ``chains x nobs``."""
    while chains > floor and chains * nobs > max_chain_rows:
        chains //= 2
    return chains


def default_chains(design: Design, device: str, paired: frozenset[int] = frozenset()) -> int:
    """Chains per iteration: 128 on a GPU (fewer above ``GPU_CHAIN_ROWS`` chain-rows). On
    a CPU, Gaussian models get 16, or enough for ~256 draws per iteration of the fewest-level grouping without a joint move (``paired``:
    indices of the groupings with one), up to 32, halved (to 8 at least) while they would
    exceed ``GAUSSIAN_CHAIN_ROWS`` chain-rows. With joint moves and Rao-Blackwellised
    statistics 16 chains met every accuracy target on InstEval (32 were needed without).

    Non-Gaussian models get ~4096 draws of the fewest-level term (a power of two in
    [16, 128], at most ``GLMM_CHAIN_ROWS`` chain-rows per gradient): their MCEM fixed
    point moved with the chain count -- cbpp's SD(herd) sat 0.8% low at 32 chains (4-8
    Monte Carlo s.e.) and within 0.2% at 128; grouseticks' intercept was 0.55 SE off at 16
    chains and 0.13 SE at 128. Where that count would pass the chain-row cap, terms with
    a ridge move (``paired``) are left out of the fewest-level term."""
    if device == "GPU":
        return _halved(128, design.nobs, GPU_CHAIN_ROWS, 8)
    if design.family == "gaussian":
        unpaired = [g.n_levels for i, g in enumerate(design.groupings) if i not in paired]
        fewest = min(unpaired, default=256)
        chains = int(np.clip(2 ** int(np.ceil(np.log2(256 / fewest))), 16, 32))
        return _halved(chains, design.nobs, GAUSSIAN_CHAIN_ROWS, 8)

    def draws_rule(levels: list[int]) -> int:
        fewest = min(levels, default=4096)
        return int(np.clip(2 ** int(np.ceil(np.log2(4096 / fewest))), 16, 128))

    chains = draws_rule([g.n_levels for g in design.groupings])
    if chains * design.nobs > GLMM_CHAIN_ROWS:  # the cap binds: count the unpaired terms
        unpaired = [g.n_levels for i, g in enumerate(design.groupings) if i not in paired]
        chains = draws_rule(unpaired)
    return _halved(chains, design.nobs, GLMM_CHAIN_ROWS, 16)


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
                raise OptionError(
                    f"trace_levels: {missing[:5]} are not levels of {g.name!r} "
                    f"(levels such as {list(g.levels[:5])})."
                )
            out.append(np.array([lookup[v] for v in labels], np.int32))
        else:
            out.append(np.arange(min(int(spec), g.n_levels), dtype=np.int32))
    return tuple(out)


def build_kernel(
    kernel_class: type, design: Design, opts: MCEMOptions, device: str, chains: int, **extra
):
    """The design compiled in ``opts.dtype`` for ``device`` and wrapped in ``kernel_class``
    with the schedule's settings on the backend of ``opts`` (call inside its
    ``device_scope``); ``extra`` goes to the kernel."""
    sharded = opts.devices > 1  # the unsorted scatter: the sorted order would cross devices
    model = compile_model(
        design,
        dtype=opts.dtype,
        device=device,
        backend=opts.backend,
        gather_mode="unsorted" if sharded else None,
    ).padded(opts.devices)
    return kernel_class(
        model,
        chains,
        opts.n_leapfrog,
        opts.target_accept,
        opts.chunk_size,
        traced=traced_levels(design, opts.trace_levels),
        devices=opts.devices,
        **extra,
    )


def run_settings(
    design: Design, seed: int | None, opts: MCEMOptions, paired: frozenset[int] = frozenset()
) -> tuple[str, int, int]:
    """Device, chain count and seed of a fit (turns on op determinism when asked)."""
    ops = backend.get(opts.backend)
    if opts.deterministic:
        ops.set_deterministic()
    device = ops.default_device(opts.device)
    chains = opts.chains or default_chains(design, device, paired)
    seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
    return device, chains, seed


@dataclass(frozen=True)
class Estimate:
    """The parameters in one trace row: ``beta``, ordinal ``cuts`` (empty otherwise), each
    grouping's covariance and, for Gaussian models, ``sigma2`` (None otherwise)."""

    beta: np.ndarray
    cuts: np.ndarray
    covs: list[np.ndarray]
    sigma2: float | None


def unpack(design: Design, layout: Any, row: np.ndarray) -> Estimate:
    """The :class:`Estimate` in a trace row (or an average of rows)."""
    p, nc = layout.p, layout.n_cuts
    covs, at = [], p + nc
    for g, size in zip(design.groupings, layout.vech_sizes, strict=True):
        cov = np.zeros((g.k, g.k))
        rows, cols = np.tril_indices(g.k)
        cov[rows, cols] = row[at : at + size]
        cov[cols, rows] = row[at : at + size]
        covs.append(cov)
        at += size
    sigma2 = float(row[layout.names.index("sigma2")]) if "sigma2" in layout.names else None
    return Estimate(row[:p], row[p : p + nc], covs, sigma2)


def converged(
    design: Design,
    layout: Any,
    averaged: np.ndarray,
    opts: MCEMOptions,
    standard_errors: Callable[[Estimate], np.ndarray],
) -> bool:
    """The stopping rule: every variance's (and sigma^2's) Monte Carlo error, halved for
    its SD, within ``rtol`` of the SD; every fixed effect's (and cutpoint's) within
    ``se_tol`` of its standard error, ``standard_errors(estimate)``."""
    mean, mc_se = averaged.mean(axis=0), mcse(averaged)
    var_cols = [i for i, n in enumerate(layout.names) if n.startswith("var:") or n == "sigma2"]
    # relative MCSE of an SD is half the relative MCSE of its variance
    if any(mc_se[i] / (2.0 * max(mean[i], 1e-12)) > opts.rtol for i in var_cols):
        return False
    d = layout.p + layout.n_cuts
    return bool(np.all(mc_se[:d] <= opts.se_tol * standard_errors(unpack(design, layout, mean))))


def iterate(
    kernel: Any,
    state: dict,
    opts: MCEMOptions,
    stop: Callable[[dict, np.ndarray], bool],
    progress: bool | None = None,
    on_chunk: Callable[[dict, bool], None] | None = None,
):
    """Run chunks until ``stop(state, averaged)`` holds after ``min_averaged`` averaged
    iterations, or the budget runs out; ``on_chunk(state, accumulate)`` sees every chunk.
    Returns the state, the trace, the first chunk's time (compile included) and why it
    stopped (``"tolerance"`` or ``"budget"``)."""
    from tqdm.auto import tqdm

    layout = kernel.layout
    show = sys.stderr.isatty() if progress is None else bool(progress)
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
        if averaged.shape[0] >= opts.min_averaged and stop(state, averaged):
            stopped = "tolerance"
            break
    bar.close()
    return state, np.concatenate(rows), compile_time, stopped


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

    def fit_info(
        self, m_step: str, recorded: list[str], loglik_method: str, vcov_method: str
    ) -> FitInfo:
        """``FitInfo`` of the run (warns with ``ConvergenceWarning`` when the budget ran out)."""
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
        if opts.n_leapfrog is None:  # the Gaussian kernel: Gibbs sweeps
            e_step, evaluations = f"Gibbs E-step ({self.chains} chains)", int(trace.shape[0])
            acceptance, step_size = 1.0, float("nan")
        else:
            e_step = f"HMC E-step ({self.chains} chains x {opts.n_leapfrog} leapfrog steps)"
            evaluations = int(trace.shape[0]) * (opts.n_leapfrog + 1)
            acceptance = float(trace[opts.warmup :, layout.names.index("accept")].mean())
            step_size = float(np.exp(self.state["log_eps_bar"]))
        return FitInfo(
            method="mcem",
            converged=self.stopped == "tolerance",
            iterations=int(trace.shape[0]),
            n_evaluations=evaluations,
            wall_time=time.perf_counter() - self.t0,
            optimizer=f"MCEM: {e_step}, {m_step}",
            message=f"stopped by {self.stopped}",
            device=self.device,
            seed=self.seed,
            link=self.kernel.model.design.family_spec.link,
            loglik_method=loglik_method,
            vcov_method=vcov_method,
            warnings=recorded,
            extra={
                "mcse": dict(zip(layout.names[:k], self.mc_se[:k], strict=True)),
                "acceptance": acceptance,
                "step_size": step_size,
                "compile_time": self.compile_time,
                "compile_cache": getattr(self.kernel, "compile_cache", None),
                "program": getattr(self.kernel._step, "origin", None) or "traced",
                "backend": self.kernel.ops.NAME,
                "devices": self.kernel.devices,
                "versions": self.kernel.ops.versions(),
                "chains": self.chains,
                "averaged_iterations": int(self.averaged.shape[0]),
                "trace": pd.DataFrame(trace, columns=list(layout.names)),
            },
        )
