"""Fast refits for the parametric bootstrap of an exact Gaussian fit.

Small models (:func:`mixedtf.linalg.batched.fits_in_batch`) refit all replicates at
once: a damped Newton iteration per replicate, all replicates' deviances evaluated by one
batched factorisation, derivatives by finite differences (``theta`` has a few entries).
The deviance depends on ``theta`` only through ``T_j T_j'``, so the iteration runs
unconstrained (a column of ``T_j`` and its sign give the same fit) and its optimum is
lme4's bounded one. Replicates it does not settle, and larger models, are refitted one by
one from the fit's theta by L-BFGS-B. No results objects, conditional modes or warnings
are built.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import Bounds, minimize

from mixedtf.design import Design
from mixedtf.linalg.batched import (
    BatchedCrossProducts,
    batch_size,
    factorize_batch,
    fits_in_batch,
)
from mixedtf.linalg.blocked import CrossProducts, factorize, profiled_deviance
from mixedtf.linalg.covariance import factors, lower_bounds, n_theta, to_sdcor

MAX_NEWTON_STEPS = 60


def _lme4_parameters(design: Design, Ts: list[np.ndarray], sigma: float, beta) -> np.ndarray:
    """SDs and correlations per term (lme4's ``confint`` order), sigma, beta."""
    covs = [sigma**2 * T @ T.T for T in Ts]
    return np.r_[to_sdcor(covs), sigma, beta]


def exact_refits(
    design: Design, responses: np.ndarray, reml: bool, theta0: np.ndarray
) -> np.ndarray:
    """``[B, n_parameters]``: the REML/ML estimates on each response (rows of
    ``responses``), NaN where a refit fails."""
    responses = np.asarray(responses, dtype=np.float64)
    if not fits_in_batch(design):
        return _one_by_one(design, responses, reml, theta0)
    chunk = batch_size(design)
    out = [
        _batched(design, responses[at : at + chunk], reml, theta0)
        for at in range(0, responses.shape[0], chunk)
    ]
    return np.concatenate(out)


def _batched(design: Design, responses: np.ndarray, reml: bool, theta0: np.ndarray):
    bcp = BatchedCrossProducts.build(design, responses)
    n, p = design.X.shape
    Theta, settled = _newton(bcp, np.asarray(theta0, dtype=np.float64), reml)
    everyone = np.arange(responses.shape[0])
    factor = factorize_batch(bcp, Theta, everyone)
    sigma = np.sqrt(factor.pwrss / (n - p if reml else n))
    beta = factor.beta(bcp.q_rest)
    Ts = factors(Theta, design.groupings)
    out = np.array(
        [_lme4_parameters(design, [T[b] for T in Ts], sigma[b], beta[b]) for b in everyone]
    )
    redo = ~settled | ~np.isfinite(out).all(axis=1)
    if redo.any():
        out[redo] = _one_by_one(design, responses[redo], reml, theta0)
    return out


def _newton(bcp: BatchedCrossProducts, theta0: np.ndarray, reml: bool):
    """Damped Newton on every replicate's profiled deviance from ``theta0``; returns the
    thetas and which replicates settled (a step under 1e-8 with a decreasing deviance)."""
    n, p, m = bcp.n, bcp.p, theta0.size
    B = bcp.C.shape[0]

    def deviance(Theta, which):
        return factorize_batch(bcp, Theta, which).deviance(n, p, reml)

    Theta = np.tile(theta0, (B, 1))
    f = deviance(Theta, np.arange(B))
    settled = np.zeros(B, dtype=bool)
    failed = ~np.isfinite(f)
    for _ in range(MAX_NEWTON_STEPS):
        idx = np.flatnonzero(~settled & ~failed)
        if idx.size == 0:
            break
        th, f0 = Theta[idx], f[idx]
        h = 1e-4 * np.maximum(1.0, np.abs(th))
        up = np.empty((idx.size, m))
        down = np.empty((idx.size, m))
        for i in range(m):
            e = np.zeros(m)
            e[i] = 1.0
            up[:, i] = deviance(th + h * e, idx)
            down[:, i] = deviance(th - h * e, idx)
        g = (up - down) / (2 * h)
        H = np.empty((idx.size, m, m))
        H[:, np.arange(m), np.arange(m)] = (up - 2 * f0[:, None] + down) / h**2
        for i in range(m):
            for j in range(i):
                e = np.zeros(m)
                e[i] = e[j] = 1.0
                both = deviance(th + h * e, idx)
                H[:, i, j] = H[:, j, i] = (both - up[:, i] - up[:, j] + f0) / (h[:, i] * h[:, j])
        # a positive definite model of the curvature: eigenvalues floored
        w, V = np.linalg.eigh(H)
        w = np.maximum(np.abs(w), 1e-6 * np.maximum(1.0, np.abs(w).max(axis=1, keepdims=True)))
        d = -np.einsum("bij,bj,bkj,bk->bi", V, 1.0 / w, V, g)
        slope = np.einsum("bi,bi->b", g, d)
        step = np.ones(idx.size)
        accepted = np.zeros(idx.size, dtype=bool)
        f_new = f0.copy()
        for _ in range(40):
            todo = np.flatnonzero(~accepted)
            if todo.size == 0:
                break
            trial = deviance(th[todo] + step[todo, None] * d[todo], idx[todo])
            ok = np.isfinite(trial) & (trial <= f0[todo] + 1e-4 * step[todo] * slope[todo])
            accepted[todo[ok]] = True
            f_new[todo[ok]] = trial[ok]
            step[todo[~ok]] *= 0.5
        move = step[:, None] * d
        Theta[idx[accepted]] += move[accepted]
        f[idx[accepted]] = f_new[accepted]
        small = np.abs(move).max(axis=1) < 1e-8
        # at the optimum the line search may find no decrease within rounding
        settled[idx[(accepted & small) | (~accepted & (np.abs(g).max(axis=1) < 1e-4))]] = True
        failed[idx[~accepted & (np.abs(g).max(axis=1) >= 1e-4)]] = True
    return Theta, settled


def _one_by_one(design: Design, responses: np.ndarray, reml: bool, theta0: np.ndarray):
    lower = lower_bounds(design.groupings)
    n, p = design.X.shape
    out = []
    for y in responses:
        try:
            cp = CrossProducts.build(replace(design, y=y))

            def objective(theta, cp=cp):
                return profiled_deviance(factorize(cp, np.maximum(theta, lower)), n, p, reml)

            # L-BFGS-B: a quarter of COBYQA's time here (its per-step overhead dominates
            # a 0.3 ms deviance), the optimum within 1e-7 of the deviance
            res = minimize(
                objective,
                np.maximum(theta0, lower),
                method="L-BFGS-B",
                bounds=Bounds(lower, np.full(lower.size, np.inf)),
                options={"ftol": 1e-12, "gtol": 1e-8},
            )
            f = factorize(cp, np.maximum(res.x, lower))
            if f is None:  # no positive definite factor at the optimiser's end
                out.append(None)
                continue
            sigma = np.sqrt(f.pwrss() / (n - p if reml else n))
            out.append(
                _lme4_parameters(design, factors(f.theta, design.groupings), sigma, f.beta())
            )
        except (np.linalg.LinAlgError, ValueError, TypeError):
            out.append(None)
    size = sum(n_theta(g.k) for g in design.groupings) + 1 + p  # SDs and correlations, sigma, beta
    return np.array([np.full(size, np.nan) if v is None else v for v in out]).reshape(
        len(out), size
    )
