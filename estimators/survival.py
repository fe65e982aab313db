"""Estimators: survival family (see estimators/base.py for the contract).

Time-to-event analyses of pain progression-free survival (``pfs``: treatment start to pain
progression or death) and overall survival (``os``), in months, comparing observation (group 1)
with control (group 0). Every estimator takes ``endpoints`` (a list of ``pfs`` / ``os``) and
reports its rows for each endpoint; endpoints are analysed independently, so trouble with one
(no events, a convergence warning) never marks the other's rows.

kinds and targets (estimand names as in sim/truth.py):

- ``km_median``: Kaplan-Meier median per group and their difference -> ``{ep}_median_0``,
  ``{ep}_median_1``, ``{ep}_median_diff`` (marginal medians of T(0), T(1)).
- ``logrank``: log-rank test; Peto one-step log HR -> ``{ep}_loghr`` (approximates the marginal).
- ``cox``: Cox PH of group (+ ``covariates``) -> ``{ep}_loghr`` (unadjusted: marginal) or
  ``{ep}_loghr_adj`` (adjusted: conditional on the measured covariates).
- ``iptw_cox``: marginal structural Cox with stabilized IPT weights -> ``{ep}_loghr`` (marginal).
- ``rmst``: Kaplan-Meier restricted mean survival time difference -> ``{ep}_rmst_diff``.

Engines (``engine:`` option of every kind here): ``fast`` (the default) runs the numpy kernels of
:mod:`estimators.fast` on arrays read straight from ``cohort.arrays``
(:func:`survival_arrays_fast`, :func:`covariate_arrays`); ``reference`` runs lifelines (and
statsmodels for the propensity model). Both go through :mod:`estimators.engines`: the Cox fits
run Newton-Raphson to the maximum partial likelihood (R's ``coxph``; lifelines with tight
``fit_options``), the robust SE is R's sandwich with Efron ties, Kaplan-Meier medians follow
R's ``survfit`` midpoint rule. The engines agree to ~1e-10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from palliasim.estimators import engines
from palliasim.estimators.base import (
    FAILED,
    NAN,
    OK,
    WARNING,
    Estimate,
    Estimator,
    StatisticalTrouble,
    add_messages,
    capture,
    failed_rows,
    register,
    statistical_exceptions,
    wald_row,
)
from palliasim.estimators.engines import km_rmst_variance, peto_logrank  # noqa: F401 (re-export)
from palliasim.estimators.fast import logrank as fast_logrank
from palliasim.estimators.fast.km import R_TOLERANCE
from palliasim.estimators.fast.km import km_medians_counted as km_medians_counted_fast

ENDPOINTS = ("pfs", "os")
# The measured confounders the truth's adjusted estimands condition on (== sim.truth.ADJUSTMENT_SET;
# kept here so estimators do not import the data-generating model, checked by a test).
DEFAULT_COVARIATES = (
    "age",
    "male",
    "ecog",
    "visceral",
    "lesions_gt3",
    "charlson",
    "nrs0",
    "strong_opioid",
)
_PS_EPS = 1e-8  # propensity scores closer than this to 0 or 1 count as a positivity violation


# ---------------------------------------------------------------------------------------------
# data extraction (the only places that touch the cohort; a fast engine plugs in here)


def survival_arrays(cohort, endpoint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, event, group) as float arrays for ``endpoint``; rows with any NaN dropped."""
    df = cohort.patients
    t = df[f"{endpoint}_months"].to_numpy(dtype=float)
    e = df[f"{endpoint}_event"].to_numpy(dtype=float)
    g = df["group"].to_numpy(dtype=float)
    keep = np.isfinite(t) & np.isfinite(e) & np.isfinite(g)
    return t[keep], e[keep], g[keep]


