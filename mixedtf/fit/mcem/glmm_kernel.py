r"""The MCEM kernel for binomial, Poisson and ordinal models (one source for both backends).

Same interface and E-step as the Gaussian :class:`~mixedtf.fit.mcem.gaussian_kernel.EMKernel`; what
differs is the whitening and the M-step. One iteration, for ``C`` persistent chains:

1. **E-step**: one HMC transition in the space ``b_l = R_l u_l``, with
   ``R_l = chol((A^W_l + Sigma^{-1})^{-1})`` and ``A^W_l = sum_i w_i z_i z_i'`` over the
   level's rows, ``w_i = -d^2 log p(y_i | eta_i) / d eta_i^2`` at the chains' mean
   effects: the Laplace approximation of the level's conditional covariance. Then the
   ridge move of each term with a term exactly nested in it
   (:mod:`~mixedtf.fit.mcem.ridge_move`), which also gives both terms' moments given the
   rest (Rao-Blackwellised statistics for step 3).
2. **Location expansion** (PX-EM): each term column with a fixed counterpart is centred
   and its mean folded into that fixed effect (ordinal: an intercept column into the
   cutpoints, ``c_k - m``), leaving every ``eta`` unchanged.
3. **M-step**: ``Sigma_j = mean(b b')`` in closed form (over the moments where a ridge
   move gave them); for ``phi = (beta, cutpoints)``
   one Newton step on ``Q(phi) = mean_c log p(y | phi, b_c)`` from the previous value (an
   ECM step: the fixed point is the same as a full maximisation), in float64, with the step
   shortened if it would break the cutpoints' order.
4. **Louis statistics**: the complete-data information ``-d^2 Q`` and the between-chain
   covariance of the per-chain scores, for the fixed effects' standard errors of the
   stopping rule.
"""

from __future__ import annotations

import numpy as np

from mixedtf.fit.mcem import hmc
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
from mixedtf.fit.mcem.ridge_move import RidgePair, ridge_move, ridge_noise_shape
from mixedtf.model import CompiledModel
from mixedtf.model.parameters import scale_name


def expansion_specs(design, j: int, ordinal: bool, dtype) -> list[tuple]:
    """The location expansion of grouping ``j``, per term column ``a``:
    ``(a, {"Xg": X_g, "Pinv": pinv(X_g), "T": T, "to_cut": to_cut})`` (numpy arrays). For an intercept column ``X_g`` (levels x m) holds
    the fixed-effect columns constant within every level (the intercept itself, and
    between-level covariates such as grouseticks' YEAR for BROOD: without them the EM
    creeps along the trade-off of those fixed effects with the level effects); for another
    column with a fixed counterpart, a column of ones. ``T`` (m x p) maps the coefficients
    to beta; ``to_cut`` marks the ordinal intercept, which goes into the cutpoints."""
    g = design.groupings[j]
    X, names = design.X, design.fixed_names
    L, p = g.n_levels, X.shape[1]
    first = np.zeros(L, np.int64)
    first[g.codes[::-1]] = np.arange(g.codes.size)[::-1]  # a row of each level
    specs = []
    for a, col in enumerate(g.colnames):
        if col == "(Intercept)":
            level_x = X[first]
            constant = [
                c for c in range(p) if np.allclose(X[:, c], level_x[g.codes, c], atol=1e-12)
            ]
            columns = [level_x[:, c] for c in constant]
            targets = [np.eye(p)[c] for c in constant]
            to_cut = [0.0] * len(constant)
            if ordinal and "(Intercept)" not in names:
                columns.insert(0, np.ones(L))
                targets.insert(0, np.zeros(p))
                to_cut.insert(0, 1.0)
        elif col in names:
            columns, targets, to_cut = [np.ones(L)], [np.eye(p)[names.index(col)]], [0.0]
        else:
            continue
        if not columns:
            continue
        Xg = np.column_stack(columns)
        rank = np.linalg.matrix_rank(Xg)
        if rank < Xg.shape[1]:  # keep an independent subset, in order
            keep: list[int] = []
            for c in range(Xg.shape[1]):
                if np.linalg.matrix_rank(Xg[:, [*keep, c]]) > len(keep):
                    keep.append(c)
            Xg = Xg[:, keep]
            targets = [targets[c] for c in keep]
            to_cut = [to_cut[c] for c in keep]
        arrays = {
            "Xg": Xg,
            "Pinv": np.linalg.pinv(Xg),
            "T": np.array(targets),
            "to_cut": np.array(to_cut),
        }
        specs.append((a, {k: v.astype(dtype) for k, v in arrays.items()}))
    return specs


