"""The parameter table: name, shape, bijector and initial value of each model parameter.

Unconstrained values map to the model's parameters through TFP's bijectors: ``Exp`` for
standard deviations, ``FillScaleTriL`` (diagonal through ``Exp``) for the Cholesky factor
of a correlated term's covariance, ``Ascending`` for the ordinal cutpoints, ``Identity``
for the fixed effects. The table names them; the bijector is built on the backend's TFP
when it is used (building the table imports no array library).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mixedtf.design import Design, GroupingSpec


def node_name(g: GroupingSpec) -> str:
    """The JointDistribution node of a grouping: ``b_`` + its VarCorr name, made an identifier."""
    return "b_" + re.sub(r"\W", "_", g.name)


@dataclass(frozen=True, eq=False)
class Parameter:
    """One parameter: ``name``, ``shape``, the ``bijector`` (TFP's name) from unconstrained
    space, ``init``."""

    name: str
    shape: tuple[int, ...]
    bijector: str  # "Identity", "Exp", "FillScaleTriL" (diagonal through Exp), "Ascending"
    init: np.ndarray

    def bijector_in(self, tfb: Any) -> Any:
        """The bijector from the ``bijectors`` module of a TFP substrate."""
        if self.bijector == "FillScaleTriL":
            return tfb.FillScaleTriL(diag_bijector=tfb.Exp(), diag_shift=None)
        return getattr(tfb, self.bijector)()

    def constrain(self, x: Any, tfb: Any) -> Any:
        # x + 0: TFP bijectors cache inverse/forward pairs by tensor, and a cache hit would
        # hand back the constant that was inverted, cutting the gradient
        return self.bijector_in(tfb).forward(x + 0)

    def unconstrain(self, value: Any, tfb: Any) -> Any:
        return self.bijector_in(tfb).inverse(value) + 0


def scale_name(g: GroupingSpec) -> str:
    return f"sd_{node_name(g)[2:]}" if g.k == 1 else f"scale_tril_{node_name(g)[2:]}"


def neutral_start(design: Design, has_cutpoints: bool = False) -> dict[str, np.ndarray]:
    """Parameter values that assume nothing about the data: beta 0, unit SDs and residual
    SD, evenly spaced cutpoints. The estimators' data-based starts are in
    :mod:`mixedtf.fit.start`."""
    out: dict[str, np.ndarray] = {
        "beta": np.zeros(design.X.shape[1]),
        "sigma": np.array(1.0),
        "covs": [np.eye(g.k) for g in design.groupings],
    }
    if has_cutpoints:
        K = int(design.outcome.max())
        out["cutpoints"] = np.arange(K - 1, dtype=np.float64) - (K - 2) / 2.0
    return out


def parameter_table(
    design: Design,
    has_scale: bool = True,
    has_cutpoints: bool = False,
    init: dict | None = None,
    family_param: str | None = None,
) -> tuple[Parameter, ...]:
    """The model's parameters in a fixed order: beta, the ordinal cutpoints (``Ascending``
    keeps them ordered), each grouping's scale, sigma.

    ``init``: initial values ``{"beta", "cutpoints", "covs" (per grouping), "sigma"}``;
    missing entries from :func:`neutral_start`.
    """
    init = {**neutral_start(design, has_cutpoints), **(init or {})}
    table = [Parameter("beta", (design.X.shape[1],), "Identity", np.asarray(init["beta"]))]
    if has_cutpoints:
        cuts = np.asarray(init["cutpoints"], dtype=np.float64)
        table.append(Parameter("cutpoints", cuts.shape, "Ascending", cuts))
    for g, cov in zip(design.groupings, init["covs"], strict=True):
        factor = np.linalg.cholesky(np.atleast_2d(cov))
        if g.k == 1:
            table.append(Parameter(scale_name(g), (), "Exp", np.array(factor[0, 0])))
        else:
            table.append(Parameter(scale_name(g), (g.k, g.k), "FillScaleTriL", factor))
    if has_scale:
        table.append(Parameter("sigma", (), "Exp", np.array(float(init["sigma"]))))
    if family_param is not None:  # NB theta, Gamma shape, inverse Gaussian lambda
        value = float(init.get(family_param, 1.0))
        table.append(Parameter(family_param, (), "Exp", np.array(value)))
    return tuple(table)


def table_frame(table: tuple[Parameter, ...]) -> pd.DataFrame:
    """The parameter table as a DataFrame (for display)."""
    return pd.DataFrame(
        [(p.name, p.shape, p.bijector, np.round(p.init, 6).tolist()) for p in table],
        columns=["name", "shape", "bijector", "init"],
    )