def covariate_matrix(cohort, endpoint: str, covariates) -> tuple[pd.DataFrame, int]:
    """Analysis frame (``_time``, ``_event``, ``group``, covariates) of the complete cases.

    Non-numeric covariates (e.g. ``primary``) become 0/1 indicators (first level dropped).
    Returns the frame and the number of rows dropped for missing values. An unknown covariate
    name is a configuration error and raises ValueError.
    """
    df = cohort.patients
    missing = [c for c in covariates if c not in df.columns]
    if missing:
        raise ValueError(
            f"unknown covariate(s) {', '.join(missing)}; cohort columns include "
            f"{', '.join(DEFAULT_COVARIATES)}"
        )
    out = pd.DataFrame(
        {
            "_time": df[f"{endpoint}_months"].to_numpy(dtype=float),
            "_event": df[f"{endpoint}_event"].to_numpy(dtype=float),
            "group": df["group"].to_numpy(dtype=float),
        }
    )
    for c in covariates:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
            out[c] = col.to_numpy(dtype=float)
        else:
            dummies = pd.get_dummies(col, prefix=c, drop_first=True, dtype=float)
            dummies[col.isna().to_numpy()] = np.nan
            for d in dummies.columns:
                out[d] = dummies[d].to_numpy()
    n0 = len(out)
    out = out.dropna().reset_index(drop=True)
    return out, n0 - len(out)


def _float_column(cohort, col: str) -> np.ndarray:
    a = cohort.numeric_column(col)
    return cohort.patients[col].to_numpy(dtype=float) if a is None else a


