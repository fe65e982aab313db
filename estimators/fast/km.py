"""Kaplan-Meier estimator, median survival with CI, and RMST.

Conventions replicated from lifelines 0.30 (``KaplanMeierFitter``):

* S(t) = exp(cumsum(log(n_j - d_j) - log(n_j))) (computed through logs, in the
  same order, so the floating-point values are bit-identical to lifelines').
* Greenwood sum V(t) = cumsum(d_j / (n_j (n_j - d_j))), with the term set to 0
  when n_j == d_j.
* Pointwise CI is the exponential-Greenwood (log(-log)) interval
  exp(-exp(log(-log S) -/+ z sqrt(V) / log S)), NaN (at S = 1) -> 1.0.
* Median (``kmf.median_survival_time_``) = first time t with S(t) <= 0.5
  (so if S hits exactly 0.5 the median is that time, not a midpoint);
  ``inf`` if S never drops to 0.5.
* Median CI = ``lifelines.utils.median_survival_times(kmf.confidence_interval_)``:
  the same rule applied to the lower and upper pointwise bands (lifelines uses
  a binary search, ``searchsorted``, on the band over its full timeline; we do
  exactly that when a band is not monotone).
* RMST up to ``horizon`` = ``lifelines.utils.restricted_mean_survival_time(
  kmf, t=horizon, return_variance=True)``: integral of the step function from
  min(0, min(T)) to horizon; lifelines' "variance" is E[min(T, tau)^2] -
  RMST^2 under the KM distribution (variance of the restricted survival
  time, *not* of the estimator).  We compute its integral exactly (lifelines
  uses numerical quadrature of the step function).  We additionally return
  ``se``, the usual Greenwood-type standard error of the RMST *estimator*
  (sum_j A_j^2 d_j / (n_j (n_j - d_j)), A_j = int_{t_j}^{tau} S, as in R's
  survRM2); lifelines has no counterpart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from ._common import STATUS_FAILED, STATUS_OK, STATUS_WARNING, Z975


@dataclass(frozen=True, slots=True)
class KMResult:
    times: np.ndarray  # distinct event (death) times
    at_risk: np.ndarray
    events: np.ndarray
    survival: np.ndarray  # S just after each event time
    greenwood: np.ndarray  # cumulative Greenwood sum
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    median: float
    median_ci_lower: float
    median_ci_upper: float
    n: int
    n_events: int
    status: str
    message: str


@dataclass(frozen=True, slots=True)
class KMMedianResult:
    median: float
    ci_lower: float
    ci_upper: float
    n: int
    n_events: int
    status: str
    message: str


@dataclass(frozen=True, slots=True)
class RMSTResult:
    rmst: float
    variance: float  # lifelines' return_variance: Var(min(T, horizon)) under KM
    se: float  # SE of the RMST estimator (Greenwood-type)
    horizon: float
    status: str
    message: str


class _KMCore:
    __slots__ = ("ts", "udt", "nr", "d", "S", "V", "n", "nev", "t0", "zero_last")

    def __init__(self, time, event):
        order = np.argsort(time, kind="stable")
        ts = time[order]
        es = event[order]
        n = ts.shape[0]
        idx_d = np.flatnonzero(es)
        nd = idx_d.shape[0]
        self.ts = ts
        self.n = n
        self.nev = nd
        self.t0 = min(0.0, float(ts[0]))
        self.zero_last = False
        if nd == 0:
            self.udt = np.empty(0)
            self.nr = np.empty(0)
            self.d = np.empty(0)
            self.S = np.empty(0)
            self.V = np.empty(0)
            return
        dt = ts[idx_d]
        gstart = np.concatenate(([0], np.flatnonzero(dt[1:] != dt[:-1]) + 1))
        udt = dt[gstart]
        d = np.diff(np.concatenate((gstart, [nd]))).astype(float)
        nr = (n - np.searchsorted(ts, udt, side="left")).astype(float)
        nmd = nr - d
        # n_j - d_j can only be 0 at the last event time (nobody left at risk)
        self.zero_last = nmd[-1] == 0.0
        if self.zero_last:
            with np.errstate(divide="ignore", invalid="ignore"):
                logS = np.cumsum(np.log(nmd) - np.log(nr))
                vterm = d / (nr * nmd)
            vterm[-1] = 0.0
        else:
            logS = np.cumsum(np.log(nmd) - np.log(nr))
            vterm = d / (nr * nmd)
        self.udt = udt
        self.nr = nr
        self.d = d
        self.S = np.exp(logS)
        self.V = np.cumsum(vterm)

    def bands(self, z):
        S = self.S
        if self.zero_last:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.log(S)
                lv = np.log(-v)
                h = z * np.sqrt(self.V) / v
                lo = np.exp(-np.exp(lv - h))
                hi = np.exp(-np.exp(lv + h))
            lo[np.isnan(lo)] = 1.0
            hi[np.isnan(hi)] = 1.0
            return lo, hi
        # at event times 0 < S < 1, so everything is finite
        v = np.log(S)
        lv = np.log(-v)
        h = z * np.sqrt(self.V) / v
        return np.exp(-np.exp(lv - h)), np.exp(-np.exp(lv + h))

    def first_le_half(self, vals: np.ndarray, monotone: bool = False) -> float:
        """lifelines' qth_survival_time(0.5, series) on the full timeline."""
        if vals.shape[0] == 0 or vals[-1] > 0.5:
            return np.inf
        if monotone or vals.shape[0] == 1 or (vals[1:] <= vals[:-1]).all():
            k = int(np.searchsorted(-vals, -0.5, side="left"))
            return float(self.udt[k])
        # non-monotone band: replicate the binary search over lifelines' timeline
        tl = np.unique(np.concatenate(([self.t0], self.ts)))
        k = np.searchsorted(self.udt, tl, side="right") - 1
        full = np.where(k >= 0, vals[np.maximum(k, 0)], 1.0)
        j = int(np.searchsorted(-full, -0.5, side="left"))
        return float(tl[j])


