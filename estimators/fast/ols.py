"""Ordinary least squares with classical standard errors.

Matches ``statsmodels.api.OLS(y, X).fit()``: params, bse, tvalues, pvalues
(t-based), conf_int (t-based), df_resid, scale, llf.

Algorithm: Cholesky of X'X on the column-equilibrated design (fast path); if
the factorisation fails or the design is ill-conditioned, fall back to the SVD
(the pseudo-inverse statsmodels uses) to decide the rank exactly as
``np.linalg.matrix_rank`` does.  A rank-deficient design gives
status="failed" and the minimum-norm (pinv) solution with NaN standard errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._common import (
    STATUS_FAILED,
    STATUS_OK,
    chol,
    chol_inv,
    p_t2,
    t_quantile,
)
from ._jit import njit
from ._small import cholesky, tri_inv

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True, slots=True)
class OLSResult:
    params: np.ndarray
    bse: np.ndarray
    tvalues: np.ndarray
    pvalues: np.ndarray
    conf_int: np.ndarray  # (p, 2) lower/upper
    cov_params: np.ndarray
    scale: float
    df_resid: float
    rank: int
    llf: float
    nobs: int
    converged: bool
    status: str
    message: str


def _failed(p: int, n: int, msg: str, params=None, rank: int = 0) -> OLSResult:
    nan_p = np.full(p, np.nan)
    return OLSResult(
        params=nan_p.copy() if params is None else params,
        bse=nan_p.copy(),
        tvalues=nan_p.copy(),
        pvalues=nan_p.copy(),
        conf_int=np.full((p, 2), np.nan),
        cov_params=np.full((p, p), np.nan),
        scale=np.nan,
        df_resid=float(n - rank),
        rank=rank,
        llf=np.nan,
        nobs=n,
        converged=False,
        status=STATUS_FAILED,
        message=msg,
    )


def ols_fit(y, X, alpha: float = 0.05) -> OLSResult:
    """OLS fit of y on X (X must contain the intercept column if wanted).

    Parameters
    ----------
    y : (n,) array
    X : (n, p) array
    alpha : confidence level for conf_int is 1 - alpha.
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    if y.shape[0] != n:
        return _failed(p, n, f"length mismatch: y has {y.shape[0]} rows, X has {n}")
    if n == 0 or p == 0:
        return _failed(p, n, "empty design")
    if not (np.isfinite(y).all() and np.isfinite(X).all()):
        return _failed(p, n, "non-finite values in y or X")

    xtx = X.T @ X
    d = np.sqrt(np.diag(xtx))
    if np.any(d == 0.0):
        return _failed(p, n, "singular design matrix (all-zero column)")
    s = 1.0 / d
    c, info = chol(xtx * np.outer(s, s))
    use_svd = info != 0
    if not use_svd:
        dg = np.diag(c)
        # cond(X_eq) ~ max/min of diag(R); squared-condition above 1e8 loses
        # more than half the digits in the normal equations -> use the SVD.
        use_svd = dg.min() <= 1e-4 * dg.max()

    if use_svd:
        u, sv, vt = np.linalg.svd(X, full_matrices=False)
        tol = sv.max() * max(n, p) * np.finfo(float).eps
        rank = int((sv > tol).sum())
        # pinv as in statsmodels (rcond=1e-15 relative cut)
        keep = sv > 1e-15 * sv.max()
        sinv = np.where(keep, 1.0 / np.where(keep, sv, 1.0), 0.0)
        params = vt.T @ (sinv * (u.T @ y))
        if rank < p:
            return _failed(
                p, n, f"singular design matrix (rank {rank} < {p} columns)", params, rank
            )
        norm_cov = (vt.T * sinv**2) @ vt
    else:
        rank = p
        xty = X.T @ y
        cinv = chol_inv(c)
        norm_cov = cinv * np.outer(s, s)
        params = norm_cov @ xty

    df_resid = float(n - rank)
    resid = y - X @ params
    ssr = float(resid @ resid)
    if df_resid <= 0:
        return _failed(p, n, f"no residual degrees of freedom (n={n}, rank={rank})", params, rank)
    scale = ssr / df_resid
    cov = norm_cov * scale
    bse = np.sqrt(np.diag(cov))
    tvalues = params / bse
    pvalues = p_t2(tvalues, df_resid)
    q = t_quantile(1.0 - alpha / 2.0, df_resid)
    ci = np.column_stack((params - q * bse, params + q * bse))
    nobs2 = n / 2.0
    llf = -nobs2 * _LOG2PI - nobs2 * np.log(ssr / n) - nobs2
    return OLSResult(
        params=params,
        bse=bse,
        tvalues=tvalues,
        pvalues=pvalues,
        conf_int=ci,
        cov_params=cov,
        scale=scale,
        df_resid=df_resid,
        rank=rank,
        llf=float(llf),
        nobs=n,
        converged=True,
        status=STATUS_OK,
        message="",
    )