def survival_arrays_fast(cohort, endpoint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`survival_arrays` from ``cohort.arrays`` (no DataFrame)."""
    t = _float_column(cohort, f"{endpoint}_months")
    e = _float_column(cohort, f"{endpoint}_event")
    g = _float_column(cohort, "group")
    if fast_logrank.all_finite3(t, e, g):
        return t, e, g
    keep = np.isfinite(t) & np.isfinite(e) & np.isfinite(g)
    return t[keep], e[keep], g[keep]


def design_rows(cohort, endpoint: str, covariates):
    """The complete cases of :func:`covariate_matrix` as one (3 + p, n) array of rows time,
    event, group, covariates: (rows, names, dropped). Numeric covariates are read from
    ``cohort.arrays``; with any categorical (or unknown) covariate the pandas
    :func:`covariate_matrix` builds the same columns (or raises). ``rows[2:].T`` is the Cox
    design (group first) as a view."""
    cols = []
    for c in covariates:
        a = cohort.numeric_column(c)
        if a is None:
            df, dropped = covariate_matrix(cohort, endpoint, covariates)
            names = [c for c in df.columns if c not in ("_time", "_event", "group")]
            rows = df[["_time", "_event", "group", *names]].to_numpy(dtype=float).T
            return np.ascontiguousarray(rows), names, dropped
        cols.append(a)
    t = _float_column(cohort, f"{endpoint}_months")
    e = _float_column(cohort, f"{endpoint}_event")
    g = _float_column(cohort, "group")
    rows = np.array([t, e, g, *cols])
    if not math.isnan(rows.sum()):  # no NaN (an inf - inf NaN: the mask below decides)
        return rows, list(covariates), 0
    keep = ~np.isnan(rows).any(axis=0)  # = dropna()
    return rows[:, keep], list(covariates), int(t.size - np.count_nonzero(keep))


def covariate_arrays(cohort, endpoint: str, covariates):
    """:func:`design_rows` as (time, event, group, X, names, dropped), X (n, p) (views)."""
    rows, names, dropped = design_rows(cohort, endpoint, covariates)
    return rows[0], rows[1], rows[2], rows[3:].T, names, dropped


def time_order(cohort, endpoint: str, t: np.ndarray):
    """The stable time order of ``t`` shared by a replication's fits (``Cohort.stable_order``)
    when ``t`` is the whole endpoint column (no row dropped), else None (the fit sorts)."""
    if t.shape[0] != cohort.n:
        return None
    return cohort.stable_order(f"{endpoint}_months")


def _cox_row(est, estimand, t, e, X, names, dropped, weights=None, order=None) -> Estimate:
    """Estimator ``est``'s row for the first column of ``X`` (group) of the Cox fit
    (:func:`estimators.engines.cox`, robust SE when weighted): Wald normal CI and p-value; the
    message counts the rows ``dropped`` for missing covariates."""
    fit = engines.cox(
        t, e, X, names, engine=est.engine, weights=weights, robust=weights is not None, order=order
    )
    msg = f"complete cases: {dropped} rows with missing covariates dropped" if dropped else ""
    return wald_row(
        est.name, estimand, float(fit.params[0]), float(fit.se[0]), est.alpha, t.size, message=msg
    )


def analysis_arrays(cohort, endpoint: str, covariates, engine: str):
    """(time, event, group, X, names, dropped) of the complete cases: :func:`covariate_arrays`
    (from ``cohort.arrays``, fast engine) or :func:`covariate_matrix` (pandas, reference)."""
    if engine == "fast":
        return covariate_arrays(cohort, endpoint, covariates)
    df, dropped = covariate_matrix(cohort, endpoint, covariates)
    names = [c for c in df.columns if c not in ("_time", "_event", "group")]
    return (
        df["_time"].to_numpy(dtype=float),
        df["_event"].to_numpy(dtype=float),
        df["group"].to_numpy(dtype=float),
        df[names].to_numpy(dtype=float).reshape(len(df), len(names)),
        names,
        dropped,
    )


def check_arms(t: np.ndarray, e: np.ndarray, g: np.ndarray, endpoint: str) -> None:
    """Raise StatisticalTrouble for an empty arm, no events at all, or no events in an arm
    (one compiled pass, :func:`estimators.fast.logrank.arms_problem_c`)."""
    code = fast_logrank.arms_problem_c(e, g)
    if code == fast_logrank.ARMS_OK:
        return
    if code in (fast_logrank.ARMS_EMPTY_0, fast_logrank.ARMS_EMPTY_1):
        raise StatisticalTrouble(f"no patients in group {code - 1} ({endpoint})")
    if code == fast_logrank.ARMS_NO_EVENTS:
        raise StatisticalTrouble(f"all {endpoint} times censored (no events)")
    raise StatisticalTrouble(
        f"no {endpoint} events in group {code - fast_logrank.ARMS_NO_EVENTS_0}"
    )


# ---------------------------------------------------------------------------------------------
# numerical helpers


def km_medians_resampled(time: np.ndarray, event: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Kaplan-Meier medians of the resamples ``time[idx[b]], event[idx[b]]`` (idx: (B, n) ints):
    :func:`km_medians_counted` of the resamples' multiplicities."""
    return km_medians_counted(time, event, resample_counts(idx, time.size))


def resample_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, n) multiplicities: how often each of ``n`` units appears in each resample (idx: (B, m))."""
    b = idx.shape[0]
    flat = (idx + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


def km_medians_counted(time: np.ndarray, event: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Kaplan-Meier medians of B resamples given as multiplicities ``counts`` (B, n) of the rows.

    One 2-D pass over the distinct event times t_k of the data: at risk N_bk = (resample size)
    - (counts before t_k in time order, an integer cumulative sum), deaths D_bk, S_bk =
    prod_{j <= k} (1 - D_bj / N_bj); R's median rule (:func:`estimators.fast.km.r_quantile`:
    the first t with S <= 0.5 + sqrt(eps), the midpoint of a flat stretch at 0.5 within
    sqrt(eps), to the resample's last time if the curve ends there; inf if never reached). The
    product form is the engines' exp(cumsum(log)) to rounding (~1e-16), far inside R's
    tolerance (tests compare with the engines resample by resample). The pass first covers
    the event times until the data's own curve is down to 0.3; the few resamples not yet
    below 0.5 there are finished over all event times (the same numbers, less work).
    """
    ev = event > 0
    order = np.lexsort((~ev, time))  # by time, deaths before censorings at the same time
    ts = time[order]
    idx_d = np.flatnonzero(ev[order])
    b = counts.shape[0]
    if idx_d.size == 0:
        return np.full(b, np.inf)
    dt = ts[idx_d]
    gstart = np.flatnonzero(np.r_[True, dt[1:] != dt[:-1]])
    udt = dt[gstart]
    rstart = idx_d[gstart]  # the deaths at udt[k] are rows rstart[k] .. rstart[k] + d[k] - 1
    d0 = np.diff(np.r_[gstart, idx_d.size])
    c = counts[:, order].astype(np.int32)  # integer sums are exact (and 3x faster than float)
    size = c.sum(axis=1)
    # the data's own curve (all counts 1) decides where the first pass stops
    s0 = np.cumprod(1.0 - d0 / (ts.size - rstart))
    k1 = min(int(np.count_nonzero(s0 > 0.3)) + 2, udt.size)
    med, done = _km_medians_pass(c, size, ts, rstart, d0, udt, k1)
    if not done.all():
        rest = ~done
        med[rest] = _km_medians_pass(c[rest], size[rest], ts, rstart, d0, udt, udt.size)[0]
    return med


