"""The families' response distributions on the array backend, for the compiled model.

The family itself -- its name, link and which parameters it has -- is the backend-free
:mod:`mixedtf.families`; :func:`likelihood_of` pairs it with the backend code (``ops``,
:mod:`mixedtf.model.backend`) that turns the linear predictor ``eta`` (and the family's
own parameters: the Gaussian residual SD, the ordinal cutpoints) into the response's log
density, and into TFP's response distribution for the inspectable JointDistribution:

* ``Gaussian``: ``y ~ N(eta, sigma^2)``;
* ``Binomial``: ``y ~ Binomial(trials, g^{-1}(eta))`` with ``g`` logit or probit;
* ``Poisson``: ``y ~ Poisson(exp(eta))``;
* ``Ordinal``: cumulative logit, ``P(y <= k) = logistic(c_k - eta)`` with ordered cutpoints
  ``c_1 < ... < c_{K-1}`` (``tfd.OrderedLogistic``; response coded ``0..K-1``), as R's
  ``ordinal::clmm``: the fixed part has no intercept.

Every family except the Gaussian has a log-concave likelihood in ``eta``, so the working
weight ``-d^2 log p / d eta^2`` (:meth:`Family.working_weights`) is positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mixedtf import families
from mixedtf.errors import FamilyError
from mixedtf.model import backend
from mixedtf.model.reductions import normal_log_density, precise_sum

Array = Any
# rows above which the sampler's log density sums them in float64 by blocks: below, a
# float32 sum keeps the differences of log densities to ~1e-3 (InstEval's ordinal fit: 5%
# of its time for the float64 sum)
PRECISE_ROWS = 2**17


@dataclass(frozen=True)
class Likelihood:
    """Base class: the family (``spec``) and the response distribution given ``eta``."""

    spec: families.Family
    ops: ModuleType

    @property
    def tfd(self):
        """TFP's distributions on this backend."""
        return self.ops.tfp_module().distributions

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def link(self) -> str:
        return self.spec.link

    @property
    def has_scale(self) -> bool:
        """Whether the model has a Gaussian residual SD parameter (``sigma``)."""
        return self.spec.name == "gaussian"

    @property
    def family_param(self) -> str | None:
        """The family's own positive parameter the fit estimates, if any: the negative
        binomial ``nb_theta`` (unless fixed), the Gamma ``shape`` (1 / dispersion), the
        inverse Gaussian ``ig_lambda`` (1 / dispersion)."""
        if self.spec.name == "negative_binomial":
            return "nb_theta" if self.spec.theta is None else None
        return {"gamma": "shape", "inverse_gaussian": "ig_lambda"}.get(self.spec.name)

    @property
    def has_cutpoints(self) -> bool:
        """Whether the family has ordered cutpoints (ordinal) in place of an intercept."""
        return self.spec.has_cutpoints

    def distribution(self, eta: Array, params: dict[str, Array], trials: Array | None = None):
        """The response distribution, batch shape ``eta.shape[:-1]``, event ``[n]``."""
        raise NotImplementedError

    def rows(self, terms: Array, mask: Array | None, precise: bool = False) -> Array:
        """``sum`` of per-row ``terms`` over the last axis, the rows where ``mask`` is False
        left out (padding rows of a model whose rows are sharded over devices); in float64
        by :func:`~mixedtf.model.reductions.precise_sum` when ``precise`` (the sampler's
        log density, whose differences decide the Metropolis test) and there are more than
        ``PRECISE_ROWS`` rows, else in the terms' dtype (the M-step's and the working
        weights' derivatives need no more)."""
        o = self.ops
        terms = terms if mask is None else o.where(mask, terms, 0.0)
        if precise and terms.shape[-1] > PRECISE_ROWS:
            return precise_sum(o, terms)
        return o.sum(terms, -1)

    def log_likelihood(self, eta, params, y, trials=None, mask=None, precise=False) -> Array:
        """``sum_i log p(y_i | eta_i)`` over the last axis (the rows where ``mask``): the
        response node's log density (the samplers' hot path), written out by each family
        (faster than its TFP distribution's ``log_prob``; tested equal to it)."""
        raise NotImplementedError

    def log_likelihood64(self, eta, params, y, trials=None, mask=None) -> Array:
        """:meth:`log_likelihood` in float64 (the samplers' target); the Gaussian sums its
        rows by :func:`~mixedtf.model.reductions.precise_sum`."""
        ll = self.log_likelihood(eta, params, y, trials, mask, precise=True)
        return self.ops.cast(ll, self.ops.float64)

    def working_weights(self, eta, params, y, trials=None) -> Array:
        """``-d^2 log p(y_i | eta_i) / d eta_i^2`` per row (the observed information of
        ``eta``), by two backward passes of the separable log-likelihood."""
        o = self.ops
        curvature = o.diag_hessian(lambda e: o.sum(self.log_likelihood(e, params, y, trials)), eta)
        return o.maximum(-curvature, 0.0)


