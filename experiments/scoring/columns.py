"""Which column of a results table plays which role (task=score's ``task.*`` options).

Roles and their default names are palliasim's own columns (:data:`ROLES`). ``task.true`` may be
a number; an optional role may be ``None`` (no such column; see
``scoring.performance.canonical_results`` for what replaces it); ``task.by`` is ``None`` (every
other column is a scenario factor) or a list of column names. :func:`column_options` validates
them and is the one place the rules live (the task and the settings object both call it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from palliasim.sim.errors import ConfigError

__all__ = ["LABEL_ROLES", "REQUIRED_ROLES", "ROLES", "column_options"]

#: role -> default column name (conf/task/score.yaml)
ROLES = {
    "estimate": "estimate",
    "se": "se",
    "true": "true",
    "method": "method",
    "estimand": "estimand",
    "rep": "rep",
    "status": "status",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "p_value": "p_value",
    "true_mcse": "true_mcse",
}
#: roles that cannot be absent
REQUIRED_ROLES = ("estimate", "se", "true")
#: roles holding labels (read as strings)
LABEL_ROLES = ("method", "estimand", "status")


def _role(role: str, value: Any) -> str | float | None:
    key = f"task.{role}"
    if role == "true" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(
                f"invalid value {value!r} for config key '{key}'; allowed: a column name or a "
                "finite number"
            )
        return float(value)
    if value is None and role not in REQUIRED_ROLES:
        return None
    if isinstance(value, str) and value:
        return value
    allowed = "a column name" + (
        " or a number" if role == "true" else "" if role in REQUIRED_ROLES else " or null"
    )
    hint = (
        " (a bare true/false is a boolean for Hydra: quote it)" if isinstance(value, bool) else ""
    )
    raise ConfigError(f"invalid value {value!r} for config key '{key}'; allowed: {allowed}{hint}")


def column_options(task: Mapping[str, Any]) -> tuple[dict, tuple[str, ...] | None]:
    """(role -> column name / number / None, by-columns or None) from task=score's options;
    a role missing from ``task`` takes its default name. ConfigError naming ``task.<role>``."""
    cols = {role: _role(role, task.get(role, default)) for role, default in ROLES.items()}
    by = task.get("by")
    if by is not None:
        if isinstance(by, str):
            by = [by]
        if not isinstance(by, (list, tuple)) or not all(isinstance(c, str) and c for c in by):
            raise ConfigError(
                f"invalid value {by!r} for config key 'task.by'; allowed: null or a list of "
                "column names"
            )
        by = tuple(by)
    return cols, by
