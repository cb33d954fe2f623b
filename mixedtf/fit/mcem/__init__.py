"""Monte Carlo EM (imports TensorFlow): ``fit_mcem`` runs the Gaussian or the GLMM variant
of the driver (:mod:`~mixedtf.fit.mcem.driver`) on the compiled model's kernel."""

from __future__ import annotations

from mixedtf.design import Design
from mixedtf.errors import OptionError
from mixedtf.fit.checks import require_random_terms
from mixedtf.fit.mcem.driver import MCEMRun, mcse
from mixedtf.fit.mcem.gaussian import fit_mcem_gaussian
from mixedtf.fit.mcem.glmm import fit_mcem_glmm
from mixedtf.fit.options import MCEMOptions
from mixedtf.results.results import MixedLMResults

__all__ = ["MCEMOptions", "MCEMRun", "fit_mcem", "mcse"]


def fit_mcem(
    design: Design,
    options: MCEMOptions | None = None,
    seed: int | None = None,
    progress: bool | None = None,
) -> MixedLMResults:
    """Fit ``design`` by Monte Carlo EM with ``options`` (resolved for the design's family).

    ``seed`` makes the fit reproducible (same seed, same machine, same estimates on a CPU;
    on a GPU pass ``deterministic=True``, about 3x slower); ``progress`` shows a progress bar
    (default: when stderr is a terminal).

    Warns:
        ConvergenceWarning: the iteration budget ran out before the stopping rule held.
        MonteCarloWarning: the analytic check finds the estimate far from the exact optimum.
    """
    require_random_terms(design)
    if design.prior_weights is not None and design.family != "gaussian":
        raise OptionError(
            f"Monte Carlo EM takes prior weights for Gaussian models only; fit this "
            f"{design.family} model with weights by method='laplace'."
        )
    opts = (options or MCEMOptions()).for_family(design.family)
    if design.family == "gaussian":
        return fit_mcem_gaussian(design, opts, seed, progress)
    return fit_mcem_glmm(design, opts, seed, progress)
