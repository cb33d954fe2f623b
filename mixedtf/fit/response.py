r"""Row-wise log-likelihoods of the non-Gaussian families, with the derivatives the Laplace
approximation needs (plain numpy/scipy).

Binomial and Poisson depend on one linear predictor ``eta`` per row; the cumulative-logit
ordinal model on two, ``a = c_y - eta`` and ``c = c_{y-1} - eta`` (``c_0 = -inf``,
``c_K = +inf``), with ``log p = log(F(a) - F(c))`` and ``F`` the logistic CDF.

Each response gives ``loglik(eta)``, ``score_and_weights(eta) = (d log p / d eta,
W)`` and ``fixed_information(eta, X) = (I_phiphi, R)``: the information of the fixed
parameters ``phi`` (beta, and the cutpoints) at fixed random effects, and the rows ``R``
with ``I_{phi u} = R' A`` for ``A = Z Lambda`` -- what lme4's ``vcov`` Schur complement uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.special import expit, gammaln, log_ndtr

from mixedtf.design import Design
from mixedtf.errors import FamilyError
from mixedtf.links import LINKS


@dataclass(frozen=True)
class GLMResponse:
    """Response of a binomial or Poisson GLMM: counts ``y`` out of ``trials`` (binomial),
    with any of the family's links (:mod:`mixedtf.links`). A linear predictor that puts the
    mean outside its range (a log-binomial probability above 1, an identity-Poisson rate
    below 0) has log-likelihood ``-inf``, so PIRLS halves its step and the optimiser
    steps back, as lme4 does."""

    family: str
    link: str
    y: np.ndarray
    trials: np.ndarray | None
    n_cutpoints: int = 0
    nb_theta: float = 1.0  # negative binomial: Var(y) = mu + mu^2 / theta
    prior: np.ndarray | None = None  # prior weights (Poisson, Gamma, inverse Gaussian)

    @property
    def w(self) -> np.ndarray | float:
        """The prior weights, 1 without them: they multiply each row's log-likelihood,
        score, Fisher weight and deviance residual, as R's ``glm`` and lme4's."""
        return 1.0 if self.prior is None else self.prior

    def with_nb_theta(self, theta: float) -> GLMResponse:
        """This response with the negative binomial ``theta``."""
        return replace(self, nb_theta=float(theta))

    def mean(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``mu`` (a probability for binomial, a rate for Poisson) and ``d mu / d eta``."""
        link = LINKS[self.link]
        return link.inverse(eta), link.mu_eta(eta)

    def eta_range(self) -> tuple[float, float]:
        """The linear predictors whose mean is in range: ``(0, inf)`` for the sqrt and
        identity links of counts and the inverse and identity links of positive responses,
        ``(-inf, 0)`` for the log link of binomial, else all."""
        positive = self.family not in ("binomial",) and self.link in ("identity", "inverse")
        if LINKS[self.link].positive_eta or positive:
            return 0.0, np.inf
        if self.family == "binomial" and self.link == "log":
            return -np.inf, 0.0
        return -np.inf, np.inf

    def _valid(self, mu: np.ndarray) -> np.ndarray:
        if self.family == "binomial":
            return (mu > 0.0) & (mu < 1.0)
        return mu > 0.0

    def loglik(self, eta: np.ndarray, cuts=None) -> np.ndarray:
        """Per-row log-likelihood, normalising constants included, times the prior weights
        (``-inf`` where the mean is outside its range)."""
        return self._row_loglik(eta) * self.w

    def _row_loglik(self, eta: np.ndarray) -> np.ndarray:
        if self.family == "binomial":
            n, y = self.trials, self.y
            coef = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
            if self.link == "logit":
                log_p, log_q = -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
            elif self.link == "probit":
                log_p, log_q = log_ndtr(eta), log_ndtr(-eta)
            else:
                mu = self.mean(eta)[0]
                ok = self._valid(mu)
                safe = np.where(ok, mu, 0.5)
                log_p = np.where(ok, np.log(safe), -np.inf)
                log_q = np.where(ok, np.log1p(-safe), -np.inf)
            with np.errstate(invalid="ignore"):  # 0 * -inf where y = 0 or y = n
                out = coef + np.where(y > 0, y * log_p, 0.0) + np.where(n > y, (n - y) * log_q, 0.0)
            return out
        if self.family == "poisson" and self.link == "log":
            return self.y * eta - np.exp(eta) - gammaln(self.y + 1)
        mu = self.mean(eta)[0]
        lo, hi = self.eta_range()
        ok = self._valid(mu) & (eta > lo) & (eta < hi)
        safe = np.where(ok, mu, 1.0)
        y = self.y
        if self.family in ("gamma", "inverse_gaussian"):
            return np.where(ok, -0.5 * self._unit_deviance(safe), -np.inf)
        if self.family == "negative_binomial":
            t = self.nb_theta
            ll = (
                gammaln(y + t) - gammaln(t) - gammaln(y + 1)
                + t * (np.log(t) - np.log(t + safe))
                + np.where(y > 0, y * (np.log(safe) - np.log(t + safe)), 0.0)
            )  # fmt: skip
        else:
            ll = np.where(y > 0, y * np.log(safe), 0.0) - safe - gammaln(y + 1)
        return np.where(ok, ll, -np.inf)

    def score_and_weights(self, eta: np.ndarray, cuts=None) -> tuple[np.ndarray, np.ndarray]:
        """``d log p / d eta`` per row and the Fisher weights ``(d mu/d eta)^2 / Var``."""
        mu, dmu = self.mean(eta)
        if self.family == "binomial":
            var = np.clip(mu * (1.0 - mu), 1e-300, None) / self.trials
            resid = self.y / self.trials - mu
        elif self.family == "negative_binomial":
            var = np.clip(mu + mu**2 / self.nb_theta, 1e-300, None)
            resid = self.y - mu
        elif self.family in ("gamma", "inverse_gaussian"):
            var = self.variance(mu)
            resid = self.y - mu
        else:
            var = np.clip(mu, 1e-300, None)
            resid = self.y - mu
        return self.w * resid * dmu / var, self.w * dmu**2 / var

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """The variance function ``V(mu)`` (unit dispersion)."""
        if self.family == "binomial":
            return np.clip(mu * (1.0 - mu), 1e-300, None) / self.trials
        if self.family == "negative_binomial":
            return np.clip(mu + mu**2 / self.nb_theta, 1e-300, None)
        power = {"gamma": 2, "inverse_gaussian": 3}.get(self.family, 1)
        return np.clip(mu**power, 1e-300, None)

    def deviance_residuals(self, mu: np.ndarray) -> np.ndarray:
        """R's ``family$dev.resids`` (prior weights included) of the responses with a
        dispersion."""
        return self.w * self._unit_deviance(mu)

    def _unit_deviance(self, mu: np.ndarray) -> np.ndarray:
        y = self.y
        if self.family == "gamma":
            return -2.0 * (np.log(y / mu) - (y - mu) / mu)
        return (y - mu) ** 2 / (y * mu**2)

    @property
    def has_dispersion(self) -> bool:
        return self.family in ("gamma", "inverse_gaussian")

    def conditional_deviance(self, eta: np.ndarray, cuts=None) -> float:
        """The conditional term of the Laplace deviance, lme4's ``aic()``: ``-2 log p(y|u)``
        for the families without a dispersion; for Gamma and inverse Gaussian ``-2 log p``
        at the dispersion ``deviance / n``, plus 2."""
        if not self.has_dispersion:
            return float(-2.0 * self.loglik(eta, cuts).sum())
        mu = self.mean(eta)[0]
        dev = float(self.deviance_residuals(mu).sum())
        w, y = self.w * np.ones_like(self.y), self.y
        n = float(w.sum())
        if self.family == "gamma":
            shape = n / dev  # 1 / dispersion
            logd = shape * np.log(shape * y / mu) - shape * y / mu - np.log(y) - gammaln(shape)
            return float(-2.0 * (w * logd).sum() + 2.0)
        return float(n * (np.log(dev / n * 2.0 * np.pi) + 1.0) + 3.0 * (w * np.log(y)).sum() + 2.0)

    def pearson_ss(self, eta: np.ndarray) -> float:
        """``sum (y - mu)^2 / V(mu)``, lme4's ``wrss`` of a GLMM."""
        mu = self.mean(eta)[0]
        r = (self.y / (self.trials if self.trials is not None else 1.0)) - mu
        return float(np.sum(self.w * r**2 / self.variance(mu)))

    def fixed_information(self, eta, X, cuts=None) -> tuple[np.ndarray, np.ndarray]:
        """``X'WX`` and ``R = W X``."""
        _, w = self.score_and_weights(eta)
        WX = X * w[:, None]
        return X.T @ WX, WX


