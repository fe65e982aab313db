"""Agreement of the fast exact engine (estimators.fast) with the reference libraries.

Tolerances (from the engine's specification):
  estimates   1e-6 relative
  SEs         1e-5 relative
  p-values    1e-6 absolute

Reference-library precision: lifelines' CoxPHFitter stops Newton-Raphson when
|delta| < 1e-7 / relative loglik change < 1e-9 *without* applying the last
step, and statsmodels' MixedLM uses BFGS with gtol=1e-5; at their defaults
both are only accurate to ~1e-3 .. 1e-5 relative.  The tests therefore compare
against those references run to the optimum (lifelines with
``engines.LIFELINES_FIT_OPTIONS``; MixedLM at the root of its own profile
score, ``engines.mixed_model(engine="reference")``) and, at the defaults,
check that our log-likelihood is never lower (our optimum is at least as good).
Conventions of R where the libraries differ: the KM median's midpoint rule
(R's ``quantile.survfit``, checked against values R prints), the robust Cox
SE with Efron ties (checked against a line-by-line transcription of R's
``coxscore.c``), the standard mixed-model covariance (X' V^-1 X)^-1.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test as ll_logrank_test
from lifelines.utils import restricted_mean_survival_time
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.genmod import cov_struct, families
from statsmodels.genmod.generalized_estimating_equations import GEE
from statsmodels.regression.mixed_linear_model import MixedLM

from palliasim.estimators import engines
from palliasim.estimators.design import certainly_full_rank, certainly_full_rank_gram
from palliasim.estimators.fast.cox import cox_fit, score_residuals
from palliasim.estimators.fast.gee import gee_exchangeable
from palliasim.estimators.fast.km import km_fit, km_median, r_quantile, rmst
from palliasim.estimators.fast.lmm import (
    lmm_random_intercept,
    lmm_random_intercept_wide,
    wide_stats,
)
from palliasim.estimators.fast.logistic import logistic_fit
from palliasim.estimators.fast.logrank import logrank_oe, logrank_test
from palliasim.estimators.fast.ols import ols_fit

EST_RTOL = 1e-6
SE_RTOL = 1e-5
P_ATOL = 1e-6

SEEDS = list(range(24))  # >= 20 data sets per kernel
TIGHT_LL = engines.LIFELINES_FIT_OPTIONS


def _n_for(seed: int) -> int:
    # alternate small (20-50) and realistic (205) sample sizes
    return (20, 35, 50, 205)[seed % 4]


def assert_rel(a, b, rtol, what, atol=1e-12):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    err = np.abs(a - b) - rtol * np.abs(b)
    assert np.all(err <= atol), f"{what}: max rel err {np.max(np.abs(a - b) / np.abs(b)):.3e}"


def assert_abs(a, b, atol, what):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    assert np.all(np.abs(a - b) <= atol), f"{what}: max abs err {np.max(np.abs(a - b)):.3e}"


@contextlib.contextmanager
def quiet():
    """Silence the reference libraries' warnings (convergence, approximation...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------- data


def make_survival(rng, n, p=1, beta_scale=0.5, tie_round=1.0, cens_scale=1.5):
    X = rng.normal(size=(n, p))
    X[:, 0] = rng.integers(0, 2, n)  # arm
    if p > 2:
        X[:, 2] = rng.normal(60, 10, n)  # age-like, uncentred
    b = rng.normal(size=p) * beta_scale
    if p > 2:
        b[2] /= 10.0
    lp = (X - X.mean(0)) @ b
    T = rng.exponential(np.exp(-lp)) * 10.0
    C = rng.exponential(cens_scale, size=n) * 10.0
    if tie_round:
        T = np.ceil(T / tie_round) * tie_round
        C = np.ceil(C / tie_round) * tie_round
    E = (T <= C).astype(int)
    return np.minimum(T, C).astype(float), E, X


def make_lmm(rng, m, p, sb, max_visits=5):
    nv = rng.integers(1, max_visits + 1, size=m)  # unbalanced: missing visits
    g = np.repeat(np.arange(m), nv)
    N = g.shape[0]
    X = np.column_stack([np.ones(N), rng.normal(size=(N, p - 1))])
    X[:, 1] = rng.integers(0, 2, m)[g]  # arm (time-invariant)
    X[:, 2] = np.concatenate([np.arange(k) for k in nv])  # visit number
    if p > 3:
        X[:, 3] = rng.normal(60, 10, m)[g]  # baseline covariate
    y = X @ rng.normal(size=p) + rng.normal(size=m)[g] * sb + rng.normal(size=N)
    return y, X, g


# --------------------------------------------------------------------------- OLS


@pytest.mark.parametrize("seed", SEEDS)
def test_ols_matches_statsmodels(seed):
    rng = np.random.default_rng(1000 + seed)
    n = _n_for(seed)
    p = int(rng.integers(1, 8))
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p)) * rng.uniform(0.1, 50, p)])
    y = X @ rng.normal(size=p + 1) + rng.normal(size=n) * 2.0
    r = ols_fit(y, X)
    m = sm.OLS(y, X).fit()
    assert r.status == "ok"
    assert r.df_resid == m.df_resid
    assert_rel(r.params, m.params, EST_RTOL, "params")
    assert_rel(r.bse, m.bse, SE_RTOL, "bse")
    assert_abs(r.pvalues, m.pvalues, P_ATOL, "pvalues")
    assert_rel(r.conf_int, m.conf_int(), EST_RTOL, "conf_int", atol=1e-9)
    assert r.llf == pytest.approx(m.llf, rel=1e-10)


def test_ols_singular_design():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    X = np.column_stack([np.ones(30), x, 2.0 * x])
    r = ols_fit(rng.normal(size=30), X)
    assert r.status == "failed" and "singular" in r.message
    assert not r.converged
    r = ols_fit(np.ones(3), np.ones((3, 3)))
    assert r.status == "failed"


# --------------------------------------------------------------------------- logistic


def _logit_data(rng, n, p=8):
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    X[:, 1] = rng.integers(0, 2, n)
    X[:, 2] = rng.normal(60, 10, n)
    b = rng.normal(size=p) * 0.4
    b[2] = rng.normal() * 0.03
    b[0] = -60 * b[2]
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-(X @ b)))).astype(float)
    return y, X