def _km_medians_pass(c, size, ts, rstart, d0, udt, k1):
    """(medians, decided) of :func:`km_medians_counted` over the first ``k1`` event times;
    ``decided``: the curve fell below 0.5 - tol there (always True when k1 covers them all)."""
    last = k1 == udt.size
    r = rstart[:k1]
    rd = r + d0[:k1]
    before = np.zeros((c.shape[0], int(rd[-1]) + 1), dtype=np.int32)  # counts before each row
    np.cumsum(c[:, : int(rd[-1])], axis=1, out=before[:, 1:])
    br = before[:, r]
    at_risk = size[:, None] - br
    deaths = before[:, rd] - br
    S = np.cumprod(1.0 - deaths / np.maximum(at_risk, 1), axis=1)
    hit1 = S <= 0.5 + R_TOLERANCE
    hit2 = S <= 0.5 - R_TOLERANCE
    x1 = udt[hit1.argmax(axis=1)]
    x2 = udt[hit2.argmax(axis=1)]
    below = hit2[:, -1]
    med = np.where(below, (x1 + x2) / 2, np.inf)
    if not last:
        return med, below
    ends_flat = np.abs(S[:, -1] - 0.5) < R_TOLERANCE
    if ends_flat.any():  # the flat stretch runs to the resample's last (possibly censored) time
        end = ts.size - 1 - np.argmax(c[ends_flat, ::-1] > 0, axis=1)
        med[ends_flat] = (x1[ends_flat] + ts[end]) / 2
    return np.where(hit1[:, -1], med, np.inf), np.ones(c.shape[0], dtype=bool)


def _exception_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else ""
    if isinstance(exc, StatisticalTrouble):
        return first
    return f"{type(exc).__name__}: {first}".rstrip(": ")


def _normalise_endpoints(endpoints) -> list[str]:
    eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    bad = [e for e in eps if e not in ENDPOINTS]
    if bad or not eps or len(set(eps)) != len(eps):
        raise ValueError(
            f"endpoints must be a non-empty list of distinct values from "
            f"{', '.join(ENDPOINTS)}; got {endpoints!r}"
        )
    return eps


# ---------------------------------------------------------------------------------------------
# estimators


@dataclass
class _SurvivalEstimator(Estimator):
    """Shared machinery: ``endpoints`` option, per-endpoint failure and warning isolation."""

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    endpoints: list = field(default_factory=lambda: list(ENDPOINTS))
    engines = ("reference", "fast")

    def __post_init__(self):
        super().__post_init__()
        self.endpoints = _normalise_endpoints(self.endpoints)

    def _targets_for(self, ep: str) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def needs(self) -> frozenset[str]:
        """group, each endpoint's time and event, and the ``covariates`` option if any."""
        cols = {"group", *getattr(self, "covariates", ())}
        for ep in self.endpoints:
            cols.update((f"{ep}_months", f"{ep}_event"))
        return frozenset(cols)

    def targets(self) -> tuple[str, ...]:
        return tuple(name for ep in self.endpoints for name in self._targets_for(ep))

    def _fit_endpoint(self, cohort, ep: str, rng) -> list[Estimate]:  # pragma: no cover
        raise NotImplementedError

    def _fit(self, cohort, rng) -> list[Estimate]:
        rows: list[Estimate] = []
        for ep in self.endpoints:
            rows.extend(self._guarded(lambda ep=ep: self._fit_endpoint(cohort, ep, rng), ep))
        return rows

    def _guarded(self, fn, ep: str) -> list[Estimate]:
        """Run ``fn``; statistical exceptions -> failed rows, warnings -> that endpoint's rows.
        With one endpoint its rows are all the rows: ``Estimator.fit``'s own capture attaches
        the warnings to them (the same messages, one capture fewer)."""
        if len(self.endpoints) == 1:
            return self._rows_or_failed(fn, ep)
        with capture() as msgs:
            rows = self._rows_or_failed(fn, ep)
        add_messages(rows, msgs)
        return rows

    def _rows_or_failed(self, fn, ep: str) -> list[Estimate]:
        """``fn()``, or endpoint ``ep``'s failed rows when it raises a statistical exception."""
        try:
            return fn()
        except statistical_exceptions() as exc:
            return failed_rows(self.name, self._targets_for(ep), _exception_message(exc))