@dataclass(frozen=True)
class GaussianLikelihood(Likelihood):
    """Normal response, identity link: ``y ~ N(eta, sigma^2)``."""

    def distribution(self, eta, params, trials=None):
        tfd = self.tfd
        sigma = params["sigma"][..., None]
        return tfd.Independent(tfd.Normal(eta, sigma), reinterpreted_batch_ndims=1)

    def log_likelihood(self, eta, params, y, trials=None, mask=None, precise=False) -> Array:
        o = self.ops
        sigma = params["sigma"][..., None]
        r = (y - eta) / sigma
        return self.rows(-0.5 * r * r - o.log(sigma) - 0.5 * np.log(2.0 * np.pi), mask, precise)

    def log_likelihood64(self, eta, params, y, trials=None, mask=None) -> Array:
        o = self.ops
        r = (y - eta) / params["sigma"]
        squares, count = r * r, y.shape[-1]
        if mask is not None:  # padding rows: not counted, and 1 (0 once centred)
            squares, count = o.where(mask, squares, 1.0), o.sum(o.cast(mask, o.float64))
        return normal_log_density(o, squares, count, o.log(params["sigma"]))


def inverse_link(ops: ModuleType, link: str, eta: Array) -> Array:
    """``g^{-1}(eta)`` on the backend ``ops`` (the numpy twins are :mod:`mixedtf.links`)."""
    if link == "logit":
        return ops.sigmoid(eta)
    if link == "probit":
        return 0.5 * ops.erfc(-eta / np.sqrt(2.0))
    if link == "cloglog":
        return -ops.expm1(-ops.exp(eta))
    if link == "cauchit":
        return 0.5 + ops.atan(eta) / np.pi
    if link == "log":
        return ops.exp(eta)
    if link == "sqrt":
        return ops.square(eta)
    if link == "identity":
        return eta
    if link == "inverse":
        return 1.0 / eta
    if link == "1/mu^2":
        return ops.rsqrt(eta)
    raise FamilyError(f"link {link!r} has no inverse on the array backends here")


def _in_range(ops: ModuleType, values: Array, ok: Array, fill: float) -> Array:
    """``values`` where ``ok``, else ``fill``: the safe argument of a double ``where``
    (the gradient of the branch not taken must not be NaN)."""
    return ops.where(ok, values, ops.cast(fill, values.dtype))


def _positive_mean(ops: ModuleType, link: str, eta: Array) -> tuple[Array | None, Array]:
    """The mean ``g^{-1}(eta)`` of a count or positive response and the rows where it is
    valid: every link but the log needs ``eta > 0`` (R's ``valideta``); None for the log."""
    if link == "log":
        return None, ops.exp(eta)
    ok = eta > 0.0
    return ok, inverse_link(ops, link, _in_range(ops, eta, ok, 1.0))


def _or_minus_inf(ops: ModuleType, ok: Array, ll: Array) -> Array:
    return ops.where(ok, ll, ops.cast(-np.inf, ll.dtype))


def _scalar_param(ops: ModuleType, params: dict, name: str, dtype) -> Array:
    """A positive family parameter with its leading batch dimensions, broadcast over rows."""
    return ops.cast(params[name], dtype)[..., None]


@dataclass(frozen=True)
class BinomialLikelihood(Likelihood):
    """Binomial counts out of ``trials`` (1 for a 0/1 response), any of R's binomial links;
    a probability outside (0, 1) has log-likelihood ``-inf``."""

    def probability(self, eta: Array) -> Array:
        return inverse_link(self.ops, self.link, eta)

    def distribution(self, eta, params, trials=None):
        o, tfd = self.ops, self.tfd
        count = o.ones_like(eta) if trials is None else trials + o.zeros_like(eta)
        if self.link == "logit":
            base = tfd.Binomial(total_count=count, logits=eta)
        else:
            base = tfd.Binomial(total_count=count, probs=self.probability(eta))
        return tfd.Independent(base, reinterpreted_batch_ndims=1)

    def log_likelihood(self, eta, params, y, trials=None, mask=None, precise=False) -> Array:
        """``sum_i log C(n_i, y_i) + y_i log p_i + (n_i - y_i) log(1 - p_i)``, the binomial
        coefficients summed once."""
        o = self.ops
        n = o.ones_like(y) if trials is None else trials
        const = self.rows(
            o.lgamma(n + 1.0) - o.lgamma(y + 1.0) - o.lgamma(n - y + 1.0), mask, precise
        )
        if self.link == "logit":
            return self.rows(y * eta - n * o.softplus(eta), mask, precise) + const
        if self.link == "probit":
            log_p, log_q = o.log_ndtr(eta), o.log_ndtr(-eta)
            return self.rows(y * log_p + (n - y) * log_q, mask, precise) + const
        p = self.probability(eta)
        ok = (p > 0.0) & (p < 1.0)
        safe = _in_range(o, p, ok, 0.5)
        ll = y * o.log(safe) + (n - y) * o.log1p(-safe)
        return self.rows(_or_minus_inf(o, ok, ll), mask, precise) + const


