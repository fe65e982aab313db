"""Logistic regression by Newton-Raphson (= IRLS for the canonical link).

Matches ``statsmodels.api.Logit(y, X).fit()`` (and ``GLM(y, X,
family=Binomial())``): params, bse (inverse observed information), Wald z,
two-sided normal p-values, llf.

Failure modes never raise; they are reported through ``status``/``message``:

* ``"failed"`` + ``"separation: ..."`` -- perfect or quasi-complete separation.
  Suspected when the Newton iterations do not converge or fitted probabilities
  become numerically 0/1, and then confirmed by the linear-programming check
  of Konis (2007): the data are separated iff there is a direction b != 0 with
  (2y-1) x'b >= 0 for every row.
* ``"failed"`` + ``"singular design matrix"`` -- X not of full column rank.
* ``"failed"`` + ``"did not converge ..."`` -- anything else.

:func:`logistic_fit_plain` is the fit of ``engines.logit``'s fast engine when every one of its
checks passes (one compiled call: data checks, rank bound, Newton, covariance); it returns None
for any fit that needs a decision, which then goes through :func:`logistic_fit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._common import STATUS_FAILED, STATUS_OK, Z975, p_norm2
from ._jit import njit
from ._small import chol_inverse, chol_solve, cholesky, rank_bound

# |eta| beyond which a fitted probability is within ~1e-13 of 0 or 1
_ETA_SATURATED = 30.0


@dataclass(frozen=True, slots=True)
class LogisticResult:
    params: np.ndarray
    bse: np.ndarray
    zvalues: np.ndarray
    pvalues: np.ndarray
    conf_int: np.ndarray  # (p, 2), Wald normal
    cov_params: np.ndarray
    llf: float
    llnull: float  # intercept-only log-likelihood (closed form)
    nobs: int
    n_iter: int
    converged: bool
    status: str
    message: str


def _fail(p: int, n: int, msg: str, params=None, llf=np.nan, n_iter=0) -> LogisticResult:
    nan_p = np.full(p, np.nan)
    return LogisticResult(
        params=nan_p.copy() if params is None else params,
        bse=nan_p.copy(),
        zvalues=nan_p.copy(),
        pvalues=nan_p.copy(),
        conf_int=np.full((p, 2), np.nan),
        cov_params=np.full((p, p), np.nan),
        llf=float(llf),
        llnull=np.nan,
        nobs=n,
        n_iter=n_iter,
        converged=False,
        status=STATUS_FAILED,
        message=msg,
    )


def _loglik(eta: np.ndarray, y: np.ndarray) -> float:
    # sum y*eta - log(1 + exp(eta)), overflow-safe
    return float(y @ eta - np.logaddexp(0.0, eta).sum())


def is_separated(y, X, tol: float = 1e-7) -> bool:
    """Linear-programming check for (quasi-)complete separation (Konis 2007).

    Maximise sum_i s_i x_i'b subject to s_i x_i'b >= 0 and |b_j| <= 1, with
    s_i = 2 y_i - 1.  A strictly positive optimum means there is a direction
    along which the likelihood increases without bound.
    """
    from scipy.optimize import linprog

    X = np.asarray(X, dtype=float)
    s = 2.0 * np.asarray(y, dtype=float) - 1.0
    sx = X * s[:, None]
    # column scaling so that the box constraint is scale-free
    sc = np.abs(X).max(axis=0)
    sc[sc == 0] = 1.0
    sx = sx / sc
    res = linprog(
        c=-sx.sum(axis=0),
        A_ub=-sx,
        b_ub=np.zeros(sx.shape[0]),
        bounds=[(-1.0, 1.0)] * sx.shape[1],
        method="highs",
    )
    if res.status != 0:
        return False
    return bool(-res.fun > tol * max(1.0, float(np.abs(sx).sum()) / sx.shape[0]))


_CONVERGED, _NOT_CONVERGED, _NOT_PD, _SINGULAR = 0, 1, 2, 3


@njit
def _loglik_c(eta, y):
    """sum y eta - log(1 + exp(eta)) (numpy's logaddexp(0, eta), overflow-safe)."""
    s = 0.0
    for i in range(eta.shape[0]):
        e = eta[i]
        if e > 0.0:
            s += y[i] * e - (e + math.log1p(math.exp(-e)))
        elif e < 0.0:
            s += y[i] * e - math.log1p(math.exp(e))
        else:
            s -= math.log(2.0)
    return s


@njit
def _newton(y, X, maxiter, tol):
    """The Newton-Raphson iteration of :func:`logistic_fit` in one compiled call.

    Returns (beta, eta, L, n_iter, code, saturated, full_rank): L the Cholesky factor of
    the last information matrix; code _CONVERGED, _NOT_CONVERGED, _NOT_PD (information not
    positive definite after the first step: saturated) or _SINGULAR (rank check at b = 0
    failed); full_rank: :func:`estimators.design.certainly_full_rank` (``equilibrated=False``)
    of X, from the first information matrix X'X / 4.
    """
    n, p = X.shape
    XT = np.ascontiguousarray(X.T)  # one row per covariate: the sums over patients run along rows
    WX = np.empty((p, n))
    beta = np.zeros(p)
    eta = np.zeros(n)
    mu = np.full(n, 0.5)
    H = np.zeros((p, p))
    L = np.zeros((p, p))
    g = np.zeros(p)
    step = np.zeros(p)
    rms = np.zeros(p)
    bnew = np.zeros(p)
    enew = np.zeros(n)
    converged = False
    saturated = False
    full_rank = False
    code = _NOT_CONVERGED
    it = 0
    while it < maxiter:
        it += 1
        _score_information(XT, y, mu, WX, g, H)
        info = cholesky(H, L)
        if it == 1:
            # at b = 0 the information is X'X / 4: rank check from the same Cholesky factor
            # (L_jj / sqrt(H_jj) = sqrt(1 - R^2_j))
            if info != 0:
                return beta, eta, L, it, _SINGULAR, saturated, full_rank
            for a in range(p):
                d = math.sqrt(H[a, a])
                rms[a] = 2.0 * d / math.sqrt(n)
                if not L[a, a] > 1e-7 * d:
                    return beta, eta, L, it, _SINGULAR, saturated, full_rank
            full_rank = _certainly_full_rank(L, n)
        elif info != 0:
            saturated = True
            code = _NOT_PD
            break
        chol_solve(L, g, step)
        ssz = 0.0
        for a in range(p):
            v = abs(step[a] * rms[a])
            if v > ssz or v != v:
                ssz = v
        for a in range(p):
            bnew[a] = beta[a] + step[a]
        _xb(XT, bnew, enew)
        if ssz > 1.0 or saturated:
            # large step: safeguard by step-halving on the (concave) log-likelihood
            ll_old = _loglik_c(eta, y)
            ll_new = _loglik_c(enew, y)
            t = 1.0
            while ll_new < ll_old and t > 1e-6:
                t *= 0.5
                for a in range(p):
                    bnew[a] = beta[a] + t * step[a]
                _xb(XT, bnew, enew)
                ll_new = _loglik_c(enew, y)
            if saturated and abs(ll_new - ll_old) <= 1e-10 * max(1.0, abs(ll_new)):
                beta[:] = bnew
                eta[:] = enew
                break
        beta[:] = bnew
        eta[:] = enew
        if ssz <= tol:
            converged = True
            break
        emax = 0.0
        # 1 / (1 + exp(-eta)), remembered for the last two distinct eta: a model of group alone
        # has two (two exponentials instead of n, the same bits)
        e0 = e1 = np.nan
        m0 = m1 = 0.0
        for i in range(n):
            e = eta[i]
            if e == e0:
                f = m0
            elif e == e1:
                f = m1
            else:
                f = 1.0 / (1.0 + math.exp(-e))
                e1, m1 = e0, m0
                e0, m0 = e, f
            mu[i] = f
            emax = max(emax, abs(e))
        if emax > _ETA_SATURATED:
            saturated = True
    for i in range(n):
        if abs(eta[i]) > _ETA_SATURATED:
            saturated = True
            break
    if converged:
        code = _CONVERGED
    return beta, eta, L, it, code, saturated, full_rank


@njit
def _score_information(XT, y, mu, WX, g, H):
    """Score g = X'(y - mu) and information H = X' diag(mu (1 - mu)) X at the fitted
    probabilities ``mu``; ``XT`` = X' (p, n), ``WX`` (p, n) scratch for the weighted rows. The
    sums over patients go to BLAS (dgemv / dgemm: one call each, vectorized, the same bits in
    every run on one machine); H is made exactly symmetric from its lower triangle."""
    p, n = XT.shape
    r = np.empty(n)
    w = np.empty(n)
    for i in range(n):
        r[i] = y[i] - mu[i]
        w[i] = mu[i] * (1.0 - mu[i])
    for a in range(p):
        for i in range(n):
            WX[a, i] = w[i] * XT[a, i]
    g[:] = np.dot(XT, r)
    H[:, :] = np.dot(WX, XT.T)
    for a in range(p):
        for b in range(a):
            H[b, a] = H[a, b]


@njit
def _certainly_full_rank(L1, n):
    """:func:`estimators.design.certainly_full_rank` (``equilibrated=False``) of an (n, p) X
    from the Cholesky factor L1 of X'X / 4: :func:`rank_bound` of M = 2 L1' (M'M = X'X, the
    Gram matrix the bound is computed from)."""
    p = L1.shape[0]
    if n < p or p == 0:
        return False
    lam, smin, smax = rank_bound(2.0 * L1.T, False)
    return lam > 1e-6 and smin > 1e3 * smax * max(n, p) * np.finfo(np.float64).eps


@njit
def _xb(XT, b, out):
    """out = X b from XT = X' (for each patient, the terms added in covariate order)."""
    p, n = XT.shape
    out[:] = 0.0
    for a in range(p):
        ba = b[a]
        for i in range(n):
            out[i] += XT[a, i] * ba


def logistic_fit(
    y,
    X,
    maxiter: int = 50,
    tol: float = 1e-10,
    check_separation: bool = True,
) -> LogisticResult:
    """Maximum-likelihood logistic regression of binary y on X.

    X must contain the intercept column if wanted.  Convergence when the
    Newton step changes the linear predictor by at most ``tol`` per unit
    root-mean-square covariate (max_j |step_j| * rms(x_j) <= tol); Newton
    converges quadratically, so the returned b + step is exact to O(tol^2),
    and the information used for the SEs is evaluated O(tol) away.
    """
    y = np.ascontiguousarray(y, dtype=float).reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    X = np.ascontiguousarray(X)
    n, p = X.shape
    if y.shape[0] != n:
        return _fail(p, n, f"length mismatch: y has {y.shape[0]} rows, X has {n}")
    if n == 0:
        return _fail(p, n, "no observations")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        return _fail(p, n, "non-finite values in y or X")
    ysum = float(y.sum())
    if np.any((y != 0.0) & (y != 1.0)):
        return _fail(p, n, "outcome must be coded 0/1")
    if ysum == 0.0 or ysum == n:
        return _fail(p, n, "separation: outcome has no variation (all 0 or all 1)")

    beta, eta, c, it, code, saturated, _ = _newton(y, X, maxiter, tol)
    if code == _SINGULAR:
        return _fail(p, n, "singular design matrix (collinear or all-zero columns)")
    ll = _loglik_c(eta, y)
    converged = code == _CONVERGED
    msg = "information matrix not positive definite" if code == _NOT_PD else ""

    if not converged or saturated:
        if check_separation and is_separated(y, X):
            return _fail(
                p,
                n,
                "separation: fitted probabilities numerically 0 or 1 "
                "(perfect or quasi-complete separation of the outcome by X)",
                params=beta,
                llf=ll,
                n_iter=it,
            )
        if not converged:
            return _fail(
                p,
                n,
                f"did not converge in {it} Newton iterations" + (f" ({msg})" if msg else ""),
                params=beta,
                llf=ll,
                n_iter=it,
            )

    cov = chol_inverse(c)
    bse = np.sqrt(np.diag(cov))
    z = beta / bse
    ybar = ysum / n
    llnull = n * (ybar * np.log(ybar) + (1.0 - ybar) * np.log1p(-ybar))
    return LogisticResult(
        params=beta,
        bse=bse,
        zvalues=z,
        pvalues=p_norm2(z),
        conf_int=np.column_stack((beta - Z975 * bse, beta + Z975 * bse)),
        cov_params=cov,
        llf=ll,
        llnull=float(llnull),
        nobs=n,
        n_iter=it,
        converged=True,
        status=STATUS_OK,
        message="",
    )


def logistic_fit_plain(y, X, maxiter: int = 50, tol: float = 1e-10, p_extreme: float = 1e-10):
    """(params, cov_params, fitted probabilities) of :func:`logistic_fit`, when the fit leaves
    nothing to decide, in one compiled call; else None (the caller takes the general path).

    Plain means: n > p; y and X finite, y coded 0/1 with both values; no constant column after
    the first; the rank certainly full (:func:`estimators.design.certainly_full_rank` with
    ``equilibrated=False``, from the first information matrix X'X / 4); Newton converged without
    |eta| > 30; every fitted probability mu = 1 / (1 + exp(-x'b)) at least ``p_extreme`` from 0
    and 1; the covariance (inverse information) finite with a positive diagonal: every check of
    ``engines.logit``'s fast engine passes, so its answer is this one.
    """
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    if y.ndim != 1 or X.ndim != 2 or y.shape[0] != X.shape[0]:
        return None
    plain, beta, cov, mu = _fit_plain(y, X, maxiter, tol, p_extreme)
    return (beta, cov, mu) if plain else None


@njit
def _fit_plain(y, X, maxiter, tol, p_extreme):
    """(plain, beta, cov, mu) of :func:`logistic_fit_plain` (empty arrays when not plain)."""
    n, p = X.shape
    none = (False, np.empty(0), np.empty((0, 0)), np.empty(0))
    if not (n > p and p > 0 and _plain_data(y, X)):
        return none
    beta, eta, L, _, code, saturated, full_rank = _newton(y, X, maxiter, tol)
    if code != _CONVERGED or saturated or not full_rank:
        return none
    mu = np.empty(n)
    for i in range(n):
        f = 1.0 / (1.0 + math.exp(-eta[i]))
        if min(f, 1.0 - f) < p_extreme:
            return none
        mu[i] = f
    cov = chol_inverse(L)
    for a in range(p):
        if not cov[a, a] > 0.0:
            return none
        for b in range(p):
            if not math.isfinite(cov[a, b]):
                return none
    return True, beta, cov, mu


@njit
def _plain_data(y, X):
    """y finite and 0/1 with both values, X finite, no constant column after the first."""
    n, p = X.shape
    ysum = 0.0
    for i in range(n):
        if y[i] != 0.0 and y[i] != 1.0:
            return False
        ysum += y[i]
    if ysum == 0.0 or ysum == n:
        return False
    for a in range(p):
        lo = X[0, a]
        hi = X[0, a]
        for i in range(n):
            v = X[i, a]
            if not math.isfinite(v):
                return False
            lo = min(lo, v)
            hi = max(hi, v)
        if a > 0 and not hi > lo:
            return False
    return True


@njit
def complete_cases(y, A):
    """(ok, n_has_y, n_ok) of the response ``y`` (n,) and the design's columns as rows ``A``
    (k, n) = [1, group, covariates...]: ok_i = y_i and group_i finite (counted in n_has_y) and
    every covariate of patient i finite; one pass, no temporaries."""
    k, n = A.shape
    ok = np.empty(n, dtype=np.bool_)
    n_has_y = 0
    n_ok = 0
    for i in range(n):
        has = y[i] - y[i] == 0.0 and A[1, i] - A[1, i] == 0.0
        good = has
        if good:
            for a in range(2, k):
                v = A[a, i]
                if not (v - v == 0.0):
                    good = False
                    break
        ok[i] = good
        n_has_y += has
        n_ok += good
    return ok, n_has_y, n_ok


@njit
def arm_outcomes(y, g):
    """(n0, n1, const0, const1, first0, first1) of an outcome ``y`` by arm (rows with g == 0,
    g == 1): the arm sizes, whether y is constant in the arm (min == max; True when empty) and
    its first value there (NaN when empty), in one pass."""
    n = [0, 0]
    const = [True, True]
    first = [np.nan, np.nan]
    for i in range(y.shape[0]):
        if g[i] == 0.0:
            a = 0
        elif g[i] == 1.0:
            a = 1
        else:
            continue
        if n[a] == 0:
            first[a] = y[i]
        elif y[i] != first[a]:
            const[a] = False
        n[a] += 1
    return n[0], n[1], const[0], const[1], first[0], first[1]


def univariable_logistic_batch(
    y, x, ok, maxiter: int = 50, tol: float = 1e-10, p_extreme: float = 1e-10
):
    """Many univariable logistic regressions logit P(y = 1) = b0 + b1 x_j at once.

    ``y`` (n,) 0/1 (any value where no model uses the row), ``x`` (n, T) covariates, ``ok``
    (n, T) bool: the rows model j uses (y and x finite there). Each model runs
    :func:`logistic_fit`'s Newton-Raphson from b = 0 with its stopping rule
    (max_j |step_j| rms(x_j) <= tol, rms from the first information matrix), the 2 x 2 Cholesky
    in closed form; the SEs come from the last information matrix, as there. Returns (params
    (T, 2), covariance (T, 2, 2), clean (T,) bool). ``clean`` is False for every model that
    left the plain path (an arm of the data rules of :func:`logistic_fit` or
    ``engines.logit_design_problem`` that needs a decision: a rank not certainly full, a
    step-halving, |eta| > 30, no convergence, fitted probabilities within ``p_extreme`` of 0
    or 1, a covariance that is not positive): the caller refits those one by one, so every
    answer is the one-by-one fit's.
    """
    with np.errstate(all="ignore"):  # NaN steps of the models already set aside
        return _univariable_batch(y, x, ok, maxiter, tol, p_extreme)


def _univariable_batch(y, x, ok, maxiter, tol, p_extreme):
    """:func:`univariable_logistic_batch` itself: :func:`_univariable_c` on the inputs."""
    m = np.ascontiguousarray(np.asarray(ok, dtype=bool).T)  # (T, n): one model per row
    yv = np.where(m.any(axis=0), np.asarray(y, dtype=float), 0.0)
    X = np.ascontiguousarray(np.asarray(x, dtype=float).T)
    y01 = bool(np.all((yv == 0) | (yv == 1)))
    return _univariable_c(yv, X, m, y01, maxiter, tol, p_extreme)


@njit
def _univariable_c(y, X, m, y01, maxiter, tol, p_extreme):
    """Each model t (rows i with m[t, i]) by :func:`logistic_fit`'s rules, closed-form 2 x 2."""
    T, n_all = X.shape
    params = np.zeros((T, 2))
    cov = np.full((T, 2, 2), np.nan)
    clean = np.zeros(T, dtype=np.bool_)
    eps = np.finfo(np.float64).eps
    eta_new = np.empty(n_all)
    mu = np.empty(n_all)
    for t in range(T):
        n = 0.0
        ysum = 0.0
        sx = 0.0
        sxx = 0.0
        xmax = -np.inf
        xmin = np.inf
        for i in range(n_all):
            if m[t, i]:
                xi = X[t, i]
                n += 1.0
                ysum += y[i]
                sx += xi
                sxx += xi * xi
                xmax = max(xmax, xi)
                xmin = min(xmin, xi)
        ok = n > 2 and ysum > 0 and ysum < n and y01 and xmax > xmin
        # engines.logit_design_problem(quick=True): rank certainly full
        lam = (1.0 - sx * sx / (n * sxx)) / 2.0  # 1 / trace of the equilibrated Gram inverse
        smin = math.sqrt(lam) * min(math.sqrt(n), math.sqrt(sxx)) if lam >= 0 else 0.0
        smax = math.sqrt(n + sxx)
        ok = ok and lam > 2e-6 and smin > 2e3 * smax * max(n, 2.0) * eps
        if not ok:
            continue
        b0 = 0.0
        b1 = 0.0
        for i in range(n_all):
            mu[i] = 0.5
        h00 = h01 = h11 = 0.0
        rms0 = rms1 = 0.0
        done = False
        for it in range(1, maxiter + 1):
            g0 = g1 = 0.0
            h00 = h01 = h11 = 0.0
            for i in range(n_all):
                if m[t, i]:
                    xi = X[t, i]
                    w = mu[i] * (1.0 - mu[i])
                    r = y[i] - mu[i]
                    g0 += r
                    g1 += r * xi
                    h00 += w
                    h01 += w * xi
                    h11 += w * xi * xi
            l00 = math.sqrt(h00)
            l10 = h01 / l00
            l11 = math.sqrt(h11 - l10 * l10) if h11 - l10 * l10 >= 0 else np.nan
            if it == 1:
                rms0 = 2.0 * l00 / math.sqrt(n)
                rms1 = 2.0 * math.sqrt(h11) / math.sqrt(n)
                bad = not (l11 > 1e-7 * math.sqrt(h11))
            else:
                bad = not (l11 > 0)
            if bad:
                ok = False
                break
            z0 = g0 / l00
            s1 = (g1 - l10 * z0) / l11 / l11
            s0 = (z0 - l10 * s1) / l00
            a0 = abs(s0 * rms0)
            a1 = abs(s1 * rms1)
            ssz = a0 if (a0 > a1 or a0 != a0) else a1
            nb0 = b0 + s0
            nb1 = b1 + s1
            if ssz > 1.0:  # logistic_fit checks the log-likelihood before a large step
                ll_old = 0.0
                ll_new = 0.0
                for i in range(n_all):
                    if m[t, i]:
                        eo = b0 + b1 * X[t, i]
                        en = nb0 + nb1 * X[t, i]
                        ll_old += y[i] * eo - _logaddexp0(eo)
                        ll_new += y[i] * en - _logaddexp0(en)
                if ll_new < ll_old:  # step-halving: refit one by one
                    ok = False
                    break
            b0 = nb0
            b1 = nb1
            if ssz <= tol:
                done = True
                break
            sat = False
            for i in range(n_all):
                e = nb0 + nb1 * X[t, i]
                eta_new[i] = e
                if m[t, i] and abs(e) > _ETA_SATURATED:
                    sat = True
                mu[i] = 1.0 / (1.0 + math.exp(-e))
            if sat:
                ok = False
                break
        if not (ok and done):  # not converged in maxiter or left the plain path
            continue
        for i in range(n_all):
            if m[t, i]:
                e = b0 + b1 * X[t, i]
                f = 1.0 / (1.0 + math.exp(-e))
                if min(f, 1.0 - f) < p_extreme or abs(e) > _ETA_SATURATED:
                    ok = False
                    break
        params[t, 0] = b0
        params[t, 1] = b1
        # inverse of the last information matrix from its Cholesky factor (as chol_inv)
        l00 = math.sqrt(h00)
        l10 = h01 / l00
        l11 = math.sqrt(h11 - l10 * l10) if h11 - l10 * l10 >= 0 else np.nan
        t10 = -l10 / (l00 * l11)  # L^-1 = [[1 / l00, 0], [t10, 1 / l11]]
        c00 = 1.0 / (l00 * l00) + t10 * t10
        c01 = t10 / l11
        c11 = 1.0 / (l11 * l11)
        cov[t, 0, 0] = c00
        cov[t, 0, 1] = c01
        cov[t, 1, 0] = c01
        cov[t, 1, 1] = c11
        fin = np.isfinite(c00) and np.isfinite(c01) and np.isfinite(c11)
        clean[t] = ok and fin and c00 > 0 and c11 > 0
    return params, cov, clean


@njit
def _logaddexp0(e):
    """log(1 + exp(e)), overflow-safe (numpy's logaddexp(0, e))."""
    if e > 0.0:
        return e + math.log1p(math.exp(-e))
    if e < 0.0:
        return math.log1p(math.exp(e))
    return math.log(2.0)
