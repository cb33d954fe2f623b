"""Monte Carlo EM for binomial, Poisson and ordinal models: the driver
(:mod:`~mixedtf.fit.mcem.driver`) around :class:`~mixedtf.fit.mcem.glmm_kernel.GLMMKernel`.

The fixed effects' standard errors of the stopping rule come from the Laplace ``vcov`` at
the current averages for small models (Louis' from the noisy between-chain score
covariance came out negative on grouseticks), else Louis' method in the kernel. The
reported ones, and the log-likelihood (for AIC, BIC and ``anova``), come from the Laplace
approximation at the MCEM estimates (lme4's ``glmer`` ``vcov`` and ``logLik``), when the
model is small enough for its dense block (the random effects outside the first term).
"""

from __future__ import annotations

import time

import numpy as np

from mixedtf.design import Design
from mixedtf.fit.laplace import LaplaceModel
from mixedtf.fit.mcem.driver import (
    Estimate,
    MCEMRun,
    build_kernel,
    converged,
    iterate,
    run_settings,
    unpack,
)
from mixedtf.fit.mcem.glmm_kernel import GLMMKernel
from mixedtf.fit.mcem.ridge_move import ridge_pairs
from mixedtf.fit.options import MCEMOptions
from mixedtf.fit.start import mcem_start
from mixedtf.linalg.covariance import theta_names, theta_of
from mixedtf.model import backend
from mixedtf.results.results import MixedLMResults

LAPLACE_MAX_Q = 8000  # random effects outside the first term up to which Laplace runs
STOPPING_LAPLACE_MAX_Q = 2000  # ... and up to which the stopping rule uses its vcov
MAX_DRAWS = 512  # draws of the random effects kept for posterior predictive means


def fit_mcem_glmm(
    design: Design, opts: MCEMOptions, seed: int | None, progress: bool | None = None
) -> MixedLMResults:
    """Fit a binomial, Poisson or ordinal mixed model by Monte Carlo EM (``opts`` resolved
    for the family)."""
    t0 = time.perf_counter()
    pairs = ridge_pairs(design.groupings) if opts.joint_moves else []
    device, chains, seed = run_settings(design, seed, opts, frozenset(p.few for p in pairs))
    laplace = LaplaceModel(design) if _q(design) <= LAPLACE_MAX_Q else None
    with backend.get(opts.backend).device_scope(device):
        kernel = build_kernel(GLMMKernel, design, opts, device, chains, pairs=pairs)
        start = mcem_start(design)
        state = kernel.initial_state(
            {"beta": start.beta, "cuts": start.cuts, "covs": start.covs}, seed
        )
        draws: list[list[np.ndarray]] = []

        def keep_draws(st: dict, accumulate: bool) -> None:
            if accumulate and len(draws) * chains < MAX_DRAWS:
                draws.append([np.array(c) for c in st["chains"]])

        def stop(st: dict, averaged: np.ndarray) -> bool:
            return converged(
                design,
                kernel.layout,
                averaged,
                opts,
                lambda est: _stopping_se(kernel, st, est, laplace),
            )

        result = iterate(kernel, state, opts, stop, progress, keep_draws)
    run = MCEMRun(kernel, opts, *result, chains, device, seed, t0)
    return _results(design, run, laplace, draws)


def _q(design: Design) -> int:
    """Random effects outside the first term: the dense block of the Laplace factor."""
    return sum(g.n_levels * g.k for g in design.groupings[1:])


def _theta(est: Estimate) -> np.ndarray:
    return theta_of(est.covs)


def _cuts(kernel: GLMMKernel, est: Estimate) -> np.ndarray | None:
    """The ordinal cutpoints (None for the other families)."""
    return est.cuts if kernel.ordinal else None


def _family_value(kernel: GLMMKernel, est: Estimate) -> float | None:
    """The family's estimated parameter (NB theta, Gamma shape, inverse Gaussian lambda;
    the slot after beta holds its log), or None."""
    return float(np.exp(est.cuts[0])) if kernel.has_family_param else None


def _laplace_at(laplace, kernel: GLMMKernel, est: Estimate):
    if kernel.family_param == "nb_theta":
        laplace.set_nb_theta(_family_value(kernel, est))
    return laplace


