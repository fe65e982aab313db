"""Binary-response and table estimators (estimators/binary.py, estimators/tables.py).

1. Agreement with direct library calls on a fixed study cohort (statsmodels, scipy).
2. Recovery of the truth within 4 SE on a large randomized cohort (response.mode = direct).
3. Degenerate cohorts -> status failed with a clear message; no exception, no escaped warning,
   global numpy RNG untouched; config files match the estimators' options.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
import yaml
from scipy import stats
from scipy.special import expit
from statsmodels.stats.proportion import confint_proportions_2indep

from palliasim.estimators import REGISTRY, build_estimator
from palliasim.estimators.binary import STUDY_CANDIDATES
from palliasim.estimators.fast.logistic import logistic_fit, univariable_logistic_batch
from palliasim.estimators.fast.tables import fisher_2x2
from palliasim.sim import ADJUSTMENT_SET, Cohort, generate, load_scenario, rng_for, truth

BINARY_KINDS = (
    "logistic",
    "logistic_adjusted",
    "logistic_study_pipeline",
    "gcomp",
    "ipw_or",
    "risk_difference",
)
TABLE_KINDS = ("ae_tests", "balance")
CONF = Path(__file__).resolve().parents[1] / "conf" / "estimators"
ADJ = " + ".join(ADJUSTMENT_SET)


def _fit(kind, cohort, seed=0, **opts):
    return {
        r.estimand: r
        for r in build_estimator(kind, **opts).fit(cohort, np.random.default_rng(seed))
    }


def _edited(cohort, **cols) -> Cohort:
    p = cohort.patients.copy()
    for k, v in cols.items():
        p[k] = v
    return Cohort.from_frames(p, cohort.visits.copy())


@pytest.fixture(scope="module")
def study():
    # library-agreement fixture: unassessed patients coded 0 in the data (the pre-issue-11 coding)
    # so that every patient has a response; the NaN coding is tested separately
    sc = load_scenario("study", {"cohort.n": 205, "response.missing_as": "nonresponse"})
    return generate(sc, rng_for(1, sc.key, "data", 0))


@pytest.fixture(scope="module")
def frame(study):
    p = study.patients.copy()
    p["rt_dose_ge30"] = (p["rt_dose_gy"] >= 30).astype(int)
    p["rt_multiple_fractions"] = (p["rt_fractions"] > 1).astype(int)
    return p


# --------------------------------------------------------------------------- 1. agreement
def _same_logit(row, res, term):
    ci = res.conf_int().loc[term]
    np.testing.assert_allclose(
        [row.estimate, row.se, row.p_value, row.ci_low, row.ci_high],
        [res.params[term], res.bse[term], res.pvalues[term], ci[0], ci[1]],
        rtol=1e-6,
    )
    assert row.status == "ok" and row.n_used == int(res.nobs)


def test_logistic_matches_statsmodels(study, frame):
    _same_logit(
        _fit("logistic", study)["response_logor"],
        smf.logit("response ~ group", frame).fit(disp=0),
        "group",
    )
    _same_logit(
        _fit("logistic_adjusted", study)["response_logor_adj"],
        smf.logit(f"response ~ group + {ADJ}", frame).fit(disp=0),
        "group",
    )
    # categorical covariates enter as dummies (reference = first level)
    _same_logit(
        _fit("logistic_adjusted", study, covariates=["age", "primary"])["response_logor_adj"],
        smf.logit("response ~ group + age + C(primary)", frame).fit(disp=0),
        "group",
    )


def test_missing_response_and_covariates_are_complete_cases(study, frame):
    ecog = frame["ecog"].astype(float).mask(frame.index % 20 == 3)  # 11 patients
    resp = frame["response"].mask(frame.index % 40 == 0)  # 6 patients (none of the above)
    cohort = _edited(study, ecog=ecog, response=resp)
    row = _fit("logistic_adjusted", cohort)["response_logor_adj"]
    ref = smf.logit(f"response ~ group + {ADJ}", frame.assign(ecog=ecog, response=resp)).fit(disp=0)
    _same_logit(row, ref, "group")
    # the study cohort's response is NaN for alive patients without a week-12 assessment too
    has_y, has_x = resp.notna(), ecog.notna()
    n_x = int((has_y & ~has_x).sum())
    assert row.n_used == int((has_y & has_x).sum())
    assert row.message == f"{n_x} patients dropped for missing covariates"
    assert _fit("risk_difference", cohort)["response_rd"].n_used == int(has_y.sum())
    assert _fit("balance", cohort)["balance_ecog"].n_used == 194


def test_study_pipeline_matches_manual_screening(study, frame):
    pvals = {
        c: smf.logit(f"response ~ {c}", frame).fit(disp=0).pvalues[c] for c in STUDY_CANDIDATES
    }
    selected = [c for c in STUDY_CANDIDATES if pvals[c] < 0.10]
    ref = smf.logit("response ~ " + " + ".join(["group"] + selected), frame).fit(disp=0)
    row = _fit("logistic_study_pipeline", study)["response_logor_adj"]
    _same_logit(row, ref, "group")
    assert row.message.startswith("selected: " + (", ".join(selected) or "none"))
    # the study's apparent error: modelling non-response flips the sign, same SE and p
    flip = _fit("logistic_study_pipeline", study, model_nonresponse=True)["response_logor_adj"]
    np.testing.assert_allclose(
        [flip.estimate, flip.se, flip.p_value], [-row.estimate, row.se, row.p_value], rtol=1e-6
    )
    # forced variables and a categorical candidate screened by its likelihood-ratio test
    lr_p = smf.logit("response ~ C(primary)", frame).fit(disp=0).llr_pvalue
    cat = _fit(
        "logistic_study_pipeline", study, candidates=["primary"], screen_p=1.0, forced=["age"]
    )["response_logor_adj"]
    _same_logit(cat, smf.logit("response ~ group + C(primary) + age", frame).fit(disp=0), "group")
    none = _fit("logistic_study_pipeline", study, candidates=["primary"], screen_p=lr_p * 0.999)[
        "response_logor_adj"
    ]
    assert none.message.startswith("selected: none")
    assert none.estimate == pytest.approx(_fit("logistic", study)["response_logor"].estimate)


def test_gcomp_matches_manual_standardization(study, frame):
    res = smf.logit(f"response ~ group + {ADJ}", frame).fit(disp=0)
    p0 = res.predict(frame.assign(group=0)).to_numpy()
    p1 = res.predict(frame.assign(group=1)).to_numpy()
    r0, r1 = p0.mean(), p1.mean()
    rows = _fit("gcomp", study)
    assert rows["response_rd"].estimate == pytest.approx(r1 - r0, rel=1e-7)
    assert rows["response_logor"].estimate == pytest.approx(
        np.log(r1 / (1 - r1)) - np.log(r0 / (1 - r0)), rel=1e-7
    )
    # delta-method SE: numerical gradient of the standardized RD wrt the coefficients, model
    # covariance, plus the variance of the empirical covariate distribution
    X = res.model.exog.copy()
    j = res.model.exog_names.index("group")
    X0, X1 = X.copy(), X.copy()
    X0[:, j], X1[:, j] = 0, 1

    def rd(b):
        return expit(X1 @ b).mean() - expit(X0 @ b).mean()

    b = res.params.to_numpy()
    grad = np.array([(rd(b + h) - rd(b - h)) / 2e-6 for h in np.eye(b.size) * 1e-6])
    var = grad @ res.cov_params().to_numpy() @ grad + np.var(p1 - p0) / len(p0)
    assert rows["response_rd"].se == pytest.approx(np.sqrt(var), rel=1e-5)
    # bootstrap option: close to the delta method, reproducible from the passed rng only
    boot = _fit("gcomp", study, seed=11, se="bootstrap", n_boot=200)
    assert boot["response_rd"].estimate == rows["response_rd"].estimate
    for e in ("response_rd", "response_logor"):
        assert boot[e].se == pytest.approx(rows[e].se, rel=0.25)
    again = _fit("gcomp", study, seed=11, se="bootstrap", n_boot=200)
    assert again["response_rd"].se == boot["response_rd"].se


def test_ipw_matches_weighted_glm(study, frame):
    e = smf.logit(f"group ~ {ADJ}", frame).fit(disp=0).predict(frame).to_numpy()
    g, y = frame["group"].to_numpy(float), frame["response"].to_numpy(float)
    w = np.where(g == 1, g.mean() / e, (1 - g.mean()) / (1 - e))
    Z = sm.add_constant(g)
    res = sm.GLM(y, Z, family=sm.families.Binomial(), var_weights=w).fit(cov_type="HC0")
    rows = _fit("ipw_or", study)
    lor = rows["response_logor"]
    assert lor.estimate == pytest.approx(res.params[1], rel=1e-7)
    assert lor.se == pytest.approx(res.bse[1], rel=1e-7)
    # the HC0 sandwich with var_weights is the IPW sandwich: meat sum w^2 (y - mu)^2 z z'
    mu = expit(Z @ res.params)
    A = (Z * (w * mu * (1 - mu))[:, None]).T @ Z
    B = (Z * ((w * (y - mu)) ** 2)[:, None]).T @ Z
    assert lor.se == pytest.approx(
        np.sqrt((np.linalg.inv(A) @ B @ np.linalg.inv(A))[1, 1]), rel=1e-6
    )
    # weighted (Hajek) risk difference and its sandwich SE
    R = [np.average(y[g == a], weights=w[g == a]) for a in (0, 1)]
    var = sum(np.sum((w[g == a] * (y[g == a] - R[a])) ** 2) / w[g == a].sum() ** 2 for a in (0, 1))
    assert rows["response_rd"].estimate == pytest.approx(R[1] - R[0], rel=1e-7)
    assert rows["response_rd"].se == pytest.approx(np.sqrt(var), rel=1e-6)
    # stacked sandwich = numerical-Jacobian M-estimation sandwich of (propensity, MSM) equations
    Xp = sm.add_constant(frame[list(ADJUSTMENT_SET)].to_numpy(float))
    k, n = Xp.shape[1], len(y)

    def psi(theta):
        ee = expit(Xp @ theta[:k])
        ww = np.where(g == 1, g.mean() / ee, (1 - g.mean()) / (1 - ee))
        return np.hstack([Xp * (g - ee)[:, None], Z * (ww * (y - expit(Z @ theta[k:])))[:, None]])

    th = np.r_[smf.logit(f"group ~ {ADJ}", frame).fit(disp=0).params.to_numpy(), res.params]
    Jac = np.column_stack(
        [-(psi(th + h).mean(0) - psi(th - h).mean(0)) / 2e-6 for h in np.eye(th.size) * 1e-6]
    )
    Ji = np.linalg.inv(Jac)
    V = Ji @ (psi(th).T @ psi(th) / n) @ Ji.T / n
    stacked = _fit("ipw_or", study, se="stacked")["response_logor"]
    assert stacked.estimate == lor.estimate
    assert stacked.se == pytest.approx(np.sqrt(V[k + 1, k + 1]), rel=1e-4)


def test_risk_difference_matches_library(study, frame):
    g, y = frame["group"].to_numpy(), frame["response"].to_numpy()
    x1, n1, x0, n0 = y[g == 1].sum(), (g == 1).sum(), y[g == 0].sum(), (g == 0).sum()
    row = _fit("risk_difference", study)["response_rd"]
    lo, hi = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff")
    p = stats.chi2_contingency([[n0 - x0, x0], [n1 - x1, x1]], correction=False).pvalue
    p1, p0 = x1 / n1, x0 / n0
    se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    np.testing.assert_allclose(
        [row.estimate, row.se, row.ci_low, row.ci_high, row.p_value],
        [p1 - p0, se, lo, hi, p],
        rtol=1e-9,
    )
    wald = _fit("risk_difference", study, ci="wald", alpha=0.1)["response_rd"]
    q = stats.norm.ppf(0.95)
    np.testing.assert_allclose([wald.ci_low, wald.ci_high], [p1 - p0 - q * se, p1 - p0 + q * se])


def _study_rule(table):
    table = np.asarray(table)
    if stats.contingency.expected_freq(table).min() < 5:
        return stats.fisher_exact(table).pvalue, "fisher"
    return stats.chi2_contingency(table, correction=False).pvalue, "chi2"


def test_ae_tests_match_library(study):
    used = set()
    for cohort in (study, Cohort.from_frames(study.patients.iloc[:40], study.visits)):
        p = cohort.patients
        rows = _fit("ae_tests", cohort)
        cols = [c for c in p.columns if c.startswith("ae_")]
        assert len(cols) == 10 and set(rows) == {f"{c}_rd" for c in cols}
        g = p["group"].to_numpy()
        for c in cols:
            v = p[c].to_numpy()
            x1, n1, x0, n0 = v[g == 1].sum(), (g == 1).sum(), v[g == 0].sum(), (g == 0).sum()
            pv, test = _study_rule([[n0 - x0, x0], [n1 - x1, x1]])
            used.add(test)
            lo, hi = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff")
            r = rows[f"{c}_rd"]
            np.testing.assert_allclose(
                [r.estimate, r.ci_low, r.ci_high, r.p_value],
                [x1 / n1 - x0 / n0, lo, hi, pv],
                rtol=1e-9,
                err_msg=c,
            )
    assert used == {"fisher", "chi2"}  # both branches of the study's rule were exercised


def test_balance_matches_library(study, frame):
    rows = _fit("balance", study)
    g = frame["group"].to_numpy()
    for c in ("age", "charlson", "nrs0"):
        v1, v0 = frame[c][g == 1], frame[c][g == 0]
        r = rows[f"balance_{c}"]
        assert r.estimate == pytest.approx(v1.mean() - v0.mean())
        assert r.p_value == pytest.approx(stats.ttest_ind(v1, v0).pvalue)
        assert r.ci_low < r.estimate < r.ci_high
    for c in ("male", "lesions_gt3", "spinal", "fracture", "visceral", "strong_opioid"):
        t = pd.crosstab(frame["group"], frame[c]).to_numpy()
        r = rows[f"balance_{c}"]
        assert r.p_value == pytest.approx(_study_rule(t)[0])
        assert r.estimate == pytest.approx(frame[c][g == 1].mean() - frame[c][g == 0].mean())
    bands = pd.cut(frame["ecog"], [-1, 1, 2, 4])
    for c, col in (("ecog", bands), ("primary", frame["primary"]), ("site", frame["site"])):
        t = pd.crosstab(frame["group"], col).to_numpy()
        chi2 = stats.chi2_contingency(t, correction=False)
        r = rows[f"balance_{c}"]
        assert r.estimate == pytest.approx(np.sqrt(chi2.statistic / t.sum()))  # Cramer's V
        if stats.contingency.expected_freq(t).min() >= 5:
            assert r.p_value == pytest.approx(chi2.pvalue)
    assert t.shape[1] == 3 and len(rows) == 13
    pv = [r.p_value for k, r in rows.items() if k != "balance_any"]
    assert rows["balance_any"].p_value == min(pv)
    assert rows["balance_any"].estimate == sum(p < 0.05 for p in pv)
    mw = _fit("balance", study, continuous_test="mannwhitney", covariates=["age"])["balance_age"]
    assert mw.p_value == pytest.approx(
        stats.mannwhitneyu(frame["age"][g == 1], frame["age"][g == 0]).pvalue
    )


def test_fisher_kernel_matches_scipy():
    """The vectorised hypergeometric Fisher test equals scipy.stats.fisher_exact (ties too)."""
    rng = np.random.default_rng(3)
    tables = [(3, 10, 7, 10), (5, 10, 5, 10), (0, 12, 0, 9), (4, 4, 0, 7), (1, 1, 0, 1)]
    for i in range(600):
        big = int(rng.integers(2, 250)) if i % 3 else int(rng.integers(2, 25))
        n1 = big // 2 if i % 4 == 0 else int(rng.integers(1, big))  # equal arms: tied tables
        x1, x0 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, big - n1 + 1))
        tables.append((x1, n1, x0, big - n1))
    x1, n1, x0, n0 = np.array(tables).T
    ref = [
        stats.fisher_exact([[d - c, c], [b - a, a]]).pvalue for a, b, c, d in zip(x1, n1, x0, n0)
    ]
    np.testing.assert_allclose(fisher_2x2(x1, n1, x0, n0), ref, rtol=1e-11, atol=0)


#: option sets under which both engines of the table estimators are compared
TABLE_VARIANTS = (
    ("ae_tests", {}),
    ("ae_tests", {"test": "fisher", "ci": "wald"}),
    ("ae_tests", {"test": "chi2", "types": ["nausea", "skin", "nope"]}),
    ("balance", {}),
    ("balance", {"continuous_test": "welch", "test": "fisher"}),
    ("balance", {"continuous_test": "mannwhitney", "ecog_bands": False, "ci": "wald"}),
    ("balance", {"test": "chi2", "covariates": ["age", "primary", "male", "nope", "rt_fractions"]}),
    ("risk_difference", {}),
    ("risk_difference", {"test": "study", "missing_as": "nonresponse"}),
    ("risk_difference", {"test": "fisher", "ci": "wald"}),
)
FIELDS = ("estimate", "se", "ci_low", "ci_high", "p_value")


def _table_cohorts():
    sc = load_scenario(
        "study",
        {"missingness.covariates.mechanism": "mcar", "missingness.covariates.fraction": 0.15},
    )
    for i in range(6):
        c = generate(sc, rng_for(11, sc.key, "data", i), n=(205, 24, 40)[i % 3])
        yield c if i % 2 == 0 else Cohort.from_frames(c.patients.copy(), c.visits.copy())
    # trouble: an AE type without data in an arm, a covariate missing in an arm, constant ones
    c = generate(sc, rng_for(11, sc.key, "data", 9), n=60)
    g = c.patients["group"].to_numpy()
    yield _edited(
        c,
        ae_skin=np.where(g == 1, np.nan, c.patients["ae_skin"]),
        male=np.where(g == 0, np.nan, c.patients["male"]),
        age=np.where(g == 1, np.nan, c.patients["age"]),
        charlson=np.full(c.n, 2.0),
        ae_flare=np.zeros(c.n),
        ae_any=np.ones(c.n),
    )


def test_table_engines_give_the_same_rows():
    """fast (one numpy pass) and reference (scipy.stats per test) rows: the same statuses,
    messages and n_used, numbers within 1e-12 relative (p-values: the Fisher kernel's ~5e-13),
    the Monte Carlo Fisher-Freeman-Halton p-values identical (the same draws from the rng)."""
    seen = set()
    for i, c in enumerate(_table_cohorts()):
        for kind, opts in TABLE_VARIANTS:
            fast = build_estimator(kind, engine="fast", **opts).fit(c, np.random.default_rng(i))
            ref = build_estimator(kind, engine="reference", **opts).fit(c, np.random.default_rng(i))
            assert [r.engine for r in fast] == ["fast"] * len(ref)
            for a, b in zip(fast, ref, strict=True):
                what = (kind, opts, i, a.estimand)
                assert (a.estimand, a.status, a.message, a.n_used) == (
                    b.estimand,
                    b.status,
                    b.message,
                    b.n_used,
                ), what
                np.testing.assert_allclose(
                    [getattr(a, f) for f in FIELDS],
                    [getattr(b, f) for f in FIELDS],
                    rtol=1e-12,
                    atol=0,
                    err_msg=str(what),
                )
                seen.add(a.status)
                if "Monte Carlo" in a.message:
                    seen.add("monte carlo")
                    assert a.p_value == b.p_value, what
    assert seen == {"ok", "failed", "monte carlo"}


def test_batched_screening_fits_equal_one_by_one_fits():
    """univariable_logistic_batch: each clean model = logistic_fit on its rows (1e-12 in SE
    units, SEs 1e-12 relative); a model logistic_fit / engines.logit cannot fit plainly
    (constant, separated, tiny, no variation) is never reported clean."""
    rng = np.random.default_rng(8)
    n = 120
    y = (rng.random(n) < 0.4).astype(float)
    x = np.column_stack(
        [
            rng.normal(60, 10, n),  # age-like: far from 0
            rng.integers(0, 2, n).astype(float),
            rng.integers(0, 5, n).astype(float),
            np.full(n, 3.0),  # constant
            y + 0.0,  # separation
            np.where(y == 1, rng.random(n) + 1, rng.random(n)),  # quasi-complete
            rng.normal(0, 1, n),
            rng.normal(0, 1, n),
        ]
    )
    ok = np.ones_like(x, dtype=bool)
    ok[rng.random(n) < 0.2, 1] = False  # missing values
    ok[2:, 7] = False  # 2 rows for 2 parameters
    ok[:, 6] &= y == 1  # no variation in y
    b, V, clean = univariable_logistic_batch(y, x, ok, maxiter=100)
    assert list(clean) == [True, True, True, False, False, False, False, False]
    for j in np.flatnonzero(clean):
        m = ok[:, j]
        r = logistic_fit(y[m], np.column_stack([np.ones(m.sum()), x[m, j]]), maxiter=100)
        assert r.status == "ok"
        np.testing.assert_allclose(b[j], r.params, rtol=0, atol=1e-12 * r.bse.max())
        np.testing.assert_allclose(np.sqrt(np.diag(V[j])), r.bse, rtol=1e-12)
        np.testing.assert_allclose(V[j], r.cov_params, rtol=1e-11)


# --------------------------------------------------------------------------- 2. recovery
@pytest.fixture(scope="module")
def large():
    # truth.n = 50 000 keeps a cold truth cache under ~10 s; its MC SE enters the tolerance
    # no dropout: every patient has a response (dead = 0), so n_used = n
    sc = load_scenario(
        "randomized",
        {
            "cohort.n": 6000,
            "response.mode": "direct",
            "truth.n": 50_000,
            "missingness.mechanism": "none",
        },
    )
    assert sc.params["confounding"]["strength"] == 0
    return generate(sc, rng_for(2, sc.key, "data", 0)), truth(sc)


@pytest.mark.parametrize(
    "kind", ["logistic", "logistic_adjusted", "gcomp", "ipw_or", "risk_difference", "ae_tests"]
)
def test_recovers_truth_on_large_randomized_cohort(large, kind):
    cohort, tr = large
    rows = build_estimator(kind).fit(cohort, np.random.default_rng(0))
    assert rows
    for r in rows:
        assert r.status == "ok", (r.estimand, r.message)
        tol = 4 * np.hypot(r.se, tr.mcse(r.estimand))
        assert abs(r.estimate - tr[r.estimand]) <= tol, (r.estimand, r.estimate, tr[r.estimand])
        assert r.ci_low < r.estimate < r.ci_high and r.n_used == cohort.n


# --------------------------------------------------------------------------- 3. degenerate
def _check_failed(cohort, kinds, needle, **opts):
    for kind in kinds:
        rows = build_estimator(kind, **opts).fit(cohort, np.random.default_rng(0))
        assert rows and {r.estimand for r in rows} == set(build_estimator(kind, **opts).targets())
        for r in rows:
            assert r.status == "failed", (kind, r.estimand, r.status, r.message)
            assert needle in r.message, (kind, r.message)
            assert np.isnan(r.estimate)


def test_degenerate_cohorts_fail_cleanly(study):
    n = study.n
    g = study.patients["group"].to_numpy()
    nrs0 = study.patients["nrs0"].to_numpy()
    state = np.random.get_state()  # noqa: NPY002
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _check_failed(
            _edited(study, response=np.ones(n)),
            BINARY_KINDS,
            "all 205 analysed patients are responders",
        )
        _check_failed(_edited(study, response=np.zeros(n)), BINARY_KINDS, "none of the 205")
        # perfect separation by group
        sep = _edited(study, response=g.astype(float))
        _check_failed(sep, set(BINARY_KINDS) - {"risk_difference"}, "separation")
        # perfect and quasi-complete separation by a covariate (statsmodels + LP check)
        _check_failed(
            _edited(study, response=(nrs0 <= 6).astype(float)),
            ["logistic_adjusted", "gcomp"],
            "separation",
        )
        low = (nrs0 <= 5).astype(float)
        quasi = _edited(
            study, low=low, response=np.where(low == 1, 1.0, study.patients["response"])
        )
        _check_failed(
            quasi, ["logistic_adjusted"], "quasi-complete separation", covariates=["age", "low"]
        )
        # an arm with no observed week-12 response
        _check_failed(
            _edited(study, response=np.where(g == 0, np.nan, 1.0 * (nrs0 < 8))),
            BINARY_KINDS,
            "control (group 0) arm has no patient",
        )
        # an arm empty altogether
        obs_only = Cohort.from_frames(study.patients[g == 1], study.visits)
        _check_failed(obs_only, TABLE_KINDS, "control (group 0) arm has no patients")
        # singular design: constant or collinear covariates; propensity separation (positivity)
        _check_failed(
            _edited(study, fracture=np.zeros(n)),
            ["logistic_adjusted"],
            "constant column(s) in the analysed patients: fracture",
            covariates=["age", "fracture"],
        )
        _check_failed(
            _edited(study, age2=2 * study.patients["age"]),
            ["logistic_adjusted", "gcomp", "ipw_or"],
            "collinear",
            covariates=["age", "age2"],
        )
        _check_failed(_edited(study, group=(nrs0 >= 8).astype(int)), ["ipw_or"], "propensity model")
        _check_failed(
            study, ["logistic_adjusted"], "column 'nope' is not in the cohort", covariates=["nope"]
        )
        # the study pipeline drops a candidate whose screening model fails, and says so
        row = build_estimator("logistic_study_pipeline", candidates=["nrs0", "age"]).fit(
            _edited(study, response=(nrs0 <= 6).astype(float))
        )[0]
        assert "screening model failed for: nrs0" in row.message
    assert not caught, [str(w.message) for w in caught]
    assert np.array_equal(state[1], np.random.get_state()[1])  # noqa: NPY002


def test_no_warnings_escape_and_global_rng_untouched(study):
    small = Cohort.from_frames(
        study.patients.iloc[:30], study.visits
    )  # Fisher (incl. Monte Carlo 2 x K)
    np.random.seed(12345)  # noqa: NPY002
    before = np.random.get_state()  # noqa: NPY002
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for kind in BINARY_KINDS + TABLE_KINDS:
            for cohort in (study, small):
                a = build_estimator(kind).fit(cohort, np.random.default_rng(5))
                b = build_estimator(kind).fit(cohort, np.random.default_rng(5))
                key = [(r.estimand, r.estimate, r.se, r.p_value, r.status) for r in a]
                assert key == [(r.estimand, r.estimate, r.se, r.p_value, r.status) for r in b]
        boot = build_estimator("gcomp", se="bootstrap", n_boot=50).fit(
            study, np.random.default_rng(1)
        )
        assert all(r.status == "ok" for r in boot)
    assert not caught, [str(w.message) for w in caught]
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_options_are_validated():
    with pytest.raises(ValueError, match="ci='exact'"):
        build_estimator("risk_difference", ci="exact")
    with pytest.raises(ValueError, match="unknown option 'covariate'"):
        build_estimator("gcomp", covariate=["age"])
    with pytest.raises(ValueError, match="screen_p"):
        build_estimator("logistic_study_pipeline", screen_p=0)
    assert build_estimator("balance", covariates=["age"]).targets() == (
        "balance_age",
        "balance_any",
    )


@pytest.mark.parametrize(
    "name",
    [
        "logistic",
        "logistic_adjusted",
        "logistic_study_pipeline",
        "gcomp",
        "ipw_or",
        "risk_difference",
        "ae_tests",
        "balance",
    ],
)
def test_config_files(name):
    path = CONF / f"{name}.yaml"
    text = path.read_text()
    assert text.splitlines()[0] == f"# @package estimators.{name}"
    cfg = yaml.safe_load(text)
    kind = cfg.pop("kind")
    est = build_estimator(kind, name=name, **cfg)
    fields = {f.name for f in dataclasses.fields(REGISTRY[kind])} - {"name", "options"}
    assert set(cfg) == fields, f"{path.name} should document every option: {sorted(fields)}"
    default = build_estimator(kind)
    for k, v in cfg.items():  # the config's values are the defaults (or equivalent to them)
        d = getattr(default, k)
        assert v == d or (k == "covariates" and d is None and tuple(v) == ADJUSTMENT_SET), k
    assert est.targets()
