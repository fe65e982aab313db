"""A small fixed run reproduces the recorded results: two design points, six estimators, eight
replications (tests/fixtures/fixed_run/results.csv, the canonical sort of ``results.parquet``,
floats to 17 significant digits).

What must match exactly: the rows (design point, rep, method, estimand), statuses, messages,
n_used, CI levels and every text column. The floats must match to a relative 1e-9: numpy picks
its SIMD kernels (exp, log, sums) by CPU, and they differ from one CPU to another in the last
bits (a recorded hash of these results changed from one machine to another with the same code),
so a bit-for-bit hash would test the machine, not the code. On one machine the results are
bit-identical whatever n_jobs, chunk size or backend (tests/test_runner.py); the canonical hash
printed on failure tells whether this machine reproduces the file exactly.

The reference changes only with a deliberate change of the data-generating model or of an
estimator (say which in the commit that rewrites it: run the FIXED_RUN command below and write
its results with :func:`canonical_frame`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.results_hash import canonical_hash

REFERENCE = Path(__file__).parent / "fixtures" / "fixed_run" / "results.csv"
KEY = ["scenario_key", "rep", "method", "estimand"]
#: relative tolerance of the float columns (observed across CPUs: <= 1e-12)
RTOL = 1e-9
FLOATS = ["estimate", "se", "ci_low", "ci_high", "p_value", "true", "true_mcse"]

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


def canonical_frame(path) -> pd.DataFrame:
    """The results file without timings, rows in canonical order."""
    d = pd.read_parquet(path).drop(columns=["seconds"])
    return d.sort_values(KEY, kind="stable").reset_index(drop=True)


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
    got = canonical_frame(out / "results.parquet")
    ref = pd.read_csv(REFERENCE, keep_default_na=False, na_values=[""])
    hint = f"(canonical hash here: {canonical_hash(out / 'results.parquet')})"
    assert list(got.columns) == list(ref.columns), hint
    assert len(got) == len(ref), hint
    for c in got.columns:
        if c in FLOATS:
            a, b = got[c].to_numpy(float), ref[c].to_numpy(float)
            assert np.array_equal(np.isnan(a), np.isnan(b)), f"{c}: NaN pattern differs {hint}"
            ok = np.isnan(a) | np.isclose(a, b, rtol=RTOL, atol=0.0)
            assert ok.all(), (
                f"{c} differs beyond rtol {RTOL}: rows {np.flatnonzero(~ok)[:5]} {hint}"
            )
        elif pd.api.types.is_numeric_dtype(got[c]):
            assert np.array_equal(got[c].to_numpy(float), ref[c].to_numpy(float)), f"{c} {hint}"
        else:
            a = got[c].fillna("").astype(str).to_numpy()
            b = ref[c].fillna("").astype(str).to_numpy()
            assert (a == b).all(), f"{c} differs: rows {np.flatnonzero(a != b)[:5]} {hint}"
