"""Cox proportional-hazards regression by Newton-Raphson.

Ties
----
* ``ties="efron"`` matches ``lifelines.CoxPHFitter`` (which only does Efron)
  and ``statsmodels PHReg(ties="efron")``.
* ``ties="breslow"`` matches ``statsmodels PHReg(ties="breslow")``.

Case weights follow lifelines' convention: risk-set sums are weighted and the
Efron terms of a tied group of deaths are multiplied by the *mean* weight of
the deaths in that group.  ``robust=True`` gives the Lin-Wei sandwich
covariance exactly as lifelines computes it for ``CoxPHFitter(...).fit(...,
weights_col=..., robust=True)`` -- including lifelines' convention of forming
the score residuals with *row-wise* risk sets after sorting by (time, event)
(lifelines documents that its sandwich estimator "does not handle ties").

Algorithm
---------
Rows are sorted once.  For a given beta, the risk-set sums are reverse
cumulative sums; the Efron corrections are done per death (vectorised over
all deaths at once).  The Hessian is assembled as
``X' diag(e * a) X - N'N`` where ``a`` collects, for every row, the sum of
1/denominator over the deaths whose risk set contains that row (minus the
Efron tie correction for the deaths themselves) -- so no n x p x p arrays are
ever formed.

Score test
----------
``score_stat`` is U(0)' I(0)^{-1} U(0) at beta = 0 with the chosen ties
method (free: it is the first Newton iteration).  For a single binary
covariate without tied event times it equals the log-rank statistic exactly;
with ties it differs slightly from lifelines' log-rank test (which uses the
hypergeometric variance) -- use ``estimators.fast.logrank`` for that.

Status
------
Never raises on statistical trouble.  ``status`` is "ok", "warning" or
"failed" with ``message`` e.g. "no events", "no events in arm 1",
"singular information matrix", "monotone likelihood: coefficient(s) diverge
to infinity", "did not converge".

lifelines' path
---------------
:func:`cox_fit` returns the exact maximiser. :func:`cox_fit_lifelines_path` instead retraces
``CoxPHFitter().fit``'s own damped Newton-Raphson iterations and stopping rule (with the same
derivative code), so it returns lifelines' numbers, warnings and errors at its default settings
(the estimators' ``fast`` engine uses it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import get_blas_funcs, get_lapack_funcs

from ._common import (
    STATUS_FAILED,
    STATUS_OK,
    Z975,
    _potrs,
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


def _lifelines_score_residuals(dat: _CoxData, beta: np.ndarray) -> np.ndarray:
    """Weighted score residuals exactly as lifelines' _compute_score_within_strata.

    Risk sets are row-wise in the (time, event)-sorted order (ties not
    treated specially), Breslow-type, evaluated at beta.  Returned already
    multiplied by the case weights.
    """
    X = dat.X
    w = dat.w if dat.w is not None else np.ones(X.shape[0])
    eta = X @ beta
    phi = np.exp(eta - eta.max())
    wphi = w * phi
    rphi = np.cumsum(wphi[::-1])[::-1]
    rphix = np.cumsum((X * wphi[:, None])[::-1], axis=0)[::-1]
    xbar = rphix / rphi[:, None]
    E = dat.e_sorted.astype(float)
    cw = E * w / rphi
    c0 = np.cumsum(cw)
    c1 = np.cumsum(xbar * cw[:, None], axis=0)
    score = -phi[:, None] * (X * c0[:, None] - c1)
    score += E[:, None] * (X - xbar)
    return score * w[:, None]


def cox_fit(
    time,
    event,
    X,
    weights=None,
    ties: str = "efron",
    robust: bool = False,
    maxiter: int = 50,
    tol: float = 1e-7,
) -> CoxResult:
    """Fit a Cox PH model.

    Parameters
    ----------
    time : (n,) durations
    event : (n,) 1 = event observed, 0 = censored
    X : (n, p) covariates (no intercept column)
    weights : optional (n,) positive case weights (lifelines convention)
    ties : "efron" (lifelines / statsmodels) or "breslow" (statsmodels)
    robust : Lin-Wei sandwich covariance as in lifelines robust=True
    tol : convergence when max_j |step_j| * sd(x_j) <= tol
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
    if cand.any():
        for j in np.flatnonzero(cand):
            xj = X[:, j]
            if np.all((xj == 0.0) | (xj == 1.0)):
                lvl = 1 if e1[j] == 0.0 else 0
                what = f"arm {lvl}" if p == 1 else f"group covariate {j} == {lvl}"
                return _failed(p, n, nev, f"no events in {what} (monotone likelihood)")

    dat = _CoxData(time, event, Xc, w, ties)

    beta = np.zeros(p)
    ll, grad, hess = _efron_derivs(dat, beta)
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
            ll_new, grad_new, hess_new = _efron_derivs(dat, beta + step)
            while not (ll_new >= ll - 1e-12 * abs(ll)) and t > 1e-4:
                t *= 0.5
                ll_new, grad_new, hess_new = _efron_derivs(dat, beta + t * step)
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

    cov = chol_inv(c)
    cov_naive = cov
    if robust:
        r = _lifelines_score_residuals(dat, beta)
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


