"""Numerical engines behind one interface: each operation has one signature and one result type.

Every function takes numpy arrays and a keyword ``engine``: ``"reference"`` (statsmodels,
lifelines, numpy) or ``"fast"`` (the numpy kernels of :mod:`estimators.fast`). Both engines run
to the optimum (not to a library's early stopping point), so they agree with each other and
with R (survival::coxph, lme4, glm, survfit) to ~1e-10. Statistical trouble raises
:class:`~estimators.base.StatisticalTrouble` (or a library error listed in
``base.STATISTICAL_EXCEPTIONS``) with the same message in both engines where the data decide it
before any fit; library warnings are left to the caller's :func:`~estimators.base.capture`.

=====================  =====================================  ================================
operation              reference                              fast
=====================  =====================================  ================================
:func:`ols`            statsmodels OLS                        ``fast.ols_fit``
:func:`logit`          statsmodels Logit (Newton, tol 1e-10)  ``fast.logistic_fit`` (1e-10)
:func:`cox`            lifelines CoxPHFitter (tight NR)       ``fast.cox_fit`` (exact NR)
:func:`mixed_model`    statsmodels MixedLM (score root)       ``fast.lmm_random_intercept``
:func:`gee`            statsmodels GEE                        (reference only)
:func:`bayes_draw`     numpy QR                               LAPACK geqrf / ormqr / trtrs
:func:`km_median`      lifelines KaplanMeierFitter            ``fast.km_median``
:func:`rmst`           lifelines + Greenwood variance         ``fast.rmst``
:func:`logrank`        lifelines logrank_test + Peto sums     ``fast.logrank_test``
=====================  =====================================  ================================
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from palliasim.estimators.base import StatisticalTrouble
from palliasim.estimators.fast import cox as fast_cox
from palliasim.estimators.fast import km as fast_km
from palliasim.estimators.fast import lmm as fast_lmm

ENGINES = ("reference", "fast")

#: lifelines' Newton-Raphson run to the optimum: no relative-likelihood stop (its default
#: r_precision 1e-9 stops ~1e-5 .. 1e-3 early), step / decrement below 1e-18; measured within
#: 1e-12 (in SE units) of the exact Newton optimum, i.e. of R's coxph.
LIFELINES_FIT_OPTIONS = {
    "step_size": 0.95,
    "precision": 1e-18,
    "r_precision": 0.0,
    "max_steps": 500,
}


#: a Cox coefficient beyond this many covariate SDs (HR > e^10 per SD) is a diverging one
#: (monotone likelihood): the exact kernel detects the divergence itself; lifelines, run to its
#: step limit, returns a large finite value, which this bound turns into the same failure
MONOTONE_SD = 10.0


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:  # pragma: no cover - guarded by Estimator.engines
        raise ValueError(f"unknown engine '{engine}'; allowed values: {', '.join(ENGINES)}")


# --------------------------------------------------------------------------------------------
# Cox proportional hazards


class CoxFit(NamedTuple):
    """Cox fit: coefficients, their SEs and covariance (robust if asked), events used."""

    params: np.ndarray
    se: np.ndarray
    cov: np.ndarray
    n_events: int


def cox_data_problem(t: np.ndarray, e: np.ndarray, X: np.ndarray, names) -> str:
    """The data problems both Cox engines report before fitting ("" if none).

    No events; a constant covariate (singular information); a 0/1 covariate with no events at
    one level (monotone likelihood: the coefficient diverges).
    """
    nev = int(np.count_nonzero(e))
    if nev == 0:
        return "no events"
    for j in range(X.shape[1]):
        x = X[:, j]
        if np.ptp(x) == 0:
            return f"singular information matrix (covariate {names[j]} is constant)"
        if np.all((x == 0) | (x == 1)):
            ev1 = float(e @ x)
            if ev1 == 0 or ev1 == nev:
                lvl = 1 if ev1 == 0 else 0
                return f"no events in {names[j]} == {lvl} (monotone likelihood)"
    return ""


def cox(
    t: np.ndarray,
    e: np.ndarray,
    X: np.ndarray,
    names,
    *,
    engine: str,
    weights: np.ndarray | None = None,
    robust: bool = False,
) -> CoxFit:
    """Cox PH regression, Efron ties, to the maximum partial likelihood (R's ``coxph``).

    ``weights``: case weights (risk sets weighted, Efron terms by the mean weight of the tied
    deaths, as R). ``robust``: R's ``coxph(robust = TRUE)`` sandwich with Efron-tie score
    residuals (:func:`estimators.fast.cox.robust_cov`), for both engines (lifelines' own
    sandwich ignores ties). Reference: lifelines ``CoxPHFitter`` with
    :data:`LIFELINES_FIT_OPTIONS`; fast: :func:`estimators.fast.cox.cox_fit`.
    """
    _check_engine(engine)
    problem = cox_data_problem(t, e, X, names)
    if problem:
        raise StatisticalTrouble(problem)
    if engine == "fast":
        r = fast_cox.cox_fit(t, e, X, weights=weights, robust=robust)
        if r.status != "ok":
            raise StatisticalTrouble(f"Cox model: {r.message}")
        return CoxFit(r.params, r.bse, r.cov_params, r.n_events)
    import pandas as pd  # reference engine only: pandas/lifelines import cost
    from lifelines import CoxPHFitter
    from lifelines.exceptions import StatisticalWarning

    cols = [f"x{j}" for j in range(X.shape[1])]
    df = pd.DataFrame(X, columns=cols)
    df["_time"], df["_event"] = t, e
    kw = {}
    if weights is not None:
        df["_w"] = weights
        kw["weights_col"] = "_w"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # "weights are not integers: use robust=True": the robust SE is computed below
        warnings.filterwarnings("ignore", category=StatisticalWarning)
        cph = CoxPHFitter().fit(df, "_time", "_event", fit_options=LIFELINES_FIT_OPTIONS, **kw)
    for w in caught:
        if "failed to converge" in str(w.message):  # not at an optimum: no estimate
            raise StatisticalTrouble(
                "Cox model: lifelines' Newton-Raphson did not reach the maximum (monotone "
                "likelihood or separation)"
            )
        warnings.warn(w.message, w.category, stacklevel=2)  # the caller's capture() reports it
    beta = cph.params_[cols].to_numpy(dtype=float)
    big = np.flatnonzero(np.abs(beta) * X.std(axis=0) > MONOTONE_SD)
    if big.size:
        raise StatisticalTrouble(
            f"Cox model: monotone likelihood: coefficient(s) diverge to infinity (covariate(s) "
            f"{[names[j] for j in big]})"
        )
    cov = cph.variance_matrix_.loc[cols, cols].to_numpy(dtype=float)
    if robust:
        cov = fast_cox.robust_cov(t, e, X, beta, cov, weights=weights)
    return CoxFit(beta, np.sqrt(np.diag(cov)), cov, int(np.count_nonzero(e)))


# --------------------------------------------------------------------------------------------
# linear mixed model


class MixedFit(NamedTuple):
    """Fixed effects, their covariance and diagnostics ([] when clean)."""

    params: np.ndarray
    cov: np.ndarray
    messages: list


def fe_covariance(X, groups, Z, G, scale) -> np.ndarray:
    """Standard model-based covariance of the fixed effects: (X' V^-1 X)^-1, V_i = Z_i G Z_i' +
    scale I (what lme4's ``vcov`` and SAS PROC MIXED report)."""
    p = X.shape[1]
    M = np.zeros((p, p))
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], groups.shape[0]]):
        Zi = Z[a:b]
        Vi = Zi @ G @ Zi.T + scale * np.eye(b - a)
        Xi = X[a:b]
        M += Xi.T @ np.linalg.solve(Vi, Xi)
    return np.linalg.inv(M)


