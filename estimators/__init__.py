"""palliasim.estimators: the analyses under evaluation, one module per family.

Every estimator follows the contract of :mod:`estimators.base` and is selectable from config by
its ``kind`` (``conf/estimators/*.yaml``). Importing this package registers all families.
"""

from palliasim.estimators import binary, clda, continuous, longitudinal, mmrm, survival, tables  # noqa: F401,E501
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
