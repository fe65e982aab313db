"""task=power: simulated power against the formulas, adaptive replication, required n, the CLI."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from palliasim.estimators.base import REGISTRY, Estimate, Estimator, register
from palliasim.experiments.api import runner_settings
from palliasim.experiments.config import compose
from palliasim.experiments.engine.design import expand_design
from palliasim.experiments.planning import adaptive, inputs, rejection, sample_size
from palliasim.experiments.planning import formulas as AP
from palliasim.experiments.planning.scenarios import scenarios
from palliasim.experiments.settings import Settings
from palliasim.sim import load_scenario

Z975 = 1.959963984540054


@pytest.fixture(autouse=True, scope="module")
def _private_truth_cache(tmp_path_factory):
    """The truths of this module's small scenarios go to a temporary cache, not ~/.cache."""
    old = os.environ.get("PALLIASIM_CACHE")
    os.environ["PALLIASIM_CACHE"] = str(tmp_path_factory.mktemp("truth_cache"))
    yield
    if old is None:
        os.environ.pop("PALLIASIM_CACHE", None)
    else:
        os.environ["PALLIASIM_CACHE"] = old


# ---- new analytic functions: published / hand values -----------------------------------------
def test_schoenfeld_published_247_events():
    assert math.ceil(AP.schoenfeld_events(0.7, 0.05, 0.8, 0.5)) == 247


def test_prob_event_exponential_closed_form():
    # no drop-out: 1 - (exp(-lam f) - exp(-lam (a + f))) / (lam a)  (Lachin & Foulkes 1986)
    lam, a, f = math.log(2) / 12, 24.0, 12.0
    hand = 1 - (math.exp(-lam * f) - math.exp(-lam * (a + f))) / (lam * a)
    assert AP.prob_event_exponential(lam, 1.0 - 1e-12, a, f) == pytest.approx(hand, rel=1e-9)
    # matches the numerical integral of prob_event_weibull(shape = 1), with drop-out and 2:1
    for hr, mu, p in ((0.7, 0.0, 0.5), (0.6, 0.02, 2 / 3), (1.3, 0.01, 0.3)):
        exact = AP.prob_event_exponential(0.05, hr, 30, 6, mu, p)
        assert exact == pytest.approx(AP.prob_event_weibull(1, 20, hr, 30, 6, mu, p), abs=1e-9)
    # accrual 0: everyone followed for f months
    assert AP.prob_event_exponential(0.1, 0.5, 0, 10, 0.0, 0.5) == pytest.approx(
        0.5 * (1 - math.exp(-1)) + 0.5 * (1 - math.exp(-0.5)), rel=1e-12
    )


def test_prob_event_arms_and_lifelines():
    s0 = lambda t: math.exp(-((t / 15) ** 1.3))  # noqa: E731
    p0, p1 = AP.prob_event_arms(s0, 0.75, 36, 12, 0.01)
    assert 0.4 * p0 + 0.6 * p1 == pytest.approx(
        AP.prob_event(s0, 0.75, 36, 12, 0.01, 0.6), abs=1e-10
    )
    assert AP.prob_event_arm(s0, 36, 12, 0.01) == pytest.approx(p0, abs=1e-12)
    assert p1 < p0
    # lifelines power_under_cph = Freedman with d = n_exp p_exp + n_con p_con
    pw = AP.lifelines_power_cph(150, 150, p1, p0, 0.75)
    assert pw == pytest.approx(AP.freedman_power(0.75, 150 * (p0 + p1)), abs=1e-12)


def test_hsieh_power_inverts_hsieh_n():
    for pbar, orr, b in ((0.3, 1.8, 0.4), (0.69, 2.3, 0.5), (0.2, 0.5, 0.5)):
        n = AP.hsieh_logistic_n(pbar, orr, 0.05, 0.9, b)
        assert AP.hsieh_logistic_power(n, pbar, orr, 0.05, b) == pytest.approx(0.9, abs=1e-10)
        p0, p1 = AP.hsieh_logistic_probs(pbar, orr, b)
        assert AP.hsieh_logistic_power(250, pbar, orr, 0.05, b) == pytest.approx(
            AP.two_proportions_power(250, p0, p1, 0.05, b), abs=1e-12
        )


