"""Profile-likelihood confidence intervals, as lme4's ``confint(m, method = "profile")``:
``profile_intervals`` for exact Gaussian fits (the ML deviance), ``glmm_profile_intervals``
for binomial, Poisson and negative binomial Laplace fits; both walk each parameter's
profile with :mod:`mixedtf.fit.profile.path`."""

from mixedtf.fit.profile.gaussian import profile_intervals
from mixedtf.fit.profile.glmm import glmm_profile_intervals

__all__ = ["glmm_profile_intervals", "profile_intervals"]
