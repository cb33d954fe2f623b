r"""What the MCEM kernels share (TensorFlow): the trace layout, the per-level whitening
factors, the one noise call per iteration, the whitened HMC transition, the sampler state
and its update, the trace row, and ``ChunkedKernel``, which compiles a kernel's chunk of
iterations once with XLA and runs it with numpy state in and out.

The kernels -- :class:`~mixedtf.fit.mcem.gaussian_kernel.EMKernel` and
:class:`~mixedtf.fit.mcem.glmm_kernel.GLMMKernel` -- are the only part of Monte Carlo EM
that touches an array backend. Their interface is small,
``run(state, adapt, accumulate) -> (state, trace)`` with numpy arrays in and out, once per
chunk of ``chunk_size`` iterations, so another backend can implement it without touching
the EM driver, the design or the results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mixedtf.fit.mcem import hmc
from mixedtf.model import CompiledModel, compile_cache


@dataclass(frozen=True)
class TraceLayout:
    """Column names of the trace: beta, the family's parameters after it (the ordinal
    cutpoints ``cut:<k>``, or ``log_<name>`` of the family's parameter; ``n_cuts`` of them),
    vech(Sigma_j)
    per grouping, sigma^2 (Gaussian), diagnostics (``accept``, ``step_size``, ``logp``), then
    the first chain's draws of the traced levels (``b:<group>:<level>:<column>``)."""

    names: tuple[str, ...]
    p: int
    vech_sizes: tuple[int, ...]
    traced: tuple[np.ndarray, ...]  # per grouping, indices of the traced levels

    n_cuts: int = 0

    @property
    def n_parameters(self) -> int:
        """Columns of model parameters (those before ``accept``)."""
        return self.names.index("accept")

    @classmethod
    def of(cls, model: CompiledModel, traced: tuple[np.ndarray, ...] | None = None) -> TraceLayout:
        d = model.design
        if traced is None:
            traced = tuple(np.zeros(0, np.int32) for _ in d.groupings)
        names = [f"beta:{n}" for n in d.fixed_names]
        n_cuts = next((q.shape[0] for q in model.parameters if q.name == "cutpoints"), 0)
        names += [f"cut:{k + 1}" for k in range(n_cuts)]
        if model.family.family_param is not None:  # its log: NB theta, Gamma shape, IG lambda
            names.append(f"log_{model.family.family_param}")
            n_cuts += 1
        sizes = []
        for g in d.groupings:
            rows, cols = np.tril_indices(g.k)
            names += [
                f"var:{g.name}:{g.colnames[r]}"
                if r == c
                else f"cov:{g.name}:{g.colnames[c]}:{g.colnames[r]}"
                for r, c in zip(rows, cols, strict=True)
            ]
            sizes.append(rows.size)
        names += (["sigma2"] if model.family.has_scale else []) + ["accept", "step_size", "logp"]
        for g, levels in zip(d.groupings, traced, strict=True):
            names += [f"b:{g.name}:{g.levels[lv]}:{c}" for lv in levels for c in g.colnames]
        return cls(tuple(names), d.X.shape[1], tuple(sizes), tuple(traced), n_cuts)


def level_factors(A: list, covs: list, groupings) -> list:
    """Per level ``R_l = chol((A_l + Sigma^{-1})^{-1})``: the factor of the conditional
    covariance of ``b_l`` for data precision ``A_l`` (``z z' / sigma^2`` summed over the
    level's rows, or with working weights); a number per level for a scalar term."""
    return [
        tf.math.rsqrt(a + 1.0 / cov)
        if g.k == 1
        else tf.linalg.cholesky(tf.linalg.inv(a + tf.linalg.inv(cov)))
        for a, cov, g in zip(A, covs, groupings, strict=True)
    ]


def iteration_noise(seed: tf.Tensor, iteration: tf.Tensor, shapes: list, dtype) -> list:
    """Every standard normal one iteration needs, in ``shapes`` (static), from one Philox
    call keyed by ``(user seed, kernel salt + iteration)``. One raw call, not one per use
    with ``fold_in``/``split``: each such op expands to ~700 HLO instructions (key
    derivation included), and they were a third of the XLA compile time."""
    sizes = [int(np.prod(s)) for s in shapes]
    u64 = tf.uint64
    low = tf.cast(tf.bitcast(seed[1] + iteration, tf.uint32), u64)
    key = tf.bitwise.bitwise_or(tf.bitwise.left_shift(tf.cast(seed[0], u64), 32), low)
    z = tf.raw_ops.StatelessRandomNormalV2(
        shape=[sum(sizes)],
        key=tf.reshape(key, [1]),
        counter=tf.zeros([2], u64),
        alg=1,  # Philox
        dtype=dtype,
    )
    return [tf.reshape(part, s) for part, s in zip(tf.split(z, sizes), shapes, strict=True)]


def transition_shapes(groupings, chains: int) -> list:
    """Shapes of :func:`whitened_transition`'s noise: momenta per grouping, then two per chain
    (for the acceptance test)."""
    return [[chains, g.n_levels, g.k] for g in groupings] + [[2, chains]]