@pytest.mark.parametrize("seed", SEEDS)
def test_logistic_matches_statsmodels(seed):
    rng = np.random.default_rng(2000 + seed)
    n = _n_for(seed) + 30  # 50..235; tiny n separates too often with 8 covariates
    p = 8 if n >= 80 else 4
    for _ in range(50):  # draw until not separated
        y, X = _logit_data(rng, n, p)
        r = logistic_fit(y, X)
        if r.status == "ok":
            break
    assert r.status == "ok", r.message
    with quiet():
        m = sm.Logit(y, X).fit(disp=0)
        g = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    assert_rel(r.params, m.params, EST_RTOL, "params")
    assert_rel(r.bse, m.bse, SE_RTOL, "bse")
    assert_abs(r.pvalues, m.pvalues, P_ATOL, "pvalues")
    assert r.llf == pytest.approx(m.llf, rel=1e-10)
    assert r.llnull == pytest.approx(m.llnull, rel=1e-8)
    assert_rel(r.conf_int, m.conf_int(), EST_RTOL, "conf_int", atol=1e-9)
    assert_rel(r.params, g.params, EST_RTOL, "glm params")
    assert_rel(r.bse, g.bse, SE_RTOL, "glm bse")


def test_logistic_degenerate():
    x = np.arange(30.0)
    X = np.column_stack([np.ones(30), x])
    # complete separation
    r = logistic_fit((x > 14).astype(float), X)
    assert r.status == "failed" and r.message.startswith("separation")
    # quasi-complete separation (one tied point on the boundary)
    yq = np.r_[(x > 14).astype(float), 1.0, 1.0]
    r = logistic_fit(yq, np.column_stack([np.ones(32), np.r_[x, 14.0, 14.0]]))
    assert r.status == "failed" and r.message.startswith("separation")
    # binary covariate with all events in one level
    rng = np.random.default_rng(3)
    z = rng.integers(0, 2, 60).astype(float)
    y = np.where(z == 1, 1.0, (rng.uniform(size=60) < 0.4).astype(float))
    r = logistic_fit(y, np.column_stack([np.ones(60), z, rng.normal(size=60)]))
    assert r.status == "failed" and "separation" in r.message
    # no variation in y
    r = logistic_fit(np.zeros(30), X)
    assert r.status == "failed"
    # singular design
    r = logistic_fit((rng.uniform(size=30) < 0.5).astype(float), np.column_stack([X, 2 * x]))
    assert r.status == "failed" and "singular" in r.message


# --------------------------------------------------------------------------- Cox


def _cox_df(T, E, X, w=None):
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    df["T"] = T
    df["E"] = E
    if w is not None:
        df["w"] = w
    return df


def _draw_cox(rng, n, p, kw, **gen_kw):
    """Draw data sets until the MLE is finite (small n can give monotone likelihood)."""
    for _ in range(20):
        T, E, X = make_survival(rng, n, p, **gen_kw)
        r = cox_fit(T, E, X, **kw)
        if r.status == "ok":
            return T, E, X, r
        assert "monotone" in r.message or "no events" in r.message, r.message
    raise AssertionError("could not draw a data set with a finite MLE")


def _check_lifelines_params(r, c, df, kw):
    """Coefficients vs lifelines.

    Even with tight fit_options lifelines stops on a relative log-likelihood
    change (and returns the point *before* its last Newton step), which
    leaves ~1e-8 absolute error on the linear-predictor scale -- i.e. more
    than 1e-6 relative for coefficients close to 0.  So (1) compare the fresh
    tight fit with 1e-6 relative + 1e-5 * SE absolute slack, and (2) restart
    lifelines' own Newton-Raphson from our estimate: it must not move
    (|its Newton step| < 1e-14), i.e. our estimate is lifelines' optimum.
    """
    ref = c.params_.values
    slack = 1e-5 * c.standard_errors_.values
    assert np.all(np.abs(r.params - ref) <= EST_RTOL * np.abs(ref) + slack), (
        f"params vs lifelines: max rel err {np.max(np.abs(r.params - ref) / np.abs(ref)):.3e}"
    )
    x = df[[col for col in df.columns if col.startswith("x")]]
    init = r.params * x.std(0).values  # lifelines works on standardised covariates
    with quiet():
        c2 = CoxPHFitter().fit(df, "T", "E", initial_point=init, fit_options=TIGHT_LL, **kw)
    assert_rel(r.params, c2.params_.values, 1e-9, "params vs lifelines restarted at ours")


