"""The Python API: a simulation study from Python, with the same overrides as the CLI.

    import palliasim as ps
    res = ps.simulate(["reps=200", "estimators=[cox,logistic]"], out_dir="outputs/run1")
    res.performance          # bias, coverage, ... with Monte Carlo SE (performance.csv)
    res.results              # one row per replication, method and estimand (results.parquet)

The packaged config (``pkg://palliasim.conf``) is composed with the overrides (a list of
``key=value`` strings, or a mapping), validated exactly as at the CLI (ConfigError naming the
key, before any compute) and run by task=simulate's own code; re-running with the same
``out_dir`` resumes. :func:`default_settings` and :func:`runner_settings` give the YAML
defaults as typed settings, for the library functions that take them (run_experiment,
run_suite, adaptive_power).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from palliasim.experiments.config import compose, override_list
from palliasim.experiments.settings import RunnerSettings, Settings
from palliasim.experiments.tasks.simulate import SimulationResult
from palliasim.experiments.tasks.simulate import simulate as _simulate

__all__ = ["SimulationResult", "default_settings", "runner_settings", "simulate"]


def _settings(overrides, **fixed: Any) -> Settings:
    plain = compose(override_list(overrides) + [f"task={fixed.pop('task')}"])
    plain.update(fixed)  # Python values (paths, booleans) set as given, then validated
    return Settings.from_config(plain)


def simulate(
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    out_dir: str | os.PathLike,
    quiet: bool = True,
) -> SimulationResult:
    """Run (or resume) a simulation study (task=simulate) in ``out_dir``; returns the results,
    the performance table and the output directory. Raises ConfigError for invalid overrides,
    engine.runner.RunIncomplete when some chunks did not finish (re-run to resume)."""
    settings = _settings(overrides, task="simulate", out_dir=os.fspath(out_dir), quiet=quiet)
    return _simulate(settings)


def default_settings(task: str = "simulate", overrides: Sequence[str] | Mapping = ()) -> Settings:
    """The validated settings of ``task`` from the packaged config and ``overrides``."""
    return _settings(overrides, task=task)


def runner_settings(**changes: Any) -> RunnerSettings:
    """The runner settings of the packaged config (conf/runner, seed, reps, quiet) with
    ``changes`` (e.g. ``runner_settings(reps=200, seed=1, n_jobs=4)``), validated."""
    return replace(default_settings().runner, **changes)
