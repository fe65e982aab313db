"""Longitudinal (NRS over visits) and week-12 ANCOVA estimators.

Agreement with direct statsmodels calls on a fixed data set, recovery of the truth on large
randomized cohorts, degenerate cohorts, RNG hygiene, no escaping warnings, config files.
Recovery uses n = 5000 (no dropout, intermittent misses off; death still truncates visits) and,
for MixedLM, the first 2000 of those patients (statsmodels MixedLM takes ~2-4 s at n = 2000).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import yaml
from scipy import stats
from statsmodels.genmod import cov_struct

from palliasim.estimators import build_estimator, engines
from palliasim.estimators.base import FAILED, OK, REGISTRY, WARNING, wald_row
from palliasim.estimators.continuous import W12_OUTCOMES, w12_outcome
from palliasim.estimators.longitudinal import NRS_ESTIMANDS, POST_WEEKS, locf, nrs_wide, rubin
from palliasim.sim import generate, load_scenario, rng_for, truth
from palliasim.sim.cohort import Cohort

RANDOMIZED = {
    "confounding.strength": 0.0,
    "treatment.scheme": "complete",
    "treatment.allocation": 0.5,
    "missingness.mechanism": "none",
    "missingness.intermittent": 0.0,
}
CONF = Path(__file__).resolve().parents[1] / "conf" / "estimators"
ALL_KINDS = ("lmm", "gee", "ancova_cc", "locf_ancova", "mi_ancova", "ancova_w12")


def _fit(kind, cohort, seed=0, **opts):
    return build_estimator(kind, **opts).fit(cohort, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def study():
    sc = load_scenario("study", {"cohort.n": 205})
    return generate(sc, rng_for(1, sc.key, "data", 0))


@pytest.fixture(scope="module")
def study_slope():
    """As ``study`` with a true random slope (the preset has none, so a random-slope fit of the
    preset's data may sit on the boundary, cov_re ~ 0, a legitimate warning)."""
    sc = load_scenario("study", {"cohort.n": 205, "nrs.sd_slope": 1.0})
    return generate(sc, rng_for(1, sc.key, "data", 0))


@pytest.fixture(scope="module")
def big():
    sc = load_scenario("study", {**RANDOMIZED, "cohort.n": 5000})
    return sc, generate(sc, rng_for(12, sc.key, "data", 0))


def _observed_visits(c: Cohort) -> pd.DataFrame:
    v = c.visits[["id", "group", "week", "nrs"]]
    v = v[np.isfinite(v["nrs"])]
    return v.merge(c.patients[["id", "nrs0", "age", "primary"]], on="id")


def _contrast(params, cov, names):
    return float(params[names].sum()), float(np.sqrt(cov.loc[names, names].to_numpy().sum()))


# ------------------------------------------------------------------ agreement with the library


@pytest.mark.parametrize(
    "opts,formula,re_formula",
    [
        ({}, "nrs ~ C(week) * group", None),
        ({"reml": False}, "nrs ~ C(week) * group", None),
        ({"covariates": ["age", "primary"]}, "nrs ~ C(week) * group + age + C(primary)", None),
        ({"random_slope": True}, "nrs ~ C(week) * group", "~I(week / 12)"),
    ],
)
def test_lmm_matches_mixedlm_formula(study, study_slope, opts, formula, re_formula):
    study = study_slope if opts.get("random_slope") else study
    v = _observed_visits(study).sort_values(["id", "week"], kind="stable").reset_index(drop=True)
    reml = opts.get("reml", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = smf.mixedlm(formula, v, groups=v["id"], re_formula=re_formula)
        if re_formula is None:  # random intercept: statsmodels at its exact optimum
            L = np.sqrt(engines.mixedlm_gamma(md, reml))
            ref = md.fit(reml=reml, start_params=np.array([L]), method="bfgs", gtol=np.inf)
        else:  # random slope: statsmodels' own optimiser (the reference engine's convention)
            ref = md.fit(reml=reml)
    Z = md.exog_re
    # the standard covariance (X' V^-1 X)^-1 of lme4 / SAS at statsmodels' estimates
    cov = pd.DataFrame(
        engines.fe_covariance(md.exog, v["id"].to_numpy(), Z, np.asarray(ref.cov_re), ref.scale),
        index=md.exog_names,
        columns=md.exog_names,
    )
    rows = _fit("lmm", study, **opts)
    assert [r.estimand for r in rows] == list(NRS_ESTIMANDS)
    tol = 1e-8 if re_formula is None else 1e-6
    z = stats.norm.ppf(1 - 0.05 / 8)  # Bonferroni over 4 visits: simultaneous 1 - 0.05/4
    for r, w in zip(rows, POST_WEEKS):
        est, se = _contrast(ref.params, cov, ["group", f"C(week)[T.{w}]:group"])
        assert r.status == OK, r.message
        assert r.estimate == pytest.approx(est, rel=tol, abs=1e-10)
        assert r.se == pytest.approx(se, rel=tol)
        p_raw = 2 * stats.norm.sf(abs(est / se))
        assert r.p_value == pytest.approx(min(1.0, 4 * p_raw), rel=1e-6)
        assert r.ci_low == pytest.approx(est - z * se, rel=1e-6)
        assert r.ci_level == pytest.approx(1 - 0.05 / 4)
        assert r.n_used == v["id"].nunique()


def test_lmm_adjusted_adjusts_for_baseline_nrs(study):
    v = _observed_visits(study)
    v = v[v["week"] > 0].sort_values(["id", "week"], kind="stable").reset_index(drop=True)
    formula = "nrs ~ C(week) * group + nrs0 + age"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = smf.mixedlm(formula, v, groups=v["id"])
        L = np.sqrt(engines.mixedlm_gamma(md, True))
        ref = md.fit(reml=True, start_params=np.array([L]), method="bfgs", gtol=np.inf)
    Z = md.exog_re
    cov = pd.DataFrame(
        engines.fe_covariance(md.exog, v["id"].to_numpy(), Z, np.asarray(ref.cov_re), ref.scale),
        index=md.exog_names,
        columns=md.exog_names,
    )
    plain = {r.estimand: r for r in _fit("lmm", study)}
    for engine in ("fast", "reference"):
        rows = _fit("lmm", study, adjust_baseline=True, covariates=["age"], engine=engine)
        for r, w in zip(rows, POST_WEEKS):
            names = ["group"] + ([] if w == 1 else [f"C(week)[T.{w}]:group"])
            est, se = _contrast(ref.params, cov, names)
            assert r.status == OK, r.message
            assert r.estimate == pytest.approx(est, rel=1e-8, abs=1e-10)
            assert r.se == pytest.approx(se, rel=1e-8)
            # baseline adjustment removes the between-patient baseline variation from the SE
            assert r.se < 0.8 * plain[r.estimand].se
    with pytest.raises(ValueError, match="nrs0 is already adjusted"):
        build_estimator("lmm", adjust_baseline=True, covariates=["nrs0"])


def test_lmm_bonferroni_ci_and_p_agree(study):
    adj = _fit("lmm", study)
    raw = _fit("lmm", study, bonferroni=False)
    for a, r in zip(adj, raw):
        assert a.estimate == r.estimate and a.se == r.se
        assert a.p_value == pytest.approx(min(1.0, 4 * r.p_value))
        assert a.ci_level == pytest.approx(0.9875) and r.ci_level == pytest.approx(0.95)
        assert a.ci_low < r.ci_low and a.ci_high > r.ci_high  # the simultaneous CI is wider
        for row in (a, r):
            assert (row.ci_low > 0 or row.ci_high < 0) == (row.p_value <= 0.05)
    # coherent at the boundary too: a contrast whose Bonferroni p is exactly alpha
    se = 1.0
    est = float(stats.norm.ppf(1 - 0.05 / 8))
    row = wald_row("m", "e", est, se, 0.05, 10, n_family=4)
    assert row.p_value == pytest.approx(0.05) and row.ci_low == pytest.approx(0.0, abs=1e-12)


def test_gee_matches_smf_gee(study):
    v = _observed_visits(study)
    v = v[v["week"] > 0]
    ref = smf.gee(
        "nrs ~ C(week) * group + nrs0", groups="id", data=v, cov_struct=cov_struct.Exchangeable()
    ).fit()
    cov = ref.cov_params()
    rows = _fit("gee", study)
    for r, w in zip(rows, POST_WEEKS):
        names = ["group"] + ([] if w == 1 else [f"C(week)[T.{w}]:group"])
        est, se = _contrast(ref.params, cov, names)
        assert r.status == OK, r.message
        assert r.estimate == pytest.approx(est, abs=1e-8)
        assert r.se == pytest.approx(se, rel=1e-6)


@pytest.mark.parametrize("covs", [[], ["age", "ecog", "primary"]])
def test_ancova_cc_matches_ols(study, covs):
    p = study.patients
    f = "nrs12 ~ group + nrs0" + "".join(
        f" + C({c})" if c == "primary" else f" + {c}" for c in covs
    )
    ref = smf.ols(f, p).fit()
    (r,) = _fit("ancova_cc", study, covariates=covs)
    lo, hi = ref.conf_int().loc["group"]
    assert r.estimate == pytest.approx(ref.params["group"], rel=1e-10)
    assert r.se == pytest.approx(ref.bse["group"], rel=1e-10)
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), rel=1e-10)
    assert r.p_value == pytest.approx(ref.pvalues["group"], rel=1e-8)
    assert r.n_used == ref.nobs


