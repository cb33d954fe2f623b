"""Monte Carlo EM for binomial, Poisson and ordinal models: the driver around
:class:`~mixedtf.fit.glmm_kernel.GLMMKernel`.

Schedule, Polyak averaging, the Monte Carlo standard errors and the stopping rule are the
Gaussian driver's (:mod:`mixedtf.fit.mcem`). The fixed effects' standard errors of the
stopping rule come from Louis' method in the kernel; the reported ones, and the
log-likelihood (for AIC, BIC and ``anova``), from the Laplace approximation at the MCEM
estimates (lme4's ``glmer`` ``vcov`` and ``logLik``), when the model is small enough for
its dense block (the random effects outside the first term).
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from mixedtf.design import Design
from mixedtf.design.response import start_cutpoints
from mixedtf.fit.covariance import psd_factor, theta_from_factors, theta_names
from mixedtf.fit.glmm_kernel import GLMMKernel
from mixedtf.fit.laplace import LaplaceModel, glm_start
from mixedtf.fit.mcem import (
    MCEMOptions,
    MCEMRun,
    iterate,
    mcse,
    run_settings,
    traced_levels,
    unpack_covariances,
)
from mixedtf.model import compile_model
from mixedtf.model.family import get_family
from mixedtf.results.results import MixedLMResults

LAPLACE_MAX_Q = 8000  # random effects outside the first term up to which Laplace runs
STOPPING_LAPLACE_MAX_Q = 2000  # ... and up to which the stopping rule uses its vcov
MAX_DRAWS = 512  # draws of the random effects kept for posterior predictive means


def start_covariances(design: Design) -> list[np.ndarray]:
    """SD 1 on the linear-predictor scale for intercept columns (lme4's theta = 1), a
    quarter over the covariate's SD for slopes."""
    out = []
    for g in design.groupings:
        sds = [
            1.0 if np.allclose(g.z[:, c], 1.0) else 0.25 / max(np.std(g.z[:, c]), 1e-8)
            for c in range(g.k)
        ]
        out.append(np.diag(np.square(sds)))
    return out


def fit_mcem_glmm(
    design: Design, seed: int | None, opts: MCEMOptions, link: str | None = None
) -> MixedLMResults:
    """Fit a binomial, Poisson or ordinal mixed model by Monte Carlo EM."""
    if not design.groupings:
        raise ValueError(
            "the formula has no random-effects term such as (1 | g); nothing to integrate."
        )
    if opts.scale is not None:
        raise ValueError(
            f"scale= fixes the residual SD of a Gaussian model; family {design.family!r} has none."
        )
    device, chains, seed = run_settings(design, seed, opts)
    t0 = time.perf_counter()
    family = get_family(design.family, link)
    laplace = LaplaceModel(design, family.link) if _q(design) <= LAPLACE_MAX_Q else None
    dtype = tf.float32 if opts.dtype == "float32" else tf.float64
    with tf.device(f"/{device}:0"):
        model = compile_model(design, family, dtype=dtype, device=device)
        kernel = GLMMKernel(
            model,
            chains,
            opts.n_leapfrog,
            opts.target_accept,
            opts.chunk_size,
            traced=traced_levels(design, opts.trace_levels),
        )
        ordinal = family.has_cutpoints
        start = {
            "beta": np.zeros(design.X.shape[1]) if ordinal else glm_start(design, family.link),
            "cuts": start_cutpoints(design.y) if ordinal else np.zeros(0),
            "covs": start_covariances(design),
        }
        state = kernel.initial_state(start, seed)
        draws: list[list[np.ndarray]] = []

        def keep_draws(st, accumulate):
            if accumulate and len(draws) * chains < MAX_DRAWS:
                draws.append([np.array(c) for c in st["chains"]])

        def converged(st, averaged):
            return _converged(kernel, st, averaged, opts, laplace)

        result = iterate(kernel, state, opts, converged, keep_draws)
    run = MCEMRun(kernel, opts, *result, chains, device, seed, t0)
    return _results(design, run, laplace, draws, family.link)


def _q(design: Design) -> int:
    """Random effects outside the first term: the dense block of the Laplace factor."""
    return sum(g.n_levels * g.k for g in design.groupings[1:])


def _var_columns(layout) -> list[int]:
    return [i for i, n in enumerate(layout.names) if n.startswith("var:")]


def _converged(kernel: GLMMKernel, state, averaged, opts: MCEMOptions, laplace) -> bool:
    """The Gaussian driver's rule; the fixed effects' standard errors from the Laplace
    ``vcov`` at the current averages for small models (Louis' from the noisy between-chain
    score covariance came out negative on grouseticks), else Louis'."""
    layout = kernel.layout
    mean, mc_se = averaged.mean(axis=0), mcse(averaged)
    sd_ok = all(mc_se[i] / (2.0 * max(mean[i], 1e-12)) <= opts.rtol for i in _var_columns(layout))
    d = layout.p + layout.n_cuts
    if laplace is not None and _q(kernel.model.design) <= STOPPING_LAPLACE_MAX_Q:
        beta, cuts, covs = _unpack(kernel.model.design, layout, mean)
        theta = theta_from_factors([psd_factor(c) for c in covs])
        vcov = laplace.fixed_vcov(beta, theta, cuts if layout.n_cuts else None)
    else:
        vcov = kernel.louis_vcov(state)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(vcov))
    if not np.all(np.isfinite(se)):  # Louis not positive: the complete-data information
        info = state["info"].astype(np.float64) / max(float(state["n_louis"]), 1.0)
        se = np.sqrt(np.diag(np.linalg.pinv(info)))
    return sd_ok and bool(np.all(mc_se[:d] <= opts.se_tol * se))


def _unpack(design: Design, layout, mean: np.ndarray):
    p, nc = layout.p, layout.n_cuts
    return mean[:p], mean[p : p + nc], unpack_covariances(design, layout, mean, p + nc)


def _results(design, run: MCEMRun, laplace, draws, link) -> MixedLMResults:
    layout = run.kernel.layout
    beta, cuts, covs = _unpack(design, layout, run.mean)
    ordinal = layout.n_cuts > 0
    theta = theta_from_factors([psd_factor(c) for c in covs])
    modes, condcov = run.posterior_moments()
    recorded: list[str] = []
    if laplace is not None:  # lme4's logLik and vcov of a glmer fit, at the MCEM estimates
        lap = laplace.fit_modes(beta, theta, cuts if ordinal else None)
        loglik, vcov, loglik_method = -0.5 * lap.deviance, laplace.fixed_vcov_at(lap), "laplace"
    else:
        loglik, vcov, loglik_method = float("nan"), run.kernel.louis_vcov(run.state), "none"
        recorded.append(
            f"the model has more than {LAPLACE_MAX_Q} random effects outside its first term: no "
            "Laplace log-likelihood (AIC, BIC are NaN); standard errors by Louis' method."
        )
    info = run.fit_info(
        "Newton M-step with location expansion", recorded, link=link, loglik_method=loglik_method
    )
    stacked = (
        [np.concatenate([d[j] for d in draws]) for j in range(len(design.groupings))]
        if draws
        else None
    )
    return MixedLMResults(
        design=design,
        method="mcem",
        beta=beta,
        beta_cov=vcov,
        theta=theta,
        theta_names=theta_names(design.groupings),
        sigma=1.0,
        covariances=covs,
        modes=modes,
        loglik=loglik,
        deviance=-2.0 * loglik,
        fit_info=info,
        conditional_covariances=lambda: condcov,
        cutpoints=cuts if ordinal else None,
        draws=stacked,
    )
