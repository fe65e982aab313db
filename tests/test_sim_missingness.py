"""Missing-data model (sim/missingness.py) on large cohorts: the week-12 missing fraction hits
``missingness.target_week12`` for every dropout mechanism, the mechanisms bias the observed
week-12 NRS as they should (MCAR none, MAR/MNAR downward because painful patients leave),
intermittent misses and missing baseline covariates have their configured rates, and
unreachable targets are rejected.

Tolerances are 4 Monte Carlo SEs. The dropout intercept is itself solved on a finite sample
(``sim.generate.SOLVE_N`` patients), so the SE of a hit fraction combines both samples.
"""

from __future__ import annotations

import numpy as np
import pytest

from palliasim.sim import ConfigError, generate, generate_with_potential, load_scenario, rng_for
from palliasim.sim.generate import SOLVE_N, constants
from palliasim.sim.missingness import VISIT_MONTHS

N = 40_000
SEED = 20261129
Z = 4.0  # tolerance in Monte Carlo SEs
#: baseline columns of the patients table besides the ``*_w0`` markers and QoL scores
BASELINE = (
    "id",
    "group",
    "age",
    "male",
    "primary",
    "ecog",
    "lesions_gt3",
    "site",
    "spinal",
    "fracture",
    "visceral",
    "charlson",
    "nrs0",
    "strong_opioid",
    "omed0",
    "rt_dose_gy",
    "rt_fractions",
)


def _draw(mechanism: str, **over):
    sc = load_scenario("study", {"missingness.mechanism": mechanism, **over})
    cohort, po = generate_with_potential(sc, rng_for(SEED, sc.key, "data", 0), N)
    status = cohort.visits["status"].astype(str).to_numpy().reshape(N, 5)
    a = po.shared["A"]
    nrs_full = np.where(a[:, None] == 1, po["nrs"][1], po["nrs"][0])  # complete data, weeks 1-12
    return sc, cohort, status, nrs_full


@pytest.fixture(scope="module")
def draws():
    return {m: _draw(m) for m in ("none", "mcar", "mar", "mnar")}


@pytest.mark.parametrize("mechanism", ["mcar", "mar", "mnar"])
def test_week12_missing_fraction_hits_target(draws, mechanism):
    sc, _, status, _ = draws[mechanism]
    target = sc.get("missingness.target_week12")
    alive = status[:, 4] != "dead"
    n_alive = int(alive.sum())
    missing = float(np.mean(status[alive, 4] != "observed"))
    # SE of the cohort fraction and of the fraction on which alpha was solved
    n_solve_alive = SOLVE_N * n_alive / N
    se = np.sqrt(target * (1 - target) * (1 / n_alive + 1 / n_solve_alive))
    assert abs(missing - target) <= Z * se, (mechanism, missing, target, se)


def test_no_dropout_without_mechanism(draws):
    _, cohort, status, _ = draws["none"]
    assert not (status == "dropout").any()
    # week 12 is never missed intermittently, so only death removes the week-12 NRS
    np.testing.assert_array_equal(
        cohort.patients["nrs12"].isna().to_numpy(), status[:, 4] == "dead"
    )


def test_zero_target_means_no_dropout():
    sc = load_scenario("study", {"missingness.mechanism": "mcar", "missingness.target_week12": 0.0})
    status = generate(sc, rng_for(SEED, sc.key, "data", 0), 5_000).visits["status"]
    assert not (status == "dropout").any()


def _observed_vs_complete(draw):
    """Observed minus complete-data mean week-12 NRS among patients alive at week 12, and the SE
    of that difference if the observed patients were a simple random subsample."""
    _, _, status, nrs_full = draw
    alive = status[:, 4] != "dead"
    obs = status[:, 4] == "observed"
    y = nrs_full[:, 3]
    diff = y[obs].mean() - y[alive].mean()
    se = y[alive].std(ddof=1) * np.sqrt(1 / obs.sum() - 1 / alive.sum())
    return diff, se


def test_mcar_leaves_observed_week12_mean_unbiased(draws):
    diff, se = _observed_vs_complete(draws["mcar"])
    assert abs(diff) <= Z * se, (diff, se)


@pytest.mark.parametrize("mechanism", ["mar", "mnar"])
def test_informative_dropout_lowers_observed_week12_mean(draws, mechanism):
    # mar_nrs, mnar_nrs > 0 in `study`: patients in more pain drop out more
    assert draws[mechanism][0].get(f"missingness.{mechanism}_nrs") > 0
    diff, se = _observed_vs_complete(draws[mechanism])
    assert diff < -Z * se, (mechanism, diff, se)


