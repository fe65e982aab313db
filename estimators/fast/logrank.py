"""Two-group log-rank test.

Matches ``lifelines.statistics.logrank_test`` (equivalently
``multivariate_logrank_test`` with two groups): hypergeometric variance with
the (n - d) / (n - 1) tie correction (taken as 1 when n == 1), chi-square(1)
p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import STATUS_FAILED, STATUS_OK, p_chi2_1


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


def logrank_test(time, event, group) -> LogrankResult:
    """Log-rank test comparing two groups.

    Parameters
    ----------
    time : (n,) durations
    event : (n,) 1 = event, 0 = censored
    group : (n,) two distinct labels (bool / 0-1 fastest); "group 1" is the
        larger label.  The statistic is symmetric in the labelling.
    """
    time = np.asarray(time, dtype=float).reshape(-1)
    event = np.asarray(event).reshape(-1)
    group = np.asarray(group).reshape(-1)
    n = time.shape[0]
    if event.shape[0] != n or group.shape[0] != n:
        return _failed("length mismatch between time, event and group")
    if n == 0:
        return _failed("no observations")
    if not np.isfinite(time).all():
        return _failed("non-finite times")
    if group.dtype == bool:
        g = group
    else:
        u = np.unique(group)
        if u.shape[0] > 2:
            return _failed(f"expected 2 groups, got {u.shape[0]}")
        if u.shape[0] < 2:
            return _failed("one group empty")
        g = group == u[1]
    n1 = int(g.sum())
    if n1 == 0 or n1 == n:
        return _failed("one group empty")
    ev = event != 0 if event.dtype != bool else event

    order = np.argsort(time, kind="stable")
    ts = time[order]
    es = ev[order]
    gs = g[order]
    idx_d = np.flatnonzero(es)
    nd = idx_d.shape[0]
    o1 = float(gs[idx_d].sum())
    if nd == 0:
        return _failed("no events", obs=np.array([0.0, 0.0]), exp_=np.array([0.0, 0.0]), var=0.0)
    dt = ts[idx_d]
    gstart = np.concatenate(([0], np.flatnonzero(dt[1:] != dt[:-1]) + 1))
    udt = dt[gstart]
    d = np.diff(np.concatenate((gstart, [nd]))).astype(float)
    rstart = np.searchsorted(ts, udt, side="left")
    cg = np.concatenate(([0], np.cumsum(gs)))
    nr = (n - rstart).astype(float)
    nr1 = n1 - cg[rstart]
    e1 = d * nr1 / nr
    with np.errstate(divide="ignore", invalid="ignore"):
        fac = (nr - d) / (nr - 1.0)
    fac[nr == 1.0] = 1.0
    var = float((fac * d * nr1 * (nr - nr1) / (nr * nr)).sum())
    E1 = float(e1.sum())
    U = o1 - E1
    obs = np.array([nd - o1, o1])
    exp_ = np.array([nd - E1, E1])
    if not var > 0.0:
        return _failed("zero variance (no events while both groups at risk)", obs, exp_, var)
    stat = U * U / var
    return LogrankResult(
        test_statistic=stat,
        p_value=float(p_chi2_1(stat)),
        observed=obs,
        expected=exp_,
        variance=var,
        status=STATUS_OK,
        message="",
    )
