"""Kaplan-Meier estimator, median survival with CI, and RMST.

Conventions replicated from lifelines 0.30 (``KaplanMeierFitter``):

* S(t) = exp(cumsum(log(n_j - d_j) - log(n_j))) (computed through logs, in the
  same order, so the floating-point values are bit-identical to lifelines').
* Greenwood sum V(t) = cumsum(d_j / (n_j (n_j - d_j))), with the term set to 0
  when n_j == d_j.
* Pointwise CI is the exponential-Greenwood (log(-log)) interval
  exp(-exp(log(-log S) -/+ z sqrt(V) / log S)), NaN (at S = 1) -> 1.0.
* Median and its CI by R's convention (``survival:::quantile.survfit`` / ``print.survfit``,
  :func:`r_quantile`), not lifelines' "first t with S(t) <= 0.5": where the curve equals 0.5
  within R's tolerance sqrt(machine eps) over a flat stretch (S = 51/102 is
  0.50000000000000022 in floating point), the median is the midpoint of the stretch (to the
  last follow-up time if the curve ends there); ``inf`` if the curve never reaches 0.5. The
  CI limits apply the same rule to the lower and upper pointwise log(-log) bands (R's
  ``survfit(..., conf.type = "log-log")``; a band is NA where S = 0).
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
from .surv_km_jit import km_counts, km_median_c, km_medians_counted_c, r_quantile_monotone

#: R's ``quantile.survfit(tolerance = sqrt(.Machine$double.eps))``
R_TOLERANCE = float(np.sqrt(np.finfo(float).eps))


def r_quantile(times, surv, xmax: float, p: float = 0.5, tol: float = R_TOLERANCE) -> float:
    """Time at which 1 - ``surv`` reaches ``p`` by R survival's ``findq`` rule; inf if never.

    ``times`` ascending step times, ``surv`` the curve (or a band) just after each (NaN = NA,
    dropped), starting from S = 1 at time 0; ``xmax`` the last follow-up time. With y = 1 - S
    and duplicates removed (first kept): i1 / i2 = the point with the smallest y >= p - tol /
    y >= p + tol; the quantile is (x[i1] + x[i2]) / 2, i.e. the midpoint of a flat stretch at
    p, else the crossing time; (x[i1] + xmax) / 2 when the curve ends within tol of p.
    """
    times = np.asarray(times, dtype=float)
    surv = np.asarray(surv, dtype=float)
    if times.ndim == 1 and surv.shape == times.shape:  # the monotone case compiled
        done, q = r_quantile_monotone(times, surv, float(xmax), float(p), float(tol))
        if done:
            return float(q)
    x = np.concatenate(([0.0], times))
    y = np.concatenate(([0.0], 1.0 - surv))
    if y[-1] != y[-1]:  # a band is NA from where S = 0: drop the NAs (R does too)
        ok = ~np.isnan(y)
        x, y = x[ok], y[ok]
    if y.shape[0] > 1 and (y[1:] >= y[:-1]).all():  # a monotone curve without NA: first crossings
        if y[-1] < p - 1e-12:  # R: max(y) < p; 1e-12 absorbs our exp(cumsum(log)) rounding
            return np.inf
        i1 = int(np.searchsorted(y, p - tol, side="left"))
        if abs(p - y[-1]) < tol:
            return float((x[i1] + xmax) / 2.0)
        i2 = int(np.searchsorted(y, p + tol, side="left"))
        return float((x[i1] + x[i2]) / 2.0) if i2 < y.shape[0] else np.inf
    ok = ~np.isnan(y)
    x, y = x[ok], y[ok]
    if y.max() < p - 1e-12:
        return np.inf
    _, first = np.unique(y, return_index=True)
    if first.shape[0] < y.shape[0]:
        keep = np.sort(first)
        x, y = x[keep], y[keep]

    def right_knot(shift):
        cand = np.flatnonzero(y + shift >= p)
        return None if cand.shape[0] == 0 else int(cand[np.argmin(y[cand])])

    i1 = right_knot(tol)
    if i1 is None:
        return np.inf
    if abs(p - y[-1]) < tol:
        return float((x[i1] + xmax) / 2.0)
    i2 = right_knot(-tol)
    if i2 is None:
        return np.inf
    return float((x[i1] + x[i2]) / 2.0)


def km_medians_counted(time, event, counts) -> np.ndarray:
    """Kaplan-Meier medians of B resamples given as multiplicities ``counts`` (B, n) of the rows
    of (``time``, ``event``) by R's rule (:func:`r_quantile`), in one compiled call
    (:func:`estimators.fast.surv_km_jit.km_medians_counted_c`): bit-identical to the numpy
    :func:`estimators.survival.km_medians_counted` (the product form of S, the first t with
    S <= 0.5 + tol, the midpoint of a flat stretch at 0.5, to the resample's last time if the
    curve ends there; inf if never reached)."""
    time = np.asarray(time, dtype=float).reshape(-1)
    ev = np.asarray(event).reshape(-1) > 0
    counts = np.asarray(counts)
    if counts.dtype != np.int64:
        counts = counts.astype(np.int64)
    return km_medians_counted_c(time, ev, counts, 0.5 + R_TOLERANCE, 0.5 - R_TOLERANCE, R_TOLERANCE)


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
        ts, udt, nr, d = km_counts(time, event)  # sorted times, event times, at risk, deaths
        n = ts.shape[0]
        nd = int(d.sum())
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

    def median(self, vals: np.ndarray, band: bool = False) -> float:
        """R's median of the curve (or of a pointwise band: NA where S = 0) at the event times."""
        if vals.shape[0] == 0:
            return np.inf
        if band and self.zero_last:
            vals = vals.copy()
            vals[-1] = np.nan
        return r_quantile(self.udt, vals, float(self.ts[-1]))


