"""GEE with a Gaussian family, identity link and exchangeable working correlation.

Matches ``statsmodels GEE(y, X, groups, family=Gaussian(), cov_struct=Exchangeable()).fit()``
run to its fixed point: ``params``, the robust (sandwich) ``cov_params()``, ``cov_naive``,
``scale`` and the working correlation ``cov_struct.dep_params``.

Model: E[y_ij] = x_ij' b, working covariance phi R_i with R_i = (1 - rho) I + rho 11'
(m_i x m_i, m_i = size of cluster i). Moment estimators with statsmodels' conventions
(``ddof_scale = p``, unit variance function):

    phi = sum r^2 / (N - p),
    rho = sum_i sum_{j<k} r_ij r_ik / phi / (n_pairs - p),   n_pairs = sum_i m_i (m_i - 1) / 2.

Method
------
R_i^-1 = (I - c_i 11') / (1 - rho), c_i = rho / (1 + rho (m_i - 1)), so every cluster sum
reduces to the pooled cross-products and the cluster column sums S_i = X_i' 1, s_i = 1' y_i
(computed once, as segment sums over the rows sorted by cluster):

    X' R^-1 X = (X'X - sum_i c_i S_i S_i') / (1 - rho),
    X' R^-1 y = (X'y - sum_i c_i S_i s_i) / (1 - rho),

and c_i depends on m_i only: the sums are sum over the distinct sizes m of c(m) A_m, with A_m
the cross-products of [S_i, s_i] over the clusters of size m (computed once).

The fixed point of statsmodels' iteration (for the identity link its Fisher-scoring step is the
exact GLS solve): F(rho) = the moment estimate of rho at b(rho) = (X'R^-1X)^-1 X'R^-1 y, from
rho = 0, until |F(rho) - rho| < ``tol`` (statsmodels iterates rho = F(rho); its default stop,
score norm < 1e-6, lands ~1e-13 from the fixed point on study-sized data); the iterates after the
first two take the secant step on F(rho) - rho (plain steps where it leaves the valid range). The cluster sums of the residuals are s_i - S_i' b,
so an iteration costs O(N p + K p) after the O(N p^2) set-up; no loop over clusters. Robust covariance B^-1 M B^-1 with B = X'R^-1X and
M = sum_i u_i u_i', u_i = X_i' R_i^-1 r_i = (X_i' r_i - c_i S_i (1' r_i)) / (1 - rho) (the scale
cancels, as in statsmodels); naive covariance phi B^-1.

Failures never raise (status "failed" + message): fewer than p + 1 rows or within-cluster pairs
(the moment estimators' denominators), a correlation estimate outside the range where every R_i
is positive definite (-1 / (m_max - 1) < rho < 1), a zero residual variance (below 1e-12 var(y):
a perfect fit), a singular X' R^-1 X. Not reaching ``tol`` in ``maxiter`` iterations is status
"warning" ("did not converge ...") with the last iterate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import STATUS_FAILED, STATUS_OK, STATUS_WARNING, chol, chol_inv, chol_solve

MAXITER = 100
TOL = 1e-12  # on |F(rho) - rho| (absolute; rho is a correlation)


@dataclass(frozen=True, slots=True)
class GEEResult:
    params: np.ndarray
    cov_params: np.ndarray  # robust (sandwich), as statsmodels cov_params() (cov_type="robust")
    cov_naive: np.ndarray  # phi (X' R^-1 X)^-1
    bse: np.ndarray  # sqrt(diag(cov_params))
    scale: float  # phi at the final coefficients
    rho: float  # exchangeable working correlation (statsmodels dep_params)
    nobs: int
    n_groups: int
    n_iter: int
    converged: bool
    status: str
    message: str


def _failed(p: int, n: int, k: int, msg: str, rho=np.nan, n_iter=0) -> GEEResult:
    nan_p = np.full(p, np.nan)
    return GEEResult(
        params=nan_p.copy(),
        cov_params=np.full((p, p), np.nan),
        cov_naive=np.full((p, p), np.nan),
        bse=nan_p,
        scale=np.nan,
        rho=float(rho),
        nobs=n,
        n_groups=k,
        n_iter=n_iter,
        converged=False,
        status=STATUS_FAILED,
        message=msg,
    )


def data_problem(n: int, p: int, sizes: np.ndarray) -> str:
    """Why the moment estimators are undefined for ``n`` rows, ``p`` parameters and clusters of
    ``sizes`` ("" if they are defined): N - p < 1 (scale) or n_pairs - p < 1 (correlation)."""
    if n - p < 1:
        return f"{n} observations for {p} parameters: the scale is not estimable"
    n_pairs = int(np.sum(sizes * (sizes - 1)) // 2)
    if n_pairs - p < 1:
        return (
            f"{n_pairs} within-patient pairs of observations for {p} parameters: the "
            "exchangeable correlation is not estimable (moment estimator on n_pairs - p)"
        )
    return ""


def rho_problem(rho: float, m_max: int) -> str:
    """Why ``rho`` is no exchangeable correlation for clusters of up to ``m_max`` rows ("" if
    it is): every R_i is positive definite iff -1 / (m_max - 1) < rho < 1."""
    lo = -1.0 / (m_max - 1.0) if m_max > 1 else -np.inf
    if lo < rho < 1.0:
        return ""
    return (
        f"exchangeable correlation estimate {rho:.6g} outside ({lo:.6g}, 1): the working "
        "correlation is not positive definite"
    )


def cluster_starts(groups: np.ndarray):
    """(row order that sorts ``groups`` stably, or None if they are sorted already; the first row
    of each cluster in that order)."""
    g = np.asarray(groups)
    order = None
    if g.shape[0] == 0:
        return order, np.zeros(0, np.intp)
    if (g[1:] < g[:-1]).any():
        order = np.argsort(g, kind="stable")
        g = g[order]
    return order, np.concatenate(([0], np.flatnonzero(g[1:] != g[:-1]) + 1))


def gee_exchangeable(y, X, groups, maxiter: int = MAXITER, tol: float = TOL) -> GEEResult:
    """Gaussian identity-link GEE with exchangeable working correlation (see the module doc).

    ``groups``: cluster labels (any order; rows are grouped by label). ``maxiter``: number of
    GLS solves at most; ``tol``: stop when |F(rho) - rho| is below this.
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    if y.shape[0] != n or np.shape(groups)[0] != n:
        return _failed(p, n, 0, "length mismatch between y, X and groups")
    order, starts = cluster_starts(groups)
    if order is not None:
        y, X = y[order], X[order]
    k = int(starts.shape[0])
    mi = np.diff(np.concatenate((starts, [n])))
    problem = data_problem(n, p, mi)
    if problem:
        return _failed(p, n, k, problem)
    if not (np.isfinite(y).all() and np.isfinite(X).all()):
        return _failed(p, n, k, "non-finite values in y or X")
    m = mi.astype(float)
    n_pairs = float(m @ (m - 1.0)) / 2.0
    m_max = int(mi.max())
    # cluster sums as one bincount over (cluster, column) cells
    cell = (np.repeat(np.arange(0, k * p, p), mi)[:, None] + np.arange(p)).ravel()
    S = np.bincount(cell, weights=X.ravel(), minlength=k * p).reshape(k, p)  # X_i' 1
    sy = np.add.reduceat(y, starts)  # 1' y_i
    # c_i depends on m_i only: sum_i c_i [S_i, s_i][S_i, s_i]' = sum over sizes of c(size) A
    by_size = np.argsort(mi, kind="stable")
    ms = m[by_size]
    first = np.concatenate(([0], np.flatnonzero(ms[1:] != ms[:-1]) + 1))
    sizes = ms[first]
    Sa = np.column_stack([S, sy])[by_size]
    bounds = np.concatenate((first, [k]))
    A = np.empty((sizes.shape[0], (p + 1) * (p + 1)))
    for j in range(sizes.shape[0]):
        Sj = Sa[bounds[j] : bounds[j + 1]]
        A[j] = (Sj.T @ Sj).ravel()
    XtX = X.T @ X
    Xty = X.T @ y
    ddof_scale = float(n - p)
    ddof_rho = n_pairs - p
    tiny = 1e-12 * max(float(np.var(y)), 1e-300)  # a residual variance this small: perfect fit

    def gls(rho):
        d = 1.0 - rho
        c = rho / (1.0 + rho * (sizes - 1.0))
        Ac = (c @ A).reshape(p + 1, p + 1)
        L, info = chol((XtX - Ac[:p, :p]) / d)
        if info != 0:
            return None, None
        return chol_solve(L, (Xty - Ac[:p, p]) / d), L

    def moments(beta):
        r = y - X @ beta
        ssr = float(r @ r)
        sr = sy - S @ beta
        scale = ssr / ddof_scale
        if not scale > tiny:
            return r, sr, scale, np.nan
        return r, sr, scale, (float(sr @ sr) - ssr) / 2.0 / scale / ddof_rho

    rho, converged, it = 0.0, False, 0
    prev = None  # (rho, F(rho) - rho) of the previous iterate, for the secant step
    for it in range(1, maxiter + 1):
        used = rho
        beta, L = gls(used)
        if beta is None:
            return _failed(p, n, k, f"singular X' R^-1 X at rho = {used:.6g}", used, it)
        r, sr, scale, new = moments(beta)  # new = F(used), statsmodels' next rho
        if not scale > tiny:
            return _failed(p, n, k, "perfect fit: residual variance is zero", used, it)
        problem = rho_problem(new, m_max)
        if problem:
            return _failed(p, n, k, problem, new, it)
        step = new - used
        if abs(step) <= tol:
            converged = True
            break
        # F(rho) = rho by the secant on F(rho) - rho (the plain step rho = F(rho) contracts by
        # ~1e-3 an iteration here; the secant needs 4 GLS solves instead of 5-7), else plain
        rho = new
        if prev is not None and step != prev[1]:
            sec = used - step * (used - prev[0]) / (step - prev[1])
            if not rho_problem(sec, m_max):
                rho = sec
        prev = (used, step)
    # the final state as statsmodels': beta = GLS(used), covariance at (beta, used)
    c = used / (1.0 + used * (m - 1.0))
    Xr = np.bincount(cell, weights=(X * r[:, None]).ravel(), minlength=k * p).reshape(k, p)
    U = (Xr - S * (c * sr)[:, None]) / (1.0 - used)
    Binv = chol_inv(L)
    cov = Binv @ (U.T @ U) @ Binv
    cov = (cov + cov.T) / 2.0
    status, msg = STATUS_OK, ""
    if not converged:
        status = STATUS_WARNING
        msg = (
            f"did not converge in {maxiter} iterations (|F(rho) - rho| = {abs(step):.3g} > {tol:g})"
        )
    return GEEResult(
        params=beta,
        cov_params=cov,
        cov_naive=Binv * scale,
        bse=np.sqrt(np.maximum(np.diag(cov), 0.0)),
        scale=scale,
        rho=float(used),
        nobs=n,
        n_groups=k,
        n_iter=it,
        converged=converged,
        status=status,
        message=msg,
    )
