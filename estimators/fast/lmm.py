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
(p+1)x(p+1) Cholesky L and the triangular inverse T = L^-1: the last pivot
squared is the residual quadratic form q(gamma), the first p pivots give
log|X'H^{-1}X|, and f', f'' are traces and entries of T M' T' and T M'' T'
(:func:`_derivs_c`).  With an intercept column, the group sums are centred
first (a unit-Jacobian reparameterisation that keeps the between-group
cross-products well conditioned).  The 1-D profile is minimised over
theta = log(gamma) by Newton's method from the moment (ANOVA-type) estimate
of gamma (typically 4 steps to |step| < 1e-10), safeguarded by bisection in
the bracket the signs of f' give; the boundary gamma = 0 is detected from the
sign of the derivative at 0 and reported as
status="warning" ("random-intercept variance on boundary (0)").

Covariance of the fixed effects: the standard model-based sigma^2 (X' H^-1 X)^-1 at the
optimum (= (X' V^-1 X)^-1 with V the fitted marginal covariance), as lme4's ``vcov`` and SAS
PROC MIXED report, with sigma^2 the REML (or ML) residual variance. (statsmodels'
``cov_params()`` instead inverts its full Hessian in (fixed effects, cov_re), cross block
included: ~1e-4 relative larger SEs on study-sized data, REML or ML.) ``bse_re`` is sqrt(scale / h_gg) with h_gg the
curvature in gamma of the log-likelihood profiled over scale and fixed effects (statsmodels'
sqrt(scale * [-H^-1]_gg)).

Unbalanced groups (any sizes, unsorted labels) are supported; :func:`lmm_random_intercept_wide`
takes padded (group x slot) data and needs no sorting or segment sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._common import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_WARNING,
    Z975,
    p_norm2,
)
from ._jit import njit
from ._small import cholesky, tri_inv

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True, slots=True)
class LMMResult:
    fe_params: np.ndarray
    bse_fe: np.ndarray
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

    @property
    def zvalues(self) -> np.ndarray:
        return self.fe_params / self.bse_fe

    @property
    def pvalues(self) -> np.ndarray:
        return p_norm2(self.zvalues)

    @property
    def conf_int(self) -> np.ndarray:
        """(p, 2) Wald normal 95% limits, as statsmodels conf_int()."""
        b, se = self.fe_params, self.bse_fe
        return np.column_stack((b - Z975 * se, b + Z975 * se))


def _failed(p, n, m, reml, msg) -> LMMResult:
    nan_p = np.full(p, np.nan)
    return LMMResult(
        fe_params=nan_p.copy(),
        bse_fe=nan_p.copy(),
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


class WideStats(NamedTuple):
    """Sufficient statistics of the random-intercept fit (:func:`wide_stats`)."""

    Wa: np.ndarray  # (p+1, p+1) within-group cross-products of [X, y]
    Za: np.ndarray  # (m, p+1) group sums of [X, y] (groups with an observation, in order)
    sizes: np.ndarray  # (m,) observations per group
    N: int  # observations
    finite: bool  # every sum finite
    c: int  # the intercept column of X (constant, non-zero), -1 if none
    xc: float  # its value (1.0 if none)
    gram: np.ndarray | None  # X'X = Wa[:p, :p] + sum_i Za_i Za_i' / n_i (None for long data)
    y_min: float = math.nan  # the smallest and largest observed y (wide and template forms)
    y_max: float = math.nan


def _prepare(y, X, groups, reml):
    """Long data (one row per observation) -> its :class:`WideStats` (gram None), or a failed
    LMMResult."""
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
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    sizes = np.diff(np.r_[starts, N])
    Xa = np.empty((N, p + 1))
    Xa[:, :p] = X
    Xa[:, p] = y
    Za = np.add.reduceat(Xa, starts, axis=0)  # group sums
    Xw = Xa - np.repeat(Za / sizes[:, None], sizes, axis=0)
    Wa = np.ascontiguousarray(Xw.T @ Xw)
    c = _intercept_column(Wa, lambda j: X[:, j])
    return WideStats(Wa, Za, sizes, N, True, c, X[0, c] if c >= 0 else 1.0, None)


def wide_stats(Y, X) -> WideStats:
    """:class:`WideStats` of padded data (group x slot, NaN = no observation), one compiled pass.

    Y : (n, v) response, NaN where group i has no observation in slot j
    X : (n, v, p) fixed-effects design per slot (rows of empty slots ignored)
    """
    Y = np.ascontiguousarray(Y, dtype=float)
    X = np.ascontiguousarray(X, dtype=float)
    Wa, Za, sizes, N, finite, c, xc, gram, lo, hi = _wide_stats(Y, X)
    return WideStats(Wa, Za, sizes, int(N), bool(finite), int(c), float(xc), gram, lo, hi)


@njit
def _wide_stats(Y, X):
    """(Wa, Za, sizes, N, finite, c, xc, gram, y_min, y_max) of :class:`WideStats`: Wa = R'R by BLAS, R the
    observed rows minus their group means; finite False if any sum is not finite; c the first
    column of X that takes one non-zero value, xc, on every observed row and whose within
    cross-product is zero (<= 1e-24 of the largest diagonal of Wa)."""
    n, v, p = X.shape
    p1 = p + 1
    cnt = np.zeros(n, dtype=np.int64)
    m = 0
    N = 0
    for i in range(n):
        c = 0
        for j in range(v):
            if np.isfinite(Y[i, j]):
                c += 1
        cnt[i] = c
        N += c
        if c > 0:
            m += 1
    Za = np.zeros((m, p1))
    sizes = np.empty(m, dtype=np.int64)
    R = np.empty((N, p1))
    S = np.empty((m, p))  # group sums / sqrt(n_i): S'S = sum_i Za_i Za_i' / n_i
    const = np.ones(p, dtype=np.bool_)
    first = np.zeros(p)
    mean = np.empty(p1)
    g = 0
    r = 0
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        c = cnt[i]
        if c == 0:
            continue
        sizes[g] = c
        for j in range(v):
            y = Y[i, j]
            if np.isfinite(y):
                lo = min(lo, y)
                hi = max(hi, y)
                for a in range(p):
                    x = X[i, j, a]
                    Za[g, a] += x
                    if r == 0:
                        first[a] = x
                    elif x != first[a]:
                        const[a] = False
                Za[g, p] += y
                r += 1
        r -= c
        for a in range(p1):
            mean[a] = Za[g, a] / c
        rc = 1.0 / math.sqrt(c)
        for a in range(p):
            S[g, a] = Za[g, a] * rc
        for j in range(v):
            y = Y[i, j]
            if np.isfinite(y):
                for a in range(p):
                    R[r, a] = X[i, j, a] - mean[a]
                R[r, p] = y - mean[p]
                r += 1
        g += 1
    Wa = np.dot(R.T, R)
    for a in range(p1):
        for b in range(a + 1):
            Wa[b, a] = Wa[a, b]  # exactly symmetric (the product need not be)
    return _finish_stats(Wa, Za, sizes, N, S, const, first, lo, hi)


def template_stats(Y, T3, arm, Z) -> WideStats:
    """:func:`wide_stats` of the padded design X[i, j] = [T3[arm_i, j], Z_i] without building it.

    Y : (n, v) response, NaN where patient i has no observation at visit j
    T3 : (a, v, q) the design row of each arm at each visit (the visit-by-arm template)
    arm : (n,) each patient's row of T3 (0 <= arm_i < a)
    Z : (n, k) patient-level covariates (constant over a patient's visits; finite)

    The same statistics up to rounding: the template part of a patient's within-deviations
    depends only on the arm and the pattern of observed visits, so
    Wa = sum over patterns P of n_P D_P' D_P (template block), D_P' u_P (template x y, u_P the
    pattern's summed y deviations per visit) and the y deviations' sum of squares; the
    covariates' within-deviations are exactly 0. gram = Wa + S'S as in :func:`wide_stats`.
    Patterns are indexed by arm and a bit mask of the visits (``v`` <= 20).
    """
    Y = np.ascontiguousarray(Y, dtype=float)
    T3 = np.ascontiguousarray(T3, dtype=float)
    Z = np.ascontiguousarray(Z, dtype=float)
    arm = np.ascontiguousarray(arm, dtype=np.int64)
    if Y.shape[1] != T3.shape[1] or Y.shape[1] > 20 or arm.shape[0] != Y.shape[0]:
        raise ValueError("template_stats: Y (n, v), T3 (a, v, q), arm (n,) with v <= 20")
    Wa, Za, sizes, N, finite, c, xc, gram, lo, hi = _template_stats(Y, T3, arm, Z)
    return WideStats(Wa, Za, sizes, int(N), bool(finite), int(c), float(xc), gram, lo, hi)


@njit
def _template_stats(Y, T3, arm, Z):
    """The tuple of :func:`_wide_stats` for X[i, j] = [T3[arm_i, j], Z_i] (:func:`template_stats`):
    a pass over the patients (their pattern, y sums and deviations, covariates), then one over
    the patterns present (template sums, within cross-products, the constant-column check)."""
    n, v = Y.shape
    q = T3.shape[2]
    k = Z.shape[1]
    p = q + k
    p1 = p + 1
    npat = T3.shape[0] << v
    pat_n = np.zeros(npat, dtype=np.int64)  # patients per pattern
    pat_c = np.zeros(npat, dtype=np.int64)  # visits per pattern
    sT = np.zeros((npat, q))  # per pattern: the template rows summed over its visits
    U = np.zeros((npat, v))  # per pattern: summed y deviations at each visit
    key = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if not 0 <= arm[i] < T3.shape[0]:
            raise ValueError("template_stats: an arm index outside the template's rows")
        mask = 0
        for j in range(v):
            if np.isfinite(Y[i, j]):
                mask |= 1 << j
        key[i] = -1
        if mask:
            key[i] = (arm[i] << v) | mask
            m += 1
    Za = np.zeros((m, p1))
    sizes = np.empty(m, dtype=np.int64)
    S = np.empty((m, p))  # group sums / sqrt(n_i): S'S = sum_i Za_i Za_i' / n_i
    const = np.ones(p, dtype=np.bool_)
    first = np.zeros(p)
    first_key = -1
    lo = np.inf
    hi = -np.inf
    syy = 0.0
    N = 0
    g = 0
    for i in range(n):
        kk = key[i]
        if kk < 0:
            continue
        if pat_n[kk] == 0:  # a new pattern: its visit count and template sums
            a_i = kk >> v
            c = 0
            for j in range(v):
                if kk >> j & 1:
                    c += 1
                    for a in range(q):
                        sT[kk, a] += T3[a_i, j, a]
            pat_c[kk] = c
        if first_key < 0:  # the first observed row: the reference values of the constant check
            first_key = kk
            for b in range(k):
                first[q + b] = Z[i, b]
        pat_n[kk] += 1
        c = pat_c[kk]
        ys = 0.0
        for j in range(v):
            y = Y[i, j]
            if np.isfinite(y):
                ys += y
                lo = min(lo, y)
                hi = max(hi, y)
        ybar = ys / c
        for j in range(v):
            y = Y[i, j]
            if np.isfinite(y):
                d = y - ybar
                syy += d * d
                U[kk, j] += d
        for a in range(q):
            Za[g, a] = sT[kk, a]
        for b in range(k):
            zb = Z[i, b]
            Za[g, q + b] = c * zb
            if zb != first[q + b]:
                const[q + b] = False
        Za[g, p] = ys
        sizes[g] = c
        N += c
        rc = 1.0 / math.sqrt(c)
        for a in range(p):
            S[g, a] = Za[g, a] * rc
        g += 1
    if first_key >= 0:
        a0 = first_key >> v
        for j in range(v):
            if first_key >> j & 1:
                for a in range(q):
                    first[a] = T3[a0, j, a]
                break
    Wa = np.zeros((p1, p1))
    D = np.empty((v, q))
    for kk in range(npat):
        cnt = pat_n[kk]
        if cnt == 0:
            continue
        a_i = kk >> v
        c = pat_c[kk]
        r = 0
        for j in range(v):
            if kk >> j & 1:
                for a in range(q):
                    x = T3[a_i, j, a]
                    D[r, a] = x - sT[kk, a] / c
                    if x != first[a]:
                        const[a] = False
                r += 1
        r = 0
        for j in range(v):
            if kk >> j & 1:
                uj = U[kk, j]
                for a in range(q):
                    Wa[p, a] += D[r, a] * uj
                r += 1
        for a in range(q):
            for b in range(a + 1):
                t = 0.0
                for r in range(c):
                    t += D[r, a] * D[r, b]
                Wa[a, b] += cnt * t
    Wa[p, p] = syy
    for a in range(p1):
        for b in range(a):
            Wa[b, a] = Wa[a, b]  # exactly symmetric, from the lower triangle
    return _finish_stats(Wa, Za, sizes, N, S, const, first, lo, hi)


@njit
def _finish_stats(Wa, Za, sizes, N, S, const, first, lo, hi):
    """The tuple of :class:`WideStats` from the symmetric Wa, the group sums Za and S (group
    sums / sqrt(n_i)), shared by :func:`_wide_stats` and :func:`_template_stats`: gram = Wa +
    S'S (X'X), finite (every sum), the intercept column c (constant non-zero on every observed
    row, zero within cross-product: <= 1e-24 of Wa's largest diagonal) and its value xc."""
    m, p1 = Za.shape
    p = p1 - 1
    gram = np.dot(S.T, S)
    finite = True
    dmax = 0.0
    for a in range(p1):
        dmax = max(dmax, Wa[a, a])
        for b in range(p1):
            if not np.isfinite(Wa[a, b]):
                finite = False
    for a in range(p):
        for b in range(a + 1):
            gram[a, b] += Wa[a, b]
            gram[b, a] = gram[a, b]
    for g in range(m):
        for a in range(p1):
            if not np.isfinite(Za[g, a]):
                finite = False
    col = -1
    for a in range(p):
        if const[a] and first[a] != 0.0 and Wa[a, a] <= 1e-24 * dmax:
            col = a
            break
    xc = first[col] if col >= 0 else 1.0
    return Wa, Za, sizes, N, finite, col, xc, gram, lo, hi


def _intercept_column(Wa, column) -> int:
    """Index of a constant non-zero column of X (the intercept), -1 if there is none.

    Candidates are the columns constant within groups (zero within cross-product); each is
    checked on its values, ``column(j)`` (over the observed rows), first one first.
    """
    dw = np.diagonal(Wa)
    for j in np.flatnonzero(dw[:-1] <= 1e-24 * dw.max()).tolist():
        x = column(j)
        if x[0] != 0.0 and (x == x[0]).all():
            return int(j)
    return -1


@njit
def _between_c(Wa, Za, sizes, N, p):
    """Between-group cross-products per distinct group size, the rank checks at gamma = 0 and
    the moment start, in one compiled call: (A, nk, mk, code, gamma0).

    A_k = sum over groups of size n_k of Za_i Za_i' (k over the distinct sizes, ascending),
    mk their numbers of groups. code 1: singular design (L_jj / sqrt(M_jj) = sqrt(1 - R^2) of
    column j on the previous ones <= 1e-7, from the Cholesky factor of Ma0 = Wa + sum A_k / n_k
    = Xa'Xa); code 2: zero residual (last pivot^2 <= 1e-24 M_pp). gamma0: the moment
    (ANOVA-type) estimate from the OLS residuals: within-group SS s_w ~ (N - m) s2, between SS
    ~ (m - p)(1 + nbar gamma) s2 (NaN when not defined).
    """
    m, p1 = Za.shape
    smax = 0
    for i in range(m):
        smax = max(smax, sizes[i])
    cnt = np.zeros(smax + 1, dtype=np.int64)
    for i in range(m):
        cnt[sizes[i]] += 1
    K = 0
    for k in range(smax + 1):
        if cnt[k] > 0:
            K += 1
    slot = np.full(smax + 1, -1, dtype=np.int64)
    nk = np.empty(K)
    mk = np.empty(K)
    k = 0
    for sz in range(smax + 1):
        if cnt[sz] > 0:
            slot[sz] = k
            nk[k] = sz
            mk[k] = cnt[sz]
            k += 1
    A = np.zeros((K, p1, p1))
    for i in range(m):
        k = slot[sizes[i]]
        for a in range(p1):
            za = Za[i, a]
            for b in range(a + 1):
                A[k, a, b] += za * Za[i, b]
    for k in range(K):
        for a in range(p1):
            for b in range(a):
                A[k, b, a] = A[k, a, b]
    M0 = Wa.copy()
    for k in range(K):
        w = 1.0 / nk[k]
        for a in range(p1):
            for b in range(p1):
                M0[a, b] += w * A[k, a, b]
    L = np.zeros((p1, p1))
    info = cholesky(M0, L)
    if 0 < info <= p:
        return A, nk, mk, 1, np.nan
    for j in range(p):
        if not L[j, j] > 1e-7 * math.sqrt(M0[j, j]):
            return A, nk, mk, 1, np.nan
    if info != 0 or L[p, p] * L[p, p] <= 1e-24 * M0[p, p]:
        return A, nk, mk, 2, np.nan
    T = np.zeros((p1, p1))
    tri_inv(L, T)
    s_all = L[p, p] * L[p, p]
    q = 0.0  # v0' Wa v0 with v0 = T[p] (the OLS [beta, -1] up to the factor -L_pp)
    for a in range(p1):
        t = 0.0
        for b in range(p1):
            t += Wa[a, b] * T[p, b]
        q += T[p, a] * t
    s_w = q * s_all
    s_b = s_all - s_w
    gamma0 = np.nan
    if N > m and m > p and s_w > 0:
        gamma0 = (s_b * (N - m) / ((m - p) * s_w) - 1.0) * m / N
    return A, nk, mk, 0, gamma0


#: log(gamma) bounds of the search: below, the optimum is the boundary gamma = 0 if f'(0) >= 0;
#: above, the residual variance is on its boundary (cov_re / scale > 1e10)
_THETA_LO, _THETA_HI = -23.0, 23.0


def lmm_random_intercept(
    y,
    X,
    groups,
    reml: bool = True,
    tol: float = 1e-10,
    maxiter: int = 60,
) -> LMMResult:
    """Random-intercept LMM fit by (RE)ML via 1-D profiling.

    Newton's method in theta = log(gamma) on the exact profile (analytic f', f''), started at
    the moment estimate of gamma from the OLS residuals, safeguarded by bisection in the
    bracket the signs of f' give; stops when the Newton step from the current point is below
    ``tol`` (in theta, relative to max(1, |theta|)) and reports that point. The boundary
    gamma = 0 is the optimum when f'(0) >= 0 (status warning).

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
    return _solve(prep, reml, tol, maxiter)


def lmm_random_intercept_wide(
    Y, X, reml: bool = True, tol: float = 1e-10, maxiter: int = 60, stats: WideStats | None = None
) -> LMMResult:
    """:func:`lmm_random_intercept` on padded data: group i's observations in the slots of row i.

    Y : (n, v) response, NaN where group i has no observation in slot j
    X : (n, v, p) fixed-effects design per slot (rows of empty slots ignored; must be finite)
    stats : :func:`wide_stats` (or :func:`template_stats`) of (Y, X) when the caller already
        has them: X is then not read (None will do)

    The same fit as the long form with groups = row index (rows of Y in order), without
    sorting or segment sums: the group sums are sums over the slot axis.
    """
    if stats is None:
        stats = wide_stats(Y, X)
    p = stats.Wa.shape[0] - 1  # (X is not read when the caller has the statistics)
    if stats.N == 0:
        return _failed(p, 0, 0, reml, "no observations")
    if not stats.finite:
        return _failed(p, stats.N, 0, reml, "non-finite values in y or X")
    return _solve(stats, reml, tol, maxiter)


# status codes of the compiled fit (:func:`_fit_c`)
_K_OK, _K_MAXITER, _K_BOUNDARY, _K_SINGULAR, _K_SINGULAR0, _K_SCALE0 = 0, 1, 2, 3, 4, 5
_K_ONE_PER_GROUP, _K_NO_DF, _K_SINGULAR_X, _K_EXACT = 6, 7, 8, 9
_FAILURES = {
    _K_SINGULAR: "singular matrix in the profile likelihood",
    _K_SINGULAR0: "singular matrix at gamma = 0",
    _K_SCALE0: "residual variance on boundary (0): cov_re / scale diverges (gamma > 1e10)",
    _K_ONE_PER_GROUP: "random intercept not identifiable (every group has one observation)",
    _K_NO_DF: "no residual degrees of freedom (N={N}, p={p})",
    _K_SINGULAR_X: "singular design matrix (collinear or all-zero columns)",
    _K_EXACT: "response is an exact linear function of X (zero residual)",
}


@njit
def _derivs_c(Wa, A, nk, mk, p, nu, reml, g, M, M1, M2, L, T, W1):
    """(ok, f, f', f'') of the profiled objective f(gamma) = -2 llf + const at gamma = g, L
    and T filled in.

    With M(gamma) = Wa + sum_k omega_k A_k = L L' (Cholesky, (p+1) x (p+1)) and T = L^-1,
    B_j = T M^(j) T' (M^(j) the j-th derivative in gamma): q = L_pp^2, q'/q = B1_pp,
    q''/q = B2_pp - 2 |B1[:p, p]|^2, and for REML d log|X'H^-1X| = tr B1[:p, :p],
    d2 log|X'H^-1X| = tr B2[:p, :p] - |B1[:p, :p]|_F^2 (Minv = T11' T11). So one Cholesky, one
    triangular inverse and two small products give f, f', f''.
    """
    p1 = p + 1
    K = nk.shape[0]
    for a in range(p1):
        for b in range(p1):
            M[a, b] = Wa[a, b]
            M1[a, b] = 0.0
            M2[a, b] = 0.0
    slog = 0.0
    snku = 0.0
    snku2 = 0.0
    for k in range(K):
        nkg = nk[k] * g
        u = 1.0 / (1.0 + nkg)
        nku = nk[k] * u
        o0 = u / nk[k]
        o1 = -u * u
        o2 = 2.0 * nku * u * u
        for a in range(p1):
            for b in range(p1):
                v = A[k, a, b]
                M[a, b] += o0 * v
                M1[a, b] += o1 * v
                M2[a, b] += o2 * v
        slog += math.log1p(nkg) * mk[k]
        snku += nku * mk[k]
        snku2 += nku * nku * mk[k]
    if cholesky(M, L) != 0:
        return False, 0.0, 0.0, 0.0
    tri_inv(L, T)
    # B = T M' T' (only the entries the formulas use): W1 = T M1, then rows of W1 T'
    b1pp = 0.0
    c1c1 = 0.0
    tr1 = 0.0
    fro1 = 0.0
    for a in range(p1):
        for b in range(p1):
            t = 0.0
            for k in range(a + 1):
                t += T[a, k] * M1[k, b]
            W1[a, b] = t
    for a in range(p1):
        for b in range(p1):
            t = 0.0
            for k in range(b + 1):
                t += W1[a, k] * T[b, k]
            if a == p and b == p:
                b1pp = t
            elif a < p and b == p:
                c1c1 += t * t
            elif a < p and b < p:
                fro1 += t * t
                if a == b:
                    tr1 += t
    for a in range(p1):
        for b in range(p1):
            t = 0.0
            for k in range(a + 1):
                t += T[a, k] * M2[k, b]
            W1[a, b] = t
    b2pp = 0.0
    tr2 = 0.0
    for a in range(p1):
        if a < p and not reml:
            continue
        t = 0.0
        for k in range(a + 1):
            t += W1[a, k] * T[a, k]
        if a == p:
            b2pp = t
        else:
            tr2 += t
    f = nu * 2.0 * math.log(L[p, p]) + slog
    f1 = nu * b1pp + snku
    f2 = nu * (b2pp - 2.0 * c1c1 - b1pp * b1pp) - snku2
    if reml:
        s = 0.0
        for a in range(p):
            s += math.log(L[a, a])
        f += 2.0 * s
        f1 += tr1
        f2 += tr2 - fro1
    return True, f, f1, f2


@njit
def _newton_c(Wa, A, nk, mk, p, nu, reml, theta, tol, maxiter, theta_lo, theta_hi):
    """The safeguarded Newton iteration of :func:`lmm_random_intercept` in one call.

    Returns (code, gamma, n_iter, f, f', f'', L, T) at the reported point.
    """
    p1 = p + 1
    M = np.empty((p1, p1))
    M1 = np.empty((p1, p1))
    M2 = np.empty((p1, p1))
    W1 = np.empty((p1, p1))
    L = np.zeros((p1, p1))
    T = np.zeros((p1, p1))
    L0 = np.zeros((p1, p1))
    T0 = np.zeros((p1, p1))
    lo, hi = theta_lo, theta_hi
    boundary_checked = False
    g = 0.0
    f = f1r = f2r = np.nan
    for it in range(1, maxiter + 1):
        g = math.exp(theta)
        ok, f, f1r, f2r = _derivs_c(Wa, A, nk, mk, p, nu, reml, g, M, M1, M2, L, T, W1)
        if not ok:
            return _K_SINGULAR, g, it, f, f1r, f2r, L, T
        if f1r > 0.0 and theta <= -5.0 and not boundary_checked:
            # f increasing at a small gamma: the optimum is the boundary if f'(0) >= 0
            boundary_checked = True
            ok0, g0, g1, g2 = _derivs_c(Wa, A, nk, mk, p, nu, reml, 0.0, M, M1, M2, L0, T0, W1)
            if not ok0:
                return _K_SINGULAR0, 0.0, it, g0, g1, g2, L0, T0
            if g1 >= 0.0:
                return _K_BOUNDARY, 0.0, it, g0, g1, g2, L0, T0
        d1 = g * f1r
        d2 = g * g * f2r + d1
        if d1 > 0.0:
            hi = theta
        else:
            lo = theta
        sc = max(1.0, abs(theta))
        if d2 > 0.0:
            step = -d1 / d2
            if abs(step) <= tol * sc:
                return _K_OK, g, it, f, f1r, f2r, L, T
            new = theta + min(max(step, -3.0), 3.0)  # trust region (theta is a log scale)
            if not lo < new < hi:
                new = 0.5 * (lo + hi)
        else:
            new = 0.5 * (lo + hi)
        if lo >= theta_hi - 1e-9:
            return _K_SCALE0, g, it, f, f1r, f2r, L, T
        if hi - lo <= 1e-14 * sc or hi <= theta_lo:
            return _K_OK, g, it, f, f1r, f2r, L, T
        theta = new
    return _K_MAXITER, g, maxiter, f, f1r, f2r, L, T


def _solve(st: WideStats, reml: bool, tol: float, maxiter: int) -> LMMResult:
    """The fit from the sufficient statistics (:func:`_fit_c`) -> LMMResult."""
    m = st.sizes.shape[0]
    p = st.Wa.shape[0] - 1
    code, gamma, n_iter, beta, cov_fe, bse, scale, llf, f2 = _fit_c(
        st.Wa,
        st.Za,
        st.sizes.astype(np.int64, copy=False),
        st.N,
        p,
        reml,
        st.c,
        st.xc,
        tol,
        maxiter,
        _THETA_LO,
        _THETA_HI,
    )
    if code in _FAILURES:
        return _failed(p, st.N, m, reml, _FAILURES[code].format(N=st.N, p=p))
    status, message, converged = STATUS_OK, "", True
    if code == _K_BOUNDARY:
        status, message = STATUS_WARNING, "random-intercept variance on boundary (0)"
    elif code == _K_MAXITER:
        status, message = STATUS_FAILED, "profile likelihood optimisation did not converge"
        converged = False
    # curvature in gamma of the scale-profiled log-likelihood (fixed effects profiled out)
    hgg = -0.5 * f2
    return LMMResult(
        fe_params=beta,
        bse_fe=bse,
        cov_fe=cov_fe,
        cov_re=gamma * scale,
        scale=scale,
        gamma=gamma,
        bse_re=math.sqrt(-scale / hgg) if hgg < 0 else math.nan,
        llf=llf,
        reml=reml,
        nobs=st.N,
        n_groups=m,
        n_iter=n_iter,
        converged=converged,
        status=status,
        message=message,
    )


@njit
def _fit_c(Wa, Za0, sizes, N, p, reml, c, xc, tol, maxiter, theta_lo, theta_hi):
    """The whole fit from the sufficient statistics in one compiled call:
    (code, gamma, n_iter, beta, cov_fe, bse, scale, llf, f'') (NaN estimates unless code is
    _K_OK, _K_MAXITER or _K_BOUNDARY).

    1. With an intercept (column ``c`` of X, equal to ``xc`` on every observed row) the other
       columns of [X, y] are centred at their means (Za - n_i mu; Wa unchanged): a
       reparameterisation with unit Jacobian that leaves q and log|X'H^-1X| as they are but
       keeps the between-group cross-products well conditioned (covariates like age ~ 60 and
       y otherwise cost ~4 digits of f).
    2. Checks (every group of one observation, no residual df) and :func:`_between_c`.
    3. :func:`_newton_c` from the moment estimate (theta = log gamma0, at least -6).
    4. At the optimum: beta = -L_pp T[p, :p] (from M [beta, -1]' = [0, -q]'), (X'H^-1X)^-1 =
       T11' T11, the centring undone (beta_c += (mu_y - mu_X' beta) / xc), scale = q / nu,
       cov_fe = scale (X'H^-1X)^-1, llf = -f/2 - nu/2 (log 2 pi - log nu + 1).
    """
    m, p1 = Za0.shape
    beta = np.full(p, np.nan)
    cov = np.full((p, p), np.nan)
    bse = np.full(p, np.nan)
    nan = np.nan
    Za = Za0.copy()
    mu = np.zeros(p1)
    if c >= 0:
        for g in range(m):
            for a in range(p1):
                mu[a] += Za0[g, a]
        for a in range(p1):
            mu[a] = mu[a] / N
        mu[c] = 0.0
        for g in range(m):
            for a in range(p1):
                Za[g, a] = Za0[g, a] - sizes[g] * mu[a]
        for a in range(p1):
            mu[a] = mu[a] / xc
    smax = 0
    for g in range(m):
        smax = max(smax, sizes[g])
    if smax < 2:
        return _K_ONE_PER_GROUP, nan, 0, beta, cov, bse, nan, nan, nan
    if N - p <= 0:
        return _K_NO_DF, nan, 0, beta, cov, bse, nan, nan, nan
    A, nk, mk, code, gamma0 = _between_c(Wa, Za, sizes, N, p)
    if code == 1:
        return _K_SINGULAR_X, nan, 0, beta, cov, bse, nan, nan, nan
    if code == 2:
        return _K_EXACT, nan, 0, beta, cov, bse, nan, nan, nan
    nu = float(N - p) if reml else float(N)
    theta = math.log(gamma0) if gamma0 > math.exp(-6.0) else -6.0
    theta = min(theta, theta_hi - 1.0)
    code, g, it, f, f1, f2, L, T = _newton_c(
        Wa, A, nk, mk, p, nu, reml, theta, tol, maxiter, theta_lo, theta_hi
    )
    if code == _K_SINGULAR or code == _K_SINGULAR0 or code == _K_SCALE0:
        return code, nan, it, beta, cov, bse, nan, nan, nan
    if code == _K_BOUNDARY:
        g = 0.0
    lpp = L[p, p]
    q = lpp * lpp
    for a in range(p):
        beta[a] = -lpp * T[p, a]
    Minv = np.empty((p, p))
    for a in range(p):
        for b in range(a + 1):
            t = 0.0
            for k in range(a, p):
                t += T[k, a] * T[k, b]
            Minv[a, b] = t
            Minv[b, a] = t
    if c >= 0:
        mb = 0.0
        for a in range(p):
            mb += mu[a] * beta[a]
        beta[c] += mu[p] - mb
        w = np.zeros(p)
        for a in range(p):
            for b in range(p):
                w[a] += Minv[a, b] * mu[b]
        for b in range(p):
            Minv[c, b] -= w[b]
        for a in range(p):
            Minv[a, c] -= w[a]
        mw = 0.0
        for a in range(p):
            mw += mu[a] * w[a]
        Minv[c, c] += mw
    scale = q / nu
    llf = -0.5 * f - 0.5 * nu * _LOG2PI + 0.5 * nu * math.log(nu) - 0.5 * nu
    for a in range(p):
        for b in range(p):
            cov[a, b] = Minv[a, b] * scale
        bse[a] = math.sqrt(cov[a, a])
    return code, g, it, beta, cov, bse, scale, llf, f2
