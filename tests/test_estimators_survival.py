"""Survival estimators (estimators/survival.py): agreement with direct lifelines/statsmodels
calls, recovery of the truth on a large randomized cohort, degenerate cohorts, RNG hygiene."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import restricted_mean_survival_time
from scipy.special import ndtr, ndtri

from palliasim.estimators import build_estimator, engines
from palliasim.estimators.engines import LIFELINES_FIT_OPTIONS
from palliasim.estimators.fast.cox import robust_cov
from palliasim.estimators.survival import (
    DEFAULT_COVARIATES,
    km_medians_resampled,
    km_rmst_variance,
    peto_logrank,
)
from palliasim.sim import ADJUSTMENT_SET, generate, load_scenario, rng_for, truth
from palliasim.sim.cohort import Cohort

CONF = Path(__file__).resolve().parents[1] / "conf" / "estimators"
CONFIGS = ("km_median", "logrank", "cox", "cox_adjusted", "iptw_cox", "rmst")
EPS = ("pfs", "os")
# a smaller Monte Carlo truth than the default 200000 (cold cache: ~4 s instead of ~30 s); its MC SE
# (~0.001 on the log-HR scale) enters the tolerance
TRUTH_N = {"truth.n": 50000}


def from_config(name: str, **override):
    opts = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    kind = opts.pop("kind")
    return build_estimator(kind, name=name, **{**opts, **override})


def rows_by_estimand(rows):
    return {r.estimand: r for r in rows}


@pytest.fixture(scope="module")
def cohort():
    sc = load_scenario("study", {"cohort.n": 205})
    return generate(sc, rng_for(1, sc.key, "data", 0))


@pytest.fixture(scope="module")
def big():
    """One large randomized cohort and its scenario's truth."""
    sc = load_scenario("randomized", TRUTH_N | {"cohort.n": 6000})
    return generate(sc, rng_for(2026, sc.key, "data", 0)), truth(sc)


def modify(c: Cohort, fn) -> Cohort:
    """A copy of ``c`` whose patients frame is ``fn(patients copy)``."""
    return Cohort.from_frames(fn(c.patients.copy()), c.visits.copy())


def surv_frame(c, ep, covs=()):
    p = c.patients
    df = pd.DataFrame(
        {
            "_time": p[f"{ep}_months"].astype(float),
            "_event": p[f"{ep}_event"].astype(float),
            "group": p["group"].astype(float),
        }
    )
    for k in covs:
        df[k] = p[k].astype(float)
    return df


# --------------------------------------------------------------------------- configs and options


def test_config_files_build_and_target_the_documented_estimands():
    for name in CONFIGS:
        text = (CONF / f"{name}.yaml").read_text()
        assert text.splitlines()[0] == f"# @package estimators.{name}"
        est = from_config(name)
        assert est.name == name
        assert all(t.split("_")[0] in EPS for t in est.targets())
    assert from_config("cox").targets() == ("pfs_loghr", "os_loghr")
    assert from_config("cox_adjusted").targets() == ("pfs_loghr_adj", "os_loghr_adj")
    assert tuple(from_config("cox_adjusted").covariates) == ADJUSTMENT_SET
    assert tuple(from_config("iptw_cox").covariates) == ADJUSTMENT_SET
    assert DEFAULT_COVARIATES == ADJUSTMENT_SET
    assert from_config("km_median").targets() == (
        "pfs_median_0",
        "pfs_median_1",
        "pfs_median_diff",
        "os_median_0",
        "os_median_1",
        "os_median_diff",
    )
    sc = load_scenario("study")
    assert from_config("rmst").horizon == sc.params["truth"]["rmst_horizon"]
    assert build_estimator("logrank", endpoints=["os"]).targets() == ("os_loghr",)


