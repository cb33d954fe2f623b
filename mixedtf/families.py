"""Response families: one registry, no TensorFlow.

A family names the response distribution, its link and what the estimators must fit
besides the linear predictor (a residual scale, ordinal cutpoints). Every estimator
and the results read the family from here; the TensorFlow distributions of the compiled
model live in :mod:`mixedtf.model.family`.

>>> import mixedtf as mtf
>>> mtf.families.Binomial(link="probit")
Binomial(link='probit')
>>> mtf.families.get("poisson").link
'log'

A family/link pair is either fitted correctly end to end or refused here with a
:class:`~mixedtf.errors.FamilyError` naming the links that are fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mixedtf.errors import FamilyError
from mixedtf.links import LINKS

__all__ = [
    "FAMILIES",
    "Binomial",
    "Family",
    "Gamma",
    "Gaussian",
    "InverseGaussian",
    "NegativeBinomial",
    "Ordinal",
    "Poisson",
    "get",
]


@dataclass(frozen=True)
class Family:
    """A response family and its link (validated on construction).

    Class attributes: ``name``; ``links``, the links fitted end to end (likelihood,
    working weights, fitted values, predict); ``default_link``; ``has_scale`` (a residual
    SD is estimated); ``has_cutpoints`` (ordered cutpoints replace the intercept).
    """

    name: ClassVar[str] = ""
    links: ClassVar[tuple[str, ...]] = ()
    default_link: ClassVar[str] = ""
    has_scale: ClassVar[bool] = False
    has_cutpoints: ClassVar[bool] = False

    link: str = field(default="")

    def __post_init__(self) -> None:
        link = self.link or self.default_link
        if not isinstance(link, str) or link.lower() not in self.links:
            raise FamilyError(
                f"family {self.name!r} is fitted with link {_or(self.links)}; got link={link!r}. "
                f"Use one of those (the default is {self.default_link!r})."
            )
        object.__setattr__(self, "link", link.lower())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link!r})"

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean ``g^{-1}(eta)`` (numpy): a probability for binomial, a rate for Poisson;
        ordinal models have no single mean (see ``predict(type="response")``)."""
        return LINKS[self.link].inverse(np.asarray(eta, dtype=np.float64))


@dataclass(frozen=True, repr=False)
class Gaussian(Family):
    """Normal response, identity link: ``y ~ N(eta, sigma^2)`` (lme4's ``lmer``)."""

    name: ClassVar[str] = "gaussian"
    links: ClassVar[tuple[str, ...]] = ("identity",)
    default_link: ClassVar[str] = "identity"
    has_scale: ClassVar[bool] = True


@dataclass(frozen=True, repr=False)
class Binomial(Family):
    """Binomial counts out of trials (1 for a 0/1 response); links as R's ``binomial()``:
    logit, probit, cloglog, log, cauchit."""

    name: ClassVar[str] = "binomial"
    links: ClassVar[tuple[str, ...]] = ("logit", "probit", "cloglog", "log", "cauchit")
    default_link: ClassVar[str] = "logit"


@dataclass(frozen=True, repr=False)
class Poisson(Family):
    """Poisson counts; links as R's ``poisson()``: log, sqrt, identity."""

    name: ClassVar[str] = "poisson"
    links: ClassVar[tuple[str, ...]] = ("log", "sqrt", "identity")
    default_link: ClassVar[str] = "log"


@dataclass(frozen=True, repr=False)
class NegativeBinomial(Family):
    """Negative binomial counts, ``Var(y) = mu + mu^2 / theta``; links log, sqrt, identity.
    ``theta=None`` (default) estimates theta with the other parameters, as lme4's
    ``glmer.nb``; a number holds it fixed, as ``glmer(family = negative.binomial(theta))``."""

    name: ClassVar[str] = "negative_binomial"
    links: ClassVar[tuple[str, ...]] = ("log", "sqrt", "identity")
    default_link: ClassVar[str] = "log"

    theta: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.theta is not None and not (
            isinstance(self.theta, int | float) and np.isfinite(self.theta) and self.theta > 0
        ):
            raise FamilyError(
                f"the negative binomial theta must be a positive number (or None to estimate "
                f"it); got theta={self.theta!r}."
            )

    def __repr__(self) -> str:
        theta = "" if self.theta is None else f", theta={self.theta!r}"
        return f"NegativeBinomial(link={self.link!r}{theta})"


@dataclass(frozen=True, repr=False)
class Gamma(Family):
    """Gamma response with a dispersion, ``Var(y) = phi mu^2``; links inverse (R's default),
    log, identity. Fitted as lme4's ``glmer(family = Gamma(...))``, itself approximate:
    PIRLS ignores the dispersion, and the Laplace deviance plugs in ``deviance / n``."""

    name: ClassVar[str] = "gamma"
    links: ClassVar[tuple[str, ...]] = ("inverse", "log", "identity")
    default_link: ClassVar[str] = "inverse"
    has_scale: ClassVar[bool] = True


@dataclass(frozen=True, repr=False)
class InverseGaussian(Family):
    """Inverse Gaussian response with a dispersion, ``Var(y) = phi mu^3``; links ``1/mu^2``
    (R's default), inverse, log, identity; lme4's conventions as for :class:`Gamma`."""

    name: ClassVar[str] = "inverse_gaussian"
    links: ClassVar[tuple[str, ...]] = ("1/mu^2", "inverse", "log", "identity")
    default_link: ClassVar[str] = "1/mu^2"
    has_scale: ClassVar[bool] = True


@dataclass(frozen=True, repr=False)
class Ordinal(Family):
    """Cumulative logit for ordered categories, as ``ordinal::clmm``:
    ``P(y <= k) = logistic(c_k - eta)``, no intercept in the fixed part."""

    name: ClassVar[str] = "ordinal"
    links: ClassVar[tuple[str, ...]] = ("logit",)
    default_link: ClassVar[str] = "logit"
    has_cutpoints: ClassVar[bool] = True


FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (Gaussian, Binomial, Poisson, NegativeBinomial, Gamma, InverseGaussian, Ordinal)
}
ALIASES = {  # R's spellings
    "negative.binomial": "negative_binomial",
    "nb": "negative_binomial",
    "inverse.gaussian": "inverse_gaussian",
}


def get(family: Any = "gaussian", link: str | None = None) -> Family:
    """The family object for a name (``"binomial"``) or a family object, with ``link``
    (default: the family's own, or the object's).

    Raises:
        FamilyError: an unknown family, a link the family is not fitted with, or a ``link``
            that contradicts the family object's.
    """
    if isinstance(family, Family):
        if link is not None and link != family.link:
            raise FamilyError(
                f"link={link!r} contradicts the family object's link {family.link!r}; "
                "give the link in one place."
            )
        return family
    name = family.lower() if isinstance(family, str) else None
    name = ALIASES.get(name, name)
    if name not in FAMILIES:
        raise FamilyError(
            f"family must be one of {_or(tuple(FAMILIES))} or a mixedtf.families object; "
            f"got {family!r}."
        )
    return FAMILIES[name](link=link or "")


def _or(options: tuple[str, ...]) -> str:
    quoted = [repr(o) for o in options]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
