"""Agreement of ``engine: fast`` with ``engine: reference`` on whole estimators.

Every estimator that has a fast engine is fitted twice on the same cohort with the same rng --
once per engine -- and the rows must agree:

  estimates       within 1e-6 relative (1e-9 absolute near 0)
  standard errors within 1e-5 relative
  p-values, CIs   within 1e-6 absolute
  status          identical (ok / warning / failed), n_used identical, failed rows on both sides

Cohorts: 10 per preset (``study``, ``randomized``, ``null``), 4 at n = 205 and 6 at a small n
(30-60), with monotone dropout (MAR or MNAR), intermittent missed visits, missing baseline
covariates, and survival times rounded to 0.1 month on every other cohort (many tied times);
both cohort representations (arrays from ``generate``, pandas frames from ``Cohort.from_frames``).
Then degenerate cohorts (no events, empty arm, unreachable median, boundary random-intercept
variance, separation, constant / collinear covariates, tiny n): both engines must detect the
same failures.

Reference precision. Both engines run to the optimum (:mod:`estimators.engines`): lifelines'
``CoxPHFitter`` with ``LIFELINES_FIT_OPTIONS`` (no early relative-likelihood stop) against the
exact Newton-Raphson kernel, statsmodels MixedLM at the root of its own profile score against the
exact profiled kernel (both with the standard covariance (X' V^-1 X)^-1), Logit by Newton to
1e-10 in both, and the closed-form OLS, Kaplan-Meier (R's median rule), log-rank and RMST; the
rows agree to ~1e-10, far inside the tolerances above.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from palliasim.estimators import build_estimator, engines
from palliasim.estimators.base import REGISTRY, StatisticalTrouble
from palliasim.sim import generate, load_scenario, rng_for
from palliasim.sim.cohort import Cohort

CONF = Path(__file__).resolve().parents[1] / "conf" / "estimators"
EST_RTOL, EST_ATOL = 1e-6, 1e-9
SE_RTOL = 1e-5
P_ATOL = 1e-6
CI_RTOL = 1e-6

#: estimator configs with a fast engine (conf/estimators/<name>.yaml), with test-time overrides
#: that keep the reference fits affordable (fewer imputations / bootstrap resamples).
FAST_CONFIGS = {
    "lmm": {},
    "lmm_adjusted": {},
    "gee": {},
    "ancova_cc": {},
    "locf_ancova": {},
    "mi_ancova": {"m": 4, "cycles": 3},
    "ancova_qol": {},
    "ancova_markers": {},
    "km_median": {"n_boot": 40},
    "logrank": {},
    "cox": {},
    "cox_adjusted": {},
    "iptw_cox": {},
    "rmst": {},
    "logistic": {},
    "logistic_adjusted": {},
    "logistic_study_pipeline": {},
    "gcomp": {},
    "ipw_or": {},
    "risk_difference": {},
    "ae_tests": {},
    "balance": {},
}
#: extra option sets exercised on some cohorts (ML instead of REML, stacked SE, trimming, ...)
VARIANTS = {
    "lmm_ml": ("lmm", {"reml": False, "bonferroni": False}),
    "ipw_or_stacked": ("ipw_or", {"se": "stacked"}),
    "iptw_cox_trim": ("iptw_cox", {"trim": 0.05}),
    "gcomp_boot": ("gcomp", {"se": "bootstrap", "n_boot": 20}),
    "cox_primary": ("cox", {"covariates": ["age", "primary", "ecog"]}),
    "lmm_primary": ("lmm", {"covariates": ["age", "primary"], "reml": False}),
    "gee_primary": ("gee", {"covariates": ["age", "primary"], "bonferroni": True}),
    "balance_welch_fisher": ("balance", {"continuous_test": "welch", "test": "fisher"}),
    "ae_tests_fisher_wald": ("ae_tests", {"test": "fisher", "ci": "wald"}),
}


def _spec(name: str, **override) -> tuple[str, dict]:
    opts = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    kind = opts.pop("kind")
    opts.update(override)
    opts.pop("engine", None)
    return kind, opts


def _pair(name: str, kind: str, opts: dict):
    fast = build_estimator(kind, name=name, engine="fast", **opts)
    ref = build_estimator(kind, name=name, engine="reference", **opts)
    return fast, ref


def _specs(variants: bool):
    out = {n: _spec(n, **o) for n, o in FAST_CONFIGS.items()}
    if variants:
        for n, (base, o) in VARIANTS.items():
            kind, opts = _spec(base)
            out[n] = (kind, {**opts, **o})
    return out


# --------------------------------------------------------------------------- comparison


def _close(a, b, rtol, atol):
    if np.isnan(a) or np.isnan(b):
        return np.isnan(a) and np.isnan(b)
    if np.isinf(a) or np.isinf(b):
        return a == b
    return abs(a - b) <= rtol * abs(b) + atol


def compare_rows(fast_rows, ref_rows, label: str) -> list[str]:
    """Differences between the two engines' rows (empty list = agreement)."""
    bad = []
    if [r.estimand for r in fast_rows] != [r.estimand for r in ref_rows]:
        return [f"{label}: estimands differ"]
    for f, r in zip(fast_rows, ref_rows):
        where = f"{label} {f.estimand}"
        if f.engine != "fast" or r.engine != "reference":
            bad.append(f"{where}: engine labels {f.engine}/{r.engine}")
        if f.status != r.status:
            bad.append(
                f"{where}: status fast={f.status} ({f.message[:120]}) vs "
                f"reference={r.status} ({r.message[:120]})"
            )
            continue
        if f.n_used != r.n_used:
            bad.append(f"{where}: n_used {f.n_used} vs {r.n_used}")
        if f.status == "failed":
            continue
        checks = (
            ("estimate", f.estimate, r.estimate, EST_RTOL, EST_ATOL),
            ("se", f.se, r.se, SE_RTOL, 0.0),
            ("p_value", f.p_value, r.p_value, 0.0, P_ATOL),
            # 1e-6 absolute; relative for the huge bounds of a diverging (monotone) Cox fit
            ("ci_low", f.ci_low, r.ci_low, CI_RTOL, P_ATOL),
            ("ci_high", f.ci_high, r.ci_high, CI_RTOL, P_ATOL),
        )
        for what, a, b, rt, at in checks:
            if not _close(a, b, rt, at):
                bad.append(f"{where}: {what} fast={a!r} reference={b!r}")
    return bad


