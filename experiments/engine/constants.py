"""Scenario constants (``sim.generate.constants``: the propensity and dropout intercepts solved on
the DGM's fixed-seed sample of 100,000 patients, ~1 s of CPU per scenario) solved once per
run and constants key (``Scenario.constants_key``: the scenario without ``cohort.n``, so the
sizes of a power grid share one solve), and shipped to the workers with the chunk tasks.

``sim.generate`` caches them per process by that key; without this module every worker process
solved every scenario it met again. The values are deterministic functions of the scenario, so
a worker given them draws exactly the cohorts it would have drawn after solving them itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from palliasim.sim.scenario import Scenario

#: sim/generate.py (the package ``palliasim.sim`` exports its function ``generate`` under the
#: module's name, hence the import by path)
_GEN = importlib.import_module("palliasim.sim.generate")


def _cache() -> dict | None:
    cache = getattr(_GEN, "_CONSTANTS", None)
    return cache if isinstance(cache, dict) else None


def known(scenario: Scenario) -> dict | None:
    """The constants of ``scenario`` already solved in this process, else None."""
    cache = _cache()
    return None if cache is None else cache.get(scenario.constants_key)


def prime(values: Mapping[str, dict]) -> None:
    """Put solved constants (constants key -> constants) into this process's cache, so
    ``sim.generate`` does not solve them again (a no-op if that cache is not there)."""
    cache = _cache()
    if cache is not None:
        for key, k in values.items():
            cache.setdefault(key, k)


def solve(scenario: Scenario) -> dict:
    """The constants of ``scenario`` (solved, or from this process's cache); raises
    ConfigError like ``sim.generate.constants`` (an unreachable missing fraction, ...)."""
    return _GEN.constants(scenario)
