"""The Python API (palliasim.simulate): the packaged config composed with the CLI's overrides,
validated like the CLI, run by task=simulate's own code; the same rows as the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

import palliasim
from palliasim.experiments.api import default_settings, runner_settings
from palliasim.experiments.config import compose
from palliasim.experiments.settings import Settings
from palliasim.sim.errors import ConfigError

TINY = ["reps=4", "estimators=[cox,logistic]", "task.plots=false", "runner.chunk_size=2"]


def test_simulate_from_python_matches_the_cli(tmp_path):
    res = palliasim.simulate(TINY, out_dir=tmp_path / "api")
    assert isinstance(res, palliasim.SimulationResult)
    assert res.out_dir == (tmp_path / "api").resolve()
    assert set(res.results["method"]) == {"cox", "logistic"}
    assert res.results["rep"].nunique() == 4
    assert {"bias", "bias_mcse", "coverage"} <= set(res.performance.columns)
    for name in ("results.parquet", "performance.csv", "manifest.json", "reps_needed.csv"):
        assert (res.out_dir / name).is_file()
    proc = subprocess.run(
        [sys.executable, "-m", "palliasim", *TINY, "quiet=true", f"out_dir={tmp_path / 'cli'}"],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    cli = pd.read_parquet(tmp_path / "cli" / "results.parquet")
    pd.testing.assert_frame_equal(
        res.results.drop(columns="seconds"), cli.drop(columns="seconds"), check_exact=True
    )
    # a mapping of overrides is the same call; the run directory resumes (nothing computed)
    again = palliasim.simulate(
        {"reps": 4, "estimators": ["cox", "logistic"], "task.plots": False, "runner.chunk_size": 2},
        out_dir=tmp_path / "api",
    )
    assert again.results.attrs["n_computed"] == 0
    pd.testing.assert_frame_equal(
        again.results.drop(columns="seconds"), res.results.drop(columns="seconds")
    )


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["+foo=1"], "'foo'"),
        (["reps=0"], "'reps'"),
        (["+task.max_row=3"], "'task.max_row'"),
        (["runner.backend=mpi"], "'runner.backend'"),
    ],
)
def test_simulate_refuses_bad_overrides_before_compute(tmp_path, overrides, key):
    with pytest.raises(ConfigError, match=key):
        palliasim.simulate(overrides, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="'quiet'"):
        palliasim.simulate([], out_dir=tmp_path / "out", quiet="yes")


def test_defaults_come_from_the_yaml_only():
    plain = compose()
    s = default_settings()
    assert s == Settings.from_config(plain)
    assert (s.runner.seed, s.runner.reps) == (plain["seed"], plain["reps"])
    assert s.task.max_rows == plain["task"]["max_rows"]
    assert default_settings("power").task.max_rows == compose(["task=power"])["task"]["max_rows"]
    assert runner_settings(n_jobs=1).chunk_size == plain["runner"]["chunk_size"]