@register("km_median")
@dataclass
class KMMedian(_SurvivalEstimator):
    """Kaplan-Meier median survival per group and the difference of medians.

    Model: nonparametric Kaplan-Meier estimator per group; median by R's ``survfit`` rule (the
    first t with S(t) <= 0.5, or the midpoint of a stretch where S = 0.5 within sqrt(eps),
    :func:`estimators.fast.km.r_quantile`). Estimands ``{ep}_median_0``, ``{ep}_median_1``
    (medians of the potential survival times T(0), T(1)) and ``{ep}_median_diff`` (observation
    - control, consistent as the difference of two consistent medians); all marginal
    (unadjusted), hence unbiased only without confounding.
    Inference. Per group: CI = the median of the pointwise log(-log) band of S (Brookmeyer-
    Crowley type, R's ``survfit(conf.type = "log-log")``), p-value NaN (no null for one median).
    SE of every row: the SD of the medians over ``n_boot`` bootstrap resamples of patients,
    stratified by group (the same resamples serve both endpoints), drawn only from the ``rng``
    passed to ``fit``. Difference: normal (Wald) CI = difference +/- z SE_boot and two-sided
    p-value 2 Phi(-|difference / SE_boot|) (so CI and p agree), testing equal medians.
    Resamples whose median is not reached are dropped from the SE and the row becomes a
    warning saying how many. A median not reached in the data -> that group's rows fail
    ("median not reached in group g").
    """

    draws_random = True  # the bootstrap resamples

    n_boot: int = 200

    def __post_init__(self):
        super().__post_init__()
        if int(self.n_boot) != self.n_boot or self.n_boot < 2:
            raise ValueError(
                f"estimators.{self.name}.n_boot must be an integer >= 2; got {self.n_boot}"
            )
        self.n_boot = int(self.n_boot)

    def _targets_for(self, ep):
        return (f"{ep}_median_0", f"{ep}_median_1", f"{ep}_median_diff")

    def _fit(self, cohort, rng) -> list[Estimate]:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                f"estimator '{self.name}' (km_median) draws bootstrap resamples: "
                "pass a numpy Generator as rng"
            )
        if self.engine == "fast":
            g = _float_column(cohort, "group")
        else:
            g = cohort.patients["group"].to_numpy(dtype=float)
        # resample patients (not endpoint rows) once, so both endpoints share the resamples:
        # group 0 then group 1, each an (n_boot, n_g) integers draw; kept as multiplicities
        counts = {}
        for a in (0, 1):
            n_a = int(np.count_nonzero(g == a))
            if n_a:
                counts[a] = resample_counts(rng.integers(0, n_a, size=(self.n_boot, n_a)), n_a)
        rows: list[Estimate] = []
        for ep in self.endpoints:
            rows.extend(self._guarded(lambda ep=ep: self._fit_endpoint(cohort, ep, counts), ep))
        return rows

    def _median_ci(self, t, e):
        """(median, ci_low, ci_high) of one group (R's survfit conventions, log(-log) CI)."""
        r = engines.km_median(t, e, self.alpha, engine=self.engine)
        if not np.isfinite(r.median):
            return r.median, NAN, NAN
        return r

    def _fit_endpoint(self, cohort, ep, counts) -> list[Estimate]:
        if self.engine == "fast":
            t_all = _float_column(cohort, f"{ep}_months")
            e_all = _float_column(cohort, f"{ep}_event")
            g_all = _float_column(cohort, "group")
        else:
            df = cohort.patients
            t_all = df[f"{ep}_months"].to_numpy(dtype=float)
            e_all = df[f"{ep}_event"].to_numpy(dtype=float)
            g_all = df["group"].to_numpy(dtype=float)
        if not (np.all(np.isfinite(t_all)) and np.all(np.isfinite(e_all))):
            raise StatisticalTrouble(
                f"missing {ep} times or events (bootstrap needs complete data)"
            )
        rows, med, boot, trouble = [], {}, {}, {}
        for a in (0, 1):
            t, e = t_all[g_all == a], e_all[g_all == a]
            name = f"{ep}_median_{a}"
            if t.size == 0:
                trouble[a] = f"no patients in group {a} ({ep})"
            elif not np.any(e > 0):
                trouble[a] = f"no {ep} events in group {a}: median not reached in group {a}"
            else:
                m, ci_lo, ci_hi = self._median_ci(t, e)
                if not np.isfinite(m):
                    trouble[a] = f"median not reached in group {a} ({ep})"
            if a in trouble:
                rows.append(
                    Estimate(self.name, name, status=FAILED, message=trouble[a], n_used=int(t.size))
                )
                continue
            # fast: the compiled walk (bit-identical to the numpy km_medians_counted below)
            medians = km_medians_counted_fast if self.engine == "fast" else km_medians_counted
            bm = medians(t, e, counts[a])
            med[a], boot[a] = m, bm
            se, note = _boot_sd(bm)
            rows.append(
                Estimate(
                    self.name,
                    name,
                    m,
                    se,
                    float(ci_lo),
                    float(ci_hi),
                    NAN,
                    int(t.size),
                    status=WARNING if note else OK,
                    message=note,
                )
            )
        name = f"{ep}_median_diff"
        if trouble:
            rows.append(
                Estimate(
                    self.name,
                    name,
                    status=FAILED,
                    n_used=int(t_all.size),
                    message="; ".join(trouble.values()),
                )
            )
            return rows
        se, note = _boot_sd(boot[1] - boot[0])
        if not se > 0:
            why = f"bootstrap SE of the {ep} median difference is 0 or undefined"
            rows.append(
                Estimate(self.name, name, status=FAILED, n_used=int(t_all.size), message=why)
            )
            return rows
        rows.append(
            wald_row(
                self.name,
                name,
                med[1] - med[0],
                se,
                self.alpha,
                int(t_all.size),
                status=WARNING if note else OK,
                message=note,
            )
        )
        return rows


