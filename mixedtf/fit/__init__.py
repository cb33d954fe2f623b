"""Estimators. The exact Gaussian marginal likelihood (``fit_marginal``, ``marginal_loglik``)
needs only numpy and scipy; Monte Carlo EM loads TensorFlow when it runs."""

from mixedtf.fit.marginal import fit_marginal, marginal_loglik

__all__ = ["fit_marginal", "marginal_loglik"]
