"""``MixedLM``: the public model object, from an lme4 formula to a fit; ``lmer`` and
``glmer`` as lme4 spells them.

The estimators are imported when ``fit`` runs, so building a model (formula and
design) never imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixedtf import families
from mixedtf.design import Design, build_design
from mixedtf.errors import DesignError, OptionError
from mixedtf.fit import fit as fit_design
from mixedtf.formula import Formula, parse_formula
from mixedtf.results import MixedLMResults


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
        family: families.Family | None = None,
        design: Design | None = None,
        weights: Any = None,
    ) -> None:
        self.formula = formula
        self.family_spec = family or families.Gaussian()
        self.weights = weights
        self.design = design

    @property
    def family(self) -> str:
        """The family's name (``family_spec`` is the family object, with its link)."""
        return self.family_spec.name

    @property
    def link(self) -> str:
        return self.family_spec.link

    @classmethod
    def from_formula(
        cls,
        formula: str,
        data: Any = None,
        family: Any = "gaussian",
        weights: Any = None,
        link: str | None = None,
    ) -> MixedLM:
        """Parse ``formula``; with ``data``, build the design at once so formula and data errors
        surface here.

        Args:
            family: ``"gaussian"``, ``"binomial"``, ``"poisson"``, ``"ordinal"``, or a family
                object such as ``mixedtf.families.Binomial(link="probit")``.
            weights: a column name or array: prior weights of a Gaussian model
                (``Var(e_i) = sigma^2 / w_i``, as lmer's), or binomial trials for a response
                of proportions (as glmer's).
            link: the family's link, when the family is given by name.

        Raises:
            FormulaSyntaxError: the formula does not parse (the message points at the position).
            DesignError: the data do not fit the formula.
            FamilyError: an unknown family or link, or a response the family cannot take.
        """
        spec = families.get(family, link)
        parsed = parse_formula(formula)
        design = build_design(parsed, data, spec, weights) if data is not None else None
        return cls(parsed, spec, design, weights)

    def design_for(self, data: Any = None) -> Design:
        """The design on ``data``, or the one built at construction when ``data`` is None."""
        if data is not None:
            return build_design(self.formula, data, self.family_spec, self.weights)
        if self.design is None:
            raise DesignError(
                "no data: pass data to MixedLM.from_formula(formula, data) or to fit(data)."
            )
        return self.design

    def fit(
        self,
        data: Any = None,
        method: str = "mcem",
        seed: int | None = None,
        progress: bool | None = None,
        **options: Any,
    ) -> MixedLMResults:
        """Fit the model.

        Args:
            data: data to fit on; defaults to the data given to :meth:`from_formula`.
            method: ``"mcem"`` (default) for Monte Carlo EM on the compiled TFP model (GPU
                when TensorFlow sees one); ``"ml"`` or ``"reml"`` for the exact Gaussian
                marginal likelihood (profiled, as lme4's ``lmer``); ``"laplace"`` for binomial,
                Poisson and ordinal models by the Laplace approximation, or adaptive
                Gauss-Hermite quadrature with ``n_agq > 1`` (as lme4's ``glmer``).
            seed: seed of Monte Carlo EM; the same seed gives the same fit on a CPU. The
                exact and Laplace fits are deterministic and ignore it.
            progress: MCEM's progress bar (default: when stderr is a terminal); the exact and
                Laplace fits ignore it.
            **options: the method's options, checked against its class in
                :mod:`mixedtf.fit.options` (``ExactOptions`` for ``"ml"``/``"reml"``,
                ``LaplaceOptions`` for ``"laplace"``, ``MCEMOptions`` for ``"mcem"``).

        Raises:
            OptionError: an unknown or misplaced option (the message lists the method's
                options), a bad value, or a method that does not fit the family.
        """
        return fit_design(self.design_for(data), method, options, seed, progress)

    def compile(self, data: Any = None, dtype: str = "float64", backend: str = "tensorflow"):
        """The model compiled for an array backend (:class:`mixedtf.model.CompiledModel`;
        ``"tensorflow"`` or ``"jax"``), its parameters starting where MCEM starts."""
        from mixedtf.fit.start import mcem_start
        from mixedtf.model import compile_model

        design = self.design_for(data)
        start = mcem_start(design)
        init = {"beta": start.beta, "covs": start.covs}
        if start.sigma2 is not None:
            init["sigma"] = start.sigma2**0.5
        names = {"negative_binomial": "nb_theta", "gamma": "shape", "inverse_gaussian": "ig_lambda"}
        if design.family in names and start.cuts.size:
            init[names[design.family]] = float(np.exp(start.cuts[0]))
        elif start.cuts is not None and start.cuts.size:
            init["cutpoints"] = start.cuts
        return compile_model(design, dtype=dtype, init=init, backend=backend)

    def joint_distribution(self, params: dict | None = None, data: Any = None):
        """The model as a TFP ``JointDistributionNamed`` at ``params`` (constrained values keyed
        as in ``compile().parameters``; default: the starting values), to inspect with
        ``resolve_graph()``, sample from, or build other inference on."""
        compiled = self.compile(data)
        return compiled.joint_distribution(
            params if params is not None else compiled.initial_params()
        )

    def __repr__(self) -> str:
        return f"MixedLM({str(self.formula)!r}, family={self.family_spec!r})"