@dataclass(frozen=True)
class PoissonLikelihood(Likelihood):
    """Poisson counts, log, sqrt or identity link; a rate at or below 0 (or a negative
    ``eta`` with the sqrt link) has log-likelihood ``-inf``."""

    def rate(self, eta: Array) -> Array:
        return inverse_link(self.ops, self.link, eta)

    def distribution(self, eta, params, trials=None):
        tfd = self.tfd
        if self.link == "log":
            return tfd.Independent(tfd.Poisson(log_rate=eta), reinterpreted_batch_ndims=1)
        return tfd.Independent(tfd.Poisson(rate=self.rate(eta)), reinterpreted_batch_ndims=1)

    def log_likelihood(self, eta, params, y, trials=None, mask=None, precise=False) -> Array:
        """``sum_i y_i log mu_i - mu_i - log(y_i!)``, the constant summed once (TFP's
        ``Poisson.log_prob`` evaluates ``lgamma`` for every chain and row)."""
        o = self.ops
        const = -self.rows(o.lgamma(y + 1.0), mask, precise)
        if self.link == "log":
            return self.rows(y * eta - o.exp(eta), mask, precise) + const
        ok, mu = _positive_mean(o, self.link, eta)
        return self.rows(_or_minus_inf(o, ok, y * o.log(mu) - mu), mask, precise) + const


@dataclass(frozen=True)
class NegativeBinomialLikelihood(Likelihood):
    """Negative binomial counts, ``Var(y) = mu + mu^2 / theta``; ``theta`` is the family's
    own (fixed) or ``params["nb_theta"]`` (estimated; may carry leading batch dimensions)."""

    def theta(self, params, dtype) -> Array:
        if self.spec.theta is not None:
            return self.ops.constant(self.spec.theta, dtype)
        return _scalar_param(self.ops, params, "nb_theta", dtype)

    def distribution(self, eta, params, trials=None):
        o, tfd = self.ops, self.tfd
        theta = self.theta(params, eta.dtype)
        log_mu = eta if self.link == "log" else o.log(inverse_link(o, self.link, eta))
        return tfd.Independent(
            tfd.NegativeBinomial(total_count=theta, logits=log_mu - o.log(theta)),
            reinterpreted_batch_ndims=1,
        )

    def log_likelihood(self, eta, params, y, trials=None, mask=None, precise=False) -> Array:
        """``lgamma(y + t) - lgamma(t) - lgamma(y + 1) + t log t - (t + y) log(t + mu)
        + y log mu`` summed over rows; ``-inf`` where the mean is out of range."""
        o = self.ops
        theta = self.theta(params, eta.dtype)
        ok, mu = _positive_mean(o, self.link, eta)
        log_mu = eta if ok is None else o.log(mu)
        ll = (
            o.lgamma(y + theta) - o.lgamma(theta) - o.lgamma(y + 1.0)
            + theta * o.log(theta) - (theta + y) * o.log(theta + mu) + y * log_mu
        )  # fmt: skip
        return self.rows(ll if ok is None else _or_minus_inf(o, ok, ll), mask, precise)


@dataclass(frozen=True)
class GammaLikelihood(Likelihood):
    """Gamma response with shape ``params["shape"]`` (``1 / dispersion``) and mean
    ``g^{-1}(eta)``: the model's own likelihood (lme4's Laplace fit of it is approximate)."""

    def distribution(self, eta, params, trials=None):
        tfd = self.tfd
        shape = _scalar_param(self.ops, params, "shape", eta.dtype)
        _, mu = _positive_mean(self.ops, self.link, eta)
        return tfd.Independent(tfd.Gamma(shape, shape / mu), reinterpreted_batch_ndims=1)

    def log_likelihood(self, eta, params, y, trials=None, mask=None, precise=False) -> Array:
        o = self.ops
        shape = _scalar_param(o, params, "shape", eta.dtype)
        ok, mu = _positive_mean(o, self.link, eta)
        ll = (
            shape * o.log(shape / mu) + (shape - 1.0) * o.log(y)
            - shape * y / mu - o.lgamma(shape)
        )  # fmt: skip
        return self.rows(ll if ok is None else _or_minus_inf(o, ok, ll), mask, precise)


