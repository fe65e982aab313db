"""Shared low-level helpers for the fast exact engine.

Everything here is deliberately thin: direct LAPACK wrappers (the scipy.linalg
front-ends add ~10-20 us of argument checking per call, which dominates at the
matrix sizes we use, p <= ~20) and ufunc-based p-value functions (scipy.stats
distribution objects cost ~50 us per call; the underlying scipy.special
ufuncs are what scipy.stats calls internally, so the numbers are identical).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import get_lapack_funcs
from scipy.special import chdtrc, ndtr, ndtri, stdtr, stdtrit

_potrf, _potrs, _trtri = get_lapack_funcs(("potrf", "potrs", "trtri"), (np.empty((1, 1)),))

STATUS_OK = "ok"
STATUS_WARNING = "warning"
STATUS_FAILED = "failed"

Z975 = float(ndtri(0.975))


def chol(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Lower Cholesky factor of a symmetric positive definite matrix.

    Returns (L, info); info != 0 means the matrix is not numerically positive
    definite (L is then garbage).
    """
    c, info = _potrf(a, lower=1, clean=1)
    return c, info


def chol_solve(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve A x = b given the lower Cholesky factor c of A."""
    x, _ = _potrs(c, b, lower=1)
    return x


def chol_inv(c: np.ndarray, lower: bool = True) -> np.ndarray:
    """Inverse of A given its Cholesky factor c (full symmetric matrix).

    ``c`` must come from :func:`chol` (clean=1: the other triangle is zero), lower (A = L L')
    or, with ``lower=False``, upper (A = U'U). A^-1 = L^-T L^-1 from LAPACK's triangular
    inverse and one small matrix product. (Not ``potri``: OpenBLAS runs its ``lauum`` step
    multithreaded even for tiny matrices, and when the cores are busy each call then waits
    for a time slice, ~30 ms instead of ~2 us.)
    """
    t, _ = _trtri(c, lower=1 if lower else 0)
    return t.T @ t if lower else t @ t.T


def spd_inv(a: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Inverse of an SPD matrix via Cholesky; (None, info) if not PD."""
    c, info = _potrf(a, lower=1, clean=1)
    if info != 0:
        return None, info
    return chol_inv(c), 0


def p_norm2(z):
    """Two-sided normal p-value, identical to 2 * scipy.stats.norm.sf(|z|)."""
    return 2.0 * ndtr(-np.abs(z))


def p_chi2_1(x):
    """Upper tail of chi-square(1), identical to scipy.stats.chi2.sf(x, 1)."""
    return chdtrc(1.0, x)


def p_chi2(x, df):
    return chdtrc(df, x)


def p_t2(t, df):
    """Two-sided t p-value, identical to 2 * scipy.stats.t.sf(|t|, df)."""
    return 2.0 * stdtr(df, -np.abs(t))


def t_quantile(q, df):
    return stdtrit(df, q)


def as_float_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        a = a.reshape(-1)
    return a


def as_float_2d(x, n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    return a