def check_agreement(cohort, specs, seed: int, label: str) -> list[str]:
    bad = []
    for name, (kind, opts) in specs.items():
        fast, ref = _pair(name, kind, opts)
        rf = fast.fit(cohort, np.random.default_rng(seed))
        rr = ref.fit(cohort, np.random.default_rng(seed))
        bad += compare_rows(rf, rr, f"{label} {name}")
    return bad


# --------------------------------------------------------------------------- cohorts

MISSING = (
    {"missingness.mechanism": "mar", "missingness.intermittent": 0.1},
    {"missingness.mechanism": "mnar", "missingness.intermittent": 0.05},
    {
        "missingness.mechanism": "mar",
        "missingness.covariates.mechanism": "mcar",
        "missingness.covariates.fraction": 0.1,
    },
    {"missingness.mechanism": "mnar", "missingness.target_week12": 0.3},
    {
        "missingness.mechanism": "mar",
        "missingness.intermittent": 0.2,
        "missingness.covariates.mechanism": "mar",
    },
)
PRESETS = ("study", "randomized", "null")
CASES = [(p, i) for p in PRESETS for i in range(10)]
N205 = (0, 3, 6, 9)  # the other cohorts have n in 30..60


def with_patients(c: Cohort, **cols) -> Cohort:
    """A copy of generated cohort ``c`` with some patient arrays replaced (array-backed)."""
    return Cohort({**c.arrays, **cols}, dict(c.visit_arrays), dict(c._cats))


