r"""Denominator degrees of freedom for the fixed effects of a linear mixed model:
Satterthwaite's, as ``lmerTest`` computes them.

With ``varpar = (theta, sigma)`` (lme4's theta and the residual SD) and
``V(varpar) = sigma^2 (R_X' R_X)^{-1}(theta)`` the fixed effects' covariance, a contrast
``l`` has variance ``v = l' V l``; its Satterthwaite df is

.. math::

    \nu = \frac{2 v^2}{g' A g}, \qquad g_k = l' \frac{\partial V}{\partial\,\text{varpar}_k} l,
    \qquad A = 2 H^{-1},

``H`` the Hessian of the deviance (REML criterion for REML fits) in ``varpar`` -- not
profiled over sigma, as lmerTest's ``devfun_vp``. Derivatives by Richardson-extrapolated
central differences (lmerTest uses ``numDeriv``). For MCEM fits the same quantities are
evaluated at the MCEM estimates with the ML deviance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mixedtf.errors import OptionError
from mixedtf.formula.rsyntax import r_deparse
from mixedtf.linalg.blocked import CrossProducts, factorize, gaussian_deviance

DDF_METHODS = ("satterthwaite", "kenward-roger")


class VarparModel:
    """The deviance (the REML criterion for REML fits; not profiled over sigma) and the
    fixed effects' covariance as functions of ``varpar = (theta, sigma)``."""

    def __init__(self, res: Any) -> None:
        self.cp = CrossProducts.build(res.design)
        self.reml = res.method == "reml"
        self.n, self.p = self.cp.n, self.cp.p

    def deviance(self, varpar: np.ndarray) -> float:
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        f = factorize(self.cp, theta)
        if f is None:
            return np.inf
        if self.reml:
            logdet, n_eff, r2 = f.logdet_L() + f.logdet_RX(), self.n - self.p, f.pwrss()
        else:
            logdet, n_eff, r2 = f.logdet_L(), self.n, f.pwrss()
        return gaussian_deviance(logdet, r2, n_eff, sigma2) - self.cp.log_weights

    def vcov(self, varpar: np.ndarray) -> np.ndarray:
        f = factorize(self.cp, varpar[:-1])
        return f.fixed_vcov(varpar[-1] ** 2)


def _steps(x: np.ndarray) -> np.ndarray:
    return 1e-4 * np.maximum(np.abs(x), 0.1)


def _jacobian(fun, x: np.ndarray) -> np.ndarray:
    """``d fun / d x_k`` (arrays), central differences with one Richardson step."""
    h = _steps(x)
    out = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h[k]
        d1 = (fun(x + e) - fun(x - e)) / (2 * h[k])
        d2 = (fun(x + e / 2) - fun(x - e / 2)) / h[k]
        out.append((4 * d2 - d1) / 3)
    return np.array(out)


def _hessian(fun, x: np.ndarray) -> np.ndarray:
    """The Hessian of a scalar ``fun``: the Jacobian of its central-difference gradient."""

    def gradient(y):
        h = _steps(y)
        g = np.empty(y.size)
        for k in range(y.size):
            e = np.zeros_like(y)
            e[k] = h[k]
            g[k] = (fun(y + e) - fun(y - e)) / (2 * h[k])
        return g

    H = _jacobian(gradient, x)
    return 0.5 * (H + H.T)


class Satterthwaite:
    """lmerTest's Satterthwaite machinery at a fit: ``V``, its Jacobian ``J`` in the free
    ``(theta, sigma)`` and ``A = 2 H^{-1}``; :meth:`df` of any contrast."""

    def __init__(self, res: Any) -> None:
        if res.design.family != "gaussian":
            raise OptionError(
                f"Satterthwaite df are for linear mixed models; family is "
                f"{res.design.family!r}. Use ddf=None (Wald z) for GLMMs."
            )
        model = VarparModel(res)
        varpar = np.r_[res.theta.to_numpy(), res.sigma]
        free = np.ones(varpar.size, bool)
        free[:-1] = np.abs(varpar[:-1]) > 1e-8  # a theta at its bound is held (as lmerTest)

        def full(x):
            v = varpar.copy()
            v[free] = x
            return v

        self.A = 2.0 * np.linalg.pinv(_hessian(lambda x: model.deviance(full(x)), varpar[free]))
        self.J = _jacobian(lambda x: model.vcov(full(x)), varpar[free])  # [k, p, p]
        self.V = model.vcov(varpar)
        self.sigma = res.sigma

    def df(self, L: np.ndarray) -> np.ndarray:
        """Satterthwaite's df of each row ``l`` of ``L``: ``2 (l'Vl)^2 / (g'Ag)``."""
        L = np.atleast_2d(L)
        var = np.einsum("ri,ij,rj->r", L, self.V, L)
        grads = np.einsum("ri,kij,rj->rk", L, self.J, L)
        return 2.0 * var**2 / np.einsum("rk,kl,rl->r", grads, self.A, grads)

    def f_test(self, L: np.ndarray, beta: np.ndarray) -> tuple[float, float, float]:
        """lmerTest's multi-df F test of ``L beta = 0``: ``(F, NumDF, DenDF)``, the
        denominator df from the eigen-decomposition of ``L V L'`` (``contestMD``)."""
        L = np.atleast_2d(L)
        values, vectors = np.linalg.eigh(L @ self.V @ L.T)
        keep = values > 1e-10 * max(values.max(), 1e-300)
        rotated = (vectors[:, keep].T @ L) / np.sqrt(values[keep])[:, None]
        q = int(keep.sum())
        t2 = (rotated @ beta) ** 2
        F = float(t2.sum() / q)
        nu = self.df(vectors[:, keep].T @ L)
        if np.any(nu <= 2):
            return F, q, 2.0
        E = float(np.sum(nu / (nu - 2.0)))
        return F, q, 2.0 * E / (E - q)


def satterthwaite(res: Any) -> pd.DataFrame:
    """lmerTest's ``summary(m, ddf = "Satterthwaite")`` coefficient table: ``estimate,
    std_error, df, t, p_value`` per fixed effect."""
    sat = Satterthwaite(res)
    est = res.fixef()
    se = np.sqrt(np.diag(sat.V))
    df = sat.df(np.eye(est.size))
    t = est.to_numpy() / se
    return pd.DataFrame(
        {
            "estimate": est.to_numpy(),
            "std_error": se,
            "df": df,
            "t": t,
            "p_value": 2.0 * stats.t.sf(np.abs(t), df),
        },
        index=est.index,
    )


def type3_anova(res: Any) -> pd.DataFrame:
    """lmerTest's ``anova(m)``: per fixed-effect term the type III F test
    (:mod:`mixedtf.results.type3`) with Satterthwaite's denominator df: ``Sum Sq, Mean Sq,
    NumDF, DenDF, F value, Pr(>F)`` (``Mean Sq = F sigma^2``)."""
    from mixedtf.results.type3 import type3_contrasts

    sat = Satterthwaite(res)
    beta = res.fixef().to_numpy()
    rows = []
    for term, L in type3_contrasts(res.design).items():
        if L.shape[0] == 0:
            continue
        F, q, ddf = sat.f_test(L, beta)
        ms = F * sat.sigma**2
        name = ":".join(r_deparse(str(f)) for f in term.factors)
        rows.append((name, ms * q, ms, q, ddf, F, stats.f.sf(F, q, ddf)))
    columns = ["term", "Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    table = pd.DataFrame(rows, columns=columns).set_index("term")
    table.index.name = None
    return table
