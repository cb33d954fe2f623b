"""The exact Gaussian estimator: ML and REML by lme4's profiled deviance (numpy and scipy
only). ``fit_exact`` fits; ``marginal_loglik`` evaluates the exact log-likelihood at given
parameters (what MCEM's check and benchmarks compare against)."""

from mixedtf.fit.exact.marginal import fit_exact, loglik_at, marginal_loglik

__all__ = ["fit_exact", "loglik_at", "marginal_loglik"]
