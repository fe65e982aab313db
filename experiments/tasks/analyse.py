"""task=analyse data=DIR: run the configured estimators on patients.csv / visits.csv.

The files follow the export schema (conf/DATA.md), checked by
:mod:`palliasim.experiments.inputs.cohort_schema` before any fit: every violation (column, rule,
number of rows, first ids) in one message, exit code 2, nothing written. Estimator randomness (bootstrap, imputation) is
seeded from ``seed`` and the estimator's name, so a re-run gives the same table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from palliasim.estimators.base import ESTIMATE_COLUMNS, OK, build_estimator
from palliasim.experiments import config as C
from palliasim.experiments.engine.storage import check_out_dir
from palliasim.experiments.inputs.cohort_schema import read_cohort
from palliasim.experiments.settings import Settings
from palliasim.sim.cohort import Cohort
from palliasim.sim.errors import ConfigError
from palliasim.sim.files import atomic_write_text
from palliasim.sim.seeding import name_int, rng_for

DATA_KEY = "0" * 16


def analyse(cohort: Cohort, specs: dict, seed: int) -> pd.DataFrame:
    rows = []
    for name, spec in specs.items():
        spec = dict(spec)
        est = build_estimator(spec.pop("kind"), name=name, **spec)
        rng = rng_for(seed, DATA_KEY, "estimator", 0, name_int(name))
        rows += [r.as_dict() for r in est.fit(cohort, rng)]
    return pd.DataFrame(rows, columns=list(ESTIMATE_COLUMNS))


def run(settings: Settings) -> int:
    if not settings.data:
        raise ConfigError(
            "task=analyse needs data=DIR (a directory with patients.csv and visits.csv)"
        )
    data = Path(settings.data).expanduser().resolve()
    if not data.is_dir():
        raise ConfigError(f"data={data} is not a directory")
    out = C.output_dir(settings)
    check_out_dir(out)  # a file, read-only or not creatable: refused before any fit
    cohort = read_cohort(data, settings.estimators)  # every problem listed, before any fit
    table = analyse(cohort, settings.estimators, settings.runner.seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "estimates.csv", table.to_csv(index=False))
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(
            table[
                [c for c in ESTIMATE_COLUMNS if c not in ("message", "seconds", "engine")]
            ].to_string(index=False, float_format=lambda x: f"{x:.4g}")
        )
    bad = table[table.status != OK]
    if len(bad):
        print(
            f"\n{len(bad)} row(s) with status warning/failed; see the message column of estimates.csv",
            file=sys.stderr,
        )
    print(f"Written: {out / 'estimates.csv'}")
    return 0
