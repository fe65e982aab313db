"""Batched least squares for multiple imputation: many small regressions over a leading axis.

Multiple imputation fits the same regression to m completed data sets (or m chains) at once;
each fit is tiny (n ~ 200, p ~ 10), so one numpy call over the stack replaces m Python-level
fits. Both kernels solve the normal equations of the column-equilibrated design through a
Cholesky factor (Xs = X / d, Xs'Xs = Rs'Rs; the factor of X'X itself is R = Rs diag(d), the
unique upper-triangular one with a positive diagonal, i.e. the QR factor of X with its signs
normalised) and return None when a factorisation is not clearly well conditioned, so that the
caller can use the QR path (:mod:`estimators.engines`) that decides rank deficiency exactly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ._common import chol, chol_inv

#: an equilibrated Cholesky factor whose diagonal spans more than this ratio (cond(Xs) above
#: ~1e5, squared condition 1e10) is left to the QR path
COND_RATIO = 1e-5


#: the (scaled) diagonal block that makes the augmented matrix of :func:`posterior_parts`
#: positive definite; it must exceed |Gs^-1| + |beta_s|^2 / rss_s, which an accepted (well
#: conditioned, not perfectly fitting) regression is far below
BIG = 1e12


class CommonRows(NamedTuple):
    """Rows of a regression that are the same in every chain: design, response, and the
    cross-products [X y]'[X y] ((p + 1, p + 1))."""

    X: np.ndarray  # (n_c, p)
    y: np.ndarray  # (n_c,)
    M: np.ndarray  # (p + 1, p + 1)


def common_rows(X: np.ndarray, y: np.ndarray) -> CommonRows:
    """:class:`CommonRows` of (X, y), cross-products computed once."""
    Xa = np.column_stack([X, y])
    return CommonRows(X, y, Xa.T @ Xa)


@lru_cache(maxsize=64)
def _augmented_template(k: int, p: int) -> np.ndarray:
    """The constant part of :func:`posterior_parts`' matrix H: zeros, E, E', BIG I."""
    H = np.zeros((k, 2 * p + 1, 2 * p + 1))
    eye = np.arange(p)
    H[:, eye, p + 1 + eye] = 1.0
    H[:, p + 1 + eye, eye] = 1.0
    H[:, p + 1 + eye, p + 1 + eye] = BIG
    H.flags.writeable = False
    return H


def posterior_parts(
    y: np.ndarray, X: np.ndarray, common: CommonRows | None = None, rank_tol: float = 1e-10
):
    """For each chain i, the least squares of [common.y; y] on [common.X; X_i] (X (k, n, p),
    y (n,)): (beta_hat (k, p), R_i^-1 (k, p, p), rss (k,)), R_i the upper Cholesky factor of the
    regression's X'X (positive diagonal: the QR factor of X with its signs normalised).

    One batched Cholesky gives all of it. With M = [X y]'[X y] equilibrated to a unit diagonal
    (D = sqrt(diag M)) and the augmented matrix
        H = [[Ms, E'], [E, BIG I]],  E = [I_p, 0] (p, p + 1),
    H = L L' has L = [[Rs', 0, 0], [w', s, 0], [Rs^-1, -beta_s / s, S]] with w = Rs'^-1 b_s,
    s^2 = rss_s (the scaled residual sum of squares) and beta_s = Rs^-1 w the scaled least
    squares solution: the inverse factor and the solution come out of the factorisation itself
    (no triangular solves, which numpy does not batch). Unscaled by D. None when M or H is not
    positive definite, the factor is ill conditioned (module docstring) or |diag R| spans more
    than 1 / ``rank_tol`` (the QR path's rank-deficiency threshold: let it decide)."""
    k, n, p = X.shape
    Xa = np.concatenate([X, np.broadcast_to(y[:, None], (k, n, 1))], axis=2)
    M = np.matmul(np.ascontiguousarray(Xa.transpose(0, 2, 1)), Xa)
    if common is not None:
        M += common.M
    d2 = np.diagonal(M, axis1=1, axis2=2)
    if not (d2.min() > 0 and d2.max() < np.inf):
        return None
    da = np.sqrt(d2)
    H = _augmented_template(k, p).copy()
    H[:, : p + 1, : p + 1] = M / (da[:, :, None] * da[:, None, :])
    try:
        L = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return None
    d, dy = da[:, :p], da[:, p]
    dg = np.diagonal(L, axis1=1, axis2=2)[:, :p]
    both = np.stack([dg, dg * d])  # equilibrated and unscaled |diag R|
    ratio = both.min(axis=2) / both.max(axis=2)
    if not (ratio[0].min() > COND_RATIO and ratio[1].min() > rank_tol):
        return None
    s = L[:, p, p]
    beta = -(L[:, p + 1 :, p] * s[:, None]) * (dy[:, None] / d)
    Rinv = L[:, p + 1 :, :p] / d[:, :, None]
    return beta, Rinv, (s * dy) ** 2


def ols_shared_design(Y: np.ndarray, X: np.ndarray):
    """OLS of each row of ``Y`` (m, n) on one full-rank design ``X`` (n, p): (params (m, p),
    residual variances (m,), (X'X)^-1 (p, p)); classical covariance = s2_k (X'X)^-1, the same
    arithmetic as :func:`estimators.fast.ols_fit` (equilibrated Cholesky). None when the
    factorisation is not clearly well conditioned (the caller then fits one by one)."""
    n, p = X.shape
    G = X.T @ X
    d = np.sqrt(np.diag(G))
    if not (np.all(d > 0) and np.all(np.isfinite(d))) or n <= p:
        return None
    s = 1.0 / d
    c, info = chol(G * np.outer(s, s))
    if info != 0:
        return None
    dg = np.diag(c)
    if dg.min() <= 1e-4 * dg.max():  # ols_fit's switch to the SVD
        return None
    norm_cov = chol_inv(c) * np.outer(s, s)
    params = (Y @ X) @ norm_cov
    resid = Y - params @ X.T
    scale = np.einsum("ij,ij->i", resid, resid) / (n - p)
    return params, scale, norm_cov
