"""Response families: a distribution and a link, kept apart from the rest of the model.

A family turns the linear predictor ``eta`` (and its own parameters, such as the
Gaussian residual SD) into the response distribution of the compiled model. Binomial,
Poisson and ordinal families plug in here.
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

    def distribution(self, eta: tf.Tensor, params: dict[str, tf.Tensor]) -> tfd.Distribution:
        raise NotImplementedError


@dataclass(frozen=True)
class Gaussian(Family):
    """Normal response, identity link: ``y ~ N(eta, sigma^2)``."""

    name: str = "gaussian"
    link: str = "identity"

    @property
    def has_scale(self) -> bool:
        return True

    def distribution(self, eta: tf.Tensor, params: dict[str, tf.Tensor]) -> tfd.Distribution:
        sigma = params["sigma"][..., tf.newaxis]
        return tfd.Independent(tfd.Normal(eta, sigma), reinterpreted_batch_ndims=1)


FAMILIES: dict[str, type[Family]] = {"gaussian": Gaussian}


def get_family(family: str | Family) -> Family:
    """A family object from its name or itself."""
    if isinstance(family, Family):
        return family
    try:
        return FAMILIES[str(family).lower()]()
    except KeyError:
        raise ValueError(
            f"family must be one of {sorted(FAMILIES)} (or a Family object); got {family!r}."
        ) from None
