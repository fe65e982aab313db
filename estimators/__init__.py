"""palliasim.estimators: the analyses under evaluation, one module per family.

Every estimator follows the contract of :mod:`estimators.base` and is selectable from config by
its ``kind`` (``conf/estimators/*.yaml``). Importing this package registers all families.
"""

from palliasim.estimators import (  # noqa: F401
    binary,
    continuous,
    longitudinal,
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