def test_locf_ancova_matches_ols_on_hand_made_locf(study):
    v = study.visits.pivot(index="id", columns="week", values="nrs").sort_index()
    last = v.ffill(axis=1)[12]
    p = study.patients.set_index("id").loc[v.index].assign(locf=last.to_numpy())
    ref = smf.ols("locf ~ group + nrs0", p).fit()
    (r,) = _fit("locf_ancova", study)
    assert r.estimate == pytest.approx(ref.params["group"], rel=1e-10)
    assert r.se == pytest.approx(ref.bse["group"], rel=1e-10)
    assert r.n_used == len(p)


def test_locf_helper():
    W = np.array([[1.0, np.nan, 3.0, np.nan], [np.nan] * 4, [2.0, 5.0, 6.0, 7.0]])
    np.testing.assert_array_equal(locf(W)[[0, 2]], [3.0, 7.0])
    assert np.isnan(locf(W)[1])


def test_ancova_w12_matches_ols(study):
    p = study.patients
    rows = {r.estimand: r for r in _fit("ancova_w12", study)}
    assert set(rows) == {w12_outcome(o)[3] for o in W12_OUTCOMES}
    for o in ("global", "crp", "albumin"):
        c0, c12, log, estimand = w12_outcome(o)
        f = f"np.log({c12}) ~ group + np.log({c0})" if log else f"{c12} ~ group + {c0}"
        ref = smf.ols(f, p).fit()
        r = rows[estimand]
        assert r.estimate == pytest.approx(ref.params["group"], rel=1e-10)
        assert r.ci_high == pytest.approx(ref.conf_int().loc["group", 1], rel=1e-10)
        assert r.p_value == pytest.approx(ref.pvalues["group"], rel=1e-8)


