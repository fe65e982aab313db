"""Tests for experiments.report and experiments.plots on a small synthetic results table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from palliasim import sim
from palliasim.experiments.scoring import plots
from palliasim.experiments.scoring.report import (
    MAIN_COLUMNS,
    format_table,
    format_terminal,
    performance_table,
)
from palliasim.experiments.scoring.summary import flag_table, format_summary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FACTORS = ["cohort.n", "confounding.strength"]


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    """Two factors (2 x 2 scenarios), two methods (one biased), two estimands, 80 reps."""
    rng = np.random.default_rng(1)
    rows = []
    for n in (50, 100):
        for strength in (0.0, 1.0):
            label = f"study: n={n}, strength={strength:g}"
            for estimand, true in (("nrs_diff_w12", -1.0), ("os_loghr", 0.0)):
                se = 2.0 / np.sqrt(n)
                for method, bias in (("unbiased", 0.0), ("biased", 0.3 * strength)):
                    for rep in range(80):
                        est = true + bias + rng.normal(0, se)
                        failed = method == "biased" and rep % 20 == 0
                        z = stats.norm.ppf(0.975)
                        rows.append(
                            {
                                "cohort.n": n,
                                "confounding.strength": strength,
                                "scenario": label,
                                "scenario_key": label,
                                "rep": rep,
                                "method": method,
                                "estimand": estimand,
                                "estimate": np.nan if failed else est,
                                "se": se,
                                "ci_low": est - z * se,
                                "ci_high": est + z * se,
                                "p_value": 2 * stats.norm.sf(abs(est / se)),
                                "status": "failed" if failed else "ok",
                                "message": "",
                                "engine": "reference",
                                "true": true,
                                "true_mcse": np.nan,
                            }
                        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def perf(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    p = performance_table(results, FACTORS, alpha=0.05, failures="exclude", out_dir=out)
    p.attrs["out"] = out
    return p


def _png(path) -> None:
    data = path.read_bytes()
    assert len(data) > 5000 and data[:8] == PNG_MAGIC


def test_performance_table_columns_and_csv(perf):
    lead = ["scenario", *FACTORS, "method", "estimand", "engine"]
    assert list(perf.columns[: len(lead) + len(MAIN_COLUMNS)]) == lead + list(MAIN_COLUMNS)
    assert {"n_reps", "fail_rate", "true", "rmse", "failures", "alpha"} <= set(perf.columns)
    assert len(perf) == 4 * 2 * 2
    # design order (by factor levels), then estimand, method
    assert list(perf["cohort.n"]) == [50] * 8 + [100] * 8
    b = perf[(perf["method"] == "biased")]
    assert (b["n_failed"] == 4).all() and (b["n_used"] == 76).all()
    csv = pd.read_csv(perf.attrs["out"] / "performance.csv")
    assert list(csv.columns) == list(perf.columns)
    np.testing.assert_allclose(csv["bias"], perf["bias"], rtol=1e-9)


def test_format_table(perf):
    text = format_table(perf, max_rows=100)
    assert "== study: n=50, strength=0 ==" in text
    for h in (
        "estimand",
        "method",
        "n used/failed",
        "bias (mcse)",
        "empse",
        "modse",
        "coverage (mcse)",
        "rejection (mcse)",
    ):
        assert h in text
    assert "76/4" in text and "failures=exclude" in text
    short = format_table(perf, max_rows=5)
    assert "11 more row(s) not shown" in short
    assert format_table(perf.iloc[:0]) == "(no results)"
    # fixed width: every table line of a block has the header's width or less
    block = text.split("\n\n")[0].splitlines()
    assert len({len(block[1]), len(block[2])}) == 1


def test_format_terminal_is_the_short_summary(perf):
    text = format_terminal(perf, max_rows=120)
    lines = text.splitlines()
    assert len(lines) <= 30 and text == format_summary(perf)
    assert lines[0] == "== study: n=50, strength=0 =="
    # headline endpoint first: the NRS section comes before the OS section in each block
    assert text.index("-- Pain NRS at week 12") < text.index("-- Overall survival")
    for h in ("bias (mcse)", "cover (mcse)", "emp/mod SE", "rej", "flags", "failures=exclude"):
        assert h in text
    assert "16 rows:" in text and "see performance.csv" in text  # not every scenario fits
    assert format_terminal(perf.iloc[:0]) == "(no results)"
    assert len(format_terminal(perf, max_rows=12).splitlines()) <= 12


def test_flags_follow_their_rules(perf):
    f = flag_table(perf)
    biased = perf["method"].eq("biased") & perf["confounding.strength"].eq(1.0)
    # bias 0.3 with EmpSE 0.2-0.28 and MCSE ~0.03: flagged; the unbiased method never is
    assert f.loc[biased, "biased"].all()
    assert not f.loc[perf["method"].eq("unbiased"), "biased"].any()
    # a bias of 10 MCSE below the practical tolerance is not flagged
    tiny = pd.DataFrame(
        {
            "bias": [0.01],
            "bias_mcse": [0.001],
            "true": [1.0],
            "empse": [0.05],
            "coverage": [0.95],
            "n_used": [1000],
            "relerror": [0.0],
            "relerror_mcse": [1.0],
            "alpha": [0.05],
        }
    )
    assert not flag_table(tiny).any(axis=None)
    # coverage 0.93 with 1000 reps: 2 MCSE at 0.95 is 0.0138 -> under-covers; 0.94 is not
    cov = pd.concat([tiny] * 2, ignore_index=True).assign(coverage=[0.93, 0.94])
    assert list(flag_table(cov)["under-covers"]) == [True, False]
    off = tiny.assign(relerror=[-15.0], relerror_mcse=[3.0])
    assert flag_table(off)["model SE off"].all()
    assert not flag_table(off.assign(relerror_mcse=[8.0]))["model SE off"].any()


def test_plots_write_png_files(results, perf, tmp_path):
    paths = [
        plots.plot_bias(perf, tmp_path / "bias.png"),
        plots.plot_rejection(perf, tmp_path / "rejection.png"),
        plots.plot_coverage(perf, tmp_path / "coverage.png"),
        plots.plot_zip(
            results,
            perf,
            tmp_path / "zip.png",
            "nrs_diff_w12",
            "biased",
            "study: n=100, strength=1",
        ),
        plots.plot_zip(results, None, tmp_path / "zip_all.png", "os_loghr", "unbiased"),
        plots.plot_nested_loop(perf, FACTORS, tmp_path / "nested.png", "nrs_diff_w12"),
        plots.plot_nested_loop(
            perf, FACTORS, tmp_path / "nested_cov.png", "os_loghr", measure="coverage"
        ),
    ]
    for p in paths:
        assert p.exists()
        _png(p)


def test_plots_degenerate_inputs(results, perf, tmp_path):
    # nothing usable: still a (small) readable PNG, never an exception
    p = plots.plot_zip(results, perf, tmp_path / "z.png", "nope", "unbiased")
    assert p.exists() and p.read_bytes()[:8] == PNG_MAGIC
    p = plots.plot_nested_loop(perf, FACTORS, tmp_path / "n.png", "nope")
    assert p.exists() and p.read_bytes()[:8] == PNG_MAGIC
    many = pd.concat([perf.assign(estimand=f"e{i}") for i in range(15)], ignore_index=True)
    _png(plots.plot_bias(many, tmp_path / "many.png", max_panels=4))


def test_plot_example_cohort(tmp_path):
    sc = sim.load_scenario("study", {"cohort.n": 60})
    cohort = sim.generate(sc, sim.rng_for(1, sc.key, "example", 0))
    p = plots.plot_example_cohort(cohort, tmp_path / "sub" / "cohort.png")
    _png(p)
