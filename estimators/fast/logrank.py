"""Two-group log-rank test.

Matches ``lifelines.statistics.logrank_test`` (equivalently
``multivariate_logrank_test`` with two groups): hypergeometric variance with
the (n - d) / (n - 1) tie correction (taken as 1 when n == 1), chi-square(1)
p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._common import STATUS_FAILED, STATUS_OK, p_chi2_1
from ._jit import njit


@dataclass(frozen=True, slots=True)
class LogrankResult:
    test_statistic: float
    p_value: float
    observed: np.ndarray  # events in (group 0, group 1)
    expected: np.ndarray  # expected events under H0
    variance: float  # variance of (O1 - E1)
    status: str
    message: str


def _failed(msg, obs=None, exp_=None, var=np.nan):
    return LogrankResult(
        test_statistic=np.nan,
        p_value=np.nan,
        observed=np.full(2, np.nan) if obs is None else obs,
        expected=np.full(2, np.nan) if exp_ is None else exp_,
        variance=float(var),
        status=STATUS_FAILED,
        message=msg,
    )


def _p_chi2_1(x: float) -> float:
    """Upper chi-square(1) tail erfc(sqrt(x / 2)) (scipy's chdtrc(1, x) costs ~15 us a call;
    they agree to ~1e-14 relative), chdtrc for anything but a finite x >= 0."""
    if x >= 0.0 and x < math.inf:
        return math.erfc(math.sqrt(0.5 * x))
    return float(p_chi2_1(x))


#: "no precomputed time order" (an empty int64 array: one compiled signature either way)
_NO_ORDER = np.empty(0, dtype=np.int64)


@njit
def _logrank_sums(time, ev, g, by_time=_NO_ORDER):
    """(n1, deaths, O1, E1, V) in one pass over the distinct times (stable time order, or
    ``by_time`` when given): at each death time N, N1 at risk and D deaths, E1 += D N1 / N,
    V += f D N1 (N - N1) / N^2 with the tie correction f = (N - D) / (N - 1) (1 when N == 1)."""
    n = time.shape[0]
    n1 = 0
    for i in range(n):
        if g[i]:
            n1 += 1
    if n1 == 0 or n1 == n:
        return n1, 0, 0.0, 0.0, 0.0
    order = by_time if by_time.shape[0] == n else np.argsort(time, kind="mergesort")
    nd = 0
    o1 = 0.0
    E1 = 0.0
    var = 0.0
    before = 0
    before1 = 0
    i = 0
    while i < n:
        t = time[order[i]]
        j = i
        d = 0
        d1 = 0
        m1 = 0
        while j < n and time[order[j]] == t:
            k = order[j]
            if g[k]:
                m1 += 1
            if ev[k]:
                d += 1
                if g[k]:
                    d1 += 1
            j += 1
        if d > 0:
            nr = float(n - before)
            nr1 = float(n1 - before1)
            dd = float(d)
            E1 += dd * nr1 / nr
            fac = 1.0 if nr == 1.0 else (nr - dd) / (nr - 1.0)
            var += fac * dd * nr1 * (nr - nr1) / (nr * nr)
            nd += d
            o1 += d1
        before += j - i
        before1 += m1
        i = j
    return n1, nd, o1, E1, var


#: codes of :func:`arms_problem_c`
ARMS_OK = 0
ARMS_EMPTY_0 = 1  # no patients in group 0
ARMS_EMPTY_1 = 2
ARMS_NO_EVENTS = 3  # no events at all
ARMS_NO_EVENTS_0 = 4  # no events in group 0
ARMS_NO_EVENTS_1 = 5


@njit
def arms_problem_c(e, g):
    """The first problem of a two-arm survival comparison (an ARMS_* code), in this order: no
    patients with g == 0, none with g == 1, no events (e > 0) at all, none in arm 0, none in
    arm 1. One pass counting patients and events per arm."""
    n0 = 0
    n1 = 0
    d = 0
    d0 = 0
    d1 = 0
    for i in range(e.shape[0]):
        dead = e[i] > 0.0
        if dead:
            d += 1
        if g[i] == 0.0:
            n0 += 1
            if dead:
                d0 += 1
        elif g[i] == 1.0:
            n1 += 1
            if dead:
                d1 += 1
    if n0 == 0:
        return ARMS_EMPTY_0
    if n1 == 0:
        return ARMS_EMPTY_1
    if d == 0:
        return ARMS_NO_EVENTS
    if d0 == 0:
        return ARMS_NO_EVENTS_0
    if d1 == 0:
        return ARMS_NO_EVENTS_1
    return ARMS_OK


def _flat(x, dtype) -> np.ndarray:
    """``x`` as a 1-d array (no copy when it is one)."""
    a = np.asarray(x, dtype=dtype)
    return a if a.ndim == 1 else a.reshape(-1)


@njit
def _all_finite(x):
    """Whether every x_i is finite (no NaN, no inf)."""
    for i in range(x.shape[0]):
        if not (x[i] - x[i] == 0.0):
            return False
    return True


@njit
def all_finite3(a, b, c):
    """Whether every value of the three arrays is finite (one compiled call: a survival
    endpoint's time, event and group)."""
    return _all_finite(a) and _all_finite(b) and _all_finite(c)


def _sums(time, event, group, order):
    """(message, nd, O1, E1, V): :func:`logrank_test`'s checks and sums (message "" when the
    test is defined; nd = -1 when no sums were made)."""
    time, event, group = _flat(time, float), _flat(event, None), _flat(group, None)
    n = time.shape[0]
    if event.shape[0] != n or group.shape[0] != n:
        return "length mismatch between time, event and group", -1, 0.0, 0.0, np.nan
    if n == 0:
        return "no observations", -1, 0.0, 0.0, np.nan
    if not _all_finite(time):
        return "non-finite times", -1, 0.0, 0.0, np.nan
    if group.dtype == bool:
        g = group
    else:
        u = np.unique(group)
        if u.shape[0] > 2:
            return f"expected 2 groups, got {u.shape[0]}", -1, 0.0, 0.0, np.nan
        if u.shape[0] < 2:
            return "one group empty", -1, 0.0, 0.0, np.nan
        g = group == u[1]
    ev = event != 0 if event.dtype != bool else event
    by_time = _NO_ORDER if order is None else np.asarray(order, dtype=np.int64)
    n1, nd, o1, E1, var = _logrank_sums(time, ev, g, by_time)
    if n1 == 0 or n1 == n:
        return "one group empty", -1, 0.0, 0.0, np.nan
    if nd == 0:
        return "no events", 0, 0.0, 0.0, 0.0
    if not var > 0.0:
        return "zero variance (no events while both groups at risk)", nd, o1, E1, var
    return "", nd, o1, E1, var


def logrank_test(time, event, group, order=None) -> LogrankResult:
    """Log-rank test comparing two groups.

    Parameters
    ----------
    time : (n,) durations
    event : (n,) 1 = event, 0 = censored
    group : (n,) two distinct labels (bool / 0-1 fastest); "group 1" is the
        larger label.  The statistic is symmetric in the labelling.
    order : optional ``np.argsort(time, kind="stable")`` when the caller has it (the same
        result, one sort fewer)
    """
    msg, nd, o1, E1, var = _sums(time, event, group, order)
    if nd < 0:
        return _failed(msg)
    obs = np.array([nd - o1, o1])
    exp_ = np.array([nd - E1, E1])
    if msg:
        return _failed(msg, obs, exp_, var)
    U = o1 - E1
    stat = U * U / var
    return LogrankResult(
        test_statistic=stat,
        p_value=_p_chi2_1(stat),
        observed=obs,
        expected=exp_,
        variance=var,
        status=STATUS_OK,
        message="",
    )


def logrank_oe(time, event, group, order=None) -> tuple[float, float, float, str]:
    """(O1 - E1, V, p, message) of :func:`logrank_test` without its record: the observed minus
    expected deaths of group 1, their variance and the p-value; message "" when the test is
    defined, else its failure message (O1 - E1 and V as the record holds them, NaN when it has
    none; p NaN)."""
    msg, nd, o1, E1, var = _sums(time, event, group, order)
    if nd < 0:
        return np.nan, np.nan, np.nan, msg
    U = o1 - E1
    if msg:
        return U, float(var), np.nan, msg
    return U, var, _p_chi2_1(U * U / var), ""