def test_rubin_rules_by_hand():
    q = np.array([1.0, 1.2, 0.9, 1.1, 1.3])
    u = np.array([0.04, 0.05, 0.045, 0.04, 0.05])
    est, se, df, lam = rubin(q, u, df_com=100)
    m, b, ubar = 5, q.var(ddof=1), u.mean()
    t = ubar + (1 + 1 / m) * b
    lam_ = (1 + 1 / m) * b / t
    nu = 1 / (lam_**2 / (m - 1) + 1 / ((101 / 103) * 100 * (1 - lam_)))
    assert (est, se, lam) == pytest.approx((q.mean(), np.sqrt(t), lam_))
    assert df == pytest.approx(nu)
    # no between-imputation variance: plain complete-data SE, df just below df_com
    est, se, df, lam = rubin(np.ones(4), np.full(4, 0.01), df_com=50)
    assert (se, lam, df) == pytest.approx((0.1, 0.0, 51 / 53 * 50))


# ------------------------------------------------------------------ recovery of the truth


def _assert_recovers(rows, tr):
    for r in rows:
        assert r.status == OK, (r.estimand, r.message)
        assert abs(r.estimate - tr[r.estimand]) <= 4 * r.se, (
            r.estimand,
            r.estimate,
            tr[r.estimand],
            r.se,
        )


