"""Linear mixed model with a random intercept per group (REML or ML).

Matches ``statsmodels MixedLM(endog, exog, groups).fit(reml=...)``:
``fe_params``, ``bse_fe`` (and the fixed-effect block of ``cov_params()``),
``cov_re`` (random-intercept variance), ``scale`` (residual variance),
``llf``, ``bse_re`` (statsmodels' definition: sqrt(scale * var(gamma_hat))).

Model: y_i = X_i b + 1 u_i + e_i, u_i ~ N(0, s2 * gamma), e_i ~ N(0, s2 I).

Method
------
With H_i = I + gamma J the per-group marginal covariance (up to s2),
H_i^{-1} = I - gamma/(1 + n_i gamma) J.  Writing Xa = [X, y] and splitting
into within-group and group-sum parts,

    Xa' H^{-1} Xa = W + sum_k omega_k(gamma) A_k,
    omega_k = 1 / (n_k (1 + n_k gamma)),

where W is the within-group cross-product matrix of Xa and A_k the
cross-product of the group sums over groups of size n_k (k runs over the
*distinct group sizes*, typically <= 5).  Both are computed once, so each
evaluation of the profiled (restricted) log-likelihood costs one
(p+1)x(p+1) Cholesky: its last pivot squared is the residual quadratic form
q(gamma) and its first p pivots give log|X'H^{-1}X|.  Analytic first and
second derivatives in gamma are cheap too.  The 1-D profile is minimised
over theta = log(gamma) by a vectorised coarse grid followed by a
bracketed (safeguarded) Newton iteration to ~1e-12; the boundary gamma = 0
is detected from the sign of the derivative at 0 and reported as
status="warning" ("random-intercept variance on boundary (0)").

Covariance of the fixed effects: the standard model-based sigma^2 (X' H^-1 X)^-1 at the
optimum (= (X' V^-1 X)^-1 with V the fitted marginal covariance), as lme4's ``vcov`` and SAS
PROC MIXED report, with sigma^2 the REML (or ML) residual variance. (statsmodels'
``cov_params()`` instead inverts its full Hessian in (fixed effects, cov_re), cross block
included: ~1e-4 relative larger SEs on study-sized data, REML or ML.) ``bse_re`` is sqrt(scale / h_gg) with h_gg the
curvature in gamma of the log-likelihood profiled over scale and fixed effects (statsmodels'
sqrt(scale * [-H^-1]_gg)).

Unbalanced groups (any sizes, unsorted labels) are supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_WARNING,
    Z975,
    chol,
    chol_inv,
    chol_solve,
    p_norm2,
)

_LOG2PI = float(np.log(2.0 * np.pi))
_GRID = np.linspace(-7.0, 5.0, 13)  # log(gamma) grid for the initial bracket


@dataclass(frozen=True, slots=True)
class LMMResult:
    fe_params: np.ndarray
    bse_fe: np.ndarray
    zvalues: np.ndarray
    pvalues: np.ndarray
    conf_int: np.ndarray  # (p, 2) Wald normal, as statsmodels conf_int()
    cov_fe: np.ndarray  # fixed-effect block of statsmodels cov_params()
    cov_re: float  # random-intercept variance
    scale: float  # residual variance
    gamma: float  # cov_re / scale
    bse_re: float  # statsmodels bse_re
    llf: float
    reml: bool
    nobs: int
    n_groups: int
    n_iter: int
    converged: bool
    status: str
    message: str


def _failed(p, n, m, reml, msg) -> LMMResult:
    nan_p = np.full(p, np.nan)
    return LMMResult(
        fe_params=nan_p.copy(),
        bse_fe=nan_p.copy(),
        zvalues=nan_p.copy(),
        pvalues=nan_p.copy(),
        conf_int=np.full((p, 2), np.nan),
        cov_fe=np.full((p, p), np.nan),
        cov_re=np.nan,
        scale=np.nan,
        gamma=np.nan,
        bse_re=np.nan,
        llf=np.nan,
        reml=reml,
        nobs=n,
        n_groups=m,
        n_iter=0,
        converged=False,
        status=STATUS_FAILED,
        message=msg,
    )


class _Profile:
    """Sufficient statistics and the profiled objective f(gamma) = -2 llf + const."""

    __slots__ = ("Wa", "Aa", "Aflat", "nk", "mk", "p", "nu", "reml", "N")

    def __init__(self, Wa, Aa, nk, mk, p, N, reml):
        self.Wa = Wa
        self.Aa = Aa
        self.Aflat = Aa.reshape(Aa.shape[0], -1)
        self.nk = nk
        self.mk = mk
        self.p = p
        self.N = N
        self.reml = reml
        self.nu = float(N - p) if reml else float(N)

    def f_grid(self, gammas: np.ndarray) -> np.ndarray:
        """Objective at many gammas at once (batched Cholesky)."""
        nk = self.nk
        p = self.p
        om = 1.0 / (nk * (1.0 + np.multiply.outer(gammas, nk)))  # (G, K)
        Ma = self.Wa + (om @ self.Aflat).reshape(gammas.shape[0], p + 1, p + 1)
        try:
            L = np.linalg.cholesky(Ma)
        except np.linalg.LinAlgError:
            return np.full(gammas.shape[0], np.nan)
        dg = np.diagonal(L, axis1=1, axis2=2)
        with np.errstate(divide="ignore"):
            ldg = np.log(dg)
        f = self.nu * 2.0 * ldg[:, p] + np.log1p(np.multiply.outer(gammas, nk)) @ self.mk
        if self.reml:
            f += 2.0 * ldg[:, :p].sum(axis=1)
        return f

    def f_f1(self, g: float):
        """(f, f') at gamma = g (what a gradient method needs); None if not PD."""
        nk, mk, p = self.nk, self.mk, self.p
        p1 = p + 1
        u = 1.0 / (1.0 + nk * g)
        om = np.empty((2, nk.shape[0]))
        om[0] = u / nk
        om[1] = -u * u
        Mall = om @ self.Aflat
        Ma = self.Wa + Mall[0].reshape(p1, p1)
        Ma1 = Mall[1].reshape(p1, p1)
        L, info = chol(Ma)
        if info != 0:
            return None
        q = L[p, p] ** 2
        c11 = L[:p, :p]
        v = np.empty(p1)
        v[:p] = chol_solve(c11, Ma[:p, p])
        v[p] = -1.0
        q1 = float(v @ (Ma1 @ v))
        nku = nk * u
        f = self.nu * np.log(q) + float(np.log1p(nk * g) @ mk)
        f1 = self.nu * q1 / q + float(nku @ mk)
        if self.reml:
            f += 2.0 * float(np.log(np.diagonal(c11)).sum())
            f1 += float((chol_inv(c11) * Ma1[:p, :p]).sum())
        return f, f1

    def derivs(self, g: float):
        """f, f', f'' in gamma, plus the pieces needed for the final Hessian.

        Returns None if X'H^{-1}X is not numerically positive definite.
        """
        nk, mk, p = self.nk, self.mk, self.p
        p1 = p + 1
        u = 1.0 / (1.0 + nk * g)
        om = np.empty((3, nk.shape[0]))
        om[0] = u / nk
        om[1] = -u * u
        om[2] = 2.0 * nk * u * u * u
        Mall = om @ self.Aflat
        Ma = self.Wa + Mall[0].reshape(p1, p1)
        Ma1 = Mall[1].reshape(p1, p1)
        Ma2 = Mall[2].reshape(p1, p1)
        L, info = chol(Ma)
        if info != 0:
            return None
        q = L[p, p] ** 2
        c11 = L[:p, :p]
        Minv = chol_inv(c11)
        beta = Minv @ Ma[:p, p]
        v = np.empty(p1)
        v[:p] = beta
        v[p] = -1.0
        Ma1v = Ma1 @ v
        r1 = Ma1v[:p]  # = M1 beta - c1
        q1 = float(v @ Ma1v)
        q2f = float(v @ (Ma2 @ v))  # second derivative at fixed beta
        q2 = q2f - 2.0 * float(r1 @ (Minv @ r1))
        nu = self.nu
        nku = nk * u
        lh = float(np.log1p(nk * g) @ mk)
        lh1 = float(nku @ mk)
        lh2 = -float((nku * nku) @ mk)
        f = nu * np.log(q) + lh
        f1 = nu * q1 / q + lh1
        f2 = nu * (q2 / q - (q1 / q) ** 2) + lh2
        if self.reml:
            P1 = Minv @ Ma1[:p, :p]
            d2 = float((Minv * Ma2[:p, :p]).sum()) - float((P1 * P1.T).sum())
            f += 2.0 * float(np.log(np.diagonal(c11)).sum())
            f1 += float(np.trace(P1))
            f2 += d2
        else:
            d2 = 0.0
        return f, f1, f2, (q, beta, Minv, Ma, r1, q1, q2f, lh2, d2)


def _safeguarded_newton(fun, a, b, x, tol, maxiter, relative=False):
    """Minimise a 1-D function on [a, b] given fun(x) -> (f, f1, f2, extra).

    Newton on the derivative with bisection fallback; the bracket is shrunk
    using the sign of f1 (assumes a single minimiser in [a, b]).
    Returns (x, dx, n_iter, converged, result_at_x): ``x`` is the last point
    evaluated and ``dx`` the final (tiny, |dx| <= tol) Newton step from it, so
    x + dx is the optimum to O(dx^2).
    """
    it = 0
    r = None
    while it < maxiter:
        it += 1
        r = fun(x)
        if r is None:
            return x, 0.0, it, False, None
        f1, f2 = r[1], r[2]
        if f1 > 0.0:
            b = x
        else:
            a = x
        newton = f2 > 0.0
        if newton:
            xn = x - f1 / f2
            if not (a < xn < b):
                xn = 0.5 * (a + b)
                newton = False
        else:
            xn = 0.5 * (a + b)
        sc = abs(x) if relative else max(1.0, abs(x))
        if newton and abs(xn - x) <= tol * sc:
            return x, xn - x, it, True, r
        if b - a <= 1e-14 * sc:
            return x, 0.0, it, True, r
        x = xn
    return x, 0.0, it, False, r


def _prepare(y, X, groups, reml):
    """Checks and sufficient statistics: (profile, N, p, n_groups), or a failed LMMResult."""
    y = np.asarray(y, dtype=float).reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    N, p = X.shape
    groups = np.asarray(groups).reshape(-1)
    if y.shape[0] != N or groups.shape[0] != N:
        return _failed(p, N, 0, reml, "length mismatch between y, X and groups")
    if N == 0:
        return _failed(p, N, 0, reml, "no observations")
    if not (np.isfinite(y).all() and np.isfinite(X).all()):
        return _failed(p, N, 0, reml, "non-finite values in y or X")

    # --- group structure (sort only if needed) -------------------------------
    if groups.dtype.kind in "biuf":
        if not np.all(groups[1:] >= groups[:-1]):
            order = np.argsort(groups, kind="stable")
            groups = groups[order]
            y = y[order]
            X = X[order]
    else:
        _, inv = np.unique(groups, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        groups = inv[order]
        y = y[order]
        X = X[order]
    starts = np.concatenate(([0], np.flatnonzero(groups[1:] != groups[:-1]) + 1))
    m = starts.shape[0]
    sizes = np.diff(np.concatenate((starts, [N])))
    if sizes.max() < 2:
        return _failed(
            p, N, m, reml, "random intercept not identifiable (every group has one observation)"
        )
    if N - p <= 0:
        return _failed(p, N, m, reml, f"no residual degrees of freedom (N={N}, p={p})")

    Xa = np.empty((N, p + 1))
    Xa[:, :p] = X
    Xa[:, p] = y
    Za = np.add.reduceat(Xa, starts, axis=0)  # group sums
    Xw = Xa - np.repeat(Za / sizes[:, None], sizes, axis=0)
    Wa = Xw.T @ Xw
    cnt = np.bincount(sizes)
    usz = np.flatnonzero(cnt)
    K = usz.shape[0]
    lut = np.zeros(cnt.shape[0], dtype=np.intp)
    lut[usz] = np.arange(K)
    cls = lut[sizes]
    if K == 1:
        Aa = (Za.T @ Za)[None]
    else:
        Aa = np.empty((K, p + 1, p + 1))
        for k in range(K):
            Zk = Za[cls == k]
            Aa[k] = Zk.T @ Zk
    nk = usz.astype(float)
    mk = cnt[usz].astype(float)
    prof = _Profile(Wa, Aa, nk, mk, p, N, reml)

    # --- rank / degeneracy checks at gamma = 0 (Ma = Xa'Xa) -----------------
    Ma0 = Wa + ((1.0 / nk) @ prof.Aflat).reshape(p + 1, p + 1)
    # one Cholesky: L_jj / sqrt(M_jj) = sqrt(1 - R^2) of column j on the
    # previous ones (rank check); the last pivot is the OLS residual norm
    c0, info = chol(Ma0)
    dg = np.diagonal(c0)
    d0 = np.diagonal(Ma0)
    if (0 < info <= p) or not np.all(dg[:p] > 1e-7 * np.sqrt(d0[:p])):
        return _failed(p, N, m, reml, "singular design matrix (collinear or all-zero columns)")
    if info != 0 or dg[p] * dg[p] <= 1e-24 * d0[p]:
        return _failed(p, N, m, reml, "response is an exact linear function of X (zero residual)")

    return prof, N, p, m


def _finish(prof, reml, N, p, m, gamma, status, message, converged, n_iter):
    """Estimates at the optimum ``gamma`` -> LMMResult (everything re-evaluated at ``gamma``)."""
    nu = N - p if reml else N
    r = prof.derivs(gamma)
    if r is None:
        return _failed(p, N, m, reml, "singular matrix at the optimum")
    f = r[0]
    q, beta, Minv, Ma, r1, q1, q2f, lh2, d2 = r[3]
    scale = q / nu
    llf = -0.5 * f - 0.5 * nu * _LOG2PI + 0.5 * nu * np.log(nu) - 0.5 * nu
    cov_fe = Minv * scale  # sigma^2 (X' H^-1 X)^-1
    # curvature in gamma of the scale-profiled log-likelihood (fixed effects profiled out)
    q2 = q2f - 2.0 * float(r1 @ (Minv @ r1))
    hgg = -0.5 * lh2 - 0.5 * nu * (q2 / q - (q1 / q) ** 2)
    if reml:
        hgg -= 0.5 * d2
    bse_re = float(np.sqrt(-scale / hgg)) if hgg < 0 else np.nan
    bse = np.sqrt(np.diag(cov_fe))
    z = beta / bse
    if not converged:
        status = STATUS_FAILED
        message = "profile likelihood optimisation did not converge"
    return LMMResult(
        fe_params=beta,
        bse_fe=bse,
        zvalues=z,
        pvalues=p_norm2(z),
        conf_int=np.column_stack((beta - Z975 * bse, beta + Z975 * bse)),
        cov_fe=cov_fe,
        cov_re=gamma * scale,
        scale=scale,
        gamma=gamma,
        bse_re=bse_re,
        llf=float(llf),
        reml=reml,
        nobs=N,
        n_groups=m,
        n_iter=n_iter,
        converged=converged,
        status=status,
        message=message,
    )


def lmm_random_intercept(
    y,
    X,
    groups,
    reml: bool = True,
    tol: float = 1e-10,
    maxiter: int = 60,
) -> LMMResult:
    """Random-intercept LMM fit by (RE)ML via 1-D profiling.

    Parameters
    ----------
    y : (N,) response
    X : (N, p) fixed-effects design (include the intercept column)
    groups : (N,) group labels (e.g. patient id); need not be sorted
    reml : REML (default, as statsmodels) or ML
    """
    prep = _prepare(y, X, groups, reml)
    if isinstance(prep, LMMResult):
        return prep
    prof, N, p, m = prep

    # --- optimise the profile over gamma ------------------------------------
    status, message = STATUS_OK, ""
    n_iter = 0
    fg = prof.f_grid(np.exp(_GRID))
    if not np.all(np.isfinite(fg)):
        return _failed(p, N, m, reml, "profile likelihood not finite on the gamma grid")
    j = int(np.argmin(fg))
    converged = True
    if j == 0:
        r0 = prof.derivs(0.0)
        if r0 is None:
            return _failed(p, N, m, reml, "singular matrix at gamma = 0")
        if r0[1] >= 0.0:
            gamma = 0.0
            status = STATUS_WARNING
            message = "random-intercept variance on boundary (0)"
        else:
            # interior optimum in (0, exp(grid[1])): Newton in gamma itself
            gamma, dx, n_iter, converged, _ = _safeguarded_newton(
                prof.derivs,
                0.0,
                float(np.exp(_GRID[1])),
                float(np.exp(_GRID[0])),
                tol,
                maxiter,
                relative=True,
            )
            gamma += dx
    else:
        lo_t = _GRID[j - 1]
        if j == _GRID.shape[0] - 1:
            # optimum at or beyond the top of the grid: extend upwards
            hi_t = _GRID[-1]
            while True:
                hi_t += 2.0
                if hi_t > 25.0:
                    return _failed(
                        p,
                        N,
                        m,
                        reml,
                        "residual variance on boundary (0): cov_re / scale diverges (gamma > 1e10)",
                    )
                r = prof.derivs(float(np.exp(hi_t)))
                if r is None:
                    return _failed(p, N, m, reml, "singular matrix for large gamma")
                if r[1] > 0.0:
                    break
                lo_t = hi_t - 2.0
        else:
            hi_t = _GRID[j + 1]

        def fun_theta(t):
            g = float(np.exp(t))
            r = prof.derivs(g)
            if r is None:
                return None
            f, f1, f2, extra = r
            return f, g * f1, g * g * f2 + g * f1, extra

        theta, dx, n_iter, converged, _ = _safeguarded_newton(
            fun_theta, float(lo_t), float(hi_t), float(_GRID[j]), tol, maxiter
        )
        gamma = float(np.exp(theta + dx))

    return _finish(prof, reml, N, p, m, gamma, status, message, converged, n_iter)
