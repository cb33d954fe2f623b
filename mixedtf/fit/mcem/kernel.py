r"""What the MCEM kernels share: the trace layout, the per-level whitening
factors, the one noise call per iteration, the whitened HMC transition, the sampler state
and its update, the trace row, and ``ChunkedKernel``, which compiles a kernel's chunk of
iterations once with XLA and runs it with numpy state in and out.

Every kernel is written once over an ops module (:mod:`mixedtf.model.backend`; the
model's ``ops``): the same source runs on TensorFlow and on JAX.

The kernels -- :class:`~mixedtf.fit.mcem.gaussian_kernel.EMKernel` and
:class:`~mixedtf.fit.mcem.glmm_kernel.GLMMKernel` -- are the only part of Monte Carlo EM
that touches an array backend. Their interface is small,
``run(state, adapt, accumulate) -> (state, trace)`` with numpy arrays in and out, once per
chunk of ``chunk_size`` iterations: the EM driver, the design and the results never see
the backend. The data (the model's arrays and the kernel's per-level statistics) go to
the compiled chunk as arguments, not as constants baked into the program.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mixedtf.fit.mcem import hmc
from mixedtf.model import CompiledModel
from mixedtf.model.program_key import UnkeyableError, program_key

Array = Any


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


def spd_inverse(o: ModuleType, m: Array) -> Array:
    """Inverse of (a batch of) symmetric positive definite ``k x k``; elementwise for
    ``k = 1``, where XLA's general inverse would cost compile time for nothing."""
    return 1.0 / m if m.shape[-1] == 1 else o.inv(m)


def spd_cholesky(o: ModuleType, m: Array) -> Array:
    """Cholesky factor of (a batch of) symmetric positive definite ``k x k``; the square
    root for ``k = 1``."""
    return o.sqrt(m) if m.shape[-1] == 1 else o.cholesky(m)


def second_moment(o: ModuleType, means: Array, variances: Array | None = None) -> Array:
    """``mean_{c,l}(m m' + V)`` of one grouping from its levels' (conditional) means
    ``m [C, L, k]`` and covariances ``V [L, k, k]`` (None: ``m`` are draws)."""
    C, L = float(means.shape[0]), float(means.shape[1])
    out = o.einsum("clk,clm->km", means, means) / (C * L)
    return out if variances is None else out + o.mean(variances, 0)


def level_factors(ops: ModuleType, A: list, covs: list, groupings) -> list:
    """Per level ``R_l = chol((A_l + Sigma^{-1})^{-1})``: the factor of the conditional
    covariance of ``b_l`` for data precision ``A_l`` (``z z' / sigma^2`` summed over the
    level's rows, or with working weights); a number per level for a scalar term."""
    return [
        ops.rsqrt(a + 1.0 / cov) if g.k == 1 else ops.cholesky(ops.inv(a + ops.inv(cov)))
        for a, cov, g in zip(A, covs, groupings, strict=True)
    ]


def iteration_noise(ops: ModuleType, seed: Any, iteration: Any, shapes: list, dtype) -> list:
    """Every standard normal one iteration needs, in ``shapes`` (static), from one call of
    the backend's counter-based generator keyed by ``(user seed, kernel salt + iteration)``
    (:func:`~mixedtf.model.backend.tf_ops.normal`)."""
    sizes = [int(np.prod(s)) for s in shapes]
    z = ops.normal(seed, iteration, sum(sizes), dtype)
    return [ops.reshape(part, s) for part, s in zip(ops.split(z, sizes), shapes, strict=True)]


def transition_shapes(groupings, chains: int) -> list:
    """Shapes of :func:`whitened_transition`'s noise: momenta per grouping, then two per chain
    (for the acceptance test)."""
    return [[chains, g.n_levels, g.k] for g in groupings] + [[2, chains]]