def _rows(time, event):
    """(time as floats, event, "") as 1-d arrays of one length, else (None, None, why)."""
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
    return time, event, ""


def _prep(time, event):
    """:func:`_rows` with finite times and the events as booleans (nonzero = death)."""
    time, event, msg = _rows(time, event)
    if msg:
        return None, None, msg
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
        median=core.median(core.S),
        median_ci_lower=core.median(lo, band=True),
        median_ci_upper=core.median(hi, band=True),
        n=core.n,
        n_events=core.nev,
        status=status,
        message=message,
    )


def km_median(time, event, alpha: float = 0.05) -> KMMedianResult:
    """Median survival time and its log(-log) CI by R's survfit conventions (:func:`r_quantile`).

    One compiled call (:func:`estimators.fast.surv_km_jit.km_median_c`: the curve, its bands and
    R's rule for monotone curves); a band that is not monotone takes :func:`r_quantile`'s
    general rule on :func:`km_fit`'s curve and bands.
    """
    time, event, msg = _rows(time, event)
    if not msg:
        z = Z975 if alpha == 0.05 else float(ndtri(1.0 - alpha / 2.0))
        code, nev, med, lo, hi = km_median_c(time, event, z, R_TOLERANCE)
        msg = "non-finite times" if code == 2 else ""
    if msg:
        return KMMedianResult(np.nan, np.nan, np.nan, 0, 0, STATUS_FAILED, msg)
    n = time.shape[0]
    if nev == 0:
        return KMMedianResult(
            np.inf,
            np.inf,
            np.inf,
            n,
            0,
            STATUS_WARNING,
            "no events (all censored): median not reached",
        )
    if code == 1:
        core = _KMCore(*_prep(time, event)[:2])
        band_lo, band_hi = core.bands(z)
        med = core.median(core.S)
        lo = core.median(band_lo, band=True)
        hi = core.median(band_hi, band=True)
    return KMMedianResult(
        float(med),
        float(lo),
        float(hi),
        n,
        nev,
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
