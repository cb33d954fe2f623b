"""Response families: a distribution and a link, kept apart from the rest of the model.

A family turns the linear predictor ``eta`` (and its own parameters: the Gaussian residual
SD, the ordinal cutpoints) into the response distribution of the compiled model:

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

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


@dataclass(frozen=True)
class Family:
    """Base class: ``name``, ``link`` and the response distribution given ``eta``."""

    name: str
    link: str

    @property
    def has_scale(self) -> bool:
        """Whether the family has a residual scale parameter (``sigma``)."""
        return False

    @property
    def has_cutpoints(self) -> bool:
        """Whether the family has ordered cutpoints (ordinal) in place of an intercept."""
        return False

    def distribution(
        self, eta: tf.Tensor, params: dict[str, tf.Tensor], trials: tf.Tensor | None = None
    ) -> tfd.Distribution:
        """The response distribution, batch shape ``eta.shape[:-1]``, event ``[n]``."""
        raise NotImplementedError

    def log_likelihood(self, eta, params, y, trials=None) -> tf.Tensor:
        """``sum_i log p(y_i | eta_i)`` over the last axis: the response node's log density
        (the samplers' hot path; a family may compute it faster than its distribution)."""
        return self.distribution(eta, params, trials).log_prob(y)

    def working_weights(self, eta, params, y, trials=None) -> tf.Tensor:
        """``-d^2 log p(y_i | eta_i) / d eta_i^2`` per row (the observed information of
        ``eta``), by two backward passes of the separable log-likelihood."""
        with tf.GradientTape() as outer:
            outer.watch(eta)
            with tf.GradientTape() as inner:
                inner.watch(eta)
                total = tf.reduce_sum(self.log_likelihood(eta, params, y, trials))
            score = inner.gradient(total, eta)
        return tf.maximum(-outer.gradient(score, eta), 0.0)


@dataclass(frozen=True)
class Gaussian(Family):
    """Normal response, identity link: ``y ~ N(eta, sigma^2)``."""

    name: str = "gaussian"
    link: str = "identity"

    @property
    def has_scale(self) -> bool:
        return True

    def distribution(self, eta, params, trials=None) -> tfd.Distribution:
        sigma = params["sigma"][..., tf.newaxis]
        return tfd.Independent(tfd.Normal(eta, sigma), reinterpreted_batch_ndims=1)


@dataclass(frozen=True)
class Binomial(Family):
    """Binomial counts out of ``trials`` (1 for a 0/1 response); link logit or probit."""

    name: str = "binomial"
    link: str = "logit"

    def __post_init__(self) -> None:
        if self.link not in ("logit", "probit"):
            raise ValueError(f"binomial link must be 'logit' or 'probit'; got {self.link!r}.")

    def distribution(self, eta, params, trials=None) -> tfd.Distribution:
        count = tf.ones_like(eta) if trials is None else trials + tf.zeros_like(eta)
        if self.link == "logit":
            base = tfd.Binomial(total_count=count, logits=eta)
        else:
            probs = tfd.Normal(tf.zeros([], eta.dtype), 1.0).cdf(eta)
            base = tfd.Binomial(total_count=count, probs=probs)
        return tfd.Independent(base, reinterpreted_batch_ndims=1)


@dataclass(frozen=True)
class Poisson(Family):
    """Poisson counts, log link."""

    name: str = "poisson"
    link: str = "log"

    def distribution(self, eta, params, trials=None) -> tfd.Distribution:
        return tfd.Independent(tfd.Poisson(log_rate=eta), reinterpreted_batch_ndims=1)

    def log_likelihood(self, eta, params, y, trials=None) -> tf.Tensor:
        """``sum_i y_i eta_i - exp(eta_i) - log(y_i!)``, the constant summed once (TFP's
        ``Poisson.log_prob`` evaluates ``lgamma`` for every chain and row)."""
        const = -tf.reduce_sum(tf.math.lgamma(y + 1.0))
        return tf.reduce_sum(y * eta - tf.exp(eta), -1) + const


@dataclass(frozen=True)
class Ordinal(Family):
    """Cumulative logit for ordered categories coded ``0..K-1``:
    ``P(y <= k) = logistic(c_k - eta)``, cutpoints ``params["cutpoints"]``."""

    name: str = "ordinal"
    link: str = "logit"

    @property
    def has_cutpoints(self) -> bool:
        return True

    def distribution(self, eta, params, trials=None) -> tfd.Distribution:
        return tfd.Independent(
            tfd.OrderedLogistic(cutpoints=params["cutpoints"], loc=eta),
            reinterpreted_batch_ndims=1,
        )

    def log_likelihood(self, eta, params, y, trials=None) -> tf.Tensor:
        """``log(F(a) - F(c))`` with ``a = c_y - eta``, ``c = c_{y-1} - eta`` (``F``
        logistic), as ``-softplus(-a) - softplus(c) + log(-expm1(c - a))``; the end
        cutpoints are +-1e4 (``F`` is 0 or 1 there in any precision). ``cutpoints`` may carry
        leading batch dimensions (``[..., K-1]``). With its gradient, 44x faster than
        ``tfd.OrderedLogistic.log_prob`` (which forms every category's probability) for 32
        chains x 73k rows: 4.4 ms against 194 ms."""
        cuts = params["cutpoints"]
        big = tf.fill(tf.concat([tf.shape(cuts)[:-1], [1]], 0), tf.constant(1e4, cuts.dtype))
        padded = tf.concat([-big, cuts, big], -1)  # [..., K + 1]
        k = tf.cast(y, tf.int32)
        # one consumer of eta: with several, XLA fused its gathers into each (the log density
        # of InstEval with its gradient, 32 chains: 103 ms, against 65 ms this way)
        bounds = tf.stack([tf.gather(padded, k + 1, axis=-1), tf.gather(padded, k, axis=-1)], -1)
        bounds = bounds - eta[..., tf.newaxis]
        upper, lower = bounds[..., 0], bounds[..., 1]
        ll = (
            -tf.math.softplus(-upper)
            - tf.math.softplus(lower)
            + tf.math.log(-tf.math.expm1(lower - upper))
        )
        return tf.reduce_sum(ll, -1)


FAMILIES: dict[str, type[Family]] = {
    "gaussian": Gaussian,
    "binomial": Binomial,
    "poisson": Poisson,
    "ordinal": Ordinal,
}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """A family object from its name (with an optional ``link``) or itself."""
    if isinstance(family, Family):
        return family
    try:
        cls = FAMILIES[str(family).lower()]
    except KeyError:
        raise ValueError(
            f"family must be one of {sorted(FAMILIES)} (or a Family object); got {family!r}."
        ) from None
    return cls() if link is None else cls(link=link)
