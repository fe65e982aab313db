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
Rows are sorted once. For a given beta the risk-set sums are reverse cumulative sums; the Efron
corrections are done per death (vectorised over all deaths at once). The Hessian is assembled as
``X' diag(e * a) X - N'N`` where ``a`` collects, for every row, the sum of 1/denominator over the
deaths whose risk set contains that row (minus the Efron tie correction for the deaths
themselves) -- so no n x p x p arrays are ever formed. A single 0/1 covariate (the two-arm
comparison of the unadjusted and IPTW models) is reduced once to two numbers per death,
den_i = A_i + exp(beta) B_i (:class:`_BinaryCoxData`): a Newton step then costs a few
operations on arrays of one entry per death; the same Newton rules, optimum and SEs.

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

import numpy as np

from ._common import (
    STATUS_FAILED,
    STATUS_OK,
    Z975,
    chol,
    chol_inv,
    chol_solve,
    p_chi2,
    p_norm2,
)


@dataclass(frozen=True, slots=True)
class CoxResult:
    params: np.ndarray
    bse: np.ndarray
    zvalues: np.ndarray
    pvalues: np.ndarray
    conf_int: np.ndarray  # (p, 2) Wald normal on the log-HR scale
    cov_params: np.ndarray  # robust if robust=True else inverse information
    cov_naive: np.ndarray  # inverse information (model-based)
    llf: float  # log partial likelihood at the estimate
    ll_null: float  # log partial likelihood at beta = 0
    lr_stat: float
    lr_pvalue: float
    score_stat: float  # score test at beta = 0 (same ties method)
    score_pvalue: float
    nobs: int
    n_events: int
    n_iter: int
    converged: bool
    status: str
    message: str


def _failed(p, n, nev, msg, params=None, llf=np.nan, ll0=np.nan, score=np.nan, n_iter=0):
    nan_p = np.full(p, np.nan)
    return CoxResult(
        params=nan_p.copy() if params is None else params,
        bse=nan_p.copy(),
        zvalues=nan_p.copy(),
        pvalues=nan_p.copy(),
        conf_int=np.full((p, 2), np.nan),
        cov_params=np.full((p, p), np.nan),
        cov_naive=np.full((p, p), np.nan),
        llf=float(llf),
        ll_null=float(ll0),
        lr_stat=np.nan,
        lr_pvalue=np.nan,
        score_stat=float(score),
        score_pvalue=float(p_chi2(score, p)) if np.isfinite(score) else np.nan,
        nobs=n,
        n_events=nev,
        n_iter=n_iter,
        converged=False,
        status=STATUS_FAILED,
        message=msg,
    )


class _CoxData:
    """Sorted data and index structures that do not depend on beta."""

    __slots__ = (
        "X",
        "XT",
        "w",
        "idx_d",
        "Xd",
        "gstart",
        "gid",
        "f",
        "wb",
        "sqrt_wb",
        "rstart_d",
        "cp_buf",
        "cnt",
        "xdw",
        "wsum_d",
        "efron_ties",
        "order",
        "e_sorted",
    )

    def __init__(self, time, event, Xc, w, ties):
        order = np.lexsort((event, time))  # like lifelines: by time, then event
        ts = time[order]
        es = event[order]
        X = Xc[order]
        self.order = order
        self.e_sorted = es
        self.X = X
        self.XT = np.ascontiguousarray(X.T)
        self.w = None if w is None else w[order]
        idx_d = np.flatnonzero(es)
        self.idx_d = idx_d
        self.Xd = X[idx_d]
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
        self.cp_buf = np.zeros(gstart.shape[0] + 1)
        self.cnt = np.searchsorted(udt, ts, side="right")
        if self.w is None:
            self.wb = None
            self.sqrt_wb = None
            self.xdw = self.Xd.sum(axis=0)
            self.wsum_d = float(nd)
        else:
            wd = self.w[idx_d]
            wbar = np.add.reduceat(wd, gstart) / dg
            self.wb = wbar[gid]
            self.sqrt_wb = np.sqrt(self.wb)
            self.xdw = wd @ self.Xd
            self.wsum_d = float(wd.sum())


