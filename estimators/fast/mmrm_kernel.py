"""Compiled unstructured-covariance (RE)ML fit: the whole of :func:`.mmrm.fit_unstructured`.

:func:`fit_un_c` runs, in one call per fit, what :mod:`.mmrm` describes in numpy terms: the
per-pattern Cholesky factors and inverses of S[o, o], the profiled criterion f(S), its gradient,
observed and expected Hessian (and P_k), the Newton loop with its line search and last full
step, Cov(s^) = 2 H^-1 and, for Kenward-Roger, Phi_A. Same formulas, same order of the
decisions (statuses and messages are made by the Python wrapper from the returned code).

Work is per pattern s on its k_s observed visits o_s only (W_s = S[o, o]^-1, k x k), and the
cross-products M_s[c, d] ((p+1) x (p+1) per pair of visits) are read only on their possibly
nonzero rows and columns: column j of [X, y] can be nonzero at visit c only if some diagonal
M_s[c, c][j, j] is (``cols``/``ncol``, :func:`visit_columns`). Designs whose columns belong to
one visit each (visit x group, baseline x visit) make every contraction of M a few terms.

Kenward-Roger's sum_kl W_kl Q_kl is formed without the K x K matrices Q_kl:
sum_kl W_kl X'V^-1 D_k V^-1 D_l V^-1 X = X'V^-1 B V^-1 X with B = sum_kl W_kl D_k V^-1 D_l
(block diagonal per pattern), i.e. sum_s sum_cd (W_s B_s W_s)[c, d] M_s[c, d][:p, :p].
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from ._small import chol_solve, cholesky, dot4, tri_inv

#: return codes of :func:`fit_un_c` (the wrapper turns them into messages)
CODE_OK = 0
CODE_START = 1  # X'V^-1X singular (or S not PD) at the start
CODE_NO_INFO = 2  # neither the observed nor the expected information is PD
CODE_LINE_SEARCH = 3  # line search failed (decrement returned)
CODE_MAX_ITER = 4  # no convergence in max_iter iterations


@njit
def pattern_stats(Y, X):
    """Patterns of ``Y`` (n, m; NaN = not observed), ascending by code sum_a 2^a [a observed],
    and M (S, m, m, q, q) = sum over the patients of pattern s of x~_ia x~_ib' (x~_ia = [X_ia,
    y_ia] on observed visits; exact zeros skipped). Patients with no observed visit are dropped.

    Returns (masks, counts, oidx, ks, M, n_obs, n_patients).
    """
    n, m = Y.shape
    p = X.shape[2]
    q = p + 1
    ncode = 1 << m
    cnt = np.zeros(ncode, np.int64)
    code = np.empty(n, np.int64)
    n_obs = 0
    for i in range(n):
        c = 0
        for a in range(m):
            if np.isfinite(Y[i, a]):
                c |= 1 << a
                n_obs += 1
        code[i] = c
        if c != 0:
            cnt[c] += 1
    pidx = np.full(ncode, -1, np.int64)
    S = 0
    for c in range(1, ncode):
        if cnt[c] > 0:
            pidx[c] = S
            S += 1
    masks = np.zeros((S, m), np.bool_)
    counts = np.zeros(S, np.int64)
    oidx = np.zeros((S, m), np.int64)
    ks = np.zeros(S, np.int64)
    n_patients = 0
    for c in range(1, ncode):
        s = pidx[c]
        if s < 0:
            continue
        counts[s] = cnt[c]
        n_patients += cnt[c]
        k = 0
        for a in range(m):
            if (c >> a) & 1:
                masks[s, a] = True
                oidx[s, k] = a
                k += 1
        ks[s] = k
    M = np.zeros((S, m, m, q, q))
    va = np.empty(m * q, np.int64)
    vj = np.empty(m * q, np.int64)
    vx = np.empty(m * q)
    for i in range(n):
        if code[i] == 0:
            continue
        s = pidx[code[i]]
        nz = 0
        for a in range(m):
            if not (code[i] >> a) & 1:
                continue
            for j in range(q):
                x = X[i, a, j] if j < p else Y[i, a]
                if x != 0.0:
                    va[nz] = a
                    vj[nz] = j
                    vx[nz] = x
                    nz += 1
        for t in range(nz):
            a, j, x = va[t], vj[t], vx[t]
            for u in range(nz):
                M[s, a, va[u], j, vj[u]] += x * vx[u]
    return masks, counts, oidx, ks, M, n_obs, n_patients


@njit
def start_c(M, counts, masks):
    """The start of :func:`.mmrm._start`: pairwise residual covariance of the OLS fit (the
    diagonal if it is not safely positive definite)."""
    S, m = M.shape[0], M.shape[1]
    q = M.shape[3]
    p = q - 1
    A = np.zeros((q, q))
    for s in range(S):
        for a in range(m):
            for i in range(q):
                for j in range(q):
                    A[i, j] += M[s, a, a, i, j]
    # numpy's lstsq(rcond=None): singular values below eps * max(rows, cols) are dropped
    beta = np.linalg.lstsq(A[:p, :p].copy(), A[:p, p].copy(), rcond=2.220446049250313e-16 * p)[0]
    u = np.empty(q)
    for i in range(p):
        u[i] = -beta[i]
    u[p] = 1.0
    Sig = np.zeros((m, m))
    for a in range(m):
        for b in range(m):
            e = 0.0
            both = 0.0
            for s in range(S):
                if masks[s, a] and masks[s, b]:
                    both += counts[s]
                t = 0.0
                for i in range(q):
                    r = 0.0
                    for j in range(q):
                        r += M[s, a, b, i, j] * u[j]
                    t += u[i] * r
                e += t
            if both > 0:
                Sig[a, b] = e / max(both, 1.0)
    dg = np.empty(m)
    bad = False
    for a in range(m):
        dg[a] = Sig[a, a]
        if dg[a] <= 0 or not np.isfinite(dg[a]):
            bad = True
    if bad:
        mx = 1.0
        for a in range(m):
            if dg[a] > mx:  # nanmax: NaN entries are ignored
                mx = dg[a]
        out = np.zeros((m, m))
        for a in range(m):
            out[a, a] = max(mx, 1e-8)
        return out
    ev = np.linalg.eigvalsh(Sig)
    if not ev[0] > 1e-3 * ev[m - 1]:
        out = np.zeros((m, m))
        for a in range(m):
            out[a, a] = dg[a]
        return out
    return Sig


@njit
def visit_columns(M):
    """cols (m, q), ncol (m,), ncx (m,): the columns of [X, y] that are nonzero at visit a for
    some patient (ascending; the first ncx[a] are columns of X)."""
    S, m, _, q, _ = M.shape
    p = q - 1
    cols = np.zeros((m, q), np.int64)
    ncol = np.zeros(m, np.int64)
    ncx = np.zeros(m, np.int64)
    for a in range(m):
        for j in range(q):
            nonzero = False
            for s in range(S):
                if M[s, a, a, j, j] != 0.0:
                    nonzero = True
                    break
            if nonzero:
                cols[a, ncol[a]] = j
                ncol[a] += 1
                if j < p:
                    ncx[a] += 1
    return cols, ncol, ncx


@njit
def _unvech(sv, m, Sig):
    k = 0
    for a in range(m):
        for b in range(a, m):
            Sig[a, b] = sv[k]
            Sig[b, a] = sv[k]
            k += 1


@njit
def _inverse_from_chol(L, T, out):
    """out = (L L')^-1 (T: work for L^-1)."""
    k = L.shape[0]
    tri_inv(L, T)
    for i in range(k):
        for j in range(i + 1):
            t = 0.0
            for r in range(i, k):
                t += T[r, i] * T[r, j]
            out[i, j] = t
            out[j, i] = t


@njit
def _evaluate(sv, reml, M, counts, oidx, ks, cols, ncol, Sig, W, A, Lp, Phi, beta, Ls, Ts):
    """f(S) at S = unvech(sv) into W (S, m, m; local k x k), A, Lp, Phi, beta; (ok, f)."""
    S, m = M.shape[0], M.shape[1]
    q = M.shape[3]
    p = q - 1
    _unvech(sv, m, Sig)
    logdet = 0.0
    for i in range(q):
        for j in range(q):
            A[i, j] = 0.0
    for s in range(S):
        k = ks[s]
        sub = Ts[s, :k, :k]  # the sub-matrix, then (below) reused as L^-1 work
        for a in range(k):
            for b in range(k):
                sub[a, b] = Sig[oidx[s, a], oidx[s, b]]
        L = Ls[s, :k, :k]
        if cholesky(sub, L) != 0:
            return False, math.nan
        ld = 0.0
        for a in range(k):
            ld += math.log(L[a, a])
        logdet += counts[s] * ld
        Ws = W[s, :k, :k]
        _inverse_from_chol(L, sub, Ws)
        for c in range(k):
            gc = oidx[s, c]
            for d in range(k):
                gd = oidx[s, d]
                w = Ws[c, d]
                for ii in range(ncol[gc]):
                    i = cols[gc, ii]
                    for jj in range(ncol[gd]):
                        j = cols[gd, jj]
                        A[i, j] += w * M[s, gc, gd, i, j]
    for i in range(q):
        for j in range(i):
            t = 0.5 * (A[i, j] + A[j, i])
            A[i, j] = t
            A[j, i] = t
    if cholesky(A[:p, :p], Lp) != 0:
        return False, math.nan
    Tp = np.empty((p, p))
    _inverse_from_chol(Lp, Tp, Phi)
    for i in range(p):
        t = 0.0
        for j in range(p):
            t += Phi[i, j] * A[j, p]
        beta[i] = t
    qf = A[p, p]
    for j in range(p):
        qf -= A[p, j] * beta[j]
    f = 2.0 * logdet + qf
    if reml:
        ld = 0.0
        for i in range(p):
            ld += math.log(Lp[i, i])
        f += 2.0 * ld
    return True, f


@njit
def _gather2(G, H, X, Y, Z, k, o, kidx):
    """G[kl] += tr(D_k X D_l Y) and H[kl] += tr(D_k X D_l Z) for the local pairs (a <= b),
    (c <= d) of one pattern (tr(E_xy X E_zw Y) = X[y, z] Y[w, x]; linear in Y, Z)."""
    for a in range(k):
        for b in range(a, k):
            kk = kidx[o[a], o[b]]
            for c in range(k):
                for d in range(c, k):
                    ll = kidx[o[c], o[d]]
                    x = X[b, c]
                    g = x * Y[d, a]
                    h = x * Z[d, a]
                    if c != d:
                        x = X[b, d]
                        g += x * Y[c, a]
                        h += x * Z[c, a]
                    if a != b:
                        x = X[a, c]
                        g += x * Y[d, b]
                        h += x * Z[d, b]
                        if c != d:
                            x = X[a, d]
                            g += x * Y[c, b]
                            h += x * Z[c, b]
                    G[kk, ll] += g
                    H[kk, ll] += h


@njit
def _sandwich(W, X, k, out):
    """out = W X W (k x k, W and X symmetric)."""
    XW = np.empty((k, k))
    for c in range(k):
        for b in range(k):
            t = 0.0
            for d in range(k):
                t += X[c, d] * W[d, b]
            XW[c, b] = t
    for a in range(k):
        for b in range(a, k):
            t = 0.0
            for c in range(k):
                t += W[a, c] * XW[c, b]
            out[a, b] = t
            out[b, a] = t


@njit
def _derivatives(
    reml, M, counts, oidx, ks, cols, ncol, ncx, kidx, W, Phi, beta, grad, hess, fisher, Pk
):
    """Gradient, observed and expected Hessian of f and P_k at the evaluated point."""
    S, m = M.shape[0], M.shape[1]
    q = M.shape[3]
    p = q - 1
    K = grad.shape[0]
    u = np.empty(q)
    for i in range(p):
        u[i] = -beta[i]
    u[p] = 1.0
    Mu = np.empty((m, m))
    MP = np.empty((m, m))
    Mx = np.zeros((m, m, p))
    V = np.empty((m, m, p))
    RR = np.empty((m, m))
    TT = np.empty((m, m))
    RRt = np.zeros((m, m))
    Wn = np.zeros((m, m))
    Nu = np.zeros((m, m, p))
    NX = np.zeros((m, m, p, p))
    R = np.zeros((m, m, p, p))
    GF = np.zeros((K, K))
    G2 = np.zeros((K, K))
    Bf = np.empty((m, m))
    for s in range(S):
        k = ks[s]
        o = oidx[s]
        Ws = W[s]
        for c in range(k):
            gc = o[c]
            for d in range(k):
                gd = o[d]
                mu = 0.0
                mp = 0.0
                for ii in range(ncol[gc]):
                    i = cols[gc, ii]
                    t = 0.0
                    for jj in range(ncol[gd]):
                        j = cols[gd, jj]
                        v = M[s, gc, gd, i, j]
                        t += v * u[j]
                        if i < p and j < p:
                            mp += Phi[i, j] * v
                    mu += u[i] * t
                    if i < p:
                        Mx[c, d, i] = t
                Mu[c, d] = mu
                MP[c, d] = mp
        _sandwich(Ws, Mu, k, RR)
        _sandwich(Ws, MP, k, TT)
        n = float(counts[s])
        for a in range(k):
            for b in range(k):
                RRt[o[a], o[b]] += RR[a, b]
                Wn[o[a], o[b]] += n * Ws[a, b]
        # Nu[a, b] = sum_cd W[a, c] W[d, b] Mx[c, d] (Mx[c, d] lives on the X columns of c)
        for a in range(k):
            for d in range(k):
                for i in range(p):
                    V[a, d, i] = 0.0
                for c in range(k):
                    w = Ws[a, c]
                    gc = o[c]
                    for ii in range(ncx[gc]):
                        i = cols[gc, ii]
                        V[a, d, i] += w * Mx[c, d, i]
        for a in range(k):
            for b in range(k):
                Nr = Nu[o[a], o[b]]
                for d in range(k):
                    w = Ws[d, b]
                    Vr = V[a, d]
                    for i in range(p):
                        Nr[i] += Vr[i] * w
        # NX[a, b] (a <= b) = sum_c W[a, c] R[c, b], R[c, b] = sum_d M_s[c, d][:p, :p] W[d, b]
        # (row i of R[c, b] is zero unless i is a column of visit c; rows are updated whole so
        # the innermost loops run over contiguous memory)
        for c in range(k):
            gc = o[c]
            for b in range(k):
                for ii in range(ncx[gc]):
                    i = cols[gc, ii]
                    Rr = R[c, b, i]
                    for j in range(p):
                        Rr[j] = 0.0
                    for d in range(k):
                        gd = o[d]
                        w = Ws[d, b]
                        Mr = M[s, gc, gd, i]
                        for jj in range(ncx[gd]):
                            j = cols[gd, jj]
                            Rr[j] += Mr[j] * w
        for a in range(k):
            for b in range(a, k):
                NXab = NX[o[a], o[b]]
                for c in range(k):
                    gc = o[c]
                    w = Ws[a, c]
                    for ii in range(ncx[gc]):
                        i = cols[gc, ii]
                        Rr = R[c, b, i]
                        Nr = NXab[i]
                        for j in range(p):
                            Nr[j] += w * Rr[j]
        # tr(D_k W D_l (n W - 2 TT)) [ML: n W] and tr(D_k W D_l RR) summed over patterns
        for a in range(k):
            for b in range(k):
                Bf[a, b] = n * Ws[a, b] - (2.0 * TT[a, b] if reml else 0.0)
        _gather2(GF, G2, Ws, Bf, RR, k, o, kidx)
    h = np.empty((K, p))
    kk = 0
    for a in range(m):
        for b in range(a, m):
            off = a != b
            for i in range(p):
                h[kk, i] = Nu[a, b, i] + (Nu[b, a, i] if off else 0.0)
                for j in range(p):
                    Pk[kk, i, j] = NX[a, b, i, j] + (NX[a, b, j, i] if off else 0.0)
            g = Wn[a, b] - RRt[a, b]
            if off:
                g *= 2.0
            grad[kk] = g
            kk += 1
    # h Phi (rows), for rDPDr = G2 - h Phi h'
    hP = np.zeros((K, p))
    for k1 in range(K):
        for i in range(p):
            w = h[k1, i]
            for j in range(p):
                hP[k1, j] += w * Phi[i, j]
    trP = np.zeros((K, K))
    if reml:
        # PhiP_k = Phi P_k; tr(Phi P_k) enters the gradient, tr(Phi P_k Phi P_l) the Hessians
        PhiP = np.zeros((K, p * p))
        PhiPT = np.empty((K, p * p))
        for k1 in range(K):
            for i in range(p):
                for r in range(p):
                    w = Phi[i, r]
                    for j in range(p):
                        PhiP[k1, i * p + j] += w * Pk[k1, r, j]
            t = 0.0
            for i in range(p):
                t += PhiP[k1, i * p + i]
                for j in range(p):
                    PhiPT[k1, j * p + i] = PhiP[k1, i * p + j]
            grad[k1] -= t
        for k1 in range(K):
            for k2 in range(k1, K):
                t = dot4(PhiP[k1], PhiPT[k2], p * p)
                trP[k1, k2] = t
                trP[k2, k1] = t
    T = np.empty((K, K))
    H = np.empty((K, K))
    for k1 in range(K):
        for k2 in range(K):
            hh = 0.0
            for j in range(p):
                hh += hP[k1, j] * h[k2, j]
            tr = GF[k1, k2] + trP[k1, k2]
            T[k1, k2] = tr
            H[k1, k2] = -tr + 2.0 * (G2[k1, k2] - hh)
    for k1 in range(K):
        for k2 in range(K):
            hess[k1, k2] = 0.5 * (H[k1, k2] + H[k2, k1])
            fisher[k1, k2] = 0.5 * (T[k1, k2] + T[k2, k1])


@njit
def _kr_cov(M, oidx, ks, cols, ncx, kidx, W, Phi, Pk, Wt):
    """Phi_A = Phi + 2 Phi [sum_kl Wt_kl (Q_kl - P_k Phi P_l)] Phi (module docstring)."""
    S, m = M.shape[0], M.shape[1]
    p = Phi.shape[0]
    K = Wt.shape[0]
    inner = np.zeros((p, p))
    B = np.empty((m, m))
    C = np.empty((m, m))
    for s in range(S):
        k = ks[s]
        o = oidx[s]
        Ws = W[s]
        for a in range(k):
            for b in range(k):
                B[a, b] = 0.0
        for a in range(k):
            for b in range(a, k):
                k1 = kidx[o[a], o[b]]
                for c in range(k):
                    for d in range(c, k):
                        w = Wt[k1, kidx[o[c], o[d]]]
                        B[a, d] += w * Ws[b, c]
                        if c != d:
                            B[a, c] += w * Ws[b, d]
                        if a != b:
                            B[b, d] += w * Ws[a, c]
                            if c != d:
                                B[b, c] += w * Ws[a, d]
        _sandwich(Ws, B, k, C)
        for c in range(k):
            gc = o[c]
            for d in range(k):
                gd = o[d]
                w = C[c, d]
                for ii in range(ncx[gc]):
                    i = cols[gc, ii]
                    for jj in range(ncx[gd]):
                        j = cols[gd, jj]
                        inner[i, j] += w * M[s, gc, gd, i, j]
    # - sum_kl Wt_kl P_k Phi P_l = - sum_k P_k Phi R_k with R_k = sum_l Wt_kl P_l
    R = np.zeros((p, p))
    PkPhi = np.empty((p, p))
    for k1 in range(K):
        for i in range(p):
            for j in range(p):
                t = 0.0
                for k2 in range(K):
                    t += Wt[k1, k2] * Pk[k2, i, j]
                R[i, j] = t
        for i in range(p):
            for j in range(p):
                t = 0.0
                for r in range(p):
                    t += Pk[k1, i, r] * Phi[r, j]
                PkPhi[i, j] = t
        for i in range(p):
            for j in range(p):
                t = 0.0
                for r in range(p):
                    t += PkPhi[i, r] * R[r, j]
                inner[i, j] -= t
    X = np.empty((p, p))
    for i in range(p):
        for j in range(p):
            t = 0.0
            for r in range(p):
                t += Phi[i, r] * inner[r, j]
            X[i, j] = t
    out = np.empty((p, p))
    for i in range(p):
        for j in range(p):
            t = 0.0
            for r in range(p):
                t += X[i, r] * Phi[r, j]
            out[i, j] = Phi[i, j] + 2.0 * t
    return out


@njit
def fit_un_c(M, counts, masks, oidx, ks, reml, kenward_roger, max_iter, tol_decrement):
    """Newton (RE)ML fit from :func:`start_c`: the loop of :func:`.mmrm.fit_unstructured`.

    Returns (code, iterations, converged, dec, s, f, beta, Phi, grad, hess, fisher, Pk,
    theta_cov, hess_pd, cov_kr): the derivatives (and theta_cov, P_k) are those of the last
    Newton point, f, beta, Phi (and the Q part of cov_kr) those of the final S.
    """
    S, m = M.shape[0], M.shape[1]
    q = M.shape[3]
    p = q - 1
    K = m * (m + 1) // 2
    cols, ncol, ncx = visit_columns(M)
    kidx = np.zeros((m, m), np.int64)
    kk = 0
    for a in range(m):
        for b in range(a, m):
            kidx[a, b] = kk
            kidx[b, a] = kk
            kk += 1
    Sig = np.empty((m, m))
    Ls = np.zeros((S, m, m))
    Ts = np.zeros((S, m, m))
    W = np.zeros((S, m, m))
    A = np.empty((q, q))
    Lp = np.empty((p, p))
    Phi = np.empty((p, p))
    beta = np.empty(p)
    Wc = np.zeros((S, m, m))
    Ac = np.empty((q, q))
    Lpc = np.empty((p, p))
    Phic = np.empty((p, p))
    betac = np.empty(p)
    grad = np.empty(K)
    hess = np.empty((K, K))
    fisher = np.empty((K, K))
    Pk = np.empty((K, p, p))
    theta_cov = np.full((K, K), np.nan)
    cov_kr = np.full((p, p), np.nan)
    Sig0 = start_c(M, counts, masks)
    s = np.empty(K)
    kk = 0
    for a in range(m):
        for b in range(a, m):
            s[kk] = Sig0[a, b]
            kk += 1
    ok, f = _evaluate(s, reml, M, counts, oidx, ks, cols, ncol, Sig, W, A, Lp, Phi, beta, Ls, Ts)
    if not ok:
        return (
            CODE_START, 0, False, math.nan, s, math.nan, beta, Phi, grad, hess, fisher, Pk,
            theta_cov, False, cov_kr,
        )  # fmt: skip
    it = 0
    converged = False
    code = CODE_OK
    dec = math.nan
    _derivatives(
        reml, M, counts, oidx, ks, cols, ncol, ncx, kidx, W, Phi, beta, grad, hess, fisher, Pk
    )
    LH = np.empty((K, K))
    step = np.empty(K)
    cand = np.empty(K)
    while it < max_iter:
        it += 1
        have = False
        if cholesky(hess, LH) == 0:
            have = True
        elif cholesky(fisher, LH) == 0:
            have = True
        if not have:
            code = CODE_NO_INFO
            break
        chol_solve(LH, grad, step)
        dec = 0.0
        for i in range(K):
            step[i] = -step[i]
            dec -= grad[i] * step[i]
        scale = max(1.0, abs(f))
        if dec < tol_decrement * scale:
            for i in range(K):
                cand[i] = s[i] + step[i]
            okc, fc = _evaluate(
                cand, reml, M, counts, oidx, ks, cols, ncol, Sig, Wc, Ac, Lpc, Phic, betac, Ls, Ts
            )
            if okc and fc <= f + 1e-12 * scale:
                s[:] = cand
                f = fc
                W[:] = Wc
                Phi[:] = Phic
                beta[:] = betac
            converged = True
            break
        t = 1.0
        found = False
        fc = math.nan
        for _ in range(60):
            for i in range(K):
                cand[i] = s[i] + t * step[i]
            okc, fc = _evaluate(
                cand, reml, M, counts, oidx, ks, cols, ncol, Sig, Wc, Ac, Lpc, Phic, betac, Ls, Ts
            )
            if okc and (
                fc <= f - 1e-4 * t * dec
                or (t == 1.0 and dec < 1e-8 * scale and fc <= f + 1e-12 * scale)
            ):
                found = True
                break
            t *= 0.5
        if not found:
            converged = dec < 1e-9 * max(1.0, abs(f))
            if not converged:
                code = CODE_LINE_SEARCH
            break
        s[:] = cand
        f = fc
        W[:] = Wc
        Phi[:] = Phic
        beta[:] = betac
        _derivatives(
            reml, M, counts, oidx, ks, cols, ncol, ncx, kidx, W, Phi, beta, grad, hess, fisher, Pk
        )
    if not converged and code == CODE_OK:
        code = CODE_MAX_ITER
    hess_pd = False
    if converged:
        info = cholesky(hess, LH)
        hess_pd = info == 0
        if not hess_pd:
            info = cholesky(fisher, LH)
        if info == 0:
            T = np.empty((K, K))
            _inverse_from_chol(LH, T, theta_cov)
            for i in range(K):
                for j in range(K):
                    theta_cov[i, j] *= 2.0
        if kenward_roger:
            cov_kr = _kr_cov(M, oidx, ks, cols, ncx, kidx, W, Phi, Pk, theta_cov)
    return (
        code, it, converged, dec, s, f, beta, Phi, grad, hess, fisher, Pk, theta_cov, hess_pd,
        cov_kr,
    )  # fmt: skip
