"""The Laplace / adaptive Gauss-Hermite estimator of GLMMs (numpy and scipy only), as
lme4's ``glmer``: ``fit_laplace`` fits; ``LaplaceModel`` evaluates the deviance, the
conditional modes and ``vcov`` at given parameters."""

from mixedtf.fit.laplace.laplace import fit_laplace
from mixedtf.fit.laplace.pirls import LaplaceFit, LaplaceModel

__all__ = ["LaplaceFit", "LaplaceModel", "fit_laplace"]