def ols_batch(Y, X, ok):
    """Many OLS fits of equal width at once: model t regresses Y[t] on X[t] over rows ok[t].

    ``Y`` (T, n), ``X`` (T, n, p), ``ok`` (T, n) bool (Y and X finite there). The arithmetic
    of :func:`ols_fit`'s Cholesky path for each model: X'X equilibrated by its diagonal,
    factorised, inverted through the triangular factor, params = (X'X)^-1 X'y, classical
    covariance s2 (X'X)^-1 on n - p df. Returns (params (T, p), cov (T, p, p), df (T,),
    scale (T,), clean (T,) bool). ``clean`` is False where ols_fit would decide otherwise or
    the caller's checks need the exact path: an all-zero column, a factorisation that fails or
    is ill-conditioned (ols_fit's SVD branch), a rank not certainly full by the bound of
    ``design.certainly_full_rank`` (with a factor-2 margin), no residual df; refit those one
    by one.
    """
    return _ols_batch_c(
        np.ascontiguousarray(Y, dtype=float),
        np.ascontiguousarray(X, dtype=float),
        np.ascontiguousarray(ok, dtype=np.bool_),
    )


@njit
def _ols_batch_c(Y, X, m):
    """:func:`ols_batch` compiled: one model at a time over its rows, nothing allocated per row."""
    T, n, p = X.shape
    eps = np.finfo(np.float64).eps
    params = np.zeros((T, p))
    cov = np.zeros((T, p, p))
    df = np.zeros(T)
    scale = np.zeros(T)
    clean = np.zeros(T, dtype=np.bool_)
    xtx = np.empty((p, p))
    xty = np.empty(p)
    G = np.empty((p, p))
    L = np.zeros((p, p))
    Ti = np.zeros((p, p))
    d = np.empty(p)
    for t in range(T):
        xtx[:, :] = 0.0
        xty[:] = 0.0
        nobs = 0
        for i in range(n):
            if m[t, i]:
                nobs += 1
                yi = Y[t, i]
                for a in range(p):
                    xa = X[t, i, a]
                    xty[a] += xa * yi
                    for b in range(a + 1):
                        xtx[a, b] += xa * X[t, i, b]
        df[t] = nobs - p
        ok = nobs - p >= 1
        for a in range(p):
            d[a] = math.sqrt(xtx[a, a])
            if not d[a] > 0:
                ok = False
        if not ok:
            scale[t] = np.nan
            continue
        for a in range(p):
            for b in range(a + 1):
                G[a, b] = xtx[a, b] / (d[a] * d[b])
                G[b, a] = G[a, b]
        if cholesky(G, L) != 0:
            scale[t] = np.nan
            continue
        dmin = np.inf
        dmax = 0.0
        for a in range(p):
            dmin = min(dmin, L[a, a])
            dmax = max(dmax, L[a, a])
        if not (np.isfinite(dmin) and np.isfinite(dmax) and dmin > 1e-4 * dmax):
            scale[t] = np.nan
            continue
        tri_inv(L, Ti)
        tr = 0.0
        for a in range(p):
            for b in range(a + 1):
                tr += Ti[a, b] * Ti[a, b]
        lam = 1.0 / tr  # design.certainly_full_rank's eigenvalue bound
        if not (lam > 2e-6 and math.sqrt(lam) > 2e3 * math.sqrt(p) * max(nobs, p) * eps):
            scale[t] = np.nan
            continue
        # (X'X)^-1 = S (L L')^-1 S, S = diag(1 / d)
        for a in range(p):
            for b in range(a + 1):
                v = 0.0
                for k in range(a, p):
                    v += Ti[k, a] * Ti[k, b]
                v = v / (d[a] * d[b])
                cov[t, a, b] = v
                cov[t, b, a] = v
        for a in range(p):
            v = 0.0
            for b in range(p):
                v += cov[t, a, b] * xty[b]
            params[t, a] = v
        ssr = 0.0
        for i in range(n):
            if m[t, i]:
                r = Y[t, i]
                for a in range(p):
                    r -= X[t, i, a] * params[t, a]
                ssr += r * r
        s2 = ssr / df[t]
        scale[t] = s2
        for a in range(p):
            for b in range(p):
                cov[t, a, b] *= s2
        clean[t] = True
    return params, cov, df, scale, clean