def test_recovery_lmm_n2000(big):
    sc, c = big
    sub = Cohort.from_frames(c.patients[c.patients["id"] <= 2000], c.visits[c.visits["id"] <= 2000])
    rows = _fit("lmm", sub)
    assert rows[0].n_used == 2000
    _assert_recovers(rows, truth(sc))


@pytest.mark.parametrize("kind,opts", [("gee", {}), ("ancova_cc", {}), ("ancova_w12", {})])
def test_recovery_n5000(big, kind, opts):
    sc, c = big
    rows = _fit(kind, c, **opts)
    assert len(rows) == len(build_estimator(kind, **opts).targets())
    _assert_recovers(rows, truth(sc))


@pytest.fixture(scope="module")
def big_mcar():
    sc = load_scenario(
        "study",
        {
            **RANDOMIZED,
            "cohort.n": 5000,
            "missingness.mechanism": "mcar",
            "missingness.target_week12": 0.25,
        },
    )
    return sc, generate(sc, rng_for(12, sc.key, "data", 0))


@pytest.mark.parametrize("impute_dead", [False, True])
def test_recovery_mi_ancova_mcar(big_mcar, impute_dead):
    sc, c = big_mcar
    (r,) = _fit("mi_ancova", c, seed=4, m=5, impute_dead=impute_dead)
    _assert_recovers([r], truth(sc))
    cc = _fit("ancova_cc", c)[0]
    assert r.se < 1.3 * cc.se  # uses the information in the earlier visits, not worse than CC
    assert np.isfinite(r.ci_low) and r.ci_low < r.estimate < r.ci_high


# ------------------------------------------------------------------ degenerate cohorts


def _edit(c: Cohort, patients=None, visits=None) -> Cohort:
    return Cohort.from_frames(
        patients if patients is not None else c.patients.copy(),
        visits if visits is not None else c.visits.copy(),
    )


def _arm_empty_at_w12(c):
    p, v = c.patients.copy(), c.visits.copy()
    p.loc[
        p["group"] == 1,
        ["nrs12"] + [f"qol_{d}_w12" for d in ("global", "physical", "role", "emotional", "social")],
    ] = np.nan
    v.loc[(v["group"] == 1) & (v["week"] == 12), "nrs"] = np.nan
    return _edit(c, p, v)


def _all_missing_after_baseline(c):
    p, v = c.patients.copy(), c.visits.copy()
    p["nrs12"] = np.nan
    v.loc[v["week"] > 0, "nrs"] = np.nan
    return _edit(c, p, v)


def _constant(c):
    p, v = c.patients.copy(), c.visits.copy()
    p["nrs0"] = 5.0
    p.loc[np.isfinite(p["nrs12"]), "nrs12"] = 5.0
    v.loc[np.isfinite(v["nrs"]), "nrs"] = 5.0
    p.loc[np.isfinite(p["qol_global_w12"]), "qol_global_w12"] = 50.0
    return _edit(c, p, v)


def _messages(rows):
    return " | ".join(r.message for r in rows)


def test_arm_empty_at_week12(study, recwarn, capsys):
    c = _arm_empty_at_w12(study)
    lmm = {r.estimand: r for r in _fit("lmm", c)}
    assert lmm["nrs_diff_w12"].status == FAILED
    assert "week 12" in lmm["nrs_diff_w12"].message and "observation" in lmm["nrs_diff_w12"].message
    assert all(lmm[e].status == OK for e in NRS_ESTIMANDS[:3])
    gee = {r.estimand: r for r in _fit("gee", c)}
    assert gee["nrs_diff_w12"].status == FAILED and "observation" in gee["nrs_diff_w12"].message
    assert gee["nrs_diff_w1"].status == OK
    (cc,) = _fit("ancova_cc", c)
    assert cc.status == FAILED and "no complete cases" in cc.message and "observation" in cc.message
    (mi,) = _fit("mi_ancova", c, m=3)
    assert mi.status == FAILED and "no observed week-12 NRS in the observation" in mi.message
    (lo,) = _fit("locf_ancova", c)  # LOCF happily carries week 8 forward: that is its habit
    assert lo.status == OK
    qol = {r.estimand: r for r in _fit("ancova_w12", c)}
    assert (
        qol["qol_global_diff"].status == FAILED
        and "no complete cases" in qol["qol_global_diff"].message
    )
    assert qol["marker_albumin_diff"].status == OK
    assert len(recwarn) == 0 and capsys.readouterr() == ("", "")