@pytest.mark.parametrize(
    "kind, opts",
    [
        ("km_median", {"n_boot": 1}),
        ("cox", {"endpoints": ["dfs"]}),
        ("cox", {"endpoints": []}),
        ("iptw_cox", {"trim": 0.5}),
        ("rmst", {"horizon": -1.0}),
        ("rmst", {"nonsense": 1}),
    ],
)
def test_bad_options_raise_value_error(kind, opts):
    with pytest.raises(ValueError):
        build_estimator(kind, **opts)


def test_unknown_covariate_is_a_configuration_error(cohort):
    with pytest.raises(ValueError, match="unknown covariate"):
        build_estimator("cox", covariates=["age", "shoe_size"]).fit(cohort)


# --------------------------------------------------------------------------- agreement with lifelines


@pytest.mark.parametrize("covs", [(), ADJUSTMENT_SET])
def test_cox_matches_lifelines(cohort, covs):
    rows = rows_by_estimand(build_estimator("cox", covariates=list(covs), alpha=0.1).fit(cohort))
    for ep in EPS:
        cph = CoxPHFitter(alpha=0.1).fit(
            surv_frame(cohort, ep, covs), "_time", "_event", fit_options=LIFELINES_FIT_OPTIONS
        )
        r = rows[f"{ep}_loghr_adj" if covs else f"{ep}_loghr"]
        assert r.status == "ok", r.message
        np.testing.assert_allclose(
            [r.estimate, r.se, r.ci_low, r.ci_high],
            [
                cph.params_["group"],
                cph.standard_errors_["group"],
                *cph.confidence_intervals_.loc["group"],
            ],
            rtol=1e-10,
        )
        # p = 2 Phi(-|z|): d log p / d log z is about z^2 (~10 at p ~ 0.002), so the same
        # agreement in z allows 10x the relative difference in p
        z = abs(r.estimate / r.se)
        np.testing.assert_allclose(
            r.p_value, cph.summary.loc["group", "p"], rtol=1e-10 * max(1.0, z * z)
        )
        assert r.n_used == cohort.n