@pytest.mark.parametrize("seed", SEEDS)
def test_cox_efron_matches_lifelines_and_statsmodels(seed):
    rng = np.random.default_rng(3000 + seed)
    n = _n_for(seed)
    p = 1 if seed % 3 == 0 else (3 if n < 100 else 8)
    T, E, X, r = _draw_cox(rng, n, p, {}, tie_round=1.0 if seed % 2 else 0.5)
    df = _cox_df(T, E, X)
    with quiet():
        c = CoxPHFitter().fit(df, "T", "E", fit_options=TIGHT_LL)
        s = PHReg(T, X, status=E, ties="efron").fit()
        lrt = c.log_likelihood_ratio_test()
    _check_lifelines_params(r, c, df, {})
    assert_rel(r.bse, c.standard_errors_.values, SE_RTOL, "se vs lifelines")
    assert_abs(r.pvalues, c.summary["p"].values, P_ATOL, "p vs lifelines")
    assert r.llf == pytest.approx(c.log_likelihood_, rel=1e-10)
    assert r.lr_stat == pytest.approx(lrt.test_statistic, rel=1e-6, abs=1e-8)
    ci_ref = c.confidence_intervals_.values
    assert np.all(np.abs(r.conf_int - ci_ref) <= 1e-6 * np.abs(ci_ref) + 1e-4 * r.bse[:, None])
    assert_rel(r.params, s.params, EST_RTOL, "params vs statsmodels")
    assert_rel(r.bse, s.bse, SE_RTOL, "se vs statsmodels")
    assert r.llf == pytest.approx(s.llf, rel=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_cox_breslow_matches_statsmodels(seed):
    rng = np.random.default_rng(4000 + seed)
    n = _n_for(seed)
    p = 1 if seed % 3 == 0 else (3 if n < 100 else 8)
    T, E, X, r = _draw_cox(rng, n, p, {"ties": "breslow"}, tie_round=1.0)
    with quiet():
        s = PHReg(T, X, status=E, ties="breslow").fit()
    assert_rel(r.params, s.params, EST_RTOL, "params")
    assert_rel(r.bse, s.bse, SE_RTOL, "se")
    assert_abs(r.pvalues, s.pvalues, P_ATOL, "p")
    assert r.llf == pytest.approx(s.llf, rel=1e-10)


def coxscore_loop(time, status, X, beta, w, efron=True):
    """R survival's ``coxscore.c`` (score residuals, Efron or Breslow), transcribed line by line."""
    o = np.lexsort((-status, time))  # ascending time, deaths before censorings
    t, s, x, ww = time[o], status[o], X[o], w[o]
    n, p = x.shape
    score = np.exp(x @ beta)
    resid = np.zeros((n, p))
    denom = e_denom = deaths = meanwt = 0.0
    a, a2 = np.zeros(p), np.zeros(p)
    for i in range(n - 1, -1, -1):
        risk = score[i] * ww[i]
        denom += risk
        if s[i] == 1:
            deaths += 1
            e_denom += risk
            meanwt += ww[i]
            a2 += risk * x[i]
        a += risk * x[i]
        if deaths > 0 and (i == 0 or t[i] != t[i - 1]):
            if deaths < 2 or not efron:
                hazard = meanwt / denom
                for k in range(i, n):
                    d = x[k] - a / denom
                    if t[k] == t[i] and s[k] == 1:
                        resid[k] += d
                    resid[k] -= d * score[k] * hazard
            else:
                mw = meanwt / deaths
                for dd in range(int(deaths)):
                    downwt = dd / deaths
                    temp = denom - downwt * e_denom
                    hazard = mw / temp
                    mean = (a - downwt * a2) / temp
                    for k in range(i, n):
                        d = x[k] - mean
                        if t[k] == t[i] and s[k] == 1:
                            resid[k] += d / deaths
                            resid[k] -= d * score[k] * hazard * (1 - downwt)
                        else:
                            resid[k] -= d * score[k] * hazard
            e_denom = deaths = meanwt = 0.0
            a2[:] = 0.0
    out = np.empty_like(resid)
    out[o] = resid
    return out


@pytest.mark.parametrize("seed", SEEDS[:12])
def test_cox_weighted_robust_is_rs_sandwich_with_efron_ties(seed):
    rng = np.random.default_rng(5000 + seed)
    n = _n_for(seed)
    p = 1 if seed % 3 == 0 else 3
    w = rng.uniform(0.2, 3.0, n)
    T, E, X, r = _draw_cox(rng, n, p, {"weights": w, "robust": True}, tie_round=1.0)
    with quiet():
        c = CoxPHFitter().fit(
            _cox_df(T, E, X, w), "T", "E", weights_col="w", robust=True, fit_options=TIGHT_LL
        )
    _check_lifelines_params(r, c, _cox_df(T, E, X, w), {"weights_col": "w", "robust": True})
    for ties, efron in (("efron", True), ("breslow", False)):
        np.testing.assert_allclose(
            score_residuals(T, E, X, r.params, w, ties),
            coxscore_loop(T, E.astype(float), X, r.params, w, efron),
            rtol=1e-10,
            atol=1e-12,
        )
    D = (coxscore_loop(T, E.astype(float), X, r.params, w) * w[:, None]) @ r.cov_naive
    assert_rel(r.bse, np.sqrt(np.diag(D.T @ D)), 1e-10, "robust se = R's D'D")
    assert r.llf == pytest.approx(c.log_likelihood_, rel=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_cox_robust_without_ties_matches_lifelines(seed):
    # without tied event times lifelines' row-wise sandwich is R's
    rng = np.random.default_rng(5500 + seed)
    w = rng.uniform(0.2, 3.0, (40, 205)[seed % 2]) if seed % 3 else None
    T, E, X, r = _draw_cox(rng, (40, 205)[seed % 2], 3, {"robust": True, "weights": w}, tie_round=0)
    assert np.unique(T[E == 1]).size == np.count_nonzero(E)
    df = _cox_df(T, E, X, w)
    kw = {"weights_col": "w"} if w is not None else {}
    with quiet():
        c = CoxPHFitter().fit(df, "T", "E", robust=True, fit_options=TIGHT_LL, **kw)
    _check_lifelines_params(r, c, df, {"robust": True, **kw})
    assert_rel(r.bse, c.standard_errors_.values, 1e-8, "robust se")
    assert_abs(r.pvalues, c.summary["p"].values, P_ATOL, "p")
    # the model-based covariance is still available
    r0 = cox_fit(T, E, X, weights=w)
    np.testing.assert_allclose(r.cov_naive, r0.cov_params, rtol=1e-12)


def test_cox_breslow_integer_weights_equal_replicated_rows():
    rng = np.random.default_rng(21)
    T, E, X = make_survival(rng, 60, 3, tie_round=1.0)
    w = rng.integers(1, 4, 60)
    r = cox_fit(T, E, X, weights=w.astype(float), ties="breslow")
    idx = np.repeat(np.arange(60), w)
    r2 = cox_fit(T[idx], E[idx], X[idx], ties="breslow")
    np.testing.assert_allclose(r.params, r2.params, rtol=1e-9)
    np.testing.assert_allclose(r.bse, r2.bse, rtol=1e-8)
    assert r.llf == pytest.approx(r2.llf, rel=1e-12)


def test_cox_lifelines_default_precision_is_the_limit():
    """At lifelines' default tolerances our llf is never below lifelines'."""
    rng = np.random.default_rng(77)
    for _ in range(5):
        T, E, X = make_survival(rng, 205, 8)
        r = cox_fit(T, E, X)
        with quiet():
            c = CoxPHFitter().fit(_cox_df(T, E, X), "T", "E")
        assert r.llf >= c.log_likelihood_ - 1e-8


def test_cox_score_test_equals_logrank_without_ties():
    rng = np.random.default_rng(11)
    for _ in range(5):
        T, E, X = make_survival(rng, 80, 1, tie_round=0.0)
        r = cox_fit(T, E, X, ties="breslow")
        r2 = cox_fit(T, E, X, ties="efron")
        lr = logrank_test(T, E, X[:, 0])
        assert r.score_stat == pytest.approx(lr.test_statistic, rel=1e-10)
        assert r2.score_stat == pytest.approx(lr.test_statistic, rel=1e-10)
        assert r.score_pvalue == pytest.approx(lr.p_value, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_cox_one_binary_covariate_equals_the_general_kernel(seed):
    # a 0/1 covariate takes the reduced per-death form; the same arm coded 0/2 takes the
    # general kernel: beta(0/1) = 2 beta(0/2), SE likewise (the robust one, from the reduced
    # form's score residuals, when weighted), same log-likelihoods and score test
    rng = np.random.default_rng(5800 + seed)
    n = (40, 205, 300)[seed % 3]
    T, E, X = make_survival(rng, n, 1, tie_round=(0.0, 1.0, 0.5)[seed % 3])
    w = rng.uniform(0.2, 3.0, n) if seed % 2 else None
    for ties in ("efron", "breslow"):
        r = cox_fit(T, E, X, weights=w, ties=ties, robust=w is not None)
        r2 = cox_fit(T, E, 2 * X, weights=w, ties=ties, robust=w is not None)
        assert r.status == r2.status == "ok", (r.message, r2.message)
        np.testing.assert_allclose(r.params, 2 * r2.params, rtol=1e-10)
        np.testing.assert_allclose(r.bse, 2 * r2.bse, rtol=1e-9)
        np.testing.assert_allclose(r.cov_naive, 4 * r2.cov_naive, rtol=1e-9)
        for f in ("llf", "ll_null", "score_stat", "lr_stat"):
            assert getattr(r, f) == pytest.approx(getattr(r2, f), rel=1e-10, abs=1e-12), f


def test_cox_degenerate():
    rng = np.random.default_rng(5)
    T, E, X = make_survival(rng, 40, 2)
    r = cox_fit(T, np.zeros(40), X)
    assert r.status == "failed" and r.message == "no events"
    # no events in arm 1
    E1 = E.copy()
    E1[X[:, 0] == 1] = 0
    r = cox_fit(T, E1, X[:, :1])
    assert r.status == "failed" and "no events in arm 1" in r.message
    r = cox_fit(T, E1, X)
    assert r.status == "failed" and "no events" in r.message
    # constant / collinear covariates
    r = cox_fit(T, E, np.column_stack([X, np.ones(40)]))
    assert r.status == "failed" and "singular" in r.message
    r = cox_fit(T, E, np.column_stack([X, X[:, 1] * 2 + 1]))
    assert r.status == "failed" and "singular" in r.message
    # monotone likelihood with a continuous covariate: events happen exactly
    # in order of decreasing x -> beta -> +inf
    t = np.arange(1.0, 31.0)
    x = -t + rng.normal(size=30) * 1e-3
    r = cox_fit(t, np.ones(30), x)
    assert r.status == "failed" and "monotone" in r.message
    # bad input does not raise
    r = cox_fit(T[:5], E, X)
    assert r.status == "failed"
    r = cox_fit(T, E, X, weights=-np.ones(40))
    assert r.status == "failed"


# --------------------------------------------------------------------------- log-rank


@pytest.mark.parametrize("seed", SEEDS)
def test_logrank_matches_lifelines(seed):
    rng = np.random.default_rng(6000 + seed)
    n = _n_for(seed)
    T, E, X = make_survival(rng, n, 1, tie_round=(1.0, 2.0, 0.0)[seed % 3])
    g = X[:, 0].astype(int)
    if g.min() == g.max():
        g[0] = 1 - g[0]
    r = logrank_test(T, E, g)
    with quiet():
        ref = ll_logrank_test(T[g == 0], T[g == 1], E[g == 0], E[g == 1])
    assert r.status == "ok"
    assert r.test_statistic == pytest.approx(ref.test_statistic, rel=1e-9, abs=1e-12)
    assert abs(r.p_value - ref.p_value) <= P_ATOL
    # labels other than 0/1 and bool groups give the same answer
    r2 = logrank_test(T, E, np.where(g == 1, "B", "A"))
    r3 = logrank_test(T, E, g == 1)
    assert r2.test_statistic == pytest.approx(r.test_statistic, rel=1e-14)
    assert r3.test_statistic == pytest.approx(r.test_statistic, rel=1e-14)
    # logrank_oe: the record's O1 - E1, variance and p, without the record
    o_e, v, p, msg = logrank_oe(T, E, g)
    assert msg == ""
    assert o_e == r.observed[1] - r.expected[1] and v == r.variance and p == r.p_value


def test_logrank_degenerate():
    T = np.arange(1.0, 11.0)
    g = np.r_[np.zeros(5), np.ones(5)]
    r = logrank_test(T, np.zeros(10), g)
    assert r.status == "failed" and "no events" in r.message
    r = logrank_test(T, np.ones(10), np.zeros(10))
    assert r.status == "failed" and "one group empty" in r.message
    r = logrank_test(T[:3], np.ones(10), g)
    assert r.status == "failed"
    # logrank_oe reports the same failures (the record's O1 - E1 and variance, p NaN)
    late = (np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))
    assert "zero variance" in logrank_test(*late).message
    cases = ((T, np.zeros(10), g), (T, np.ones(10), np.zeros(10)), (T[:3], np.ones(10), g), late)
    for args in cases:
        r = logrank_test(*args)
        o_e, v, p, msg = logrank_oe(*args)
        assert msg == r.message and np.isnan(p)
        np.testing.assert_equal([o_e, v], [r.observed[1] - r.expected[1], r.variance])


# --------------------------------------------------------------------------- KM


def _km_ref(T, E):
    """lifelines' curve and log(-log) bands with R's median rule (the reference engine)."""
    with quiet():
        k = KaplanMeierFitter().fit(T, E)
        r = engines.km_median(T, E, 0.05, engine="reference")
    return k, np.array(r, dtype=float)


@pytest.mark.parametrize("seed", SEEDS)
def test_km_median_matches_lifelines_curve_with_rs_rule(seed):
    rng = np.random.default_rng(7000 + seed)
    for _rep in range(8):  # 8 data sets per seed -> 192 in total
        n = int(rng.choice([6, 10, 20, 50, 205]))
        T, E, _ = make_survival(
            rng, n, 1, tie_round=float(rng.choice([1.0, 3.0])), cens_scale=rng.choice([0.5, 2, 5])
        )
        k, ref = _km_ref(T, E)
        r = km_median(T, E)
        f = km_fit(T, E)
        got = np.array([r.median, r.ci_lower, r.ci_upper])
        got_f = np.array([f.median, f.median_ci_lower, f.median_ci_upper])
        # same time points (including the flat-at-0.5 midpoints and inf conventions)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got_f, ref)
        # away from a flat stretch at 0.5, R's rule is lifelines' "first t with S(t) <= 0.5"
        if not np.any(np.abs(f.survival - 0.5) < 1e-8):
            assert r.median == k.median_survival_time_
        # the curve itself at the event times
        sf = k.survival_function_.iloc[:, 0]
        np.testing.assert_allclose(f.survival, sf.loc[f.times].values, rtol=1e-14, atol=0)
        cil = k.confidence_interval_.iloc[:, 0].loc[f.times].values
        ciu = k.confidence_interval_.iloc[:, 1].loc[f.times].values
        ok = f.survival > 0
        np.testing.assert_allclose(f.ci_lower[ok], cil[ok], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(f.ci_upper[ok], ciu[ok], rtol=1e-12, atol=1e-15)


def test_km_median_follows_r_survfit():
    # medians as R prints them: print(survfit(Surv(time, status) ~ 1))
    T = np.arange(1.0, 11.0)
    assert km_median(T, np.ones(10)).median == 5.5  # S(5) = 0.5 exactly until the death at 6
    assert km_median(T, np.r_[np.ones(5), np.zeros(5)]).median == 7.5  # flat to the end (10)
    # 51 of 102 die at distinct times: S = 51/102 = 0.50000000000000022 in floating point
    T = np.arange(1.0, 103.0)
    E = np.r_[np.ones(51), np.zeros(10), np.ones(41)]
    r = km_median(T, E)
    assert r.median == (51.0 + 62.0) / 2
    # the rule itself: a curve that crosses 0.5 without a flat takes the crossing time
    assert r_quantile(np.array([1.0, 2.0, 3.0]), np.array([0.8, 0.4, 0.1]), 3.0) == 2.0
    assert r_quantile(np.array([1.0, 2.0]), np.array([0.8, 0.6]), 5.0) == np.inf
    assert r_quantile(np.array([1.0, 2.0]), np.array([0.5, np.nan]), 4.0) == 2.5  # NA dropped


def test_km_median_exact_half_and_not_reached():
    # 10 subjects, deaths at 1..5 -> S(5) == 0.5 exactly (in exact arithmetic)
    T = np.arange(1.0, 11.0)
    E = np.r_[np.ones(5), np.zeros(5)]
    _, ref = _km_ref(T, E)
    r = km_median(T, E)
    np.testing.assert_array_equal([r.median, r.ci_lower, r.ci_upper], ref)
    # never below 0.5 -> inf
    E = np.r_[np.ones(3), np.zeros(7)]
    _, ref = _km_ref(T, E)
    r = km_median(T, E)
    assert r.median == np.inf
    np.testing.assert_array_equal([r.median, r.ci_lower, r.ci_upper], ref)
    # all censored -> warning, inf, no exception
    r = km_median(T, np.zeros(10))
    assert r.status == "warning" and r.median == np.inf
    r = km_median(np.empty(0), np.empty(0))
    assert r.status == "failed"


@pytest.mark.parametrize("seed", SEEDS)
def test_rmst_matches_lifelines(seed):
    rng = np.random.default_rng(8000 + seed)
    n = _n_for(seed)
    T, E, _ = make_survival(rng, n, 1, tie_round=1.0)
    horizon = float(rng.uniform(2.0, 25.0))
    with quiet():
        k = KaplanMeierFitter().fit(T, E)
        mean_ref = restricted_mean_survival_time(k, t=horizon)
        # lifelines' return_variance=True integrates t*S(t) with plain quad over
        # model.predict (limit=50, IntegrationWarning): ~1 s per call and only
        # accurate to ~1e-3.  Accurate reference for every seed: integrate
        # lifelines' own step function exactly; lifelines itself on a few seeds.
        sf = k.survival_function_.iloc[:, 0]
        tk = sf.index.values
        keep = tk < horizon
        pts = np.r_[tk[keep], horizon]
        sk = sf.values[keep]
        sq = float(np.sum(sk * (pts[1:] ** 2 - pts[:-1] ** 2)))
    r = rmst(T, E, horizon)
    assert r.status == "ok"
    assert r.rmst == pytest.approx(mean_ref, rel=1e-12)
    assert r.variance == pytest.approx(sq - mean_ref**2, rel=1e-9, abs=1e-9)
    if seed % 6 == 0:
        with quiet():
            m2, var_ref = restricted_mean_survival_time(k, t=horizon, return_variance=True)
        assert m2 == mean_ref
        assert r.variance == pytest.approx(var_ref, rel=5e-3, abs=5e-3)


def test_rmst_se_against_delta_method():
    """Greenwood-type RMST SE equals sum_j A_j^2 d_j / (n_j (n_j - d_j))."""
    T = np.array([1.0, 2, 2, 3, 4, 5, 6, 7, 8, 9])
    E = np.array([1, 1, 0, 1, 1, 0, 1, 0, 1, 0])
    r = rmst(T, E, 6.5)
    f = km_fit(T, E)
    tau = 6.5
    var = 0.0
    S = np.r_[1.0, f.survival]
    t = np.r_[0.0, f.times]
    for j in range(1, len(t)):
        if t[j] > tau:
            break
        # A_j = int_{t_j}^{tau} S
        pts = np.r_[t[j:][t[j:] <= tau], tau]
        A = np.sum(S[j : j + len(pts) - 1] * np.diff(pts))
        nj, dj = f.at_risk[j - 1], f.events[j - 1]
        if nj > dj:
            var += A**2 * dj / (nj * (nj - dj))
    assert r.se == pytest.approx(np.sqrt(var), rel=1e-12)


# --------------------------------------------------------------------------- LMM


def _sm_mixed(y, X, g, reml, tight=True):
    with quiet():
        md = MixedLM(y, X, groups=g)
        if tight:  # statsmodels at the root of its own profile score (the reference engine)
            L = np.sqrt(engines.mixedlm_gamma(md, reml))
            return md.fit(reml=reml, start_params=np.array([L]), method="bfgs", gtol=np.inf)
        return md.fit(reml=reml)


@pytest.mark.parametrize("seed", SEEDS)
def test_lmm_matches_statsmodels(seed):
    rng = np.random.default_rng(9000 + seed)
    m = _n_for(seed)
    p = 4 if m < 100 else 10
    sb = (0.5, 1.0, 2.0)[seed % 3]
    y, X, g = make_lmm(rng, m, p, sb)
    reml = seed % 2 == 0
    r = lmm_random_intercept(y, X, g, reml=reml)
    s = _sm_mixed(y, X, g, reml)
    assert r.status == "ok", r.message
    assert r.llf >= s.llf - 1e-8
    assert_rel(r.fe_params, s.fe_params, 1e-9, "fe_params", atol=1e-11)
    assert r.cov_re == pytest.approx(np.asarray(s.cov_re)[0, 0], rel=1e-9)
    assert r.scale == pytest.approx(s.scale, rel=1e-9)
    assert r.llf == pytest.approx(s.llf, rel=1e-12, abs=1e-10)
    assert r.bse_re == pytest.approx(np.asarray(s.bse_re)[0], rel=1e-6)
    # the standard covariance (X' V^-1 X)^-1 at statsmodels' estimates
    cref = engines.fe_covariance(X, g, np.ones((len(y), 1)), np.asarray(s.cov_re), s.scale)
    sd = np.sqrt(np.diag(cref))
    assert np.all(np.abs(r.cov_fe - cref) <= 1e-9 * np.outer(sd, sd)), "cov_fe"
    assert_rel(r.bse_fe, sd, 1e-9, "bse_fe")
    # and statsmodels' own Hessian-based covariance is a different (larger) convention
    sm_sd = np.asarray(s.bse_fe)[:p]
    assert np.all(sm_sd >= sd * (1 - 1e-9))


def test_lmm_default_statsmodels_llf_not_better():
    rng = np.random.default_rng(99)
    for reml in (True, False):
        y, X, g = make_lmm(rng, 205, 10, 1.0)
        r = lmm_random_intercept(y, X, g, reml=reml)
        s = _sm_mixed(y, X, g, reml, tight=False)
        assert r.llf >= s.llf - 1e-8


def test_lmm_unsorted_and_string_groups():
    rng = np.random.default_rng(12)
    y, X, g = make_lmm(rng, 40, 4, 1.0)
    r = lmm_random_intercept(y, X, g)
    perm = rng.permutation(len(y))
    r2 = lmm_random_intercept(y[perm], X[perm], g[perm])
    r3 = lmm_random_intercept(y[perm], X[perm], np.array([f"id{k}" for k in g[perm]]))
    for rr in (r2, r3):
        np.testing.assert_allclose(rr.fe_params, r.fe_params, rtol=1e-10)
        np.testing.assert_allclose(rr.bse_fe, r.bse_fe, rtol=1e-8)
        assert rr.cov_re == pytest.approx(r.cov_re, rel=1e-8)


def test_lmm_boundary_zero_variance():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(10):
        y, X, g = make_lmm(rng, 30, 4, 0.0)
        r = lmm_random_intercept(y, X, g)
        s = _sm_mixed(y, X, g, True, tight=False)
        assert r.llf >= s.llf - 1e-8
        if r.status == "warning":
            hits += 1
            assert r.message == "random-intercept variance on boundary (0)"
            assert r.cov_re == 0.0
            # at gamma = 0 the fixed effects are the OLS estimates
            o = ols_fit(y, X)
            np.testing.assert_allclose(r.fe_params, o.params, rtol=1e-9)
            assert np.asarray(s.cov_re)[0, 0] < 1e-2 * s.scale  # statsmodels: ~0, imprecise
        else:
            assert r.status == "ok"
    assert hits >= 2


def _padded(y, X, g, fill=np.nan):
    """Long (y, X, groups 0..m-1 sorted) -> padded (m, max size) / (m, max size, p)."""
    sizes = np.bincount(g)
    slot = np.concatenate([np.arange(k) for k in sizes])
    Y = np.full((sizes.size, sizes.max()), np.nan)
    X3 = np.full((sizes.size, sizes.max(), X.shape[1]), fill)
    Y[g, slot] = y
    X3[g, slot] = X
    return Y, X3


@pytest.mark.parametrize("seed", range(6))
def test_lmm_wide_is_the_long_fit(seed):
    rng = np.random.default_rng(300 + seed)
    y, X, g = make_lmm(rng, int(rng.integers(20, 250)), 4 + seed % 3, (0.0, 0.7, 2.0)[seed % 3])
    if seed % 2:
        X[:, 0] = 2.5  # an intercept column that is not 1
    reml = seed % 2 == 0
    r = lmm_random_intercept(y, X, g, reml=reml)
    # empty slots hold NaN design rows (ignored) and one group has no observation at all
    Y, X3 = _padded(y, X, g)
    Y = np.vstack([Y, np.full(Y.shape[1], np.nan)])
    X3 = np.concatenate([X3, np.zeros((1,) + X3.shape[1:])])
    w = lmm_random_intercept_wide(Y, X3, reml=reml)
    assert w.status == r.status and w.message == r.message and w.n_groups == r.n_groups
    np.testing.assert_allclose(w.fe_params, r.fe_params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.cov_fe, r.cov_fe, rtol=1e-9, atol=1e-14)
    assert w.cov_re == pytest.approx(r.cov_re, rel=1e-9, abs=1e-14)
    assert w.llf == pytest.approx(r.llf, rel=1e-12)


@pytest.mark.parametrize("kind", ["plain", "age_scale", "collinear", "near_1e-9", "near_1e-2"])
def test_wide_stats_gram_is_xtx_and_gives_the_same_rank_pretest(kind):
    """X'X from the within + between sums equals the rows' X'X, and the full-rank pre-test
    from it decides as certainly_full_rank on the rows (so the LMM's check skips the rows)."""
    rng = np.random.default_rng(11)
    y, X, g = make_lmm(rng, 120, 5, 0.7)
    if kind == "age_scale":
        X[:, 2] = 60.0 + 10.0 * X[:, 2]
    elif kind == "collinear":
        X = np.column_stack([X, X[:, 1] - 2.0 * X[:, 2]])
    elif kind.startswith("near"):
        X = np.column_stack([X, X[:, 1] + float(kind[5:]) * rng.normal(size=len(y))])
    Y, X3 = _padded(y, X, g, fill=0.0)
    st = wide_stats(Y, X3)
    np.testing.assert_allclose(st.gram, X.T @ X, rtol=1e-12, atol=1e-12 * np.abs(X.T @ X).max())
    assert st.N == len(y) and st.finite and st.c == 0 and st.xc == 1.0
    assert certainly_full_rank_gram(st.gram, st.N) == certainly_full_rank(X)
    assert certainly_full_rank(X) == (kind in ("plain", "age_scale", "near_1e-2"))


def test_template_stats_are_wide_stats_without_the_padded_design():
    """The LMM's statistics from the arm x visit template equal wide_stats of the padded design
    (counts, range, finiteness and intercept column exactly; sums to rounding), and the fits
    from them agree: random cohorts with missing visits, patients without any, 0-3 covariates
    (one constant: the intercept is still column 0), both visit sets."""
    from palliasim.estimators import longitudinal as lg
    from palliasim.estimators.fast.lmm import _solve, template_stats

    rng = np.random.default_rng(5)
    for trial in range(200):
        n, k = int(rng.integers(3, 300)), int(rng.integers(0, 4))
        weeks = tuple(lg.WEEKS) if trial % 3 else (1, 4, 8, 12)
        g = rng.integers(0, 2, n).astype(float)
        Z = rng.normal(size=(n, k)) * rng.choice([1.0, 10.0, 100.0], k)
        if k and trial % 5 == 0:
            Z[:, 0] = 1.0
        Y = np.round(rng.normal(5, 2, (n, len(weeks))))
        Y[rng.random(Y.shape) < rng.uniform(0, 0.6)] = np.nan
        Y[0] = np.nan  # a patient without any observed visit
        X3, _, C = lg._visit_template(g, weeks, Z, [f"z{b}" for b in range(k)])
        want = wide_stats(Y, X3)
        T3, _, C2 = lg._template_design(weeks, [f"z{b}" for b in range(k)])
        got = template_stats(Y, T3, g.astype(np.int64), Z)
        assert np.array_equal(C, C2)
        for f in ("sizes", "N", "finite", "c", "xc", "y_min", "y_max"):
            assert np.array_equal(getattr(got, f), getattr(want, f)), (trial, f)
        for f in ("Wa", "Za", "gram"):
            a, b = getattr(got, f), getattr(want, f)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * max(np.abs(b).max(), 1.0))
        if want.N > X3.shape[2] + 2 and certainly_full_rank_gram(want.gram, want.N):
            f1, f0 = _solve(got, True, 1e-10, 60), _solve(want, True, 1e-10, 60)
            assert f1.status == f0.status and f1.n_iter == f0.n_iter
            np.testing.assert_allclose(f1.fe_params, f0.fe_params, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(f1.cov_fe, f0.cov_fe, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="arm index"):
        template_stats(np.ones((3, 2)), np.zeros((2, 2, 3)), np.array([0, 1, 2]), np.zeros((3, 0)))


def test_lmm_wide_degenerate():
    rng = np.random.default_rng(4)
    y, X, g = make_lmm(rng, 30, 4, 1.0)
    Y, X3 = _padded(y, X, g)
    Y1 = np.where(np.arange(Y.shape[1]) == 0, Y, np.nan)  # one observation per group
    assert "not identifiable" in lmm_random_intercept_wide(Y1, X3).message
    assert lmm_random_intercept_wide(np.full_like(Y, np.nan), X3).status == "failed"
    bad = X3.copy()
    bad[0, 0, 1] = np.inf  # an observed row
    assert "non-finite" in lmm_random_intercept_wide(Y, bad).message
    assert (
        "singular" in lmm_random_intercept_wide(Y, np.concatenate([X3, X3[:, :, 2:3]], 2)).message
    )


def test_lmm_degenerate():
    rng = np.random.default_rng(4)
    y, X, g = make_lmm(rng, 30, 4, 1.0)
    r = lmm_random_intercept(y, np.column_stack([X, X[:, 2] * 3.0]), g)
    assert r.status == "failed" and "singular" in r.message
    r = lmm_random_intercept(y, X, np.arange(len(y)))
    assert r.status == "failed" and "not identifiable" in r.message
    r = lmm_random_intercept(y[:5], X, g)
    assert r.status == "failed"
    r = lmm_random_intercept(X @ np.ones(4), X, g)
    assert r.status == "failed"


# --------------------------------------------------------------------------- GEE


def _sm_gee(y, X, g, **fit):
    with quiet():
        md = GEE(y, X, groups=g, family=families.Gaussian(), cov_struct=cov_struct.Exchangeable())
        return md.fit(**fit)


@pytest.mark.parametrize("seed", SEEDS)
def test_gee_matches_statsmodels(seed):
    """The fixed point of statsmodels' iteration (run with a tight stop, as the reference
    engine): coefficients, robust and naive covariance, scale and rho; clusters of 1-5 rows."""
    rng = np.random.default_rng(9500 + seed)
    m = _n_for(seed)
    p = 4 if m < 100 else 10
    y, X, g = make_lmm(rng, m, p, (0.5, 1.0, 2.0)[seed % 3])
    r = gee_exchangeable(y, X, g)
    s = _sm_gee(y, X, g, maxiter=engines.GEE_MAXITER, ctol=engines.GEE_CTOL)
    assert r.status == "ok" and r.converged and s.converged, r.message
    assert_rel(r.params, s.params, 1e-9, "params", atol=1e-11)
    sd = np.sqrt(np.diag(s.cov_params()))
    assert np.all(np.abs(r.cov_params - s.cov_params()) <= 1e-9 * np.outer(sd, sd)), "cov"
    assert_rel(r.bse, sd, 1e-9, "bse")
    sn = np.sqrt(np.diag(s.cov_naive))
    assert np.all(np.abs(r.cov_naive - s.cov_naive) <= 1e-9 * np.outer(sn, sn)), "cov_naive"
    assert r.scale == pytest.approx(s.scale, rel=1e-10)
    assert r.rho == pytest.approx(s.cov_struct.dep_params, rel=1e-8, abs=1e-12)
    # statsmodels at its default stop (score norm 1e-6) is already within ~1e-10 of it
    d = _sm_gee(y, X, g)
    assert_rel(r.params, d.params, 1e-7, "params vs default", atol=1e-9)


def test_gee_unsorted_and_string_groups():
    rng = np.random.default_rng(13)
    y, X, g = make_lmm(rng, 40, 4, 1.0)
    r = gee_exchangeable(y, X, g)
    perm = rng.permutation(len(y))
    for gg in (g[perm], np.array([f"id{k:03d}" for k in g[perm]])):
        rr = gee_exchangeable(y[perm], X[perm], gg)
        assert rr.status == "ok" and rr.n_groups == r.n_groups == 40
        np.testing.assert_allclose(rr.params, r.params, rtol=1e-10)
        np.testing.assert_allclose(rr.cov_params, r.cov_params, rtol=1e-8, atol=1e-14)
        assert rr.rho == pytest.approx(r.rho, rel=1e-10)


def test_gee_degenerate():
    rng = np.random.default_rng(5)
    y, X, g = make_lmm(rng, 30, 4, 1.0)
    # one row per cluster: no within-cluster pair for the correlation
    r = gee_exchangeable(y, X, np.arange(len(y)))
    assert r.status == "failed" and "within-patient pairs" in r.message
    assert np.isnan(r.params).all()
    # fewer rows than parameters
    r = gee_exchangeable(y[:3], X[:3], g[:3])
    assert r.status == "failed" and "scale is not estimable" in r.message
    # an all-zero column: X' R^-1 X is singular
    r = gee_exchangeable(y, np.column_stack([X, np.zeros(len(y))]), g)
    assert r.status == "failed" and "singular" in r.message
    # a perfect fit: zero residual variance
    r = gee_exchangeable(X @ np.ones(4), X, g)
    assert r.status == "failed" and "residual variance is zero" in r.message
    # pairs of opposite values: rho below -1, no positive-definite working correlation
    k = 40
    d = rng.uniform(1.0, 2.0, k)
    yy = np.column_stack([d, -d]).ravel() + 0.01 * rng.normal(size=2 * k)
    XX = np.column_stack([np.ones(2 * k), rng.normal(size=2 * k)])
    r = gee_exchangeable(yy, XX, np.repeat(np.arange(k), 2))
    assert r.status == "failed" and "not positive definite" in r.message and r.rho < -1
    # an iteration limit: the last iterate, status warning
    r = gee_exchangeable(y, X, g, maxiter=2)
    assert r.status == "warning" and not r.converged and "did not converge in 2" in r.message
    assert np.isfinite(r.params).all() and np.isfinite(r.cov_params).all()


def test_compiled_km_bootstrap_medians_are_bit_identical_to_numpy():
    """km_median's fast engine walks each resample's curve in compiled code; it must give the
    numpy version's medians bit for bit (ties, flat stretches at S = 0.5, curves that end
    above 0.5, all or no events)."""
    from palliasim.estimators.fast.km import km_medians_counted as compiled
    from palliasim.estimators.survival import km_medians_counted, resample_counts

    rng = np.random.default_rng(20261202)
    for k in range(300):
        n = int(rng.integers(2, 60))
        t = np.round(rng.exponential(5.0, n), int(rng.integers(0, 3)))  # rounding -> ties
        e = (rng.random(n) < rng.choice([0.0, 0.3, 0.8, 1.0])).astype(float)
        if k % 7 == 0:  # S = 0.5 exactly on a flat stretch
            t, e = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 0.0, 1.0])
        counts = resample_counts(rng.integers(0, n if k % 7 else 4, size=(40, t.size)), t.size)
        a, b = km_medians_counted(t, e, counts), compiled(t, e, counts)
        np.testing.assert_array_equal(a, b)


def test_tie_order_is_lexsort_by_time_then_event():
    """The compiled row order shared by the Cox and KM kernels equals numpy's lexsort: by time,
    censorings first (Cox's risk sets) or events first (the KM walk) at equal times, stable."""
    from palliasim.estimators.fast._ties import tie_order

    rng = np.random.default_rng(7)
    for _ in range(500):
        n = int(rng.integers(1, 40))
        t = np.round(rng.exponential(2.0, n), int(rng.integers(0, 2)))
        e = rng.random(n) < 0.5
        np.testing.assert_array_equal(tie_order(t, e, False), np.lexsort((e, t)))
        np.testing.assert_array_equal(tie_order(t, e, True), np.lexsort((~e, t)))


def test_a_shared_time_order_changes_nothing():
    """Cohort.stable_order (one stable argsort per cohort and endpoint) passed to the Cox and
    log-rank kernels gives exactly their results without it, tied times included; the tie
    order from it equals lexsort."""
    from palliasim.estimators.fast._ties import tie_order
    from palliasim.sim import generate, load_scenario, rng_for

    rng = np.random.default_rng(11)
    for k in range(200):
        n = int(rng.integers(5, 80))
        t = np.round(rng.exponential(2.0, n), int(rng.integers(0, 2)))
        e = (rng.random(n) < 0.6).astype(float)
        g = (rng.random(n) < 0.5).astype(float)
        if k % 5 == 0:
            g[:2] = (0.0, 1.0)
        o = np.argsort(t, kind="stable")
        np.testing.assert_array_equal(tie_order(t, e != 0, False, o), np.lexsort((e != 0, t)))
        X = np.column_stack([g, rng.standard_normal(n)])
        a, b = cox_fit(t, e, X), cox_fit(t, e, X, order=o)
        assert a.status == b.status and a.message == b.message
        np.testing.assert_array_equal(a.params, b.params)
        np.testing.assert_array_equal(a.bse, b.bse)
        la, lb = logrank_test(t, e, g == 1), logrank_test(t, e, g == 1, order=o)
        assert la.status == lb.status
        np.testing.assert_array_equal(
            [la.test_statistic, la.p_value, la.variance],
            [lb.test_statistic, lb.p_value, lb.variance],
        )
    sc = load_scenario("study")
    cohort = generate(sc, rng_for(1, sc.key, "data", 0))
    o = cohort.stable_order("os_months")
    assert o is cohort.stable_order("os_months")  # computed once
    np.testing.assert_array_equal(o, np.argsort(cohort.arrays["os_months"], kind="stable"))


@pytest.mark.parametrize("seed", range(6))
def test_cox_one_covariate_derivatives_are_the_general_ones_bit_for_bit(seed):
    """_derivs1 (one covariate) gives the bits of the general _derivs: with a second, all-zero
    covariate the general path makes the same sums in the same order (ties, weights, Breslow)."""
    from palliasim.estimators.fast import surv_cox_jit as J

    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 300))
    x = rng.normal(size=n) if seed % 2 else (rng.random(n) < 0.5).astype(float)
    t = np.round(rng.exponential(1.0, n), 1 + seed % 3)  # ties
    ev = rng.random(n) < 0.8
    weighted = seed % 3 == 0
    w = rng.uniform(0.5, 2.0, n) if weighted else np.empty(0)
    o = np.lexsort((ev, t))
    ts, evs, xs = t[o], ev[o], x[o] - x.mean()
    ws = w[o] if weighted else w
    gs, ge, bs = J.death_groups(ts, evs)
    wsum = np.array([ws[a:b].sum() if weighted else float(b - a) for a, b in zip(gs, ge)])
    res = []
    for p in (1, 2):
        X = np.zeros((n, p))
        X[:, 0] = xs
        Xt = np.ascontiguousarray(X.T)
        xdw = np.zeros(p)
        for a, b in zip(gs, ge):
            xdw += (ws[a:b, None] * X[a:b]).sum(axis=0) if weighted else X[a:b].sum(axis=0)
        beta = np.zeros(p)
        beta[0] = 0.3
        info, grad = np.empty((p, p)), np.empty(p)
        work = J._workspace(n, p, gs.shape[0])
        for efron in (True, False):
            ll, fin = J._derivs(
                X,
                Xt,
                ws,
                weighted,
                gs,
                ge,
                bs,
                wsum,
                efron,
                xdw,
                wsum.sum(),
                beta,
                work,
                info,
                grad,
            )
            res.append((p, efron, ll, grad[0], info[0, 0], fin))
    one, two = res[:2], res[2:]
    for a, b in zip(one, two):
        assert a[1:] == b[1:]


def test_contrast_estimates_are_the_numpy_products():
    from palliasim.estimators.fast._small import contrast_estimates

    rng = np.random.default_rng(3)
    for _ in range(50):
        p, k = int(rng.integers(1, 12)), int(rng.integers(1, 6))
        A = rng.normal(size=(p, p))
        V, b, C = A @ A.T, rng.normal(size=p), rng.normal(size=(k, p))
        est, se = contrast_estimates(C, b, V)
        np.testing.assert_allclose(est, C @ b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(se, np.sqrt(((C @ V) * C).sum(axis=1)), rtol=1e-12)
    # a negative quadratic form (a covariance not PSD) gives 0, a NaN anywhere NaN, as numpy
    est, se = contrast_estimates(np.eye(2), np.zeros(2), -np.eye(2))
    assert se.tolist() == [0.0, 0.0]
    V = np.eye(2)
    V[1, 1] = np.nan
    est, se = contrast_estimates(np.array([[1.0, 0.0]]), np.zeros(2), V)
    ref = np.sqrt(np.maximum(((np.array([[1.0, 0.0]]) @ V) * np.array([[1.0, 0.0]])).sum(1), 0))
    np.testing.assert_equal(se, ref)