class _BinaryCoxData:
    """Cox data of one 0/1 covariate x, reduced to one pair (A_i, B_i) per death.

    With theta = exp(beta) the Efron-corrected denominator of death i (tied group k, sub-term
    f_i = r/d_k; 0 for Breslow) is den_i = A_i + theta B_i, A_i = R0_k - f_i D0_k and
    B_i = R1_k - f_i D1_k (R_xk: weight at risk at t_k with x, D_xk: of the deaths at t_k), so
    ll = beta s1 - sum_i wbar_i log den_i, U = s1 - sum_i wbar_i p_i, I = sum_i wbar_i p_i (1 - p_i)
    with p_i = theta B_i / den_i and s1 the weight of the deaths with x = 1: a Newton step costs
    a few operations on arrays of one entry per death, whatever p or the data's size.
    """

    __slots__ = ("A", "B", "wb", "s1", "order", "ts", "xs", "udt", "idx_d", "gstart", "gid", "f")

    def __init__(self, time, event, x, w, ties):
        order = np.lexsort((event, time))
        ts, es, xs = time[order], event[order], x[order]
        ws = None if w is None else w[order]
        idx_d = np.flatnonzero(es)
        nd = idx_d.shape[0]
        dt = ts[idx_d]
        gstart = np.flatnonzero(np.concatenate(([True], dt[1:] != dt[:-1])))
        ng = gstart.shape[0]
        udt = dt[gstart]
        rstart = np.searchsorted(ts, udt, side="left")
        wx = xs if ws is None else ws * xs
        c1 = np.concatenate(([0.0], np.cumsum(wx)))
        r1 = c1[-1] - c1[rstart]  # weight at risk with x = 1 at each distinct death time
        if ws is None:
            r0 = (ts.shape[0] - rstart) - r1
        else:
            call = np.concatenate(([0.0], np.cumsum(ws)))
            r0 = (call[-1] - call[rstart]) - r1
        self.order, self.ts, self.xs, self.udt = order, ts, xs, udt
        self.idx_d, self.gstart = idx_d, gstart
        self.s1 = float(wx[idx_d].sum())
        tied = nd > ng
        if tied:
            dg = np.diff(np.concatenate((gstart, [nd])))
            gid = np.repeat(np.arange(ng), dg)
            d1 = np.add.reduceat(wx[idx_d], gstart)
            dall = dg.astype(float) if ws is None else np.add.reduceat(ws[idx_d], gstart)
            self.wb = None if ws is None else (dall / dg)[gid]
            self.gid = gid
            if ties == "efron":
                f = (np.arange(nd) - gstart[gid]) / dg[gid]
                self.f = f
                self.A = r0[gid] - f * (dall - d1)[gid]
                self.B = r1[gid] - f * d1[gid]
            else:
                self.f = None
                self.A, self.B = r0[gid], r1[gid]
        else:
            self.gid = None
            self.f = None
            self.wb = None if ws is None else ws[idx_d]
            self.A, self.B = r0, r1

    def derivs(self, beta: np.ndarray):
        """Log partial likelihood, gradient (1,) and Hessian (1, 1) at beta."""
        b = float(beta[0])
        tb = math.exp(b) * self.B if b < 700.0 else np.full_like(self.B, np.inf)
        den = self.A + tb
        pr = tb / den
        wb = self.wb
        if wb is None:
            ll = b * self.s1 - float(np.log(den).sum())
            u = self.s1 - float(pr.sum())
            info = float((pr - pr * pr).sum())
        else:
            ll = b * self.s1 - float(wb @ np.log(den))
            u = self.s1 - float(wb @ pr)
            info = float(wb @ (pr - pr * pr))
        return ll, np.array([u]), np.array([[-info]])

    def score_residuals(self, beta: np.ndarray) -> np.ndarray:
        """Unweighted score residuals (sorted order, (n, 1)): :func:`_score_residuals_sorted`
        for one 0/1 covariate (x uncentred and risk scores theta^x: both cancel in them)."""
        theta = math.exp(float(beta[0]))
        tb = theta * self.B
        den = self.A + tb
        xbar = tb / den
        h = 1.0 / den if self.wb is None else self.wb / den
        hx = xbar * h
        gstart, gid, f, idx_d = self.gstart, self.gid, self.f, self.idx_d
        ng = gstart.shape[0]
        ch = np.zeros(ng + 1)
        chx = np.zeros(ng + 1)
        if gid is None:  # one death per distinct time
            np.cumsum(h, out=ch[1:])
            np.cumsum(hx, out=chx[1:])
            xbar_mean = xbar
        else:
            np.cumsum(np.add.reduceat(h, gstart), out=ch[1:])
            np.cumsum(np.add.reduceat(hx, gstart), out=chx[1:])
            dg = np.diff(np.concatenate((gstart, [idx_d.shape[0]])))
            xbar_mean = (np.add.reduceat(xbar, gstart) / dg)[gid]
        cnt = np.searchsorted(self.udt, self.ts, side="right")  # death times <= t_j
        a = ch[cnt]
        bx = chx[cnt]
        if f is not None:
            a[idx_d] -= np.add.reduceat(h * f, gstart)[gid]
            bx[idx_d] -= np.add.reduceat(hx * f, gstart)[gid]
        xs = self.xs
        e = np.where(xs != 0.0, theta, 1.0)
        resid = -e * (xs * a - bx)
        resid[idx_d] += xs[idx_d] - xbar_mean
        return resid[:, None]