@pytest.mark.parametrize("trim", [0.0, 0.05])
def test_iptw_cox_matches_statsmodels_and_lifelines(cohort, trim):
    rows = rows_by_estimand(build_estimator("iptw_cox", trim=trim).fit(cohort))
    for ep in EPS:
        df = surv_frame(cohort, ep, ADJUSTMENT_SET)
        a = df["group"].to_numpy()
        x = sm.add_constant(df[list(ADJUSTMENT_SET)].to_numpy())
        ps = sm.Logit(a, x).fit(disp=0, tol=1e-10).predict(x)
        w = np.where(a == 1, a.mean() / ps, (1 - a.mean()) / (1 - ps))
        if trim:
            w = np.clip(w, *np.quantile(w, [trim, 1 - trim]))
        fit_df = df[["_time", "_event", "group"]].assign(_w=w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-integer weights: the robust SE is computed here
            cph = CoxPHFitter().fit(
                fit_df, "_time", "_event", weights_col="_w", fit_options=LIFELINES_FIT_OPTIONS
            )
        t, e = df["_time"].to_numpy(), df["_event"].to_numpy()
        b = cph.params_.to_numpy()
        # R's coxph(robust = TRUE) sandwich, Efron ties (validated against R's coxscore.c in
        # tests/test_fast_engine.py); lifelines' own robust=True ignores ties
        se = np.sqrt(robust_cov(t, e, a[:, None], b, cph.variance_matrix_.to_numpy(), w)[0, 0])
        r = rows[f"{ep}_loghr"]
        assert r.status == "ok", r.message
        z = ndtri(0.975)
        np.testing.assert_allclose(
            [r.estimate, r.se, r.ci_low, r.ci_high],
            [b[0], se, b[0] - z * se, b[0] + z * se],
            rtol=1e-8,
        )
        assert r.p_value == pytest.approx(2 * ndtr(-abs(b[0] / se)), rel=1e-8)


def _peto_loop(t, e, g):
    o_e = v = 0.0
    for s in np.unique(t[e > 0]):
        risk = t >= s
        n, n1 = risk.sum(), (risk & (g == 1)).sum()
        d, d1 = ((t == s) & (e > 0)).sum(), ((t == s) & (e > 0) & (g == 1)).sum()
        o_e += d1 - d * n1 / n
        if n > 1:
            v += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return o_e, v


def test_logrank_matches_lifelines_and_peto(cohort):
    rows = rows_by_estimand(build_estimator("logrank").fit(cohort))
    for ep in EPS:
        df = surv_frame(cohort, ep)
        t, e, g = (df[k].to_numpy() for k in ("_time", "_event", "group"))
        res = logrank_test(t[g == 1], t[g == 0], e[g == 1], e[g == 0])
        o_e, v = _peto_loop(t, e, g)
        np.testing.assert_allclose(peto_logrank(t, e, g), (o_e, v), rtol=1e-10)
        r = rows[f"{ep}_loghr"]
        assert r.status == "ok", r.message
        np.testing.assert_allclose(
            [r.estimate, r.se, r.p_value], [o_e / v, v**-0.5, res.p_value], rtol=1e-10
        )
        # the Peto Wald z is the log-rank z
        np.testing.assert_allclose((r.estimate / r.se) ** 2, res.test_statistic, rtol=1e-8)
    # ties: rounded times give many tied event times
    df = surv_frame(cohort, "pfs")
    t, e, g = np.round(df["_time"].to_numpy()), df["_event"].to_numpy(), df["group"].to_numpy()
    o_e, v = peto_logrank(t, e, g)
    res = logrank_test(t[g == 1], t[g == 0], e[g == 1], e[g == 0])
    np.testing.assert_allclose(o_e**2 / v, res.test_statistic, rtol=1e-8)


def _km_median_ref(t, e, alpha=0.05):
    """lifelines' curve and bands with R's median rule (the reference engine)."""
    return engines.km_median(t, e, alpha, engine="reference")


def test_km_median_matches_lifelines_and_its_bootstrap(cohort):
    n_boot, alpha = 12, 0.1
    rows = rows_by_estimand(
        build_estimator("km_median", n_boot=n_boot, alpha=alpha).fit(
            cohort, np.random.default_rng(42)
        )
    )
    p = cohort.patients
    g = p["group"].to_numpy()
    rng = np.random.default_rng(42)  # the documented draws: group 0 then group 1, (n_boot, n_g)
    idx = {a: rng.integers(0, (g == a).sum(), size=(n_boot, (g == a).sum())) for a in (0, 1)}
    for ep in EPS:
        t, e = p[f"{ep}_months"].to_numpy(float), p[f"{ep}_event"].to_numpy(float)
        med, boot = {}, {}
        for a in (0, 1):
            ta, ea = t[g == a], e[g == a]
            m, lo, hi = _km_median_ref(ta, ea, alpha)
            med[a] = m
            boot[a] = np.array([_km_median_ref(ta[i], ea[i]).median for i in idx[a]])
            r = rows[f"{ep}_median_{a}"]
            assert r.status == "ok", r.message
            np.testing.assert_allclose(
                [r.estimate, r.ci_low, r.ci_high, r.se],
                [m, lo, hi, np.std(boot[a], ddof=1)],
                rtol=1e-12,
            )
            assert np.isnan(r.p_value)
        se = np.std(boot[1] - boot[0], ddof=1)
        d = med[1] - med[0]
        z = ndtri(1 - alpha / 2)
        r = rows[f"{ep}_median_diff"]
        np.testing.assert_allclose(
            [r.estimate, r.se, r.ci_low, r.ci_high, r.p_value],
            [d, se, d - z * se, d + z * se, 2 * ndtr(-abs(d / se))],
            rtol=1e-12,
        )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    ties=st.booleans(),
    cens=st.floats(0.0, 0.9),
)
def test_resampled_km_medians_equal_the_engines(seed, n, ties, cens):
    rng = np.random.default_rng(seed)
    t = rng.exponential(5.0, n)
    t = np.ceil(t) if ties else t
    e = (rng.random(n) > cens).astype(float)
    idx = rng.integers(0, n, size=(4, n))
    got = km_medians_resampled(t, e, idx)
    want = [_km_median_ref(t[i], e[i]).median for i in idx]
    np.testing.assert_array_equal(got, want)


