"""palliasim.estimators: the analyses under evaluation, one module per family.

Every estimator follows the contract of :mod:`estimators.base` and is selectable from config by
its ``kind`` (``conf/estimators/*.yaml``). Importing this package registers all families.
The family modules (binary, continuous, longitudinal, survival, tables) hold data preparation
and the estimator classes; the numerical operations are in :mod:`estimators.engines` (one
signature per operation for ``engine: reference | fast``, both run to the optimum), their numpy
kernels in :mod:`estimators.fast`, the shared helpers in :mod:`estimators.design`.
"""

from palliasim.estimators import (  # noqa: F401  (importing registers the kinds)
    binary,
    clda,
    continuous,
    longitudinal,
    mmrm,
    response_mi,
    survival,
    tables,
)
from palliasim.estimators.base import (
    ESTIMATE_COLUMNS,
    REGISTRY,
    Estimate,
    Estimator,
    StatisticalTrouble,
    build_estimator,
)

__all__ = [
    "ESTIMATE_COLUMNS",
    "REGISTRY",
    "Estimate",
    "Estimator",
    "StatisticalTrouble",
    "build_estimator",
]
