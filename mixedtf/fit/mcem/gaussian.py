"""Monte Carlo EM for Gaussian models: the driver (:mod:`~mixedtf.fit.mcem.driver`) around
:class:`~mixedtf.fit.mcem.gaussian_kernel.EMKernel`, with lme4's ``vcov`` and the exact
log-likelihood at the estimates, and the check against the exact ML optimum."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from mixedtf.design import Design
from mixedtf.errors import ModelTooLargeError
from mixedtf.fit.exact import loglik_at
from mixedtf.fit.mcem.check import analytic_check
from mixedtf.fit.mcem.driver import (
    Estimate,
    MCEMRun,
    build_kernel,
    converged,
    iterate,
    run_settings,
    unpack,
)
from mixedtf.fit.mcem.gaussian_kernel import EMKernel
from mixedtf.fit.mcem.joint_move import nested_pairs
from mixedtf.fit.options import MCEMOptions
from mixedtf.fit.start import mcem_start
from mixedtf.linalg.blocked import CrossProducts, factorize
from mixedtf.linalg.covariance import theta_names, theta_of
from mixedtf.results.results import MixedLMResults


def fit_mcem_gaussian(
    design: Design, opts: MCEMOptions, seed: int | None, progress: bool | None = None
) -> MixedLMResults:
    """Fit a Gaussian mixed model by Monte Carlo EM (``opts`` resolved for the family)."""
    t0 = time.perf_counter()
    rows = design.whitened()  # prior weights: the unweighted model on sqrt(w)-scaled rows
    pairs = nested_pairs(design.groupings, design.nobs) if opts.joint_moves else []
    device, chains, seed = run_settings(design, seed, opts, frozenset(p.few for p in pairs))
    with tf.device(f"/{device}:0"):
        kernel = build_kernel(
            EMKernel,
            rows,
            opts,
            device,
            chains,
            fixed_sigma=opts.scale,
            sa_exponent=opts.sa_exponent,
            px_scale=opts.px_scale,
            pairs=pairs,
        )
        start = mcem_start(rows)
        sigma2 = start.sigma2 if opts.scale is None else opts.scale**2
        state = kernel.initial_state(
            {"beta": start.beta, "covs": start.covs, "sigma2": sigma2}, seed
        )
        try:  # formed once: the stopping rule's standard errors and the log-likelihood use it
            cp = CrossProducts.build(design)
        except ModelTooLargeError:
            cp = None

        def stop(st: dict, averaged: np.ndarray) -> bool:
            return converged(
                design,
                kernel.layout,
                averaged,
                opts,
                lambda est: np.sqrt(np.diag(fixed_vcov(kernel, st, est, cp)[0])),
            )

        result = iterate(kernel, state, opts, stop, progress)
    return _results(design, MCEMRun(kernel, opts, *result, chains, device, seed, t0), cp)


def louis_vcov(kernel: EMKernel, state: dict, sigma2: float) -> np.ndarray:
    """Louis' covariance of beta: the complete-data information ``X'X / sigma^2`` minus
    the between-chain covariance of ``X'Z b_c / sigma^2`` (the missing information)."""
    X = kernel.model.design.X
    missing = state["louis"] / max(float(state["n_louis"]), 1.0)
    info = X.T @ X / sigma2 - missing / sigma2**2
    try:
        return np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return np.full_like(info, np.nan)


def fixed_vcov(
    kernel: EMKernel, state: dict, est: Estimate, cp: CrossProducts | None
) -> tuple[np.ndarray, str]:
    """Covariance of the fixed effects at ``est``, and how it was computed: lme4's ``vcov``,
    ``sigma^2 (R_X' R_X)^{-1}`` (conditional on the covariance parameters), evaluated at the
    MCEM estimates with the blocked factor; Louis' method when that is too large. Louis'
    observed information is a small difference of two large matrices when most of an
    effect's information is missing (InstEval's intercept) and came out 5-120% off."""
    f = None
    if cp is not None:
        f = factorize(cp, theta_of(est.covs, est.sigma2))
    if f is None:
        return louis_vcov(kernel, state, est.sigma2), "louis"
    return f.fixed_vcov(est.sigma2), "RX"


def _results(design: Design, run: MCEMRun, cp: CrossProducts | None) -> MixedLMResults:
    est = unpack(design, run.kernel.layout, run.mean)
    sigma = float(np.sqrt(est.sigma2))
    modes, condcov = run.posterior_moments()
    params = {"beta": est.beta, "sigma": sigma, "covariances": est.covs}
    loglik = loglik_at(cp, params) if cp is not None else float("nan")
    vcov, vcov_method = fixed_vcov(run.kernel, run.state, est, cp)
    info = run.fit_info(
        "closed-form PX M-step",
        [],
        loglik_method="exact" if np.isfinite(loglik) else "none",
        vcov_method=vcov_method,
    )
    res = MixedLMResults(
        design=design,
        method="mcem",
        beta=est.beta,
        beta_cov=vcov,
        theta=theta_of(est.covs, est.sigma2),
        theta_names=theta_names(design.groupings),
        sigma=sigma,
        covariances=est.covs,
        modes=modes,
        loglik=loglik,
        deviance=-2.0 * loglik,
        fit_info=info,
        conditional_covariances=lambda: condcov,
    )
    if run.opts.check and np.isfinite(loglik):
        res.check = analytic_check(res, run.mc_se, run.kernel.layout, cp)
    return res