# ---- rejection rates, CI, isotonic, required n ------------------------------------------------
def test_clopper_pearson_published():
    # R: binom.test(5, 10)$conf.int = 0.1870860 0.8129140; binom.test(0, 10): 0 0.3084971
    lo, hi = rejection.clopper_pearson(5, 10)
    assert (lo, hi) == pytest.approx((0.1870860, 0.8129140), abs=1e-7)
    lo, hi = rejection.clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.3084971, abs=1e-7)
    lo, hi = rejection.clopper_pearson(np.array([10, 3]), np.array([10, 40]))
    assert lo[0] == pytest.approx(0.6915029, abs=1e-7) and hi[0] == 1.0


def test_rejection_table_counts_failures_as_non_rejections():
    df = pd.DataFrame(
        {
            "scenario_key": ["a"] * 5,
            "method": ["m"] * 5,
            "estimand": ["e"] * 5,
            "p_value": [0.01, 0.2, np.nan, 0.001, 0.04],
            "status": ["ok", "ok", "failed", "failed", "warning"],
        }
    )
    t = rejection.rejection_table(df, 0.05).iloc[0]
    assert (t["reps"], t["rejections"], t["n_failed"]) == (5, 2, 2)
    assert t["power"] == pytest.approx(0.4)
    assert t["power_mcse"] == pytest.approx(math.sqrt(0.4 * 0.6 / 5))


def test_isotonic_pava():
    assert sample_size.isotonic([1, 3, 2, 4]).tolist() == [1, 2.5, 2.5, 4]
    assert sample_size.isotonic([0.5, 0.4, 0.3], [1, 1, 2]).tolist() == pytest.approx([0.375] * 3)


def _curve(n, c=0.12):
    return stats.norm.cdf(c * np.sqrt(n) - Z975)


def test_required_n_on_a_synthetic_monotone_curve():
    n = np.array([100, 200, 300, 400, 500, 600])
    reps = np.full(n.size, 4000)
    k = np.round(reps * _curve(n)).astype(int)
    k[3] -= 60  # a non-monotone wiggle: the isotonic fit pools it away
    true80 = ((stats.norm.ppf(0.8) + Z975) / 0.12) ** 2  # 545
    r = sample_size.required_n(n, k, reps, 0.8, n_boot=300)
    assert r["how"] == "interpolated"
    assert r["n"] == pytest.approx(true80, rel=0.03)
    assert r["ci_low"] < true80 < r["ci_high"]
    # beyond the grid: probit-on-sqrt(n) extrapolation, flagged
    true90 = ((stats.norm.ppf(0.9) + Z975) / 0.12) ** 2
    r9 = sample_size.required_n(n, k, reps, 0.9, n_boot=300)
    assert r9["how"].startswith("extrapolated above")
    assert r9["n"] == pytest.approx(true90, rel=0.06)
    # rejection never above alpha: never reached
    flat = sample_size.required_n(n, np.full(n.size, 100), reps, 0.8, n_boot=50)
    assert flat["n"] == math.inf and flat["how"].startswith("not reached")
    # already above the target at the smallest n: the curve through it, below the grid
    lo = sample_size.required_n(n, k, reps, 0.15, n_boot=50)
    true15 = ((stats.norm.ppf(0.15) + Z975) / 0.12) ** 2  # 59
    assert lo["how"] == "extrapolated below the grid"
    assert lo["n"] == pytest.approx(true15, rel=0.1)