@dataclass(frozen=True)
class InverseGaussianLikelihood(Likelihood):
    """Inverse Gaussian response with ``params["ig_lambda"]`` (``1 / dispersion``)."""

    def distribution(self, eta, params, trials=None):
        tfd = self.tfd
        lam = _scalar_param(self.ops, params, "ig_lambda", eta.dtype)
        _, mu = _positive_mean(self.ops, self.link, eta)
        return tfd.Independent(tfd.InverseGaussian(mu, lam), reinterpreted_batch_ndims=1)

    def log_likelihood(self, eta, params, y, trials=None, mask=None, precise=False) -> Array:
        o = self.ops
        lam = _scalar_param(o, params, "ig_lambda", eta.dtype)
        ok, mu = _positive_mean(o, self.link, eta)
        ll = 0.5 * o.log(lam / (2.0 * np.pi * y**3)) - lam * (y - mu) ** 2 / (2.0 * mu**2 * y)
        return self.rows(ll if ok is None else _or_minus_inf(o, ok, ll), mask, precise)


@dataclass(frozen=True)
class OrdinalLikelihood(Likelihood):
    """Cumulative logit for ordered categories coded ``0..K-1``:
    ``P(y <= k) = logistic(c_k - eta)``, cutpoints ``params["cutpoints"]``."""

    def distribution(self, eta, params, trials=None):
        tfd = self.tfd
        return tfd.Independent(
            tfd.OrderedLogistic(cutpoints=params["cutpoints"], loc=eta),
            reinterpreted_batch_ndims=1,
        )

    def log_likelihood(self, eta, params, y, trials=None, mask=None, precise=False) -> Array:
        """``log(F(a) - F(c))`` with ``a = c_y - eta``, ``c = c_{y-1} - eta`` (``F``
        logistic; the end cutpoints are +-1e4), as
        ``log F(a) + log F(-c) + log(1 - e^{c - a})``. The last term does not depend on
        ``eta`` and is summed once over the rows, not per chain; the first two are
        ``-log((1 + t A)(1 + B / t)) = -log1p(t A + B / t + A B)`` with ``t = e^eta``,
        ``A = e^{-c_y}``, ``B = e^{c_{y-1}}`` per row: one ``exp`` and one ``log1p`` per
        chain and row, where ``-softplus(-a) - softplus(c)`` took two of each (InstEval,
        32 chains, JAX on a CPU: the log density 10 ms against 57 ms; on TensorFlow about
        the same as before, ~33 ms with its gradient). ``e^eta`` overflows only
        for ``|eta| > 88`` (float32), where the density is 0 to any precision: the
        sampler rejects such a state. ``cutpoints`` may carry leading batch dimensions."""
        o = self.ops
        cuts = o.cast(params["cutpoints"], eta.dtype)
        big = o.full([*cuts.shape[:-1], 1], 1e4, cuts.dtype)
        padded = o.concat([-big, cuts, big], -1)  # [..., K + 1]
        k = o.cast(y, o.int32)
        # c_y and c_{y-1} per row by one-hot products: their gradient with respect to
        # per-chain cutpoints (the M-step's Newton step) is then a matrix product, where
        # a gather's is a scatter of every chain's rows into K + 1 bins (serial on a CPU)
        depth = int(padded.shape[-1])
        upper = o.einsum("...k,nk->...n", padded, o.one_hot(k + 1, depth, dtype=padded.dtype))
        lower = o.einsum("...k,nk->...n", padded, o.one_hot(k, depth, dtype=padded.dtype))
        gaps = self.rows(o.log(-o.expm1(lower - upper)), mask, precise)
        A, B = o.exp(-upper), o.exp(lower)
        t = o.exp(eta)
        return gaps - self.rows(o.log1p(t * A + B / t + A * B), mask, precise)


LIKELIHOODS: dict[str, type[Likelihood]] = {
    "gaussian": GaussianLikelihood,
    "binomial": BinomialLikelihood,
    "poisson": PoissonLikelihood,
    "negative_binomial": NegativeBinomialLikelihood,
    "gamma": GammaLikelihood,
    "inverse_gaussian": InverseGaussianLikelihood,
    "ordinal": OrdinalLikelihood,
}


def likelihood_of(
    family: str | families.Family, link: str | None = None, ops: ModuleType | str | None = None
) -> Likelihood:
    """The likelihood of a family (a name with an optional link, or a family object of
    :mod:`mixedtf.families`; links are validated there) on the backend ``ops`` (default
    TensorFlow)."""
    spec = families.get(family, link)
    if spec.name not in LIKELIHOODS:
        raise FamilyError(
            f"the compiled model has no {spec.name!r} likelihood yet, so Monte Carlo "
            "EM cannot fit it; fit it with method='laplace'."
        )
    return LIKELIHOODS[spec.name](spec, backend.get(ops))