def make_cohort(preset: str, i: int) -> Cohort:
    sc = load_scenario(preset, MISSING[i % len(MISSING)])
    rng = rng_for(77, sc.key, "data", i)
    n = 205 if i in N205 else int(30 + (i * 7) % 31)
    c = generate(sc, rng, n=n)
    if i % 4 in (1, 2):  # ties: survival times to 0.1 month
        c = with_patients(
            c,
            pfs_months=np.round(np.asarray(c.arrays["pfs_months"], float), 1),
            os_months=np.round(np.asarray(c.arrays["os_months"], float), 1),
        )
    if i % 3 == 2:  # the pandas representation (estimators read frames, not arrays)
        c = Cohort.from_frames(c.patients.copy(), c.visits.copy())
    return c


@pytest.mark.parametrize("preset,i", CASES, ids=[f"{p}-{i}" for p, i in CASES])
def test_engines_agree_on_random_cohorts(preset, i):
    c = make_cohort(preset, i)
    bad = check_agreement(c, _specs(variants=i in (0, 5)), 1000 + i, f"{preset}#{i} n={c.n}")
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- degenerate cohorts


@pytest.fixture(scope="module")
def base():
    sc = load_scenario("study", {})
    return generate(sc, rng_for(5, sc.key, "data", 0), n=90)


def _frames(c: Cohort, patients=None, visits=None) -> Cohort:
    return Cohort.from_frames(
        c.patients.copy() if patients is None else patients,
        c.visits.copy() if visits is None else visits,
    )


def _degenerate(c: Cohort):
    p, v = c.patients, c.visits
    g = p["group"].to_numpy()
    out = {}
    # no pfs events in group 1; all os censored
    q = p.copy()
    q.loc[g == 1, "pfs_event"] = 0
    q["os_event"] = 0
    out["no_events"] = _frames(c, q)
    # one arm empty
    keep = g == 0
    out["empty_arm"] = _frames(c, p[keep].copy(), v[v["id"].isin(p.loc[keep, "id"])].copy())
    # pfs median not reached in group 1
    q = p.copy()
    q.loc[g == 1, "pfs_event"] = 0
    q.loc[g == 1, "pfs_months"] = q.loc[g == 1, "pfs_months"] + 100.0
    q.loc[(g == 1) & (np.arange(len(q)) % 4 == 0), "pfs_event"] = 1
    out["median_not_reached"] = _frames(c, q)
    # response perfectly predicted by group: separation
    q = p.copy()
    q["response"] = q["group"].astype(float)
    out["separation"] = _frames(c, q)
    # response predicted by a covariate (quasi-separation in the adjusted model)
    q = p.copy()
    q["response"] = np.where(q["age"] > q["age"].median(), 1.0, 0.0)
    out["covariate_separation"] = _frames(c, q)
    # a covariate constant in the analysed patients
    q = p.copy()
    q["visceral"] = 0
    q["strong_opioid"] = 1
    out["constant_covariates"] = _frames(c, q)
    # a binary covariate with no events at one level (monotone Cox likelihood)
    q = p.copy()
    q.loc[q["male"] == 1, "pfs_event"] = 0
    out["monotone_cox"] = _frames(c, q)
    # every patient's residuals sum to zero: random-intercept variance on the boundary
    complete = v.groupby("id")["nrs"].transform(lambda x: x.notna().all())
    vb = v[complete].copy()
    pb = p[p["id"].isin(vb["id"])].copy()
    sign = np.random.default_rng(5).choice([-1.0, 1.0], size=pb.shape[0])
    pattern = np.tile([1.0, -1.0, 1.0, -1.0, 0.0], pb.shape[0])
    vb["nrs"] = 5.0 + 2.0 * pattern * np.repeat(sign, 5)
    out["lmm_boundary"] = _frames(c, pb, vb)
    # no post-baseline NRS in group 1
    vv = v.copy()
    vv.loc[(vv["group"] == 1) & (vv["week"] > 0), "nrs"] = np.nan
    out["no_followup_arm"] = _frames(c, None, vv)
    # constant outcomes
    vv = v.copy()
    vv["nrs"] = np.where(np.isfinite(vv["nrs"]), 5.0, np.nan)
    q = p.copy()
    q["nrs12"] = np.where(np.isfinite(q["nrs12"]), 5.0, np.nan)
    out["constant_nrs"] = _frames(c, q, vv)
    # tiny cohort
    ids = p["id"].to_numpy()[np.r_[np.flatnonzero(g == 0)[:6], np.flatnonzero(g == 1)[:6]]]
    out["tiny"] = _frames(c, p[p["id"].isin(ids)].copy(), v[v["id"].isin(ids)].copy())
    return out


