"""``MixedLM``: the public model object, from an lme4 formula to a fit.

The estimators are imported when ``fit`` runs, so building a model (formula and
design) never imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

from mixedtf.design import FAMILIES, Design, build_design
from mixedtf.errors import DesignError
from mixedtf.formula import Formula, parse_formula

METHODS = ("mcem", "ml", "reml", "laplace")


class MixedLM:
    """A mixed-effects model given by an lme4 formula.

    >>> import mixedtf as mtf
    >>> sleep = mtf.datasets.load("sleepstudy")
    >>> model = mtf.MixedLM.from_formula("Reaction ~ Days + (Days | Subject)", sleep)
    >>> model.design.ngroups
    {'Subject': 18}
    """

    def __init__(
        self,
        formula: Formula,
        family: str = "gaussian",
        design: Design | None = None,
        link: str | None = None,
        weights: Any = None,
    ) -> None:
        self.formula = formula
        self.family = family
        self.link = link
        self.weights = weights
        self.design = design

    @classmethod
    def from_formula(
        cls, formula: str, data: Any = None, family: Any = "gaussian", weights: Any = None
    ) -> MixedLM:
        """Parse ``formula``; with ``data``, build the design at once so formula and data errors
        surface here.

        Args:
            family: ``"gaussian"``, ``"binomial"``, ``"poisson"``, ``"ordinal"``, or a family
                object such as ``mixedtf.model.family.Binomial(link="probit")``.
            weights: binomial trials (a column name or array) for a response of proportions.

        Raises:
            FormulaSyntaxError: the formula does not parse (the message points at the position).
            DesignError: the data do not fit the formula.
            FamilyError: the response does not fit the family.
        """
        name, link = _family_name(family)
        parsed = parse_formula(formula)
        design = build_design(parsed, data, name, weights) if data is not None else None
        return cls(parsed, name, design, link, weights)

    def design_for(self, data: Any = None) -> Design:
        """The design on ``data``, or the one built at construction when ``data`` is None."""
        if data is not None:
            return build_design(self.formula, data, self.family, self.weights)
        if self.design is None:
            raise DesignError(
                "no data: pass data to MixedLM.from_formula(formula, data) or to fit(data)."
            )
        return self.design

    def fit(self, data: Any = None, method: str = "mcem", seed: int | None = None, **options: Any):
        """Fit the model.

        Args:
            data: data to fit on; defaults to the data given to :meth:`from_formula`.
            method: ``"mcem"`` (default) for Monte Carlo EM on the compiled TFP model (GPU
                when TensorFlow sees one); ``"ml"`` or ``"reml"`` for the exact Gaussian
                marginal likelihood (profiled, as lme4's ``lmer``); ``"laplace"`` for binomial,
                Poisson and ordinal models by the Laplace approximation, or adaptive
                Gauss-Hermite quadrature with ``n_agq > 1`` (as lme4's ``glmer``).
            seed: seed of Monte Carlo EM; the same seed gives the same fit on a CPU.
            **options: estimator options (``mixedtf.fit.mcem.MCEMOptions`` for MCEM;
                ``fit_marginal``'s keyword arguments for ML/REML).
        """
        method = str(method).lower()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        design = self.design_for(data)
        if method in ("ml", "reml"):
            if self.family != "gaussian":
                raise ValueError(
                    f"method={method!r} is the exact Gaussian likelihood; family is {self.family!r}. "
                    "Use method='mcem'."
                )
            from mixedtf.fit import fit_marginal

            return fit_marginal(design, reml=method == "reml", **options)
        if self.link is not None and self.family != "gaussian":
            options.setdefault("link", self.link)
        if method == "laplace":
            if self.family == "gaussian":
                raise ValueError(
                    "method='laplace' fits binomial, Poisson and ordinal models; family is "
                    "'gaussian', whose likelihood is exact: use method='ml' or 'reml'."
                )
            from mixedtf.fit.laplace import fit_laplace

            return fit_laplace(design, **options)
        from mixedtf.fit.mcem import fit_mcem  # imports TensorFlow

        return fit_mcem(design, seed=seed, **options)

    def compile(self, data: Any = None, dtype: str = "float64"):
        """The model compiled for TensorFlow (:class:`mixedtf.model.CompiledModel`)."""
        import tensorflow as tf

        from mixedtf.model import compile_model
        from mixedtf.model.family import get_family

        family = get_family(self.family, self.link)
        return compile_model(self.design_for(data), family, dtype=tf.as_dtype(dtype))

    def joint_distribution(self, params: dict | None = None, data: Any = None):
        """The model as a TFP ``JointDistributionNamed`` at ``params`` (constrained values keyed
        as in ``compile().parameters``; default: the starting values), to inspect with
        ``resolve_graph()``, sample from, or build other inference on."""
        compiled = self.compile(data)
        return compiled.joint_distribution(
            params if params is not None else compiled.initial_params()
        )

    def __repr__(self) -> str:
        return f"MixedLM({str(self.formula)!r}, family={self.family!r})"


def _family_name(family: Any) -> tuple[str, str | None]:
    """The family's name and, for a family object, its link."""
    name = getattr(family, "name", family)
    if not isinstance(name, str) or name.lower() not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES} (or a family object); got {family!r}.")
    return name.lower(), getattr(family, "link", None)


def glmer(
    formula: str,
    data: Any,
    family: Any = "binomial",
    nAGQ: int = 1,
    weights: Any = None,
    method: str = "laplace",
    **options: Any,
):
    """lme4's ``glmer``: a binomial, Poisson or ordinal GLMM by the Laplace approximation
    (``nAGQ = 1``) or adaptive Gauss-Hermite quadrature (``nAGQ > 1``, one scalar random
    term); ``method="mcem"`` fits it by Monte Carlo EM instead."""
    model = MixedLM.from_formula(formula, data, family=family, weights=weights)
    if method == "laplace":
        options["n_agq"] = nAGQ
    return model.fit(method=method, **options)


def lmer(formula: str, data: Any, REML: bool = True, **options: Any):
    """lme4's ``lmer``: fit a linear mixed model by REML (default) or ML."""
    return MixedLM.from_formula(formula, data).fit(method="reml" if REML else "ml", **options)
