"""The design of a simulation study: a full factorial grid of scenarios, validated up front.

A *design point* is one combination of factor levels applied (as dotted overrides) to a base
scenario preset. :func:`expand_design` builds and validates every point before anything is
computed, so a typo in the last level of the last factor fails in milliseconds, not after hours.

Order. Points come in the order of :func:`itertools.product` over the factors *as listed*
(insertion order of the ``factors`` dict, i.e. the order in the YAML file): the first factor varies
slowest, the last fastest, and levels keep the order they were written in. The order only matters
for display (labels, nested-loop plots); seeds and results depend on each point's content hash,
never on its position.

    from palliasim.experiments.engine.design import expand_design
    points = expand_design("study", {"cohort.n": 100},
                           {"confounding.strength": [0.0, 1.0], "cohort.n": [50, 200]},
                           subset=[{"confounding.strength": 0.0}])
    [p.label for p in points]   # ['study: strength=0, n=50', 'study: strength=0, n=200']

The ``runner`` group is checked by :class:`palliasim.experiments.settings.RunnerSettings`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from palliasim.experiments.engine.plain import plain_value
from palliasim.sim import ConfigError, Scenario, load_scenario

__all__ = [
    "BACKENDS",
    "DesignPoint",
    "design_frame",
    "expand_design",
    "factor_columns",
]

BACKENDS = ("loky", "threading", "dask")


@dataclass(frozen=True)
class DesignPoint:
    """One validated scenario of the design.

    ``factors`` maps each dotted factor key to this point's level (plain Python values);
    ``scenario`` is the validated :class:`sim.Scenario` (its ``key`` seeds every random stream);
    ``label`` is a short human-readable name, unique within one design.
    """

    factors: dict
    scenario: Scenario
    label: str = ""

    @property
    def key(self) -> str:
        """The scenario's content hash (sha256 hex)."""
        return self.scenario.key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DesignPoint):
            return NotImplemented
        return self.scenario.key == other.scenario.key and self.label == other.label

    def __hash__(self) -> int:
        return hash((self.scenario.key, self.label))


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    """Level equality that does not confuse True with 1 (but does accept 1 == 1.0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic values
        return False


def _fmt_level(v: Any) -> str:
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
            return str(int(v))
        return f"{v:g}"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that is unique among ``keys``."""
    out: dict[str, str] = {}
    parts = {k: k.split(".") for k in keys}
    for k in keys:
        for n in range(1, len(parts[k]) + 1):
            cand = ".".join(parts[k][-n:])
            clash = [o for o in keys if o != k and ".".join(parts[o][-n:]) == cand]
            if not clash:
                out[k] = cand
                break
        else:  # pragma: no cover - keys are unique, so the full key always works
            out[k] = k
    return out


def _label(base: str, combo: Mapping[str, Any], short: Mapping[str, str]) -> str:
    if not combo:
        return base
    return base + ": " + ", ".join(f"{short[k]}={_fmt_level(v)}" for k, v in combo.items())


def _check_factors(factors: Mapping[str, Any]) -> dict[str, list]:
    if factors is None:
        return {}
    if not isinstance(factors, Mapping):
        raise ConfigError(
            f"design.factors must be a mapping of dotted scenario keys to lists of levels; "
            f"got {type(factors).__name__}"
        )
    out: dict[str, list] = {}
    for key, levels in factors.items():
        key = str(key)
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Iterable):
            raise ConfigError(
                f"design.factors.{key} must be a list of levels, e.g. [50, 100]; got {levels!r}"
            )
        levels = list(levels)
        if not levels:
            raise ConfigError(f"design.factors.{key} has no levels; give at least one value")
        for i, a in enumerate(levels):
            if any(_same(a, b) for b in levels[:i]):
                raise ConfigError(f"design.factors.{key} lists the level {a!r} twice")
        out[key] = levels
    return out