def test_all_missing_after_baseline(study, recwarn, capsys):
    c = _all_missing_after_baseline(study)
    for kind in ("lmm", "gee", "ancova_cc", "locf_ancova", "mi_ancova"):
        rows = _fit(kind, c, **({"m": 3} if kind == "mi_ancova" else {}))
        assert rows and all(r.status == FAILED for r in rows), (kind, _messages(rows))
        assert all(r.message for r in rows)
    assert "either arm" in _fit("lmm", c)[0].message
    assert "no post-baseline NRS" in _fit("locf_ancova", c)[0].message
    assert "no observed week-1 NRS" in _fit("mi_ancova", c, m=3)[0].message
    assert len(recwarn) == 0 and capsys.readouterr() == ("", "")


def test_constant_outcome(study, recwarn, capsys):
    c = _constant(study)
    for kind in ("lmm", "gee", "ancova_cc", "locf_ancova", "mi_ancova"):
        rows = _fit(kind, c, **({"m": 3} if kind == "mi_ancova" else {}))
        assert all(r.status == FAILED for r in rows), (kind, _messages(rows))
        assert "constant" in _messages(rows), (kind, _messages(rows))
    rows = {r.estimand: r for r in _fit("ancova_w12", c, outcomes=["global", "physical"])}
    assert (
        rows["qol_global_diff"].status == FAILED and "constant" in rows["qol_global_diff"].message
    )
    assert rows["qol_physical_diff"].status == OK
    assert len(recwarn) == 0 and capsys.readouterr() == ("", "")


def test_lmm_boundary_is_a_warning(study):
    """Every patient's residuals sum to zero (balanced, complete visits), so the REML estimate of
    the random-intercept variance is on the boundary (0) by construction, whatever the seed."""
    p, v = study.patients.copy(), study.visits.copy()
    complete = v.groupby("id")["nrs"].transform(lambda x: x.notna().all())
    v = v[complete].copy()
    p = p[p["id"].isin(v["id"])].copy()
    sign = np.random.default_rng(5).choice([-1.0, 1.0], size=p.shape[0])
    pattern = np.tile([1.0, -1.0, 1.0, -1.0, 0.0], p.shape[0])
    v["nrs"] = 5.0 + 2.0 * pattern * np.repeat(sign, 5)
    rows = _fit("lmm", _edit(study, p, v))
    # statsmodels reports the boundary as a failed optimisation / non-PD Hessian, or our own check
    # as "boundary": either way a warning row with the library's message, never an exception
    assert all(
        r.status == WARNING and ("boundary" in r.message or "converge" in r.message) for r in rows
    )
    assert all(np.isfinite(r.estimate) and r.se > 0 for r in rows)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_lmm_collinear_covariates_fail_naming_the_column(study, engine):
    """A covariate constant in the cohort (collinear with the intercept) and one equal to
    another: every row fails with the rank check's message naming them (the fast engine's
    pre-test from the fit's cross-products must not let them through)."""
    p = study.patients.copy()
    p["visceral"] = 1
    p["charlson"] = p["ecog"]
    rows = _fit(
        "lmm", _edit(study, p), covariates=["age", "visceral", "ecog", "charlson"], engine=engine
    )
    assert all(r.status == FAILED for r in rows)
    assert all("rank deficient" in r.message and "visceral, charlson" in r.message for r in rows)
    ok = _fit("lmm", study, covariates=["age", "ecog", "charlson"], engine=engine)
    assert all(r.status == OK for r in ok)


def test_missing_covariates_are_excluded_and_noted(study):
    p = study.patients.copy()
    p["ecog"] = p["ecog"].astype(float)
    p.loc[:9, "ecog"] = np.nan
    c = _edit(study, p)
    (r,) = _fit("ancova_cc", c, covariates=["ecog"])
    assert r.status == OK and "10 patient(s) with missing covariates" in r.message
    rows = _fit("lmm", c, covariates=["ecog"])
    assert rows[0].n_used == 195 and "missing covariates" in rows[0].message


