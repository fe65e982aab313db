"""The ``palliasim`` console script: a Hydra app whose config group ``task`` selects the job.

    palliasim                                  # task=simulate: the default study simulation
    palliasim task=calibrate                   # the study preset against STUDY.md's numbers
    palliasim task=export scenario=study cohort.n=500 seed=7
    palliasim task=analyse data=DIR            # run the estimators on your own data
    palliasim task=score input=results.parquet # performance measures of any long results table
Configs ship inside the package (``pkg://palliasim.conf``), so the command works from any directory.
Invalid configuration stops before any compute with a message naming the key (exit code 2).
The Python API (palliasim.experiments.api) goes through the same :func:`run_task`.
"""

from __future__ import annotations

import sys
from importlib import import_module

import hydra

from palliasim.experiments import config as C
from palliasim.experiments.settings import Settings
from palliasim.sim.errors import ConfigError


def run_task(settings: Settings) -> int:
    """Run the task the settings name (its module in experiments/tasks/, imported on demand:
    a task's heavy dependencies load only when it runs); returns the exit code."""
    module = import_module(f"palliasim.experiments.tasks.{settings.task_name}")
    return int(module.run(settings) or 0)


@hydra.main(version_base="1.3", config_path="pkg://palliasim.conf", config_name="config")
def _hydra_main(cfg) -> int:
    try:
        code = run_task(Settings.from_config(C.to_plain(cfg)))
    except ConfigError as exc:
        print(f"palliasim: configuration error: {exc}", file=sys.stderr)
        code = 2
    if code:
        sys.exit(code)
    return 0


def main() -> None:
    _hydra_main()


if __name__ == "__main__":  # pragma: no cover
    main()
