"""Linear algebra of the exact and Laplace paths, numpy and scipy only (no TensorFlow).

* :mod:`~mixedtf.linalg.covariance`: lme4's theta <-> per-term Cholesky factors;
* :mod:`~mixedtf.linalg.sparse`: ``Z`` and ``Lambda_theta`` from the gather specs;
* :mod:`~mixedtf.linalg.blocked`: cross-products, the blocked Cholesky of ``Omega(theta)``
  and the profiled deviance;
* :mod:`~mixedtf.linalg.pirls_factor`: the blocked Cholesky of PIRLS's ``A'WA + I``.
"""

from mixedtf.linalg.blocked import (
    CrossProducts,
    Factorization,
    factorize,
    gaussian_deviance,
    profiled_deviance,
)
from mixedtf.linalg.covariance import factors, lower_bounds, theta_from_factors, theta_names
from mixedtf.linalg.pirls_factor import PIRLSFactor
from mixedtf.linalg.sparse import lambda_matrix, z_matrix

__all__ = [
    "CrossProducts",
    "Factorization",
    "PIRLSFactor",
    "factorize",
    "factors",
    "gaussian_deviance",
    "lambda_matrix",
    "lower_bounds",
    "profiled_deviance",
    "theta_from_factors",
    "theta_names",
    "z_matrix",
]
