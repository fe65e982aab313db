"""Compiled predictive-mean-matching plan of ``mi_response``
(:func:`estimators.response_mi._bayes_pmm`): the Bayesian draws of the m imputations, the
donors' and recipients' predictions, the nearest-donor search and the donor picks in one numba
call.

Random numbers: drawn with the caller's numpy Generator before the kernel runs, in the order
the numpy code draws them (:func:`estimators.engines.bayes_draws`: ``chisquare(n - k, m)``,
``standard_normal((m, k))``; then the donor choice ``integers(0, d, (m, n_r))``): the picks do
not depend on the values, so drawing them first gives the same numbers.

Arithmetic: the posterior of each imputation as :func:`estimators.fast.mi.posterior` (the
batched Cholesky of :func:`estimators.fast.bayes.posterior_parts`, its acceptance tests
included: when one fails the caller reruns the numpy code from the saved generator state, so
the QR path decides and failures and messages are unchanged); the donor order is a stable sort
of the donors' predictions X beta_hat, a recipient's position among them the number of donors
predicted strictly below its X beta* (np.searchsorted, side "left"), and its run of the d
nearest donors the one of :func:`estimators.response_mi._nearest_runs` (same comparisons, same
tie rule). Predictions are sums in column order rather than BLAS products, so a donor whose
prediction ties another's to the last bits may sort differently from the numpy code (floating
point summation order only).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .mi import RANK_TOL, posterior


@njit
def _pmm(y, Xf, fi, Xv, vi, Xr, chi2, z, picks, d, rank_tol, out):
    """PMM draws into out (m, n_r); 0, or -1 when a factorisation is not accepted.

    Donors: values y (n,), rows Xf (n_f, k) at positions fi, and, when Xv has a non-empty
    leading axis, rows Xv (m, n_v, k) (one set per imputation) at positions vi; recipients
    Xr (m, n_r, k). Draws chi2 (m,), z (m, k), picks (m, n_r) in [0, d)."""
    m, nr, k = Xr.shape
    n = y.size
    shared = Xv.shape[0] == 0
    q1 = k + 1
    Mc = np.zeros((q1, q1))
    xa = np.empty(q1)
    for r in range(Xf.shape[0]):
        for c in range(k):
            xa[c] = Xf[r, c]
        xa[k] = y[fi[r]]
        for a in range(q1):
            for b in range(a + 1):
                Mc[a, b] += xa[a] * xa[b]
    Ms = np.empty((q1, q1))
    Ls = np.empty((q1, q1))
    Ts = np.empty((k, k))
    da = np.empty(q1)
    bs = np.empty(k)
    bh = np.empty(k)
    Rinv = np.empty((k, k))
    bst = np.empty(k)
    pd = np.empty(n)
    sd = np.empty(n)
    order = np.empty(n, np.int64)
    cc = min(2 * d, n)
    rss = 0.0
    for i in range(m):
        if not shared or i == 0:
            for a in range(q1):
                for b in range(a + 1):
                    Ms[a, b] = Mc[a, b]
            if not shared:
                for v in range(Xv.shape[1]):
                    for c in range(k):
                        xa[c] = Xv[i, v, c]
                    xa[k] = y[vi[v]]
                    for a in range(q1):
                        for b in range(a + 1):
                            Ms[a, b] += xa[a] * xa[b]
            rss = posterior(Ms, Ls, Ts, da, bs, bh, Rinv, k, rank_tol)
            if rss < 0.0:
                return -1
            # donors' predictions (type 1 matching: X beta_hat), stable order
            for r in range(Xf.shape[0]):
                acc = 0.0
                for c in range(k):
                    acc += Xf[r, c] * bh[c]
                pd[fi[r]] = acc
            if not shared:
                for v in range(Xv.shape[1]):
                    acc = 0.0
                    for c in range(k):
                        acc += Xv[i, v, c] * bh[c]
                    pd[vi[v]] = acc
            order[:] = np.argsort(pd, kind="mergesort")
            for a in range(n):
                sd[a] = pd[order[a]]
        sigma = math.sqrt(rss / chi2[i])
        for a in range(k):
            acc = 0.0
            for b in range(a, k):
                acc += Rinv[a, b] * z[i, b]
            bst[a] = bh[a] + sigma * acc
        for r in range(nr):
            acc = 0.0
            for c in range(k):
                acc += Xr[i, r, c] * bst[c]
            pr = acc
            lo_, hi_ = 0, n  # first sorted position with sd >= pr (searchsorted left)
            while lo_ < hi_:
                mid = (lo_ + hi_) // 2
                if sd[mid] < pr:
                    lo_ = mid + 1
                else:
                    hi_ = mid
            lo = min(max(lo_ - d, 0), n - cc)
            cnt = 0
            for a in range(cc - d):
                if 2 * pr - sd[lo + a] - sd[lo + a + d] > 0:
                    cnt += 1
            out[i, r] = y[order[lo + cnt + picks[i, r]]]
    return 0


def pmm_draws(y, Xf, fi, Xv, vi, Xr, rng, donors: int, m: int):
    """The (m, n_r) draws of :func:`estimators.response_mi._bayes_pmm` for its reduced design
    (constant columns already left out), or None (generator state restored) when the numpy code
    must decide (too few observations, a factorisation the kernel does not accept)."""
    n, k = y.size, Xf.shape[1]
    if n - k < 1:
        return None
    d = min(donors, n)
    state = rng.bit_generator.state
    chi2 = rng.chisquare(n - k, size=m)
    z = rng.standard_normal((m, k))
    picks = rng.integers(0, d, Xr.shape[:2])
    if Xv is None:
        Xv, vi = np.empty((0, 0, k)), np.empty(0, np.int64)
    out = np.empty(Xr.shape[:2])
    args = (np.ascontiguousarray(Xf, dtype=float), np.asarray(fi, np.int64))
    args += (np.ascontiguousarray(Xv, dtype=float), np.asarray(vi, np.int64))
    yf = np.ascontiguousarray(y, dtype=float)
    Xr = np.ascontiguousarray(Xr, dtype=float)
    if _pmm(yf, *args, Xr, chi2, z, picks, d, RANK_TOL, out) != 0:
        rng.bit_generator.state = state
        return None
    return out


@njit
def _sort_donors(pd, order, fresh):
    """order = the stable argsort of pd: a merge sort, or (``fresh`` False) an insertion sort
    from the previous imputation's order, nearly sorted already. Both give the unique order
    by (prediction, donor index), i.e. np.argsort(pd, kind="stable")."""
    n = pd.size
    if fresh:
        order[:] = np.argsort(pd, kind="mergesort")
        return
    for a in range(1, n):
        o = order[a]
        v = pd[o]
        b = a - 1
        while b >= 0 and (pd[order[b]] > v or (pd[order[b]] == v and order[b] > o)):
            order[b + 1] = order[b]
            b -= 1
        order[b + 1] = o


@njit
def _plan(y, base, bcols, W, ecols, rows, vary, rec, chi2, z, picks, d, rank_tol, out):
    """:func:`_pmm` with the designs gathered on the fly: donor / recipient row r of imputation
    i is [base[r, bcols], W[i, r, ecols]]; donors ``rows`` (values y), those with an imputed
    visit value flagged in ``vary`` (their cross-products are per imputation, the others'
    computed once), recipients ``rec``. 0, or -1 when a factorisation is not accepted."""
    m = W.shape[0]
    n, nr = rows.size, rec.size
    kb = bcols.size
    k = kb + ecols.size
    q1 = k + 1
    Mc = np.zeros((q1, q1))
    xa = np.empty(q1)
    shared = True
    for r in range(n):
        if vary[r]:
            shared = False
            continue
        g = rows[r]
        for c in range(kb):
            xa[c] = base[g, bcols[c]]
        for c in range(kb, k):
            xa[c] = W[0, g, ecols[c - kb]]
        xa[k] = y[r]
        for a in range(q1):
            for b in range(a + 1):
                Mc[a, b] += xa[a] * xa[b]
    Ms = np.empty((q1, q1))
    Ls = np.empty((q1, q1))
    Ts = np.empty((k, k))
    da = np.empty(q1)
    bs = np.empty(k)
    bh = np.empty(k)
    Rinv = np.empty((k, k))
    bst = np.empty(k)
    pd = np.empty(n)
    sd = np.empty(n)
    order = np.empty(n, np.int64)
    cc = min(2 * d, n)
    rss = 0.0
    for i in range(m):
        if not shared or i == 0:
            for a in range(q1):
                for b in range(a + 1):
                    Ms[a, b] = Mc[a, b]
            if not shared:
                for r in range(n):
                    if not vary[r]:
                        continue
                    g = rows[r]
                    for c in range(kb):
                        xa[c] = base[g, bcols[c]]
                    for c in range(kb, k):
                        xa[c] = W[i, g, ecols[c - kb]]
                    xa[k] = y[r]
                    for a in range(q1):
                        for b in range(a + 1):
                            Ms[a, b] += xa[a] * xa[b]
            rss = posterior(Ms, Ls, Ts, da, bs, bh, Rinv, k, rank_tol)
            if rss < 0.0:
                return -1
            for r in range(n):  # donors' predictions X beta_hat (type 1 matching)
                g = rows[r]
                acc = 0.0
                for c in range(kb):
                    acc += base[g, bcols[c]] * bh[c]
                for c in range(kb, k):
                    acc += W[i, g, ecols[c - kb]] * bh[c]
                pd[r] = acc
            _sort_donors(pd, order, i == 0)
            for a in range(n):
                sd[a] = pd[order[a]]
        sigma = math.sqrt(rss / chi2[i])
        for a in range(k):
            acc = 0.0
            for b in range(a, k):
                acc += Rinv[a, b] * z[i, b]
            bst[a] = bh[a] + sigma * acc
        for r in range(nr):
            g = rec[r]
            acc = 0.0
            for c in range(kb):
                acc += base[g, bcols[c]] * bst[c]
            for c in range(kb, k):
                acc += W[i, g, ecols[c - kb]] * bst[c]
            pr = acc
            lo_, hi_ = 0, n  # first sorted position with sd >= pr (searchsorted left)
            while lo_ < hi_:
                mid = (lo_ + hi_) // 2
                if sd[mid] < pr:
                    lo_ = mid + 1
                else:
                    hi_ = mid
            lo = min(max(lo_ - d, 0), n - cc)
            cnt = 0
            for a in range(cc - d):
                if 2 * pr - sd[lo + a] - sd[lo + a + d] > 0:
                    cnt += 1
            out[i, r] = y[order[lo + cnt + picks[i, r]]]
    return 0


@njit
def _columns(base, W, W0, rows, ecols):
    """For the donors ``rows``: the base columns not constant among them (the intercept
    always kept), per imputation which visit columns ``ecols`` of W are constant among them,
    and the donors with an imputed (not observed: W0 not finite) value in one of ``ecols``.
    Constant as np.ptp == 0 decides it (a NaN makes a column non-constant)."""
    n, kb = rows.size, base.shape[1]
    m, e = W.shape[0], ecols.size
    bkeep = np.zeros(kb, np.bool_)
    bkeep[0] = True
    for c in range(1, kb):
        v0 = base[rows[0], c]
        same = v0 == v0
        for r in range(1, n):
            if not base[rows[r], c] == v0:
                same = False
                break
        bkeep[c] = not same
    const = np.zeros((m, e), np.bool_)
    for i in range(m):
        for c in range(e):
            v0 = W[i, rows[0], ecols[c]]
            same = v0 == v0
            for r in range(1, n):
                if not W[i, rows[r], ecols[c]] == v0:
                    same = False
                    break
            const[i, c] = same
    vary = np.zeros(n, np.bool_)
    for r in range(n):
        for c in range(e):
            if not np.isfinite(W0[rows[r], ecols[c]]):
                vary[r] = True
    return bkeep, const, vary


def pmm_plan(y, base, W, W0, rows, extra, rec, rng, donors: int, m: int):
    """:func:`estimators.response_mi._bayes_pmm` of one imputation model of
    ``MIResponse._impute`` without building its designs: donors ``rows`` (values ``y``),
    recipients ``rec``, predictors [base, W[i][:, extra]] (W (m, n, 4) the imputations' visits,
    W0 the observed ones). Columns constant among the donors are left out as there. Returns
    the (m, n_r) draws, or None when the numpy code must run (generator state as on entry):
    a constant-column pattern that differs between imputations, too few donors, or a
    factorisation the kernel does not accept."""
    n = rows.size
    if n == 0:
        return None
    ecols = np.asarray(extra, np.int64)
    bkeep, const, vary = _columns(base, W, W0, rows, ecols)
    if ecols.size:
        if (const != const[:1]).any():
            return None
        ecols = ecols[~const[0]]
    bcols = np.flatnonzero(bkeep)
    k = bcols.size + ecols.size
    if n < k + 2:
        return None
    d = min(donors, n)
    state = rng.bit_generator.state
    chi2 = rng.chisquare(n - k, size=m)
    z = rng.standard_normal((m, k))
    picks = rng.integers(0, d, (m, rec.size))
    out = np.empty((m, rec.size))
    yf = np.ascontiguousarray(y, dtype=float)
    got = _plan(yf, base, bcols, W, ecols, rows, vary, rec, chi2, z, picks, d, RANK_TOL, out)
    if got != 0:
        rng.bit_generator.state = state
        return None
    return out
