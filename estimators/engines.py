"""Numerical engines behind one interface: each operation has one signature and one result type.

Every function takes numpy arrays and a keyword ``engine``: ``"reference"`` (statsmodels,
lifelines, numpy) or ``"fast"`` (the numpy kernels of :mod:`estimators.fast`). Both engines run
to the optimum (not to a library's early stopping point), so they agree with each other and
with R (survival::coxph, lme4, glm, survfit) to ~1e-10. Statistical trouble raises
:class:`~estimators.base.StatisticalTrouble` (or a library error listed in
``base.statistical_exceptions()``) with the same message in both engines where the data decide it
before any fit; library warnings are left to the caller's :func:`~estimators.base.capture`.

=====================  =====================================  ================================
operation              reference                              fast
=====================  =====================================  ================================
:func:`ols`            statsmodels OLS                        ``fast.ols_fit``
:func:`logit`          statsmodels Logit (Newton, tol 1e-10)  ``fast.logistic_fit`` (1e-10)
:func:`cox`            lifelines CoxPHFitter (tight NR)       ``fast.cox_fit`` (exact NR)
:func:`mixed_model`    statsmodels MixedLM (score root)       ``fast.lmm_random_intercept``
:func:`gee`            statsmodels GEE (to its fixed point)   ``fast.gee_exchangeable``
:func:`bayes_draws`    numpy QR, draw by draw                 batched Cholesky (``fast.bayes``)
:func:`ancova_batch`   statsmodels OLS, data set by data set  one shared-design OLS
:func:`km_median`      lifelines KaplanMeierFitter            ``fast.km_median``
:func:`rmst`           lifelines + Greenwood variance         ``fast.rmst``
:func:`logrank`        lifelines logrank_test + Peto sums     ``fast.logrank_test``
=====================  =====================================  ================================

:func:`mixed_model_wide` is :func:`mixed_model` on padded (patient x visit) data (fast:
``fast.lmm_random_intercept_wide``, no sorting or segment sums).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import expit

from palliasim.estimators.base import StatisticalTrouble, capture, warning_texts
from palliasim.estimators.design import (
    ARM_LABELS,
    certainly_full_rank,
    check_full_rank,
    check_full_rank_fast,
)
from palliasim.estimators.fast import cox as fast_cox
from palliasim.estimators.fast import gee as fast_gee
from palliasim.estimators.fast import km as fast_km
from palliasim.estimators.fast import lmm as fast_lmm
from palliasim.estimators.fast.bayes import (
    CommonRows,
    common_rows,  # noqa: F401  (re-exported: estimators use engines.common_rows)
    ols_shared_design,
    posterior_parts,
)
from palliasim.estimators.fast.logistic import is_separated, logistic_fit, logistic_fit_plain
from palliasim.estimators.fast.logrank import logrank_oe as fast_logrank_oe
from palliasim.estimators.fast.ols import ols_fit

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
    # one compiled pass (estimators.fast.surv_cox_jit.cox_problem_c); the message from its code
    return _cox_problem_message(*fast_cox.cox_problem_c(e, X), names)


def _cox_problem_message(code: int, j: int, lvl: int, names) -> str:
    """The message of :func:`cox_data_problem` for a ``cox_problem_c`` code ("" for none)."""
    if code == fast_cox.PROBLEM_NO_EVENTS:
        return "no events"
    if code == fast_cox.PROBLEM_CONSTANT:
        return f"singular information matrix (covariate {names[j]} is constant)"
    if code == fast_cox.PROBLEM_MONOTONE:
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
    order=None,
) -> CoxFit:
    """Cox PH regression, Efron ties, to the maximum partial likelihood (R's ``coxph``).

    ``weights``: case weights (risk sets weighted, Efron terms by the mean weight of the tied
    deaths, as R). ``robust``: R's ``coxph(robust = TRUE)`` sandwich with Efron-tie score
    residuals (:func:`estimators.fast.cox.robust_cov`), for both engines (lifelines' own
    sandwich ignores ties). Reference: lifelines ``CoxPHFitter`` with
    :data:`LIFELINES_FIT_OPTIONS`; fast: :func:`estimators.fast.cox.cox_estimate`
    (:func:`cox_data_problem`'s checks and ``cox_fit`` in one compiled call; ``order``: the
    stable time order if known, the same result).
    """
    _check_engine(engine)
    if engine == "fast":  # the data checks and the fit in one compiled call
        r = fast_cox.cox_estimate(t, e, X, weights=weights, robust=robust, order=order)
        if r.problem:
            raise StatisticalTrouble(_cox_problem_message(r.problem, r.j, r.lvl, names))
        if r.message:
            raise StatisticalTrouble(f"Cox model: {r.message}")
        return CoxFit(r.params, r.bse, r.cov, r.n_events)
    problem = cox_data_problem(t, e, X, names)
    if problem:
        raise StatisticalTrouble(problem)
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
    with capture() as caught:
        # "weights are not integers: use robust=True": the robust SE is computed below
        warnings.filterwarnings("ignore", category=StatisticalWarning)
        cph = CoxPHFitter().fit(df, "_time", "_event", fit_options=LIFELINES_FIT_OPTIONS, **kw)
    for w in caught.records:
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
    """[the boundary message] when G's smallest eigenvalue is not finite or <= 1e-6 scale."""
    if G.shape == (1, 1):  # random intercept: the eigenvalue is the variance
        return _intercept_boundary(float(G[0, 0]), scale)
    ev = np.linalg.eigvalsh(G) if np.all(np.isfinite(G)) else np.array([np.nan])
    if not np.all(np.isfinite(ev)) or ev.min() <= 1e-6 * max(scale, 1e-12):
        return [singular_re_message(float(ev.min()), scale)]
    return []


def _intercept_boundary(cov_re: float, scale: float) -> list:
    """:func:`_boundary_messages` of a random-intercept variance."""
    if not math.isfinite(cov_re):
        return [singular_re_message(math.nan, scale)]
    if cov_re <= 1e-6 * max(scale, 1e-12):
        return [singular_re_message(cov_re, scale)]
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

    # a zero-iteration fit sets the model's fit state (reml, penalties) for its score function;
    # its results (and warnings about the Hessian at that arbitrary point) are not used
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
        return _checked(MixedFit(r.fe_params, r.cov_fe, _intercept_boundary(r.cov_re, r.scale)))
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
            with capture() as caught:
                res = MixedLM(y, X, groups, exog_re=Z).fit(reml=reml)
            Zm = Z
            msgs = _mixedlm_messages(caught.records, bool(getattr(res, "converged", True)))
            params = np.asarray(res.fe_params, float)
            G = np.atleast_2d(np.asarray(res.cov_re, float))
            scale = float(res.scale)
    except ValueError as exc:  # statsmodels' data-driven failures
        raise StatisticalTrouble(f"MixedLM failed: {exc}") from exc
    params = np.asarray(params, float)[:k]
    cov = fe_covariance(X, groups, Zm, G, scale)
    return _checked(MixedFit(params, cov, msgs + _boundary_messages(G, scale)))


def mixed_model_wide(
    Y: np.ndarray,
    X: np.ndarray,
    *,
    engine: str,
    reml: bool = True,
    stats: fast_lmm.WideStats | None = None,
) -> MixedFit:
    """:func:`mixed_model` (random intercept) on padded data: patient i's visits in row i.

    ``Y`` (n, v) with NaN where a visit is not observed, ``X`` (n, v, p) the design per visit
    (rows of unobserved visits ignored). The fit of the long form (observed rows, patient-major,
    visit order; groups = patients): fast = :func:`estimators.fast.lmm.lmm_random_intercept_wide`
    (group sums over the visit axis, no sorting; ``stats`` = its :func:`~estimators.fast.lmm.
    wide_stats` or ``template_stats`` when the caller has them, and then ``X`` is not read),
    reference = :func:`mixed_model` on the long rows.
    """
    _check_engine(engine)
    if engine == "reference":
        obs = np.isfinite(Y)
        return mixed_model(Y[obs], X[obs], np.nonzero(obs)[0], engine=engine, reml=reml)
    r = fast_lmm.lmm_random_intercept_wide(Y, X, reml=reml, stats=stats)
    if r.status == "failed":
        raise StatisticalTrouble(f"MixedLM failed: {r.message}")
    return _checked(MixedFit(r.fe_params, r.cov_fe, _intercept_boundary(r.cov_re, r.scale)))


def _mixedlm_messages(caught, converged: bool) -> list:
    msgs = warning_texts(caught, drop=() if not converged else ("Retrying MixedLM optimization",))
    if not converged and not any("converge" in m or "failed" in m for m in msgs):
        msgs.append("MixedLM did not converge")
    return msgs


def _checked(fit: MixedFit) -> MixedFit:
    """``fit``, or StatisticalTrouble when a fixed effect or its variance is not finite (a sum
    is finite iff every term is, unless it overflowed: then the elementwise test decides)."""
    if math.isfinite(fit.params.sum() + fit.cov.diagonal().sum()):
        return fit
    if not (np.isfinite(fit.params).all() and np.isfinite(np.diagonal(fit.cov)).all()):
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


# --------------------------------------------------------------------------------------------
# OLS and the ANCOVA of a follow-up outcome


class OLSFit(NamedTuple):
    """OLS coefficients, classical covariance s2 (X'X)^-1, residual df and s2."""

    params: np.ndarray
    cov: np.ndarray
    df_resid: float
    scale: float


def ols(y: np.ndarray, X: np.ndarray, *, engine: str) -> OLSFit:
    """OLS with classical (homoscedastic) covariance: statsmodels ``OLS`` or
    :func:`estimators.fast.ols_fit` (same numbers to ~1e-12 on a full-rank design; callers check
    the rank first). A design the kernel cannot fit raises StatisticalTrouble."""
    _check_engine(engine)
    if engine == "fast":
        r = ols_fit(y, X)
        if r.status != "ok":
            raise StatisticalTrouble(f"OLS: {r.message}")
        return OLSFit(r.params, r.cov_params, r.df_resid, r.scale)
    import statsmodels.api as sm  # reference engine only (import cost)

    res = sm.OLS(y, X).fit()
    return OLSFit(
        np.asarray(res.params, float),
        np.asarray(res.cov_params(), float),
        float(res.df_resid),
        float(res.scale),
    )


class AncovaResult(NamedTuple):
    estimate: float
    se: float
    df: float
    n: int


def ancova(
    y: np.ndarray,
    group: np.ndarray,
    base: np.ndarray | None,
    Z: np.ndarray,
    znames: list,
    *,
    engine: str,
    outcome: str = "outcome",
    base_name: str = "baseline",
) -> AncovaResult:
    """OLS of ``y`` on [1, group, base, Z] among complete cases; returns the group coefficient.

    ``base`` may be None (no baseline term). Raises StatisticalTrouble for an arm without complete
    cases, a constant outcome, a rank-deficient design, no residual df or a perfect fit.
    """
    cols = [np.ones_like(y), group] + ([] if base is None else [base])
    names = ["intercept", "group"] + ([] if base is None else [base_name]) + list(znames)
    X = np.column_stack(cols + ([Z] if Z.shape[1] else []))
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    y, X = y[ok], X[ok]
    n = int(ok.sum())
    if n == 0:
        raise StatisticalTrouble(f"no complete cases for {outcome} in either arm")
    for arm in (0, 1):
        if not np.any(X[:, 1] == arm):
            raise StatisticalTrouble(
                f"no complete cases for {outcome} in the {ARM_LABELS[arm]} arm"
            )
    if np.ptp(y) == 0:
        raise StatisticalTrouble(f"{outcome} is constant (all {n} complete cases equal {y[0]:g})")
    check = check_full_rank_fast if engine == "fast" else check_full_rank
    check(X, names, f"ANCOVA design for {outcome}")
    if n - X.shape[1] < 1:
        raise StatisticalTrouble(
            f"no residual degrees of freedom for {outcome} (n={n}, {X.shape[1]} parameters)"
        )
    fit = ols(y, X, engine=engine)
    if not (np.isfinite(fit.scale) and fit.scale > 1e-12 * max(np.var(y), 1e-300)):
        raise StatisticalTrouble(f"perfect fit for {outcome}: residual variance is zero")
    return AncovaResult(float(fit.params[1]), float(np.sqrt(fit.cov[1, 1])), fit.df_resid, n)


def ancova_batch(
    Y: np.ndarray,
    group: np.ndarray,
    base: np.ndarray | None,
    Z: np.ndarray,
    znames: list,
    *,
    engine: str,
    outcome: str = "outcome",
    base_name: str = "baseline",
):
    """:func:`ancova` of each row of ``Y`` (m, n) (m completed data sets, one design):
    (estimates (m,), SEs (m,), residual df, n). Reference: :func:`ancova` data set by data set;
    fast: one OLS of the m responses on the shared design (:func:`estimators.fast.bayes.
    ols_shared_design`), falling back to :func:`ancova` one by one whenever a data set would
    fail (incomplete, constant, perfect fit) or the design is ill conditioned, so the first
    failing data set raises the same StatisticalTrouble in both engines."""
    _check_engine(engine)

    def one_by_one(eng):
        rs = [
            ancova(y, group, base, Z, znames, engine=eng, outcome=outcome, base_name=base_name)
            for y in Y
        ]
        return np.array([r.estimate for r in rs]), np.array([r.se for r in rs]), rs[0].df, rs[0].n

    if engine == "reference":
        return one_by_one("reference")
    X = np.column_stack([np.ones(Y.shape[1]), group] + ([] if base is None else [base]) + [Z])
    if not (np.isfinite(Y).all() and np.isfinite(X).all()) or np.any(np.ptp(Y, axis=1) == 0):
        return one_by_one("fast")
    names = ["intercept", "group"] + ([] if base is None else [base_name]) + list(znames)
    for arm in (0, 1):
        if not np.any(group == arm):
            return one_by_one("fast")
    check_full_rank_fast(X, names, f"ANCOVA design for {outcome}")
    n, p = X.shape
    got = ols_shared_design(Y, X) if n - p >= 1 else None
    if got is None:
        return one_by_one("fast")
    params, scale, norm_cov = got
    if not np.all(np.isfinite(scale) & (scale > 1e-12 * np.maximum(np.var(Y, axis=1), 1e-300))):
        return one_by_one("fast")
    return params[:, 1], np.sqrt(scale * norm_cov[1, 1]), float(n - p), n


# --------------------------------------------------------------------------------------------
# logistic regression

#: fitted probabilities closer than this to 0 or 1 count as separation
P_EXTREME = 1e-10
LOGIT_MAXITER = 100


class LogitFit(NamedTuple):
    """Logistic coefficients, model-based covariance (inverse information), fitted probabilities."""

    params: np.ndarray
    cov: np.ndarray
    mu: np.ndarray


def logit_design_problem(X: np.ndarray, labels: list, what: str, quick: bool = False) -> str:
    """Why the logistic design ``X`` (intercept first) cannot be fitted ("" if it can).

    ``quick``: a Cholesky pre-test of the rank first (SVD only if inconclusive), same answer.
    """
    n, k = X.shape
    if n <= k:
        return f"{what}: {n} patients for {k} parameters"
    if quick:
        ptp = X.max(axis=0) - X.min(axis=0)
        if np.all(ptp[1:] > 0) and certainly_full_rank(X, equilibrated=False):
            return ""
    const = [lab for j, lab in enumerate(labels) if j > 0 and np.ptp(X[:, j]) == 0]
    if const:
        return (
            f"{what}: singular design, constant column(s) in the analysed patients: "
            + ", ".join(const)
        )
    if np.linalg.matrix_rank(X) < k:
        return f"{what}: singular design matrix (collinear columns among {', '.join(labels[1:])})"
    return ""


def logit(y: np.ndarray, X: np.ndarray, labels: list, what: str = "outcome model", *, engine: str):
    """Logistic regression by Newton-Raphson to 1e-10 (at most 100 iterations) -> LogitFit.

    ``X`` includes the intercept (labels[0]). Reference: statsmodels ``Logit(method="newton",
    tol=1e-10)``; fast: :func:`estimators.fast.logistic_fit`. Both raise StatisticalTrouble with
    the same messages on a singular design, separation (confirmed by the Konis LP check,
    :func:`estimators.fast.logistic.is_separated`), fitted probabilities within 1e-10 of 0 or 1,
    non-convergence or a singular information matrix. Other statsmodels warnings are re-issued
    for the caller's capture. Fast engine: a fit that passes every check is one compiled call
    (:func:`estimators.fast.logistic.logistic_fit_plain`); any other goes the general way.
    """
    _check_engine(engine)
    if engine == "fast":  # one compiled call when no check needs a decision
        plain = logistic_fit_plain(y, X, maxiter=LOGIT_MAXITER, tol=1e-10, p_extreme=P_EXTREME)
        if plain is not None:
            return LogitFit(*plain)
    problem = logit_design_problem(X, labels, what, quick=engine == "fast")
    if problem:
        raise StatisticalTrouble(problem)
    caught = []
    if engine == "fast":
        r = logistic_fit(y, X, maxiter=LOGIT_MAXITER, tol=1e-10, check_separation=False)
        if r.status != "ok" and not r.message.startswith("did not converge"):
            raise StatisticalTrouble(f"{what}: {r.message}")
        b, V, converged, flagged = r.params, r.cov_params, r.converged, False
    else:
        import statsmodels.api as sm  # reference engine only (import cost)
        from statsmodels.tools.sm_exceptions import (
            ConvergenceWarning,
            PerfectSeparationError,
            PerfectSeparationWarning,
        )

        with capture() as captured:
            try:
                res = sm.Logit(y, X).fit(disp=0, method="newton", maxiter=LOGIT_MAXITER, tol=1e-10)
            except PerfectSeparationError as exc:
                raise StatisticalTrouble(f"{what}: separation ({exc})") from None
        caught = captured.records
        b = np.asarray(res.params, dtype=float)
        V = np.asarray(res.cov_params(), dtype=float)
        converged = bool(res.mle_retvals.get("converged", True))
        flagged = any(issubclass(w.category, PerfectSeparationWarning) for w in caught)
    mu = expit(X @ b)
    extreme = bool(np.any(np.minimum(mu, 1 - mu) < P_EXTREME))
    if flagged or extreme or not converged:
        if is_separated(y, X):
            raise StatisticalTrouble(
                f"{what}: perfect or quasi-complete separation (the outcome is perfectly "
                "predicted for some patients; maximum-likelihood estimates do not exist)"
            )
        if extreme or flagged:
            raise StatisticalTrouble(f"{what}: fitted probabilities numerically 0 or 1")
        raise StatisticalTrouble(
            f"{what}: Newton-Raphson did not converge in {LOGIT_MAXITER} iterations"
        )
    if not np.all(np.isfinite(V)) or np.any(np.diag(V) <= 0):
        raise StatisticalTrouble(f"{what}: singular information matrix")
    for w in caught:  # (empty for the fast engine)
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn(w.message, w.category, stacklevel=2)
    return LogitFit(b, V, mu)


# --------------------------------------------------------------------------------------------
# GEE and the posterior draw of a normal linear model

#: statsmodels GEE run to its fixed point: it stops when the norm of the estimating equations
#: (evaluated before the last update) is below ctol; its default 1e-6 already lands ~1e-13
#: from the fixed point in rho on n = 205, 1e-8 costs one more iteration and stays above the
#: rounding floor of that norm (~1e-11 at 5,000 patients)
GEE_CTOL = 1e-8
GEE_MAXITER = 100


def gee(y: np.ndarray, X: np.ndarray, groups: np.ndarray, *, engine: str) -> MixedFit:
    """GEE, Gaussian family, identity link, exchangeable working correlation, robust (sandwich)
    covariance -> MixedFit.

    Working covariance phi R_i, R_i = (1 - rho) I + rho 11', with statsmodels' moment estimators
    (ddof = p): phi = sum r^2 / (N - p), rho = sum_i sum_{j<k} r_ij r_ik / phi / (n_pairs - p).
    Both engines solve to the fixed point of statsmodels' iteration (GLS given rho, rho from
    the residuals): reference statsmodels ``GEE.fit(maxiter=GEE_MAXITER, ctol=GEE_CTOL)``;
    fast :func:`estimators.fast.gee_exchangeable` (closed-form per-cluster algebra, rho to
    1e-12). Both raise StatisticalTrouble with the same message before any fit when there are
    too few rows or within-cluster pairs for the moment estimators, and after it when rho is
    outside the range where every R_i is positive definite; not converging in GEE_MAXITER
    iterations is a message (warning rows).
    """
    _check_engine(engine)
    if engine == "fast":  # the kernel runs the same checks (fast_gee.data_problem, rho_problem)
        r = fast_gee.gee_exchangeable(y, X, groups, maxiter=GEE_MAXITER)
        if r.status == "failed":
            raise StatisticalTrouble(f"GEE: {r.message}")
        return _gee_checked(r.params, r.cov_params, [] if r.converged else [f"GEE {r.message}"])
    n, p = X.shape
    _, starts = fast_gee.cluster_starts(groups)
    sizes = np.diff(np.concatenate((starts, [n])))
    problem = fast_gee.data_problem(n, p, sizes)
    if problem:
        raise StatisticalTrouble(f"GEE: {problem}")
    from statsmodels.genmod import cov_struct, families
    from statsmodels.genmod.generalized_estimating_equations import GEE

    with capture(drop=("Iteration limit reached",)) as msgs:
        try:
            res = GEE(
                y,
                X,
                groups=groups,
                family=families.Gaussian(),
                cov_struct=cov_struct.Exchangeable(),
            ).fit(maxiter=GEE_MAXITER, ctol=GEE_CTOL)
        except ValueError as exc:
            raise StatisticalTrouble(f"GEE failed: {exc}") from exc
    if res is None:  # statsmodels warned and gave up (singular covariance structure)
        raise StatisticalTrouble(f"GEE failed: {'; '.join(msgs) or 'no result'}")
    msgs = list(msgs)
    if not bool(getattr(res, "converged", True)):  # (a numpy bool)
        msgs.insert(
            0,
            f"GEE did not converge in {GEE_MAXITER} iterations "
            f"(score norm {res.score_norm:.3g} > {GEE_CTOL:g})",
        )
    params = np.asarray(res.params, float)
    cov = np.asarray(res.cov_params(), float)
    rho = float(res.cov_struct.dep_params)
    problem = fast_gee.rho_problem(rho, int(sizes.max()))
    if problem:
        raise StatisticalTrouble(f"GEE: {problem}")
    return _gee_checked(params, cov, msgs)


def _gee_checked(params: np.ndarray, cov: np.ndarray, msgs: list) -> MixedFit:
    if not np.all(np.isfinite(params)) or not np.all(np.isfinite(np.diag(cov))):
        raise StatisticalTrouble("GEE returned non-finite coefficients or covariance")
    return MixedFit(params, cov, msgs)


def _qr_factors(y: np.ndarray, X: np.ndarray):
    """(beta_hat, R, rss) by numpy's QR, R with a positive diagonal (the Cholesky factor of X'X);
    StatisticalTrouble when |diag R| spans more than 1e10 (rank-deficient predictors)."""
    Q, R = np.linalg.qr(X)
    s = np.where(np.diagonal(R) < 0, -1.0, 1.0)
    R, Q = R * s[:, None], Q * s
    d = np.diagonal(R)
    if d.min() <= 1e-10 * d.max():
        raise StatisticalTrouble("rank-deficient predictors")
    beta_hat = solve_triangular(R, Q.T @ y)
    resid = y - X @ beta_hat
    return beta_hat, R, float(resid @ resid)


class PosteriorDraws(NamedTuple):
    """m posterior draws of a linear model: coefficients, residual SDs, the caller's standard
    normals (m, extra), and the least-squares fit they are drawn around."""

    beta: np.ndarray  # (m, p)
    sigma: np.ndarray  # (m,)
    noise: np.ndarray  # (m, extra)
    beta_hat: np.ndarray  # (m, p), or (1, p) for a shared design


def bayes_draws(
    y: np.ndarray,
    X: np.ndarray,
    m: int,
    rng: np.random.Generator,
    extra: int = 0,
    *,
    engine: str,
    common: CommonRows | None = None,
):
    """m posterior draws (beta*, sigma*) of a normal linear model with the reference prior.

    sigma*^2 = RSS / chi2_{n-p} (scaled inverse chi-square), beta* ~ N(beta_hat, sigma*^2 (X'X)^-1)
    as beta* = beta_hat + sigma* R^-1 z, with R the upper-triangular factor of X'X = R'R with a
    positive diagonal. ``X`` (n, p) is one design shared by the m draws, or (m, n, p) one per
    draw (m imputation chains, the same observed response ``y`` (n,)); then ``common``
    (:func:`estimators.fast.bayes.common_rows`) holds further rows that are the same in every
    chain, with their cross-products computed once. Random numbers, the same whatever the
    engine: chi2_{n-p} (m), then N(0, 1) (m, p + ``extra``), whose last ``extra`` columns are
    returned for the caller's predictive noise. Returns :class:`PosteriorDraws`. Reference: numpy's QR, chain by chain; fast: one batched Cholesky of the
    equilibrated cross-products (:func:`estimators.fast.bayes.posterior_parts`), the QR path
    when a factorisation is ill conditioned (so both decide rank deficiency alike). Equal draws
    to ~1e-12.
    """
    _check_engine(engine)
    shared = X.ndim == 2
    n, p = X.shape[-2:]
    if common is not None:
        n += common.y.shape[0]
    if n - p < 1:
        raise StatisticalTrouble(f"too few observed values ({n}) for {p} predictors")
    chi2 = rng.chisquare(n - p, size=m)
    z = rng.standard_normal((m, p + extra))
    zb = z[:, :p]
    got = None
    if engine == "fast":
        got = posterior_parts(y, X[None] if shared else X, common)
    if got is not None:
        beta_hat, Rinv, rss = got
        step = zb @ Rinv[0].T if shared else np.matmul(Rinv, zb[:, :, None])[:, :, 0]
    else:
        Xk = [X] if shared else list(X)
        if common is not None:
            Xk, yk = [np.vstack([common.X, x]) for x in Xk], np.concatenate([common.y, y])
        else:
            yk = y
        fits = [_qr_factors(yk, x) for x in Xk]
        beta_hat = np.array([f[0] for f in fits])
        rss = np.array([f[2] for f in fits])
        if shared:
            step = solve_triangular(fits[0][1], zb.T).T
        else:
            step = np.array([solve_triangular(f[1], zi) for f, zi in zip(fits, zb)])
    sigma = np.sqrt(rss / chi2)
    return PosteriorDraws(beta_hat + sigma[:, None] * step, sigma, z[:, p:], beta_hat)


# --------------------------------------------------------------------------------------------
# RMST and the log-rank test


def km_rmst_variance(kmf, horizon: float) -> float:
    """Greenwood-type variance of the Kaplan-Meier RMST up to ``horizon`` (lifelines ``kmf``).

    Var = sum_{t_j <= tau} A_j^2 d_j / (n_j (n_j - d_j)), A_j = int_{t_j}^{tau} S(u) du (terms
    with n_j = d_j are 0), as in R's survRM2 and survival::survfit(rmean). NB lifelines'
    ``restricted_mean_survival_time(..., return_variance=True)`` returns Var[min(T, tau)] under the
    fitted curve, the variance of one patient's restricted time, not of the estimator.
    """
    et = kmf.event_table
    times = et.index.to_numpy(dtype=float)
    d = et["observed"].to_numpy(dtype=float)
    n = et["at_risk"].to_numpy(dtype=float)
    keep = (times <= horizon) & (d > 0)
    tj, dj, nj = times[keep], d[keep], n[keep]
    s = np.exp(np.cumsum(np.log(nj - dj) - np.log(nj)))  # S just after each event time
    knots = np.append(tj, horizon)
    area = s * np.diff(knots)  # area under S from t_j to the next event time (or tau)
    a = np.cumsum(area[::-1])[::-1]  # A_j
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(nj > dj, dj / (nj * (nj - dj)), 0.0)
    return float(np.sum(a**2 * w))


def rmst(t: np.ndarray, e: np.ndarray, horizon: float, *, engine: str) -> tuple[float, float]:
    """(RMST up to ``horizon``, its Greenwood-type variance) from the Kaplan-Meier curve.

    Reference: lifelines ``restricted_mean_survival_time`` + :func:`km_rmst_variance`; fast:
    :func:`estimators.fast.rmst` (exact integral of the step function).
    """
    _check_engine(engine)
    if engine == "fast":
        r = fast_km.rmst(t, e, horizon)
        return float(r.rmst), float(r.se) ** 2
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    kmf = KaplanMeierFitter().fit(t, e)
    return float(restricted_mean_survival_time(kmf, t=horizon)), km_rmst_variance(kmf, horizon)


def peto_logrank(t: np.ndarray, e: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """(O - E, V) for group 1 over the distinct event times (hypergeometric variance)."""
    ev = e > 0
    ut = np.unique(t[ev])
    ts1 = np.sort(t[g == 1])
    ts = np.sort(t)
    n = ts.size - np.searchsorted(ts, ut, side="left")
    n1 = ts1.size - np.searchsorted(ts1, ut, side="left")
    pos = np.searchsorted(ut, t[ev])
    d = np.bincount(pos, minlength=ut.size).astype(float)
    d1 = np.bincount(pos, weights=(g[ev] == 1).astype(float), minlength=ut.size)
    frac = n1 / n
    o_minus_e = float(np.sum(d1 - d * frac))
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(n > 1, d * frac * (1 - frac) * (n - d) / (n - 1), 0.0)
    return o_minus_e, float(np.sum(v))


class LogrankFit(NamedTuple):
    """Observed minus expected events of group 1, hypergeometric variance, two-sided p."""

    o_minus_e: float
    variance: float
    p_value: float


def logrank(t: np.ndarray, e: np.ndarray, g: np.ndarray, *, engine: str, order=None) -> LogrankFit:
    """Two-sample log-rank test of group 1 vs 0: lifelines ``logrank_test`` (+ Peto's sums,
    :func:`peto_logrank`) or :func:`estimators.fast.logrank.logrank_oe` (the same sums; ``order``:
    the stable time order if known)."""
    _check_engine(engine)
    if engine == "fast":
        o_e, v, p, msg = fast_logrank_oe(t, e, g == 1, order=order)
        if msg and v > 0:
            raise StatisticalTrouble(f"log-rank test: {msg}")
        return LogrankFit(float(o_e), float(v), float(p))
    from lifelines.statistics import logrank_test

    res = logrank_test(t[g == 1], t[g == 0], e[g == 1], e[g == 0])
    o_e, v = peto_logrank(t, e, g)
    return LogrankFit(o_e, v, float(res.p_value))
