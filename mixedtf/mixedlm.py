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
        self, formula: Formula, family: str = "gaussian", design: Design | None = None
    ) -> None:
        self.formula = formula
        self.family = family
        self.design = design

    @classmethod
    def from_formula(cls, formula: str, data: Any = None, family: str = "gaussian") -> MixedLM:
        """Parse ``formula``; with ``data``, build the design at once so formula and data errors
        surface here.

        Raises:
            FormulaSyntaxError: the formula does not parse (the message points at the position).
            DesignError: the data do not fit the formula.
        """
        family = _family_name(family)
        parsed = parse_formula(formula)
        design = build_design(parsed, data, family) if data is not None else None
        return cls(parsed, family, design)

    def design_for(self, data: Any = None) -> Design:
        """The design on ``data``, or the one built at construction when ``data`` is None."""
        if data is not None:
            return build_design(self.formula, data, self.family)
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
                marginal likelihood (profiled, as lme4's ``lmer``); ``"laplace"`` for binomial
                and Poisson models by the Laplace approximation, or adaptive Gauss-Hermite
                quadrature with ``n_agq > 1`` (as lme4's ``glmer``).
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
        if method == "laplace":
            if self.family not in ("binomial", "poisson"):
                raise ValueError(
                    f"method='laplace' fits binomial and Poisson models; family is {self.family!r}. "
                    + (
                        "Use method='ml' or 'reml'."
                        if self.family == "gaussian"
                        else "Use method='mcem'."
                    )
                )
            from mixedtf.fit.laplace import fit_laplace

            return fit_laplace(design, **options)
        from mixedtf.fit.mcem import fit_mcem  # imports TensorFlow

        return fit_mcem(design, seed=seed, **options)

    def compile(self, data: Any = None, dtype: str = "float64"):
        """The model compiled for TensorFlow (:class:`mixedtf.model.CompiledModel`)."""
        import tensorflow as tf

        from mixedtf.model import compile_model

        return compile_model(self.design_for(data), self.family, dtype=tf.as_dtype(dtype))

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


def _family_name(family: Any) -> str:
    name = getattr(family, "name", family)
    if not isinstance(name, str) or name.lower() not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}; got {family!r}.")
    return name.lower()


def glmer(formula: str, data: Any, family: str = "binomial", nAGQ: int = 1, **options: Any):
    """lme4's ``glmer``: a binomial or Poisson GLMM by the Laplace approximation (``nAGQ = 1``)
    or adaptive Gauss-Hermite quadrature (``nAGQ > 1``, one scalar random term)."""
    return MixedLM.from_formula(formula, data, family=family).fit(
        method="laplace", n_agq=nAGQ, **options
    )


def lmer(formula: str, data: Any, REML: bool = True, **options: Any):
    """lme4's ``lmer``: fit a linear mixed model by REML (default) or ML."""
    return MixedLM.from_formula(formula, data).fit(method="reml" if REML else "ml", **options)
