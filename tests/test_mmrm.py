"""MMRM and cLDA (estimators/mmrm.py, estimators/clda.py, estimators/fast/mmrm.py).

Known answers (complete data: MMRM with unstructured covariance = per-visit ANCOVA, with
Satterthwaite and Kenward-Roger df = n - 3 and no Kenward-Roger inflation; cLDA without
baseline = per-visit two-sample t-test), analytic derivatives against finite differences, the
fast kernel against the independent reference engine, recovery of nrs_diff_w12 on a large
randomized cohort with MAR dropout, degenerate input, options and configs.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from scipy import stats

from palliasim.estimators import REGISTRY, build_estimator
from palliasim.estimators.base import FAILED, OK
from palliasim.estimators.clda import clda_design
from palliasim.estimators.fast import mmrm as K
from palliasim.estimators.longitudinal import NRSWide
from palliasim.estimators.mmrm import NRS_ESTIMANDS, mmrm_design, un_reference
from palliasim.sim import generate, load_scenario, rng_for, truth
from palliasim.sim.cohort import Cohort
from palliasim.sim.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf" / "estimators"
KINDS = ("mmrm", "clda")


def _fit(kind, cohort, **opts):
    return build_estimator(kind, **opts).fit(cohort, np.random.default_rng(0))


def _wide(n=60, seed=5, miss=0.0, m_post=4):
    """A hand-made wide NRS data set: correlated visits, a group effect growing over time."""
    rng = np.random.default_rng(seed)
    g = (np.arange(n) % 2).astype(float)
    b = rng.normal(6.0, 1.5, n)
    L = np.array([[1, 0, 0, 0], [0.6, 0.8, 0, 0], [0.4, 0.5, 0.7, 0], [0.3, 0.3, 0.5, 0.7]])
    Y = 4.0 + 0.5 * (b[:, None] - 6) - g[:, None] * np.array([0.5, 0.8, 1.0, 1.2])
    Y = Y + 1.3 * rng.normal(size=(n, 4)) @ L.T
    Y[rng.random((n, 4)) < miss] = np.nan
    nrs = np.column_stack([b, Y])
    return NRSWide(g, b, nrs, np.zeros_like(nrs))


@pytest.fixture(scope="module")
def study120():
    sc = load_scenario("study", {"cohort.n": 120})
    return generate(sc, rng_for(3, sc.key, "data", 0))


# ------------------------------------------------------------------ known answers


@pytest.mark.parametrize("df", ["satterthwaite", "kenward-roger"])
def test_complete_data_mmrm_is_per_visit_ancova(df):
    w = _wide()
    n = w.group.size
    model, why = mmrm_design(w, np.empty((n, 0)), [], np.ones(n, bool))
    assert not why
    fit = K.fit_unstructured(K.pattern_data(model.Y, model.X), kenward_roger=True)
    assert fit.status == OK and fit.converged
    cov_adj = K.kr_adjusted_cov(fit)
    for j, wk in enumerate(model.weeks):
        ols = sm.OLS(model.Y[:, j], np.column_stack([np.ones(n), w.group, w.nrs0])).fit()
        est, se, dfv = K.contrast(fit, model.contrasts[wk], df, cov_adj)
        assert est == pytest.approx(ols.params[1], rel=1e-10)
        assert se == pytest.approx(ols.bse[1], rel=1e-9)  # KR adds nothing: b does not depend on S
        assert dfv == pytest.approx(n - 3, rel=1e-8)  # the exact t distribution of the ANCOVA
    # the REML covariance is the residual covariance of the per-visit ANCOVAs over n - 3
    E = np.column_stack(
        [
            sm.OLS(model.Y[:, j], np.column_stack([np.ones(n), w.group, w.nrs0])).fit().resid
            for j in range(4)
        ]
    )
    np.testing.assert_allclose(fit.sigma, E.T @ E / (n - 3), rtol=1e-9)


def test_clda_without_baseline_is_per_visit_t_test():
    w = _wide(n=40, seed=2)
    nrs = w.nrs.copy()
    nrs[:, 0] = np.nan  # no baseline observed: cLDA = unadjusted MMRM = pooled t-tests
    w = w._replace(nrs=nrs)
    n = w.group.size
    model, _ = clda_design(w, np.empty((n, 0)), [], np.ones(n, bool))
    assert model.weeks == (1, 4, 8, 12)
    fit = K.fit_unstructured(K.pattern_data(model.Y, model.X))
    for j, wk in enumerate(model.weeks):
        y = model.Y[:, j]
        t = stats.ttest_ind(y[w.group == 1], y[w.group == 0])
        est, se, dfv = K.contrast(fit, model.contrasts[wk], "satterthwaite")
        assert est / se == pytest.approx(t.statistic, rel=1e-9)
        assert dfv == pytest.approx(n - 2, rel=1e-8)


@pytest.mark.parametrize("reml", [True, False])
def test_analytic_gradient_and_hessian_match_finite_differences(reml):
    w = _wide(n=80, miss=0.25)
    n = w.group.size
    model, _ = mmrm_design(w, np.empty((n, 0)), [], np.ones(n, bool))
    d = K.pattern_data(model.Y, model.X)
    s0 = K.vech(
        np.array(
            [[2, 0.8, 0.5, 0.3], [0.8, 2.2, 0.9, 0.6], [0.5, 0.9, 2.5, 1.0], [0.3, 0.6, 1.0, 2.7]]
        )
    )

    def f(s):
        return K._evaluate(d, K.unvech(s, 4), reml).f

    def grad(s):
        return K._derivatives(d, K._evaluate(d, K.unvech(s, 4), reml), reml).grad

    h = 1e-5
    E = np.eye(s0.size)
    ng = np.array([(f(s0 + h * e) - f(s0 - h * e)) / (2 * h) for e in E])
    nh = np.array([(grad(s0 + h * e) - grad(s0 - h * e)) / (2 * h) for e in E])
    dv = K._derivatives(d, K._evaluate(d, K.unvech(s0, 4), reml), reml)
    # central differences: error ~ h^2 f''' ~ 1e-9 relative to the largest entry
    np.testing.assert_allclose(dv.grad, ng, atol=1e-6 * np.abs(ng).max())
    np.testing.assert_allclose(dv.hess, nh, atol=1e-6 * np.abs(nh).max())
    fit = K.fit_unstructured(d, reml=reml)
    at_opt = K._derivatives(d, K._evaluate(d, fit.sigma, reml), reml).grad
    assert np.abs(at_opt).max() < 1e-8  # the optimum, not a stopping point


# ------------------------------------------------------------------ engines


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("df", ["satterthwaite", "kenward-roger"])
def test_fast_and_reference_engines_agree(study120, kind, df):
    fast = _fit(kind, study120, engine="fast", df=df)
    ref = _fit(kind, study120, engine="reference", df=df)
    for a, b in zip(fast, ref):
        assert a.status == b.status == OK, (a.message, b.message)
        assert (a.engine, b.engine) == ("fast", "reference")
        assert a.n_used == b.n_used
        # the reference's BFGS with numerical gradients reaches the optimum to ~1e-8 and its
        # df come from central differences (~1e-7): 1e-6 / 1e-5 leave a margin of 10
        assert a.estimate == pytest.approx(b.estimate, rel=1e-6)
        assert a.se == pytest.approx(b.se, rel=1e-6)
        assert a.ci_low == pytest.approx(b.ci_low, rel=1e-5)
        assert a.p_value == pytest.approx(b.p_value, rel=1e-4)


def test_ml_option_agrees_between_engines_and_shrinks_the_variance():
    w = _wide(n=50, miss=0.2, seed=9)
    n = w.group.size
    model, _ = mmrm_design(w, np.empty((n, 0)), [], np.ones(n, bool))
    c = model.contrasts[12]
    d = K.pattern_data(model.Y, model.X)
    ml, reml = K.fit_unstructured(d, reml=False), K.fit_unstructured(d, reml=True)
    ref = un_reference(model.Y, model.X, False, "satterthwaite", [c])
    est, se, dfv = K.contrast(ml, c, "satterthwaite")
    assert (est, se, dfv) == pytest.approx(ref.results[0], rel=1e-5)
    assert np.trace(ml.sigma) < np.trace(reml.sigma)  # ML divides by more


def test_residual_and_asymptotic_df(study120):
    sat = _fit("mmrm", study120)
    res = _fit("mmrm", study120, df="residual")
    asy = _fit("mmrm", study120, df="asymptotic")
    n_obs = int(np.isfinite(study120.visits.query("week > 0")["nrs"]).sum())
    for s, r, a in zip(sat, res, asy):
        assert s.estimate == r.estimate == a.estimate and s.se == r.se == a.se
        q = (r.ci_high - r.estimate) / r.se
        assert q == pytest.approx(stats.t.ppf(0.975, n_obs - 12), rel=1e-10)  # N - p, p = 12
        assert (a.ci_high - a.estimate) / a.se == pytest.approx(stats.norm.ppf(0.975), rel=1e-12)
        assert a.p_value <= r.p_value


def test_kenward_roger_inflates_the_se_with_missing_data(study120):
    sat = _fit("mmrm", study120)
    kr = _fit("mmrm", study120, df="kenward-roger")
    assert all(k.se > s.se for k, s in zip(kr, sat))
    assert all(k.se < 1.05 * s.se for k, s in zip(kr, sat))  # a small-sample correction


# ------------------------------------------------------------------ recovery


@pytest.fixture(scope="module")
def big_randomized():
    sc = load_scenario("randomized", {"cohort.n": 5000})
    return generate(sc, rng_for(12, sc.key, "data", 0)), truth(sc)


@pytest.mark.parametrize("kind", KINDS)
def test_recovery_of_nrs_diff_on_a_large_randomized_cohort_with_mar_dropout(big_randomized, kind):
    c, tr = big_randomized
    assert np.isnan(c.visits["nrs"]).mean() > 0.05  # dropout and death leave visits missing
    rows = _fit(kind, c)
    assert [r.estimand for r in rows] == list(NRS_ESTIMANDS)
    for r in rows:
        assert r.status == OK, r.message
        # one replication: estimate - truth ~ N(0, se^2 + true_mcse^2) if unbiased
        sd = np.hypot(r.se, tr.mcse(r.estimand))
        assert abs(r.estimate - tr[r.estimand]) <= 4 * sd, (r.estimand, r.estimate, tr[r.estimand])
        assert r.n_used > 4500  # patients with at least one observed visit


# ------------------------------------------------------------------ degenerate input


def _with_patients(c: Cohort, keep) -> Cohort:
    ids = c.patients["id"][keep]
    return Cohort.from_frames(
        c.patients[c.patients["id"].isin(ids)].reset_index(drop=True),
        c.visits[c.visits["id"].isin(ids)].reset_index(drop=True),
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_one_arm_empty_fails_every_row_with_the_reason(study120, kind, engine):
    c = _with_patients(study120, study120.patients["group"] == 1)
    rows = _fit(kind, c, engine=engine)
    assert [r.status for r in rows] == [FAILED] * 4
    assert all("control (group 0) arm" in r.message for r in rows)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_too_few_patients_for_an_unstructured_covariance(study120, kind, engine):
    p = study120.patients
    keep = p.index.isin(
        np.r_[np.flatnonzero(p["group"] == 0)[:3], np.flatnonzero(p["group"] == 1)[:3]]
    )
    rows = _fit(kind, _with_patients(study120, keep), engine=engine)
    assert all(r.status == FAILED for r in rows)
    assert all("too few patients" in r.message for r in rows), rows[0].message


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_singular_covariance_is_reported_not_returned(study120, engine):
    v = study120.visits.copy()
    # week 12 = week 8 + 1 for everyone: the 4 x 4 covariance is singular at the optimum
    for pid, grp in v.groupby("id"):
        w8 = grp.loc[grp["week"] == 8, "nrs"]
        m12 = (v["id"] == pid) & (v["week"] == 12)
        v.loc[m12, "nrs"] = float(w8.iloc[0]) + 1 if len(w8) and np.isfinite(w8.iloc[0]) else np.nan
    c = Cohort.from_frames(study120.patients.copy(), v)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes fit
        rows = _fit("mmrm", c, engine=engine)
    assert all(r.status == FAILED for r in rows)
    assert all("not positive definite" in r.message or "converge" in r.message for r in rows)


def test_a_visit_without_data_in_an_arm_fails_only_that_row(study120):
    v = study120.visits.copy()
    g = v["id"].map(study120.patients.set_index("id")["group"])
    v.loc[(v["week"] == 4) & (g == 0), "nrs"] = np.nan
    rows = _fit("mmrm", Cohort.from_frames(study120.patients.copy(), v))
    st = {r.estimand: r for r in rows}
    assert st["nrs_diff_w4"].status == FAILED and "week 4" in st["nrs_diff_w4"].message
    assert all(st[e].status == OK for e in ("nrs_diff_w1", "nrs_diff_w8", "nrs_diff_w12"))


# ------------------------------------------------------------------ options, config, hygiene


def test_bad_options_raise_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match=r"estimators\.mmrm\.df.*allowed values: satterthwaite"):
        build_estimator("mmrm", df="containment")
    with pytest.raises(ConfigError, match=r"estimators\.clda\.df='kenward-roger'.*REML only"):
        build_estimator("clda", df="kenward-roger", reml=False)
    with pytest.raises(ConfigError, match=r"estimators\.mmrm\.reml must be true or false"):
        build_estimator("mmrm", reml="yes")
    with pytest.raises(ValueError, match=r"estimators\.mmrm\.covariates.*allowed values"):
        build_estimator("mmrm", covariates=["shoe_size"])


@pytest.mark.parametrize("kind", KINDS)
def test_config_file_documents_every_option(kind):
    cfg = yaml.safe_load((CONF / f"{kind}.yaml").read_text())
    assert cfg.pop("kind") == kind and kind in REGISTRY
    fields = {f.name for f in dataclasses.fields(REGISTRY[kind])} - {"name", "options", "alpha"}
    assert set(cfg) == fields
    est = build_estimator(kind, **cfg)
    assert est.engine == "fast" and est.df == "satterthwaite" and est.reml is True


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_and_no_global_rng(study120, kind):
    state = np.random.get_state()[1].copy()  # noqa: NPY002 (checking the legacy global RNG)
    a = _fit(kind, study120, covariates=["age", "primary"])
    b = _fit(kind, study120, covariates=["age", "primary"])
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    assert [x.as_dict() | {"seconds": 0} for x in a] == [x.as_dict() | {"seconds": 0} for x in b]
    assert all(r.status == OK for r in a)
    base = _fit(kind, study120)
    assert all(x.estimate != y.estimate for x, y in zip(a, base))  # covariates are in the model


def test_estimate_rows_match_the_other_longitudinal_estimators(study120):
    rows = pd.DataFrame([r.as_dict() for r in _fit("mmrm", study120)])
    lmm = pd.DataFrame([r.as_dict() for r in _fit("lmm", study120)])
    assert list(rows.columns) == list(lmm.columns)
    assert list(rows["estimand"]) == list(lmm["estimand"])
    assert (rows["ci_low"] < rows["estimate"]).all() and (rows["estimate"] < rows["ci_high"]).all()
