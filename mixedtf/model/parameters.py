"""The parameter table: name, shape, bijector and initial value of each model parameter.

Unconstrained values map to the model's parameters through the bijectors: ``Exp`` for
standard deviations, ``FillScaleTriL`` (diagonal through ``Exp``) for the Cholesky factor
of a correlated term's covariance, identity for the fixed effects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_probability as tfp

from mixedtf.design import Design, GroupingSpec
from mixedtf.design.response import start_cutpoints

tfb = tfp.bijectors


def node_name(g: GroupingSpec) -> str:
    """The JointDistribution node of a grouping: ``b_`` + its VarCorr name, made an identifier."""
    return "b_" + re.sub(r"\W", "_", g.name)


@dataclass(frozen=True, eq=False)
class Parameter:
    """One parameter: ``name``, ``shape``, the ``bijector`` from unconstrained space, ``init``."""

    name: str
    shape: tuple[int, ...]
    bijector: tfb.Bijector
    init: np.ndarray

    def constrain(self, x: tf.Tensor) -> tf.Tensor:
        # tf.identity: TFP bijectors cache inverse/forward pairs by tensor, and a cache hit
        # would hand back the constant that was inverted, cutting the gradient
        return self.bijector.forward(tf.identity(x))

    def unconstrain(self, value) -> tf.Tensor:
        return tf.identity(self.bijector.inverse(value))


def scale_name(g: GroupingSpec) -> str:
    return f"sd_{node_name(g)[2:]}" if g.k == 1 else f"scale_tril_{node_name(g)[2:]}"


def start_values(design: Design) -> dict[str, np.ndarray]:
    """Independent starting values: least squares for beta and a moment split of the residual
    variance (``var(ave(resid, g))`` per term's intercept, as lme4 PR #245) for the rest."""
    y = design.y[:, 0] / np.maximum(design.y.sum(axis=1), 1.0) if design.y.ndim == 2 else design.y
    X, y = design.X, y - design.offset
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    total = float(np.var(resid))
    series = pd.Series(resid)
    between = [float(series.groupby(g.codes).transform("mean").var()) for g in design.groupings]
    residual = max(total - sum(between), 0.1 * total)
    out: dict[str, np.ndarray] = {"beta": beta, "sigma": np.array(np.sqrt(residual))}
    for g, v in zip(design.groupings, between, strict=True):
        sds = []
        for c in range(g.k):
            zc = g.z[:, c]
            if np.allclose(zc, 1.0):
                sds.append(np.sqrt(max(v, 0.01 * total)))
            else:  # a slope: a tenth of the residual SD per unit of the covariate
                sds.append(0.1 * np.sqrt(residual) / max(float(np.std(zc)), 1e-8))
        out[scale_name(g)] = np.array(sds[0]) if g.k == 1 else np.diag(sds)
    return out


def parameter_table(
    design: Design, has_scale: bool = True, has_cutpoints: bool = False
) -> tuple[Parameter, ...]:
    """The model's parameters in a fixed order: beta, the ordinal cutpoints (``Ascending``
    keeps them ordered), each grouping's scale, sigma."""
    init = start_values(design)
    table = [Parameter("beta", (design.X.shape[1],), tfb.Identity(), init["beta"])]
    if has_cutpoints:
        cuts = start_cutpoints(design.y)
        table.append(Parameter("cutpoints", cuts.shape, tfb.Ascending(), cuts))
    for g in design.groupings:
        name = scale_name(g)
        if g.k == 1:
            table.append(Parameter(name, (), tfb.Exp(), init[name]))
        else:
            bij = tfb.FillScaleTriL(diag_bijector=tfb.Exp(), diag_shift=None)
            table.append(Parameter(name, (g.k, g.k), bij, init[name]))
    if has_scale:
        table.append(Parameter("sigma", (), tfb.Exp(), init["sigma"]))
    return tuple(table)


def table_frame(table: tuple[Parameter, ...]) -> pd.DataFrame:
    """The parameter table as a DataFrame (for display)."""
    return pd.DataFrame(
        [(p.name, p.shape, p.bijector.name, np.round(p.init, 6).tolist()) for p in table],
        columns=["name", "shape", "bijector", "init"],
    )
