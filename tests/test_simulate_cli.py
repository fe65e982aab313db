"""task=simulate end to end, and Hydra composition of every preset and estimator config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources

import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from palliasim.experiments import config as C
from palliasim.experiments.settings import Settings

ESTIMATOR_CONFIGS = sorted(
    p.name[:-5]
    for p in resources.files("palliasim.conf").joinpath("estimators").iterdir()
    if p.name.endswith(".yaml")
)


@pytest.mark.parametrize(
    "preset, name",
    [("study", "study"), ("randomized", "randomized"), ("'null'", "null"), ("no_effect", "null")],
)
def test_every_preset_and_estimator_composes(preset, name):
    with initialize_config_module(config_module="palliasim.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"scenario={preset}", f"estimators=[{','.join(ESTIMATOR_CONFIGS)}]"],
        )
    plain = C.to_plain(cfg)
    settings = Settings.from_config(plain)
    sc = C.scenario_from(plain)
    assert sc.name == name
    specs = settings.estimators
    assert set(specs) == set(ESTIMATOR_CONFIGS)


def test_default_config_selects_the_study_analyses():
    with initialize_config_module(config_module="palliasim.conf", version_base="1.3"):
        cfg = compose("config")
    plain = C.to_plain(cfg)
    assert plain["task"]["name"] == "simulate" and plain["scenario_name"] == "study"
    assert plain["cohort"]["n"] == 205
    assert {"lmm", "cox", "logistic_study_pipeline", "km_median", "logrank"} <= set(
        plain["estimators"]
    )


def test_every_design_composes():
    designs = [
        p.name[:-5]
        for p in resources.files("palliasim.conf").joinpath("design").iterdir()
        if p.name.endswith(".yaml")
    ]
    from palliasim.experiments.engine.design import expand_design

    for d in designs:
        with initialize_config_module(config_module="palliasim.conf", version_base="1.3"):
            cfg = compose("config", overrides=[f"design={d}"])
        plain = C.to_plain(cfg)
        pts = expand_design(
            C.scenario_from(plain),
            None,
            plain["design"]["factors"] or {},
            plain["design"]["subset"],
        )
        assert len(pts) >= 1


def _cli(*args, cwd):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "palliasim.experiments.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_simulate_factorial_sweep_end_to_end_and_resume(tmp_path):
    out = tmp_path / "run"
    args = [
        "design=missing_confounding",
        "design.subset=[{cohort.n: 100}]",
        "reps=4",
        "estimators=[ancova_cc,locf_ancova,logistic]",
        "truth.n=20000",
        "runner.n_jobs=2",
        "runner.chunk_size=2",
        "quiet=true",
        f"out_dir={out}",
    ]
    proc = _cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    perf = pd.read_csv(out / "performance.csv")
    assert {
        "cohort.n",
        "missingness.mechanism",
        "confounding.strength",
        "bias",
        "bias_mcse",
        "coverage",
        "rejection_mcse",
    } <= set(perf.columns)
    assert len(perf[["missingness.mechanism", "confounding.strength"]].drop_duplicates()) == 6
    assert (out / "plots" / "example_cohort.png").stat().st_size > 1000
    assert list((out / "plots").glob("nested_loop_*.png"))
    assert list((out / "plots").glob("zip_*.png"))
    assert (out / "comparisons.csv").exists(), proc.stdout + proc.stderr
    comp = pd.read_csv(out / "comparisons.csv")
    assert set(comp["method_a"]) == {"ancova_cc"} and set(comp["method_b"]) == {"locf_ancova"}
    assert comp["n_pairs"].eq(4).all() and comp["bias_diff_mcse"].notna().all()
    need = pd.read_csv(out / "reps_needed.csv")
    assert "reps_for_bias_mcse_0.01" in need.columns
    res1 = pd.read_parquet(out / "results.parquet")
    assert res1["rep"].nunique() == 4 and "nrs_diff_w12" in proc.stdout
    # the same command again computes nothing and gives the same results
    proc = _cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    runs = manifest["runs"]
    assert len(runs) == 2 and len(runs[0]["computed"]) == 12  # 6 points x 2 chunks, then ...
    assert runs[1]["computed"] == []  # ... the same command again computes nothing
    assert manifest["status"] == "complete" and manifest["seed"] == 20261129
    res2 = pd.read_parquet(out / "results.parquet")
    cols = [c for c in res1.columns if c != "seconds"]
    pd.testing.assert_frame_equal(res1[cols], res2[cols])


def test_simulate_invalid_design_key_fails_before_compute(tmp_path):
    out = tmp_path / "run"
    proc = _cli(
        "design=missing_confounding",
        "design.factors={cohort.n: [5, 100]}",
        "reps=2",
        "estimators=[ancova_cc]",
        f"out_dir={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "cohort.n" in proc.stderr
    assert not (out / "results").exists()


def test_simulate_invalid_runner_key(tmp_path):
    proc = _cli(
        "runner.backend=spark",
        "reps=2",
        "estimators=[ancova_cc]",
        f"out_dir={tmp_path / 'o'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "runner.backend" in proc.stderr and "loky" in proc.stderr


def test_hydra_multirun_sweeps_whole_experiments(tmp_path):
    proc = _cli(
        "-m",
        "cohort.n=40,50",
        "reps=2",
        "estimators=[ancova_cc]",
        "task.plots=false",
        "quiet=true",
        "truth.n=20000",
        "runner.n_jobs=1",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    perfs = sorted((tmp_path / "multirun").rglob("performance.csv"))
    assert len(perfs) == 2
    assert {pd.read_csv(p)["estimand"].iloc[0] for p in perfs} == {"nrs_diff_w12"}