def _efron_derivs(dat: _CoxData, beta: np.ndarray):
    """Log partial likelihood, gradient and Hessian at beta (sorted data)."""
    X = dat.X
    eta = X @ beta
    emax = eta.max()
    if emax > 300.0:  # guard exp overflow; rarely needed (X is centred)
        e = np.exp(eta - emax)
    else:
        emax = 0.0
        e = np.exp(eta)
    ew = e if dat.w is None else e * dat.w
    idx_d = dat.idx_d
    gid = dat.gid
    rstart_d = dat.rstart_d
    r0d = np.cumsum(ew[::-1])[::-1][rstart_d]
    efron = dat.efron_ties
    if efron:
        f = dat.f
        den = r0d - f * np.add.reduceat(ew[idx_d], dat.gstart)[gid]
    else:
        den = r0d
    q = 1.0 / den
    if dat.wb is None:
        ll = float(dat.xdw @ beta - np.log(den).sum()) - emax * dat.wsum_d
    else:
        q *= dat.wb
        ll = float(dat.xdw @ beta - dat.wb @ np.log(den)) - emax * dat.wsum_d
    cp = dat.cp_buf
    np.cumsum(np.add.reduceat(q, dat.gstart), out=cp[1:])
    a = cp[dat.cnt]
    if efron:
        a[idx_d] -= np.add.reduceat(q * f, dat.gstart)[gid]
    ewa = ew * a
    XT = dat.XT
    grad = dat.xdw - XT @ ewa
    # risk-set first moments per death (Efron-corrected)
    ewx = X * ew[:, None]
    num1 = np.cumsum(ewx[::-1], axis=0)[::-1][rstart_d]
    if efron:
        num1 -= f[:, None] * np.add.reduceat(ewx[idx_d], dat.gstart, axis=0)[gid]
    if dat.sqrt_wb is None:
        nrm = num1 * q[:, None]
    else:
        nrm = num1 * (dat.sqrt_wb / den)[:, None]
    hess = nrm.T @ nrm - (XT * ewa) @ X
    return ll, grad, hess


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