# --------------------------------------------------------------------------------------------
# lifelines' own Newton-Raphson path (what ``CoxPHFitter().fit`` returns at default settings)

_LL_DOCS = (
    "Please see the following tips in the lifelines documentation: "
    "https://lifelines.readthedocs.io/en/latest/Examples.html"
    "#problems-with-convergence-in-the-cox-proportional-hazard-model"
)
_potrf_u, _pocon, _lange, _lamch = get_lapack_funcs(
    ("potrf", "pocon", "lange", "lamch"), (np.empty((1, 1)),)
)
_nrm2 = get_blas_funcs("nrm2", (np.empty(1),))
_EPS_LAPACK = float(_lamch("E"))


@dataclass(frozen=True, slots=True)
class CoxPathResult:
    """Result of :func:`cox_fit_lifelines_path`.

    ``warnings`` holds the (category name, text) pairs lifelines would have issued, in order
    (categories: ``ConvergenceWarning`` = lifelines.exceptions.ConvergenceWarning,
    ``LinAlgWarning`` = scipy.linalg.LinAlgWarning); ``error`` the text of the
    ``lifelines.exceptions.ConvergenceError`` it would have raised ("" if none; then the
    numbers are NaN).
    """

    params: np.ndarray
    bse: np.ndarray
    zvalues: np.ndarray
    pvalues: np.ndarray  # chi2(1).sf(z^2), as lifelines' summary
    cov_params: np.ndarray  # robust if robust=True else inverse information
    llf: float
    n_iter: int
    converged: bool  # lifelines' "success"
    norm_delta: float
    warnings: tuple
    error: str


def _low_var_text(cols: list[str]) -> str:
    return (
        f"Column(s) {cols} have very low variance. This may harm convergence. 1) Are you using "
        "formula's? Did you mean to add '-1' to the end. 2) Try dropping this redundant column "
        "before fitting if convergence fails.\n"
    )


def _post_fit_warnings(Xn, es, ts, names) -> list[tuple[str, str]]:
    """lifelines' ``_check_values_post_fitting`` (complete-separation diagnostics) in numpy.

    ``Xn``, ``es``, ``ts``: normalised covariates, events and times in lifelines' (time, event)
    sorted order, as lifelines passes them.
    """
    out = []
    with np.errstate(all="ignore"):
        ev = es.astype(bool)

        def low(a):
            return a.var(axis=0, ddof=1) < 1e-4 if a.shape[0] else np.zeros(a.shape[1], bool)

        total = low(Xn)
        prob = sorted({names[j] for j in np.flatnonzero((low(Xn[ev]) | low(Xn[~ev])) & ~total)})
        if prob:
            out.append(
                (
                    "ConvergenceWarning",
                    f"Column {prob[0]} have very low variance when conditioned on death event "
                    "present or not. This may harm convergence. This could be a form of 'complete "
                    "separation'. For example, try the following code:\n",
                )
            )
        n = Xn.shape[0]
        X2, t2 = Xn, ts
        if n > 500:  # lifelines samples 500 rows (pandas .sample, random_state=0)
            pos = np.random.RandomState(0).choice(n, size=500, replace=False)
            X2, t2 = Xn[pos], ts[pos]
        rd = t2.argsort()
        for j in range(X2.shape[1]):
            rs = X2[:, j].argsort()
            r = np.corrcoef(rd, rs)[0, 1]
            if abs(r) >= 0.99:
                out.append(
                    (
                        "ConvergenceWarning",
                        f"Column {names[j]} has high sample correlation with the duration "
                        "column. This may harm convergence. This could be a form of 'complete "
                        "separation'.     See https://stats.stackexchange.com/questions/11109/"
                        "how-to-deal-with-perfect-separation-in-logistic-regression\n",
                    )
                )
    return out


