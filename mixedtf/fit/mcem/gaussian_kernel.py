r"""The Gaussian MCEM kernel (one source for both backends): E-step, sufficient statistics and
M-step in one XLA-compiled loop (the shared pieces are in :mod:`mixedtf.fit.mcem.kernel`).

One EM iteration, for ``C`` chains that persist across iterations:

1. **E-step**: one Gibbs sweep of every chain (:mod:`mixedtf.fit.mcem.gibbs`): each term's
   levels drawn exactly from their normal conditional given the other terms; a few-level
   term with a term nested in it jointly with that term (:mod:`mixedtf.fit.mcem.joint_move`).
   Per term one scatter of the residual into the levels and one gather to update it.
2. **Rao-Blackwellised statistics**: each level's conditional mean and covariance given the
   rest at its draw replace the draw's own ``b b'`` in ``Sigma_j``'s statistic (for a pair,
   the few-level term's moments given the terms outside the pair). Same expectation, less
   noise.
3. **Parameter expansion** (PX-EM, Liu, Rubin & Wu 1998): each term column that is also
   a column of X gets a free mean, estimated as the mean of its draws and folded into
   beta; the chains are shifted by it. During the burn-in, a free scale too.
4. **M-step** (Gaussian, closed form): ``Sigma_j = mean E[b b' | rest]``,
   ``beta = (X'X)^{-1} X' mean_c(y - Z b_c)``, ``sigma^2 = mean_c ||y - X beta - Z b_c||^2 / n``;
   after the burn-in without a pass over the rows (the sweep's residual gives the rest).
5. **Louis statistics** for the fixed effects' covariance: the between-chain covariance
   of ``X' Z b_c`` (the missing information).

The sweep replaced a five-step HMC transition with separate joint moves (the E-step the
other families keep): an InstEval iteration (16 chains, JAX, two cores) went from ~30 ms
to ~5 ms, and SD(dept)'s Monte Carlo error at the minimum schedule from 0.3-1.3% to 0.35%.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from mixedtf.fit.mcem.gibbs import gibbs_sweep, residual, sweep_noise_shapes
from mixedtf.fit.mcem.joint_move import NestedPair, nested_pairs
from mixedtf.fit.mcem.kernel import (
    ChunkedKernel,
    iteration_noise,
    sampler_state,
    sampler_update,
    second_moment,
    trace_row,
)
from mixedtf.model import CompiledModel
from mixedtf.model.parameters import scale_name
from mixedtf.model.reductions import precise_sum

Array = Any


def _total(o: ModuleType, x: Array) -> Array:
    """The sum of every entry, in float64, the last axis by blocks (:func:`precise_sum`)."""
    return o.sum(precise_sum(o, x))


def covariance_statistic(o: ModuleType, means: Array, variances: Array, px: Array) -> Array:
    r"""PX-EM's covariance statistic of one grouping from its levels' conditional means
    ``m [C, L, k]`` and covariances ``V [L, k, k]``:
    ``mean_{c,l}(m m' + V) - (a a' - Var(a))`` on the columns with a free mean (``px``),
    ``a`` the mean of ``m`` over chains and levels.

    ``mean_l E[b_l b_l'] - E[a] E[a]'`` is the expanded model's M-step; ``a a'`` estimates
    ``E[a] E[a]'`` with a bias ``Var(a)``, removed with the between-chain variance of the
    chains' means. Both biases mattered: the EM map's contraction is slow for a few-level
    term (Pastes' 10 batches), so a per-iteration bias of 0.5% in its variance (the means
    centred by the draws' mean, not their own) moved the fixed point by +3-6% in its SD.
    """
    C = float(means.shape[0])
    second = second_moment(o, means, variances)
    chain_means = o.mean(means, 1)  # [C, k]
    a = o.mean(chain_means, 0)
    dev = chain_means - a
    var_a = o.matmul(dev, dev, transpose_a=True) / (C * (C - 1.0))
    mask = px[:, None] * px[None, :]
    return second - mask * (a[:, None] * a[None, :] - var_a)


class EMKernel(ChunkedKernel):
    """Compiled chunks of MCEM iterations for one model (either backend)."""

    ARRAYS = ("_XtX", "_Xty", "_yty", "_Zty", "_A", "_ZtX", "_px", "_cross")

    def __init__(
        self,
        model: CompiledModel,
        chains: int,
        n_leapfrog: None,
        target_accept: None,
        chunk_size: int,
        fixed_sigma: float | None = None,
        sa_exponent: float = 0.0,
        px_scale: bool = True,
        traced: tuple[np.ndarray, ...] | None = None,
        pairs: list[NestedPair] | None = None,
        devices: int = 1,
    ) -> None:
        # n_leapfrog, target_accept: None (no HMC; the signature is the kernels' common one)
        super().__init__(model, chains, None, None, chunk_size, traced, devices)
        self.sa_exponent = sa_exponent
        self.px_scale = px_scale
        d = model.design
        self.pairs = nested_pairs(d.groupings, d.nobs) if pairs is None else pairs
        self._noise_shapes = sweep_noise_shapes(d.groupings, self.pairs, chains)
        self.fixed_sigma = fixed_sigma
        d, dt = model.design, model.dtype
        X = d.X
        y_tilde = d.y - d.offset
        self._XtX = X.T @ X  # the PX normal equations are float64
        self._Xty = X.T @ y_tilde
        self._yty = np.asarray(y_tilde @ y_tilde)
        self._Zty = []  # Z_j'(y - offset) per level and column: L x k
        for g in d.groupings:
            zty = np.zeros((g.n_levels, g.k))
            np.add.at(zty, g.codes, g.z * y_tilde[:, None])
            self._Zty.append(zty.astype(dt))
        # A_l = sum over each level's rows of z z': the data part of the conditional precision
        self._A = []
        for g in d.groupings:
            A = np.zeros((g.n_levels, g.k, g.k))
            np.add.at(A, g.codes, g.z[:, :, None] * g.z[:, None, :])
            self._A.append(A.astype(dt))
        # Z_j'X per level and column: L x k x p
        self._ZtX = []
        for g in d.groupings:
            ztx = np.zeros((g.n_levels, g.k, X.shape[1]))
            np.add.at(ztx, g.codes, g.z[:, :, None] * X[:, None, :])
            self._ZtX.append(ztx.astype(dt))
        # columns with a matching fixed effect get the PX-EM location expansion
        self._px = [
            np.array([1.0 if name in d.fixed_names else 0.0 for name in g.colnames], dt)
            for g in d.groupings
        ]
        self._cross = [pair.cross for pair in self.pairs]  # to the device with the data
        self._compile()

    # -- the compiled chunk ----------------------------------------------------------
    def _params(self, beta, covs, sigma2):
        """Constrained parameters of the compiled model from (beta, Sigma_j, sigma^2)."""
        o = self.ops
        out = {"beta": beta, "sigma": o.sqrt(sigma2)}
        for g, cov in zip(self.model.design.groupings, covs, strict=True):
            if g.k == 1:
                out[scale_name(g)] = o.sqrt(cov[0, 0])
            else:
                out[scale_name(g)] = o.cholesky(cov)
        return out

    def _px_statistics(self, effects):
        """Scale parameter expansion (PX-EM; Liu, Rubin & Wu 1998, sec. 5): the normal
        equations ``M coef = rhs`` of the working model
        ``y = X beta + sum_j sum_a alpha_ja w_ja + e`` with ``w_ja = z_a * b_ja[codes]``,
        fitted by least squares over all chains (:meth:`_px_solve`; ``alpha`` per grouping
        is a ``k`` vector, and the draws and Sigma_j are rescaled by it). Without it the EM
        creeps: on a 15% subset of InstEval SD(students) was still 5% high after 300
        iterations.

        Normal equations from small statistics: ``X'X``; ``X'W`` and ``y'W`` from the
        per-level ``Z'X``, ``Z'y``; ``W'W`` from one pass over the rows. Solved in float64.
        """
        m, o = self.model, self.ops
        # W'W by blocks: a term with itself from the per-level A_l = sum z z' (no pass over
        # the rows), two terms from their gathered columns (with the whole [K, C, n] W
        # materialised, this M-step cost 18 ms an iteration at 16 chains)
        w = [gather(b) * z for b, z, gather in zip(effects, m.z, m.gathers, strict=True)]
        # every sum over rows or levels in float64 (_total): at 10M rows float32 einsums
        # left the normal equations without a digit
        blocks = []
        for j, (b, A) in enumerate(zip(effects, self._A, strict=True)):
            row = []
            for i, bi in enumerate(effects):
                if i == j:
                    ka = range(b.shape[-1])
                    block = [
                        [_total(o, A[:, a, c] * b[..., a] * b[..., c]) for c in ka] for a in ka
                    ]
                elif i < j:
                    row.append(o.transpose(blocks[i][j]))
                    continue
                else:
                    block = [
                        [_total(o, w[j][..., a] * w[i][..., c]) for c in range(bi.shape[-1])]
                        for a in range(b.shape[-1])
                    ]
                row.append(o.stack([o.stack(r) for r in block]))
            blocks.append(row)
        WtW = o.concat([o.concat(row, 1) for row in blocks], 0)
        XtW = self._xtw(effects)
        ytW = o.concat(
            [
                o.stack([_total(o, zty[:, k] * b[..., k]) for k in range(b.shape[-1])])
                for zty, b in zip(self._Zty, effects, strict=True)
            ],
            0,
        )
        C64 = float(self.chains)
        M64 = o.concat(
            [
                o.concat([C64 * self._XtX, XtW], 1),
                o.concat([o.transpose(XtW), WtW], 1),
            ],
            0,
        )
        rhs64 = o.concat([C64 * self._Xty, ytW], 0)
        return M64, rhs64

    def _px_solve(self, M64, rhs64):
        """``beta``, ``alpha`` per grouping and the residual sum of squares from the PX
        normal equations ``M coef = rhs`` (:meth:`_px_statistics`), the scales free."""
        o, dt = self.ops, self.model.dtype
        p = self.layout.p
        jitter = 1e-10 * o.diag(o.diag_part(M64))
        coef64 = o.cholesky_solve(o.cholesky(M64 + jitter), rhs64[:, None])[:, 0]
        rss64 = float(self.chains) * self._yty - o.sum(coef64 * rhs64)
        coef = o.cast(coef64, dt)
        beta, alpha, at = coef[:p], [], p
        for g in self.model.design.groupings:
            alpha.append(coef[at : at + g.k])
            at += g.k
        return beta, alpha, rss64

    def _chunk(self, state, adapt, accumulate):
        return self._scan(lambda st: self._iteration(st, accumulate), state)

    def _iteration(self, st, accumulate):
        """One EM iteration (the module docstring's steps 1-5); returns the new state and
        the trace row (acceptance 1 and step size NaN: the sweep has neither)."""
        m, o = self.model, self.ops
        dt = m.dtype
        beta, covs, sigma2 = st["beta"], st["covs"], st["sigma2"]
        noise = iteration_noise(o, st["seed"], st["iteration"], self._noise_shapes, dt)
        r = residual(m, beta, st["chains"])
        effects, means, variances, r = gibbs_sweep(
            m,
            self.pairs,
            self._A,
            self._cross,
            r,
            st["chains"],
            covs,
            sigma2,
            noise,
        )
        params = self._params(beta, covs, sigma2)
        logp = m.prior_log_prob64(params, effects) + m.family.log_likelihood64(
            m.y - r, params, m.y, None, m.mask
        )
        rss_draws = _total(o, r * r)  # sum_c ||y - X beta_old - Z b_c||^2
        effects, means, variances, beta, rss = self._m_step_location(
            st["beta"], effects, means, variances, accumulate, rss_draws
        )
        sigma2 = o.cast(rss / (self.chains * float(m.design.nobs)), dt)
        if self.fixed_sigma is not None:
            sigma2 = st["sigma2"]
        covs = self._covariances(st, means, variances, accumulate)
        on = o.cast(accumulate, dt)
        one = o.constant(1.0, dt)
        row = trace_row(
            o,
            [beta],
            covs,
            m.design.groupings,
            [sigma2, one, one * float("nan"), o.cast(o.mean(logp), dt)],
            effects,
            self.layout.traced,
        )
        kept = (st["t"], st["h_bar"], st["log_eps"], st["log_eps_bar"])
        new = {
            "beta": beta,
            "covs": covs,
            "sigma2": sigma2,
            "louis": st["louis"] + on * self._louis_statistic(effects),
            **sampler_update(o, st, effects, False, kept, on, (means, variances)),
        }
        return new, row

    def _xtw(self, effects):
        """``sum_c X' Z_j b_jc`` per term column: ``[p, K]`` in float64, from the per-level
        ``Z'X`` (no pass over the rows)."""
        o = self.ops
        return o.concat(
            [
                o.stack(
                    [
                        o.stack([_total(o, ztx[:, k, q] * b[..., k]) for k in range(b.shape[-1])])
                        for q in range(ztx.shape[-1])
                    ]
                )
                for ztx, b in zip(self._ZtX, effects, strict=True)
            ],
            1,
        )

    def _m_step_location(self, beta_old, effects, means, variances, accumulate, rss_draws):
        """Steps 3-4 after the sweep: the PX location shift, then beta and the residual
        sum of squares. After the burn-in (scales held at 1) without a pass over the rows:
        with ``h = sum_c X' r_c`` (``r_c`` the sweep's residuals at ``beta_old``, from the
        per-level ``Z'X``), ``beta = (X'X)^{-1} (X'y - sum_c X'W_c 1 / C)`` and
        ``rss = sum_c ||r_c||^2 - h' (X'X)^{-1} h / C`` (the location shift is a column of
        X: it moves beta, not the rss). During the burn-in, the PX normal equations."""
        o, dt = self.ops, self.model.dtype
        C64 = float(self.chains)
        xtw_before = o.sum(self._xtw(effects), 1)  # sum_c X'W_c 1, before the shift
        shifts = [px * o.mean(b, axis=(0, 1)) for b, px in zip(effects, self._px, strict=True)]
        effects = [b - d for b, d in zip(effects, shifts, strict=True)]
        means = [mu - d for mu, d in zip(means, shifts, strict=True)]

        def plain():
            xtw = o.sum(self._xtw(effects), 1)
            h = C64 * (self._Xty - o.matvec(self._XtX, o.cast(beta_old, o.float64))) - xtw_before
            chol = o.cholesky(self._XtX)  # one factor for both solves
            both = o.cholesky_solve(chol, o.stack([self._Xty - xtw / C64, h], 1))
            beta, sol = both[:, 0], both[:, 1]
            rss = rss_draws - o.sum(h * sol) / C64
            ones = [o.ones([g.k], dt) for g in self.model.design.groupings]
            return o.cast(beta, dt), ones, rss

        if not self.px_scale:
            beta, alpha, rss = plain()
        else:

            def expanded():
                return self._px_solve(*self._px_statistics(effects))

            beta, alpha, rss = o.cond(accumulate, plain, expanded)
        effects = [b * a for b, a in zip(effects, alpha, strict=True)]
        means = [mu * a for mu, a in zip(means, alpha, strict=True)]
        variances = [v * a[:, None] * a[None, :] for v, a in zip(variances, alpha, strict=True)]
        return effects, means, variances, beta, rss

    def _covariances(self, st, means, variances, accumulate):
        """Step 4 for Sigma_j, from the PX statistics; after the burn-in optionally by
        stochastic approximation (SAEM, Delyon, Lavielle & Moulines 1999) with steps
        ``(t - burnin)^-a``. SAEM damps the noise of few-level terms, but smooths the
        iterates, so their spread no longer measures the Monte Carlo error; off (a = 0) by
        default."""
        o, dt = self.ops, self.model.dtype
        draws = [
            covariance_statistic(o, mu, v, px)
            for mu, v, px in zip(means, variances, self._px, strict=True)
        ]
        gamma = o.where(
            accumulate, (st["n_louis"] + 1.0) ** (-self.sa_exponent), o.constant(1.0, dt)
        )
        return [cv + gamma * (dr - cv) for cv, dr in zip(st["covs"], draws, strict=True)]

    def _louis_statistic(self, effects):
        """Step 5: the between-chain covariance of ``X'Z b_c``, from the per-level ``Z'X``."""
        o = self.ops
        v = sum(o.einsum("lkp,clk->cp", ztx, b) for ztx, b in zip(self._ZtX, effects, strict=True))
        vc = v - o.mean(v, 0)
        return o.matmul(vc, vc, transpose_a=True) / (float(self.chains) - 1.0)

    # -- interface -------------------------------------------------------------------
    def initial_state(
        self, params: dict[str, np.ndarray], seed: int, step_size: float = 0.1
    ) -> dict:
        d, np_dt = self.model.design, self.model.dtype.type
        p = d.X.shape[1]
        return {
            "beta": np.asarray(params["beta"], np_dt),
            "covs": [np.asarray(c, np_dt) for c in params["covs"]],
            "sigma2": np.asarray(params["sigma2"], np_dt),
            "louis": np.zeros((p, p), np_dt),
            **sampler_state(d.groupings, self.chains, seed, 0x6D63656D, step_size, np_dt),
        }  # salt: "mcem"