def _sigma(kernel: GLMMKernel, est: Estimate) -> float:
    """Gamma and inverse Gaussian: ``sqrt(dispersion)``, 1 over the root of the estimated
    shape or lambda (lme4's ``sigma``); 1 for the other families."""
    if kernel.family_param in ("shape", "ig_lambda"):
        return float(1.0 / np.sqrt(_family_value(kernel, est)))
    return 1.0


def _stopping_se(kernel: GLMMKernel, state, est: Estimate, laplace) -> np.ndarray:
    """Standard errors of ``(beta, family parameters)`` for the stopping rule (module
    docstring); the negative binomial log theta's from Louis' method."""
    louis = kernel.louis_vcov(state)
    if laplace is not None and _q(kernel.model.design) <= STOPPING_LAPLACE_MAX_Q:
        vcov = _laplace_at(laplace, kernel, est).fixed_vcov(
            est.beta, _theta(est), _cuts(kernel, est)
        )
        if kernel.has_family_param:
            vcov = _sigma(kernel, est) ** 2 * np.pad(vcov, ((0, 1), (0, 1)))
            vcov[-1, -1] = louis[-1, -1]
    else:
        vcov = louis
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(vcov))
    if not np.all(np.isfinite(se)):  # Louis not positive: the complete-data information
        info = state["info"].astype(np.float64) / max(float(state["n_louis"]), 1.0)
        se = np.sqrt(np.diag(np.linalg.pinv(info)))
    return se


def _results(design: Design, run: MCEMRun, laplace, draws) -> MixedLMResults:
    est = unpack(design, run.kernel.layout, run.mean)
    sigma = _sigma(run.kernel, est)
    theta = theta_of(est.covs, sigma**2)
    modes, condcov = run.posterior_moments()
    recorded: list[str] = []
    kernel = run.kernel
    nb_theta = _family_value(kernel, est) if kernel.family_param == "nb_theta" else None
    if laplace is not None:  # lme4's logLik and vcov of a glmer fit, at the MCEM estimates
        lap = _laplace_at(laplace, kernel, est).fit_modes(est.beta, theta, _cuts(kernel, est))
        vcov = sigma**2 * laplace.fixed_vcov_at(lap)
        loglik, loglik_method, vcov_method = -0.5 * lap.deviance, "laplace", "RX"
    else:
        louis = kernel.louis_vcov(run.state)
        p = est.beta.size
        loglik, vcov = float("nan"), louis[:p, :p] if kernel.has_family_param else louis
        loglik_method, vcov_method = "none", "louis"
        recorded.append(
            f"the model has more than {LAPLACE_MAX_Q} random effects outside its first term: no "
            "Laplace log-likelihood (AIC, BIC are NaN); standard errors by Louis' method."
        )
    info = run.fit_info(
        "Newton M-step with location expansion", recorded, loglik_method, vcov_method
    )
    stacked = (
        [np.concatenate([d[j] for d in draws]) for j in range(len(design.groupings))]
        if draws
        else None
    )
    return MixedLMResults(
        design=design,
        method="mcem",
        beta=est.beta,
        beta_cov=vcov,
        theta=theta,
        theta_names=theta_names(design.groupings),
        sigma=sigma,
        covariances=est.covs,
        modes=modes,
        loglik=loglik,
        deviance=-2.0 * loglik,
        fit_info=info,
        conditional_covariances=lambda: condcov,
        cutpoints=_cuts(kernel, est),
        draws=stacked,
        family_params={} if nb_theta is None else {"theta": nb_theta},
        family_params_se={} if nb_theta is None else {"theta": _theta_se(kernel, run)},
    )


def _theta_se(kernel: GLMMKernel, run: MCEMRun) -> float:
    """Louis' standard error of the negative binomial theta (delta method from its log)."""
    var = kernel.louis_vcov(run.state)[-1, -1]
    theta = float(np.exp(unpack(kernel.model.design, kernel.layout, run.mean).cuts[0]))
    return float(theta * np.sqrt(var)) if var > 0 else float("nan")