def singular_re_message(cov_re_min: float, scale: float) -> str:
    return (
        f"random effects covariance is singular (cov_re ~ 0: min eigenvalue "
        f"{cov_re_min:.3g}, residual variance {scale:.3g}): boundary fit"
    )


def _boundary_messages(G: np.ndarray, scale: float) -> list:
    ev = np.linalg.eigvalsh(G) if np.all(np.isfinite(G)) else np.array([np.nan])
    if not np.all(np.isfinite(ev)) or ev.min() <= 1e-6 * max(scale, 1e-12):
        return [singular_re_message(float(ev.min()), scale)]
    return []


def mixedlm_gamma(md, reml: bool) -> float:
    """gamma = cov_re / scale at the exact (RE)ML optimum of statsmodels MixedLM ``md``'s own
    profile likelihood (random intercept).

    MixedLM's BFGS stops at gtol 1e-5 (~1e-5 relative off for SEs) and with a tighter gtol it
    loses precision in the line search and warns. Instead the root of statsmodels' own profile
    score in L = sqrt(gamma) is bracketed and found by Brent's method (xtol 1e-14). A score
    <= 0 at L = 1e-5 means the boundary gamma = 0.
    """
    from scipy.optimize import brentq

    # a zero-iteration fit sets the model's fit state (reml, penalties) for its score function
    md.fit(reml=reml, start_params=np.array([1.0]), method="bfgs", gtol=np.inf)

    def score(L):
        return float(md.score(np.array([L]))[0])

    lo = 1e-5
    if not score(lo) > 0:
        return 0.0
    hi = 1.0
    while score(hi) > 0:
        lo, hi = hi, 4.0 * hi
        if hi > 1e6:
            raise StatisticalTrouble(
                "residual variance on boundary (0): cov_re / scale diverges (gamma > 1e10)"
            )
    L = brentq(score, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=200)
    return L * L


