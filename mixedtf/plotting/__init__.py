"""The plots of the field, one call each (matplotlib, from the ``plot`` extra), each
returning the matplotlib Axes or Figure it drew:

* random effects: :func:`plot_caterpillar`, :func:`plot_qqcaterpillar`,
  :func:`plot_shrinkage` (:mod:`mixedtf.plotting.ranef`);
* residuals: :func:`plot_diagnostics` (``res.plot()``), :func:`plot_resid_fitted`,
  :func:`plot_scale_location`, :func:`plot_qq`, :func:`plot_residuals` (held-out),
  :func:`plot_simulated_residuals` (:mod:`mixedtf.plotting.residuals`);
* intervals: :func:`plot_profile` (of ``mtf.profile``), :func:`plot_bootstrap` (of
  ``mtf.bootstrap``) (:mod:`mixedtf.plotting.intervals`);
* Monte Carlo EM: :func:`plot_mcem`, :func:`plot_objective`, :func:`plot_parameters`,
  :func:`plot_sampler`, :func:`plot_traces` (:mod:`mixedtf.plotting.mcem`).
"""

from mixedtf.plotting.intervals import plot_bootstrap, plot_profile
from mixedtf.plotting.mcem import (
    plot_mcem,
    plot_objective,
    plot_parameters,
    plot_sampler,
    plot_traces,
)
from mixedtf.plotting.ranef import (
    plot_caterpillar,
    plot_qqcaterpillar,
    plot_shrinkage,
    shrinkage,
)
from mixedtf.plotting.residuals import (
    pearson_residuals,
    plot_diagnostics,
    plot_qq,
    plot_resid_fitted,
    plot_residuals,
    plot_scale_location,
    plot_simulated_residuals,
    residuals,
    simulated_residuals,
)

__all__ = [
    "pearson_residuals",
    "plot_bootstrap",
    "plot_caterpillar",
    "plot_diagnostics",
    "plot_mcem",
    "plot_objective",
    "plot_parameters",
    "plot_profile",
    "plot_qq",
    "plot_qqcaterpillar",
    "plot_resid_fitted",
    "plot_residuals",
    "plot_sampler",
    "plot_scale_location",
    "plot_shrinkage",
    "plot_simulated_residuals",
    "plot_traces",
    "residuals",
    "shrinkage",
    "simulated_residuals",
]