def test_mnar_dropout_depends_on_current_nrs(draws):
    """Under MNAR the week-1 dropout probability rises with the (unobserved) week-1 NRS; under
    MCAR it does not (compare NRS >= 5 with NRS < 5 among patients alive at week 1)."""
    for mech, informative in (("mnar", True), ("mcar", False)):
        _, _, status, nrs_full = draws[mech]
        alive = status[:, 1] != "dead"
        drop = status[alive, 1] == "dropout"
        high = nrs_full[alive, 0] >= 5
        p1, p0 = drop[high].mean(), drop[~high].mean()
        se = np.sqrt(p1 * (1 - p1) / high.sum() + p0 * (1 - p0) / (~high).sum())
        if informative:
            assert p1 - p0 > Z * se, (mech, p1, p0, se)
        else:
            assert abs(p1 - p0) <= Z * se, (mech, p1, p0, se)


@pytest.mark.parametrize("mechanism", ["none", "mcar", "mnar"])
def test_intermittent_fraction(draws, mechanism):
    sc, _, status, _ = draws[mechanism]
    p = sc.get("missingness.intermittent")
    at_risk = np.isin(status[:, 1:4], ["observed", "missed"])  # alive and still in the study
    m = int(at_risk.sum())
    frac = float(np.mean(status[:, 1:4][at_risk] == "missed"))
    assert abs(frac - p) <= Z * np.sqrt(p * (1 - p) / m), (frac, p, m)


def test_missing_baseline_covariates_mcar():
    fraction = 0.1
    sc = load_scenario(
        "study",
        {
            "missingness.covariates.mechanism": "mcar",
            "missingness.covariates.fraction": fraction,
            "missingness.covariates.columns": ["ecog", "visceral", "albumin_w0", "crp_w0"],
        },
    )
    P = generate(sc, rng_for(SEED, sc.key, "data", 0), N).patients
    listed = set(sc.get("missingness.covariates.columns"))
    tol = Z * np.sqrt(fraction * (1 - fraction) / N)
    for col in listed:
        frac = P[col].isna().mean()
        assert abs(frac - fraction) <= tol, (col, frac)
    baseline = [c for c in P.columns if c.endswith("_w0") or c in BASELINE]
    for col in set(baseline) - listed:
        assert P[col].notna().all(), col
    # outcomes are untouched by covariate missingness
    for col in ("pfs_months", "os_months", "pfs_event", "os_event", "ae_any"):
        assert P[col].notna().all(), col


def test_no_missing_covariates_when_mechanism_none(draws):
    P = draws["mar"][1].patients
    for col in draws["mar"][0].get("missingness.covariates.columns"):
        assert P[col].notna().all(), col


def test_target_out_of_range_is_rejected_at_construction():
    sc = load_scenario("study")
    with pytest.raises(ConfigError, match="missingness.target_week12"):
        sc.with_overrides({"missingness.target_week12": 0.999})


@pytest.mark.parametrize("mnar_nrs", [-30.0, 30.0])
def test_unreachable_target_raises(mnar_nrs):
    """With an extreme MNAR slope, patients whose NRS stays on the 'safe' side never drop out, so
    a 95% week-12 missing fraction (valid in itself) cannot be reached by any intercept."""
    sc = load_scenario(
        "study",
        {
            "missingness.mechanism": "mnar",
            "missingness.mnar_nrs": mnar_nrs,
            "missingness.target_week12": 0.95,
        },
    )
    with pytest.raises(ConfigError, match="missingness.target_week12"):
        constants(sc)
    with pytest.raises(ConfigError, match="missingness.target_week12"):
        generate(sc, rng_for(1, sc.key, "data", 0), 20)


# ------------------------------------------------------------------ visits vs survival follow-up
def _after_os_censoring(draw):
    """(n, 4) mask of post-baseline visits scheduled after a censored OS time."""
    P = draw[1].patients
    os_m, os_ev = P["os_months"].to_numpy(), P["os_event"].to_numpy()
    return (os_ev == 0)[:, None] & (VISIT_MONTHS[None, :] > os_m[:, None] + 1e-3)


def test_loss_to_follow_up_starts_after_week12(draws):
    """Loss to follow-up (ltfu_rate > 0) starts after the 12-week PRO window: no patient is
    censored for OS before a scheduled visit while the two tests below check the visit table."""
    assert not _after_os_censoring(draws["mar"]).any()


def test_no_death_visible_after_os_censoring(draws):
    status = draws["mar"][2][:, 1:]
    hidden = (status == "dead") & _after_os_censoring(draws["mar"])
    assert not hidden.any(), f"{hidden.any(axis=1).sum()} patients"


def test_no_visit_observed_after_os_censoring(draws):
    status = draws["mar"][2][:, 1:]
    seen = (status == "observed") & _after_os_censoring(draws["mar"])
    assert not seen.any(), f"{seen.any(axis=1).sum()} patients"