# ---- adaptive replication ---------------------------------------------------------------------
if "toy_pvalue" not in REGISTRY:

    @register("toy_pvalue")
    @dataclass
    class ToyPValue(Estimator):
        """p = 0 (always rejects) or a uniform draw (rejects 5%), for the stopping rule."""

        mode: str = "reject"

        def targets(self):
            return ("nrs_diff_w12",)

        def _fit(self, cohort, rng):
            p = 0.0 if self.mode == "reject" else float(rng.random())
            return [Estimate(self.name, "nrs_diff_w12", estimate=1.0, se=1.0, p_value=p)]


def test_adaptive_loop_stops_at_target_or_reps_max(tmp_path):
    pts = expand_design("randomized", {"truth.n": 4000}, {"cohort.n": [40]})
    specs = {
        "always": {"kind": "toy_pvalue", "mode": "reject"},
        "uniform": {"kind": "toy_pvalue", "mode": "uniform"},
    }
    run = adaptive.adaptive_power(
        pts,
        specs,
        alpha=0.05,
        out_dir=tmp_path / "run",
        ci_halfwidth=0.02,
        reps_start=50,
        reps_step=50,
        reps_max=150,
        runner=runner_settings(seed=3, n_jobs=1, chunk_size=25, quiet=True),
    )
    key = pts[0].key
    # k = n: half-width (1 - 0.025^(1/n)) / 2 is 0.036 at 50 and 0.018 at 100 -> stops at 100
    assert run.reps[(key, "always")] == 100 and run.stopped[(key, "always")] == "target"
    assert run.reps[(key, "uniform")] == 150 and run.stopped[(key, "uniform")] == "reps_max"
    counts = run.results.groupby("method")["rep"].nunique().to_dict()
    assert counts == {"always": 100, "uniform": 150}
    # a rerun in the same directory computes nothing new and gives the same rows
    again = adaptive.adaptive_power(
        pts,
        specs,
        alpha=0.05,
        out_dir=tmp_path / "run",
        ci_halfwidth=0.02,
        reps_start=50,
        reps_step=50,
        reps_max=150,
        runner=runner_settings(seed=3, n_jobs=1, quiet=True),
    )
    a = run.results.sort_values(["method", "rep"])["p_value"].to_numpy()
    b = again.results.sort_values(["method", "rep"])["p_value"].to_numpy()
    assert np.array_equal(a, b)


def test_next_reps_grows_geometrically_in_multiples_of_the_step():
    seq, r = [200], 200
    while r < 2000:
        r = adaptive.next_reps(r, 200, 2.0, 2000)
        seq.append(r)
    assert seq == [200, 400, 800, 1600, 2000]
    assert adaptive.next_reps(200, 200, 1.0, 2000) == 400  # growth 1: reps_step only
    assert adaptive.next_reps(100, 30, 2.0, 1000) == 210  # 2 x 100 rounded up to a multiple
    assert adaptive.next_reps(1900, 200, 2.0, 2000) == 2000  # capped


def test_adaptive_loop_with_growth_takes_fewer_steps_and_the_same_rows(tmp_path):
    """reps_growth changes only how many steps reach a pair's reps, never its rows."""
    pts = expand_design("randomized", {"truth.n": 4000}, {"cohort.n": [40]})
    specs = {"uniform": {"kind": "toy_pvalue", "mode": "uniform"}}
    common = dict(
        alpha=0.05,
        ci_halfwidth=0.01,
        reps_start=25,
        reps_step=25,
        reps_max=200,
        runner=runner_settings(seed=3, n_jobs=1, chunk_size=25, quiet=True),
    )
    plain = adaptive.adaptive_power(pts, specs, out_dir=tmp_path / "a", **common)
    grown = adaptive.adaptive_power(pts, specs, out_dir=tmp_path / "b", reps_growth=2.0, **common)
    key = pts[0].key
    assert plain.reps[(key, "uniform")] == grown.reps[(key, "uniform")] == 200
    assert len(plain.rounds) == 8 and len(grown.rounds) == 4  # 25, 50, 100, 200
    a = plain.results.sort_values("rep")["p_value"].to_numpy()
    assert np.array_equal(a, grown.results.sort_values("rep")["p_value"].to_numpy())
    with pytest.raises(ValueError, match="reps_growth"):
        adaptive.adaptive_power(pts, specs, out_dir=tmp_path / "c", reps_growth=0.5, **common)


