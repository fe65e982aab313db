"""Scenario constants (``sim.generate.constants``: the propensity and dropout intercepts solved on
the DGM's fixed-seed sample of 100,000 patients, ~0.8 s of CPU per scenario) solved once per
scenario key and run, and shipped to the workers with the chunk tasks.

``sim.generate`` caches them per process, keyed by the scenario's content hash; without this
module every worker process solved every scenario it met again (a power grid of 30 design
points cost 30 x 0.8 s in each worker). The values are deterministic functions of the scenario,
so a worker given them draws exactly the cohorts it would have drawn after solving them itself.
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


def known(key: str) -> dict | None:
    """The constants of scenario ``key`` already solved in this process, else None."""
    cache = _cache()
    return None if cache is None else cache.get(key)


def prime(values: Mapping[str, dict]) -> None:
    """Put solved constants (scenario key -> constants) into this process's cache, so
    ``sim.generate`` does not solve them again (a no-op if that cache is not there)."""
    cache = _cache()
    if cache is not None:
        for key, k in values.items():
            cache.setdefault(key, k)


def solve(scenario: Scenario) -> dict:
    """The constants of ``scenario`` (solved, or from this process's cache); raises
    ConfigError like ``sim.generate.constants`` (an unreachable missing fraction, ...)."""
    return _GEN.constants(scenario)
