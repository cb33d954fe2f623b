"""Monte Carlo EM for Gaussian models: the driver (:mod:`~mixedtf.fit.mcem.driver`) around
:class:`~mixedtf.fit.mcem.gaussian_kernel.EMKernel`, with lme4's ``vcov`` and the exact
log-likelihood at the estimates, and the check against the exact ML optimum."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mixedtf.design import Design
from mixedtf.errors import MixedTFError, ModelTooLargeError
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
from mixedtf.linalg.blocked import CrossProducts, dense_size, factorize
from mixedtf.linalg.covariance import theta_names, theta_of
from mixedtf.linalg.iterative import SparseSystem
from mixedtf.model import backend
from mixedtf.results.results import MixedLMResults


def fit_mcem_gaussian(
    design: Design, opts: MCEMOptions, seed: int | None, progress: bool | None = None
) -> MixedLMResults:
    """Fit a Gaussian mixed model by Monte Carlo EM (``opts`` resolved for the family)."""
    t0 = time.perf_counter()
    rows = design.whitened()  # prior weights: the unweighted model on sqrt(w)-scaled rows
    pairs = nested_pairs(design.groupings, design.nobs) if opts.joint_moves else []
    device, chains, seed = run_settings(design, seed, opts, frozenset(p.few for p in pairs))
    with backend.get(opts.backend).device_scope(device):
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
        exact = ExactPath.choose(design)

        def stop(st: dict, averaged: np.ndarray) -> bool:
            return converged(
                design,
                kernel.layout,
                averaged,
                opts,
                lambda est: np.sqrt(np.diag(exact.fixed_vcov(kernel, st, est)[0])),
            )

        result = iterate(kernel, state, opts, stop, progress)
    return _results(design, MCEMRun(kernel, opts, *result, chains, device, seed, t0), exact)


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


@dataclass(eq=False)
class ExactPath:
    """What the exact algebra costs for this design and how the MCEM fit uses it: where
    the dense blocked factor is cheap (``r <= DENSE_LIMIT``, see
    :func:`~mixedtf.linalg.blocked.dense_size`) the cross-products are formed once and
    factored at every stopping check; above that the fixed effects' standard errors come
    from conjugate gradients on the sparse system (:mod:`mixedtf.linalg.iterative`), and
    the dense factor is formed once, at the estimates, for the log-likelihood."""

    cp: CrossProducts | None
    system: SparseSystem | None

    @classmethod
    def choose(cls, design: Design) -> ExactPath:
        if dense_size(design) <= DENSE_LIMIT:
            try:
                return cls(CrossProducts.build(design), None)
            except ModelTooLargeError:
                pass
        return cls(None, SparseSystem.build(design))

    def fixed_vcov(self, kernel: EMKernel, state: dict, est: Estimate) -> tuple[np.ndarray, str]:
        """Covariance of the fixed effects at ``est``, and how it was computed: lme4's
        ``vcov``, ``sigma^2 (R_X' R_X)^{-1}`` (conditional on the covariance parameters)
        at the MCEM estimates, by the blocked factor (``"RX"``) or conjugate gradients
        (``"RX (PCG)"``); Louis' method only when neither works. Louis' observed
        information is a small difference of two large matrices when most of an effect's
        information is missing (InstEval's intercept) and came out 5-120% off."""
        theta = theta_of(est.covs, est.sigma2)
        if self.cp is not None:
            f = factorize(self.cp, theta)
            if f is not None:
                return f.fixed_vcov(est.sigma2), "RX"
        elif self.system is not None:
            try:
                return self.system.fixed_vcov(theta, est.sigma2), "RX (PCG)"
            except (MixedTFError, np.linalg.LinAlgError):
                pass
        return louis_vcov(kernel, state, est.sigma2), "louis"

    def loglik(self, design: Design, params: dict) -> tuple[float, float, CrossProducts | None]:
        """The exact log-likelihood at ``params``, the seconds one dense factorisation
        took, and the cross-products when they are kept (NaN, 0 and None when the factor
        does not fit in memory)."""
        tic = time.perf_counter()
        if self.cp is not None:
            return loglik_at(self.cp, params), time.perf_counter() - tic, self.cp
        try:  # formed for this one factorisation, in its own memory
            cp = CrossProducts.build(design, schur_map=False)
        except ModelTooLargeError:
            return float("nan"), 0.0, None
        return loglik_at(cp, params, consume=True), time.perf_counter() - tic, None


# r of the dense factor above which MCEM uses conjugate gradients for the standard errors
# (a 4000 x 4000 Cholesky: ~0.3 s and 128 MB per stopping check on two cores)
DENSE_LIMIT = 4000
# evaluations of the profiled deviance an exact ML fit takes, per covariance parameter,
# plus 10 (measured: 59 on sleepstudy, 22 on InstEval, 19 on the 100k synthetic crossed
# model, 3 parameters each; the one-off factor timed here is slower than the fit's own)
EVALUATIONS_PER_THETA = 15
# the full analytic check runs by default when its estimated time is at most this share
# of the MCEM fit's
CHECK_SHARE = 0.1


def _results(design: Design, run: MCEMRun, exact: ExactPath) -> MixedLMResults:
    est = unpack(design, run.kernel.layout, run.mean)
    sigma = float(np.sqrt(est.sigma2))
    modes, condcov = run.posterior_moments()
    params = {"beta": est.beta, "sigma": sigma, "covariances": est.covs}
    loglik, factor_time, cp = exact.loglik(design, params)
    vcov, vcov_method = exact.fixed_vcov(run.kernel, run.state, est)
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
    # the full check is an exact ML fit: run it when asked, or by default when it would
    # take at most CHECK_SHARE of this fit's time (estimated from one factorisation; the
    # issue's rule, for the dense factor too: on InstEval the check took 0.45 s against
    # ~1.2 s of Gibbs MCEM)
    n_theta = res.theta.size
    estimate = factor_time * (EVALUATIONS_PER_THETA * n_theta + 10)
    cheap = estimate <= CHECK_SHARE * info.wall_time
    if np.isfinite(loglik) and (run.opts.check or (run.opts.check is None and cheap)):
        res.check = analytic_check(res, run.mc_se, run.kernel.layout, cp)
    elif run.opts.check is None and np.isfinite(loglik):
        info.extra["check_skipped"] = (
            f"an exact ML fit would take ~{estimate:.2g} s, over {CHECK_SHARE:.0%} of this "
            "fit's time; check=True runs it"
        )
    elif not np.isfinite(loglik):
        info.extra["check_skipped"] = "the exact factor does not fit in memory"
    return res
