"""Compile a design and a family into a TFP JointDistribution that is a pure function of
the parameters, on an array backend (TensorFlow, or JAX with TFP's JAX substrate).

``CompiledModel.joint_distribution(params)`` builds, on every call, a
``tfd.JointDistributionNamed`` with one node per grouping (``b_s``, ``b_Subject``, ...) and
the response node ``y``:

* scalar term: ``b ~ Sample(Normal(0, sd), L)``, event shape ``[L, 1]``;
* vector term: ``b ~ Sample(MultivariateNormalTriL(0, scale_tril), L)``, event ``[L, k]``;
* ``eta = X beta + offset + sum_j sum_c z_j[:, c] * b_j[codes_j, c]`` (gathers, never a
  dense Z), and ``y ~ family(eta)``.

Because the distribution is rebuilt from the parameter tensors inside every traced call,
gradients reach every parameter -- unlike the TFP tutorial, which builds it once from
``tf.Variable``s so its variance components never move (tensorflow/probability#1800).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import numpy as np

from mixedtf import families
from mixedtf.design import Design
from mixedtf.errors import FamilyError
from mixedtf.model import backend as backends
from mixedtf.model.family import Likelihood, likelihood_of
from mixedtf.model.gather import LevelGather, choose_mode
from mixedtf.model.parameters import Parameter, node_name, parameter_table, scale_name
from mixedtf.model.reductions import normal_log_density

Array = Any


def default_device(requested: str | None = None, ops: ModuleType | str | None = None) -> str:
    """``requested`` upper-cased, or ``"GPU"`` when the backend sees one, else ``"CPU"``."""
    return backends.get(ops).default_device(requested)


def as_dtype(dtype: Any) -> np.dtype:
    """A numpy dtype from a numpy, TensorFlow or string dtype (``"float32"``, ``tf.float64``)."""
    return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """A design compiled for an array backend (``ops``): the data arrays, the gathers and
    the parameter table. The arrays are numpy in ``dtype`` until :meth:`bind` puts the
    backend's (device or traced) arrays in their place: the kernels pass them to their
    compiled programs as arguments, not as constants."""

    design: Design
    family: Likelihood
    dtype: np.dtype
    device: str
    parameters: tuple[Parameter, ...]
    nodes: tuple[str, ...]
    X: Array
    y: Array  # successes for binomial, category codes 0..K-1 for ordinal
    trials: Array | None  # binomial trials per row
    offset: Array
    z: tuple[Array, ...]
    gathers: tuple[LevelGather, ...]
    mask: Array | None = None  # bool [n]: the data rows, where padded (see padded)

    @property
    def ops(self) -> ModuleType:
        return self.family.ops

    def padded(self, multiple: int) -> CompiledModel:
        """The model with its rows padded to a multiple of ``multiple`` (to shard them
        evenly over devices), the padding rows masked out of every log density: ``X``,
        ``z`` and the offset 0 there (so no effect and no M-step sum sees them), the
        response 0 (Gaussian: residual 0) or 1 (a value every other family takes)."""
        n = int(np.shape(self.y)[0])  # rows so far (padded already, perhaps)
        pad = (-n) % multiple
        if pad == 0 or multiple <= 1:
            return self

        def grow(a, fill=0.0, axis=0):
            width = [(0, 0)] * a.ndim
            width[axis] = (0, pad)
            return np.pad(np.asarray(a), width, constant_values=fill)

        fill_y = 0.0 if self.family.has_scale else 1.0
        gathers = []
        for g in self.gathers:  # padding rows at the last level (the sorted order holds)
            last = g.n_levels - 1
            arrays = {
                k: grow(v, axis=1) if k == "onehot" else grow(v, last if "codes" in k else 0)
                for k, v in g.arrays.items()
            }
            if "order" in arrays:
                arrays["order"][n:] = np.arange(n, n + pad)
            gathers.append(g.bind(arrays))
        return replace(
            self,
            X=grow(self.X),
            y=grow(self.y, fill_y),
            trials=None if self.trials is None else grow(self.trials, 1.0),
            offset=grow(self.offset),
            z=tuple(grow(z) for z in self.z),
            gathers=tuple(gathers),
            mask=grow(np.ones(n, bool) if self.mask is None else self.mask, False),
        )

    def row_axes(self) -> dict[str, Any]:
        """For each array of :meth:`arrays`, its row axis (None: not a per-row array)."""
        out = {
            "X": 0,
            "y": 0,
            "offset": 0,
            "z": [0 for _ in self.z],
            "gathers": [{k: 1 if k == "onehot" else 0 for k in g.arrays} for g in self.gathers],
        }  # every array of a CompiledModel is per row
        for name in ("trials", "mask"):
            if getattr(self, name) is not None:
                out[name] = 0
        return out

    # -- data as arguments -----------------------------------------------------------
    def arrays(self) -> dict[str, Any]:
        """Every data array (a pytree), for :meth:`bind`."""
        out = {
            "X": self.X,
            "y": self.y,
            "offset": self.offset,
            "z": list(self.z),
            "gathers": [g.arrays for g in self.gathers],
        }
        if self.trials is not None:
            out["trials"] = self.trials
        if self.mask is not None:
            out["mask"] = self.mask
        return out

    def bind(self, arrays: dict[str, Any]) -> CompiledModel:
        """The same model over other arrays (those of :meth:`arrays`, on a device or traced)."""
        return replace(
            self,
            X=arrays["X"],
            y=arrays["y"],
            trials=arrays.get("trials"),
            mask=arrays.get("mask"),
            offset=arrays["offset"],
            z=tuple(arrays["z"]),
            gathers=tuple(g.bind(a) for g, a in zip(self.gathers, arrays["gathers"], strict=True)),
        )

    # -- parameters --------------------------------------------------------------------
    @property
    def _tfb(self):
        return self.ops.tfp_module().bijectors

    def initial_params(self) -> dict[str, Array]:
        return {p.name: self.ops.constant(p.init, self.dtype) for p in self.parameters}

    def constrain(self, unconstrained: dict[str, Array]) -> dict[str, Array]:
        tfb = self._tfb
        return {p.name: p.constrain(unconstrained[p.name], tfb) for p in self.parameters}

    def unconstrain(self, params: dict[str, Array]) -> dict[str, Array]:
        tfb, o = self._tfb, self.ops
        return {
            p.name: p.unconstrain(o.constant(np.asarray(params[p.name]), self.dtype), tfb)
            for p in self.parameters
        }

    def _params(self, params: dict[str, Array]) -> dict[str, Array]:
        """Parameters as the backend's arrays in the model's dtype (numbers and lists
        straight to it: through float32 they would lose digits)."""
        plain = (int, float, list, tuple, np.ndarray, np.generic)
        return {
            k: self.ops.constant(np.asarray(v, self.dtype))
            if isinstance(v, plain)
            else self.ops.cast(v, self.dtype)
            for k, v in params.items()
        }

    # -- the model ---------------------------------------------------------------------
    def random_part(self, effects: list[Array]) -> Array:
        """``Z b [..., n]``: ``sum_j sum_c z_j[:, c] * b_j[codes_j, c]`` from each grouping's
        effects ``[..., L, k]``, through the device-chosen gathers."""
        total = 0.0
        for b, z, gather in zip(effects, self.z, self.gathers, strict=True):
            total = total + self.ops.sum(gather(b) * z, -1)
        return total

    def linear_predictor(self, beta: Array, effects: list[Array]) -> Array:
        """``eta [..., n]`` from ``beta [p]`` and each grouping's effects ``[..., L, k]``,
        computed once (with its cotangent) however many consumers it has."""
        eta = self.ops.matvec(self.X, beta) + self.offset + self.random_part(effects)
        return self.ops.computed_once(eta)

    def prior(self, params: dict[str, Array]) -> dict[str, Any]:
        """The random-effects nodes (TFP distributions), each with event shape ``[L, k]``."""
        o, tfd = self.ops, self.family.tfd
        out = {}
        for g, node in zip(self.design.groupings, self.nodes, strict=True):
            scale = params[scale_name(g)]
            if g.k == 1:
                base = tfd.Independent(tfd.Normal(o.zeros([1], self.dtype), scale[..., None]), 1)
            else:
                base = tfd.MultivariateNormalTriL(o.zeros([g.k], self.dtype), scale)
            out[node] = tfd.Sample(base, g.n_levels, name=node)
        return out

    def joint_distribution(self, params: dict[str, Array]):
        """The model as a TFP ``JointDistributionNamed`` at ``params`` (constrained values),
        on the backend's TFP (the JAX substrate for ``backend="jax"``)."""
        params = self._params(params)
        nodes = list(self.nodes)
        model = dict(self.prior(params))

        def response(*values, **named):
            named.update(zip(nodes, values, strict=False))
            eta = self.linear_predictor(params["beta"], [named[n] for n in nodes])
            return self.family.distribution(eta, params, self.trials)

        response.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in nodes]
        )
        model["y"] = response
        return self.family.tfd.JointDistributionNamed(model)

    def log_prob(self, params: dict[str, Array], effects: list[Array]) -> Array:
        """Complete-data log density ``log p(y, b | params)``, batched over leading dims of b:
        the joint distribution's ``log_prob``, node by node, with the response node through
        the family's :meth:`~mixedtf.model.family.Family.log_likelihood` (for the ordinal
        family 44x faster than its TFP distribution)."""
        params = self._params(params)
        prior = self.prior(params)
        total = sum(prior[n].log_prob(b) for n, b in zip(self.nodes, effects, strict=True))
        eta = self.linear_predictor(params["beta"], list(effects))
        ll = self.family.log_likelihood(eta, params, self.y, self.trials, self.mask)
        return total + self.ops.cast(ll, self.dtype)

    def log_prob64(self, params: dict[str, Array], effects: list[Array]) -> Array:
        """:meth:`log_prob` in float64 for the samplers (one value per chain, effects
        ``[C, L, k]``, parameters without batch dimensions), without TFP: the sums over
        levels and rows by :func:`~mixedtf.model.reductions.precise_sum`, so that
        differences between states stay exact at millions of rows in a float32 kernel."""
        params = self._params(params)
        eta = self.linear_predictor(params["beta"], list(effects))
        loglik = self.family.log_likelihood64(eta, params, self.y, self.trials, self.mask)
        return self.prior_log_prob64(params, effects) + loglik

    def prior_log_prob64(self, params: dict[str, Array], effects: list[Array]) -> Array:
        """``log p(b | params)`` in float64, one value per chain (see :meth:`log_prob64`)."""
        o = self.ops
        params = self._params(params)
        total = 0.0
        for g, b in zip(self.design.groupings, effects, strict=True):
            scale = params[scale_name(g)]
            if g.k == 1:
                u = b[..., 0] / scale
                total += normal_log_density(o, u * u, g.n_levels, o.log(scale))
            else:
                u = o.triangular_solve(
                    o.broadcast_to(scale, [*b.shape[:-1], g.k, g.k]), b[..., None], lower=True
                )[..., 0]
                log_det = o.sum(o.log(o.diag_part(scale)))
                total += normal_log_density(o, o.sum(u * u, -1), g.n_levels, log_det, g.k)
        return total


