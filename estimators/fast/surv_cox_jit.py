"""Compiled Cox kernels of :func:`estimators.fast.cox.cox_fit`: the whole damped Newton loop
(Efron or Breslow ties, case weights, the convergence rule) and the Lin-Wei sandwich from the
score residuals, in one call per fit.

The data come sorted by time, censorings before deaths at the same time (``np.lexsort((event,
time))``), covariates centred. Death groups (the deaths at one distinct time) are the last rows
of their time block; the risk set of group k is every row from its block's first row
``bs[k]`` on. One derivative evaluation is a backward pass over the rows accumulating the
risk-set sums S0, S1, S2 (weighted by exp(eta) w), with the Efron sub-terms
den_r = S0 - (r / d) D0 (D: the sums over the group's deaths, weighted by the mean death
weight), the quantities of the former numpy ``_efron_derivs`` (agreeing to ~1e-12); nothing of
size n x p x p is formed.

Codes returned by :func:`cox_newton` (the Python wrapper turns them into the messages):
``msg`` 0 none, 1 "line search failed", 2 "singular information matrix"; ``singular0`` True when
the rank check at beta = 0 failed (collinear covariates).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from ._small import chol_inverse, chol_solve, cholesky, dot4
from ._ties import tie_order

#: from this many covariates on, :func:`_derivs` sums the information's Gram matrices by BLAS
_BLAS_P = 3

MSG_NONE = 0
MSG_LINE_SEARCH = 1
MSG_SINGULAR = 2


@njit
def death_groups(ts, ev):
    """(gs, ge, bs, ng): death group k is rows gs[k] .. ge[k] - 1, its time block starts at bs[k]."""
    n = ts.shape[0]
    gs = np.empty(n, dtype=np.int64)
    ge = np.empty(n, dtype=np.int64)
    bs = np.empty(n, dtype=np.int64)
    ng = 0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and ts[j + 1] == ts[i]:
            j += 1
        # block i .. j; deaths are its last rows
        k = j
        while k >= i and ev[k]:
            k -= 1
        if k < j:
            bs[ng] = i
            gs[ng] = k + 1
            ge[ng] = j + 1
            ng += 1
        i = j + 1
    return gs[:ng], ge[:ng], bs[:ng]


@njit
def _workspace(n, p, ng):
    """The arrays one :func:`_derivs` call fills (allocated once per fit): ew (n), u (n),
    V (p, n), the per-group S1 and tied-death D1 sums M, Dm (p, ng), their weighted copies
    Y, Z (p, ng) and the per-group scalars A, B, C, E, F (5, ng). Dm starts at zero and only
    the columns of groups with tied deaths are ever written (the same groups at every beta)."""
    return (
        np.empty(n),
        np.empty(n),
        np.empty((p, n)),
        np.empty((p, ng)),
        np.zeros((p, ng)),
        np.empty((p, ng)),
        np.empty((p, ng)),
        np.zeros((5, ng)),
    )


@njit
def _derivs(X, Xt, w, weighted, gs, ge, bs, wsum, efron, xdw, wsum_d, beta, work, info, grad):
    """Log partial likelihood at beta; the gradient into ``grad`` and the information (minus
    the Hessian) into ``info``. Returns (ll, finite) with finite: info has no inf/NaN.

    ``X`` (n, p) and ``Xt`` (p, n): the sorted, centred covariates in both layouts. Death group
    k (d tied deaths, weight sum W, mean death weight wb = W / d; risk-set sums S0, S1, S2 and
    death sums D0, D1, D2 weighted by exp(eta) w) has the Efron terms r = 0 .. d - 1 with
    f_r = r / d, den_r = S0 - f_r D0, a_r = wb / den_r (Breslow, or d = 1: one term, f = 0,
    weight W):

        ll   -= sum_r wb log den_r
        grad -= sum_r a_r (S1 - f_r D1)                          = A S1 - B D1
        info += sum_r a_r (S2 - f_r D2 - (S1 - f_r D1)(S1 - f_r D1)' / den_r)
              = A S2 - B D2 - C S1 S1' + E (S1 D1' + D1 S1') - F D1 D1'

    with A, B, C, E, F = sum_r of a_r, a_r f_r, a_r / den_r, a_r f_r / den_r, a_r f_r^2 / den_r.
    The second moments are never formed per group: sum_k (A_k S2_k - B_k D2_k) =
    sum_i exp(eta_i) w_i (H_i - B_k(i)) x_i x_i', with H_i the sum of A_k over the risk sets
    holding row i and B_k(i) for the deaths of group k (0 for the other rows); the rest is
    sum_k of the rank-one terms. Both are weighted Gram matrices, summed by :func:`dot4`.
    Cost O((n + groups) p^2) whatever the ties.
    """
    n, p = X.shape
    if p == 1:
        return _derivs1(
            Xt[0], w, weighted, gs, ge, bs, wsum, efron, xdw, wsum_d, beta, work, info, grad
        )
    ng = gs.shape[0]
    ew, u, V, M, Dm, Y, Z, sc = work
    emax = -np.inf
    for i in range(n):
        s = 0.0
        for a in range(p):
            s += X[i, a] * beta[a]
        ew[i] = s
        if s > emax:
            emax = s
    shift = emax if emax > 300.0 else 0.0  # guard exp overflow (X is centred: rarely needed)
    # exp(eta - shift), remembered for the last two distinct eta: a binary covariate alone
    # (the unadjusted treatment effect) has two, so two exponentials instead of n (same bits)
    s0 = s1 = np.nan
    v0 = v1 = 0.0
    for i in range(n):
        s = ew[i]
        if s == s0:
            v = v0
        elif s == s1:
            v = v1
        else:
            v = math.exp(s - shift)
            s1, v1 = s0, v0
            s0, v0 = s, v
        ew[i] = v * w[i] if weighted else v
    S1 = np.zeros(p)
    D1 = np.zeros(p)
    for a in range(p):
        grad[a] = xdw[a]
    S0 = 0.0
    ll = 0.0
    ties = False
    ptr = n
    for k in range(ng - 1, -1, -1):  # backward: risk-set sums, per-group scalars
        for i in range(ptr - 1, bs[k] - 1, -1):
            e = ew[i]
            S0 += e
            for a in range(p):
                S1[a] += e * X[i, a]
        ptr = bs[k]
        for a in range(p):
            M[a, k] = S1[a]
        d = ge[k] - gs[k]
        if efron and d > 1:
            ties = True
            D0 = 0.0
            for a in range(p):
                D1[a] = 0.0
            for i in range(gs[k], ge[k]):
                e = ew[i]
                D0 += e
                for a in range(p):
                    D1[a] += e * X[i, a]
            wb = wsum[k] / d
            A = 0.0
            B = 0.0
            C = 0.0
            E = 0.0
            F = 0.0
            for r in range(d):
                f = r / d
                den = S0 - f * D0
                q = wb / den
                ll -= wb * math.log(den)
                c = q / den
                A += q
                B += q * f
                C += c
                E += c * f
                F += c * f * f
            for a in range(p):
                Dm[a, k] = D1[a]
                grad[a] -= A * S1[a] - B * D1[a]
        else:
            wk = wsum[k]
            A = wk / S0
            ll -= wk * math.log(S0)
            B = 0.0
            C = A / S0
            E = 0.0
            F = 0.0
            for a in range(p):  # (Dm[:, k] stays 0 from the workspace: ties do not move)
                grad[a] -= A * S1[a]
        sc[0, k] = A
        sc[1, k] = B
        sc[2, k] = C
        sc[3, k] = E
        sc[4, k] = F
    # forward: u_i = exp(eta_i) w_i (H_i - B_k(i)); rows before the first risk set get 0
    H = 0.0
    for i in range(bs[0] if ng else n):
        u[i] = 0.0
    for k in range(ng):
        H += sc[0, k]
        end = bs[k + 1] if k + 1 < ng else n
        for i in range(bs[k], end):
            u[i] = ew[i] * H
        for i in range(gs[k], ge[k]):
            u[i] = ew[i] * (H - sc[1, k])
    for a in range(p):
        for i in range(n):
            V[a, i] = u[i] * Xt[a, i]
        for k in range(ng):
            Y[a, k] = sc[2, k] * M[a, k] - sc[3, k] * Dm[a, k]
        if ties:  # (Z is read only with tied deaths)
            for k in range(ng):
                Z[a, k] = sc[4, k] * Dm[a, k] - sc[3, k] * M[a, k]
    s = 0.0
    for a in range(p):
        s += xdw[a] * beta[a]
    ll += s - shift * wsum_d
    finite = True
    if p >= _BLAS_P:  # the weighted Gram matrices by BLAS (three p x p products)
        G = np.dot(V, Xt.T)
        H = np.dot(Y, M.T)
        if ties:
            H += np.dot(Z, Dm.T)
        for a in range(p):
            for b in range(a + 1):
                v = G[a, b] - H[a, b]
                info[a, b] = v
                info[b, a] = v
                if not (v - v == 0.0):
                    finite = False
        return ll, finite
    for a in range(p):
        for b in range(a + 1):
            v = dot4(V[a], Xt[b], n) - dot4(Y[a], M[b], ng)
            if ties:
                v -= dot4(Z[a], Dm[b], ng)
            info[a, b] = v
            info[b, a] = v
            if not (v - v == 0.0):
                finite = False
    return ll, finite


@njit
def _derivs1(x, w, weighted, gs, ge, bs, wsum, efron, xdw, wsum_d, beta, work, info, grad):
    """:func:`_derivs` for one covariate ``x`` (n,): the same sums in the same order (the same
    bits) on scalars and 1-d rows: 3.5 instead of 4.5 us an evaluation at n = 205 (the unadjusted
    treatment effect)."""
    n = x.shape[0]
    ng = gs.shape[0]
    ew, u, V2, M2, Dm2, Y2, Z2, sc = work
    v, m, dm, y, z = V2[0], M2[0], Dm2[0], Y2[0], Z2[0]
    b = beta[0]
    emax = -np.inf
    for i in range(n):
        s = 0.0
        s += x[i] * b
        ew[i] = s
        if s > emax:
            emax = s
    shift = emax if emax > 300.0 else 0.0
    s0 = s1 = np.nan
    v0 = v1 = 0.0
    for i in range(n):
        s = ew[i]
        if s == s0:
            e = v0
        elif s == s1:
            e = v1
        else:
            e = math.exp(s - shift)
            s1, v1 = s0, v0
            s0, v0 = s, e
        ew[i] = e * w[i] if weighted else e
    S1 = 0.0
    g = xdw[0]
    S0 = 0.0
    ll = 0.0
    ties = False
    ptr = n
    for k in range(ng - 1, -1, -1):
        for i in range(ptr - 1, bs[k] - 1, -1):
            e = ew[i]
            S0 += e
            S1 += e * x[i]
        ptr = bs[k]
        m[k] = S1
        d = ge[k] - gs[k]
        if efron and d > 1:
            ties = True
            D0 = 0.0
            D1 = 0.0
            for i in range(gs[k], ge[k]):
                e = ew[i]
                D0 += e
                D1 += e * x[i]
            wb = wsum[k] / d
            A = 0.0
            B = 0.0
            C = 0.0
            E = 0.0
            F = 0.0
            for r in range(d):
                f = r / d
                den = S0 - f * D0
                q = wb / den
                ll -= wb * math.log(den)
                c = q / den
                A += q
                B += q * f
                C += c
                E += c * f
                F += c * f * f
            dm[k] = D1
            g -= A * S1 - B * D1
        else:
            wk = wsum[k]
            A = wk / S0
            ll -= wk * math.log(S0)
            B = 0.0
            C = A / S0
            E = 0.0
            F = 0.0
            g -= A * S1  # (dm[k] stays 0 from the workspace)
        sc[0, k] = A
        sc[1, k] = B
        sc[2, k] = C
        sc[3, k] = E
        sc[4, k] = F
    grad[0] = g
    H = 0.0
    for i in range(bs[0] if ng else n):
        u[i] = 0.0
    for k in range(ng):
        H += sc[0, k]
        end = bs[k + 1] if k + 1 < ng else n
        for i in range(bs[k], end):
            u[i] = ew[i] * H
        for i in range(gs[k], ge[k]):
            u[i] = ew[i] * (H - sc[1, k])
    for i in range(n):
        v[i] = u[i] * x[i]
    for k in range(ng):
        y[k] = sc[2, k] * m[k] - sc[3, k] * dm[k]
    if ties:
        for k in range(ng):
            z[k] = sc[4, k] * dm[k] - sc[3, k] * m[k]
    s = 0.0
    s += xdw[0] * b
    ll += s - shift * wsum_d
    val = dot4(v, x, n) - dot4(y, m, ng)
    if ties:
        val -= dot4(z, dm, ng)
    info[0, 0] = val
    return ll, val - val == 0.0


@njit
def score_residuals_sorted(X, w, weighted, gs, ge, bs, wsum, efron, beta):
    """Unweighted per-row score residuals (sorted order) as R's ``coxscore``: the numpy
    :func:`estimators.fast.cox._score_residuals_sorted` as two passes over the rows."""
    n, p = X.shape
    ng = gs.shape[0]
    e = np.empty(n)
    emax = -np.inf
    for i in range(n):
        s = 0.0
        for a in range(p):
            s += X[i, a] * beta[a]
        e[i] = s
        if s > emax:
            emax = s
    for i in range(n):
        e[i] = math.exp(e[i] - emax)  # residuals are invariant to a common factor
    # risk-set sums at each death group (backward pass)
    S0k = np.empty(ng)
    S1k = np.empty((ng, p))
    D0k = np.empty(ng)
    D1k = np.empty((ng, p))
    S0 = 0.0
    S1 = np.zeros(p)
    ptr = n
    for k in range(ng - 1, -1, -1):
        for i in range(ptr - 1, bs[k] - 1, -1):
            v = e[i] * w[i] if weighted else e[i]
            S0 += v
            for a in range(p):
                S1[a] += v * X[i, a]
        ptr = bs[k]
        S0k[k] = S0
        D0 = 0.0
        for a in range(p):
            S1k[k, a] = S1[a]
            D1k[k, a] = 0.0
        for i in range(gs[k], ge[k]):
            v = e[i] * w[i] if weighted else e[i]
            D0 += v
            for a in range(p):
                D1k[k, a] += v * X[i, a]
        D0k[k] = D0
    # forward pass: cumulative hazard increments and their x-bar weighted sums
    resid = np.zeros((n, p))
    A = 0.0
    B = np.zeros(p)
    cB = np.zeros(p)
    xm = np.zeros(p)
    xb = np.zeros(p)
    for k in range(ng):
        d = ge[k] - gs[k]
        wb = wsum[k] / d
        cA = 0.0
        for a in range(p):
            cB[a] = 0.0
            xm[a] = 0.0
        for r in range(d):
            f = r / d if efron else 0.0
            den = S0k[k] - f * D0k[k]
            h = wb / den
            A += h
            cA += f * h
            for a in range(p):
                xb[a] = (S1k[k, a] - f * D1k[k, a]) / den
                B[a] += h * xb[a]
                cB[a] += f * h * xb[a]
                xm[a] += xb[a]
        for a in range(p):
            xm[a] /= d
        end = bs[k + 1] if k + 1 < ng else n
        for j in range(bs[k], end):
            dead = gs[k] <= j and j < ge[k]
            aj = A - cA if dead else A
            for a in range(p):
                bj = B[a] - cB[a] if dead else B[a]
                r_ = -e[j] * (X[j, a] * aj - bj)
                if dead:
                    r_ += X[j, a] - xm[a]
                resid[j, a] = r_
    return resid


@njit
def _sandwich(resid, w, weighted, cov):
    """D'D with D = diag(w) resid cov (R's robust covariance), as cov (R'R) cov."""
    n, p = resid.shape
    M = np.zeros((p, p))
    for i in range(n):
        wi = w[i] if weighted else 1.0
        for a in range(p):
            ra = resid[i, a] * wi
            for b in range(a + 1):
                M[a, b] += ra * (resid[i, b] * wi)
    for a in range(p):
        for b in range(a):
            M[b, a] = M[a, b]
    T = np.zeros((p, p))
    for a in range(p):
        for b in range(p):
            s = 0.0
            for c in range(p):
                s += M[a, c] * cov[c, b]
            T[a, b] = s
    out = np.empty((p, p))
    for a in range(p):
        for b in range(a + 1):
            s = 0.0
            for c in range(p):
                s += cov[c, a] * T[c, b]
            out[a, b] = s
            out[b, a] = s
    return out


@njit
def cox_newton(ts, ev, X, Xt, w, weighted, efron, sd, maxiter, tol, robust):
    """The Newton-Raphson fit of :func:`estimators.fast.cox.cox_fit` in one compiled call
    (``X`` (n, p) and ``Xt`` (p, n): the sorted, centred covariates in both layouts).

    Returns (beta, ll, ll0, score_stat, n_iter, converged, monotone, msg, singular0, cov_naive,
    cov_robust): cov_robust is the Lin-Wei sandwich when ``robust`` (else cov_naive); both are
    only meaningful when converged and not monotone.
    """
    n, p = X.shape
    gs, ge, bs = death_groups(ts, ev)
    ng = gs.shape[0]
    wsum = np.empty(ng)
    xdw = np.zeros(p)
    wsum_d = 0.0
    for k in range(ng):
        s = 0.0
        for i in range(gs[k], ge[k]):
            wi = w[i] if weighted else 1.0
            s += wi
            for a in range(p):
                xdw[a] += wi * X[i, a]
        wsum[k] = s
        wsum_d += s
    work = _workspace(n, p, ng)
    info = np.empty((p, p))
    grad = np.empty(p)
    info_new = np.empty((p, p))
    grad_new = np.empty(p)
    L = np.zeros((p, p))
    step = np.zeros(p)
    beta = np.zeros(p)
    bt = np.zeros(p)
    nan_pp = np.full((p, p), np.nan)

    ll, _ = _derivs(
        X, Xt, w, weighted, gs, ge, bs, wsum, efron, xdw, wsum_d, beta, work, info, grad
    )
    ll0 = ll
    # information at 0: one Cholesky gives the rank check (L_jj / sqrt(I_jj) is
    # sqrt(1 - R^2) of covariate j on the previous ones), the score test and the first step
    bad = cholesky(info, L) != 0
    if not bad:
        for a in range(p):
            if not (L[a, a] > 1e-7 * math.sqrt(info[a, a])):
                bad = True
    if bad:
        return beta, ll, ll0, np.nan, 0, False, False, MSG_NONE, True, nan_pp, nan_pp
    chol_solve(L, grad, step)
    score = 0.0
    for a in range(p):
        score += grad[a] * step[a]

    converged = False
    monotone = False
    msg = MSG_NONE
    it = 0
    while True:
        ssz = 0.0
        for a in range(p):
            v = abs(step[a] * sd[a])
            if v > ssz:
                ssz = v
        if ssz <= tol:
            for a in range(p):
                beta[a] = beta[a] + step[a]
            converged = True
            break
        if it >= maxiter:
            break
        it += 1
        t = 1.0
        for a in range(p):
            bt[a] = beta[a] + step[a]
        ll_new, fin = _derivs(
            X, Xt, w, weighted, gs, ge, bs, wsum, efron, xdw, wsum_d, bt, work, info_new, grad_new
        )
        while not (ll_new >= ll - 1e-12 * abs(ll)) and t > 1e-4:
            t *= 0.5
            for a in range(p):
                bt[a] = beta[a] + t * step[a]
            ll_new, fin = _derivs(
                X,
                Xt,
                w,
                weighted,
                gs,
                ge,
                bs,
                wsum,
                efron,
                xdw,
                wsum_d,
                bt,
                work,
                info_new,
                grad_new,
            )
        ok = ll_new >= ll - 1e-12 * abs(ll) and fin
        if not ok:
            if ssz <= 1e-6:
                for a in range(p):
                    beta[a] = beta[a] + step[a]
                converged = True
            else:
                big = False
                for a in range(p):
                    if abs(beta[a]) * sd[a] > 5.0:
                        big = True
                if big:
                    monotone = True
                else:
                    msg = MSG_LINE_SEARCH
            break
        for a in range(p):
            beta[a] = bt[a]
        dll = ll_new - ll
        ll = ll_new
        for a in range(p):
            grad[a] = grad_new[a]
            for b in range(p):
                info[a, b] = info_new[a, b]
        if dll <= 1e-13 * max(1.0, abs(ll)) and ssz > 1e-4:
            monotone = True  # likelihood flat but the Newton step is not shrinking
            break
        if cholesky(info, L) != 0:
            msg = MSG_SINGULAR
            for a in range(p):
                if abs(beta[a]) * sd[a] > 5.0:
                    monotone = True
            break
        chol_solve(L, grad, step)

    if converged:
        for a in range(p):
            if abs(beta[a]) * sd[a] > 30.0:
                monotone = True
    if monotone or not converged:
        return beta, ll, ll0, score, it, converged, monotone, msg, False, nan_pp, nan_pp
    cov = chol_inverse(L)
    if robust:
        resid = score_residuals_sorted(X, w, weighted, gs, ge, bs, wsum, efron, beta)
        rob = _sandwich(resid, w, weighted, cov)
    else:
        rob = cov
    return beta, ll, ll0, score, it, True, False, msg, False, cov, rob


# codes of :func:`cox_fit_c`'s data checks (the order of cox_fit's checks)
CHECK_OK = 0
CHECK_EVENT = 1  # event not coded 0/1
CHECK_WEIGHTS = 2  # weights not finite and > 0 (or of the wrong length)
CHECK_NO_EVENTS = 3
CHECK_CONSTANT = 4  # covariate j constant
CHECK_MONOTONE = 5  # 0/1 covariate j without events at level lvl
CHECK_NONFINITE = 6  # a time or covariate value NaN or infinite

# codes of :func:`cox_problem_c` (estimators.engines.cox_data_problem)
PROBLEM_NONE = 0
PROBLEM_NO_EVENTS = 1
PROBLEM_CONSTANT = 2  # covariate j constant
PROBLEM_MONOTONE = 3  # 0/1 covariate j without events at level lvl


@njit
def sort_order(time, evf, by_time):
    """``np.lexsort((event, time))``: by time, censorings first at equal times, else stable
    (``by_time``: the stable argsort of ``time``, or empty)."""
    return tie_order(time, evf != 0.0, False, by_time)


@njit
def _data_problem(e, Xt):
    """(code, j, lvl) of :func:`cox_problem_c` for the covariates by row, ``Xt`` (p, n)."""
    p, n = Xt.shape
    nev = 0
    for i in range(n):
        if e[i] != 0.0:
            nev += 1
    if nev == 0:
        return PROBLEM_NO_EVENTS, 0, 0
    for a in range(p):
        x0 = Xt[a, 0]
        constant = x0 == x0
        binary = True
        ev1 = 0.0
        for i in range(n):
            x = Xt[a, i]
            if x != x0:
                constant = False
            if not (x == 0.0 or x == 1.0):
                binary = False
            if e[i] != 0.0:
                ev1 += x
            if not (constant or binary):
                break
        if constant:
            return PROBLEM_CONSTANT, a, 0
        if binary and (ev1 == 0.0 or ev1 == nev):
            return PROBLEM_MONOTONE, a, 1 if ev1 == 0.0 else 0
    return PROBLEM_NONE, 0, 0


@njit
def cox_problem_c(e, X):
    """(code, j, lvl) of :func:`estimators.engines.cox_data_problem`: no events (e != 0 counts,
    NaN included, as ``np.count_nonzero``), else the first covariate in column order that is
    constant (max == min: a NaN makes it not constant) or 0/1 without events at one level."""
    return _data_problem(e, X.T)


@njit
def _fit_checks(time, evf, Xt, w, weighted, w_ok, sd):
    """(check, j, lvl, nev): the data checks of :func:`estimators.fast.cox.cox_fit` in its
    order (finite times and covariates, events 0/1, weights, events, a constant covariate:
    SD ``sd`` 0 about the column mean, a 0/1 covariate with no events at one level: infinite
    coefficient)."""
    p, n = Xt.shape
    for i in range(n):
        if not (time[i] - time[i] == 0.0):
            return CHECK_NONFINITE, 0, 0, 0
    for a in range(p):
        for i in range(n):
            if not (Xt[a, i] - Xt[a, i] == 0.0):
                return CHECK_NONFINITE, 0, 0, 0
    nev = 0
    for i in range(n):
        v = evf[i]
        if v * (1.0 - v) != 0.0 or v != v:
            return CHECK_EVENT, 0, 0, 0
        if v != 0.0:
            nev += 1
    if weighted:
        if not w_ok:
            return CHECK_WEIGHTS, 0, 0, nev
        for i in range(n):
            if not (w[i] > 0.0 and w[i] < np.inf):
                return CHECK_WEIGHTS, 0, 0, nev
    if nev == 0:
        return CHECK_NO_EVENTS, 0, 0, nev
    for a in range(p):
        if sd[a] == 0.0:
            return CHECK_CONSTANT, a, 0, nev
    for a in range(p):
        binary = True
        e1 = 0.0
        for i in range(n):
            x = Xt[a, i]
            if x != 0.0 and x != 1.0:
                binary = False
                break
            if evf[i] != 0.0:
                e1 += x
        if binary and (e1 == 0.0 or e1 == nev):
            return CHECK_MONOTONE, a, 1 if e1 == 0.0 else 0, nev
    return CHECK_OK, 0, 0, nev


@njit
def cox_fit_c(time, evf, Xt, w, weighted, w_ok, efron, maxiter, tol, robust, by_time, problems):
    """:func:`estimators.fast.cox.cox_fit` after its length checks, in one call: with
    ``problems`` first :func:`estimators.engines.cox_data_problem`'s checks
    (:func:`_data_problem`), then the column means and SDs (numpy's bits: a constant column
    centres to exactly the zeros it did), :func:`_fit_checks`, the sort, the centring and
    :func:`cox_newton`. ``Xt``: the covariates by row, (p, n).

    Returns (problem, check, j, lvl, nev, sd, bse, newton): ``problem`` a PROBLEM_* code (the
    fit was not tried unless PROBLEM_NONE), ``check`` a CHECK_* code (``j``, ``lvl``: the
    covariate and level either concerns), ``bse`` the SEs sqrt(diag(cov)) and ``newton``
    :func:`cox_newton`'s tuple (only meaningful when check is CHECK_OK).
    """
    p, n = Xt.shape
    sd = np.zeros(p)
    bse = np.full(p, np.nan)
    nan_pp = np.full((p, p), np.nan)
    dummy = (np.zeros(p), np.nan, np.nan, np.nan, 0, False, False, MSG_NONE, False, nan_pp, nan_pp)
    if problems:
        problem, j, lvl = _data_problem(evf, Xt)
        if problem != PROBLEM_NONE:
            return problem, CHECK_OK, j, lvl, 0, sd, bse, dummy
    # centre (and measure the scale of) the covariates; estimates are invariant
    # (the covariates' sums side by side: p independent chains, each in row order)
    mean = np.zeros(p)
    for i in range(n):
        for a in range(p):
            mean[a] += Xt[a, i]
    for a in range(p):
        mean[a] = mean[a] * (1.0 / n)  # = numpy's X.sum(axis=0) / n, summed in row order
    for i in range(n):
        for a in range(p):
            v = Xt[a, i] - mean[a]
            sd[a] += v * v
    for a in range(p):
        sd[a] = math.sqrt(sd[a] * (1.0 / n))
    check, j, lvl, nev = _fit_checks(time, evf, Xt, w, weighted, w_ok, sd)
    if check != CHECK_OK:
        return PROBLEM_NONE, check, j, lvl, nev, sd, bse, dummy
    order = sort_order(time, evf, by_time)
    ts = np.empty(n)
    ev = np.empty(n, dtype=np.bool_)
    Xs = np.empty((n, p))
    Xst = np.empty((p, n))
    ws = np.empty(n if weighted else 0)
    for i in range(n):
        k = order[i]
        ts[i] = time[k]
        ev[i] = evf[k] != 0.0
        for a in range(p):
            v = Xt[a, k] - mean[a]
            Xs[i, a] = v
            Xst[a, i] = v
        if weighted:
            ws[i] = w[k]
    out = cox_newton(ts, ev, Xs, Xst, ws, weighted, efron, sd, maxiter, tol, robust)
    cov = out[10]
    for a in range(p):
        bse[a] = math.sqrt(cov[a, a])
    return PROBLEM_NONE, CHECK_OK, 0, 0, nev, sd, bse, out