def test_adaptive_loop_stops_outside_the_precision_band(tmp_path):
    pts = expand_design("randomized", {"truth.n": 4000}, {"cohort.n": [40]})
    specs = {
        "always": {"kind": "toy_pvalue", "mode": "reject"},
        "uniform": {"kind": "toy_pvalue", "mode": "uniform"},
    }
    run = adaptive.adaptive_power(
        pts,
        specs,
        alpha=0.05,
        out_dir=tmp_path / "run",
        ci_halfwidth=0.02,
        reps_start=50,
        reps_step=50,
        reps_max=150,
        precision_band=(0.7, 0.95),
        runner=runner_settings(seed=3, n_jobs=1, chunk_size=25, quiet=True),
    )
    key = pts[0].key
    # power ~0.05: its CI (upper ~0.2 at 50 reps) is below the band -> no reps after the first
    assert run.reps[(key, "uniform")] == 50 and run.stopped[(key, "uniform")] == "outside band"
    # power 1: CI 0.93-1 at 50 reps overlaps the band -> on to the half-width, as without it
    assert run.reps[(key, "always")] == 100 and run.stopped[(key, "always")] == "target"
    # the rows are those of the run without the band (the stopping path never changes them)
    plain = adaptive.adaptive_power(
        pts,
        specs,
        alpha=0.05,
        out_dir=tmp_path / "run",
        ci_halfwidth=0.02,
        reps_start=50,
        reps_step=50,
        reps_max=150,
        runner=runner_settings(seed=3, n_jobs=1, chunk_size=25, quiet=True),
    )
    for m in specs:
        got = run.results[run.results["method"] == m].sort_values("rep")
        full = plain.results[plain.results["method"] == m].sort_values("rep")
        want = full[full["rep"] < run.reps[(key, m)]]
        assert np.array_equal(got["p_value"].to_numpy(), want["p_value"].to_numpy())
    with pytest.raises(ValueError, match="precision_band"):
        adaptive.adaptive_power(
            pts,
            specs,
            alpha=0.05,
            out_dir=tmp_path / "bad",
            precision_band=(0.9, 0.1),
            runner=runner_settings(seed=3, n_jobs=1, quiet=True),
        )