# ------------------------------------------------------------------ contract hygiene


def test_no_global_rng_use_no_warnings_no_output(study, recwarn, capsys):
    np.random.seed(123)  # noqa: NPY002 (the legacy global state is what we check)
    before = np.random.get_state()  # noqa: NPY002
    for kind in ALL_KINDS:
        opts = {"m": 3} if kind == "mi_ancova" else {}
        rows = _fit(kind, study, **opts)
        assert rows and all(r.status in (OK, WARNING) for r in rows), (kind, _messages(rows))
        assert all(r.method == kind and r.seconds > 0 for r in rows)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    assert len(recwarn) == 0
    assert capsys.readouterr() == ("", "")


def test_mi_ancova_deterministic_given_rng(study):
    a = _fit("mi_ancova", study, seed=7, m=5)[0].as_dict()
    b = _fit("mi_ancova", study, seed=7, m=5)[0].as_dict()
    c = _fit("mi_ancova", study, seed=8, m=5)[0].as_dict()
    a.pop("seconds"), b.pop("seconds"), c.pop("seconds")
    assert a == b
    assert a["estimate"] != c["estimate"]


def test_mi_ancova_needs_an_rng(study):
    with pytest.raises(TypeError, match="Generator"):
        build_estimator("mi_ancova").fit(study, None)


def test_option_validation():
    with pytest.raises(ValueError, match="allowed values: global"):
        build_estimator("ancova_w12", outcomes=["global", "cholesterol"])
    with pytest.raises(ValueError, match="unknown baseline covariate 'nrs12'"):
        build_estimator("lmm", covariates=["nrs12"])
    with pytest.raises(ValueError, match="m must be"):
        build_estimator("mi_ancova", m=1)
    est = build_estimator("ancova_w12", outcomes=["role", "il6", "hb"])
    assert est.targets() == ("qol_role_diff", "marker_log_il6_diff", "marker_hb_diff")


@pytest.mark.parametrize(
    "name,kind",
    [
        ("lmm", "lmm"),
        ("lmm_adjusted", "lmm"),
        ("ancova_cc", "ancova_cc"),
        ("locf_ancova", "locf_ancova"),
        ("mi_ancova", "mi_ancova"),
        ("gee", "gee"),
        ("ancova_qol", "ancova_w12"),
        ("ancova_markers", "ancova_w12"),
    ],
)
def test_config_files(name, kind):
    path = CONF / f"{name}.yaml"
    text = path.read_text()
    assert text.splitlines()[0] == f"# @package estimators.{name}"
    cfg = yaml.safe_load(text)
    assert cfg.pop("kind") == kind and kind in REGISTRY
    est = build_estimator(kind, name=name, **cfg)
    assert est.targets()
    if name == "lmm_adjusted":
        assert est.covariates == ["age", "ecog", "visceral", "strong_opioid"]
        assert est.adjust_baseline
    if name == "ancova_qol":
        assert all(t.startswith("qol_") for t in est.targets()) and len(est.targets()) == 5
    if name == "ancova_markers":
        assert all(t.startswith("marker_") for t in est.targets()) and len(est.targets()) == 10


def test_nrs_wide_is_cached_per_cohort_read_only_and_layout_independent():
    sc = load_scenario("study", {"cohort.n": 60})
    c = generate(sc, rng_for(11, sc.key, "data", 0))
    w = nrs_wide(c)
    assert nrs_wide(c) is w  # one table per cohort object, shared by its estimators
    with pytest.raises(ValueError):
        w.nrs[0, 0] = 0.0
    assert c.arrays["group"].flags.writeable  # the cohort's own arrays are not frozen
    # a visits table in another order (the general path) gives the same table
    v = c.visits.sample(frac=1.0, random_state=3)
    other = Cohort.from_frames(c.patients, v)
    w2 = nrs_wide(other)
    assert w2 is not w
    for a, b in zip(w, w2):
        np.testing.assert_array_equal(a, b)
    assert nrs_wide(generate(sc, rng_for(11, sc.key, "data", 1))) is not w
