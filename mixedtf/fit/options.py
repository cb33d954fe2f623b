"""Estimator options: one frozen, validated class per method, and the one place where a
user's ``**options`` become one of them.

``fit(method="reml", chains=8)`` raises an :class:`~mixedtf.errors.OptionError` that names
``chains``, says which method takes it, and lists the options of ``"reml"``; a value out
of range raises the same error from the class's ``__post_init__``. ``seed`` and
``progress`` are not options: every method accepts them (the exact and Laplace paths are
deterministic and silent, and ignore them).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from mixedtf.errors import OptionError
from mixedtf.linalg.blocked import DEFAULT_MAX_DENSE_BYTES

METHODS = ("mcem", "ml", "reml", "laplace")
BACKENDS = ("tensorflow", "jax")  # MCEM's array backends (mixedtf.model.backend)
ALIASES = {"nAGQ": "n_agq"}  # lme4's spelling -> ours
FAMILY_HINTS = {
    "link": "the link belongs to the family: MixedLM.from_formula(formula, data, "
    "family=mtf.families.Binomial(link='probit')), or link= there",
    "family": "the family is given with the model: MixedLM.from_formula(formula, data, family=...)",
    "weights": "weights are given with the model: MixedLM.from_formula(formula, data, weights=...)",
    "REML": "REML= is lmer()'s door; in fit() write method='reml' or method='ml'",
}


def _positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise OptionError(f"{name} must be a positive integer; got {value!r}.")


def _positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise OptionError(f"{name} must be a positive number; got {value!r}.")


def _flag(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, bool | np.bool_):
        raise OptionError(f"{name} must be True or False; got {value!r}.")


@dataclass(frozen=True)
class ExactOptions:
    """Options of the exact Gaussian ML/REML fit (:func:`mixedtf.fit.exact.fit_exact`).

    Attributes:
        start: starting theta (default: lme4's, with the data-based start of lme4 PR #245
            for models whose terms are all ``(1|f)``).
        max_evaluations: budget of deviance evaluations.
        tolerance: final trust-region radius of COBYQA relative to theta's scale (default
            1e-5; 1e-4 for the outer problem when the tail is profiled out).
        max_dense_bytes: bound on one dense ``r x r`` float64 block of the factor.
        profile_tail: with three or more terms, optimise the first two terms' theta and
            profile the small trailing terms out; None decides by size.
        restart_edge: lme4's ``restart_edge``: when the optimum has a factor's diagonal at
            0, optimise again from it with those diagonals at 0.5 and keep the better
            optimum (a boundary can hold a local optimum).
    """

    start: Any = None
    max_evaluations: int = 2000
    tolerance: float | None = None
    max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES
    profile_tail: bool | None = None
    restart_edge: bool = True

    def __post_init__(self) -> None:
        _positive_int("max_evaluations", self.max_evaluations)
        _positive("tolerance", self.tolerance, allow_none=True)
        _positive_int("max_dense_bytes", self.max_dense_bytes)
        _flag("profile_tail", self.profile_tail, allow_none=True)
        _flag("restart_edge", self.restart_edge)
        if self.start is not None:
            start = np.asarray(self.start, dtype=np.float64).ravel()
            if not np.all(np.isfinite(start)):
                raise OptionError(f"start must be finite theta values; got {self.start!r}.")
            object.__setattr__(self, "start", start)


@dataclass(frozen=True)
class LaplaceOptions:
    """Options of the Laplace / adaptive Gauss-Hermite GLMM fit
    (:func:`mixedtf.fit.laplace.fit_laplace`).

    Attributes:
        n_agq: quadrature nodes per level; 1 is the Laplace approximation (lme4's ``nAGQ``,
            accepted under that name too). More than 1 needs a single scalar term.
        max_evaluations: budget of deviance evaluations of the optimiser.
    """

    n_agq: int = 1
    max_evaluations: int = 2000

    def __post_init__(self) -> None:
        _positive_int("n_agq", self.n_agq)
        _positive_int("max_evaluations", self.max_evaluations)


# The MCEM schedule's defaults. Gaussian models sample by exact Gibbs sweeps with joint
# draws of nested terms and Rao-Blackwellised statistics: their iterates mix in a few
# iterations, and 20 + 40 met every accuracy target on InstEval. The other families' HMC
# E-step needs the step-size warm-up and the longer schedule.
SCHEDULES = {
    "gaussian": {"chunk_size": 10, "burnin": 20, "min_averaged": 40},
    "other": {
        "n_leapfrog": 5,
        "target_accept": 0.75,
        "chunk_size": 25,
        "warmup": 50,
        "burnin": 100,
        "min_averaged": 200,
    },
}
# Options of the Gaussian M-step and check, with their Gaussian defaults; other families
# refuse them (their E-step and Newton M-step have no counterpart).
GAUSSIAN_ONLY = {
    "scale": None,
    "px_scale": True,
    "sa_exponent": 0.0,
    "check": None,
}
# Options of the HMC E-step; Gaussian models refuse them (their E-step is a Gibbs sweep)
HMC_ONLY = ("n_leapfrog", "target_accept", "warmup")


@dataclass(frozen=True)
class MCEMOptions:
    """Options of Monte Carlo EM (:func:`mixedtf.fit.mcem.fit_mcem`), validated on
    construction; :meth:`for_family` fills in the schedule.

    Attributes:
        chains: chains per iteration (default: 128 on a GPU; on a CPU 16-32 for Gaussian
            models, ~4096 draws of the fewest-level term for the others).
        chunk_size, burnin, min_averaged: iterations per compiled chunk, burn-in, and the
            fewest averaged iterations before the stopping rule may fire (default by
            family, ``SCHEDULES``).
        n_leapfrog, warmup, target_accept: the HMC E-step of non-Gaussian models: leapfrog
            steps per transition, step-size adaptation (iterations; the burn-in is never
            shorter) and the acceptance rate it adapts to (default 5, 50, 0.75). Gaussian
            models refuse them: their E-step is an exact Gibbs sweep.
        max_iterations: iteration budget.
        rtol: each SD's Monte Carlo error must be within ``rtol`` of its value...
        se_tol: ...and each fixed effect's within ``se_tol`` of its standard error.
        dtype: ``"float32"`` (default) or ``"float64"`` for the kernel.
        backend: the kernel's array library, ``"tensorflow"`` (default) or ``"jax"``
            (``pip install mixedtf[jax]``; nothing on that path imports TensorFlow). The
            same seed gives the same fit on one backend; across backends the draws differ
            (Philox vs threefry) and the fits agree within Monte Carlo error.
        device: ``"CPU"`` or ``"GPU"`` (default: GPU when the backend sees one).
        devices: JAX backend: shard the rows over this many devices of that kind (the
            per-row arrays split, the effects and parameters replicated; XLA adds the
            all-reduces of the gradients and the M-step's sums). Default 1.
        deterministic: TensorFlow op determinism (same seed, same fit on a GPU too).
        trace_levels: levels per term whose draws (first chain) the trace keeps, or
            ``{group name: [level labels]}``.
        scale: Gaussian only: a fixed residual SD.
        px_scale: Gaussian only: scale parameter expansion during the burn-in (PX-EM).
        joint_moves: draw a term jointly with a term nested in it (default True): Gaussian
            models an exact joint draw of a few-level term with the term (mostly) nested
            in it; the other families the ridge move of a term with one exactly nested in
            it (:mod:`~mixedtf.fit.mcem.ridge_move`).
        sa_exponent: Gaussian only: > 0 for SAEM steps ``(t - burnin)^-a`` on the
            covariance statistics (0: plain MCEM).
        check: Gaussian only: compare the estimate with the exact ML optimum (an exact ML
            fit): True always, False never, None (default) where that fit is cheap -- estimated
            (from one factorisation) at most 10% of the MCEM fit's time; a skipped check is
            noted in ``summary()``.
    """

    chains: int | None = None
    n_leapfrog: int | None = None
    chunk_size: int | None = None
    warmup: int | None = None
    burnin: int | None = None
    max_iterations: int = 1000
    min_averaged: int | None = None
    rtol: float = 0.02
    se_tol: float = 0.05
    target_accept: float | None = None
    dtype: str = "float32"
    backend: str = "tensorflow"
    device: str | None = None
    devices: int = 1
    deterministic: bool = False
    trace_levels: int | dict = 3
    scale: float | None = None
    px_scale: bool | None = None
    joint_moves: bool | None = None
    sa_exponent: float | None = None
    check: bool | None = None

    def __post_init__(self) -> None:
        for name in ("n_leapfrog", "chunk_size", "min_averaged"):
            _positive_int(name, getattr(self, name), allow_none=True)
        _positive_int("max_iterations", self.max_iterations)
        for name in ("warmup", "burnin"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | np.integer) or value < 0):
                raise OptionError(f"{name} must be a non-negative integer; got {value!r}.")
        if self.chains is not None and (
            not isinstance(self.chains, int | np.integer) or self.chains < 2
        ):
            raise OptionError(
                f"chains must be at least 2 (the Louis covariance needs two); got {self.chains!r}."
            )
        if self.target_accept is not None and not 0 < self.target_accept < 1:
            raise OptionError(f"target_accept must be in (0, 1); got {self.target_accept}.")
        _positive("rtol", self.rtol)
        _positive("se_tol", self.se_tol)
        if self.dtype not in ("float32", "float64"):
            raise OptionError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}.")
        if self.backend not in BACKENDS:
            raise OptionError(
                f"backend must be one of {list(BACKENDS)}; got {self.backend!r} (the JAX "
                "backend needs `pip install mixedtf[jax]`)."
            )
        _positive_int("devices", self.devices)
        if self.devices > 1 and self.backend != "jax":
            raise OptionError(
                f"devices={self.devices} shards the rows over devices on the JAX backend only; "
                f"got backend={self.backend!r}. Pass backend='jax' (pip install mixedtf[jax])."
            )
        if self.device is not None and str(self.device).upper() not in ("CPU", "GPU"):
            raise OptionError(f"device must be 'CPU' or 'GPU'; got {self.device!r}.")
        _flag("deterministic", self.deterministic)
        if self.scale is not None and not (isinstance(self.scale, int | float) and self.scale > 0):
            raise OptionError(f"scale (a fixed residual SD) must be positive; got {self.scale!r}.")
        for name in ("px_scale", "joint_moves", "check"):
            _flag(name, getattr(self, name), allow_none=True)
        if self.sa_exponent is not None and not 0.0 <= self.sa_exponent <= 1.0:
            raise OptionError(
                f"sa_exponent must be in [0, 1] (0: plain MCEM); got {self.sa_exponent}."
            )
        if self.burnin is not None and self.warmup is not None and self.burnin < self.warmup:
            raise OptionError(f"burnin ({self.burnin}) must be at least warmup ({self.warmup}).")
        if not isinstance(self.trace_levels, dict) and (
            isinstance(self.trace_levels, bool)
            or not isinstance(self.trace_levels, int | np.integer)
            or self.trace_levels < 0
        ):
            raise OptionError(f"trace_levels must be >= 0 or a dict; got {self.trace_levels!r}.")

    def for_family(self, family: str) -> MCEMOptions:
        """These options with the unset schedule filled in for ``family`` (a burn-in left
        unset is never shorter than the warm-up), and the Gaussian-only options resolved.

        Raises:
            OptionError: a Gaussian-only option was set for another family, or an HMC
                option for a Gaussian model.
        """
        gaussian = family == "gaussian"
        defaults = SCHEDULES["gaussian" if gaussian else "other"]
        filled: dict[str, Any] = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if "burnin" in filled and self.warmup is not None:
            filled["burnin"] = max(filled["burnin"], self.warmup)
        if "warmup" in filled and self.burnin is not None:
            filled["warmup"] = min(filled["warmup"], self.burnin)
        set_here = [k for k in GAUSSIAN_ONLY if getattr(self, k) is not None]
        if not gaussian and set_here:
            raise OptionError(
                f"{', '.join(f'{k}=' for k in set_here)} "
                f"{'applies' if len(set_here) == 1 else 'apply'} to Gaussian models only "
                f"(the residual SD, the closed-form M-step and its exact check); MCEM of a "
                f"{family} model takes: {', '.join(options_of('mcem', family))}."
            )
        hmc_here = [k for k in HMC_ONLY if getattr(self, k) not in (None, 0)]  # warmup=0: none
        if gaussian and hmc_here:
            raise OptionError(
                f"{', '.join(f'{k}=' for k in hmc_here)} "
                f"{'sets' if len(hmc_here) == 1 else 'set'} the HMC E-step of non-Gaussian "
                "models; a Gaussian model's E-step is an exact Gibbs sweep with no step size "
                f"to tune. MCEM of a Gaussian model takes: {', '.join(options_of('mcem'))}."
            )
        if gaussian:
            filled |= {k: v for k, v in GAUSSIAN_ONLY.items() if getattr(self, k) is None}
            filled["warmup"] = 0  # nothing to adapt
        if self.joint_moves is None:
            filled["joint_moves"] = True
        return replace(self, **filled)


OPTION_CLASSES: dict[str, type] = {
    "ml": ExactOptions,
    "reml": ExactOptions,
    "laplace": LaplaceOptions,
    "mcem": MCEMOptions,
}


def options_of(method: str, family: str = "gaussian") -> list[str]:
    """The option names that ``method`` takes for ``family``."""
    names = [f.name for f in fields(OPTION_CLASSES[method])]
    if method == "mcem" and family != "gaussian":
        names = [n for n in names if n not in GAUSSIAN_ONLY]
    elif method == "mcem":
        names = [n for n in names if n not in HMC_ONLY]
    return names


def check_method(method: Any, family: str) -> str:
    """``method`` lower-cased, if it is one and fits ``family``."""
    name = str(method).lower() if isinstance(method, str) else None
    if name not in METHODS:
        raise OptionError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    if name in ("ml", "reml") and family != "gaussian":
        raise OptionError(
            f"method={name!r} is the exact Gaussian likelihood; family is {family!r}. "
            "Use method='laplace' (lme4's glmer) or method='mcem'."
        )
    if name == "laplace" and family == "gaussian":
        raise OptionError(
            "method='laplace' fits the non-Gaussian families; family is 'gaussian', whose "
            "likelihood is exact: use method='ml' or 'reml'."
        )
    return name


def make_options(method: str, family: str, options: Any = None) -> Any:
    """The validated options object of ``method`` for ``family`` from a dict of keyword
    options (lme4 spellings in ``ALIASES`` accepted) or an options object.

    Raises:
        OptionError: an unknown or misplaced option, or a value out of range.
    """
    method = check_method(method, family)
    cls = OPTION_CLASSES[method]
    if isinstance(options, cls):
        opts = options
    elif options is None or isinstance(options, dict):
        opts = cls(**_canonical(method, family, dict(options or {})))
    else:
        raise OptionError(
            f"options for method={method!r} are keyword arguments or a {cls.__name__}; "
            f"got {type(options).__name__}."
        )
    return opts.for_family(family) if isinstance(opts, MCEMOptions) else opts


def _canonical(method: str, family: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with aliases mapped; unknown or misplaced names refused (by the name the
    caller typed)."""
    typed: dict[str, str] = {}
    for alias, name in ALIASES.items():
        if alias in options:
            if name in options:
                raise OptionError(
                    f"{alias}= and {name}= are one option; give it once (as {name}=)."
                )
            options[name] = options.pop(alias)
            typed[name] = alias
    known = options_of(method, family)
    unknown = [k for k in options if k not in known]
    if not unknown:
        return options
    if method == "mcem" and set(unknown) <= {*GAUSSIAN_ONLY, *HMC_ONLY}:  # the family's message
        MCEMOptions(**options).for_family(family)
    lines = [_misplaced(name, typed.get(name, name), method, known) for name in unknown]
    raise OptionError(
        "; ".join(lines) + f". method={method!r} takes: {', '.join(known)} "
        "(and seed=, progress=, which every method accepts)."
    )


def _misplaced(name: str, typed: str, method: str, known: list[str]) -> str:
    """Why option ``name`` (typed as ``typed``) is not one of ``method``'s."""
    if name in FAMILY_HINTS:
        return f"{typed}= is not an estimator option ({FAMILY_HINTS[name]})"
    owners = [m for m, cls in OPTION_CLASSES.items() if name in {f.name for f in fields(cls)}]
    if owners:
        return f"{typed}= is an option of method={' / '.join(map(repr, owners))}, not of {method!r}"
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown option {typed}=" + (f" (did you mean {close[0]}=?)" if close else "")


def given_options(options: Any) -> dict[str, Any]:
    """The options a fit was asked for, as plain values (recorded on ``FitInfo.options`` so
    that ``refit`` and ``update`` repeat them): a dict with lme4 spellings mapped, or the
    fields of an options object that differ from their defaults."""
    if options is None:
        return {}
    if isinstance(options, dict):
        out = {ALIASES.get(k, k): v for k, v in options.items()}
    else:
        default = type(options)()
        out = {
            f.name: getattr(options, f.name)
            for f in fields(options)
            if not _same(getattr(options, f.name), getattr(default, f.name))
        }
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in out.items()}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(a, b)
    return a == b