def mixed_model(
    y: np.ndarray,
    X: np.ndarray,
    groups: np.ndarray,
    *,
    engine: str,
    reml: bool = True,
    Z: np.ndarray | None = None,
) -> MixedFit:
    """Linear mixed model y = X b + Z u_i + e, u_i ~ N(0, G), e ~ N(0, s2 I), (RE)ML.

    ``groups`` sorted (patient-major rows). ``Z`` None = random intercept: both engines find
    the exact profiled (RE)ML optimum (fast: :func:`estimators.fast.lmm_random_intercept`;
    reference: statsmodels MixedLM at the root of its profile score) and report the standard
    covariance s2 (X' H^-1 X)^-1 = (X' V^-1 X)^-1 of lme4 / SAS. Another ``Z`` (random slope:
    reference only) is fitted by statsmodels MixedLM's own optimiser (BFGS, gtol 1e-5) and its
    covariance recomputed by the same formula (:func:`fe_covariance`). Diagnostics: the
    boundary (random-effects variance ~ 0) message, statsmodels' warnings for a random slope.
    """
    _check_engine(engine)
    if engine == "fast":
        if Z is not None:  # pragma: no cover - guarded by the estimator
            raise ValueError("the fast engine fits a random intercept only")
        r = fast_lmm.lmm_random_intercept(y, X, groups, reml=reml)
        if r.status == "failed":
            raise StatisticalTrouble(f"MixedLM failed: {r.message}")
        msgs = _boundary_messages(np.array([[r.cov_re]]), float(r.scale))
        return _checked(MixedFit(r.fe_params, r.cov_fe, msgs))
    from statsmodels.regression.mixed_linear_model import MixedLM

    k = X.shape[1]
    try:
        if Z is None:
            md = MixedLM(y, X, groups)
            with warnings.catch_warnings():
                # at the boundary statsmodels warns that cov_re is singular: reported below
                warnings.filterwarnings("ignore", message="Random effects covariance is singular")
                g = np.array([[mixedlm_gamma(md, reml)]])
                if g[0, 0] > 0:
                    params, _ = md.get_fe_params(g, np.empty(0))  # GLS at gamma (statsmodels)
                    scale = float(md.get_scale(params, g, np.empty(0)))
                else:  # boundary: V = scale I, i.e. OLS (statsmodels' pinv branch is not that)
                    import statsmodels.api as sm

                    o = sm.OLS(y, X).fit()
                    params = np.asarray(o.params, float)
                    scale = float(o.ssr) / (y.shape[0] - k if reml else y.shape[0])
            Zm = np.ones((y.shape[0], 1))
            G = g * scale
            msgs = []
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = MixedLM(y, X, groups, exog_re=Z).fit(reml=reml)
            Zm = Z
            msgs = _mixedlm_messages(caught, bool(getattr(res, "converged", True)))
            params = np.asarray(res.fe_params, float)
            G = np.atleast_2d(np.asarray(res.cov_re, float))
            scale = float(res.scale)
    except ValueError as exc:  # statsmodels' data-driven failures
        raise StatisticalTrouble(f"MixedLM failed: {exc}") from exc
    params = np.asarray(params, float)[:k]
    cov = fe_covariance(X, groups, Zm, G, scale)
    return _checked(MixedFit(params, cov, msgs + _boundary_messages(G, scale)))