def whitened_transition(model: CompiledModel, params, factors, chains, step, n_leapfrog, noise):
    """One HMC transition of every chain on ``log p(y, b | params)`` in the whitened space
    ``b_l = R_l u_l``, with ``noise`` shaped as :func:`transition_shapes`. Returns the new effects, the acceptance probabilities, the log
    densities and ``R_l R_l' grad_b log p`` at the new effects: for a Gaussian model, the
    step from ``b_l`` to its conditional mean given the other levels and terms."""
    o = model.ops
    groupings = model.design.groupings
    n_chains = chains[0].shape[0]

    def to_b(us):
        return [
            u * R[:, 0, :] if g.k == 1 else o.einsum("lkm,clm->clk", R, u)
            for R, u, g in zip(factors, us, groupings, strict=True)
        ]

    def to_u(bs):
        return [
            b / R[:, 0, :]
            if g.k == 1
            else o.triangular_solve(
                o.broadcast_to(R, [n_chains, *R.shape]), b[..., None], lower=True
            )[..., 0]
            for R, b, g in zip(factors, bs, groupings, strict=True)
        ]

    def target(us):
        return model.log_prob64(params, to_b(us))

    us, accept_prob, logp, grads = hmc.transition(
        o, target, to_u(chains), step, n_leapfrog, noise[:-1], noise[-1]
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


def sampler_update(ops: ModuleType, st: dict, effects, adapt, adapted, on, moments=None) -> dict:
    """The next :func:`sampler_state` after one iteration: ``adapted`` is the dual-averaging
    step ``(t, h_bar, log_eps, log_eps_bar)``, kept while ``adapt``; ``on`` (0 or 1) adds
    the draws (or ``moments``: per grouping, the conditional means ``[C, L, k]`` and
    variances ``[L, k, k]`` of the draws) to the running sums."""
    o = ops
    t, h_bar, log_eps, log_eps_bar = adapted
    if moments is None:
        firsts = [o.sum(b, 0) for b in effects]
        seconds = [o.einsum("clk,clm->lkm", b, b) for b in effects]
    else:
        C = float(effects[0].shape[0])
        firsts = [o.sum(m, 0) for m in moments[0]]
        seconds = [
            o.einsum("clk,clm->lkm", m, m) + C * v
            for m, v in zip(moments[0], moments[1], strict=True)
        ]
    keep = lambda new, old: o.where(adapt, new, old)  # noqa: E731
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


def trace_row(ops: ModuleType, head: list, covs, groupings, tail: list, effects, traced):
    """One trace row: ``head`` (beta, ...), vech of each covariance, ``tail`` (sigma^2,
    diagnostics) as scalars, then the first chain's draws of the traced levels."""
    o = ops
    tril = [np.stack(np.tril_indices(g.k), 1) for g in groupings]
    dtype = head[0].dtype
    return o.concat(
        [o.cast(h, dtype) for h in head]
        + [o.cast(o.gather_nd(cv, idx), dtype) for cv, idx in zip(covs, tril, strict=True)]
        + [o.reshape(o.cast(x, dtype), [1]) for x in tail]
        + [
            o.reshape(o.cast(o.take(b[0], levels), dtype), [-1])
            for b, levels in zip(effects, traced, strict=True)
        ],
        0,
    )


class ChunkedKernel:
    """A kernel's ``_chunk(state, adapt, accumulate)`` compiled once with XLA and run with numpy
    state in and out: the interface the EM drivers use.

    The data go to the compiled chunk as arguments: the model's arrays
    (:meth:`~mixedtf.model.CompiledModel.arrays`) and the kernel's own, the attributes
    named in ``ARRAYS`` (per-level statistics), put on the device once. Inside the
    compiled function a copy of the kernel holds the traced arrays (:meth:`_bound`)."""

    ARRAYS: tuple[str, ...] = ()
    ROW_ARRAYS: tuple[str, ...] = ()  # those of ARRAYS with a row axis first

    def __init__(
        self,
        model: CompiledModel,
        chains: int,
        n_leapfrog: int,
        target_accept: float,
        chunk_size: int,
        traced: tuple[np.ndarray, ...] | None = None,
        devices: int = 1,
    ) -> None:
        self.model = model
        self.devices = devices
        self.ops = model.ops
        self.chains = chains
        self.n_leapfrog = n_leapfrog
        self.target_accept = target_accept
        self.chunk_size = chunk_size
        self.layout = TraceLayout.of(model, traced)

    def _arrays(self) -> dict:
        return {"model": self.model.arrays(), **{n: getattr(self, n) for n in self.ARRAYS}}

    def _bound(self, arrays: dict) -> ChunkedKernel:
        kernel = copy.copy(self)
        kernel.model = self.model.bind(arrays["model"])
        for name in self.ARRAYS:
            setattr(kernel, name, arrays[name])
        return kernel

    def _row_axes(self) -> dict:
        """The row axis of each array of :meth:`_arrays` (-1: none)."""

        def like(tree, value):
            if isinstance(tree, dict):
                return {k: like(v, value) for k, v in tree.items()}
            if isinstance(tree, list | tuple):
                return type(tree)(like(v, value) for v in tree)
            return value

        out = {"model": self.model.row_axes()}
        for name in self.ARRAYS:
            out[name] = like(getattr(self, name), 0 if name in self.ROW_ARRAYS else -1)
        return out

    def _compile(self) -> None:  # one XLA compilation serves every chunk
        self.compile_cache = self.ops.compile_cache_directory()
        if self.devices > 1:  # rows sharded over devices; XLA adds the all-reduces
            self._data = self.ops.shard_rows(self._arrays(), self._row_axes(), self.devices)
        else:
            self._data = self.ops.to_device(self._arrays())

        def step(data, state, adapt, accumulate):
            return self._bound(data)._chunk(state, adapt, accumulate)

        key = None
        if self.ops.KEEPS_PROGRAMS and self.devices == 1 and self.compile_cache is not None:
            with contextlib.suppress(UnkeyableError):  # then compiled without keeping it
                key = program_key(self)
        self._step = self.ops.jit(step, program_key=key)

    def run(self, state: dict, adapt: bool, accumulate: bool) -> tuple[dict, np.ndarray]:
        """Run one chunk of EM iterations; numpy state in and out, trace ``[chunk_size, columns]``."""
        o = self.ops
        flags = o.to_device((np.bool_(adapt), np.bool_(accumulate)))
        out, trace = self._step(self._data, o.to_device(state), *flags)
        return o.to_numpy(out), np.asarray(o.to_numpy(trace))

    def _scan(self, body, state) -> tuple[dict, Any]:
        """``state, row = body(state)`` ``chunk_size`` times (static: one compilation serves
        every chunk); returns the state and the trace rows."""
        return self.ops.scan(
            self.chunk_size,
            lambda i, st: body(st),
            state,
            len(self.layout.names),
            self.model.dtype,
        )