def cox_fit_lifelines_path(
    time,
    event,
    X,
    weights=None,
    robust: bool = False,
    names=None,
    step_size: float = 0.95,
    precision: float = 1e-7,
    r_precision: float = 1e-9,
    max_steps: int = 500,
) -> CoxPathResult:
    """Efron Cox fit along lifelines' own Newton-Raphson path (``CoxPHFitter`` defaults).

    :func:`cox_fit` returns the exact maximiser. ``CoxPHFitter`` stops earlier: it works on
    covariates normalised by their mean and SD (ddof=1), takes damped steps (``StepSizer``,
    initial step 0.95), stops when ||delta|| < ``precision``, the relative change of the log
    partial likelihood < ``r_precision`` or the Newton decrement < ``precision``, and returns the
    point *before* its last step (with the information there). At its default settings that is
    only ~1e-5 .. 1e-3 relative from the optimum. This function retraces that path with the
    fast derivative code (same iterates to floating-point accuracy), so its output equals
    ``CoxPHFitter().fit(...)`` to ~1e-12, including lifelines' diagnostics: the warnings it would
    issue (low variance, ill-conditioned Hessian, non-convergence / norm(delta) still high with
    its complete-separation checks) and the ConvergenceError it would raise (see
    :class:`CoxPathResult`). Arguments as :func:`cox_fit` (``weights`` with ``robust`` = lifelines'
    ``weights_col`` + ``robust=True``); ``names`` label columns in the messages.
    """
    time = np.asarray(time, dtype=float).reshape(-1)
    event = np.asarray(event).reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    names = [f"x{j}" for j in range(p)] if names is None else list(names)
    nan_p = np.full(p, np.nan)
    warns: list[tuple[str, str]] = []

    def fail(msg, it=0, nd=np.nan):
        nan_pp = np.full((p, p), np.nan)
        return CoxPathResult(
            nan_p, nan_p, nan_p, nan_p, nan_pp, np.nan, it, False, nd, tuple(warns), msg
        )

    ev = event != 0 if event.dtype != bool else event
    w = None if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    mean = X.sum(axis=0) / n  # = X.mean(0)
    Xm = X - mean
    with np.errstate(all="ignore"):
        std = np.sqrt(np.einsum("ij,ij->j", Xm, Xm) / (n - 1))  # = X.std(0, ddof=1)
        low = std * std < 1e-4
    if low.any():
        warns.append(("ConvergenceWarning", _low_var_text([names[j] for j in np.flatnonzero(low)])))
    if not np.all(std > 0):
        # lifelines divides by a zero SD: NaN covariates, NaN Hessian (rcond 0), NaN step
        warns.append(
            ("LinAlgWarning", "An ill-conditioned matrix detected: slice 0 has rcond = 0.0.")
        )
        return fail(f"delta contains nan value(s). Convergence halted. {_LL_DOCS}", 1)
    Xn = Xm / std
    dat = _CoxData(time, ev, Xn, w, "efron")

    def post_fit():
        o = dat.order
        warns.extend(_post_fit_warnings(Xn[o], dat.e_sorted, time[o], names))

    beta = np.zeros(p)
    delta = np.zeros(p)
    # lifelines.utils.StepSizer
    ss0 = ss = step_size
    temper = False
    norms: list[float] = []
    prev_ll = 0.0
    it = 0
    success = False
    c = None
    hess = None
    ll = np.nan
    nd = np.nan
    with np.errstate(all="ignore"):
        while True:
            beta = beta + ss * delta
            it += 1
            ll, grad, h = _efron_derivs(dat, beta)
            negh = -h
            c, info = _potrf_u(negh, lower=0, clean=1)
            if info != 0:
                post_fit()
                return fail(
                    "Convergence halted due to matrix inversion problems. Suspicion is high "
                    f"collinearity. {_LL_DOCS}",
                    it,
                    nd,
                )
            rcond, _ = _pocon(c, float(_lange("1", negh)))
            if not (rcond >= _EPS_LAPACK):
                warns.append(
                    (
                        "LinAlgWarning",
                        f"An ill-conditioned matrix detected: slice 0 has rcond = {rcond}.",
                    )
                )
            delta, _ = _potrs(c, grad, lower=0)
            if np.isnan(delta).any():
                post_fit()
                return fail(f"delta contains nan value(s). Convergence halted. {_LL_DOCS}", it, nd)
            hess = h
            nd = float(_nrm2(delta)) if p else 0.0
            decrement = float(grad @ delta) / 2.0
            stop = None
            if nd < precision:
                stop = True
            elif prev_ll != 0 and abs(ll - prev_ll) / (-prev_ll) < r_precision:
                stop = True
            elif decrement < precision:
                stop = True
            elif it >= max_steps:
                stop = False
            elif ss <= 0.00001:
                stop = False
            elif abs(ll) < 0.0001 and nd > 1.0:
                warns.append(
                    (
                        "ConvergenceWarning",
                        "The log-likelihood is getting suspiciously close to 0 and the delta is "
                        "still large. There may be complete separation in the dataset. This may "
                        "result in incorrect inference of coefficients. See "
                        "https://stats.stackexchange.com/q/11109/11867 for more.\n",
                    )
                )
                stop = False
            if stop is not None:
                success = stop
                break
            prev_ll = ll
            # StepSizer.update(norm_delta).next()
            norms.append(nd)
            if temper:
                ss = min(ss * 1.3, ss0)
            if nd >= 15.0:
                ss *= 0.1
                temper = True
            elif 15.0 > nd > 5.0:
                ss *= 0.25
                temper = True
            if len(norms) >= 3:
                n1, n2, n3 = norms[-3:]
                if n2 - n1 < 0 and n3 - n2 < 0:  # np.all(np.diff(...) < 0)
                    ss = min(ss * 1.3, 1.0)
                else:
                    ss *= 0.98

        if success and nd > 0.1:
            post_fit()
            warns.append(
                (
                    "ConvergenceWarning",
                    "Newton-Raphson convergence completed successfully but norm(delta) is still "
                    f"high, {nd:.3f}. This may imply non-unique solutions to the maximum "
                    "likelihood. Perhaps there is collinearity or complete separation in the "
                    "dataset?\n",
                )
            )
        elif not success:
            post_fit()
            warns.append(
                (
                    "ConvergenceWarning",
                    f"Newton-Raphson failed to converge sufficiently. {_LL_DOCS}",
                )
            )
        # lifelines: variance = -inv(hessian) / outer(sd, sd) at the returned (pre-step) point
        if hess is None:  # pragma: no cover - at least one iteration always runs
            return fail("no iteration", it, nd)
        cov_n = chol_inv(c, lower=False)
        cov = cov_n / np.outer(std, std)
        params = beta / std
        if robust:
            r = _lifelines_score_residuals(dat, beta)
            db = (r @ cov_n) / std
            cov = db.T @ db
        bse = np.sqrt(np.diag(cov))
        z = params / bse
    return CoxPathResult(
        params=params,
        bse=bse,
        zvalues=z,
        pvalues=p_chi2(z * z, 1),
        cov_params=cov,
        llf=float(ll),
        n_iter=it,
        converged=success,
        norm_delta=nd,
        warnings=tuple(warns),
        error="",
    )
