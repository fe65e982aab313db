"""Hydra's submitit launcher (the `palliasim[slurm]` extra) runs a two-job multirun through
submitit's local executor, and each job's results equal a plain run of the same overrides bit
for bit (docs/cluster.md). Skipped, saying why, when the extra is not installed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.results_hash import canonical_hash

pytest.importorskip(
    "hydra_plugins.hydra_submitit_launcher",
    reason="hydra-submitit-launcher not installed (pip install -e '.[slurm]')",
)

COMMON = (
    "reps=4",
    "estimators=[cox,logistic]",
    "runner.n_jobs=1",
    "quiet=true",
    "task.plots=false",
)


def _palliasim(*args, cwd, env):
    proc = subprocess.run(
        [sys.executable, "-m", "palliasim", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_submitit_local_multirun_equals_plain_runs(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PALLIASIM_CACHE": str(tmp_path / "cache")}
    sweep = tmp_path / "sweep"
    _palliasim(
        "-m",
        "hydra/launcher=submitit_local",
        *COMMON,
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env=env,
    )
    for job, seed in ((0, 1), (1, 2)):
        plain = tmp_path / f"plain{seed}"
        _palliasim(*COMMON, f"seed={seed}", f"out_dir={plain}", cwd=tmp_path, env=env)
        got = canonical_hash(sweep / str(job) / "results.parquet")
        assert got == canonical_hash(plain / "results.parquet"), f"job {job}"
    assert (sweep / ".submitit").is_dir()  # the jobs really went through submitit