def test_point_specs_restricting_survival_endpoints_keep_the_rows(tmp_path):
    """task=power fits a survival test only on the endpoint of each point's grid
    (point_specs): the rows are those of the test fitted on both endpoints."""
    pts = expand_design("randomized", {"truth.n": 4000}, {"cohort.n": [80]})
    key = pts[0].key
    specs = {"logrank": {"kind": "logrank", "endpoints": ["pfs", "os"]}}
    common = dict(
        alpha=0.05,
        needed={(key, "logrank"): ("os_loghr",)},
        ci_halfwidth=0.2,
        reps_start=20,
        reps_step=20,
        reps_max=20,
        runner=runner_settings(seed=4, n_jobs=1, chunk_size=10, quiet=True),
    )
    both = adaptive.adaptive_power(pts, specs, out_dir=tmp_path / "both", **common)
    own = {(key, "logrank"): {"kind": "logrank", "endpoints": ["os"]}}
    one = adaptive.adaptive_power(pts, specs, out_dir=tmp_path / "one", point_specs=own, **common)
    raw = pd.read_parquet(tmp_path / "one" / "results.parquet")
    assert set(raw["estimand"]) == {"os_loghr"}  # the PFS fits were not made
    cols = ["rep", "estimate", "se", "p_value", "status"]
    a = both.results.sort_values("rep")[cols].reset_index(drop=True)
    b = one.results.sort_values("rep")[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_required_n_bootstrap_rows_equal_one_at_a_time():
    """The batched bootstrap (every redraw in one call) gives each redraw's own result, in
    every branch (interpolated, extrapolated below / above, not reached)."""
    rng = np.random.default_rng(5)
    nv = np.array([100.0, 200, 300, 400, 500])
    reps = np.array([200.0, 400, 2000, 2000, 600])
    for curve in (
        [0.3, 0.5, 0.7, 0.85, 0.93],
        [0.04, 0.05, 0.06, 0.05, 0.07],
        [0.85, 0.9, 0.95, 0.97, 0.99],
        [0.1, 0.15, 0.2, 0.3, 0.35],
    ):
        k = rng.binomial(reps.astype(int), np.array(curve)[None, :], size=(60, 5)).astype(float)
        batch, hows = sample_size._n_at_rows(nv, k, reps, 0.8, 0.05)
        for row, n_b, how_b in zip(k, batch, hows):
            n_1, how_1 = sample_size._n_at(nv, row, reps, 0.8, 0.05)
            assert how_1 == how_b
            assert n_1 == pytest.approx(n_b, rel=1e-12) or (np.isinf(n_1) and np.isinf(n_b))


# ---- simulation against Schoenfeld under the formula's assumptions -----------------------------
def test_logrank_power_matches_schoenfeld_under_its_assumptions(tmp_path):
    """Exponential OS, 1:1 complete randomization, no covariate or frailty effect on death,
    administrative censoring only (uniform accrual + minimum follow-up): the log-rank rejection
    rate is within 3 MCSE of Schoenfeld's power with P(event) in closed form."""
    hr, scale = 0.7, 14.655
    over = {
        "survival.os.shape": 1.0,
        "survival.os.scale": scale,
        "survival.os.log_hr": math.log(hr),
        "survival.os.u_effect": 0.0,
        "survival.os.ecog": 0.0,
        "survival.os.visceral": 0.0,
        "survival.os.age": 0.0,
        "survival.censoring.ltfu_rate": 0.0,
        "confounding.strength": 0.0,
        "treatment.allocation": 0.5,
        "treatment.scheme": "complete",
        "truth.n": 20000,
    }
    sc = load_scenario("randomized", over)
    cens = sc.params["survival"]["censoring"]
    a, f = cens["accrual_months"], cens["min_followup_months"]
    p_event = AP.prob_event_exponential(1 / scale, hr, a, f, 0.0, 0.5)
    # the measured formula input agrees with the closed form
    inp = inputs.design_inputs(sc, n_big=60_000, seed=5)
    assert inp["os"]["p_event"] == pytest.approx(p_event, abs=0.006)
    assert inp["os"]["hr"] == pytest.approx(hr, abs=0.02)
    pts = expand_design(sc, None, {"cohort.n": [150, 300]})
    run = adaptive.adaptive_power(
        pts,
        {"logrank": {"kind": "logrank", "endpoints": ["os"]}},
        alpha=0.05,
        out_dir=tmp_path / "run",
        ci_halfwidth=0.2,
        reps_start=400,
        reps_step=100,
        reps_max=400,
        runner=runner_settings(seed=11, n_jobs=2, quiet=True),
    )
    tab = rejection.rejection_table(run.results, 0.05)
    n_of = {p.key: p.scenario.n for p in pts}
    for _, r in tab.iterrows():
        n = n_of[r["scenario_key"]]
        formula = AP.power_logrank_n(n, hr, 0.05, 0.5, p_event, "schoenfeld", both_tails=True)
        assert r["reps"] == 400
        assert abs(r["power"] - formula) <= 3 * r["power_mcse"], (n, r["power"], formula)
        assert 0.3 < formula < 0.95  # an informative range, not a saturated one


# ---- config: scenario resolution -------------------------------------------------------------
def _plain(*overrides):
    return compose(["task=power", *overrides])


def test_scenarios_default_to_randomized_with_overrides():
    plain = _plain("survival.os.log_hr=-0.3", "missingness.target_week12=0.2")
    cfg = Settings.from_config(plain).task
    alt, null, _ = scenarios(plain, cfg)
    assert alt.name == "randomized" and alt.get("treatment.scheme") == "complete"
    assert alt.get("survival.os.log_hr") == -0.3
    assert alt.get("missingness.target_week12") == 0.2
    assert null.name == "null"
    assert null.get("survival.os.log_hr") == 0.0  # the null preset's own key wins
    assert null.get("missingness.target_week12") == 0.2  # other overrides carry over
    with pytest.raises(Exception, match="task.n_grid"):
        Settings.from_config(_plain("task.n_grid=[5]"))


# ---- the CLI end to end ------------------------------------------------------------------------
def test_cli_power_end_to_end(tmp_path):
    out = tmp_path / "pw"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    args = [
        sys.executable,
        "-m",
        "palliasim.experiments.cli",
        "task=power",
        "task.n_grid=[60,120]",
        "task.endpoints=[nrs,response]",
        "task.reps_start=40",
        "task.reps_step=40",
        "task.reps_max=80",
        "task.ci_halfwidth=0.3",
        "task.analytic_n=20000",
        "task.projection_n=20000",
        "task.n_boot=100",
        "truth.n=20000",
        "runner.n_jobs=2",
        "quiet=true",
        f"out_dir={out}",
    ]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tab = pd.read_csv(out / "power.csv", keep_default_na=False, na_values=[""])  # "null" = name
    assert list(tab.columns[:11]) == [
        "scenario", "endpoint", "method", "n", "reps", "power", "power_mcse", "ci_low",
        "ci_high", "analytic_power", "analytic_method",
    ]  # fmt: skip
    sim_rows = tab[tab["reps"] > 0]
    assert set(sim_rows["scenario"]) == {"randomized", "null"}
    assert set(sim_rows["role"]) == {"power", "type1"}
    assert set(sim_rows["method"]) == {
        "ancova_cc", "lmm_w1", "lmm_w4", "lmm_w8", "lmm_w12", "mmrm_w1", "mmrm_w4", "mmrm_w8",
        "mmrm_w12", "clda_w1", "clda_w4", "clda_w8", "clda_w12", "logistic", "risk_difference"
    }  # fmt: skip
    lmm_null = tab[(tab["role"] == "type1") & (tab["method"] == "lmm_w12")]
    assert np.allclose(lmm_null["analytic_power"], 0.05 / 4)  # Bonferroni: nominal alpha / 4
    mmrm = tab[tab["method"] == "mmrm_w12"]
    assert np.allclose(mmrm[mmrm["role"] == "type1"]["analytic_power"], 0.05)  # no Bonferroni
    assert mmrm[mmrm["role"] == "power"]["analytic_power"].between(0.05, 1).all()
    assert set(sim_rows["n"]) == {60, 120}
    assert sim_rows["reps"].between(40, 80).all()
    assert (
        (sim_rows["ci_low"] <= sim_rows["power"]) & (sim_rows["power"] <= sim_rows["ci_high"])
    ).all()
    alt = sim_rows[sim_rows["scenario"] == "randomized"]
    assert alt["analytic_power"].between(0, 1).all() and alt["type1"].notna().all()
    assert alt["explanation"].str.contains("Simulated - formula").all()
    assert alt["projected_power"].between(0, 1).all()
    sizes = pd.read_csv(out / "sample_size.csv")
    assert {0.8, 0.9} <= set(sizes["target_power"])
    assert (out / "power_curves.png").stat().st_size > 10_000
    assert "Response, chi-square (risk difference): 80% power at n = " in proc.stdout
    # an invalid value stops with exit code 2, naming the key
    bad = subprocess.run(
        [*args[:4], "task.reps_start=0", f"out_dir={tmp_path / 'bad'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "task.reps_start" in bad.stderr
    assert not (tmp_path / "bad").exists()
