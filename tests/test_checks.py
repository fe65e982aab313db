"""CI checks (experiments/checks.py, task=check): verdicts, statistics, reports, exit codes.

Small cohorts (n = 100), few replications (40-60) and a 20,000-patient truth in a private
cache, so the file runs in well under a minute and a half on two cores. Toy estimators are
registered below; worker processes (and the CLI subprocess, through the suite's ``imports``)
import them from this module.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from palliasim.estimators.base import Estimator, register, wald_row
from palliasim.experiments.checks import judging, schema
from palliasim.experiments.checks.judging import evaluate
from palliasim.experiments.checks.running import run_suite
from palliasim.experiments.checks.schema import load_suite
from palliasim.experiments.scoring.performance import summarise
from palliasim.sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
REPS = 40


# ---------------------------------------------------------------------------------------------
# toy estimators
# ---------------------------------------------------------------------------------------------
@register("toy_check_diff")
@dataclass
class ToyCheckDiff(Estimator):
    """Difference in mean week-12 NRS (observation - control) among the patients observed at
    week 12, plus ``shift``: unbiased in a randomized trial without dropout when shift = 0,
    deliberately biased otherwise."""

    estimands = ("nrs_diff_w12",)
    shift: float = 0.0

    def _fit(self, cohort, rng):
        p = cohort.patients
        y = p["nrs12"].to_numpy(float)
        g = p["group"].to_numpy()
        a, b = y[(g == 1) & ~np.isnan(y)], y[(g == 0) & ~np.isnan(y)]
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        d = a.mean() - b.mean() + self.shift
        return [wald_row(self.name, "nrs_diff_w12", d, se, self.alpha, len(a) + len(b))]


@register("toy_check_broken")
@dataclass
class ToyCheckBroken(Estimator):
    """A programming error in every fit."""

    estimands = ("nrs_diff_w12",)

    def _fit(self, cohort, rng):
        raise RuntimeError("toy bug: index out of range")


SCENARIO = {
    "preset": "randomized",
    "overrides": {"cohort.n": 100, "missingness.mechanism": "none", "truth.n": 20000},
}


def toy_suite(**expect_bad) -> dict:
    return {
        "seed": 11,
        "reps": REPS,
        "error_rate": 0.01,
        "scenarios": {"trial": copy.deepcopy(SCENARIO)},
        "estimators": {
            "good": {"kind": "toy_check_diff"},
            "bad": {"kind": "toy_check_diff", "shift": 1.5},
        },
        "checks": [
            {
                "scenario": "trial",
                "method": "good",
                "estimand": "nrs_diff_w12",
                "expect": {"unbiased": True, "covers": True, "max_fail_rate": 0.0},
            },
            {
                "scenario": "trial",
                "method": "bad",
                "estimand": "nrs_diff_w12",
                "expect": expect_bad or {"unbiased": True, "covers": True},
            },
        ],
    }


@pytest.fixture(autouse=True)
def _private_truth_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PALLIASIM_CACHE", str(tmp_path_factory.getbasetemp() / "truth_cache"))


def row(result, method, expectation):
    t = result.table
    sel = t[(t["method"] == method) & (t["expectation"] == expectation)]
    assert len(sel) == 1, t[["check", "verdict"]]
    return sel.iloc[0]


# ---------------------------------------------------------------------------------------------
# verdicts from real replications
# ---------------------------------------------------------------------------------------------
def test_biased_toy_is_caught_and_correct_one_passes(tmp_path):
    res = run_suite(toy_suite(), out_dir=tmp_path, n_jobs=2)
    assert not res.passed
    assert set(res.failures["method"]) == {"bad"}
    assert row(res, "good", "unbiased")["verdict"] == "PASS"
    assert row(res, "good", "covers")["verdict"] == "PASS"
    assert row(res, "good", "max_fail_rate=0")["verdict"] == "PASS"
    bad = row(res, "bad", "unbiased")
    assert bad["verdict"] == "FAIL"
    assert bad["figure"] == pytest.approx(1.5, abs=0.3)  # the shift, up to Monte Carlo error
    assert bad["reason"].startswith("biased: bias 1.")
    assert "MCSE" in bad["reason"] and "adjusted p" in bad["reason"]
    assert row(res, "bad", "covers")["reason"].startswith("under-covers")
    # failing checks first in the markdown, each with its figure and MCSE
    md = res.markdown
    assert md.startswith("## palliasim checks: suite `suite` FAILED: 2 of 5 check(s) failed")
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")][1:]
    assert [ln.split(" | ")[0] for ln in lines] == ["| **FAIL**"] * 2 + ["| PASS"] * 3
    assert f"| bias | {judging.fmt(bad['figure'])} | {judging.fmt(bad['mcse'], 2)} |" in md
    with pytest.raises(AssertionError, match="2 check"):
        res.assert_passed()
    for name in ("summary.md", "checks.csv", "junit.xml", "performance.csv"):
        assert (tmp_path / name).is_file()
    assert pd.read_csv(tmp_path / "checks.csv")["verdict"].tolist() == res.table["verdict"].tolist()


def test_negative_checks_pass_when_the_naive_method_is_caught(tmp_path):
    res = run_suite(toy_suite(biased=True, undercovers=True), out_dir=tmp_path)
    assert res.passed, res.markdown
    assert row(res, "bad", "biased")["reason"].startswith("caught as biased")
    assert row(res, "bad", "undercovers")["reason"].startswith("caught under-covering")
    # ... and fail (readably) when a correct method is claimed to be caught
    suite = toy_suite()
    suite["checks"][0]["expect"] = {"biased": True}
    res = run_suite(suite, out_dir=tmp_path / "b", junit=None)
    r = row(res, "good", "biased")
    assert r["verdict"] == "FAIL" and r["reason"].startswith("not caught as biased")
    assert not (tmp_path / "b" / "junit.xml").exists()


def test_a_broken_estimator_fails_with_the_error_message(tmp_path):
    suite = toy_suite()
    suite["estimators"]["bad"] = {"kind": "toy_check_broken"}
    suite["checks"][1]["expect"] = {"unbiased": True, "max_fail_rate": 0.05}
    res = run_suite(suite, out_dir=tmp_path)
    for exp in ("unbiased", "max_fail_rate=0.05"):
        r = row(res, "bad", exp)
        assert r["verdict"] == "FAIL"
        assert f"{REPS} of {REPS} replications failed" in r["reason"]
        assert "RuntimeError('toy bug: index out of range')" in r["reason"]


def test_same_seed_same_verdicts_whatever_the_workers(tmp_path):
    a = run_suite(toy_suite(), out_dir=tmp_path / "a", n_jobs=1, chunk_size=25)
    b = run_suite(toy_suite(), out_dir=tmp_path / "b", n_jobs=2, chunk_size=7)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.markdown == b.markdown
    c = run_suite(toy_suite(), out_dir=tmp_path / "a", n_jobs=2)  # resumed: nothing recomputed
    pd.testing.assert_frame_equal(a.table, c.table)


# ---------------------------------------------------------------------------------------------
# the statistics, on synthetic results (no simulation)
# ---------------------------------------------------------------------------------------------
def synthetic(bias: float, se: float, covered: int, n: int, method: str, rng) -> pd.DataFrame:
    noise = rng.normal(0.0, 1.0, n)
    est = 1.0 + bias + se * (noise - noise.mean()) / noise.std(ddof=1)  # exact bias and EmpSE
    hit = np.arange(n) < covered
    return pd.DataFrame(
        {
            "scenario": "trial",
            "rep": np.arange(n),
            "method": method,
            "estimand": "nrs_diff_w12",
            "estimate": est,
            "se": se,
            "ci_low": np.where(hit, 0.0, 2.0),  # covers the truth (1) in `covered` reps
            "ci_high": np.where(hit, 2.0, 3.0),
            "p_value": 0.5,
            "status": "ok",
            "true": 1.0,
            "true_mcse": 0.0,
        }
    )


def synthetic_suite(correction: str) -> schema.Suite:
    s = toy_suite()
    s["correction"] = correction
    s["checks"] = [
        {"scenario": "trial", "method": m, "estimand": "nrs_diff_w12", "expect": {"unbiased": True}}
        for m in ("good", "bad")
    ] + [
        {
            "scenario": "trial",
            "method": "good",
            "estimand": "nrs_diff_w12",
            "expect": {"covers": True},
        }
    ]
    return load_suite(s)


@pytest.mark.parametrize("correction", ["holm", "bonferroni"])
def test_multiplicity_correction_and_bands(correction):
    rng = np.random.default_rng(1)
    n = 400
    # good: bias 2.9 MCSE (p ~ 0.0037), bad: bias 3.1 MCSE (p ~ 0.0019); coverage 0.93
    res = pd.concat(
        [
            synthetic(2.9 * 0.5 / np.sqrt(n), 0.5, 372, n, "good", rng),
            synthetic(3.1 * 0.5 / np.sqrt(n), 0.5, 372, n, "bad", rng),
        ]
    )
    suite = synthetic_suite(correction)
    perf = summarise(res, by=["scenario"], alpha=0.05)
    t = evaluate(suite, perf, res).set_index("check")
    good, bad = (
        t.loc["trial/good/nrs_diff_w12: unbiased"],
        t.loc["trial/bad/nrs_diff_w12: unbiased"],
    )
    cov = t.loc["trial/good/nrs_diff_w12: covers"]
    p = np.array([good["p_value"], bad["p_value"], cov["p_value"]])
    assert good["z"] == pytest.approx(2.9) and bad["z"] == pytest.approx(3.1)
    se0 = np.sqrt(0.95 * 0.05 / n)
    assert cov["z"] == pytest.approx((372 / n - 0.95) / se0)
    if correction == "bonferroni":
        assert t["p_adjusted"].tolist() == pytest.approx(list(np.minimum(1, 3 * p)))
        assert t["level"].tolist() == pytest.approx([0.01 / 3] * 3)
        # 3 x 0.0019 = 0.0057 and 3 x 0.0037 = 0.011: only `bad` fails
        assert t["verdict"].tolist() == ["PASS", "FAIL", "PASS"]
    else:
        # Holm: bad (smallest p) at 0.01/3 -> rejected; good at 0.01/2 -> 2 x 0.0037 = 0.0075
        # rejected too; coverage p ~ 0.05 at 0.01/1 -> not rejected
        assert bad["p_adjusted"] == pytest.approx(3 * bad["p_value"])
        assert good["p_adjusted"] == pytest.approx(max(3 * bad["p_value"], 2 * good["p_value"]))
        assert cov["p_adjusted"] == pytest.approx(max(good["p_adjusted"], cov["p_value"]))
        assert t["level"].tolist() == pytest.approx([0.01 / 2, 0.01 / 3, 0.01])
        assert t["verdict"].tolist() == ["FAIL", "FAIL", "PASS"]
    # the coverage p-value and band are exact binomial (Clopper-Pearson), not normal
    assert cov["p_value"] == pytest.approx(judging.binom_pvalue(372, n, 0.95, "two"))
    lo, hi = judging.binom_band(n, 0.95, cov["level"], "two")
    assert cov["threshold"].startswith(f"in [{judging.fmt(lo)}, {judging.fmt(hi)}] (exact")


@pytest.mark.parametrize("k,n", [(0, 30), (27, 30), (280, 300), (285, 300), (300, 300)])
def test_exact_binomial_test_inverts_the_clopper_pearson_interval(k, n):
    from scipy import stats

    p0, a = 0.95, 0.01
    bt = stats.binomtest(k, n, p0, alternative="less").pvalue
    assert judging.binom_pvalue(k, n, p0, "lower") == pytest.approx(bt)
    gt = stats.binomtest(k, n, p0, alternative="greater").pvalue
    assert judging.binom_pvalue(k, n, p0, "upper") == pytest.approx(gt)
    ci = stats.binomtest(k, n, p0).proportion_ci(1 - a, method="exact")
    outside = not (ci.low <= p0 <= ci.high)
    assert (judging.binom_pvalue(k, n, p0, "two") <= a) == outside
    lo, hi = judging.binom_band(n, p0, a, "two")
    assert (lo <= k / n <= hi) == (not outside)


@register("toy_check_twin")
@dataclass
class ToyCheckTwin(ToyCheckDiff):
    """ToyCheckDiff with two (numerically identical) engines, for the duplicate rule."""

    engines = ("fast", "reference")


def test_engine_twins_with_identical_replications_are_one_hypothesis():
    rng = np.random.default_rng(3)
    n = 400
    s = toy_suite()
    s["estimators"] = {
        "twin": {"kind": "toy_check_twin"},
        "twin_ref": {"kind": "toy_check_twin", "engine": "reference"},
        "other": {"kind": "toy_check_twin", "shift": 0.1},
    }
    s["checks"] = [
        {"scenario": "trial", "method": m, "estimand": "nrs_diff_w12", "expect": {"unbiased": True}}
        for m in ("twin", "twin_ref", "other")
    ]
    suite = load_suite(s)
    base = synthetic(2.7 * 0.5 / np.sqrt(n), 0.5, 380, n, "twin", rng)
    other = synthetic(0.0, 0.5, 380, n, "other", rng)
    twin_ref = base.assign(method="twin_ref")
    res = pd.concat([base, twin_ref, other])
    perf = summarise(res, by=["scenario"], alpha=0.05)
    t = evaluate(suite, perf, res).set_index("method")
    # two hypotheses: Holm over m = 2, the twins' p at rank 1 -> 2 p
    assert t["hypothesis"].tolist() == [0, 0, 1]
    assert t.loc["twin_ref", "duplicate_of"] == "trial/twin/nrs_diff_w12: unbiased"
    p = t.loc["twin", "p_value"]
    assert t.loc["twin", "p_adjusted"] == pytest.approx(2 * p)
    assert t.loc["twin_ref", "p_adjusted"] == pytest.approx(2 * p)
    # replications that differ beyond the tolerance are separate hypotheses (m = 3)
    moved = twin_ref.assign(estimate=twin_ref["estimate"] + 1e-3)
    res2 = pd.concat([base, moved, other])
    t2 = evaluate(suite, summarise(res2, by=["scenario"], alpha=0.05), res2).set_index("method")
    assert t2["hypothesis"].tolist() == [0, 1, 2]
    assert t2.loc["twin", "p_adjusted"] == pytest.approx(3 * min(p, t2.loc["twin_ref", "p_value"]))
    # a different option is never a duplicate, even with identical numbers
    res3 = pd.concat([base, twin_ref, base.assign(method="other")])
    t3 = evaluate(suite, summarise(res3, by=["scenario"], alpha=0.05), res3)
    assert t3["hypothesis"].tolist() == [0, 0, 1]


def test_type1_relerror_and_fail_rate_on_synthetic_results():
    rng = np.random.default_rng(2)
    n = 500
    s = toy_suite()
    s["checks"] = [
        {
            "scenario": "trial",
            "method": "good",
            "estimand": "nrs_diff_w12",
            "expect": {"type1": True, "relerror": 5, "max_fail_rate": 0.01},
        }
    ]
    suite = load_suite(s)
    est = rng.normal(0.0, 1.0, n)
    res = pd.DataFrame(
        {
            "scenario": "trial",
            "rep": np.arange(n),
            "method": "good",
            "estimand": "nrs_diff_w12",
            "estimate": est,
            "se": 0.7,  # model SE 30% too small
            "ci_low": est - 1.37,
            "ci_high": est + 1.37,
            "p_value": np.where(np.arange(n) < 60, 0.01, 0.5),  # 12% rejections
            "status": np.where(np.arange(n) < 10, "failed", "ok"),  # 2% failures
            "true": 0.0,
            "true_mcse": 0.0,
        }
    )
    perf = summarise(res, by=["scenario"], alpha=0.05)
    t = evaluate(suite, perf, res).set_index("expectation")
    assert t.loc["type1", "verdict"] == "FAIL"
    assert t.loc["type1", "reason"].startswith("inflated type I error: rejection rate 0.1")
    assert t.loc["relerror=5%", "verdict"] == "FAIL"
    assert t.loc["relerror=5%", "reason"].startswith("model SE understates the empirical SE")
    assert t.loc["max_fail_rate=0.01", "verdict"] == "FAIL"
    assert "10 of 500 replications failed" in t.loc["max_fail_rate=0.01", "reason"]
    # a type1 check on an estimand whose truth is not 0 is refused with the reason
    res["true"] = 0.5
    perf = summarise(res, by=["scenario"], alpha=0.05)
    t = evaluate(suite, perf, res).set_index("expectation")
    assert "not 0" in t.loc["type1", "reason"] and t.loc["type1", "verdict"] == "FAIL"


# ---------------------------------------------------------------------------------------------
# validation: every key, before any compute
# ---------------------------------------------------------------------------------------------
def _with(path, value):
    s = toy_suite()
    node = s
    *parents, last = path
    for k in parents:
        node = node[k]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return s


@pytest.mark.parametrize(
    "path, value, key",
    [
        (["colour"], "red", "'colour'"),
        (["reps"], 1, "'reps'"),
        (["seed"], -1, "'seed'"),
        (["alpha"], 1.5, "'alpha'"),
        (["error_rate"], 0, "'error_rate'"),
        (["correction"], "sidak", "'correction'"),
        (["failures"], "ignore", "'failures'"),
        (["imports"], ["no_such_module_xyz"], "'imports[0]'"),
        (["checks"], KeyError, "'checks'"),
        (["checks"], [], "'checks'"),
        (["scenarios", "trial", "preset"], "nope", "'scenarios.trial.preset'"),
        (["scenarios", "trial", "colour"], 1, "'scenarios.trial.colour'"),
        (["scenarios", "trial", "overrides", "cohort.nn"], 5, "scenarios.trial.overrides"),
        (["scenarios", "trial", "overrides", "cohort.n"], -5, "cohort.n"),
        (["estimators", "good", "kind"], "nope", "estimators.good"),
        (["estimators", "good", "colour"], 1, "estimators.good"),
        (["estimators", "good", "alpha"], 0.1, "'estimators.good.alpha'"),
        (["checks", 1, "scenario"], "nope", "'checks[1].scenario'"),
        (["checks", 1, "method"], "nope", "'checks[1].method'"),
        (["checks", 1, "estimand"], "pfs_loghr", "'checks[1].estimand'"),
        (["checks", 1, "estimand"], ["nrs_diff_w12", "x"], "'checks[1].estimand[1]'"),
        (["checks", 1, "colour"], 1, "'checks[1].colour'"),
        (["checks", 1, "expect"], {}, "'checks[1].expect'"),
        (["checks", 1, "expect"], {"covers": "maybe"}, "'checks[1].expect.covers'"),
        (["checks", 1, "expect"], {"covers": False}, "'checks[1].expect.covers'"),
        (["checks", 1, "expect"], {"abs_bias_max": -0.1}, "'checks[1].expect.abs_bias_max'"),
        (["checks", 1, "expect"], {"max_fail_rate": 2}, "'checks[1].expect.max_fail_rate'"),
        (["checks", 1, "expect"], {"relerror": "ten"}, "'checks[1].expect.relerror'"),
        (["checks", 1, "expect"], {"unbiassed": True}, "'checks[1].expect.unbiassed'"),
        (["checks", 1, "expect"], {"unbiased": True, "biased": True}, "'checks[1].expect.biased'"),
        (["checks", 1, "method"], "good", "'checks[1].expect.unbiased' repeats"),
    ],
)
def test_invalid_suites_name_the_key(path, value, key):
    with pytest.raises(ConfigError) as err:
        load_suite(_with(path, value))
    assert key in str(err.value)


def test_numbers_yaml_reads_as_strings_are_accepted():
    s = toy_suite(abs_bias_max="1e-4")
    assert load_suite(s).checks[-1].value == pytest.approx(1e-4)


def test_shipped_suites_are_valid():
    assert "smoke" in schema.suite_names()
    smoke = load_suite("smoke")
    assert smoke.name == "smoke" and smoke.correction == "holm"
    caught = {(c.scenario, c.method) for c in smoke.checks if c.expectation == "biased"}
    assert ("study", "cox") in caught
    assert all(c.scenario == "randomized" for c in smoke.checks if c.expectation == "unbiased")
    with pytest.raises(ConfigError, match="allowed values: .*smoke"):
        load_suite("no_such_suite")


# ---------------------------------------------------------------------------------------------
# the CLI: exit codes 0 / 1 / 2, JUnit XML
# ---------------------------------------------------------------------------------------------
def cli(tmp_path, suite: dict | str, *args):
    if isinstance(suite, dict):
        path = tmp_path / "suite.yaml"
        path.write_text(yaml.safe_dump(suite, sort_keys=False))
        suite = str(path)
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "palliasim.experiments.cli", "task=check", f"suite={suite}", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def real_suite(expect: dict) -> dict:
    return {
        "seed": 5,
        "reps": REPS,
        "scenarios": {"trial": copy.deepcopy(SCENARIO)},
        "estimators": {"ancova_cc": {"kind": "ancova_cc"}, "logistic": {"kind": "logistic"}},
        "checks": [
            {
                "scenario": "trial",
                "method": "ancova_cc",
                "estimand": "nrs_diff_w12",
                "expect": {"unbiased": True, "covers": True, "max_fail_rate": 0.0},
            },
            {
                "scenario": "trial",
                "method": "logistic",
                "estimand": "response_logor",
                "expect": expect,
            },
        ],
    }


def parse_junit(path: Path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    return root, cases


def test_cli_exit_0_when_every_check_passes(tmp_path):
    out = tmp_path / "out"
    proc = cli(
        tmp_path,
        real_suite({"unbiased": True, "covers": True}),
        f"out_dir={out}",
        "quiet=true",
        "runner.n_jobs=2",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "## palliasim checks: suite `suite` passed: all 5 check(s)" in proc.stdout
    root, cases = parse_junit(out / "junit.xml")
    assert len(cases) == 5 and root.get("tests") == "5" and root.get("failures") == "0"
    assert not root.findall(".//failure")
    names = {(c.get("classname"), c.get("name")) for c in cases}
    assert ("palliasim.checks.suite.trial.ancova_cc", "nrs_diff_w12: unbiased") in names


def test_cli_exit_1_with_a_readable_reason_and_junit_failures(tmp_path):
    out = tmp_path / "out"
    proc = cli(
        tmp_path,
        real_suite({"abs_bias_max": 0.0001}),
        f"out_dir={out}",
        "quiet=true",
        "task.junit=report.xml",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("| ")]
    assert table[1].startswith("| **FAIL** | trial/logistic/response_logor: abs_bias_max=0.0001 |")
    assert "too biased: abs(bias) = " in table[1]
    root, cases = parse_junit(out / "report.xml")
    assert len(cases) == 4 and root.get("failures") == "1"
    (failure,) = root.findall(".//failure")
    assert failure.get("message").startswith("too biased")


def test_cli_a_biased_plugin_estimator_fails_the_build(tmp_path):
    suite = toy_suite()
    suite["imports"] = ["tests.test_checks"]  # registers the toy kinds in the subprocess
    proc = cli(tmp_path, suite, f"out_dir={tmp_path / 'out'}", "quiet=true")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "| **FAIL** | trial/bad/nrs_diff_w12: unbiased | bias | 1." in proc.stdout
    assert "biased: bias" in proc.stdout


def test_cli_exit_2_on_an_invalid_suite_and_nothing_written(tmp_path):
    suite = real_suite({"covers": "maybe"})
    out = tmp_path / "out"
    proc = cli(tmp_path, suite, f"out_dir={out}")
    assert proc.returncode == 2
    assert "checks[1].expect.covers" in proc.stderr
    assert not out.exists()
    proc = cli(tmp_path, "no_such_suite", f"out_dir={out}")
    assert proc.returncode == 2 and "allowed values: " in proc.stderr and "smoke" in proc.stderr
    proc = cli(tmp_path, real_suite({"covers": True}), f"out_dir={out}", "task.reps=1")
    assert proc.returncode == 2 and "task.reps" in proc.stderr