def _check_subset(subset, factors: Mapping[str, list]) -> list[dict]:
    if not subset:
        return []
    if isinstance(subset, Mapping):
        subset = [subset]
    out = []
    for i, part in enumerate(subset):
        if not isinstance(part, Mapping) or not part:
            raise ConfigError(
                f"design.subset[{i}] must be a non-empty mapping of factor keys to levels; "
                f"got {part!r}"
            )
        for k, v in part.items():
            if k not in factors:
                raise ConfigError(
                    f"design.subset[{i}] names '{k}', which is not a factor; "
                    f"factors: {', '.join(factors) or '(none)'}"
                )
            if not any(_same(v, lv) for lv in factors[k]):
                raise ConfigError(
                    f"design.subset[{i}].{k}={v!r} is not a level of design.factors.{k}; "
                    f"allowed values: {', '.join(map(repr, factors[k]))}"
                )
        out.append(dict(part))
    return out


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def expand_design(
    base_scenario: str | Scenario | Mapping[str, Any],
    base_overrides: Mapping[str, Any] | None = None,
    factors: Mapping[str, Sequence[Any]] | None = None,
    subset: Sequence[Mapping[str, Any]] | None = None,
) -> list[DesignPoint]:
    """Full factorial design over ``factors`` applied to a base scenario; every point validated.

    Parameters
    ----------
    base_scenario
        Preset name (``study``, ``randomized``, ``null``), or an already built
        :class:`sim.Scenario`, or a full scenario params dict (e.g. the scenario sections of a
        composed Hydra config, which already carry command-line overrides).
    base_overrides
        Dotted overrides applied to the preset before the factors (e.g. ``{"cohort.n": 100}``).
    factors
        Dotted scenario key -> list of levels. Points follow ``itertools.product`` in the order
        the factors are listed (first factor slowest). ``{}`` / ``None`` gives one point.
    subset
        Optional list of partial factor dicts; only points matching *any* of them are kept (a
        point matches a dict when it has every listed level). ``None`` or ``[]``: keep all.

    Raises
    ------
    ConfigError
        Before any computation: an unknown factor key or invalid level (the message starts with
        ``design.factors.<key>``), an invalid combination, a subset naming an unknown factor or
        level, or a subset selecting nothing.
    """
    factors = _check_factors(factors)
    subset_parts = _check_subset(subset, factors)
    if isinstance(base_scenario, Scenario):
        base = (
            base_scenario.with_overrides(dict(base_overrides)) if base_overrides else base_scenario
        )
    elif isinstance(base_scenario, Mapping):
        base = Scenario.from_dict(dict(base_scenario))
        base = base.with_overrides(dict(base_overrides)) if base_overrides else base
    else:
        base = load_scenario(str(base_scenario), dict(base_overrides or {}))

    # each level on its own first, so the error names the offending factor and value
    for key, levels in factors.items():
        for level in levels:
            try:
                base.with_overrides({key: plain_value(level)})
            except ConfigError as exc:
                raise ConfigError(f"design.factors.{key}={level!r}: {exc}") from None

    short = _short_names(list(factors))
    points: list[DesignPoint] = []
    keys = list(factors)
    for values in itertools.product(*factors.values()):
        combo = {k: plain_value(v) for k, v in zip(keys, values)}
        if subset_parts and not any(
            all(_same(combo[k], v) for k, v in part.items()) for part in subset_parts
        ):
            continue
        label = _label(base.name, combo, short)
        try:
            scenario = base.with_overrides(combo) if combo else base
        except ConfigError as exc:  # levels valid alone, invalid together
            raise ConfigError(
                f"design.factors: the design point '{label}' is invalid: {exc}"
            ) from None
        points.append(DesignPoint(factors=combo, scenario=scenario, label=label))

    if not points:
        raise ConfigError("design.subset selects no design point; check its levels")
    seen: dict[str, str] = {}
    for p in points:
        if p.key in seen:
            raise ConfigError(
                f"design.factors: the design points '{seen[p.key]}' and '{p.label}' are the same "
                f"scenario (a factor level equals the base value of a key set twice?)"
            )
        seen[p.key] = p.label
    return points


def factor_columns(points: Sequence[DesignPoint]) -> list[str]:
    """The dotted factor keys of ``points`` in first-seen order (the results' factor columns)."""
    cols: list[str] = []
    for p in points:
        for k in p.factors:
            if k not in cols:
                cols.append(k)
    return cols


def design_frame(points: Sequence[DesignPoint]) -> pd.DataFrame:
    """One row per point: label, preset name, scenario_key, cohort size and factor levels."""
    cols = factor_columns(points)
    rows = []
    for p in points:
        row = {
            "scenario": p.label,
            "preset": p.scenario.name,
            "scenario_key": p.key,
            "n": p.scenario.n,
        }
        for c in cols:
            v = p.factors.get(c)
            row[c] = _fmt_level(v) if isinstance(v, (list, dict)) else v
        rows.append(row)
    return pd.DataFrame(rows)