class GLMMKernel(ChunkedKernel):
    """Compiled chunks of MCEM iterations for a non-Gaussian model (arguments as
    :class:`~mixedtf.fit.mcem.kernel.ChunkedKernel`)."""

    ARRAYS = ("_zz", "_px", "_ridge")
    ROW_ARRAYS = ("_zz",)

    def __init__(
        self, model: CompiledModel, *args, pairs: list[RidgePair] | None = None, **kwargs
    ) -> None:
        super().__init__(model, *args, **kwargs)
        d, dt = model.design, model.dtype
        self.pairs = pairs or []
        self._noise_shapes = transition_shapes(d.groupings, self.chains) + [
            ridge_noise_shape(pair, d.groupings, self.chains) for pair in self.pairs
        ]
        self._ridge = [{"home": pair.home, "counts": pair.counts.astype(dt)} for pair in self.pairs]
        self.n_cuts = self.layout.n_cuts  # the family's parameters after beta
        self.family_param = model.family.family_param  # NB theta, Gamma shape, IG lambda
        self.has_family_param = self.family_param is not None  # its log sits after beta
        self.ordinal = self.n_cuts > 0 and not self.has_family_param
        self._zz = [(z[:, :, None] * z[:, None, :]).astype(dt) for z in model.z]  # padded too
        specs = [expansion_specs(d, j, self.ordinal, dt) for j in range(len(d.groupings))]
        self._px_columns = [[a for a, _ in sp] for sp in specs]  # static
        self._px = [[arrays for _, arrays in sp] for sp in specs]  # data
        self._compile()

    # -- pieces ------------------------------------------------------------------------
    def _family_params(self, extra):
        """The family's parameters from their slot ``extra`` after beta (``[..., n]``)."""
        if self.has_family_param:
            return {self.family_param: self.ops.exp(extra[..., 0])}
        return {"cutpoints": extra} if self.n_cuts else {}

    def _params(self, beta, cuts, covs):
        o = self.ops
        out = {"beta": beta, **self._family_params(cuts)}
        for g, cov in zip(self.model.design.groupings, covs, strict=True):
            out[scale_name(g)] = o.sqrt(cov[0, 0]) if g.k == 1 else o.cholesky(cov)
        return out

    def _expand(self, effects, beta, cuts, moments):
        """PX-EM location expansion: per term column, regress the chains' mean effects on
        the level-level design (:func:`expansion_specs`), take the fit out of every chain
        (and out of the conditional means in ``moments``) and add the coefficients to beta
        (ordinal: subtract the intercept's from the cutpoints). Every ``eta`` is
        unchanged."""
        o = self.ops
        out, moved = [], dict(moments)
        for j, (b, columns, specs) in enumerate(
            zip(effects, self._px_columns, self._px, strict=True)
        ):
            for a, sp in zip(columns, specs, strict=True):
                gamma = o.matvec(sp["Pinv"], o.mean(b[:, :, a], 0))
                fit = o.matvec(sp["Xg"], gamma)
                shift = fit[None, :, None] * o.one_hot(a, b.shape[-1], dtype=b.dtype)
                b = b - shift
                if j in moved:
                    moved[j] = (moved[j][0] - shift, moved[j][1])
                beta = beta + o.matvec(sp["T"], gamma, transpose_a=True)
                cuts = cuts - o.sum(sp["to_cut"] * gamma)
            out.append(b)
        return out, beta, cuts, moved

    def _ridge_moves(self, effects, covs, noise):
        """The ridge move of each nested pair; returns the effects and, per term a move
        touched, its conditional means and covariances (the last move's)."""
        moments = {}
        for pair, arrays, z in zip(self.pairs, self._ridge, noise, strict=True):
            effects, moments[pair.few], moments[pair.partner] = ridge_move(
                self.ops, pair, arrays["home"], arrays["counts"], effects, covs, z
            )
        return effects, moments

    def _covariances(self, effects, moments):
        """``Sigma_j``: the chains' mean ``b b'``, or ``mu mu' + V`` from the moments."""
        return [
            second_moment(self.ops, *moments[j]) if j in moments else second_moment(self.ops, b)
            for j, b in enumerate(effects)
        ]

    def _weighted_precision(self, params, effects):
        """``A^W_l`` per grouping at the chains' mean effects."""
        m, o = self.model, self.ops
        mean_b = [o.mean(b, 0, keepdims=True) for b in effects]
        eta = m.linear_predictor(params["beta"], mean_b)[0]
        w = m.family.working_weights(eta, params, m.y, m.trials)
        return [
            o.segment_sum(w[:, None, None] * zz, g.codes, g.n_levels)
            for zz, g in zip(self._zz, m.gathers, strict=True)
        ]

    def _newton(self, beta, cuts, zb):
        """One Newton step on ``Q(phi)``; returns the new ``beta, cuts``, the complete-data
        information ``-d^2 Q`` (per chain) and the between-chain covariance of the scores."""
        m, o = self.model, self.ops
        p, C = self.layout.p, self.chains
        phi = o.concat([beta, cuts], 0)
        phi_rep = o.tile(phi[None], [C, 1])  # one copy per chain: per-chain scores

        def log_lik(phi_rep):
            eta = o.einsum("np,cp->cn", m.X, phi_rep[:, :p]) + m.offset + zb
            params = self._family_params(phi_rep[:, p:])
            return o.sum(m.family.log_likelihood(eta, params, m.y, m.trials, m.mask))

        scores, hess = o.scores_and_hessian(log_lik, phi_rep)  # [C, d], [d, d]
        total = o.sum(scores, 0)
        g64 = o.cast(total, o.float64)
        info64 = -o.cast(hess, o.float64)
        info64 = 0.5 * (info64 + o.transpose(info64))
        jitter = 1e-9 * o.diag(o.abs(o.diag_part(info64)) + 1e-12)
        step = o.cholesky_solve(o.cholesky(info64 + jitter), g64[:, None])
        step = o.cast(step[:, 0], m.dtype)
        if self.ordinal and self.n_cuts > 1:  # shorten the step: the cutpoints stay ordered
            gaps = cuts[1:] - cuts[:-1]
            closing = -(step[p + 1 :] - step[p:-1])
            ratio = o.where(closing > 0, 0.9 * gaps / o.maximum(closing, 1e-30), 1.0)
            step = step * o.minimum(1.0, o.min(ratio))
        new = phi + step
        sc = scores - o.mean(scores, 0)
        cov_scores = o.matmul(sc, sc, transpose_a=True) / (C - 1.0)
        return new[:p], new[p:], o.cast(info64, m.dtype) / C, cov_scores

    # -- the compiled chunk ------------------------------------------------------------
    def _chunk(self, state, adapt, accumulate):
        return self._scan(lambda st: self._iteration(st, adapt, accumulate), state)

    def _iteration(self, st, adapt, accumulate):
        """One EM iteration (the module docstring's steps 1-4); returns the new state and
        the trace row."""
        m, o = self.model, self.ops
        dt = m.dtype
        beta, cuts, covs, chains = st["beta"], st["cuts"], st["covs"], st["chains"]
        noise = iteration_noise(o, st["seed"], st["iteration"], self._noise_shapes, dt)
        n_terms = len(m.design.groupings)
        params = self._params(beta, cuts, covs)
        A = self._weighted_precision(params, chains)
        factors = level_factors(o, A, covs, m.design.groupings)
        step = o.exp(o.where(adapt, st["log_eps"], st["log_eps_bar"]))
        effects, accept_prob, logp, _ = whitened_transition(
            m, params, factors, chains, step, self.n_leapfrog, noise[: n_terms + 1]
        )
        effects, moments = self._ridge_moves(effects, covs, noise[n_terms + 1 :])
        rate = o.mean(accept_prob)
        adapted = hmc.adapt_step(
            o, st["t"], st["h_bar"], st["log_eps_bar"], st["mu"], rate, self.target_accept
        )
        effects, beta, cuts, moments = self._expand(effects, beta, cuts, moments)
        covs = self._covariances(effects, moments)
        zb = o.computed_once(m.random_part(effects))  # not recomputed in each Newton pass
        beta, cuts, info, cov_scores = self._newton(beta, cuts, zb)
        on = o.cast(accumulate, dt)
        row = trace_row(
            o,
            [beta, cuts],
            covs,
            m.design.groupings,
            [rate, step, o.cast(o.mean(logp), dt)],
            effects,
            self.layout.traced,
        )
        new = {
            "beta": beta,
            "cuts": cuts,
            "covs": covs,
            "info": st["info"] + on * info,
            "louis": st["louis"] + on * cov_scores,
            **sampler_update(o, st, effects, adapt, adapted, on),
        }
        return new, row

    # -- interface ---------------------------------------------------------------------
    def initial_state(self, params: dict, seed: int, step_size: float = 0.1) -> dict:
        d, np_dt = self.model.design, self.model.dtype.type
        dim = d.X.shape[1] + self.n_cuts
        return {
            "beta": np.asarray(params["beta"], np_dt),
            "cuts": np.asarray(params.get("cuts", np.zeros(0)), np_dt),
            "covs": [np.asarray(c, np_dt) for c in params["covs"]],
            "info": np.zeros((dim, dim), np_dt),
            "louis": np.zeros((dim, dim), np_dt),
            **sampler_state(d.groupings, self.chains, seed, 0x676C6D6D, step_size, np_dt),
        }  # salt: "glmm"

    def louis_vcov(self, state: dict) -> np.ndarray:
        """Louis' covariance of ``(beta, family parameters)``: the inverse of the averaged
        complete-data information minus the between-chain covariance of the scores."""
        n = max(float(state["n_louis"]), 1.0)
        info = (state["info"] - state["louis"]).astype(np.float64) / n
        try:
            return np.linalg.inv(info)
        except np.linalg.LinAlgError:
            return np.full_like(info, np.nan)