def _mixedlm_messages(caught, converged: bool) -> list:
    from palliasim.estimators.base import warning_texts

    msgs = warning_texts(caught, drop=() if not converged else ("Retrying MixedLM optimization",))
    if not converged and not any("converge" in m or "failed" in m for m in msgs):
        msgs.append("MixedLM did not converge")
    return msgs


def _checked(fit: MixedFit) -> MixedFit:
    if not np.all(np.isfinite(fit.params)) or not np.all(np.isfinite(np.diag(fit.cov))):
        raise StatisticalTrouble(
            "MixedLM returned non-finite fixed effects or covariance"
            + (f" ({'; '.join(fit.messages)})" if fit.messages else "")
        )
    return fit


# --------------------------------------------------------------------------------------------
# Kaplan-Meier


class MedianCI(NamedTuple):
    """Kaplan-Meier median and its log(-log) CI (inf where not reached)."""

    median: float
    ci_low: float
    ci_high: float


def km_median(t: np.ndarray, e: np.ndarray, alpha: float, *, engine: str) -> MedianCI:
    """Kaplan-Meier median with the log(-log) pointwise-band CI by R's survfit conventions.

    R: ``quantile(survfit(Surv(t, e) ~ 1, conf.type = "log-log"))``, the midpoint rule of
    :func:`estimators.fast.km.r_quantile` (a flat stretch of S at 0.5 within sqrt(eps)).
    Reference: lifelines ``KaplanMeierFitter`` curve and bands, R's rule applied to them.
    """
    _check_engine(engine)
    if engine == "fast":
        r = fast_km.km_median(t, e, alpha=alpha)
        return MedianCI(float(r.median), float(r.ci_lower), float(r.ci_upper))
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(alpha=alpha).fit(t, e)
    et = kmf.event_table
    times = et.index.to_numpy(dtype=float)[et["observed"].to_numpy() > 0]
    if times.size == 0:
        return MedianCI(np.inf, np.inf, np.inf)
    s = kmf.survival_function_.iloc[:, 0].loc[times].to_numpy(dtype=float)
    ci = kmf.confidence_interval_.loc[times].to_numpy(dtype=float)
    band = np.where(s[:, None] > 0, ci, np.nan)  # R: the log(-log) band is NA where S = 0
    xmax = float(np.max(t))
    return MedianCI(
        fast_km.r_quantile(times, s, xmax),
        fast_km.r_quantile(times, band[:, 0], xmax),
        fast_km.r_quantile(times, band[:, 1], xmax),
    )
