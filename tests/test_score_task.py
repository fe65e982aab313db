"""task=score: column names as options, labels kept as strings, bad input refused (exit 2,
naming the column, the rule, the number of rows and the first offending rows; nothing written)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from palliasim.experiments.tasks import score
from palliasim.sim.errors import ConfigError


def plain(path, out, **task) -> dict:
    return {
        "input": str(path),
        "out_dir": str(out),
        "alpha": 0.05,
        "failures": "exclude",
        "task": {"name": "score", **task},
    }


def own_table(n_rep: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for method in ("NA", "null", "cox"):
        for rep in range(n_rep):
            est = rng.normal(0.2, 0.1)
            rows.append(
                dict(
                    scenario="s",
                    rep=rep,
                    method=method,
                    estimand="None",
                    estimate=est,
                    se=0.1,
                    ci_low=est - 0.196,
                    ci_high=est + 0.196,
                    p_value=0.04,
                    status="ok",
                    true=0.2,
                )
            )
    return pd.DataFrame(rows)


def test_labels_stay_strings_in_csv(tmp_path):
    own_table().to_csv(tmp_path / "r.csv", index=False)
    assert score.run(plain(tmp_path / "r.csv", tmp_path / "o")) == 0
    perf = pd.read_csv(tmp_path / "o" / "performance.csv", keep_default_na=False)
    assert sorted(perf["method"]) == ["NA", "cox", "null"]
    assert set(perf["estimand"]) == {"None"} and (perf["n_used"] == 30).all()
    assert list(perf.columns[:3]) == ["scenario", "method", "estimand"]


def test_rsimsum_names_as_options(tmp_path):
    df = own_table().rename(columns={"estimate": "b", "rep": "dataset", "method": "methodvar"})
    df = df.drop(columns=["estimand", "ci_low", "ci_high", "p_value", "status", "true"])
    df.to_csv(tmp_path / "r.csv", index=False)
    p = plain(
        tmp_path / "r.csv",
        tmp_path / "o",
        estimate="b",
        rep="dataset",
        method="methodvar",
        true=0.2,
        by=["scenario"],
    )
    perf, by = score.score(score.settings_from(p))
    assert by == ["scenario"] and set(perf["estimand"]) == {"b"}
    assert sorted(perf["method"]) == ["NA", "cox", "null"]
    assert perf["coverage"].notna().all()  # Wald interval from b and se


def _mutate(kind: str, df: pd.DataFrame) -> pd.DataFrame:
    if kind == "se":
        df.loc[[4, 9], "se"] = -0.1
    elif kind == "p_value":
        df.loc[[7], "p_value"] = 1.5
    elif kind == "ci":
        df.loc[[2, 3, 5], "ci_low"] = df.loc[[2, 3, 5], "ci_high"] + 1
    elif kind == "rep":
        df["rep"] = df["rep"].astype(float)
        df.loc[[6], "rep"] = 2.5
    elif kind == "estimate":
        df["estimate"] = df["estimate"].astype(object)
        df.loc[[8], "estimate"] = "abc"
    elif kind == "status":
        df.loc[[1], "status"] = "error"
    return df


@pytest.mark.parametrize(
    "kind, column, rule, count, first",
    [
        ("se", "se", ">= 0", "2 of 90", "row 5"),
        ("p_value", "p_value", "[0, 1]", "1 of 90", "row 8"),
        ("ci", "ci_low' <= 'ci_high", "ordered", "3 of 90", "row 3"),
        ("rep", "rep", "whole number", "1 of 90", "row 7 (2.5)"),
        ("estimate", "estimate", "a number", "1 of 90", "row 9 ('abc')"),
        ("status", "status", "ok, warning, failed", "1 of 90", "row 2 ('error')"),
    ],
)
def test_bad_values_refused_before_writing(tmp_path, kind, column, rule, count, first):
    _mutate(kind, own_table()).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ConfigError) as exc:
        score.run(plain(tmp_path / "r.csv", tmp_path / "o"))
    msg = str(exc.value)
    for part in (f"'{column}'", rule, count, first):
        assert part in msg, (part, msg)
    assert not (tmp_path / "o").exists()


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    own_table().iloc[:0].to_csv(tmp_path / "head.csv", index=False)
    with pytest.raises(ConfigError, match="empty"):
        score.run(plain(tmp_path / "empty.csv", tmp_path / "o"))
    with pytest.raises(ConfigError, match=r"no rows \(columns: scenario, rep"):
        score.run(plain(tmp_path / "head.csv", tmp_path / "o"))
    with pytest.raises(ConfigError, match="'dataset'"):
        own_table().to_csv(tmp_path / "r.csv", index=False)
        score.run(plain(tmp_path / "r.csv", tmp_path / "o", rep="dataset"))
    with pytest.raises(ConfigError, match="task.true"):
        score.settings_from(plain(tmp_path / "r.csv", tmp_path / "o", true=True))
    assert not (tmp_path / "o").exists()


def _cli(*args, cwd):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "palliasim", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_options_and_exit_code(tmp_path):
    df = own_table().rename(columns={"estimate": "b"}).drop(columns=["estimand"])
    df.to_csv(tmp_path / "r.csv", index=False)
    ok = _cli(
        "task=score",
        f"input={tmp_path / 'r.csv'}",
        "task.estimate=b",
        "task.true=0.2",
        f"out_dir={tmp_path / 'o'}",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "bias (mcse)" in ok.stdout and len(ok.stdout.splitlines()) <= 31
    assert set(pd.read_csv(tmp_path / "o" / "performance.csv")["estimand"]) == {"b"}
    _mutate("se", df).to_csv(tmp_path / "bad.csv", index=False)
    bad = _cli(
        "task=score",
        f"input={tmp_path / 'bad.csv'}",
        "task.estimate=b",
        f"out_dir={tmp_path / 'o2'}",
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "'se'" in bad.stderr and "row 5" in bad.stderr
    assert not (tmp_path / "o2").exists()


def test_parquet_input_matches_summarise_and_numeric_labels_become_strings(tmp_path):
    from palliasim.experiments.scoring.performance import summarise

    df = own_table()
    df["method"] = df["method"].map({"NA": 1, "null": 2, "cox": 3})  # e.g. Stata method codes
    df.to_parquet(tmp_path / "r.parquet")
    assert score.run(plain(tmp_path / "r.parquet", tmp_path / "o")) == 0
    got = pd.read_csv(tmp_path / "o" / "performance.csv", dtype={"method": str})
    want = summarise(df.assign(method=df["method"].astype(str)), by="scenario")
    assert list(got["method"]) == ["1", "2", "3"]
    cols = ["bias", "bias_mcse", "empse", "modse", "coverage", "rejection", "mse_mcse"]
    np.testing.assert_allclose(got[cols].to_numpy(float), want[cols].to_numpy(float), rtol=1e-9)
