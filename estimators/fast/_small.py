"""Compiled linear algebra for the small (p <= ~30) matrices of the fast kernels.

Plain textbook loops (no blocking, no BLAS; the O(n p^2) sums of the callers may use BLAS): at these sizes a call into LAPACK through
Python costs more than the arithmetic. Each routine works in place on preallocated arrays so a
compiled Newton loop allocates nothing per iteration.

* :func:`cholesky` -- A = L L' (lower, Cholesky-Banachiewicz); returns 0, or j + 1 when the
  j-th pivot is not positive (LAPACK potrf's ``info``).
* :func:`chol_solve` -- x = A^-1 b from L (forward then back substitution).
* :func:`tri_inv` -- T = L^-1 (lower).
* :func:`chol_inverse` -- A^-1 = T'T from L.
* :func:`rank_bound`, :func:`gram_rank_bound` -- the full-rank pre-test of
  :func:`estimators.design.certainly_full_rank` from X or from X'X.
* :func:`dot4` -- sum_{i < n} x_i y_i in four interleaved partial sums.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit


@njit
def cholesky(A, L):
    """Lower Cholesky factor of the SPD matrix A into L (upper triangle zeroed); 0 or pivot + 1."""
    p = A.shape[0]
    for j in range(p):
        for k in range(j + 1, p):
            L[j, k] = 0.0
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 0.0:
            return j + 1
        d = math.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, p):
            t = A[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / d
    return 0


@njit
def chol_solve(L, b, x):
    """x = (L L')^-1 b."""
    p = L.shape[0]
    for i in range(p):
        t = b[i]
        for k in range(i):
            t -= L[i, k] * x[k]
        x[i] = t / L[i, i]
    for i in range(p - 1, -1, -1):
        t = x[i]
        for k in range(i + 1, p):
            t -= L[k, i] * x[k]
        x[i] = t / L[i, i]


@njit
def tri_inv(L, T):
    """T = L^-1 for lower-triangular L (T lower, upper triangle zeroed)."""
    p = L.shape[0]
    for j in range(p):
        for i in range(j):
            T[i, j] = 0.0
        T[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, p):
            t = 0.0
            for k in range(j, i):
                t -= L[i, k] * T[k, j]
            T[i, j] = t / L[i, i]


@njit
def chol_inverse(L):
    """(L L')^-1 = T'T with T = L^-1 (a new symmetric array)."""
    p = L.shape[0]
    T = np.empty((p, p))
    tri_inv(L, T)
    out = np.empty((p, p))
    for i in range(p):
        for j in range(i + 1):
            s = 0.0
            for k in range(i, p):
                s += T[k, i] * T[k, j]
            out[i, j] = s
            out[j, i] = s
    return out


@njit
def rank_bound(X, equilibrated):
    """(lam, smin, smax) of :func:`estimators.design.certainly_full_rank` in one pass.

    G = X'X scaled to unit diagonal, L its Cholesky factor, lam = 1 / trace(G^-1) (a lower bound
    on G's smallest eigenvalue) = 1 / |L^-1|_F^2; smin = sqrt(lam), smax = sqrt(p) for the
    equilibrated design, times min_j |x_j| and replaced by |X|_F otherwise. lam = -1 when a
    column is zero or not finite or G is not positive definite.
    """
    n, p = X.shape
    G = np.zeros((p, p))
    for i in range(n):
        for a in range(p):
            xa = X[i, a]
            for b in range(a + 1):
                G[a, b] += xa * X[i, b]
    return gram_rank_bound(G, equilibrated)


@njit
def gram_rank_bound(G, equilibrated):
    """:func:`rank_bound` from the cross-products G = X'X (lower triangle read; G is
    overwritten)."""
    p = G.shape[0]
    d = np.empty(p)
    d2sum = 0.0
    for a in range(p):
        if not (G[a, a] > 0.0 and G[a, a] < np.inf):
            return -1.0, 0.0, 0.0
        d[a] = math.sqrt(G[a, a])
        d2sum += G[a, a]
    for a in range(p):
        for b in range(a + 1):
            G[a, b] = G[a, b] / (d[a] * d[b])
            G[b, a] = G[a, b]
    L = np.empty((p, p))
    if cholesky(G, L) != 0:
        return -1.0, 0.0, 0.0
    T = np.empty((p, p))
    tri_inv(L, T)
    tr = 0.0
    for a in range(p):
        for b in range(a + 1):
            tr += T[a, b] * T[a, b]
    lam = 1.0 / tr
    smin = math.sqrt(lam)
    smax = math.sqrt(p)
    if not equilibrated:
        smin = smin * d.min()
        smax = math.sqrt(d2sum)
    return lam, smin, smax


@njit
def dot4(x, y, n):
    """sum_{i < n} x[i] y[i] in four interleaved partial sums: a fixed order (the same bits in
    every process) that is not bound by the latency of one chain of additions (about twice as
    fast as a plain loop without fastmath)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += x[i] * y[i]
        s1 += x[i + 1] * y[i + 1]
        s2 += x[i + 2] * y[i + 2]
        s3 += x[i + 3] * y[i + 3]
        i += 4
    while i < n:
        s0 += x[i] * y[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


@njit
def contrast_estimates(C, b, V):
    """(C b, sqrt(max(diag(C V C'), 0))): the estimates and Wald SEs of the contrasts (rows of
    ``C``) of coefficients ``b`` with covariance ``V``, in one pass (no k x p temporaries; a NaN anywhere in a row's terms gives NaN, as numpy's products)."""
    k, p = C.shape
    est = np.empty(k)
    se = np.empty(k)
    for r in range(k):
        s = 0.0
        q = 0.0
        for a in range(p):
            ca = C[r, a]
            s += ca * b[a]
            t = 0.0
            for c in range(p):
                t += V[a, c] * C[r, c]
            q += ca * t
        est[r] = s
        se[r] = math.sqrt(q) if q > 0.0 else (q if q != q else 0.0)  # NaN stays NaN
    return est, se