def response_arrays(design: Design) -> tuple[np.ndarray, np.ndarray | None]:
    """The response as the family's distribution takes it, and the binomial trials:
    ``cbind(s, f)`` gives ``y = s`` out of ``s + f``; an ordinal ``1..K`` becomes ``0..K-1``."""
    y = design.outcome
    return (y - 1.0 if design.family == "ordinal" else y), design.trials


def compile_model(
    design: Design,
    family: str | families.Family | None = None,
    dtype: Any = "float64",
    device: str | None = None,
    gather_mode: str | None = None,
    init: dict | None = None,
    backend: str | ModuleType | None = None,
) -> CompiledModel:
    """Compile ``design`` into a :class:`CompiledModel`.

    Args:
        family: the design's family (default), or the same family by name or object.
        dtype: float64 (default) or float32 (faster on GPUs); numpy, TensorFlow or a name.
        device: ``"CPU"`` or ``"GPU"``; default: GPU when the backend sees one.
        gather_mode: force one gradient form for every term (tests); default per device.
        init: the parameters' initial values (see :func:`parameter_table`).
        backend: ``"tensorflow"`` (default) or ``"jax"`` (:mod:`mixedtf.model.backend`).
    """
    spec = design.family_spec
    given = spec if family is None else families.get(family, None)
    if given.name != spec.name or (isinstance(family, families.Family) and given != spec):
        raise FamilyError(
            f"the design was built for {spec!r} ({spec.name}); got {given!r}. Build the design "
            "with the family and link to compile."
        )
    ops = backends.get(backend)
    fam = likelihood_of(spec, ops=ops)
    y, trials = response_arrays(design)
    device = ops.default_device(device)
    np_dtype = as_dtype(dtype)
    gathers = tuple(
        LevelGather.build(
            g.codes,
            g.n_levels,
            gather_mode or choose_mode(device, g.n_levels),
            np_dtype,
            ops,
        )
        for g in design.groupings
    )
    return CompiledModel(
        design=design,
        family=fam,
        dtype=np_dtype,
        device=device,
        parameters=parameter_table(
            design,
            fam.has_scale,
            fam.has_cutpoints,
            init,
            family_param=fam.family_param,
        ),
        nodes=tuple(node_name(g) for g in design.groupings),
        X=design.X.astype(np_dtype),
        y=y.astype(np_dtype),
        trials=None if trials is None else trials.astype(np_dtype),
        offset=design.offset.astype(np_dtype),
        z=tuple(g.z.astype(np_dtype) for g in design.groupings),
        gathers=gathers,
    )