def test_resampled_km_medians_beyond_the_first_pass():
    # the first pass stops where the data's curve is down to 0.3 (t = 28 here); a resample of
    # late times only, or of censored times only, is finished over all event times
    t = np.arange(1.0, 41.0)
    e = np.ones(40)
    e[35:] = 0
    idx = np.array(
        [np.arange(40), np.repeat(np.arange(28, 40), 4)[:40], np.repeat(np.arange(35, 40), 8)]
    )
    got = km_medians_resampled(t, e, idx)
    want = [_km_median_ref(t[i], e[i]).median for i in idx]
    np.testing.assert_array_equal(got, want)
    assert got[1] > 28 and got[2] == np.inf


def test_km_median_exactly_half_takes_rs_midpoint():
    t, e = np.array([1.0, 1, 2, 2, 3, 3]), np.ones(6)  # S(1) = 4/6, S(2) = 2/6: median 2
    t2, e2 = np.array([1.0, 1, 1, 2, 2, 2]), np.ones(6)  # S = 0.5 on [1, 2): median 1.5
    t3, e3 = np.array([1.0, 1, 1, 2, 2, 4]), np.r_[np.ones(3), 0, 0, 0]  # flat to the end
    for tt, ee, want in ((t, e, 2.0), (t2, e2, 1.5), (t3, e3, 2.5)):
        assert km_medians_resampled(tt, ee, np.arange(6)[None])[0] == want
        assert _km_median_ref(tt, ee).median == want


def _rmst_var_loop(t, e, tau):
    """Greenwood-type variance by brute force over lifelines' survival function."""
    sf = KaplanMeierFitter().fit(t, e).survival_function_.iloc[:, 0]
    grid = np.append(sf.index[sf.index < tau].to_numpy(), tau)
    total = 0.0
    for s in np.unique(t[(e > 0) & (t <= tau)]):
        area = sum(sf.loc[a] * (b - a) for a, b in zip(grid[:-1], grid[1:]) if a >= s)
        n, d = (t >= s).sum(), ((t == s) & (e > 0)).sum()
        if n > d:
            total += area**2 * d / (n * (n - d))
    return total


def test_rmst_matches_lifelines_and_greenwood(cohort):
    rows = rows_by_estimand(build_estimator("rmst", horizon=12.0).fit(cohort))
    p = cohort.patients
    g = p["group"].to_numpy()
    for ep in EPS:
        t, e = p[f"{ep}_months"].to_numpy(float), p[f"{ep}_event"].to_numpy(float)
        est, var = [], []
        for a in (0, 1):
            kmf = KaplanMeierFitter().fit(t[g == a], e[g == a])
            est.append(restricted_mean_survival_time(kmf, t=12.0))
            var.append(_rmst_var_loop(t[g == a], e[g == a], 12.0))
        r = rows[f"{ep}_rmst_diff"]
        assert r.status == "ok", r.message
        np.testing.assert_allclose(r.estimate, est[1] - est[0], rtol=1e-12)
        np.testing.assert_allclose(r.se, np.sqrt(sum(var)), rtol=1e-10)


def test_rmst_variance_without_censoring_is_the_plugin_variance_over_n():
    rng = np.random.default_rng(3)
    t = np.round(rng.exponential(6.0, 80), 1)  # with ties
    for tau in (4.0, 12.0):
        kmf = KaplanMeierFitter().fit(t, np.ones_like(t))
        m = np.minimum(t, tau)
        np.testing.assert_allclose(restricted_mean_survival_time(kmf, t=tau), m.mean(), rtol=1e-12)
        np.testing.assert_allclose(km_rmst_variance(kmf, tau), m.var() / t.size, rtol=1e-10)


