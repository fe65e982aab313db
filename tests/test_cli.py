"""The palliasim CLI end to end (subprocesses, run from a directory outside the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from palliasim.experiments.config import compose
from palliasim.experiments.settings import Settings
from palliasim.sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd, check=True):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", "palliasim.experiments.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def test_export_same_seed_same_files_and_documented(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 7), (b, 7), (c, 8)):
        cli(
            "task=export",
            "scenario=study",
            "cohort.n=120",
            f"seed={seed}",
            f"out_dir={out}",
            cwd=tmp_path,
        )
    assert (a / "patients.csv").read_bytes() == (b / "patients.csv").read_bytes()
    assert (a / "visits.csv").read_bytes() == (b / "visits.csv").read_bytes()
    assert (a / "patients.csv").read_bytes() != (c / "patients.csv").read_bytes()
    patients = pd.read_csv(a / "patients.csv")
    visits = pd.read_csv(a / "visits.csv")
    assert len(patients) == 120 and len(visits) == 600
    doc = (a / "DATA.md").read_text()
    for col in list(patients.columns) + list(visits.columns):
        stem = col.split("_w")[0] if col.endswith(("_w0", "_w12")) else col
        assert stem in doc, f"column {col} not documented in DATA.md"


def test_export_parquet(tmp_path):
    cli(
        "task=export",
        "task.format=parquet",
        "cohort.n=30",
        f"out_dir={tmp_path / 'p'}",
        cwd=tmp_path,
    )
    assert len(pd.read_parquet(tmp_path / "p" / "patients.parquet")) == 30


@pytest.mark.parametrize(
    "override, key",
    [
        ("cohort.n=5", "cohort.n"),
        ("treatment.allocation=1.5", "treatment.allocation"),
        ("missingness.mechanism=sometimes", "missingness.mechanism"),
        ("survival.censoring.accrual_months=-3", "survival.censoring.accrual_months"),
        ("task.format=xls", "task.format"),
        ("alpha=2", "alpha"),
        ("failures=ignore", "failures"),
    ],
)
def test_invalid_config_names_key_exits_2_writes_nothing(tmp_path, override, key):
    out = tmp_path / "out"
    proc = cli("task=export", override, f"out_dir={out}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert key in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("+foo=1",), "unknown config key 'foo'; allowed keys: "),
        (("+task.foo=1",), "unknown config key 'task.foo'; allowed keys of task: format"),
        (("+design.sbuset=[]",), "unknown config key 'design.sbuset'; allowed keys of design: "),
        (("quiet=maybe",), "invalid value 'maybe' for config key 'quiet'; allowed: true or false"),
        (("task=simulate", "task.max_rows=0"), "'task.max_rows'; allowed: an integer >= 1"),
        (("task=simulate", "task.target_mcse.bias=-1"), "'task.target_mcse.bias'; allowed: a"),
        (("task=simulate", "+task.target_mcse.bia=1"), "'task.target_mcse.bia'; allowed keys"),
        (("task=check", "task.reps=1"), "'task.reps'; allowed: null or an integer >= 2"),
        (("task=power", "task.endpoints=[pain]"), "'task.endpoints'; allowed: a non-empty list"),
        (("task=calibrate", "task.n=10"), "'task.n'; allowed: an integer >= 1000"),
    ],
)
def test_unknown_keys_and_bad_task_options_are_refused_naming_the_key(args, message):
    """Validated once, in Settings.from_config (the CLI's and the API's entry point)."""
    first = () if args[0].startswith("task=") else ("task=export",)
    with pytest.raises(ConfigError) as err:
        Settings.from_config(compose([*first, *args]))
    assert message in str(err.value)


@pytest.mark.parametrize("arg", ["+foo=1", "quiet=maybe", "task.plots=maybe"])
def test_unknown_key_or_non_boolean_exits_2_before_compute(tmp_path, arg):
    out = tmp_path / "out"
    proc = cli("reps=2", arg, f"out_dir={out}", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "palliasim: configuration error: " in proc.stderr
    assert not out.exists()


def test_unknown_key_rejected_by_hydra(tmp_path):
    proc = cli("task=export", "cohort.nn=5", f"out_dir={tmp_path / 'o'}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "cohort.nn" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_unknown_scenario_lists_presets(tmp_path):
    proc = cli("task=export", "scenario=trial", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "study" in proc.stderr and "randomized" in proc.stderr


def test_analyse_exported_cohort_and_reject_bad_schema(tmp_path):
    data = tmp_path / "data"
    cli("task=export", "cohort.n=150", "seed=3", f"out_dir={data}", cwd=tmp_path)
    out = tmp_path / "an"
    proc = cli(
        "task=analyse",
        f"data={data}",
        "estimators=[cox,ancova_cc,logistic]",
        f"out_dir={out}",
        cwd=tmp_path,
    )
    est = pd.read_csv(out / "estimates.csv")
    assert {"cox", "ancova_cc", "logistic"} <= set(est["method"])
    assert set(est["estimand"]) >= {"pfs_loghr", "os_loghr", "nrs_diff_w12", "response_logor"}
    assert "pfs_loghr" in proc.stdout
    # a malformed file: drop a required column
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_csv(data / "patients.csv").drop(columns=["os_event"]).to_csv(
        bad / "patients.csv", index=False
    )
    (bad / "visits.csv").write_bytes((data / "visits.csv").read_bytes())
    proc = cli(
        "task=analyse",
        f"data={bad}",
        "estimators=[cox]",
        f"out_dir={tmp_path / 'x'}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "os_event" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_score_foreign_table(tmp_path):
    rows = []
    for rep in range(20):
        for method, shift in (("a", 0.0), ("b", 0.5)):
            est = shift + (rep - 9.5) / 10
            rows.append(
                {
                    "n": 100,
                    "rep": rep,
                    "method": method,
                    "estimand": "x",
                    "estimate": est,
                    "se": 0.6,
                    "ci_low": est - 1.2,
                    "ci_high": est + 1.2,
                    "p_value": 0.5,
                    "status": "ok",
                    "true": 0.0,
                }
            )
    pd.DataFrame(rows).to_csv(tmp_path / "res.csv", index=False)
    cli("task=score", f"input={tmp_path / 'res.csv'}", f"out_dir={tmp_path / 's'}", cwd=tmp_path)
    perf = pd.read_csv(tmp_path / "s" / "performance.csv")
    b = perf.set_index("method")["bias"]
    assert b["a"] == pytest.approx(0.0, abs=1e-12) and b["b"] == pytest.approx(0.5)