DEGENERATE = (
    "no_events",
    "empty_arm",
    "median_not_reached",
    "separation",
    "covariate_separation",
    "constant_covariates",
    "monotone_cox",
    "lmm_boundary",
    "no_followup_arm",
    "constant_nrs",
    "tiny",
)


@pytest.mark.parametrize("case", DEGENERATE)
def test_engines_detect_the_same_failures(base, case):
    c = _degenerate(base)[case]
    specs = _specs(variants=False)
    bad = check_agreement(c, specs, 7, case)
    assert not bad, "\n".join(bad)
    if case == "lmm_boundary":  # both engines find the boundary optimum and say so
        for engine in ("fast", "reference"):
            rows = build_estimator("lmm", engine=engine).fit(c)
            assert all("random effects covariance is singular" in r.message for r in rows)
    # the trouble is reported (never a silent number): something failed or warned
    statuses = {
        r.status
        for name, (kind, opts) in specs.items()
        for r in build_estimator(kind, name=name, engine="fast", **opts).fit(
            c, np.random.default_rng(7)
        )
    }
    assert statuses & {"failed", "warning"}, case


# --------------------------------------------------------------------------- engine option


def test_fast_is_the_default_where_it_exists_and_configs_say_so():
    for kind, cls in REGISTRY.items():
        est = build_estimator(kind)
        assert est.engine == ("fast" if "fast" in cls.engines else "reference"), kind
    for path in sorted(CONF.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        cls = REGISTRY[cfg["kind"]]
        assert cfg.get("engine") == ("fast" if "fast" in cls.engines else "reference"), path.name
    reference_only = sorted(k for k, cls in REGISTRY.items() if "fast" not in cls.engines)
    for kind in reference_only[:1]:
        with pytest.raises(ValueError, match="engine='fast' is not available.*reference"):
            build_estimator(kind, engine="fast")
    with pytest.raises(ValueError, match="allowed values: reference, fast"):
        build_estimator("cox", engine="turbo")


def test_random_slope_falls_back_to_reference_and_says_so(base):
    est = build_estimator("lmm", random_slope=True, engine="fast")
    assert est.engine == "reference"
    rows = est.fit(base, np.random.default_rng(0))
    assert all(r.engine == "reference" for r in rows)
    assert all("fitted by the reference engine" in r.message for r in rows if r.status != "failed")
    assert build_estimator("lmm", random_slope=True).engine == "reference"


# --------------------------------------------------------------------------- the engines interface


def _surv(rng, n, ties):
    g = rng.integers(0, 2, n).astype(float)
    x = rng.normal(size=n)
    t = rng.exponential(np.exp(-0.4 * g - 0.3 * x)) * 6.0
    c = rng.exponential(8.0, n)
    tt = np.minimum(t, c)
    if ties:
        tt = np.ceil(tt * 2) / 2
    return tt, (t <= c).astype(float), g, x


def _same_type_and_close(a, b, rtol, what):
    assert type(a) is type(b), what
    for fa, fb, name in zip(a, b, a._fields):
        np.testing.assert_allclose(fa, fb, rtol=rtol, atol=1e-12, err_msg=f"{what}.{name}")


@pytest.mark.parametrize("seed", range(4))
def test_engine_operations_agree(seed):
    """Every operation of estimators.engines: one signature, one result type, same numbers."""
    rng = np.random.default_rng(4242 + seed)
    n = (60, 205)[seed % 2]
    t, e, g, x = _surv(rng, n, ties=seed % 2 == 1)
    X = np.column_stack([g, x])
    for kw in ({}, {"weights": rng.uniform(0.3, 3.0, n), "robust": True}):
        f = engines.cox(t, e, X, ["g", "x"], engine="fast", **kw)
        r = engines.cox(t, e, X, ["g", "x"], engine="reference", **kw)
        _same_type_and_close(f, r, 1e-9, f"cox {sorted(kw)}")
    for a in (0, 1):
        m = g == a
        f = engines.km_median(t[m], e[m], 0.05, engine="fast")
        r = engines.km_median(t[m], e[m], 0.05, engine="reference")
        assert type(f) is type(r) and tuple(f) == tuple(r)
        np.testing.assert_allclose(
            engines.rmst(t[m], e[m], 5.0, engine="fast"),
            engines.rmst(t[m], e[m], 5.0, engine="reference"),
            rtol=1e-10,
        )
    _same_type_and_close(
        engines.logrank(t, e, g, engine="fast"),
        engines.logrank(t, e, g, engine="reference"),
        1e-9,
        "logrank",
    )
    D = np.column_stack([np.ones(n), X])
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.8 * g - 0.5 * x)))).astype(float)
    labels = ["Intercept", "g", "x"]
    _same_type_and_close(
        engines.logit(y, D, labels, engine="fast"),
        engines.logit(y, D, labels, engine="reference"),
        1e-9,
        "logit",
    )
    yc = D @ [1.0, 0.5, -0.3] + rng.normal(size=n)
    _same_type_and_close(
        engines.ols(yc, D, engine="fast"), engines.ols(yc, D, engine="reference"), 1e-10, "ols"
    )
    _same_type_and_close(
        engines.ancova(yc, g, x, np.empty((n, 0)), [], engine="fast"),
        engines.ancova(yc, g, x, np.empty((n, 0)), [], engine="reference"),
        1e-10,
        "ancova",
    )
    # posterior draws: one design for 5 draws; 5 chain designs (rows 0-9 shared, the rest
    # perturbed per chain, passed as common rows); the same random numbers in both engines
    Dk = D[None] + np.concatenate([np.zeros((5, n, 1)), rng.normal(size=(5, n, 2)) * 0.3], 2)
    common = engines.common_rows(D[:10], yc[:10])
    for args, kw in (((yc, D), {}), ((yc[10:], Dk[:, 10:]), {"common": common})):
        bf = engines.bayes_draws(*args, 5, np.random.default_rng(seed), 7, engine="fast", **kw)
        br = engines.bayes_draws(*args, 5, np.random.default_rng(seed), 7, engine="reference", **kw)
        np.testing.assert_allclose(bf[0], br[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(bf[1], br[1], rtol=1e-10)
        np.testing.assert_array_equal(bf[2], br[2])
        np.testing.assert_allclose(bf[3], br[3], rtol=1e-9, atol=1e-12)
        assert bf[0].shape == (5, 3) and bf[2].shape == (5, 7)
    Y5 = yc[None] + rng.normal(size=(5, n))
    af = engines.ancova_batch(Y5, g, x, np.empty((n, 0)), [], engine="fast")
    ar = engines.ancova_batch(Y5, g, x, np.empty((n, 0)), [], engine="reference")
    for a, b in zip(af, ar):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    one = engines.ancova(Y5[2], g, x, np.empty((n, 0)), [], engine="reference")
    assert af[0][2] == pytest.approx(one.estimate, rel=1e-10)
    assert af[1][2] == pytest.approx(one.se, rel=1e-10) and af[2:] == (one.df, one.n)
    # random-intercept mixed model: patients with 1-5 visits
    m = n // 2
    sizes = rng.integers(1, 6, m)
    pid = np.repeat(np.arange(m), sizes)
    Xm = np.column_stack([np.ones(pid.size), rng.integers(0, 2, m)[pid], rng.normal(size=pid.size)])
    ym = (
        Xm @ [2.0, -0.5, 0.4]
        + rng.normal(size=m)[pid] * (0.0, 0.8)[seed % 2]
        + rng.normal(size=pid.size)
    )
    for reml in (True, False):
        f = engines.mixed_model(ym, Xm, pid, engine="fast", reml=reml)
        r = engines.mixed_model(ym, Xm, pid, engine="reference", reml=reml)
        assert type(f) is type(r) and bool(f.messages) == bool(r.messages)
        np.testing.assert_allclose(f.params, r.params, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(f.cov, r.cov, rtol=1e-7, atol=1e-12)
    # GEE (exchangeable) on the same clusters, sorted and shuffled: both at the fixed point
    shuffle = rng.permutation(pid.size)
    for order in (np.arange(pid.size), shuffle):
        args = (ym[order], Xm[order], pid[order])
        f = engines.gee(*args, engine="fast")
        r = engines.gee(*args, engine="reference")
        assert type(f) is type(r) and f.messages == r.messages == []
        np.testing.assert_allclose(f.params, r.params, rtol=1e-9, atol=1e-12)
        sd = np.sqrt(np.diag(r.cov))
        assert np.all(np.abs(f.cov - r.cov) <= 1e-9 * np.outer(sd, sd))


def _gee_both(y, X, g):
    """(fast, reference) of engines.gee: a MixedFit or the StatisticalTrouble message."""
    out = []
    for engine in ("fast", "reference"):
        try:
            out.append(engines.gee(y, X, g, engine=engine))
        except StatisticalTrouble as exc:
            out.append(str(exc))
    return out


def test_gee_engines_fail_and_warn_alike(base, monkeypatch):
    """The GEE failure paths give the same outcome in both engines: one row per patient (no
    within-patient pair) and too few pairs fail before any fit with one message; a correlation
    estimate below -1 (pairs of opposite values) fails after it; the iteration limit warns."""
    # a cohort with one post-baseline visit per patient: clusters of size 1
    v = base.visits
    post = v[(v["week"] > 0) & np.isfinite(v["nrs"])]
    vv = v.copy()
    vv.loc[(vv["week"] > 0) & ~vv.index.isin(post.drop_duplicates("id").index), "nrs"] = np.nan
    fast, ref = _pair("gee", *_spec("gee"))
    rf, rr = fast.fit(_frames(base, None, vv)), ref.fit(_frames(base, None, vv))
    assert not compare_rows(rf, rr, "gee one visit")
    assert all(x.status == "failed" and "within-patient pairs" in x.message for x in rf + rr)
    assert [x.message for x in rf] == [x.message for x in rr]
    rng = np.random.default_rng(17)
    k = 40
    X = np.column_stack([np.ones(2 * k), rng.normal(size=2 * k)])
    d = rng.uniform(1.0, 2.0, k)
    y = np.column_stack([d, -d]).ravel() + 0.01 * rng.normal(size=2 * k)
    f, r = _gee_both(y, X, np.arange(2 * k))
    assert f == r and "0 within-patient pairs" in f
    g = np.r_[0, 0, 1, 1, np.arange(2, 2 * k - 2)]  # 2 pairs for 2 parameters
    f, r = _gee_both(y, X, g)
    assert f == r and "2 within-patient pairs of observations for 2 parameters" in f
    f, r = _gee_both(y, X, np.repeat(np.arange(k), 2))
    assert "not positive definite" in f and "not positive definite" in r
    # the iteration limit: warning rows in both engines, saying so
    monkeypatch.setattr(engines, "GEE_MAXITER", 2)
    rf, rr = fast.fit(base), ref.fit(base)
    for rows in (rf, rr):
        assert all(x.status == "warning" for x in rows)
        assert all("GEE did not converge in 2 iterations" in x.message for x in rows)