@dataclass(frozen=True)
class OrdinalResponse:
    """Cumulative-logit response, categories ``y`` in ``1..K``."""

    y: np.ndarray
    K: int
    family: str = "ordinal"
    link: str = "logit"
    trials: None = None
    _codes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_codes", self.y.astype(np.int64))

    @property
    def n_cutpoints(self) -> int:
        return self.K - 1

    def _bounds(self, eta, cuts):
        padded = np.concatenate([[-np.inf], np.asarray(cuts, np.float64), [np.inf]])
        return padded[self._codes] - eta, padded[self._codes - 1] - eta

    def _parts(self, eta, cuts):
        """``log D`` and the first and second derivatives in ``a`` and ``c``."""
        a, c = self._bounds(eta, cuts)
        Fa, Fc = expit(a), expit(c)
        # D = F(a) - F(c), without cancellation when both are near 1
        D = np.where(a + c > 0, expit(-c) - expit(-a), Fa - Fc)
        D = np.clip(D, 1e-300, None)
        fa, fc = Fa * (1 - Fa), Fc * (1 - Fc)
        dfa, dfc = fa * (1 - 2 * Fa), fc * (1 - 2 * Fc)
        la, lc = fa / D, -fc / D
        daa, dcc, dac = dfa / D - la**2, -dfc / D - lc**2, -la * lc
        return np.log(D), la, lc, daa, dcc, dac

    def loglik(self, eta, cuts) -> np.ndarray:
        return self._parts(eta, cuts)[0]

    has_dispersion = False

    def conditional_deviance(self, eta, cuts) -> float:
        """``-2 log p(y | u)``, the conditional term of the Laplace deviance."""
        return float(-2.0 * self.loglik(eta, cuts).sum())

    def score_and_weights(self, eta, cuts) -> tuple[np.ndarray, np.ndarray]:
        """``d log p / d eta = -(l_a + l_c)`` and the observed weights ``-d^2 log p/d eta^2``
        (positive: the cumulative logit is log-concave)."""
        _, la, lc, daa, dcc, dac = self._parts(eta, cuts)
        return -(la + lc), np.clip(-(daa + 2 * dac + dcc), 0.0, None)

    def fixed_information(self, eta, X, cuts) -> tuple[np.ndarray, np.ndarray]:
        """Information of ``phi = (beta, cutpoints)`` and the rows ``R`` (``n x d``)."""
        _, _, _, daa, dcc, dac = self._parts(eta, cuts)
        n, K = self.y.size, self.K
        Ja = np.zeros((n, K - 1))
        Jc = np.zeros((n, K - 1))
        rows = np.arange(n)
        top, bottom = self._codes < K, self._codes > 1
        Ja[rows[top], self._codes[top] - 1] = 1.0
        Jc[rows[bottom], self._codes[bottom] - 2] = 1.0
        Ja = np.hstack([-X, Ja])
        Jc = np.hstack([-X, Jc])
        info = -(
            Ja.T @ (Ja * daa[:, None])
            + Ja.T @ (Jc * dac[:, None])
            + Jc.T @ (Ja * dac[:, None])
            + Jc.T @ (Jc * dcc[:, None])
        )
        R = Ja * (daa + dac)[:, None] + Jc * (dac + dcc)[:, None]
        return info, R


def response_of(design: Design) -> GLMResponse | OrdinalResponse:
    """The row-wise response of a binomial, Poisson or ordinal design, with its link."""
    if design.family in ("binomial", "poisson", "negative_binomial", "gamma", "inverse_gaussian"):
        spec = design.family_spec
        response = GLMResponse(
            design.family, spec.link, design.outcome, design.trials, prior=design.prior_weights
        )
        theta = getattr(spec, "theta", None)
        return response if theta is None else response.with_nb_theta(theta)
    if design.family == "ordinal":
        return OrdinalResponse(design.outcome, int(design.outcome.max()))
    raise FamilyError(
        f"the row-wise GLMM likelihood covers binomial, Poisson and ordinal; got {design.family!r}."
    )
