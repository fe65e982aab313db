"""The check suite's power against planted defects (issue 11 item 8), on a fixed seed.

The toy estimator of benchmarks/bench_check_power.py (:class:`ToyNormalMean`) plants a bias of
0.3 EmpSE, a model SE 20% off, or a coverage of 0.92. Here: (1) on real replications, the
Estimator has the planted figures (each within 4 MCSE), so the benchmark's sampling model is
the estimator's; (2) judged by the suite's statistics on replications of that model, each
defect is caught by its own check and only by it, and the clean estimator passes. (2) uses
4000 replications, where each defect is caught with probability > 0.999 (bias: 15 MCSE, the truth's MCSE included; SE:
relerror 20% against 10% + ~4 MCSE; coverage: 0.92 against a band ~ 0.95 - 0.012); the power
at the smoke suite's 300 replications is the benchmark's, quoted in docs/ci.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_check_power import DEFECTS, TOY_EXPECT, simulate_replications
from palliasim.experiments.checks.judging import evaluate
from palliasim.experiments.checks.running import run_suite
from palliasim.experiments.checks.schema import load_suite
from palliasim.experiments.scoring.performance import summarise

SCENARIO = {
    "preset": "randomized",
    "overrides": {"cohort.n": 100, "missingness.mechanism": "none", "truth.n": 20000},
}

OPTIONS = {
    "clean": {},
    "bias": {"bias": 0.3},
    "se_low": {"se_scale": 0.8},
    "se_high": {"se_scale": 1.2},
    "coverage": {"coverage": 0.92},
}


def toy_suite(reps: int, expect: dict) -> dict:
    return {
        "seed": 3,
        "reps": reps,
        "scenarios": {"trial": SCENARIO},
        "estimators": {m: {"kind": "toy_normal_mean", **o} for m, o in OPTIONS.items()},
        "checks": [
            {"scenario": "trial", "method": m, "estimand": "nrs_diff_w12", "expect": expect}
            for m in OPTIONS
        ],
    }


@pytest.fixture(autouse=True)
def _private_truth_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PALLIASIM_CACHE", str(tmp_path_factory.getbasetemp() / "truth_cache"))


def test_the_toy_estimator_plants_each_defect(tmp_path):
    # in-process (n_jobs=1): the toy kind lives in the benchmark module
    res = run_suite(toy_suite(150, {"max_fail_rate": 0.0}), out_dir=tmp_path, n_jobs=1, junit=None)
    perf = res.performance.set_index("method")
    clean = perf.loc["clean"]
    n = int(clean["n_used"])
    for m, (bias, se_scale, cov) in DEFECTS.items():
        r = perf.loc[m]
        # the same cohorts for every method: the estimate moves by bias x the data's SE s
        # (which varies little between cohorts), the model SE is se_scale x s exactly, and
        # (without bias) the narrower CI loses the replications covered at 95% but not at `cov`, a
        # Binomial(n, 0.95 - cov) count: within 4 of its SDs
        assert r["bias"] - clean["bias"] == pytest.approx(bias * clean["modse"], rel=0.02)
        if bias == 0:
            want = 100 * (se_scale * (1 + clean["relerror"] / 100) - 1)
            assert r["relerror"] == pytest.approx(want, abs=1e-6)
            d = 0.95 - cov
            band = 4 * np.sqrt(d * (1 - d) / n) + 1e-12
            assert clean["coverage"] - r["coverage"] == pytest.approx(d, abs=band)
        assert r["n_failed"] == 0
    assert res.passed


def test_each_defect_is_caught_by_its_own_check_and_the_clean_estimator_passes():
    suite = load_suite(toy_suite(4000, TOY_EXPECT))
    rng = np.random.default_rng(20260412)
    theta, s = -0.97, 0.25
    res = [
        simulate_replications(4000, theta, 0.003, s, d, rng, method=m, scenario="trial")
        for m, d in DEFECTS.items()
    ]
    res = pd.concat(res, ignore_index=True)
    t = evaluate(suite, summarise(res, by=["scenario"], alpha=0.05), res)
    failed = {(r["method"], r["expectation"]) for _, r in t[t["verdict"] == "FAIL"].iterrows()}
    assert failed == {
        ("bias", "unbiased"),
        ("se_low", "relerror=10%"),
        ("se_high", "relerror=10%"),
        ("coverage", "covers"),
    }, t[["check", "verdict", "reason"]].to_string()
    reasons = t.set_index(["method", "expectation"])["reason"]
    assert reasons[("bias", "unbiased")].startswith("biased: bias 0.0")
    b = t.set_index(["method", "expectation"]).loc[("bias", "unbiased")]
    assert b["figure"] == pytest.approx(0.3 * s, abs=4 * b["mcse"])
    assert reasons[("se_low", "relerror=10%")].startswith("model SE understates")
    assert reasons[("se_high", "relerror=10%")].startswith("model SE overstates")
    assert reasons[("coverage", "covers")].startswith("under-covers: coverage 0.9")
    c = t.set_index(["method", "expectation"]).loc[("coverage", "covers")]
    assert c["figure"] == pytest.approx(0.92, abs=4 * np.sqrt(0.92 * 0.08 / 4000))