def cox_fit(
    time,
    event,
    X,
    weights=None,
    ties: str = "efron",
    robust: bool = False,
    maxiter: int = 50,
    tol: float = 1e-9,
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
    """
    time = np.asarray(time, dtype=float)
    if time.ndim != 1:
        time = time.reshape(-1)
    event = np.asarray(event)
    if event.ndim != 1:
        event = event.reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    if ties not in ("efron", "breslow"):
        raise ValueError("ties must be 'efron' or 'breslow'")
    if time.shape[0] != n or event.shape[0] != n:
        return _failed(p, n, 0, "length mismatch between time, event and X")
    if n == 0:
        return _failed(p, n, 0, "no observations")
    # a sum is finite iff every term is (NaN/inf propagate): one reduction each
    if not (math.isfinite(time.sum()) and math.isfinite(X.sum())):
        return _failed(p, n, 0, "non-finite values in time or X")
    evf = event.astype(float)
    if event.dtype != bool:
        if (evf * (1.0 - evf)).any():
            return _failed(p, n, 0, "event must be coded 0/1")
        event = evf != 0.0
    nev = int(evf.sum())
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.shape[0] != n or not np.isfinite(w).all() or np.any(w <= 0):
            return _failed(p, n, nev, "weights must be finite and > 0")
    if nev == 0:
        return _failed(p, n, nev, "no events")

    # centre (and measure scale of) the covariates; estimates are invariant
    Xc = X - X.sum(axis=0) * (1.0 / n)
    sd = np.sqrt(np.einsum("ij,ij->j", Xc, Xc) * (1.0 / n))
    if not sd.all():
        j = int(np.flatnonzero(sd == 0.0)[0])
        return _failed(p, n, nev, f"singular information matrix (covariate {j} is constant)")

    # binary covariates with no events in one level -> infinite coefficient
    e1 = evf @ X
    cand = (e1 == 0.0) | (e1 == nev)
    # one 0/1 covariate (a two-arm comparison): the reduced per-death form of _BinaryCoxData
    binary = p == 1 and bool(((X == 0.0) | (X == 1.0)).all())
    if cand.any():
        for j in np.flatnonzero(cand):
            xj = X[:, j]
            if np.all((xj == 0.0) | (xj == 1.0)):
                lvl = 1 if e1[j] == 0.0 else 0
                what = f"arm {lvl}" if p == 1 else f"group covariate {j} == {lvl}"
                return _failed(p, n, nev, f"no events in {what} (monotone likelihood)")

    if p == 1 and binary:
        dat = _BinaryCoxData(time, event, X[:, 0], w, ties)
        derivs = dat.derivs
    else:
        dat = _CoxData(time, event, Xc, w, ties)

        def derivs(b):
            return _efron_derivs(dat, b)

    beta = np.zeros(p)
    ll, grad, hess = derivs(beta)
    ll0 = ll
    # information at 0: one Cholesky gives the rank check (L_jj / sqrt(I_jj)
    # is sqrt(1 - R^2) of covariate j on the previous ones), the score test
    # and the first Newton step
    info = -hess
    c, inf0 = chol(info)
    if inf0 != 0 or not np.all(np.diagonal(c) > 1e-7 * np.sqrt(np.diagonal(info))):
        return _failed(p, n, nev, "singular information matrix (collinear covariates)", ll0=ll0)
    step = chol_solve(c, grad)
    score_stat = float(grad @ step)

    converged = False
    monotone = False
    msg = ""
    it = 0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        while True:
            # here: ll, grad, hess, c = chol(-hess) and the Newton step at beta
            ssz = np.abs(step * sd).max()
            if ssz <= tol:
                # quadratic convergence: beta + step is exact to O(tol^2); the
                # information (for the SEs) is taken at beta, O(tol) away
                beta = beta + step
                converged = True
                break
            if it >= maxiter:
                break
            it += 1
            # damped Newton: halve while the log-likelihood decreases
            t = 1.0
            ll_new, grad_new, hess_new = derivs(beta + step)
            while not (ll_new >= ll - 1e-12 * abs(ll)) and t > 1e-4:
                t *= 0.5
                ll_new, grad_new, hess_new = derivs(beta + t * step)
            ok = ll_new >= ll - 1e-12 * abs(ll) and np.isfinite(hess_new).all()
            if not ok:
                if ssz <= 1e-6:
                    # at the optimum to within floating-point resolution
                    beta = beta + step
                    converged = True
                elif np.any(np.abs(beta) * sd > 5.0):
                    monotone = True
                else:
                    msg = "line search failed"
                break
            beta = beta + t * step
            dll = ll_new - ll
            ll, grad, hess = ll_new, grad_new, hess_new
            if dll <= 1e-13 * max(1.0, abs(ll)) and ssz > 1e-4:
                # likelihood flat but the Newton step is not shrinking
                monotone = True
                break
            c, info_ = chol(-hess)
            if info_ != 0:
                msg = "singular information matrix"
                monotone = bool(np.any(np.abs(beta) * sd > 5.0))
                break
            step = chol_solve(c, grad)

    if converged and np.any(np.abs(beta) * sd > 30.0):
        monotone = True
    if monotone or not converged:
        if monotone:
            big = np.flatnonzero(np.abs(beta) * sd > 5.0)
            which = f" (covariate(s) {big.tolist()})" if big.size else ""
            m = "monotone likelihood: coefficient(s) diverge to infinity" + which
            if msg:
                m = msg + "; " + m
        else:
            m = f"did not converge in {it} iterations" + (f" ({msg})" if msg else "")
        return _failed(p, n, nev, m, params=beta, llf=ll, ll0=ll0, score=score_stat, n_iter=it)

    # the information was evaluated at the last iterate, within tol (1e-9 SD units) of beta:
    # the SEs are exact to ~1e-9 relative (quadratic convergence usually leaves ~1e-14)
    cov = chol_inv(c)
    cov_naive = cov
    if robust:
        if isinstance(dat, _BinaryCoxData):
            r = dat.score_residuals(beta)
            ws = None if w is None else w[dat.order]
        else:
            r = _score_residuals_sorted(dat, beta)
            ws = dat.w
        if ws is not None:
            r = r * ws[:, None]
        db = r @ cov
        cov = db.T @ db
    bse = np.sqrt(np.diag(cov))
    z = beta / bse
    lr = 2.0 * (ll - ll0)
    return CoxResult(
        params=beta,
        bse=bse,
        zvalues=z,
        pvalues=p_norm2(z),
        conf_int=np.column_stack((beta - Z975 * bse, beta + Z975 * bse)),
        cov_params=cov,
        cov_naive=cov_naive,
        llf=ll,
        ll_null=ll0,
        lr_stat=lr,
        lr_pvalue=float(p_chi2(lr, p)),
        score_stat=score_stat,
        score_pvalue=float(p_chi2(score_stat, p)),
        nobs=n,
        n_events=nev,
        n_iter=it,
        converged=True,
        status=STATUS_OK,
        message="",
    )
