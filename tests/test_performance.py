"""Tests for experiments.performance: hand-computed values on small fixed tables."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palliasim.experiments.scoring.performance import (
    OUTPUT_COLUMNS,
    compare_methods,
    reps_needed,
    summarise,
)

NAN = float("nan")
COLS = ["rep", "estimate", "se", "ci_low", "ci_high", "p_value", "status"]


def _table(rows, **const) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLS)
    for k, v in const.items():
        df[k] = v
    return df


# Five replications of one method, true value 0.5. Rep 5 has status "failed" although it
# returned (garbage) numbers, including a "significant" p-value and a CI that does not cover.
MAIN_ROWS = [
    (1, 0.4, 0.2, 0.00, 0.80, 0.04, "ok"),
    (2, 0.6, 0.1, 0.52, 0.68, 0.001, "ok"),
    (3, 0.9, 0.2, 0.50, 1.30, 0.20, "warning"),  # ci_low == true: covers (inclusive)
    (4, 0.2, 0.4, -0.60, 1.00, 0.60, "ok"),
    (5, 5.0, 1.0, 3.00, 7.00, 0.01, "failed"),
]


def main_table() -> pd.DataFrame:
    return _table(MAIN_ROWS, scenario="s1", method="m1", estimand="logHR", true=0.5)


def one(perf: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(perf), dtype=bool)
    for k, v in where.items():
        mask &= (perf[k] == v).to_numpy()
    assert mask.sum() == 1, where
    return perf[mask].iloc[0]


# ---- hand computation for MAIN_ROWS (reps 1-4 used) -------------------------------------------
N = 4
MEAN = (0.4 + 0.6 + 0.9 + 0.2) / 4  # 0.525
SS = (0.4 - MEAN) ** 2 + (0.6 - MEAN) ** 2 + (0.9 - MEAN) ** 2 + (0.2 - MEAN) ** 2  # 0.2675
EMPSE = math.sqrt(SS / 3)
MODSE = math.sqrt((0.04 + 0.01 + 0.04 + 0.16) / 4)  # 0.25
VAR_V = ((0.04 - 0.0625) ** 2 * 2 + (0.01 - 0.0625) ** 2 + (0.16 - 0.0625) ** 2) / 3  # 0.004425
ERR2 = [0.1**2, 0.1**2, 0.4**2, 0.3**2]
MSE = sum(ERR2) / 4  # 0.0675
MSE_MCSE = math.sqrt(sum((e - MSE) ** 2 for e in ERR2) / (4 * 3))


def test_output_columns_and_order():
    perf = summarise(main_table(), by="scenario")
    assert list(perf.columns) == ["scenario", "method", "estimand", *OUTPUT_COLUMNS]
    assert len(perf) == 1


def test_hand_values_exclude():
    r = one(summarise(main_table(), by="scenario", failures="exclude"), method="m1")
    assert (r.n_reps, r.n_used, r.n_failed) == (5, 4, 1)
    assert r.fail_rate == pytest.approx(0.2)
    assert r.fail_rate_mcse == pytest.approx(math.sqrt(0.2 * 0.8 / 5))
    assert r.true == 0.5 and math.isnan(r.true_mcse)
    assert r.bias == pytest.approx(0.025)
    assert r.bias_mcse == pytest.approx(EMPSE / 2)
    assert r.rel_bias == pytest.approx(0.025 / 0.5)
    assert r.rel_bias_mcse == pytest.approx(EMPSE / 0.5 / 2)
    assert r.empse == pytest.approx(math.sqrt(0.2675 / 3))
    assert r.empse_mcse == pytest.approx(EMPSE / math.sqrt(2 * 3))
    assert r.modse == pytest.approx(0.25)
    assert r.modse_mcse == pytest.approx(math.sqrt(0.004425 / (4 * 4 * 0.0625)))
    assert r.relerror == pytest.approx(100 * (0.25 / EMPSE - 1))
    assert r.relerror_mcse == pytest.approx(
        100 * (0.25 / EMPSE) * math.sqrt(VAR_V / (4 * 4 * 0.25**4) + 1 / (2 * 3))
    )
    assert r.mse == pytest.approx(0.0675)
    assert r.mse_mcse == pytest.approx(MSE_MCSE)
    assert r.rmse == pytest.approx(math.sqrt(0.0675))
    # coverage of 0.5: reps 1, 3, 4 (rep 2's CI [0.52, 0.68] misses)
    assert r.coverage == pytest.approx(3 / 4)
    assert r.coverage_mcse == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    # bias-eliminated: all four CIs contain mean 0.525
    assert r.becoverage == pytest.approx(1.0)
    assert r.becoverage_mcse == pytest.approx(0.0)
    # p <= 0.05: reps 1 and 2
    assert r.rejection == pytest.approx(2 / 4)
    assert r.rejection_mcse == pytest.approx(math.sqrt(0.5 * 0.5 / 4))
    assert r.ci_width == pytest.approx((0.8 + 0.16 + 0.8 + 1.6) / 4)
    assert r.failures == "exclude" and r.alpha == 0.05


def test_hand_values_count():
    r = one(summarise(main_table(), by="scenario", failures="count"), method="m1")
    assert (r.n_reps, r.n_used, r.n_failed) == (5, 4, 1)
    # estimation measures unchanged: still on the 4 non-failed reps
    assert r.bias == pytest.approx(0.025)
    assert r.empse == pytest.approx(EMPSE)
    assert r.modse == pytest.approx(0.25)
    assert r.mse == pytest.approx(MSE)
    assert r.ci_width == pytest.approx((0.8 + 0.16 + 0.8 + 1.6) / 4)
    # the failed rep (despite its p = 0.01) is non-covering and non-rejecting, denominator 5
    assert r.coverage == pytest.approx(3 / 5)
    assert r.coverage_mcse == pytest.approx(math.sqrt(0.6 * 0.4 / 5))
    assert r.becoverage == pytest.approx(4 / 5)
    assert r.becoverage_mcse == pytest.approx(math.sqrt(0.8 * 0.2 / 5))
    assert r.rejection == pytest.approx(2 / 5)
    assert r.rejection_mcse == pytest.approx(math.sqrt(0.4 * 0.6 / 5))
    assert r.failures == "count"


def test_alpha_changes_rejection():
    r = one(summarise(main_table(), by="scenario", alpha=0.001), method="m1")
    assert r.rejection == pytest.approx(1 / 4)  # p = 0.001 <= 0.001 (inclusive)
    assert r.alpha == 0.001


def test_nan_estimate_with_ok_status_is_failed():
    df = main_table()
    df.loc[df.rep == 4, "estimate"] = NAN  # status still "ok"
    r = one(summarise(df, by="scenario"), method="m1")
    assert (r.n_used, r.n_failed) == (3, 2)
    assert r.bias == pytest.approx((0.4 + 0.6 + 0.9) / 3 - 0.5)
    assert r.modse == pytest.approx(math.sqrt((0.04 + 0.01 + 0.04) / 3))


def test_simulated_truth_mcse_added_in_quadrature():
    df = main_table()
    df["true_mcse"] = 0.01
    r = one(summarise(df, by="scenario"), method="m1")
    assert r.true_mcse == 0.01
    assert r.bias_mcse == pytest.approx(math.sqrt(SS / 3 / 4 + 0.01**2))
    # other MCSEs are not affected
    assert r.empse_mcse == pytest.approx(EMPSE / math.sqrt(6))
    # custom column name
    df = df.rename(columns={"true_mcse": "truth_se"})
    r2 = one(summarise(df, by="scenario", truth_mcse_col="truth_se"), method="m1")
    assert r2.bias_mcse == pytest.approx(r.bias_mcse)
    # NaN true_mcse = analytic truth: nothing added
    df["truth_se"] = NAN
    r3 = one(summarise(df, by="scenario", truth_mcse_col="truth_se"), method="m1")
    assert r3.bias_mcse == pytest.approx(EMPSE / 2)


def test_true_zero_rel_bias_nan_and_type_one_error():
    rows = [
        (1, 0.10, 0.1, -0.10, 0.30, 0.30, "ok"),
        (2, -0.25, 0.1, -0.45, -0.05, 0.01, "ok"),
        (3, 0.05, 0.1, -0.15, 0.25, 0.60, "ok"),
        (4, 0.30, 0.1, 0.10, 0.50, 0.003, "ok"),
    ]
    r = one(summarise(_table(rows, method="m", estimand="null", true=0.0)), method="m")
    assert math.isnan(r.rel_bias) and math.isnan(r.rel_bias_mcse)
    assert r.bias == pytest.approx((0.10 - 0.25 + 0.05 + 0.30) / 4)
    assert r.rejection == pytest.approx(2 / 4)  # type I error
    assert r.coverage == pytest.approx(2 / 4)


def test_one_usable_rep_gives_nans_without_warnings():
    rows = [
        (1, 0.3, 0.2, -0.1, 0.7, 0.10, "ok"),
        (2, NAN, NAN, NAN, NAN, NAN, "failed"),
        (3, NAN, 0.2, NAN, NAN, NAN, "ok"),
    ]
    df = _table(rows, method="m", estimand="e", true=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = one(summarise(df), method="m")
        rc = one(summarise(df, failures="count"), method="m")
    assert (r.n_used, r.n_failed) == (1, 2)
    assert r.bias == pytest.approx(0.1)
    assert r.mse == pytest.approx(0.01)
    assert r.modse == pytest.approx(0.2)
    for col in [
        "bias_mcse",
        "rel_bias_mcse",
        "empse",
        "empse_mcse",
        "modse_mcse",
        "relerror",
        "relerror_mcse",
        "mse_mcse",
    ]:
        assert math.isnan(r[col]), col
    assert r.coverage == 1.0 and r.rejection == 0.0
    assert rc.coverage == pytest.approx(1 / 3) and rc.rejection == 0.0


def test_all_failed_group():
    rows = [(1, NAN, NAN, NAN, NAN, NAN, "failed"), (2, NAN, NAN, NAN, NAN, NAN, "failed")]
    df = _table(rows, method="m", estimand="e", true=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = one(summarise(df), method="m")
        rc = one(summarise(df, failures="count"), method="m")
    assert (r.n_used, r.n_failed, r.fail_rate) == (0, 2, 1.0)
    assert math.isnan(r.bias) and math.isnan(r.coverage) and math.isnan(r.rejection)
    # under "count" every rep is a non-covering, non-rejecting failure
    assert rc.coverage == 0.0 and rc.rejection == 0.0 and rc.becoverage == 0.0


def test_nan_p_value_policy():
    rows = [
        (1, 0.1, 0.1, 0.0, 0.3, 0.01, "ok"),
        (2, 0.2, 0.1, 0.0, 0.4, NAN, "ok"),
        (3, 0.3, 0.1, 0.1, 0.5, 0.50, "ok"),
    ]
    df = _table(rows, method="m", estimand="e", true=0.2)
    assert one(summarise(df), method="m").rejection == pytest.approx(1 / 2)
    assert one(summarise(df, failures="count"), method="m").rejection == pytest.approx(1 / 3)


def test_groups_by_and_engine():
    a = main_table()
    b = main_table()
    b["scenario"] = "s2"
    b["estimate"] = b["estimate"] + 1.0
    df = pd.concat([a, b], ignore_index=True)
    df["engine"] = "fast"
    c = main_table()
    c["engine"] = "reference"
    df = pd.concat([df, c], ignore_index=True)
    perf = summarise(df, by=["scenario"])
    assert list(perf.columns[:4]) == ["scenario", "method", "estimand", "engine"]
    assert len(perf) == 3
    assert one(perf, scenario="s2").bias == pytest.approx(1.025)
    assert one(perf, scenario="s1", engine="reference").bias == pytest.approx(0.025)


def test_multiple_methods_estimands_with_true_mcse_per_group():
    a = main_table()
    b = main_table()
    b["method"] = "m2"
    b["estimand"] = "margHR"
    b["true"] = 0.3
    a["true_mcse"] = NAN
    b["true_mcse"] = 0.02
    perf = summarise(pd.concat([a, b], ignore_index=True), by="scenario")
    r1, r2 = one(perf, method="m1"), one(perf, method="m2")
    assert r1.bias_mcse == pytest.approx(EMPSE / 2)
    assert r2.bias == pytest.approx(MEAN - 0.3)
    assert r2.bias_mcse == pytest.approx(math.sqrt(EMPSE**2 / 4 + 0.02**2))


# ---- validation ------------------------------------------------------------------------------
def test_missing_columns_named():
    df = main_table().drop(columns=["se", "p_value"])
    with pytest.raises(ValueError, match=r"'se'.*'p_value'"):
        summarise(df)
    with pytest.raises(ValueError, match="cohort.n"):
        summarise(main_table(), by=["scenario", "cohort.n"])


def test_bad_failures_policy():
    with pytest.raises(ValueError, match=r"'exclude'.*'count'"):
        summarise(main_table(), failures="drop")


def test_bad_alpha_and_status():
    with pytest.raises(ValueError, match="alpha"):
        summarise(main_table(), alpha=1.5)
    df = main_table()
    df.loc[0, "status"] = "error"
    with pytest.raises(ValueError, match="'error'"):
        summarise(df)


def test_true_varying_within_group_raises():
    df = main_table()
    df.loc[df.rep == 2, "true"] = 0.6
    with pytest.raises(ValueError, match="true"):
        summarise(df, by="scenario")
    # fine once the varying factor is a by-column
    df["scenario"] = np.where(df.rep == 2, "s2", "s1")
    assert len(summarise(df, by="scenario")) == 2


def test_duplicated_rep_raises():
    df = pd.concat([main_table(), main_table().iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="duplicated"):
        summarise(df, by="scenario")


# ---- reps_needed -----------------------------------------------------------------------------
def test_reps_needed():
    perf = pd.DataFrame(
        {"empse": [0.3, 0.3, 0.3], "true_mcse": [NAN, 0.006, 0.02], "coverage": [0.95] * 3}
    )
    assert reps_needed(perf, 0.005, "coverage").tolist() == [1900.0] * 3
    bias = reps_needed(perf, 0.01, "bias")
    assert bias.iloc[0] == 900.0
    assert bias.iloc[1] == math.ceil(0.09 / (0.0001 - 0.000036))  # 1407
    assert bias.iloc[2] == math.inf
    assert reps_needed(perf, 0.01, "empse").iloc[0] == 1 + 450
    assert bias.name == "reps_needed_bias"
    with pytest.raises(ValueError, match="measure"):
        reps_needed(perf, 0.01, "power")
    with pytest.raises(ValueError, match="target_mcse"):
        reps_needed(perf, 0.0)


# ---- compare_methods -------------------------------------------------------------------------
def _paired_results(seed=3, n=60):
    rng = np.random.default_rng(seed)
    frames = []
    for scen, theta in (("s1", 0.5), ("s2", 0.0)):
        common = rng.normal(size=n)
        for m, noise in (("A", 0.3), ("B", 0.2)):
            est = theta + 0.1 * common + noise * rng.normal(size=n)
            status = np.where(rng.uniform(size=n) < 0.1, "failed", "ok")
            frames.append(
                pd.DataFrame(
                    {
                        "scenario": scen,
                        "rep": np.arange(n),
                        "method": m,
                        "estimand": "logHR",
                        "estimate": est,
                        "se": 0.3,
                        "ci_low": est - 0.6,
                        "ci_high": est + 0.6,
                        "p_value": 0.5,
                        "status": status,
                        "true": theta,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_compare_methods_against_numpy():
    res = _paired_results()
    out = compare_methods(res, "A", "B", by="scenario")
    assert list(out.columns) == [
        "scenario",
        "estimand",
        "method_a",
        "method_b",
        "n_pairs",
        "rho",
        "bias_diff",
        "bias_diff_mcse",
        "rel_precision",
        "rel_precision_mcse",
        "mse_diff",
        "mse_diff_mcse",
    ]
    for scen in ("s1", "s2"):
        sub = res[res.scenario == scen]
        a = sub[sub.method == "A"].set_index("rep")
        b = sub[sub.method == "B"].set_index("rep")
        ok = (a.status != "failed") & (b.status != "failed")
        xa, xb = a.estimate[ok].to_numpy(), b.estimate[ok].to_numpy()
        theta = a.true.iloc[0]
        n = len(xa)
        sa, sb = np.std(xa, ddof=1), np.std(xb, ddof=1)
        rho = np.corrcoef(xa, xb)[0, 1]
        dmse = (xa - theta) ** 2 - (xb - theta) ** 2
        r = one(out, scenario=scen)
        assert r.n_pairs == n and r.method_a == "A" and r.method_b == "B"
        assert r.rho == pytest.approx(rho)
        assert r.bias_diff == pytest.approx((xa.mean() - theta) - (xb.mean() - theta))
        assert r.bias_diff_mcse == pytest.approx(math.sqrt((sa**2 + sb**2 - 2 * rho * sa * sb) / n))
        assert r.bias_diff_mcse == pytest.approx(np.std(xa - xb, ddof=1) / math.sqrt(n))
        assert r.rel_precision == pytest.approx(100 * ((sa / sb) ** 2 - 1))
        assert r.rel_precision_mcse == pytest.approx(
            200 * (sa / sb) ** 2 * math.sqrt((1 - rho**2) / (n - 1))
        )
        assert r.mse_diff == pytest.approx(dmse.mean())
        assert r.mse_diff_mcse == pytest.approx(np.std(dmse, ddof=1) / math.sqrt(n))


def test_compare_methods_estimand_filter_and_errors():
    res = _paired_results()
    other = res.copy()
    other["estimand"] = "other"
    both = pd.concat([res, other], ignore_index=True)
    assert len(compare_methods(both, "A", "B", by="scenario")) == 4
    assert len(compare_methods(both, "A", "B", by="scenario", estimand="other")) == 2
    with pytest.raises(ValueError, match="'C'"):
        compare_methods(res, "A", "C")
    with pytest.raises(ValueError, match="duplicated"):
        compare_methods(res, "A", "B")  # without by, the two scenarios collide


def test_compare_methods_single_pair_nan():
    res = _paired_results(n=1)
    res["status"] = "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = compare_methods(res, "A", "B", by="scenario")
    assert (out.n_pairs == 1).all()
    assert out.rho.isna().all() and out.rel_precision_mcse.isna().all()
    assert out.bias_diff.notna().all()


# ---- properties ------------------------------------------------------------------------------
_finite = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    est=st.lists(_finite, min_size=1, max_size=12),
    half=st.floats(0.01, 3),
    theta=_finite,
    shift=st.floats(-100, 100, allow_nan=False),
    fail_mask=st.integers(0, 2**12 - 1),
    policy=st.sampled_from(["exclude", "count"]),
)
def test_properties(est, half, theta, shift, fail_mask, policy):
    n = len(est)
    e = np.array(est)
    status = np.where([(fail_mask >> i) & 1 for i in range(n)], "failed", "ok")
    df = pd.DataFrame(
        {
            "rep": np.arange(n),
            "method": "m",
            "estimand": "e",
            "estimate": e,
            "se": half / 2,
            "ci_low": e - half,
            "ci_high": e + half,
            "p_value": np.linspace(0, 1, n),
            "status": status,
            "true": theta,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = one(summarise(df, failures=policy), method="m")
        moved = df.assign(
            estimate=df.estimate + shift,
            ci_low=df.ci_low + shift,
            ci_high=df.ci_high + shift,
            true=df.true + shift,
        )
        r2 = one(summarise(moved, failures=policy), method="m")
    assert r.n_used + r.n_failed == r.n_reps == n
    for col in ("coverage", "becoverage", "rejection", "fail_rate"):
        assert math.isnan(r[col]) or 0.0 <= r[col] <= 1.0
    if r.n_used >= 1:
        assert r2.bias == pytest.approx(r.bias, abs=1e-9)
        assert r.mse == pytest.approx(r.bias**2 + (r.n_used - 1) / r.n_used * _nz(r.empse) ** 2)
    if r.n_used >= 2:
        assert r2.empse == pytest.approx(r.empse, abs=1e-9, rel=1e-6)
        assert r.empse >= 0 and r.bias_mcse >= 0
    if policy == "count":
        assert not math.isnan(r.coverage)


def _nz(x: float) -> float:
    return 0.0 if math.isnan(x) else x
