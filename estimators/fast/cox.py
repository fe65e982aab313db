"""Cox proportional-hazards regression by Newton-Raphson to the maximum partial likelihood.

Ties
----
* ``ties="efron"`` (R ``coxph``'s default, lifelines, ``statsmodels PHReg(ties="efron")``).
* ``ties="breslow"`` (R ``coxph(ties="breslow")``, statsmodels PHReg).

Case weights follow R's (and lifelines') convention: risk-set sums are weighted and the Efron
terms of a tied group of deaths are multiplied by the *mean* weight of its deaths.

Convergence
-----------
Damped Newton-Raphson until the Newton step changes the linear predictor by at most ``tol``
(1e-9) per unit SD of each covariate; quadratic convergence makes beta + step exact to
~1e-16, and the information (hence the SEs) from the last iterate, within ``tol`` of it. This is the
optimum R's ``coxph`` converges to (its default ``eps = 1e-9`` on the relative log-likelihood
change), not a library's early stopping point.

Robust covariance
-----------------
``robust=True`` gives R's ``coxph(..., robust = TRUE)`` (Lin-Wei sandwich): V = D'D with
D = diag(w) U I^-1, U the per-subject score residuals of R's ``coxscore`` *with* the Efron
tie correction (each of the d tied deaths gets 1/d of every Efron sub-term's x - xbar_r and is
charged (1 - r/d) of its hazard increment), see :func:`score_residuals`. (lifelines' sandwich
forms row-wise Breslow-type residuals and so differs with tied event times.)

Algorithm
---------
One compiled call per fit (:func:`estimators.fast.surv_cox_jit.cox_fit_c`): the data checks,
the centring, the sort (by time, censorings first at equal times) and the whole damped Newton
loop (:func:`estimators.fast.surv_cox_jit.cox_newton`). For a given beta one backward pass over
the rows accumulates the risk-set sums S0, S1, S2 and, per death time, the Efron sub-terms
den_r = S0 - (r/d) D0 (D: the sums over its tied deaths), so no n x p x p arrays are ever
formed; the robust sandwich's score residuals are two more passes. The numpy
:func:`_score_residuals_sorted` (used by :func:`score_residuals` and :func:`robust_cov`, the
reference engine's sandwich) computes the same residuals.

Score test
----------
``score_stat`` is U(0)' I(0)^{-1} U(0) at beta = 0 with the chosen ties method (free: it is the
first Newton iteration). For a single binary covariate without tied event times it equals the
log-rank statistic exactly.

Status
------
Never raises on statistical trouble. ``status`` is "ok" or "failed" with ``message`` e.g.
"no events", "no events in arm 1", "singular information matrix", "monotone likelihood:
coefficient(s) diverge to infinity", "did not converge".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._common import STATUS_FAILED, STATUS_OK, Z975, p_chi2, p_norm2
from .surv_cox_jit import (
    CHECK_CONSTANT,
    CHECK_EVENT,
    CHECK_NO_EVENTS,
    CHECK_NONFINITE,
    CHECK_OK,
    CHECK_WEIGHTS,
    MSG_LINE_SEARCH,
    MSG_NONE,
    MSG_SINGULAR,
    PROBLEM_CONSTANT,  # noqa: F401  (used by estimators.engines.cox_data_problem)
    PROBLEM_MONOTONE,  # noqa: F401
    PROBLEM_NO_EVENTS,  # noqa: F401
    PROBLEM_NONE,
    cox_fit_c,
    cox_problem_c,  # noqa: F401
)

_EMPTY = np.empty(0)
_MESSAGES = {
    MSG_NONE: "",
    MSG_LINE_SEARCH: "line search failed",
    MSG_SINGULAR: "singular information matrix",
}


@dataclass(frozen=True, slots=True)
class CoxResult:
    """A :func:`cox_fit`; the Wald z, p-values and CIs and the tests' p-values are computed
    when read (most callers want only the coefficients and SEs)."""

    params: np.ndarray
    bse: np.ndarray
    cov_params: np.ndarray  # robust if robust=True else inverse information
    cov_naive: np.ndarray  # inverse information (model-based)
    llf: float  # log partial likelihood at the estimate
    ll_null: float  # log partial likelihood at beta = 0
    lr_stat: float
    score_stat: float  # score test at beta = 0 (same ties method)
    nobs: int
    n_events: int
    n_iter: int
    converged: bool
    status: str
    message: str

    @property
    def zvalues(self) -> np.ndarray:
        return self.params / self.bse

    @property
    def pvalues(self) -> np.ndarray:
        """Two-sided Wald p-values 2 Phi(-|z|)."""
        return p_norm2(self.zvalues)

    @property
    def conf_int(self) -> np.ndarray:
        """(p, 2) Wald normal 95% intervals on the log-HR scale."""
        return np.column_stack((self.params - Z975 * self.bse, self.params + Z975 * self.bse))

    @property
    def lr_pvalue(self) -> float:
        return _p_chi2(self.lr_stat, self.params.shape[0])

    @property
    def score_pvalue(self) -> float:
        return _p_chi2(self.score_stat, self.params.shape[0])


class CoxEstimate(NamedTuple):
    """What :func:`cox_estimate` returns: ``problem`` (a PROBLEM_* code of
    :func:`estimators.fast.surv_cox_jit.cox_problem_c`, covariate ``j``, level ``lvl``: the
    data problem found before fitting, PROBLEM_NONE if none), else ``message`` (:func:`cox_fit`'s
    failure message, "" when the fit is ok) and the fit."""

    problem: int
    j: int
    lvl: int
    message: str
    params: np.ndarray
    bse: np.ndarray
    cov: np.ndarray
    n_events: int


#: "no precomputed time order" for the compiled kernels
_NO_ORDER = np.empty(0, dtype=np.int64)


def _p_chi2(x: float, df: int) -> float:
    """Upper chi-square tail: closed forms for 1 and 2 degrees of freedom (scipy's chdtrc costs
    ~15 us a call at df = 1; these agree with it to ~1e-14 relative), else chdtrc."""
    if x >= 0.0 and x < math.inf:
        if df == 1:
            return math.erfc(math.sqrt(0.5 * x))
        if df == 2:
            return math.exp(-0.5 * x)
    return float(p_chi2(x, df))


def _failed(p, n, nev, msg, params=None, llf=np.nan, ll0=np.nan, score=np.nan, n_iter=0):
    nan_p = np.full(p, np.nan)
    return CoxResult(
        params=nan_p.copy() if params is None else params,
        bse=nan_p,
        cov_params=np.full((p, p), np.nan),
        cov_naive=np.full((p, p), np.nan),
        llf=float(llf),
        ll_null=float(ll0),
        lr_stat=np.nan,
        score_stat=float(score),
        nobs=n,
        n_events=nev,
        n_iter=n_iter,
        converged=False,
        status=STATUS_FAILED,
        message=msg,
    )


class _CoxData:
    """Sorted data and index structures of :func:`_score_residuals_sorted` (numpy; the
    reference engine's robust covariance, :func:`robust_cov`)."""

    __slots__ = (
        "X",
        "w",
        "idx_d",
        "gstart",
        "gid",
        "f",
        "wb",
        "rstart_d",
        "cnt",
        "efron_ties",
        "order",
    )

    def __init__(self, time, event, Xc, w, ties):
        order = np.lexsort((event, time))  # like lifelines: by time, then event
        ts = time[order]
        es = event[order]
        X = Xc[order]
        self.order = order
        self.X = X
        self.w = None if w is None else w[order]
        idx_d = np.flatnonzero(es)
        self.idx_d = idx_d
        dt = ts[idx_d]
        nd = idx_d.shape[0]
        brk = np.flatnonzero(dt[1:] != dt[:-1]) + 1
        gstart = np.concatenate(([0], brk))
        dg = np.diff(np.concatenate((gstart, [nd])))
        self.gstart = gstart
        gid = np.repeat(np.arange(gstart.shape[0]), dg)
        self.gid = gid
        self.efron_ties = ties == "efron" and nd > gstart.shape[0]
        if self.efron_ties:
            self.f = (np.arange(nd) - gstart[gid]) / dg[gid]
        else:
            self.f = None
        udt = dt[gstart]
        self.rstart_d = np.searchsorted(ts, udt, side="left")[gid]
        self.cnt = np.searchsorted(udt, ts, side="right")
        if self.w is None:
            self.wb = None
        else:
            wbar = np.add.reduceat(self.w[idx_d], gstart) / dg
            self.wb = wbar[gid]


def _score_residuals_sorted(dat: _CoxData, beta: np.ndarray) -> np.ndarray:
    """Unweighted per-row score residuals (sorted order), as R's ``coxscore`` (Efron or Breslow).

    For every death time k with risk-set sums S0, S1 and tied-death sums S0_D, S1_D, sub-terms
    r = 0..d-1 (Efron; one for Breslow): d2_r = S0 - (r/d) S0_D, xbar_r = (S1 - (r/d) S1_D) / d2_r,
    h_r = wbar / d2_r. Row j collects delta_j (x_j - mean_r xbar_r) - e_j sum_{k, r} c_jkr h_r
    (x_j - xbar_r), with c = 1 - r/d for the deaths at k and 1 for the others at risk.
    """
    X = dat.X
    eta = X @ beta
    e = np.exp(eta - eta.max())  # residuals are invariant to a common factor of the scores
    ew = e if dat.w is None else e * dat.w
    idx_d, gid, gstart, rstart_d = dat.idx_d, dat.gid, dat.gstart, dat.rstart_d
    r0d = np.cumsum(ew[::-1])[::-1][rstart_d]
    ewx = X * ew[:, None]
    num1 = np.cumsum(ewx[::-1], axis=0)[::-1][rstart_d]
    if dat.efron_ties:
        f = dat.f
        den = r0d - f * np.add.reduceat(ew[idx_d], gstart)[gid]
        num1 = num1 - f[:, None] * np.add.reduceat(ewx[idx_d], gstart, axis=0)[gid]
    else:
        f = None
        den = r0d
    xbar = num1 / den[:, None]
    h = 1.0 / den if dat.wb is None else dat.wb / den
    hx = xbar * h[:, None]
    ng = gstart.shape[0]
    ch = np.zeros(ng + 1)
    np.cumsum(np.add.reduceat(h, gstart), out=ch[1:])
    chx = np.zeros((ng + 1, X.shape[1]))
    np.cumsum(np.add.reduceat(hx, gstart, axis=0), axis=0, out=chx[1:])
    A = ch[dat.cnt]
    B = chx[dat.cnt]
    if f is not None:
        A[idx_d] -= np.add.reduceat(h * f, gstart)[gid]
        B[idx_d] -= np.add.reduceat(hx * f[:, None], gstart, axis=0)[gid]
    dg = np.diff(np.append(gstart, idx_d.shape[0]))
    xbar_mean = (np.add.reduceat(xbar, gstart, axis=0) / dg[:, None])[gid]
    resid = -e[:, None] * (X * A[:, None] - B)
    resid[idx_d] += X[idx_d] - xbar_mean
    return resid


def score_residuals(time, event, X, beta, weights=None, ties: str = "efron") -> np.ndarray:
    """Per-subject score residuals at ``beta`` (input row order), R's ``residuals(fit, "score")``.

    Unweighted (R multiplies them by the case weights for ``dfbeta`` and the sandwich).
    """
    time = np.asarray(time, dtype=float).reshape(-1)
    event = np.asarray(event).reshape(-1) != 0
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    w = None if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    dat = _CoxData(time, event, X - X.mean(axis=0), w, ties)
    r = _score_residuals_sorted(dat, np.asarray(beta, dtype=float))
    out = np.empty_like(r)
    out[dat.order] = r
    return out


def robust_cov(time, event, X, beta, cov_naive, weights=None, ties: str = "efron") -> np.ndarray:
    """R's ``coxph(..., robust = TRUE)`` covariance: D'D, D = diag(w) U I^-1 (:func:`score_residuals`).

    ``cov_naive`` is the inverse information at ``beta``; used by both engines (the reference
    engine passes lifelines' estimates).
    """
    r = score_residuals(time, event, X, beta, weights, ties)
    if weights is not None:
        r = r * np.asarray(weights, dtype=float).reshape(-1)[:, None]
    d = r @ np.asarray(cov_naive, dtype=float)
    return d.T @ d


def _kernel(time, event, X, weights, ties, robust, maxiter, tol, order, problems):
    """(n, p, out): the inputs as arrays and :func:`estimators.fast.surv_cox_jit.cox_fit_c`'s
    tuple, or (n, p, message) when the lengths do not fit."""
    time = np.asarray(time, dtype=float)
    if time.ndim != 1:
        time = time.reshape(-1)
    event = np.asarray(event, dtype=float)
    if event.ndim != 1:
        event = event.reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    if ties not in ("efron", "breslow"):
        raise ValueError("ties must be 'efron' or 'breslow'")
    if time.shape[0] != n or event.shape[0] != n:
        return n, p, "length mismatch between time, event and X"
    if n == 0 and not problems:  # (the data problems report it as "no events")
        return n, p, "no observations"
    Xt = X.T  # covariates by row: no copy for the F-ordered columns of an estimator's design
    if not Xt.flags.c_contiguous:
        Xt = np.ascontiguousarray(Xt)
    weighted = weights is not None
    w_ok = True
    if weighted:
        w = np.asarray(weights, dtype=float).reshape(-1)
        w_ok = w.shape[0] == n
    else:
        w = _EMPTY
    by_time = _NO_ORDER if order is None else np.asarray(order, dtype=np.int64)
    out = cox_fit_c(
        time, event, Xt, w, weighted, w_ok, ties == "efron", maxiter, tol, robust, by_time, problems
    )
    return n, p, out


def _message(p, out) -> str:
    """:func:`cox_fit`'s failure message for the kernel's tuple ("" when the fit is ok)."""
    _, check, j, lvl, _, sd, _, newton = out
    if check != CHECK_OK:
        if check == CHECK_NONFINITE:
            return "non-finite values in time or X"
        if check == CHECK_EVENT:
            return "event must be coded 0/1"
        if check == CHECK_WEIGHTS:
            return "weights must be finite and > 0"
        if check == CHECK_NO_EVENTS:
            return "no events"
        if check == CHECK_CONSTANT:
            return f"singular information matrix (covariate {j} is constant)"
        what = f"arm {lvl}" if p == 1 else f"group covariate {j} == {lvl}"
        return f"no events in {what} (monotone likelihood)"
    beta, _, _, _, it, converged, monotone, code, singular0, _, _ = newton
    if singular0:
        return "singular information matrix (collinear covariates)"
    msg = _MESSAGES[code]
    if monotone:
        big = np.flatnonzero(np.abs(beta) * sd > 5.0)
        which = f" (covariate(s) {big.tolist()})" if big.size else ""
        m = "monotone likelihood: coefficient(s) diverge to infinity" + which
        return msg + "; " + m if msg else m
    if not converged:
        return f"did not converge in {it} iterations" + (f" ({msg})" if msg else "")
    return ""


def cox_fit(
    time,
    event,
    X,
    weights=None,
    ties: str = "efron",
    robust: bool = False,
    maxiter: int = 50,
    tol: float = 1e-9,
    order=None,
) -> CoxResult:
    """Fit a Cox PH model.

    Parameters
    ----------
    time : (n,) durations
    event : (n,) 1 = event observed, 0 = censored
    X : (n, p) covariates (no intercept column)
    weights : optional (n,) positive case weights (R / lifelines convention)
    ties : "efron" (R's default) or "breslow"
    robust : Lin-Wei sandwich covariance as R's ``coxph(robust = TRUE)`` (Efron ties included)
    tol : convergence when max_j |step_j| * sd(x_j) <= tol (SEs from the information at the
        last iterate, within tol of the returned beta)
    order : optional ``np.argsort(time, kind="stable")`` (int64) when the caller has it (shared
        by the fits of a replication); the result is the same without it
    """
    n, p, out = _kernel(time, event, X, weights, ties, robust, maxiter, tol, order, False)
    if isinstance(out, str):
        return _failed(p, n, 0, out)
    msg = _message(p, out)
    _, check, _, _, nev, _, bse, newton = out
    beta, ll, ll0, score_stat, it, converged, _, _, singular0, cov_naive, cov = newton
    if check != CHECK_OK:
        return _failed(p, n, 0 if check in (CHECK_NONFINITE, CHECK_EVENT) else nev, msg)
    if singular0:
        return _failed(p, n, nev, msg, ll0=ll0)
    if msg:
        return _failed(p, n, nev, msg, params=beta, llf=ll, ll0=ll0, score=score_stat, n_iter=it)
    # the information was evaluated at the last iterate, within tol (1e-9 SD units) of beta:
    # the SEs are exact to ~1e-9 relative (quadratic convergence usually leaves ~1e-14)
    return CoxResult(
        params=beta,
        bse=bse,
        cov_params=cov,
        cov_naive=cov_naive,
        llf=ll,
        ll_null=ll0,
        lr_stat=2.0 * (ll - ll0),
        score_stat=score_stat,
        nobs=n,
        n_events=nev,
        n_iter=it,
        converged=True,
        status=STATUS_OK,
        message="",
    )


def cox_estimate(time, event, X, weights=None, robust: bool = False, order=None) -> CoxEstimate:
    """:func:`cox_fit` (Efron ties, default tolerances) after the data checks of
    :func:`estimators.engines.cox_data_problem`, in the same compiled call, returning only the
    coefficients, SEs and covariance (:class:`CoxEstimate`): the fast engine's Cox fit."""
    n, p, out = _kernel(time, event, X, weights, "efron", robust, 50, 1e-9, order, True)
    if isinstance(out, str):
        return CoxEstimate(PROBLEM_NONE, 0, 0, out, _EMPTY, _EMPTY, _EMPTY, 0)
    problem, _, j, lvl, nev, _, bse, newton = out
    msg = "" if problem != PROBLEM_NONE else _message(p, out)
    return CoxEstimate(problem, j, lvl, msg, newton[0], bse, newton[10], nev)