def lmer(
    formula: str,
    data: Any,
    REML: bool | None = None,
    weights: Any = None,
    method: str | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> MixedLMResults:
    """lme4's ``lmer``: a linear mixed model by REML (default) or ML (``REML=False``);
    ``method="mcem"`` fits it by Monte Carlo EM instead (maximum likelihood). ``weights``:
    prior weights (a column name or an array), ``Var(e_i) = sigma^2 / w_i``, as lmer's.

    Raises:
        OptionError: ``REML`` contradicts ``method``, or an option the method does not take.
    """
    if method is None:
        method = "ml" if REML is False else "reml"
    elif REML is not None:
        wanted = str(method).lower()
        if (REML and wanted != "reml") or (not REML and wanted == "reml"):
            raise OptionError(
                f"REML={REML} contradicts method={method!r}: REML is the exact estimator's "
                "criterion (method='reml'); ML is method='ml' or, by Monte Carlo, 'mcem'. "
                "Give one of them."
            )
    model = MixedLM.from_formula(formula, data, weights=weights)
    return model.fit(method=method, seed=seed, progress=progress, **options)


def glmer(
    formula: str,
    data: Any,
    family: Any = "binomial",
    nAGQ: int | None = None,
    weights: Any = None,
    method: str = "laplace",
    link: str | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> MixedLMResults:
    """lme4's ``glmer``: a binomial, Poisson or ordinal GLMM by the Laplace approximation
    (``nAGQ = 1``, the default) or adaptive Gauss-Hermite quadrature (``nAGQ > 1``, one
    scalar random term); ``method="mcem"`` fits it by Monte Carlo EM instead (which takes
    no ``nAGQ``).

    Raises:
        OptionError: ``nAGQ`` with ``method="mcem"``, or an option the method does not take.
    """
    if nAGQ is not None:
        options["nAGQ"] = nAGQ
    model = MixedLM.from_formula(formula, data, family=family, weights=weights, link=link)
    return model.fit(method=method, seed=seed, progress=progress, **options)


def glmer_nb(
    formula: str,
    data: Any,
    link: str = "log",
    nAGQ: int | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> MixedLMResults:
    """lme4's ``glmer.nb``: a negative binomial GLMM with its theta estimated jointly with
    the other parameters by the Laplace approximation (``res.family_params["theta"]``, its
    standard error in ``res.family_params_se``). For a fixed theta pass
    ``family=mtf.families.NegativeBinomial(theta=...)`` to :func:`glmer`."""
    family = families.NegativeBinomial(link=link)
    return glmer(
        formula, data, family, nAGQ, method="laplace", seed=seed, progress=progress, **options
    )