def _boot_sd(x: np.ndarray) -> tuple[float, str]:
    fin = x[np.isfinite(x)]
    note = (
        (f"median not reached in {x.size - fin.size} of {x.size} bootstrap resamples (excluded)")
        if fin.size < x.size
        else ""
    )
    return (float(np.std(fin, ddof=1)) if fin.size >= 2 else NAN), note


@register("logrank")
@dataclass
class LogRank(_SurvivalEstimator):
    """Log-rank test with the Peto one-step log hazard ratio.

    Test: lifelines ``logrank_test`` (observation vs control; its p-value is reported).
    Estimate: Peto's one-step estimator log HR = (O - E) / V for the observation group, with O - E
    the observed minus expected events and V the hypergeometric variance summed over the distinct
    event times; SE = 1 / sqrt(V), Wald CI. The Wald z equals the log-rank z, so CI and p-value
    agree. Estimand ``{ep}_loghr``: an approximation of the marginal (unadjusted) log HR, close
    for log HR near 0 and balanced arms, biased towards 0 as the HR moves away from 1.
    """

    def _targets_for(self, ep):
        return (f"{ep}_loghr",)

    def _fit_endpoint(self, cohort, ep, rng) -> list[Estimate]:
        t, e, g = (survival_arrays_fast if self.engine == "fast" else survival_arrays)(cohort, ep)
        check_arms(t, e, g, ep)
        order = time_order(cohort, ep, t) if self.engine == "fast" else None
        res = engines.logrank(t, e, g, engine=self.engine, order=order)
        o_e, v = res.o_minus_e, res.variance
        if not v > 0:
            raise StatisticalTrouble(f"zero log-rank variance ({ep})")
        return [
            wald_row(
                self.name,
                f"{ep}_loghr",
                o_e / v,
                1 / np.sqrt(v),
                self.alpha,
                t.size,
                p_value=res.p_value,
            )
        ]