def whitened_transition(model: CompiledModel, params, factors, chains, step, n_leapfrog, noise):
    """One HMC transition of every chain on ``log p(y, b | params)`` in the whitened space
    ``b_l = R_l u_l``, with ``noise`` shaped as :func:`transition_shapes`. Returns the new effects, the acceptance probabilities, the log
    densities and ``R_l R_l' grad_b log p`` at the new effects: for a Gaussian model, the
    step from ``b_l`` to its conditional mean given the other levels and terms."""
    groupings = model.design.groupings
    n_chains = chains[0].shape[0]

    def to_b(us):
        return [
            u * R[:, 0, :] if g.k == 1 else tf.einsum("lkm,clm->clk", R, u)
            for R, u, g in zip(factors, us, groupings, strict=True)
        ]

    def to_u(bs):
        return [
            b / R[:, 0, :]
            if g.k == 1
            else tf.linalg.triangular_solve(
                tf.broadcast_to(R, tf.concat([[n_chains], tf.shape(R)], 0)),
                b[..., tf.newaxis],
                lower=True,
            )[..., 0]
            for R, b, g in zip(factors, bs, groupings, strict=True)
        ]

    def target(us):
        return model.log_prob64(params, to_b(us))

    us, accept_prob, logp, grads = hmc.transition(
        target, to_u(chains), step, n_leapfrog, noise[:-1], noise[-1]
    )
    return to_b(us), accept_prob, logp, to_b(grads)


def sampler_state(groupings, chains: int, seed: int, salt: int, step_size: float, np_dt) -> dict:
    """The state every kernel keeps besides its parameters: chains, seed, dual-averaging
    step size and the running sums of the draws after burn-in."""
    return {
        "chains": [np.zeros((chains, g.n_levels, g.k), np_dt) for g in groupings],
        "seed": np.array([seed % (2**31), salt], np.int32),
        "iteration": np.int32(0),
        "t": np_dt(0.0),
        "h_bar": np_dt(0.0),
        "log_eps": np_dt(np.log(step_size)),
        "log_eps_bar": np_dt(np.log(step_size)),
        "mu": np_dt(np.log(10 * step_size)),
        "n_louis": np_dt(0.0),
        "sum_b": [np.zeros((g.n_levels, g.k), np_dt) for g in groupings],
        "sum_bb": [np.zeros((g.n_levels, g.k, g.k), np_dt) for g in groupings],
    }


def sampler_update(st: dict, effects, adapt, adapted, on, moments=None) -> dict:
    """The next :func:`sampler_state` after one iteration: ``adapted`` is the dual-averaging
    step ``(t, h_bar, log_eps, log_eps_bar)``, kept while ``adapt``; ``on`` (0 or 1) adds
    the draws (or ``moments``: per grouping, the conditional means ``[C, L, k]`` and
    variances ``[L, k, k]`` of the draws) to the running sums."""
    t, h_bar, log_eps, log_eps_bar = adapted
    if moments is None:
        firsts = [tf.reduce_sum(b, 0) for b in effects]
        seconds = [tf.einsum("clk,clm->lkm", b, b) for b in effects]
    else:
        C = tf.cast(tf.shape(effects[0])[0], effects[0].dtype)
        firsts = [tf.reduce_sum(m, 0) for m in moments[0]]
        seconds = [
            tf.einsum("clk,clm->lkm", m, m) + C * v
            for m, v in zip(moments[0], moments[1], strict=True)
        ]
    keep = lambda new, old: tf.where(adapt, new, old)  # noqa: E731
    return {
        "chains": effects,
        "seed": st["seed"],
        "iteration": st["iteration"] + 1,
        "t": keep(t, st["t"]),
        "h_bar": keep(h_bar, st["h_bar"]),
        "log_eps": keep(log_eps, st["log_eps"]),
        "log_eps_bar": keep(log_eps_bar, st["log_eps_bar"]),
        "mu": st["mu"],
        "n_louis": st["n_louis"] + on,
        "sum_b": [sb + on * f for sb, f in zip(st["sum_b"], firsts, strict=True)],
        "sum_bb": [sbb + on * f for sbb, f in zip(st["sum_bb"], seconds, strict=True)],
    }


def trace_row(head: list, covs, groupings, tail: list, effects, traced) -> tf.Tensor:
    """One trace row: ``head`` (beta, ...), vech of each covariance, ``tail`` (sigma^2,
    diagnostics) as scalars, then the first chain's draws of the traced levels."""
    tril = [np.stack(np.tril_indices(g.k), 1) for g in groupings]
    return tf.concat(
        head
        + [tf.gather_nd(cv, idx) for cv, idx in zip(covs, tril, strict=True)]
        + [tf.reshape(x, [1]) for x in tail]
        + [
            tf.reshape(tf.gather(b[0], levels), [-1])
            for b, levels in zip(effects, traced, strict=True)
        ],
        0,
    )


class ChunkedKernel:
    """A kernel's ``_chunk(state, adapt, accumulate)`` compiled once with XLA and run with numpy
    state in and out: the interface the EM drivers use."""

    def __init__(
        self,
        model: CompiledModel,
        chains: int,
        n_leapfrog: int,
        target_accept: float,
        chunk_size: int,
        traced: tuple[np.ndarray, ...] | None = None,
    ) -> None:
        self.model = model
        self.chains = chains
        self.n_leapfrog = n_leapfrog
        self.target_accept = target_accept
        self.chunk_size = chunk_size
        self.layout = TraceLayout.of(model, traced)

    def _compile(self) -> None:  # one XLA compilation serves every chunk
        self.compile_cache = compile_cache.ACTIVE  # set when mixedtf.model was imported
        self._step = tf.function(
            self._chunk, jit_compile=True, reduce_retracing=True, autograph=False
        )

    def run(self, state: dict, adapt: bool, accumulate: bool) -> tuple[dict, np.ndarray]:
        """Run one chunk of EM iterations; numpy state in and out, trace ``[chunk_size, columns]``."""
        tensors = tf.nest.map_structure(tf.convert_to_tensor, state)
        out, trace = self._step(tensors, tf.constant(adapt), tf.constant(accumulate))
        return tf.nest.map_structure(lambda t: t.numpy(), out), trace.numpy()