def test_rmst_se_matches_the_sampling_sd():
    """lifelines' return_variance is Var[min(T, tau)], about n times too large as an SE^2."""
    rng = np.random.default_rng(11)
    ests, ses = [], []
    for _ in range(200):
        n = 150
        g = np.repeat([0.0, 1.0], n // 2)
        tt = rng.exponential(np.where(g == 1, 9.0, 6.0))
        c = rng.uniform(2, 30, n)
        p = pd.DataFrame(
            {
                "id": np.arange(n),
                "group": g,
                "pfs_months": np.minimum(tt, c),
                "pfs_event": (tt <= c).astype(int),
            }
        )
        r = build_estimator("rmst", endpoints=["pfs"], horizon=6.0).fit(
            Cohort.from_frames(p, pd.DataFrame({"id": []}))
        )[0]
        ests.append(r.estimate)
        ses.append(r.se)
    sd = np.std(ests, ddof=1)
    assert abs(np.mean(ses) / sd - 1) < 0.15, (np.mean(ses), sd)
    true = 9.0 * (1 - np.exp(-6.0 / 9.0)) - 6.0 * (1 - np.exp(-1.0))  # exponential RMSTs at tau = 6
    assert abs(np.mean(ests) - true) < 4 * sd / np.sqrt(len(ests))


# --------------------------------------------------------------------------- recovery of the truth


def test_recovery_of_the_truth_on_a_large_randomized_cohort(big):
    c, tr = big
    ests = [from_config(n) for n in CONFIGS if n != "km_median"]
    ests.append(from_config("km_median", n_boot=60))
    for est in ests:
        rows = est.fit(c, np.random.default_rng(7))
        assert {r.estimand for r in rows} == set(est.targets())
        for r in rows:
            assert r.status == "ok", (est.name, r.estimand, r.message)
            tol = 4 * np.sqrt(r.se**2 + tr.mcse(r.estimand) ** 2)
            assert abs(r.estimate - tr[r.estimand]) <= tol, (
                est.name,
                r.estimand,
                r.estimate,
                tr[r.estimand],
                tol,
            )
            assert r.ci_low < r.estimate < r.ci_high


# --------------------------------------------------------------------------- degenerate cohorts


def _all_estimators():
    return [from_config(n, **({"n_boot": 20} if n == "km_median" else {})) for n in CONFIGS]


def _fit_quietly(est, c):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = est.fit(c, np.random.default_rng(0))
    assert not caught, [str(w.message) for w in caught]
    return rows_by_estimand(rows)


def _censor_all(p):
    p["pfs_event"] = 0
    p["os_event"] = 0
    return p


def test_all_censored_fails_every_row_with_a_message(cohort):
    c = modify(cohort, _censor_all)
    for est in _all_estimators():
        for r in _fit_quietly(est, c).values():
            assert r.status == "failed" and np.isnan(r.estimate)
            assert (
                "censored" in r.message
                or "no pfs events" in r.message
                or "no os events" in r.message
            ), r.message


def test_no_events_in_one_arm_fails_that_endpoint_only(cohort):
    def fn(p):
        p.loc[p["group"] == 1, "pfs_event"] = 0
        return p

    c = modify(cohort, fn)
    for est in _all_estimators():
        rows = _fit_quietly(est, c)
        for name, r in rows.items():
            if name.startswith("pfs") and name != "pfs_median_0":
                assert r.status == "failed" and "no pfs events in group 1" in r.message, (
                    est.name,
                    r,
                )
            else:
                assert r.status == "ok", (est.name, r)


def test_one_arm_empty(cohort):
    c = modify(cohort, lambda p: p[p["group"] == 0])
    for est in _all_estimators():
        for name, r in _fit_quietly(est, c).items():
            if name.endswith("median_0"):
                assert r.status == "ok"
            else:
                assert r.status == "failed" and "no patients in group 1" in r.message, (est.name, r)


def test_median_not_reached(cohort):
    def fn(p):
        g1 = p["group"] == 1
        cut = p.loc[g1, "pfs_months"].quantile(0.2)
        p.loc[g1 & (p["pfs_months"] > cut), "pfs_event"] = 0
        return p

    rows = _fit_quietly(from_config("km_median", n_boot=20), modify(cohort, fn))
    assert rows["pfs_median_1"].status == "failed"
    assert rows["pfs_median_1"].message.startswith("median not reached in group 1")
    assert rows["pfs_median_diff"].status == "failed"
    assert "median not reached in group 1" in rows["pfs_median_diff"].message
    assert all(
        rows[k].status == "ok"
        for k in ("pfs_median_0", "os_median_0", "os_median_1", "os_median_diff")
    )


def test_rmst_horizon_beyond_follow_up(cohort):
    rows = _fit_quietly(build_estimator("rmst", horizon=500.0), cohort)
    for r in rows.values():
        assert r.status == "failed" and "beyond the last" in r.message


def test_convergence_trouble_becomes_a_status(cohort):
    c = modify(cohort, lambda p: p.assign(const=1.0, same_as_group=p["group"].astype(float)))
    rows = _fit_quietly(build_estimator("cox", covariates=["age", "const"]), c)
    for r in rows.values():
        assert r.status == "failed" and "singular information matrix" in r.message, r
        assert "const is constant" in r.message
    rows = _fit_quietly(build_estimator("iptw_cox", covariates=["age", "same_as_group"]), c)
    for r in rows.values():
        assert r.status == "failed" and "positivity" in r.message, r


def test_missing_covariates_use_complete_cases(cohort):
    def fn(p):
        p["age"] = p["age"].astype(float)
        p.loc[:9, "age"] = np.nan
        return p

    c = modify(cohort, fn)
    for name in ("cox_adjusted", "iptw_cox"):
        for r in _fit_quietly(from_config(name), c).values():
            assert r.status == "ok" and r.n_used == cohort.n - 10
            assert "10 rows with missing covariates dropped" in r.message


# --------------------------------------------------------------------------- RNG hygiene


def test_global_rng_untouched_and_no_warnings_escape(cohort):
    before = np.random.get_state()  # noqa: NPY002 (the global state is the point)
    for est in _all_estimators():
        _fit_quietly(est, cohort)
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_km_bootstrap_is_deterministic_given_the_rng(cohort):
    est = build_estimator("km_median", n_boot=30)
    a = [r.as_dict() | {"seconds": 0} for r in est.fit(cohort, np.random.default_rng(5))]
    b = [r.as_dict() | {"seconds": 0} for r in est.fit(cohort, np.random.default_rng(5))]
    c = [r.as_dict() | {"seconds": 0} for r in est.fit(cohort, np.random.default_rng(6))]
    assert a == b
    assert [x["se"] for x in a] != [x["se"] for x in c]
    assert [x["estimate"] for x in a] == [x["estimate"] for x in c]
    with pytest.raises(ValueError, match="rng"):
        est.fit(cohort, None)


def test_bootstrap_resamples_without_a_median_are_excluded_and_counted():
    # group 1: 40 patients, events at the 21 earliest times, then censored: S ends at 19/40
    t = np.arange(1.0, 41.0)
    p = pd.DataFrame(
        {
            "id": np.arange(80),
            "group": np.repeat([0, 1], 40),
            "pfs_months": np.concatenate([t, t]),
            "pfs_event": np.concatenate([np.ones(40), (t <= 21).astype(float)]),
        }
    )
    c = Cohort.from_frames(p, pd.DataFrame({"id": []}))
    rows = _fit_quietly(build_estimator("km_median", n_boot=100, endpoints=["pfs"]), c)
    assert rows["pfs_median_1"].estimate == 20.5  # S = 20/40 exactly on [20, 21): midpoint
    for k in ("pfs_median_1", "pfs_median_diff"):
        r = rows[k]
        assert r.status == "warning" and "bootstrap resamples (excluded)" in r.message, r
        assert np.isfinite(r.estimate) and np.isfinite(r.se) and r.ci_low < r.ci_high
    assert rows["pfs_median_0"].status == "ok"
