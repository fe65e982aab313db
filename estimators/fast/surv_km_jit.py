"""Compiled Kaplan-Meier bootstrap kernel: the medians of B resamples given as multiplicities,
:func:`estimators.fast.km.km_medians_counted`, bit-identical to the numpy version in
:func:`estimators.survival.km_medians_counted` (same integer counts, the same
``1.0 - deaths / max(at_risk, 1)`` factors multiplied in the same order, the same comparisons).

Per resample one walk over the rows in time order (deaths before censorings at equal times):
at risk at t_k = resample size - counts before t_k, deaths = counts of the rows dying at t_k,
S_k = S_{k-1} (1 - D_k / N_k); the walk stops at the first S <= 0.5 - tol (the median is then
decided), else the curve's end decides (flat at 0.5 within tol: midpoint with the resample's
last time; not reached: inf).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from ._ties import tie_order


@njit
def km_medians_counted_c(time, ev, counts, hi, lo, tol):
    """Medians of the B resamples ``counts`` (B, n) of the rows of (time, ev); ``hi`` = 0.5 + tol,
    ``lo`` = 0.5 - tol (R's tolerance, computed by the caller)."""
    n = time.shape[0]
    B = counts.shape[0]
    med = np.full(B, np.inf)
    order = tie_order(time, ev, True)
    ts = np.empty(n)
    # event groups: rows rstart[k] .. rstart[k] + d0[k] - 1 of the sorted rows die at udt[k]
    rstart = np.empty(n, dtype=np.int64)
    d0 = np.empty(n, dtype=np.int64)
    udt = np.empty(n)
    ng = 0
    i = 0
    while i < n:
        t = time[order[i]]
        j = i
        while j + 1 < n and time[order[j + 1]] == t:
            j += 1
        dk = 0
        for k in range(i, j + 1):
            ts[k] = t
            if ev[order[k]]:
                dk += 1
        if dk > 0:
            rstart[ng] = i
            d0[ng] = dk
            udt[ng] = t
            ng += 1
        i = j + 1
    if ng == 0:
        return med
    c = np.empty(n, dtype=np.int64)
    for b in range(B):
        size = 0
        for r in range(n):
            v = counts[b, order[r]]
            c[r] = v
            size += v
        before = 0  # counts of the sorted rows before row ptr
        ptr = 0
        S = 1.0
        x1 = np.nan
        found1 = False
        done = False
        for k in range(ng):
            rs = rstart[k]
            while ptr < rs:
                before += c[ptr]
                ptr += 1
            br = before
            rd = rs + d0[k]
            while ptr < rd:
                before += c[ptr]
                ptr += 1
            at_risk = size - br
            deaths = before - br
            S = S * (1.0 - deaths / max(at_risk, 1))
            if not found1 and S <= hi:
                found1 = True
                x1 = udt[k]
            if S <= lo:
                med[b] = (x1 + udt[k]) / 2
                done = True
                break
        if done or not found1:
            continue
        if abs(S - 0.5) < tol:
            # flat at 0.5 to the resample's last (possibly censored) time
            end = n - 1
            while c[end] == 0:
                end -= 1
            med[b] = (x1 + ts[end]) / 2
    return med


@njit
def km_counts(time, ev):
    """(ts, udt, nr, d) of the Kaplan-Meier curve: the times sorted (stable), the distinct event
    times, the numbers at risk (rows with time >= udt[k]) and of deaths there (floats)."""
    n = time.shape[0]
    o = np.argsort(time, kind="mergesort")
    ts = np.empty(n)
    udt = np.empty(n)
    nr = np.empty(n)
    d = np.empty(n)
    ng = 0
    i = 0
    while i < n:
        t = time[o[i]]
        j = i
        dk = 0
        while j < n and time[o[j]] == t:
            ts[j] = t
            if ev[o[j]]:
                dk += 1
            j += 1
        if dk > 0:
            udt[ng] = t
            nr[ng] = n - i
            d[ng] = dk
            ng += 1
        i = j
    return ts, udt[:ng], nr[:ng], d[:ng]


@njit
def r_quantile_monotone(times, surv, xmax, p, tol):
    """(done, q) of :func:`estimators.fast.km.r_quantile`'s first branch: x = (0, times),
    y = (0, 1 - surv) with the NaNs dropped when the last one is NaN; when y is non-decreasing
    (and has 2+ points) q is the first-crossing rule, else done = False (the caller's general
    rule)."""
    m = times.shape[0] + 1
    x = np.empty(m)
    y = np.empty(m)
    x[0] = 0.0
    y[0] = 0.0
    drop = m > 1 and surv[m - 2] != surv[m - 2]
    k = 1
    for i in range(m - 1):
        v = 1.0 - surv[i]
        if drop and v != v:
            continue
        x[k] = times[i]
        y[k] = v
        k += 1
    if k < 2:
        return False, 0.0
    for i in range(1, k):
        if not (y[i] >= y[i - 1]):
            return False, 0.0
    last = y[k - 1]
    if last < p - 1e-12:
        return True, np.inf
    lo = p - tol
    i1 = 0
    while i1 < k and y[i1] < lo:
        i1 += 1
    if abs(p - last) < tol:
        return True, (x[i1] + xmax) / 2.0
    hi = p + tol
    i2 = 0
    while i2 < k and y[i2] < hi:
        i2 += 1
    if i2 < k:
        return True, (x[i1] + x[i2]) / 2.0
    return True, np.inf


@njit
def km_median_c(time, event, z, tol):
    """(code, n_events, median, ci_lower, ci_upper) of :func:`estimators.fast.km.km_median` in
    one call, for n >= 1 rows (``event`` nonzero = death).

    At the event times t_k (n_k at risk, d_k deaths): S_k = exp(L_k), L_k = sum_{j<=k}
    log(n_j - d_j) - log(n_j) (added in time order, as numpy's cumsum), Greenwood
    V_k = sum_{j<=k} d_j / (n_j (n_j - d_j)), the log(-log) bands
    exp(-exp(log(-L_k) -/+ h_k)) = exp(L_k exp(-/+ h_k)), h_k = z sqrt(V_k) / L_k, NA where
    S_k = 0 (n_k = d_k, only possible at the last event time); then R's quantile rule at 0.5
    (:func:`r_quantile_monotone`, xmax the last follow-up time) on the curve and on each band.
    ``code`` 0: done; 1: a curve is not monotone (the caller's general rule); 2: a time is not
    finite (their sum is not). No events: (0, 0, inf, inf, inf).
    """
    n = time.shape[0]
    total = 0.0
    for i in range(n):
        total += time[i]
    if not math.isfinite(total):
        return 2, 0, np.nan, np.nan, np.nan
    ts, udt, nr, d = km_counts(time, event)
    m = udt.shape[0]
    if m == 0:
        return 0, 0, np.inf, np.inf, np.inf
    S = np.empty(m)
    lo = np.empty(m)
    hi = np.empty(m)
    logs = 0.0
    V = 0.0
    nev = 0
    for k in range(m):
        nmd = nr[k] - d[k]
        nev += int(d[k])
        logs += math.log(nmd) - math.log(nr[k])
        S[k] = math.exp(logs)
        if nmd > 0.0:
            V += d[k] / (nr[k] * nmd)
            c = math.exp(-z * math.sqrt(V) / logs)
            lo[k] = math.exp(logs * c)
            hi[k] = math.exp(logs / c)
        else:
            lo[k] = np.nan
            hi[k] = np.nan
    xmax = ts[n - 1]
    ok_m, med = r_quantile_monotone(udt, S, xmax, 0.5, tol)
    ok_l, qlo = r_quantile_monotone(udt, lo, xmax, 0.5, tol)
    ok_h, qhi = r_quantile_monotone(udt, hi, xmax, 0.5, tol)
    return 0 if ok_m and ok_l and ok_h else 1, nev, med, qlo, qhi