@register("cox")
@dataclass
class Cox(_SurvivalEstimator):
    """Cox proportional-hazards regression of group (+ ``covariates``), lifelines, Efron ties.

    Model: h(t | A, X) = h0(t) exp(beta A + gamma' X) (``CoxPHFitter``), model-based SE, Wald CI
    and p-value as computed by lifelines. Unadjusted (``covariates: []``, the study's analysis):
    ``{ep}_loghr``, the marginal log HR. Adjusted: ``{ep}_loghr_adj``, a conditional log HR given
    the listed covariates (not the marginal one: HRs are non-collapsible); the truth conditions
    on sim.truth.ADJUSTMENT_SET, so use exactly that list to target it. Complete cases only
    (rows with missing covariates dropped, counted in the message); non-numeric covariates enter
    as indicators.
    """

    covariates: list = field(default_factory=list)

    def __post_init__(self):
        super().__post_init__()
        self.covariates = list(self.covariates)

    def _targets_for(self, ep):
        return (f"{ep}_loghr_adj" if self.covariates else f"{ep}_loghr",)

    def _fit_endpoint(self, cohort, ep, rng) -> list[Estimate]:
        if self.engine == "fast":
            rows, names, dropped = design_rows(cohort, ep, self.covariates)
            t, e, g = rows[0], rows[1], rows[2]
            X = rows[2:].T  # group, covariates: a view
        else:
            t, e, g, Xc, names, dropped = analysis_arrays(cohort, ep, self.covariates, self.engine)
            X = np.column_stack([g, Xc]) if Xc.shape[1] else g[:, None]
        check_arms(t, e, g, ep)
        order = time_order(cohort, ep, t) if self.engine == "fast" else None
        estimand = self._targets_for(ep)[0]
        return [_cox_row(self, estimand, t, e, X, ["group", *names], dropped, order=order)]


@register("iptw_cox")
@dataclass
class IPTWCox(_SurvivalEstimator):
    """Marginal structural Cox model with stabilized inverse-probability-of-treatment weights.

    Propensity e(X) = P(A=1 | X) by logistic regression (statsmodels ``Logit``, intercept + main
    effects of ``covariates``; default the truth's ADJUSTMENT_SET). Stabilized weights
    w = P(A=1)/e(X) for observation and P(A=0)/(1 - e(X)) for control (P(A=a) = sample
    proportions); ``trim`` > 0 truncates the weights at their ``trim`` and ``1 - trim``
    quantiles. Then a Cox model of group alone, weighted (lifelines ``weights_col``), with the
    robust (Lin-Wei sandwich) SE, Wald CI and p-value; the SE treats the weights as known (usually
    conservative for this estimand). Estimand ``{ep}_loghr``: the marginal log HR, identified
    only if the covariates capture all confounding (the ``study`` scenario's frailty U is
    unmeasured, so there it stays biased). Complete cases; propensities within 1e-8 of 0 or 1
    (separation, positivity violation) -> failed.
    """

    covariates: list = field(default_factory=lambda: list(DEFAULT_COVARIATES))
    trim: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        self.covariates = list(self.covariates)
        if not (0.0 <= self.trim < 0.5):
            raise ValueError(f"estimators.{self.name}.trim must be in [0, 0.5); got {self.trim}")

    def _targets_for(self, ep):
        return (f"{ep}_loghr",)

    def weights(self, a: np.ndarray, Xc: np.ndarray) -> np.ndarray:
        """Stabilized (and possibly truncated) weights from the propensity Logit (intercept +
        covariates ``Xc``) by :func:`estimators.engines.logit`."""
        x = np.column_stack([np.ones(a.size), Xc])
        labels = ["Intercept", *[f"x{j}" for j in range(Xc.shape[1])]]
        try:
            fit = engines.logit(a, x, labels, "propensity model", engine=self.engine)
        except StatisticalTrouble as exc:
            if "separation" in str(exc) or "numerically 0 or 1" in str(exc):
                raise StatisticalTrouble(
                    "propensity scores at 0 or 1 (separation): positivity violated, weights "
                    "undefined"
                ) from None
            raise
        return self._stabilized(a, fit.mu)

    def _stabilized(self, a: np.ndarray, ps: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(ps)) or np.any(ps < _PS_EPS) or np.any(ps > 1 - _PS_EPS):
            raise StatisticalTrouble(
                "propensity scores at 0 or 1 (separation): positivity violated, weights undefined"
            )
        p1 = a.mean()
        w = np.where(a == 1, p1 / ps, (1 - p1) / (1 - ps))
        if self.trim > 0:
            lo, hi = np.quantile(w, [self.trim, 1 - self.trim])
            w = np.clip(w, lo, hi)
        return w

    def _fit_endpoint(self, cohort, ep, rng) -> list[Estimate]:
        t, e, g, Xc, names, dropped = analysis_arrays(cohort, ep, self.covariates, self.engine)
        check_arms(t, e, g, ep)
        w = self.weights(g, Xc)
        return [_cox_row(self, f"{ep}_loghr", t, e, g[:, None], ["group"], dropped, weights=w)]


