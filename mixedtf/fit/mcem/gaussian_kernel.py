r"""The Gaussian MCEM kernel (one source for both backends): E-step, sufficient statistics and M-step in one
XLA-compiled loop (the shared pieces are in :mod:`mixedtf.fit.mcem.kernel`).

One EM iteration, for ``C`` chains that persist across iterations:

1. **Joint moves** (:mod:`mixedtf.fit.mcem.joint_move`): each few-level term with a term nested
   in it is drawn jointly with that term, exactly, given the other terms.
2. **E-step**: one HMC transition (``n_leapfrog`` steps) of every chain on the compiled
   model's complete-data log density, in a per-level scaled space ``b = s * u`` with
   ``s = 1 / sqrt(n_l / sigma^2 + 1 / Sigma)`` (``n_l`` = sum of ``z^2`` over the level's
   rows), which covers the centred and non-centred regimes level by level; for a vector
   term ``s`` is the Cholesky factor of the level's conditional covariance
   ``(A_l / sigma^2 + Sigma^{-1})^{-1}`` (``A_l = sum z z'``), which also removes the
   posterior correlation between its columns (a diagonal scaling left SD(Subject) of
   sleepstudy's ``(Days|Subject)`` 4-5% low: the chains lagged along that correlation).
3. **Rao-Blackwellised statistics**: each level's conditional mean given the rest,
   ``b + R R' grad log p`` (from the transition's last gradient), and covariance ``R R'``
   replace the draw's own ``b b'`` in ``Sigma_j``'s statistic; for a few-level term with a
   joint move, its moments given the terms outside the pair. Same expectation, less
   noise. With the joint moves, SD(dept)'s Monte Carlo error on InstEval (32 chains, the
   old 300-iteration schedule) fell from 1.7% to 0.1%.
4. **Parameter expansion** (PX-EM, Liu, Rubin & Wu 1998): each term column that is also
   a column of X gets a free mean, estimated as the mean of its draws and folded into
   beta; the chains are shifted by it. During the burn-in, a free scale too.
5. **M-step** (Gaussian, closed form): ``Sigma_j = mean E[b b' | rest]``,
   ``beta = (X'X)^{-1} X' mean_c(y - Z b_c)``, ``sigma^2 = mean_c ||y - X beta - Z b_c||^2 / n``.
6. **Louis statistics** for the fixed effects' covariance: the between-chain covariance
   of ``X' Z b_c`` (the missing information).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from mixedtf.fit.mcem import hmc
from mixedtf.fit.mcem.joint_move import NestedPair, joint_move, nested_pairs, pair_noise_shapes
from mixedtf.fit.mcem.kernel import (
    ChunkedKernel,
    iteration_noise,
    level_factors,
    sampler_state,
    sampler_update,
    second_moment,
    trace_row,
    transition_shapes,
    whitened_transition,
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

    ARRAYS = ("_XtX_inv", "_XtX", "_Xty", "_yty", "_Zty", "_A", "_ZtX", "_px", "_cross")

    def __init__(
        self,
        model: CompiledModel,
        chains: int,
        n_leapfrog: int,
        target_accept: float,
        chunk_size: int,
        fixed_sigma: float | None = None,
        e_step_only: bool = False,
        sa_exponent: float = 0.0,
        px_scale: bool = True,
        traced: tuple[np.ndarray, ...] | None = None,
        pairs: list[NestedPair] | None = None,
        devices: int = 1,
    ) -> None:
        super().__init__(model, chains, n_leapfrog, target_accept, chunk_size, traced, devices)
        self.e_step_only = e_step_only  # sample at fixed parameters (diagnostics and tests)
        self.sa_exponent = sa_exponent
        self.px_scale = px_scale
        d = model.design
        self.pairs = nested_pairs(d.groupings, d.nobs) if pairs is None else pairs
        self._noise_shapes = transition_shapes(d.groupings, chains)
        for pair in self.pairs:
            self._noise_shapes += pair_noise_shapes(pair, d.groupings, chains)
        self.fixed_sigma = fixed_sigma
        d, dt = model.design, model.dtype
        X = d.X
        self._XtX_inv = np.linalg.inv(X.T @ X).astype(dt)
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

    def _plain_regression(self, effects):
        """M-step for beta and the residual sum of squares, summed over chains:
        ``beta = (X'X)^{-1} X' mean_c(y - Z b_c)``, ``rss = sum_c ||y - X beta - Z b_c||^2``.
        The per-row ``Z b_c`` has a single consumer, ``||Z b_c||^2`` (with several, XLA
        recomputed its gathers in each: ~45 ms an iteration at 32 chains)."""
        m, o = self.model, self.ops
        C = float(self.chains)
        mean_b = [o.mean(b, 0, keepdims=True) for b in effects]
        r_mean = m.y - m.offset - m.random_part(mean_b)[0]
        Xtr = precise_sum(o, o.transpose(m.X) * r_mean[None, :])  # X' r in float64
        beta = o.cast(o.matvec(o.cast(self._XtX_inv, o.float64), Xtr), m.dtype)
        e0 = m.y - m.offset - o.matvec(m.X, beta)
        cross = sum(
            _total(o, o.sum(o.segment_sum(e0[:, None] * z, g.codes, g.n_levels) * b, -1))
            for b, z, g in zip(effects, m.z, m.gathers, strict=True)
        )  # sum_c e0' Z b_c
        zb_sq = _total(o, o.square(m.random_part(effects)))  # sum_c ||Z b_c||^2
        rss = C * precise_sum(o, e0 * e0) - 2.0 * cross + zb_sq
        return beta, rss

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
        XtW = o.concat(
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

    def _px_solve(self, M64, rhs64, fixed_scale):
        """``beta``, ``alpha`` per grouping and the residual sum of squares from the PX
        normal equations ``M coef = rhs`` (:meth:`_px_statistics`): with the scales ``alpha``
        free, or (``fixed_scale``, after the burn-in) held at 1 -- the plain regression
        ``beta = (C X'X)^{-1} (C X'y - X'W 1)`` and
        ``rss = sum_c ||y - X beta - W_c 1||^2`` from the same statistics, so the compiled
        chunk carries one M-step, not two."""
        o, dt = self.ops, self.model.dtype
        p = self.layout.p
        C64 = float(self.chains)
        jitter = 1e-10 * o.diag(o.diag_part(M64))
        free = o.cholesky_solve(o.cholesky(M64 + jitter), rhs64[:, None])[:, 0]
        rss_free = C64 * self._yty - o.sum(free * rhs64)
        XtX, XtW, WtW = M64[:p, :p], M64[:p, p:], M64[p:, p:]
        Xty, ytW = rhs64[:p], rhs64[p:]
        ones = o.ones([WtW.shape[0]], o.float64)
        XtW1 = o.matvec(XtW, ones)
        beta1 = o.cholesky_solve(o.cholesky(XtX), (Xty - XtW1)[:, None])[:, 0]
        rss1 = (
            C64 * self._yty
            + o.sum(beta1 * o.matvec(XtX, beta1))
            + o.sum(ones * o.matvec(WtW, ones))
            - 2.0 * o.sum(beta1 * Xty)
            - 2.0 * o.sum(ytW)
            + 2.0 * o.sum(beta1 * XtW1)
        )
        coef = o.cast(o.where(fixed_scale, o.concat([beta1, ones], 0), free), dt)
        rss64 = o.where(fixed_scale, rss1, rss_free)
        beta, alpha, at = coef[:p], [], p
        for g in self.model.design.groupings:
            alpha.append(coef[at : at + g.k])
            at += g.k
        return beta, alpha, rss64

    def _chunk(self, state, adapt, accumulate):
        return self._scan(lambda st: self._iteration(st, adapt, accumulate), state)

    def _iteration(self, st, adapt, accumulate):
        """One EM iteration (the module docstring's steps 1-6); returns the new state and
        the trace row."""
        m, o = self.model, self.ops
        dt = m.dtype
        beta, covs, sigma2 = st["beta"], st["covs"], st["sigma2"]
        noise = iteration_noise(o, st["seed"], st["iteration"], self._noise_shapes, dt)
        n_terms = len(m.design.groupings)
        chains, collapsed = self._joint_moves(
            st["chains"], beta, covs, sigma2, noise[n_terms + 1 :]
        )
        # per level, R_l = chol((A_l / sigma^2 + Sigma^-1)^-1): the conditional covariance's
        # factor at the current parameters; HMC runs on u with b_l = R_l u_l (for a scalar
        # term R_l is a number and the products are elementwise)
        factors = level_factors(o, [A / sigma2 for A in self._A], covs, m.design.groupings)
        step = o.exp(o.where(adapt, st["log_eps"], st["log_eps_bar"]))
        effects, accept_prob, logp, steps = whitened_transition(
            m,
            self._params(beta, covs, sigma2),
            factors,
            chains,
            step,
            self.n_leapfrog,
            noise[: n_terms + 1],
        )
        # Rao-Blackwellised statistics: each level's conditional mean and covariance
        # given the rest, b + R R' grad log p and R R', for the draw's own b b'
        means = [b + s for b, s in zip(effects, steps, strict=True)]
        variances = [o.matmul(R, R, transpose_b=True) for R in factors]
        for few, (mean, var) in collapsed.items():
            means[few], variances[few] = mean, var
        rate = o.mean(accept_prob)
        adapted = hmc.adapt_step(
            o, st["t"], st["h_bar"], st["log_eps_bar"], st["mu"], rate, self.target_accept
        )
        if not self.e_step_only:  # (e_step_only: sample at fixed parameters)
            effects, means, variances, beta, rss = self._m_step_location(
                effects, means, variances, accumulate
            )
            sigma2 = o.cast(rss / (self.chains * float(m.design.nobs)), dt)  # rss: float64
            if self.fixed_sigma is not None:
                sigma2 = st["sigma2"]
            covs = self._covariances(st, means, variances, accumulate)
        on = o.cast(accumulate, dt)
        row = trace_row(
            o,
            [beta],
            covs,
            m.design.groupings,
            [sigma2, rate, step, o.cast(o.mean(logp), dt)],
            effects,
            self.layout.traced,
        )
        new = {
            "beta": beta,
            "covs": covs,
            "sigma2": sigma2,
            "louis": st["louis"] + on * self._louis_statistic(effects),
            **sampler_update(o, st, effects, adapt, adapted, on, (means, variances)),
        }
        return new, row

    def _joint_moves(self, chains, beta, covs, sigma2, noise):
        """Step 1: the exact joint draws of each few-level term with its nested partner;
        returns the chains and, per few-level term, its moments given the terms outside
        its pair."""
        collapsed = {}
        for j, pair in enumerate(self.pairs):
            chains, *collapsed[pair.few] = joint_move(
                self.model,
                pair,
                self._A,
                chains,
                beta,
                covs,
                sigma2,
                noise[2 * j : 2 * j + 2],
                cross=self._cross[j],
            )
        return chains, collapsed

    def _m_step_location(self, effects, means, variances, accumulate):
        """Steps 4-5 for the location: centre the columns that have a fixed-effect
        counterpart (PX-EM), then the regression for beta and the residual sum of squares;
        during the burn-in with the scale expansion, which rescales the draws and their
        moments."""
        o = self.ops
        shifts = [px * o.mean(b, axis=(0, 1)) for b, px in zip(effects, self._px, strict=True)]
        effects = [b - d for b, d in zip(effects, shifts, strict=True)]
        means = [mu - d for mu, d in zip(means, shifts, strict=True)]
        if not self.px_scale:
            beta, rss = self._plain_regression(effects)
            return effects, means, variances, beta, rss
        # scale expansion during the burn-in only: it speeds up the EM's approach to the
        # optimum, but rescaling the draws by their own noisy regression coefficient biased
        # the averaged SDs up (+0.2% on InstEval, 10 Monte Carlo s.e.)
        beta, alpha, rss = self._px_solve(*self._px_statistics(effects), accumulate)
        effects = [b * a for b, a in zip(effects, alpha, strict=True)]
        means = [mu * a for mu, a in zip(means, alpha, strict=True)]
        variances = [v * a[:, None] * a[None, :] for v, a in zip(variances, alpha, strict=True)]
        return effects, means, variances, beta, rss

    def _covariances(self, st, means, variances, accumulate):
        """Step 5 for Sigma_j, from the PX statistics; after the burn-in optionally by
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
        """Step 6: the between-chain covariance of ``X'Z b_c``, from the per-level ``Z'X``."""
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
