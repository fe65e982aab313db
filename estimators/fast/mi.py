"""Compiled imputation chains of ``mi_ancova`` (:func:`estimators.longitudinal.mice_impute`,
fast engine): every Bayesian regression of every chain, cycle and visit in one numba call.

The numpy path (``mice_impute`` with ``engine="fast"`` before this kernel) spent ~20 small
numpy calls per regression (cross-products, one batched Cholesky of the augmented matrix of
:func:`estimators.fast.bayes.posterior_parts`, the draws, the fills) and ran 20 regressions per
fit (4 visits x 5 cycles); here the whole chain is one loop over preallocated arrays.

Random numbers: all drawn with the caller's numpy Generator **before** the kernel runs, in
exactly the order the numpy path draws them while it goes (per regression, in cycle then visit
order: ``chisquare(n_obs - p, m)`` then ``standard_normal((m, p + n_missing))``; the chained
start's ``integers`` before any of them), so the numbers, and hence the imputations up to
floating-point summation order, are those of the numpy path whatever the number of workers.

Arithmetic per regression and chain (the same as ``posterior_parts``): M = [X y]'[X y] (the
cross-products of the rows that are the same in every chain computed once), equilibrated to a
unit diagonal, its Cholesky factor [[Rs', 0], [w', s]] gives beta_s = Rs^-1 w, rss = s^2 and
R^-1 = D^-1 Rs^-1; beta* = beta_hat + sigma* R^-1 z, sigma*^2 = rss / chi2. The acceptance
tests of ``posterior_parts`` are applied (positive finite diagonal, positive pivots, the
diagonal-ratio bounds ``COND_RATIO`` and ``rank_tol``, and a bound that keeps its augmented
matrix positive definite); when one fails the kernel stops and reports the regression, and the
caller reruns the numpy path from the saved generator state (which then decides through the QR
path, rank deficiency and messages included), so results and failures are unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from ._small import chol_inverse, cholesky, rank_bound
from .bayes import BIG, COND_RATIO

RANK_TOL = 1e-10  # posterior_parts' default rank_tol (the QR path's threshold)


@njit
def posterior(Ms, Ls, Ts, da, bs, bh, Rinv, p, rank_tol):
    """Least squares from the cross-products Ms = [X y]'[X y] ((p + 1) square, lower triangle
    read, overwritten by its equilibrated copy), as :func:`estimators.fast.bayes.
    posterior_parts` computes it: beta_hat into bh[:p], R^-1 into Rinv[:p, :p] (upper;
    X'X = R'R), returns rss, or -1.0 when posterior_parts would not accept the factorisation
    (then the QR path decides). Work arrays: Ls ((p + 1) square), Ts (p square), da (p + 1),
    bs (p). Divisions are done once per pivot (reciprocals): rounding differs from numpy's
    batched Cholesky in the last bits only."""
    q1 = p + 1
    for a in range(q1):
        d2 = Ms[a, a]
        if not (d2 > 0.0 and d2 < np.inf):
            return -1.0
        da[a] = math.sqrt(d2)
    for a in range(q1):
        Ls[a, a] = 1.0 / da[a]  # the scales' reciprocals, parked on L's diagonal until used
    for a in range(q1):
        for b in range(a + 1):
            Ms[a, b] = Ms[a, b] * (Ls[a, a] * Ls[b, b])
    # Cholesky (lower, Banachiewicz) of the equilibrated Ms; Ts's diagonal holds 1 / pivots
    for j in range(q1):
        sj = Ms[j, j]
        for c in range(j):
            sj -= Ls[j, c] * Ls[j, c]
        if not sj > 0.0:
            return -1.0
        dj = math.sqrt(sj)
        inv = 1.0 / dj
        Ls[j, j] = dj
        if j < p:
            Ts[j, j] = inv
        for i in range(j + 1, q1):
            t = Ms[i, j]
            for c in range(j):
                t -= Ls[i, c] * Ls[j, c]
            Ls[i, j] = t * inv
    # diagonal-ratio bounds, equilibrated and unscaled |diag R|
    e_lo = e_hi = Ls[0, 0]
    u_lo = u_hi = Ls[0, 0] * da[0]
    for a in range(1, p):
        e = Ls[a, a]
        u = e * da[a]
        e_lo, e_hi = min(e_lo, e), max(e_hi, e)
        u_lo, u_hi = min(u_lo, u), max(u_hi, u)
    if not (e_lo / e_hi > COND_RATIO and u_lo / u_hi > rank_tol):
        return -1.0
    # Ts = (Rs')^-1 (lower), with the pivots' reciprocals already on its diagonal
    for j in range(p):
        for i in range(j + 1, p):
            t = 0.0
            for c in range(j, i):
                t -= Ls[i, c] * Ts[c, j]
            Ts[i, j] = t * Ts[i, i]
    # beta_s = Rs^-1 w (w' = Ls[p, :p]); Rs^-1 = Ts'
    sl = Ls[p, p]
    fro = 0.0
    for a in range(p):
        acc = 0.0
        for b in range(a, p):
            acc += Ts[b, a] * Ls[p, b]
            fro += Ts[b, a] * Ts[b, a]
        bs[a] = acc
    nb = 0.0
    for a in range(p):
        nb += bs[a] * bs[a]
    if not fro + nb / (sl * sl) < BIG:  # posterior_parts' augmented matrix PD
        return -1.0
    dy = da[p]
    for a in range(p):
        ia = 1.0 / da[a]
        bh[a] = bs[a] * dy * ia
        for b in range(p):
            Rinv[a, b] = Ts[b, a] * ia if b >= a else 0.0
    sd = sl * dy
    return sd * sd


@njit
def _chains(X, Y, k, steps, tcol, cols, pcnt, vrows, nv, rrows, nr, Mc, chi2, z, zoff, rank_tol):
    """Run the regressions ``steps`` (indices into the per-column plan) on the chains' state
    ``X`` (m, n, k + q) in place. Plan of column t: visit tcol[t], predictors cols[t, :pcnt[t]]
    (indices into X's last axis), rows varying between chains vrows[t, :nv[t]] (donors with an
    imputed predictor), recipients rrows[t, :nr[t]], cross-products of the other donor rows
    Mc[t, :p + 1, :p + 1]. Draws of step s: chi2[s, :] and the (m, p + nr) normals in C order
    at z[zoff[s]:]. Returns 0, or
    s + 1 when step s's factorisation is not accepted (X is then left part-way). Y: the
    observed visits (NaN = imputed), X[0]'s observed values are every chain's."""
    m = X.shape[0]
    pmax = cols.shape[1]
    M = np.empty((pmax + 1, pmax + 1))
    L = np.empty((pmax + 1, pmax + 1))
    T = np.empty((pmax, pmax))
    xa = np.empty(pmax + 1)
    da = np.empty(pmax + 1)
    bs = np.empty(pmax)
    bh = np.empty(pmax)
    bst = np.empty(pmax)
    Rinv = np.empty((pmax, pmax))
    rss = 0.0
    # the varying rows' products of two values observed there (the same in every chain) are
    # added to the common cross-products once; per chain only those with an imputed value
    nt, vmax = vrows.shape
    Mf = Mc.copy()
    imp = np.zeros((nt, vmax, pmax + 1), np.bool_)  # imputed predictor of varying row v
    for t in range(nt):
        p = pcnt[t]
        for v in range(nv[t]):
            r = vrows[t, v]
            for c in range(p):
                imp[t, v, c] = cols[t, c] >= k and np.isnan(Y[r, cols[t, c] - k])
                xa[c] = X[0, r, cols[t, c]]
            xa[p] = Y[r, tcol[t]]
            for a in range(p + 1):
                if not imp[t, v, a]:
                    for b in range(a + 1):
                        if not imp[t, v, b]:
                            Mf[t, a, b] += xa[a] * xa[b]
    for s in range(steps.size):
        t = steps[s]
        j = tcol[t]
        p = pcnt[t]
        q1 = p + 1
        Ms = M[:q1, :q1]
        Ls = L[:q1, :q1]
        Ts = T[:p, :p]
        shared = nv[t] == 0
        for i in range(m):
            if not shared or i == 0:
                # cross-products: common rows + this chain's varying rows
                for a in range(q1):
                    for b in range(a + 1):
                        Ms[a, b] = Mf[t, a, b]
                for v in range(nv[t]):
                    r = vrows[t, v]
                    for c in range(p):
                        xa[c] = X[i, r, cols[t, c]]
                    xa[p] = Y[r, j]
                    for a in range(p):
                        if imp[t, v, a]:  # products with an imputed value, each pair once
                            xv = xa[a]
                            for b in range(q1):
                                if b <= a or not imp[t, v, b]:
                                    Ms[max(a, b), min(a, b)] += xv * xa[b]
                rss = posterior(Ms, Ls, Ts, da, bs, bh, Rinv, p, rank_tol)
                if rss < 0.0:
                    return s + 1
            sigma = math.sqrt(rss / chi2[s, i])
            zi = z[zoff[s] + i * (p + nr[t]) : zoff[s] + (i + 1) * (p + nr[t])]
            for a in range(p):
                acc = 0.0
                for b in range(a, p):
                    acc += Rinv[a, b] * zi[b]
                bst[a] = bh[a] + sigma * acc
            for rr in range(nr[t]):
                r = rrows[t, rr]
                acc = 0.0
                for c in range(p):
                    acc += X[i, r, cols[t, c]] * bst[c]
                X[i, r, k + j] = acc + sigma * zi[p + rr]
    return 0


def _pad(rows: list, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Ragged integer lists as (padded (len, max), counts)."""
    width = max([len(r) for r in rows] + [1])
    out = np.zeros((len(rows), width), dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, np.array([len(r) for r in rows], np.int64)


def impute_chains(Y: np.ndarray, P: np.ndarray, rng: np.random.Generator, m: int, cycles: int):
    """The m completed copies (m, n, q) of ``Y`` as :func:`estimators.longitudinal.
    mice_impute` (fast engine) computes them, or None when a regression needs the numpy path
    (too few observed values, or a factorisation the kernel does not accept): the generator is
    then left where it was on entry, so the caller can rerun the numpy path with the same
    numbers. Random numbers: module docstring."""
    n, q = Y.shape
    k = P.shape[1]
    miss = np.isnan(Y)
    todo = [j for j in range(q) if miss[:, j].any()]
    X = np.empty((m, n, k + q))
    X[:, :, :k] = P
    X[:, :, k:] = Y
    if not todo:
        return X[:, :, k:].copy()
    monotone = not np.any(miss[:, :-1] & ~miss[:, 1:])
    plan_cols, vrows, rrows, Mc = [], [], [], []
    if monotone:
        for j in todo:
            o = ~miss[:, j]
            plan_cols.append(np.arange(k + j))
            vrows.append([])
            rrows.append(np.flatnonzero(~o))
            Xa = np.column_stack([X[0, o, : k + j], Y[o, j]])
            Mc.append(Xa.T @ Xa)
        steps = np.arange(len(todo))
    else:
        n_miss = miss.sum(axis=1)
        for j in todo:
            r = miss[:, j]
            cols = np.array([c for c in range(k + q) if c != k + j])
            fixed = ~r & (n_miss == 0)
            plan_cols.append(cols)
            vrows.append(np.flatnonzero(~r & (n_miss > 0)))
            rrows.append(np.flatnonzero(r))
            Xa = np.column_stack([X[0, fixed][:, cols], Y[fixed, j]])
            Mc.append(Xa.T @ Xa)
        steps = np.tile(np.arange(len(todo)), cycles)
    pcnt = np.array([c.size for c in plan_cols], np.int64)
    nobs = np.array([n - len(r) for r in rrows])
    if np.any(nobs - pcnt < 1):
        return None  # bayes_draws raises its "too few observed values"
    state = rng.bit_generator.state
    if not monotone:  # the chained start: random observed values, column by column
        V = X[:, :, k:]
        for j in todo:
            obs = Y[~miss[:, j], j]
            V[:, miss[:, j], j] = obs[rng.integers(0, obs.size, size=(m, int(miss[:, j].sum())))]
    cols_a, _ = _pad(plan_cols)
    vr, nv = _pad(vrows)
    rr, nr = _pad(rrows)
    pmax = int(pcnt.max())
    Mca = np.zeros((len(todo), pmax + 1, pmax + 1))
    for t, M in enumerate(Mc):
        Mca[t, : pcnt[t] + 1, : pcnt[t] + 1] = M
    S = steps.size
    chi2 = np.empty((S, m))
    width = m * (pcnt + nr)[steps]
    zoff = np.zeros(S + 1, np.int64)
    np.cumsum(width, out=zoff[1:])
    z = np.empty(zoff[-1])
    df = (nobs - pcnt).tolist()
    for s, t in enumerate(steps.tolist()):  # the numpy path's draws, in its order
        chi2[s] = rng.chisquare(df[t], size=m)
        rng.standard_normal(out=z[zoff[s] : zoff[s + 1]])  # = standard_normal((m, p + n_r))
    tcol = np.array(todo, np.int64)
    Yf = np.ascontiguousarray(Y, dtype=float)
    if _chains(X, Yf, k, steps, tcol, cols_a, pcnt, vr, nv, rr, nr, Mca, chi2, z, zoff, RANK_TOL):
        rng.bit_generator.state = state
        return None
    return X[:, :, k:].copy()


@njit
def _ancova(Y, X, out):
    """The m analyses of :func:`estimators.engines.ancova_batch`'s fast path in one pass:
    OLS of each row of Y (m, n) on the shared design X (n, p) (column 1 = group 0/1) through
    the equilibrated Cholesky of :func:`estimators.fast.bayes.ols_shared_design`; out[0] the
    group coefficients, out[1] their classical SEs. False (out unusable) unless every check of
    that path certainly passes: finite, non-constant responses, both arms, full rank certified
    by the bound of :func:`estimators.design.certainly_full_rank`, a residual df, the
    conditioning switch, a non-degenerate residual variance."""
    m, n = Y.shape
    p = X.shape[1]
    if n - p < 1:
        return False
    arm0 = arm1 = False
    for r in range(n):
        for c in range(p):
            if not np.isfinite(X[r, c]):
                return False
        arm0 |= X[r, 1] == 0
        arm1 |= X[r, 1] == 1
    if not (arm0 and arm1):
        return False
    for i in range(m):
        lo = hi = Y[i, 0]
        for r in range(n):
            v = Y[i, r]
            if not np.isfinite(v):
                return False
            lo, hi = min(lo, v), max(hi, v)
        if not hi > lo:
            return False
    lam, smin, smax = rank_bound(X, True)
    if not (lam > 1e-6 and smin > 1e3 * smax * max(n, p) * 2.220446049250313e-16):
        return False
    G = np.zeros((p, p))
    for r in range(n):
        for a in range(p):
            for b in range(a + 1):
                G[a, b] += X[r, a] * X[r, b]
    s = np.empty(p)
    for a in range(p):
        d = math.sqrt(G[a, a])
        if not (d > 0.0 and d < np.inf):
            return False
        s[a] = 1.0 / d
    for a in range(p):
        for b in range(a + 1):
            G[a, b] = G[a, b] * (s[a] * s[b])
            G[b, a] = G[a, b]
    Lc = np.empty((p, p))
    if cholesky(G, Lc) != 0:
        return False
    dmin = dmax = Lc[0, 0]
    for a in range(1, p):
        dmin, dmax = min(dmin, Lc[a, a]), max(dmax, Lc[a, a])
    if dmin <= 1e-4 * dmax:
        return False
    C = chol_inverse(Lc)
    for a in range(p):
        for b in range(p):
            C[a, b] = C[a, b] * (s[a] * s[b])
    xy = np.empty(p)
    beta = np.empty(p)
    for i in range(m):
        for a in range(p):
            acc = 0.0
            for r in range(n):
                acc += Y[i, r] * X[r, a]
            xy[a] = acc
        for a in range(p):
            acc = 0.0
            for b in range(p):
                acc += xy[b] * C[b, a]
            beta[a] = acc
        rss = 0.0
        mean = 0.0
        for r in range(n):
            acc = 0.0
            for a in range(p):
                acc += beta[a] * X[r, a]
            e = Y[i, r] - acc
            rss += e * e
            mean += Y[i, r]
        mean /= n
        var = 0.0
        for r in range(n):
            var += (Y[i, r] - mean) ** 2
        var /= n
        scale = rss / (n - p)
        if not (np.isfinite(scale) and scale > 1e-12 * max(var, 1e-300)):
            return False
        out[0, i] = beta[1]
        out[1, i] = math.sqrt(scale * C[1, 1])
    return True


def ancova_rows(Y: np.ndarray, X: np.ndarray):
    """(group estimates (m,), SEs (m,), residual df) of the m week-12 ANCOVAs as
    :func:`estimators.engines.ancova_batch` (fast) gives them, or None when it must decide
    (a check not certainly passed: it then falls back or raises as before)."""
    out = np.empty((2, Y.shape[0]))
    Yc = np.ascontiguousarray(Y, dtype=float)
    if not _ancova(Yc, np.ascontiguousarray(X, dtype=float), out):
        return None
    return out[0], out[1], float(X.shape[0] - X.shape[1])
