"""A small fixed run reproduces, bit for bit, the results recorded before the package was
reorganised (issue 10): two design points, six estimators, the canonical sort of
``results.parquet`` hashed with every float written to 17 significant digits (exact)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.results_hash import canonical_hash

#: SHA-256 of the canonical results of FIXED_RUN. It changes only with a deliberate change of
#: the data-generating model or of an estimator (say which in the commit that updates it).
EXPECTED = "55f21725a9bf6122545176e2cc1d9ce85895fc98aea81612fdc4393d1140e0e1"

FIXED_RUN = (
    "reps=8",
    "estimators=[lmm,cox,logistic,mi_ancova,km_median,gcomp]",
    "design=missing_confounding",
    "design.subset=[{cohort.n:100,missingness.mechanism:mar,confounding.strength:1.0},"
    "{cohort.n:205,missingness.mechanism:mcar,confounding.strength:0.0}]",
    "runner.n_jobs=2",
    "runner.chunk_size=3",
    "quiet=true",
    "task.plots=false",
)


def test_fixed_run_reproduces_the_recorded_results(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "palliasim", *FIXED_RUN, f"out_dir={out}"],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg", "PALLIASIM_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    assert canonical_hash(out / "results.parquet") == EXPECTED