def _prep(time, event):
    time = np.asarray(time, dtype=float)
    event = np.asarray(event)
    if time.ndim != 1:
        time = time.reshape(-1)
    if event.ndim != 1:
        event = event.reshape(-1)
    if time.shape[0] != event.shape[0]:
        return None, None, "length mismatch between time and event"
    if time.shape[0] == 0:
        return None, None, "no observations"
    if not math.isfinite(time.sum()):
        return None, None, "non-finite times"
    ev = event if event.dtype == bool else event != 0
    return time, ev, ""


def km_fit(time, event, alpha: float = 0.05) -> KMResult:
    """Kaplan-Meier curve (at distinct event times), pointwise CI and median."""
    time, ev, msg = _prep(time, event)
    if msg:
        e = np.empty(0)
        return KMResult(e, e, e, e, e, e, e, np.nan, np.nan, np.nan, 0, 0, STATUS_FAILED, msg)
    core = _KMCore(time, ev)
    z = Z975 if alpha == 0.05 else float(ndtri(1.0 - alpha / 2.0))
    lo, hi = core.bands(z)
    status, message = STATUS_OK, ""
    if core.nev == 0:
        status, message = STATUS_WARNING, "no events (all censored): median not reached"
    return KMResult(
        times=core.udt,
        at_risk=core.nr,
        events=core.d,
        survival=core.S,
        greenwood=core.V,
        ci_lower=lo,
        ci_upper=hi,
        median=core.first_le_half(core.S, monotone=True),
        median_ci_lower=core.first_le_half(lo),
        median_ci_upper=core.first_le_half(hi),
        n=core.n,
        n_events=core.nev,
        status=status,
        message=message,
    )


def km_median(time, event, alpha: float = 0.05) -> KMMedianResult:
    """Median survival time and its CI (lifelines conventions), fast path."""
    time, ev, msg = _prep(time, event)
    if msg:
        return KMMedianResult(np.nan, np.nan, np.nan, 0, 0, STATUS_FAILED, msg)
    core = _KMCore(time, ev)
    if core.nev == 0:
        return KMMedianResult(
            np.inf,
            np.inf,
            np.inf,
            core.n,
            0,
            STATUS_WARNING,
            "no events (all censored): median not reached",
        )
    med = core.first_le_half(core.S, monotone=True)
    z = Z975 if alpha == 0.05 else float(ndtri(1.0 - alpha / 2.0))
    lo, hi = core.bands(z)
    return KMMedianResult(
        med,
        core.first_le_half(lo),
        core.first_le_half(hi),
        core.n,
        core.nev,
        STATUS_OK,
        "median not reached" if med == np.inf else "",
    )


def rmst(time, event, horizon: float) -> RMSTResult:
    """Restricted mean survival time up to ``horizon`` from the KM curve."""
    time, ev, msg = _prep(time, event)
    horizon = float(horizon)
    if msg:
        return RMSTResult(np.nan, np.nan, np.nan, horizon, STATUS_FAILED, msg)
    core = _KMCore(time, ev)
    t0 = core.t0
    if not horizon >= t0:
        return RMSTResult(np.nan, np.nan, np.nan, horizon, STATUS_FAILED, "horizon before time 0")
    m = int(np.searchsorted(core.udt, horizon, side="right"))
    udt = core.udt[:m]
    pts = np.empty(m + 2)
    pts[0] = t0
    pts[1:-1] = udt
    pts[-1] = horizon
    vals = np.empty(m + 1)
    vals[0] = 1.0
    vals[1:] = core.S[:m]
    seg = np.diff(pts)
    area = vals * seg
    mean = float(area.sum())
    # lifelines integrates tau * S(tau) from 0 (not from t0)
    p2 = np.maximum(pts, 0.0)
    sq = float((vals * (p2[1:] ** 2 - p2[:-1] ** 2)).sum())
    variance = sq - mean * mean
    # Greenwood-type SE of the estimator: A_j = int_{t_j}^{horizon} S
    if m > 0:
        tail = np.cumsum(area[::-1])[::-1][1:]  # A_j for j = 1..m
        nr, d = core.nr[:m], core.d[:m]
        nmd = nr - d
        with np.errstate(divide="ignore", invalid="ignore"):
            term = tail * tail * d / (nr * nmd)
        term[nmd == 0.0] = 0.0
        se = float(np.sqrt(term.sum()))
    else:
        se = 0.0
    status, message = STATUS_OK, ""
    if core.nev == 0:
        status, message = STATUS_WARNING, "no events (all censored)"
    return RMSTResult(mean, variance, se, horizon, status, message)
