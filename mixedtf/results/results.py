"""``MixedLMResults``: the numbers of a fit, whichever estimator produced them.

Vocabulary follows lme4: ``fixef()``, ``vcov()``, ``varcorr()``, ``ranef()``,
``sigma``, ``loglik``, ``deviance``, ``aic``, ``bic``, ``nobs``, ``ngroups``, ``theta``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mixedtf.design import Design
from mixedtf.errors import OptionError
from mixedtf.results import ddf as ddf_methods
from mixedtf.results import inference, kenward_roger, storage
from mixedtf.results.info import AnalyticCheck, FitInfo
from mixedtf.results.prediction import (
    check_new_levels,
    predict,
    predict_with_intervals,
    random_part,
)


class MixedLMResults:
    """A fitted mixed model.

    Args:
        design: the design the model was fitted on.
        method: ``"ml"``, ``"reml"`` or ``"mcem"``.
        beta: fixed effects.
        beta_cov: their covariance (lme4's ``vcov``).
        theta: lme4's theta (relative covariance factors, column-wise lower triangles).
        sigma: residual standard deviation.
        covariances: per grouping, the ``k x k`` covariance matrix of its random effects.
        modes: per grouping, ``n_levels x k`` conditional modes.
        loglik: log-likelihood (the REML criterion's for REML fits, as lme4).
        deviance: ``-2`` times the ML log-likelihood at the estimates.
        conditional_covariances: callable returning per-grouping ``n_levels x k x k``
            conditional covariances (computed on first use).
        cutpoints: ordinal models: the ``K - 1`` ordered cutpoints; ``beta_cov`` then covers
            ``(beta, cutpoints)``.
        family_params: the family's estimated parameters, such as the negative binomial
            ``{"theta": ...}`` (lme4's ``getME(m, "glmer.nb.theta")``), with their standard
            errors in ``family_params_se``.
        draws: MCEM fits: per grouping, ``S x n_levels x k`` draws of the random effects from
            the E-step after burn-in (the posterior predictive of ``predict(type="response")``).
    """

    def __init__(
        self,
        *,
        design: Design,
        method: str,
        beta: np.ndarray,
        beta_cov: np.ndarray,
        theta: np.ndarray,
        theta_names: list[str],
        sigma: float,
        covariances: list[np.ndarray],
        modes: list[np.ndarray],
        loglik: float,
        deviance: float,
        fit_info: FitInfo,
        conditional_covariances: Callable[[], list[np.ndarray]] | None = None,
        reml_criterion: float | None = None,
        cutpoints: np.ndarray | None = None,
        draws: list[np.ndarray] | None = None,
        family_params: dict[str, float] | None = None,
        family_params_se: dict[str, float] | None = None,
    ) -> None:
        self.design = design
        self.method = method
        self._beta = np.asarray(beta, dtype=np.float64)
        self._beta_cov = np.asarray(beta_cov, dtype=np.float64)
        self.theta = pd.Series(np.asarray(theta, dtype=np.float64), index=theta_names, name="theta")
        self.sigma = float(sigma)
        self.covariances = [np.atleast_2d(c) for c in covariances]
        self._modes = modes
        self.loglik = float(loglik)
        self.deviance = float(deviance)
        self.reml_criterion = reml_criterion
        self.fit_info = fit_info
        self._condcov_fn = conditional_covariances
        self.cutpoints = None if cutpoints is None else np.asarray(cutpoints, dtype=np.float64)
        self.draws = draws
        self.family_params = dict(family_params or {})
        self.family_params_se = dict(family_params_se or {})
        # MCEM fits of Gaussian models: the AnalyticCheck against exact ML
        self.check: AnalyticCheck | None = None

    # -- sizes -----------------------------------------------------------------
    @property
    def nobs(self) -> int:
        return self.design.nobs

    @property
    def ngroups(self) -> dict[str, int]:
        return self.design.ngroups

    @property
    def has_scale(self) -> bool:
        """Whether the family has a residual SD (Gaussian); binomial and Poisson do not."""
        return self.design.family_spec.has_scale

    @property
    def family(self) -> str:
        return self.design.family

    @property
    def link(self) -> str:
        """The family's link (``"identity"``, ``"logit"``, ``"probit"``, ``"log"``)."""
        return self.design.family_spec.link

    @property
    def df_model(self) -> int:
        """Number of parameters: fixed effects, cutpoints, theta and, for Gaussian models, the
        residual SD (lme4's logLik df)."""
        n_cuts = 0 if self.cutpoints is None else self.cutpoints.size
        n_family = len(self.family_params)
        return self._beta.size + n_cuts + self.theta.size + int(self.has_scale) + n_family

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.df_model

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.df_model

    # -- fixed effects ---------------------------------------------------------
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates, by R column name."""
        return pd.Series(self._beta, index=list(self.design.fixed_names), name="fixef")

    def vcov(self, adjusted: bool = False) -> pd.DataFrame:
        """Covariance matrix of the fixed effects (lme4's ``vcov``); ``adjusted=True``:
        Kenward-Roger's small-sample adjusted covariance (pbkrtest's ``vcovAdj``, linear
        mixed models)."""
        names = list(self.design.fixed_names)
        p = len(names)
        if adjusted:
            cov = kenward_roger.KenwardRoger(self).Phi_adjusted
            return pd.DataFrame(cov, index=names, columns=names)
        return pd.DataFrame(self._beta_cov[:p, :p], index=names, columns=names)

    def cutpoint_table(self, alpha: float = 0.05) -> pd.DataFrame:
        """Ordinal models: the cutpoints (``ordinal::clmm``'s threshold coefficients, named
        ``"1|2"``, ...) with standard errors and Wald intervals."""
        if self.cutpoints is None:
            raise OptionError(f"a {self.design.family} model has no cutpoints.")
        levels = self.design.response_levels or tuple(
            str(k) for k in range(1, self.cutpoints.size + 2)
        )
        names = [f"{levels[k]}|{levels[k + 1]}" for k in range(self.cutpoints.size)]
        p = self._beta.size
        se = np.sqrt(np.diag(self._beta_cov)[p:]) if self._beta_cov.shape[0] > p else np.nan
        q = stats.norm.ppf(1 - alpha / 2)
        est = self.cutpoints
        return pd.DataFrame(
            {"estimate": est, "std_error": se, "ci_lower": est - q * se, "ci_upper": est + q * se},
            index=pd.Index(names, name="cutpoint"),
        )

    def coef_table(self, alpha: float = 0.05, ddf: str | None = None) -> pd.DataFrame:
        """The fixed effects' table. ``ddf=None``: Wald ``estimate, std_error, z, p_value``
        and the ``1 - alpha`` interval from normal quantiles. ``ddf="satterthwaite"``
        (linear mixed models): lmerTest's ``estimate, std_error, df, t, p_value``
        (``Pr(>|t|)``) with t quantiles; for MCEM fits evaluated at the MCEM estimates.
        ``ddf="kenward-roger"``: pbkrtest's, the standard errors from its adjusted
        covariance (:meth:`vcov` with ``adjusted=True``)."""
        if not 0 < alpha < 1:
            raise OptionError(f"alpha must be in (0, 1); got {alpha}.")
        if ddf is not None:
            if ddf not in ddf_methods.DDF_METHODS:
                raise OptionError(
                    f"ddf must be None or one of {ddf_methods.DDF_METHODS}; got {ddf!r}."
                )
            if ddf == "kenward-roger":
                table = kenward_roger.kenward_roger_table(self)
            else:
                table = ddf_methods.satterthwaite(self)
            q = stats.t.ppf(1 - alpha / 2, table.df)
            table["ci_lower"] = table.estimate - q * table.std_error
            table["ci_upper"] = table.estimate + q * table.std_error
            return table
        est, se = self.fixef(), self.bse()
        z = est / se
        q = stats.norm.ppf(1 - alpha / 2)
        return pd.DataFrame(
            {
                "estimate": est,
                "std_error": se,
                "z": z,
                "p_value": 2 * stats.norm.sf(np.abs(z)),
                "ci_lower": est - q * se,
                "ci_upper": est + q * se,
            }
        )

    def bse(self) -> pd.Series:
        """Standard errors of the fixed effects."""
        p = self._beta.size
        return pd.Series(np.sqrt(np.diag(self._beta_cov)[:p]), index=list(self.design.fixed_names))

    # -- variance components ---------------------------------------------------
    def varcorr(self) -> pd.DataFrame:
        """Variance components in the shape of R's ``as.data.frame(VarCorr(m))``.

        Columns ``grp, var1, var2, vcov, sdcor``: per group the variances (``var2`` NA,
        ``sdcor`` the SD), then the covariances (``sdcor`` the correlation); last the
        residual row.
        """
        rows = []
        for g, cov in zip(self.design.groupings, self.covariances, strict=True):
            sd = np.sqrt(np.diag(cov))
            for a in range(g.k):
                rows.append((g.name, g.colnames[a], pd.NA, cov[a, a], sd[a]))
            for a in range(g.k):
                for b in range(a + 1, g.k):
                    denom = sd[a] * sd[b]
                    corr = cov[b, a] / denom if denom > 0 else np.nan
                    rows.append((g.name, g.colnames[a], g.colnames[b], cov[b, a], corr))
        if self.has_scale:
            rows.append(("Residual", pd.NA, pd.NA, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    # -- random effects --------------------------------------------------------
    @cached_property
    def _condcov(self) -> list[np.ndarray]:
        if self._condcov_fn is None:
            raise NotImplementedError("this fit does not provide conditional variances")
        return self._condcov_fn()

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame] | pd.DataFrame:
        """Conditional modes of the random effects.

        Returns a dict keyed by grouping factor (as lme4's ``ranef(m)``), each a DataFrame
        indexed by level label with one column per term. With ``condvar=True``, a long
        DataFrame as R's ``as.data.frame(ranef(m, condVar = TRUE))``: columns
        ``grpvar, term, grp, condval, condsd``.
        """
        if condvar:
            parts = []
            for g, mode, cov in zip(self.design.groupings, self._modes, self._condcov, strict=True):
                sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
                for c, term in enumerate(g.colnames):
                    parts.append(
                        pd.DataFrame(
                            {
                                "grpvar": g.factor,
                                "term": term,
                                "grp": list(g.levels),
                                "condval": mode[:, c],
                                "condsd": sd[:, c],
                            }
                        )
                    )
            return pd.concat(parts, ignore_index=True)
        out: dict[str, pd.DataFrame] = {}
        for g, mode in zip(self.design.groupings, self._modes, strict=True):
            frame = pd.DataFrame(
                mode, index=pd.Index(list(g.levels), name=g.factor), columns=list(g.colnames)
            )
            out[g.factor] = pd.concat([out[g.factor], frame], axis=1) if g.factor in out else frame
        return out

    # -- fitted values and predictions ----------------------------------------------
    def fitted(self) -> pd.Series:
        """Conditional fitted values (lme4's ``fitted(m)``): the mean ``g^{-1}(eta)`` at
        ``eta = X beta + offset + Z b`` (per trial for binomial), the linear predictor for
        ordinal models."""
        d = self.design
        eta = d.X @ self._beta + d.offset + random_part(d.groupings, self._modes, "population")
        if self.design.family != "ordinal":
            eta = d.family_spec.inverse_link(eta)
        return pd.Series(eta, index=d.index, name="fitted")

    def resid(self) -> pd.Series:
        """Response residuals ``y - fitted`` (lme4's ``residuals(m, type = "response")``;
        binomial: proportion of successes minus the fitted probability)."""
        d = self.design
        if d.family == "ordinal":
            raise NotImplementedError("response residuals are not defined for ordinal models")
        return pd.Series(d.proportion, index=d.index, name="resid") - self.fitted().rename("resid")

    def predict(
        self,
        newdata: Any = None,
        include_random: bool = True,
        new_levels: str = "population",
        type: str = "link",
        se_fit: bool = False,
        interval: str | None = None,
        level: float = 0.95,
    ) -> pd.Series | pd.DataFrame:
        """Predictions, with standard errors and intervals when asked.

        Args:
            newdata: data to predict for (default: the training rows); encoded with the
                training levels and contrasts.
            include_random: add the random effects (lme4's ``re.form = NULL``); False gives
                the population level (``re.form = NA``).
            new_levels: ``"population"``: a level unseen in training contributes 0;
                ``"error"``: raise, naming the rows.
            type: ``"link"`` (default, as lme4): the linear predictor ``eta``;
                ``"response"``: the mean (binomial: probability; Poisson: rate; ordinal: a
                DataFrame of category probabilities). For MCEM fits it is the posterior
                predictive mean, the average of ``g^{-1}(eta)`` over the E-step's draws of
                the random effects (not ``g^{-1}`` at their mean); for Laplace fits it is
                ``g^{-1}`` at the conditional modes, as lme4's ``predict(type = "response")``.
            se_fit: return a DataFrame ``fit, se_fit`` (and the bounds with ``interval``).
            interval: ``"confidence"`` or ``"prediction"`` (Gaussian): a DataFrame ``fit,
                lower, upper``. The variance is the fixed part's ``x' V x``, plus each
                term's conditional variance of its level's effect (``Sigma`` for an unseen
                level) when ``include_random``, or ``z' Sigma z`` for a prediction interval
                of a new group; a prediction interval adds ``sigma^2``. Normal quantiles;
                response-scale bounds are the link-scale ones through ``g^{-1}``.
            level: the intervals' coverage.

        Raises:
            DesignError: a row has a missing predictor, or an unseen level with ``"error"``.
            OptionError: an interval this family has none of.
        """
        new_levels = check_new_levels(new_levels)
        if se_fit or interval is not None:
            return predict_with_intervals(
                self, newdata, include_random, new_levels, type, interval, level, se_fit
            )
        return predict(self, newdata, include_random, new_levels, type)

    # -- inference from the fit's own numbers (mixedtf.results.inference) -------------------
    def coef(self) -> dict[str, pd.DataFrame]:
        """lme4's ``coef(m)``: per grouping factor, each level's coefficients (fixed effects
        plus that level's random effects)."""
        return inference.coef(self)

    def is_singular(self, tol: float = 1e-4) -> bool:
        """lme4's ``isSingular(m, tol)``: a variance at zero or a correlation at +-1."""
        return inference.is_singular(self, tol)

    def confint(
        self,
        method: str = "profile",
        level: float = 0.95,
        parm: Any = None,
        nsim: int = 500,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """lme4's ``confint(m, parm, level, method, nsim)``: rows as its
        ``oldNames = FALSE`` (``sd_(Intercept)|Subject``, ``cor_...``, ``sigma``, the fixed
        effects), columns ``2.5 %``, ``97.5 %``.

        ``method="profile"`` (lme4's default; exact Gaussian fits and binomial, Poisson
        and negative binomial Laplace fits), ``"boot"`` (parametric bootstrap, percentile; ``nsim``, ``seed``) or
        ``"wald"`` (the fixed effects, NaN for the variance parameters). Profile and
        bootstrap refit the model (:func:`mixedtf.confint`)."""
        if method == "wald":
            return inference.wald_confint(self, level, parm)
        if method not in ("profile", "boot"):
            raise OptionError(f"method must be 'profile', 'boot' or 'wald'; got {method!r}.")
        return inference.REFITS[method](self, method, level, parm, nsim, seed)

    def simulate(
        self,
        nsim: int = 1,
        seed: int | None = None,
        newdata: Any = None,
        use_u: bool = False,
        allow_new_levels: bool = False,
    ) -> pd.DataFrame:
        """lme4's ``simulate(m, nsim, seed, newdata, use.u, allow.new.levels)``: responses
        drawn from the fitted model, one column per simulation (see
        :func:`mixedtf.results.inference.simulate`)."""
        return inference.simulate(self, nsim, seed, newdata, use_u, allow_new_levels)

    def r2(self) -> dict[str, float]:
        """``performance::r2_nakagawa``: ``{"marginal", "conditional"}`` R^2."""
        return inference.r2(self)

    def icc(self) -> dict[str, float]:
        """``performance::icc``: ``{"adjusted", "unadjusted"}`` intraclass correlation."""
        return inference.icc(self)

    def plot(self):
        """The first residual checks in one figure, as lme4's ``plot(m)``: residuals vs
        fitted, scale-location and normal QQ (:func:`mixedtf.plotting.plot_diagnostics`;
        needs matplotlib). Returns the Figure."""
        from mixedtf.plotting.residuals import plot_diagnostics

        return plot_diagnostics(self)

    @cached_property
    def null_model(self) -> MixedLMResults:
        """``insight::null_model(m)``: ``y ~ 1`` with this fit's random terms, family,
        offset and weights, fitted by this fit's method (once, then kept)."""
        return inference.null_model(self)

    def save(self, path) -> None:
        """Write the fit to ``path`` (a NumPy ``.npz`` archive with a JSON header, read back
        with :func:`mixedtf.load`; no pickle, see :mod:`mixedtf.results.storage`)."""
        storage.save(self, path)

    def summary(self, alpha: float = 0.05, ddf: str | None = "auto"):
        """Header, fixed-effects table, random-effects table, MCEM diagnostics and warnings
        (:class:`mixedtf.results.summary.Summary`; ``print()`` it, or display it in a notebook).

        ``ddf``: the fixed effects' denominator df, as :meth:`coef_table`; ``"auto"``
        (default) is Satterthwaite's for exact Gaussian fits (as lmerTest's summary) and
        Wald z otherwise."""
        from mixedtf.results.summary import summarize

        if ddf == "auto":
            exact = self.method in ("ml", "reml") and self.design.family == "gaussian"
            ddf = "satterthwaite" if exact else None
        return summarize(self, alpha, ddf)

    def __repr__(self) -> str:
        return (
            f"<MixedLMResults {self.method.upper()} {self.design.formula.text!r}: "
            f"logLik={self.loglik:.4f}, nobs={self.nobs}>"
        )


def load(path: str | os.PathLike) -> MixedLMResults:
    """Read a fit written by :meth:`MixedLMResults.save` (``mixedtf.load``); loading never
    runs code (no pickle) and does not import TensorFlow.

    Raises:
        MixedTFError: the file is not a mixedtf results file, or its data no longer rebuild
            the fitted design.
    """
    stored = storage.read(path)
    res = MixedLMResults(**stored.arguments)
    res.check = stored.check
    return res