@register("rmst")
@dataclass
class RMST(_SurvivalEstimator):
    """Difference in restricted mean survival time up to ``horizon`` months (Kaplan-Meier).

    RMST_a = area under the group-a Kaplan-Meier curve on [0, horizon] (lifelines
    ``restricted_mean_survival_time``, exact for KM). SE = sqrt(V0 + V1) with V_a the
    Greenwood-type variance of the KM area (see :func:`km_rmst_variance`; lifelines' own
    ``return_variance`` is the variance of min(T, tau), not of the estimator, and is not used).
    Wald CI and p-value. Estimand ``{ep}_rmst_diff`` = E[min(T(1), tau)] - E[min(T(0), tau)],
    marginal; ``horizon`` must equal the scenario's ``truth.rmst_horizon`` (12 months by
    default). A horizon beyond the last follow-up time in a group -> failed.
    """

    horizon: float = 12.0

    def __post_init__(self):
        super().__post_init__()
        if not (np.isfinite(self.horizon) and self.horizon > 0):
            raise ValueError(
                f"estimators.{self.name}.horizon must be a positive number of "
                f"months; got {self.horizon}"
            )
        self.horizon = float(self.horizon)

    def _targets_for(self, ep):
        return (f"{ep}_rmst_diff",)

    def _fit_endpoint(self, cohort, ep, rng) -> list[Estimate]:
        fast = self.engine == "fast"
        t, e, g = (survival_arrays_fast if fast else survival_arrays)(cohort, ep)
        check_arms(t, e, g, ep)
        est, var = {}, {}
        for a in (0, 1):
            ta, ea = t[g == a], e[g == a]
            if self.horizon > ta.max():
                raise StatisticalTrouble(
                    f"horizon {self.horizon:g} months is beyond the last {ep} follow-up time "
                    f"({ta.max():.3g} months) in group {a}"
                )
            est[a], var[a] = engines.rmst(ta, ea, self.horizon, engine=self.engine)
        se = float(np.sqrt(var[0] + var[1]))
        if not se > 0:
            raise StatisticalTrouble(f"zero variance of the {ep} RMST difference")
        return [wald_row(self.name, f"{ep}_rmst_diff", est[1] - est[0], se, self.alpha, t.size)]


__all__ = [
    "Cox",
    "IPTWCox",
    "KMMedian",
    "LogRank",
    "RMST",
    "covariate_matrix",
    "covariate_arrays",
    "design_rows",
    "km_medians_counted",
    "km_medians_resampled",
    "resample_counts",
    "km_rmst_variance",
    "peto_logrank",
    "survival_arrays",
    "survival_arrays_fast",
]
