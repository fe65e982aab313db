"""Estimators: longitudinal family (see estimators/base.py for the contract).

Pain NRS over the visits (weeks 0, 1, 4, 8, 12): the study's linear mixed model (``lmm``), a
marginal model by GEE (``gee``), and three week-12 ANCOVAs differing in how missing week-12 NRS
is handled (``ancova_cc`` complete cases, ``locf_ancova`` last observation carried forward,
``mi_ancova`` multiple imputation).

Targets (sim/truth.py): ``nrs_diff_w{1,4,8,12}`` = E[NRS_j(1) - NRS_j(0)], the marginal mean
difference on the observed 0-10 scale under the hypothetical strategy for death and dropout
(had every patient lived and stayed in the study).

The numerical operations (mixed model, GEE, OLS, posterior draws) live in
:mod:`estimators.engines`; this module keeps the data preparation (:func:`nrs_wide`,
:func:`visit_design`: the explicit fixed-effects design and per-visit contrasts, :func:`locf`),
the multiple-imputation machinery (:func:`mice_impute`, :func:`rubin`) and the estimators.

Engines (``engine:`` option): ``fast`` (the default) for ``lmm`` (random intercept; the exact
profiled (RE)ML kernel of :mod:`estimators.fast.lmm`), ``gee`` (the closed-form exchangeable
kernel of :mod:`estimators.fast.gee`) and the three ANCOVAs (numpy OLS); ``reference`` =
statsmodels. ``lmm`` with ``random_slope`` falls back to ``reference`` (see
:class:`LinearMixedModel`).
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from palliasim.estimators import engines
from palliasim.estimators.base import (
    FAILED,
    OK,
    WARNING,
    Estimate,
    Estimator,
    StatisticalTrouble,
    register,
    wald_row,
)
from palliasim.estimators.design import (
    ARM_LABELS,
    certainly_full_rank_gram,
    check_covariates,
    check_full_rank,
    check_full_rank_fast,
    patient_covariates,
    patient_covariates_fast,
)
from palliasim.estimators.fast import lmm as fast_lmm
from palliasim.estimators.fast import mi as fast_mi
from palliasim.estimators.fast import wide as fast_wide
from palliasim.estimators.fast._small import contrast_estimates
from palliasim.sim.schedule import MONTHS_PER_WEEK, POST_WEEKS, STATUS_LABELS, WEEKS

NRS_ESTIMANDS = tuple(f"nrs_diff_w{w}" for w in POST_WEEKS)
W12 = ("nrs_diff_w12",)
DEAD = STATUS_LABELS.index("dead")  # visit status code of a death
_WEEKS_ARR = np.asarray(WEEKS)
_NO_STATUS = np.empty(0)


# --------------------------------------------------------------------------------------------
# data: the visits table in wide form


class NRSWide(NamedTuple):
    """Patient-level arrays aligned with ``cohort.patients`` rows."""

    group: np.ndarray  # (n,) float 0/1 (NaN if missing)
    nrs0: np.ndarray  # (n,) baseline NRS (patients.nrs0)
    nrs: np.ndarray  # (n, 5) NRS at weeks 0, 1, 4, 8, 12; NaN unless observed
    status: np.ndarray  # (n, 5) status codes 0..3, -1 where unknown


def _status_codes(s: np.ndarray) -> np.ndarray:
    if np.issubdtype(np.asarray(s).dtype, np.number):
        return np.asarray(s, dtype=float)
    lab = {k: i for i, k in enumerate(STATUS_LABELS)}
    return np.array([lab.get(str(x), -1) for x in s], dtype=float)


def _patient_major(vid: np.ndarray, week: np.ndarray, ids: np.ndarray) -> bool:
    """Row r of the visits is patient ids[r // 5] at week WEEKS[r % 5], for every row."""
    if vid.dtype.kind in "iuf" and ids.dtype.kind in "iuf" and week.dtype.kind in "iuf":
        return bool(fast_wide.patient_major(vid, week, ids, _WEEKS_ARR))
    n, v = ids.shape[0], len(WEEKS)
    return (
        vid.shape[0] == n * v
        and np.array_equal(week, np.tile(_WEEKS_ARR, n))
        and np.array_equal(vid, np.repeat(ids, v))
    )


def _float_copy(cohort, pa: dict, col: str) -> np.ndarray:
    """Patient column ``col`` as float: ``cohort.numeric_column`` (read-only, converted once per
    cohort) when the cohort has it, else a float copy of ``pa[col]``."""
    get = getattr(cohort, "numeric_column", None)
    a = get(col) if get is not None else None
    return np.array(pa[col], dtype=float) if a is None else a


def _nrs_wide(cohort) -> NRSWide:
    pa, va = cohort.arrays, cohort.visit_arrays
    ids = np.asarray(pa["id"])
    n = ids.shape[0]
    v = len(WEEKS)
    # the cohort's own float columns (read-only, shared with the other estimators) when numeric
    group, nrs0 = (_float_copy(cohort, pa, k) for k in ("group", "nrs0"))
    vid, week = np.asarray(va["id"]), np.asarray(va["week"])
    nrs = np.asarray(va["nrs"], dtype=float)
    status = np.asarray(va["status"]) if "status" in va else None
    if status is not None and status.dtype.kind not in "iufc":  # (= not np.number)
        status = _status_codes(status)
    if _patient_major(vid, week, ids):
        # the generator's layout: patient-major, every scheduled visit, week order
        st = _NO_STATUS if status is None else status
        W, S = fast_wide.patient_major_tables(nrs, st, nrs0, v)
    else:
        order = np.argsort(ids, kind="stable")
        pos = np.clip(np.searchsorted(ids[order], vid), 0, max(n - 1, 0))
        row = order[pos] if n else pos
        col = np.clip(np.searchsorted(_WEEKS_ARR, week), 0, v - 1)
        ok = (ids[row] == vid) & (_WEEKS_ARR[col] == week) if n else np.zeros(0, bool)
        W = np.full((n, v), np.nan)
        S = np.full((n, v), -1.0)
        W[row[ok], col[ok]] = nrs[ok]
        if status is not None:
            S[row[ok], col[ok]] = status[ok]
        W[:, 0] = np.where(np.isfinite(W[:, 0]), W[:, 0], nrs0)
    for a in (group, nrs0, W, S):
        if a.flags.writeable:
            a.flags.writeable = False  # shared by every estimator of the cohort (cached)
    return NRSWide(group, nrs0, W, S)


#: nrs_wide per cohort object, dropped with the cohort (weak keys): the estimators of one
#: replication share one wide table; nothing outlives its cohort or crosses processes
_WIDE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def nrs_wide(cohort) -> NRSWide:
    """Wide NRS (n, 5) from ``cohort.visits``; week-0 gaps filled from ``patients.nrs0``.

    Built once per cohort object (a cohort is not modified after it is made) and shared,
    read-only, by the estimators that use it.
    """
    try:
        hit = _WIDE_CACHE.get(cohort)
    except TypeError:  # not weak-referenceable: no cache
        return _nrs_wide(cohort)
    if hit is None:
        hit = _WIDE_CACHE[cohort] = _nrs_wide(cohort)
    return hit


def dead_by_week12(cohort, wide: NRSWide) -> np.ndarray:
    """Dead at the week-12 visit: visit status 'dead', else (no status) OS event before week 12."""
    known = wide.status[:, -1] >= 0
    dead = wide.status[:, -1] == DEAD
    if known.all():
        return dead
    pa = cohort.arrays
    if "os_months" in pa and "os_event" in pa:
        t = np.asarray(pa["os_months"], float)
        e = np.asarray(pa["os_event"], float)
        by_os = (e == 1) & (t <= 12 * MONTHS_PER_WEEK)
        return np.where(known, dead, by_os)
    return dead


# --------------------------------------------------------------------------------------------
# numerical cores (numpy in, numpy out)


def visit_design(
    group: np.ndarray,
    week: np.ndarray,
    weeks: tuple[int, ...],
    Z: np.ndarray | None = None,
    znames: list[str] | None = None,
):
    """Explicit fixed-effects design of ``y ~ group * C(week) [+ Z]`` (treatment coding).

    Columns: intercept, group, week_w (w in weeks[1:]), group:week_w (w in weeks[1:]), Z. The
    reference visit is ``weeks[0]``. Returns (X, names, C) with C (len(weeks), p) the contrasts
    giving the group difference at each visit: group (reference visit), group + group:week_w.
    """
    k = len(weeks) - 1
    D = (
        np.column_stack([(week == w).astype(float) for w in weeks[1:]])
        if k
        else np.empty((len(week), 0))
    )
    cols = [np.ones(len(week)), group.astype(float), D, D * group[:, None]]
    names = (
        ["intercept", "group"]
        + [f"week_{w}" for w in weeks[1:]]
        + [f"group:week_{w}" for w in weeks[1:]]
    )
    if Z is not None and Z.shape[1]:
        cols.append(Z)
        names += list(znames or [f"z{j}" for j in range(Z.shape[1])])
    X = np.column_stack(cols)
    C = np.zeros((len(weeks), X.shape[1]))
    C[:, 1] = 1.0
    for j in range(k):
        C[j + 1, 2 + k + j] = 1.0
    return X, names, C


@functools.lru_cache(maxsize=64)
def _arm_visit_template(weeks: tuple[int, ...]):
    """(T3, names, C) of :func:`visit_design` for the 2 x len(weeks) arm x visit rows: T3[a, j]
    the design row of arm a at visit weeks[j] (read-only arrays, cached per visit tuple)."""
    v = len(weeks)
    T, names, C = visit_design(np.repeat([0.0, 1.0], v), np.tile(weeks, 2), weeks)
    T3 = T.reshape(2, v, -1)
    T3.flags.writeable = False
    C.flags.writeable = False
    return T3, tuple(names), C


def _template_design(weeks: tuple[int, ...], znames):
    """(T3, names, C): the arm x visit template of :func:`_arm_visit_template`, the names of
    the columns [template, covariates ``znames``] and the contrasts C over them (zeros for the
    covariates)."""
    T3, names, C = _arm_visit_template(tuple(weeks))
    names = list(names)
    if len(znames):
        names = names + list(znames)
        C = np.concatenate([C, np.zeros((len(weeks), len(znames)))], axis=1)
    return T3, names, C


def _visit_template(group: np.ndarray, weeks: tuple[int, ...], Z: np.ndarray, znames):
    """:func:`visit_design` in padded form: X (n, len(weeks), p) with X[i, j] the row of
    patient i at visit weeks[j] (taken from the 2 x len(weeks) template of the arm x visit
    rows), names and contrasts C as :func:`visit_design`."""
    T3, names, C = _template_design(weeks, list(znames) if Z.shape[1] else [])
    v = len(weeks)
    X = T3[group.astype(np.intp)]
    if Z.shape[1]:
        X = np.concatenate([X, np.broadcast_to(Z[:, None, :], (Z.shape[0], v, Z.shape[1]))], 2)
    return X, names, C


def contrast_rows(
    method: str,
    weeks: tuple[int, ...],
    fit: engines.MixedFit,
    C: np.ndarray,
    alpha: float,
    n_used: int,
    n_family: int = 0,
) -> list[Estimate]:
    """Wald rows (normal) for each visit contrast.

    With ``n_family`` = k > 0 (Bonferroni): p = min(1, k p) and the simultaneous CI at level
    1 - alpha / k (``ci_level``), so each CI excludes 0 exactly when its p <= alpha.
    """
    status = WARNING if fit.messages else OK
    msg = "; ".join(fit.messages)
    ests, ses = contrast_estimates(np.asarray(C, dtype=float), fit.params, fit.cov)
    ests, ses = ests.tolist(), ses.tolist()
    return [
        wald_row(
            method,
            f"nrs_diff_w{w}",
            est,
            se,
            alpha,
            n_used,
            n_family=n_family,
            status=status,
            message=msg,
        )
        for w, est, se in zip(weeks, ests, ses)
    ]


def is_monotone(miss: np.ndarray) -> bool:
    """True if every row's missing cells (columns in visit order) are a suffix: once missing,
    missing at every later column (pure dropout; an intermittent miss breaks it)."""
    return not np.any(miss[:, :-1] & ~miss[:, 1:])


def mice_impute(
    Y: np.ndarray,
    P: np.ndarray,
    rng: np.random.Generator,
    m: int,
    cycles: int,
    labels: tuple[str, ...],
    engine: str = "fast",
) -> np.ndarray:
    """m completed copies (m, n, q) of ``Y`` (n, q; NaN = missing, columns in visit order) given
    the complete predictors ``P`` (n, k); the m chains are independent and run side by side.

    Each imputation model regresses a visit (its observed rows) on predictors; a posterior draw
    (beta*, sigma*) (:func:`estimators.engines.bayes_draws`, reference prior) gives the missing
    cells X beta* + sigma* N(0, 1). Imputations stay continuous (not rounded or clipped to 0-10):
    rounding biases means and is not needed for a linear analysis model.

    - Monotone pattern (:func:`is_monotone`, dropout only): sequential regressions, one pass and
      no cycles: visit j on [P, visits before j] (observed at every row observed at j, so one
      fit serves the m chains), imputed in visit order from the chain's completed earlier visits.
      This is the exact factorisation of the same normal model the chained equations iterate
      towards, so ``cycles`` is not used.
    - Otherwise (intermittent misses), chained equations: start each missing cell from a random
      observed value of its column, then ``cycles`` rounds visiting the incomplete columns in
      order, column j on [P, the other columns of the chain's current completed Y].
    Random numbers per regression (all m chains at once): chi2 (m), then N(0, 1) (m, p + number
    of missing cells); the chained start draws one rng.integers (m, missing cells) per column
    (indices of observed values).
    Fast engine: the whole chain in one compiled call (:func:`estimators.fast.mi.impute_chains`,
    the same random numbers drawn up front in the same order); it hands back to the numpy code
    below (generator state restored) whenever a regression needs the QR path.
    """
    if engine == "fast":
        done = fast_mi.impute_chains(Y, P, rng, m, cycles)
        if done is not None:
            return done
    n, q = Y.shape
    k = P.shape[1]
    miss = np.isnan(Y)
    todo = [j for j in range(q) if miss[:, j].any()]
    X = np.empty((m, n, k + q))  # [P, completed visits] per chain; the visits block is updated
    X[:, :, :k] = P
    X[:, :, k:] = Y
    V = X[:, :, k:]
    if not todo:
        return V.copy()

    def draw(j, Xo, yo, Xr, r, common=None):
        try:
            beta, sigma, z, _ = engines.bayes_draws(
                yo, Xo, m, rng, int(r.sum()), engine=engine, common=common
            )
        except StatisticalTrouble as exc:
            raise StatisticalTrouble(
                f"imputation model for {labels[j]} is not estimable: {exc}"
            ) from exc
        V[:, r, j] = np.matmul(Xr, beta[:, :, None])[:, :, 0] + sigma[:, None] * z

    if is_monotone(miss):
        for j in todo:
            r = miss[:, j]
            draw(j, X[0, ~r, : k + j], Y[~r, j], X[:, r, : k + j], r)
        return V.copy()
    for j in todo:
        obs = Y[~miss[:, j], j]
        V[:, miss[:, j], j] = obs[rng.integers(0, obs.size, size=(m, int(miss[:, j].sum())))]
    # per column: its predictors, and the observed rows complete in them (the same in every
    # chain and every cycle: their cross-products are computed once) or not
    plan = []
    n_miss = miss.sum(axis=1)
    for j in todo:
        r = miss[:, j]
        cols = np.array([c for c in range(k + q) if c != k + j])
        vary = ~r & (n_miss > 0)
        fixed = ~r & ~vary
        common = engines.common_rows(X[0, fixed][:, cols], Y[fixed, j])
        iv, ir = np.flatnonzero(vary)[:, None], np.flatnonzero(r)[:, None]
        plan.append((j, r, cols, iv, ir, Y[vary, j], common))
    for _ in range(cycles):
        for j, r, cols, iv, ir, yv, common in plan:
            draw(j, X[:, iv, cols], yv, X[:, ir, cols], r, common)
    return V.copy()


def rubin(q: np.ndarray, u: np.ndarray, df_com: float):
    """Rubin's rules: (estimate, total-variance SE, Barnard-Rubin df, fraction of missing info).

    T = Ubar + (1 + 1/m) B; lambda = (1 + 1/m) B / T; nu_old = (m - 1) / lambda^2;
    nu_obs = (nu_com + 1) / (nu_com + 3) nu_com (1 - lambda); nu = 1 / (1/nu_old + 1/nu_obs).
    """
    m = q.shape[0]
    qbar = float(q.mean())
    ubar = float(u.mean())
    b = float(q.var(ddof=1)) if m > 1 else 0.0
    t = ubar + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t if t > 0 else 0.0
    nu_obs = (df_com + 1) / (df_com + 3) * df_com * (1 - lam)
    if lam < 1e-12:
        nu = nu_obs
    else:
        nu_old = (m - 1) / lam**2
        nu = 1.0 / (1.0 / nu_old + 1.0 / nu_obs) if nu_obs > 0 else nu_old
    return qbar, float(np.sqrt(t)), float(nu), float(lam)


def locf(W: np.ndarray) -> np.ndarray:
    """Last finite value of each row of ``W`` (NaN if the row has none)."""
    fin = np.isfinite(W)
    idx = np.where(fin, np.arange(W.shape[1])[None, :], -1)
    last = idx.max(axis=1)
    out = W[np.arange(W.shape[0]), np.maximum(last, 0)]
    return np.where(last >= 0, out, np.nan)


# --------------------------------------------------------------------------------------------
# helpers shared by the estimators


def _covariate_rows(cohort, covariates, wide: NRSWide, fast: bool = False):
    """Covariate matrix, names, and the patients usable (finite group, nrs0 and covariates)."""
    Z, znames = (patient_covariates_fast if fast else patient_covariates)(cohort, covariates)
    usable = np.isfinite(wide.group)
    if Z.shape[1]:
        usable &= np.isfinite(Z).all(axis=1)
    return Z, znames, usable


def _note_dropped(usable: np.ndarray, wide: NRSWide, every: bool = False) -> str:
    """The message counting patients excluded for missing covariates ("" if ``every`` patient
    is usable or none was excluded)."""
    if every:
        return ""
    k = int((np.isfinite(wide.group) & ~usable).sum())
    return f"{k} patient(s) with missing covariates excluded" if k else ""


def _arms_at(group: np.ndarray, present: np.ndarray) -> list[int]:
    """Arms with no observation among ``present`` rows."""
    return [a for a in (0, 1) if not np.any(present & (group == a))]


@functools.lru_cache(maxsize=64)
def _week_cols(weeks: tuple[int, ...]) -> np.ndarray:
    """The columns of ``weeks`` in the wide NRS table (read-only int64, cached per tuple)."""
    cols = np.array([WEEKS.index(w) for w in weeks], dtype=np.int64)
    cols.flags.writeable = False
    return cols


def _split_estimable(wide: NRSWide, usable: np.ndarray, weeks: tuple[int, ...]):
    """(estimable weeks, {week: reason}) : a visit is estimable if both arms have an NRS there."""
    cnt = fast_wide.arm_visit_counts(wide.nrs, _week_cols(weeks), usable, wide.group)  # (2, v)
    if cnt.min() > 0:  # (the usual case: every visit observed in both arms)
        return tuple(weeks), {}
    ok, why = [], {}
    for w, (c0, c1) in zip(weeks, cnt.T.tolist()):
        if c0 == 0 and c1 == 0:
            why[w] = f"no observed NRS at week {w} in either arm"
        elif c0 == 0 or c1 == 0:
            why[w] = f"no observed NRS at week {w} in the {ARM_LABELS[0 if c0 == 0 else 1]} arm"
        else:
            ok.append(w)
    return tuple(ok), why


def _long(wide: NRSWide, usable: np.ndarray, weeks: tuple[int, ...]):
    """Long-format observed rows (patient-major, week order) restricted to ``weeks``."""
    cols = [WEEKS.index(w) for w in weeks]
    W = wide.nrs[:, cols]
    keep = np.isfinite(W) & usable[:, None]
    pid, jj = np.nonzero(keep)
    return pid, np.asarray(weeks)[jj], W[pid, jj]


def _merge_rows(
    method: str, estimands, rows: list[Estimate], why: dict, note: str
) -> list[Estimate]:
    by = {r.estimand: r for r in rows}
    out = []
    for e in estimands:
        w = int(e.rsplit("_w", 1)[1])
        r = by.get(e) or Estimate(method, e, status=FAILED, message=why.get(w, "not estimable"))
        if note and r.status != FAILED:
            r.message = "; ".join(filter(None, [r.message, note]))
        out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# estimators


@register("lmm")
@dataclass
class LinearMixedModel(Estimator):
    """The study's analysis: linear mixed model of NRS over weeks 0, 1, 4, 8, 12 (statsmodels MixedLM).

    Model (observed visit rows only): NRS_ij = b0 + b1 group_i + sum_w g_w [week_j = w]
        + sum_w d_w group_i [week_j = w] (+ covariates_i' c) + u_i0 (+ u_i1 week_j / 12) + e_ij,
    w in {1, 4, 8, 12} (week 0 = reference), u_i ~ N(0, G) (random intercept; random slope on
    week/12 if ``random_slope``, unstructured G), e_ij ~ N(0, s2), REML (or ML). The fixed-effects
    design is built explicitly by :func:`visit_design` (no formulas).
    Reports for each post-baseline visit w the group difference b1 + d_w (= difference of the
    model's visit means, the "estimated marginal means compared per visit"), SE from the
    model-based fixed-effects covariance, normal Wald CI and p-value; with ``bonferroni`` the
    p-value min(1, 4 p) across the four visits and the matching simultaneous CI at level
    1 - alpha / 4 (recorded in each row's ``ci_level``), so a CI excludes 0 exactly when its
    p <= alpha. -> ``nrs_diff_w1``, ``nrs_diff_w4``, ``nrs_diff_w8``, ``nrs_diff_w12``.

    ``adjust_baseline: true`` (the ``lmm_adjusted`` config) adjusts for baseline NRS as trials
    do: the responses are the post-baseline visits only and nrs0 enters as a fixed effect,
        NRS_ij = b0 + b1 group_i + sum_w g_w [week_j = w] + sum_w d_w group_i [week_j = w]
                 + c nrs0_i (+ covariates_i' c2) + u_i0 + e_ij,   w in {4, 8, 12} (week 1 = ref),
    reporting b1 + d_w at each visit (b1 at week 1); patients without nrs0 are excluded.

    Target: marginal mean difference, hypothetical strategy (sim/truth.py). Without covariates the
    contrast is marginal (a difference of arm means); it is unbiased for the causal difference
    only when treatment is randomized (the `study` scenario is confounded). With ``covariates`` it
    is conditional on them, which equals the marginal difference in a linear model without
    effect modification (approximately so here: the DGM clips and rounds NRS to 0-10).

    Missing data and death: likelihood-based on all observed visits, so valid under MAR given
    the observed NRS history and the model's covariates (ignorable dropout). Deaths are treated
    like dropouts (MAR), i.e. the hypothetical "had they lived" strategy; biased if death or
    dropout depends on unobserved pain or frailty. Patients with missing covariates are excluded
    (noted in the message). Compound symmetry (random intercept only) is a misspecified
    covariance when trajectories diverge; under MAR dropout that can bias the later visits.

    Diagnostics: ConvergenceWarning, "random effects covariance is singular" and cov_re ~ 0
    (boundary) -> status warning with the message. A visit where an arm has no observed NRS is
    dropped from the model and its row fails; no baseline in an arm fails all rows.

    Engines: both find the exact profiled (RE)ML optimum of the random-intercept model and
    report the standard model-based covariance sigma^2 (X' H^-1 X)^-1 of lme4 / SAS
    (:func:`estimators.engines.mixed_model`): ``fast`` (default) from the profile likelihood's
    sufficient statistics, ``reference`` from statsmodels MixedLM's own profile score. The
    fast engine has no random-slope model: with ``random_slope: true`` and ``engine: fast`` the
    model is fitted by the reference engine (statsmodels' BFGS optimum, gtol 1e-5, covariance by
    the same formula), the rows say ``engine = reference`` and their message notes the fallback
    (with the engine left unset it resolves to ``reference`` silently).
    """

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    covariates: list[str] = field(default_factory=list)
    random_slope: bool = False
    reml: bool = True
    bonferroni: bool = True
    adjust_baseline: bool = False
    estimands = NRS_ESTIMANDS
    engines = ("reference", "fast")

    def __post_init__(self):
        explicit = self.engine not in ("", None)
        super().__post_init__()
        self.covariates = check_covariates(self.name, self.covariates)
        if "nrs0" in self.covariates and self.adjust_baseline:
            raise ValueError(
                f"estimators.{self.name}.covariates: nrs0 is already adjusted for by "
                "adjust_baseline: true; remove it from covariates"
            )
        self._engine_note = ""
        if self.random_slope and self.engine == "fast":
            self.engine = "reference"
            if explicit:
                self._engine_note = (
                    "engine fast has no random-slope model: fitted by the reference engine "
                    "(statsmodels MixedLM)"
                )

    def _fit(self, cohort, rng) -> list[Estimate]:
        fast = self.engine == "fast"
        wide = nrs_wide(cohort)
        Z, znames, usable = _covariate_rows(cohort, self.covariates, wide, fast)
        if self.adjust_baseline:  # baseline NRS as a covariate, post-baseline visits as responses
            usable &= np.isfinite(wide.nrs0)
            Z, znames = np.column_stack([wide.nrs0, Z]), ["nrs0", *znames]
        every = bool(usable.all())
        note = "; ".join(filter(None, [_note_dropped(usable, wide, every), self._engine_note]))
        if self.adjust_baseline:
            weeks, why = _split_estimable(wide, usable, POST_WEEKS)
            post = weeks
        else:
            weeks, why = _split_estimable(wide, usable, WEEKS)
            if 0 not in weeks:
                raise StatisticalTrouble(f"{why[0]} (baseline needed for the group effect)")
            post = POST_WEEKS if weeks == WEEKS else tuple(w for w in weeks if w != 0)
        if not post:
            return _merge_rows(self.name, NRS_ESTIMANDS, [], why, note)
        # padded (patient x visit) design: row i holds patient i's visits, X from a template
        cols = _week_cols(weeks)
        Y = wide.nrs if every and len(cols) == len(WEEKS) else wide.nrs[usable][:, cols]
        g, Zu = (wide.group, Z) if every else (wide.group[usable], Z[usable])
        what = "LMM fixed-effects design"
        if fast and not self.random_slope:
            # one compiled pass over the patients and their visit patterns gives the fit's
            # sufficient statistics, the range of y and X'X (within + between cross-products)
            # for the rank pre-test, from the arm x visit template without building the padded
            # design; the exact check on its rows only when the pre-test is inconclusive
            T3, names, C = _template_design(weeks, znames if Zu.shape[1] else [])
            stats = fast_lmm.template_stats(Y, T3, g.astype(np.int64), Zu)
            if stats.y_min == stats.y_max:
                raise StatisticalTrouble(
                    f"NRS is constant (all {stats.N} observed values equal {stats.y_min:g})"
                )
            if not (stats.finite and certainly_full_rank_gram(stats.gram, stats.N)):
                X3 = _visit_template(g, weeks, Zu, znames)[0]
                check_full_rank(X3[np.isfinite(Y)], names, what)
            fit = engines.mixed_model_wide(Y, None, engine=self.engine, reml=self.reml, stats=stats)
            n_used = stats.sizes.shape[0]
        else:
            obs = np.isfinite(Y)
            y = Y[obs]
            if np.ptp(y) == 0:
                raise StatisticalTrouble(
                    f"NRS is constant (all {y.size} observed values equal {y[0]:g})"
                )
            X3, names, C = _visit_template(g, weeks, Zu, znames)
            X = X3[obs]
            check_full_rank(X, names, what)
            if self.random_slope:
                pid, col = np.nonzero(obs)
                Zre = np.column_stack([np.ones(y.size), np.asarray(weeks)[col] / 12.0])
                fit = engines.mixed_model(y, X, pid, engine=self.engine, reml=self.reml, Z=Zre)
            else:
                fit = engines.mixed_model_wide(Y, X3, engine=self.engine, reml=self.reml)
            n_used = int(obs.any(axis=1).sum())
        if not self.adjust_baseline:
            C = C[1:]  # the reference visit is week 0: its group term is the baseline difference
        rows = contrast_rows(
            self.name,
            post,
            fit,
            C,
            self.alpha,
            n_used,
            n_family=len(POST_WEEKS) if self.bonferroni else 0,
        )
        return _merge_rows(self.name, NRS_ESTIMANDS, rows, why, note)


@register("gee")
@dataclass
class GeeNRS(Estimator):
    """Marginal model of post-baseline NRS by GEE (Gaussian, identity link).

    Mean model (observed rows, weeks 1, 4, 8, 12; week 1 = reference):
        E[NRS_ij] = b0 + b1 group_i + g_w [week_j = w] + d_w group_i [week_j = w] + c nrs0_i
                    (+ covariates_i' c2),
    exchangeable working correlation within patient (Var = phi R_i, R_i = (1 - rho) I +
    rho 11'; moment estimators phi = sum r^2 / (N - p), rho = sum of within-patient residual
    products / phi / (n_pairs - p), statsmodels' conventions), solved to the fixed point,
    robust (sandwich) covariance. Reports the group difference at each visit (b1 + d_w) with
    normal Wald CI at ``alpha`` and p-value (with ``bonferroni``: min(1, 4 p) and the
    simultaneous CI at 1 - alpha / 4, as ``lmm``) -> ``nrs_diff_w{1,4,8,12}``.

    Target: the hypothetical marginal mean difference; the coefficients are conditional on
    baseline NRS (and covariates), which equals the marginal difference in this linear model
    without interactions. Identified only under randomization (confounded in `study`).

    Missing data and death: available observed visits only. Unweighted GEE is valid when
    missingness depends on covariates in the model only (MCAR given them); it is biased under MAR
    dropout driven by earlier NRS (which the likelihood-based ``lmm`` handles) and when death
    depends on pain. Patients missing covariates are excluded (noted).

    Failures: an arm without observations at a visit fails that visit's row; too few
    within-patient pairs (e.g. one visit per patient), a constant outcome, a singular design or
    a correlation estimate outside the positive-definite range fail every row; not converging
    in ``engines.GEE_MAXITER`` iterations is a warning.

    Engines (:func:`estimators.engines.gee`): ``fast`` (default) the closed-form kernel
    :func:`estimators.fast.gee_exchangeable`; ``reference`` statsmodels GEE with a tight
    stopping rule. Same rows to ~1e-12.
    """

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    covariates: list[str] = field(default_factory=list)
    bonferroni: bool = False
    estimands = NRS_ESTIMANDS
    engines = ("reference", "fast")

    def __post_init__(self):
        super().__post_init__()
        self.covariates = check_covariates(self.name, self.covariates)

    def _fit(self, cohort, rng) -> list[Estimate]:
        fast = self.engine == "fast"
        wide = nrs_wide(cohort)
        Z, znames, usable = _covariate_rows(cohort, self.covariates, wide, fast)
        usable &= np.isfinite(wide.nrs0)
        note = _note_dropped(usable, wide)
        weeks, why = _split_estimable(wide, usable, POST_WEEKS)
        if not weeks:
            return _merge_rows(self.name, NRS_ESTIMANDS, [], why, note)
        pid, week, y = _long(wide, usable, weeks)
        if np.ptp(y) == 0:
            raise StatisticalTrouble(
                f"NRS is constant (all {y.size} observed values equal {y[0]:g})"
            )
        Zb = np.column_stack([wide.nrs0, Z])[pid]
        X, names, C = visit_design(wide.group[pid], week, weeks, Zb, ["nrs0"] + znames)
        (check_full_rank_fast if fast else check_full_rank)(X, names, "GEE design")
        fit = engines.gee(y, X, pid, engine=self.engine)
        n_used = int(np.count_nonzero(pid[1:] != pid[:-1]) + 1)  # pid is sorted
        rows = contrast_rows(
            self.name,
            weeks,
            fit,
            C,
            self.alpha,
            n_used,
            n_family=len(POST_WEEKS) if self.bonferroni else 0,
        )
        return _merge_rows(self.name, NRS_ESTIMANDS, rows, why, note)


def _w12_ancova_row(
    est: Estimator, y, wide: NRSWide, Z, znames, usable, note="", label="week-12 NRS"
) -> list[Estimate]:
    r = engines.ancova(
        np.where(usable, y, np.nan),
        wide.group,
        wide.nrs0,
        Z,
        znames,
        engine=est.engine,
        outcome=label,
        base_name="nrs0",
    )
    return [
        wald_row(est.name, "nrs_diff_w12", r.estimate, r.se, est.alpha, r.n, df=r.df, message=note)
    ]


@register("ancova_cc")
@dataclass
class AncovaCompleteCase(Estimator):
    """Complete-case ANCOVA of week-12 NRS: OLS ``nrs12 ~ group + nrs0 (+ covariates)``.

    Estimate = group coefficient, classical OLS SE, t-based CI/p on the residual df ->
    ``nrs_diff_w12``. Conditional on nrs0 (and covariates); equal to the marginal difference in a
    linear model without effect modification, and consistent for it under randomization.

    Missing data and death: patients without an observed week-12 NRS (dropout, missed, dead) are
    dropped. Valid for the hypothetical estimand only if missingness depends on group and the
    covariates in the model; under MAR dropout on the NRS history or informative death it
    estimates a survivor/completer contrast.
    """

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    covariates: list[str] = field(default_factory=list)
    estimands = W12
    engines = ("reference", "fast")

    def __post_init__(self):
        super().__post_init__()
        self.covariates = check_covariates(self.name, self.covariates)

    def _fit(self, cohort, rng) -> list[Estimate]:
        wide = nrs_wide(cohort)
        Z, znames, usable = _covariate_rows(cohort, self.covariates, wide, self.engine == "fast")
        y = (
            np.asarray(cohort.arrays["nrs12"], float)
            if "nrs12" in cohort.arrays
            else wide.nrs[:, -1]
        )
        return _w12_ancova_row(self, y, wide, Z, znames, usable, _note_dropped(usable, wide))


@register("locf_ancova")
@dataclass
class AncovaLOCF(Estimator):
    """Last observation carried forward, then ANCOVA: ``locf12 ~ group + nrs0 (+ covariates)``.

    locf12 = the last observed NRS among weeks 0, 1, 4, 8, 12 (baseline if nothing later), for
    every patient, including those who died or dropped out. OLS, t-based CI/p ->
    ``nrs_diff_w12``.

    The habit this exposes: LOCF is a single imputation that treats the last value as if it were
    the week-12 value. It is not "conservative": it is biased whenever NRS changes over time and
    dropout/death timing differs between arms or depends on pain (informative dropout, death),
    and its SE ignores the imputation (too small). Patients dropping out early keep an NRS close
    to baseline, diluting (or, with earlier dropout in one arm, inflating) the difference.
    """

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    covariates: list[str] = field(default_factory=list)
    estimands = W12
    engines = ("reference", "fast")

    def __post_init__(self):
        super().__post_init__()
        self.covariates = check_covariates(self.name, self.covariates)

    def _fit(self, cohort, rng) -> list[Estimate]:
        wide = nrs_wide(cohort)
        Z, znames, usable = _covariate_rows(cohort, self.covariates, wide, self.engine == "fast")
        if not np.isfinite(wide.nrs[usable, 1:]).any():
            raise StatisticalTrouble(
                "no post-baseline NRS observed: LOCF would carry baseline forward for every patient"
            )
        y = locf(wide.nrs)
        note = _note_dropped(usable, wide)
        return _w12_ancova_row(self, y, wide, Z, znames, usable, note, "LOCF week-12 NRS")


@register("mi_ancova")
@dataclass
class AncovaMI(Estimator):
    """Multiple imputation of post-baseline NRS (sequential regressions or chained equations),
    then ANCOVA, Rubin's rules.

    Imputation (wide format, visits 1, 4, 8, 12; :func:`mice_impute`, the ``m`` chains side by
    side): a proper posterior draw of (beta, sigma) per imputation model (reference prior:
    sigma^2 from a scaled inverse chi-square, beta from N(beta_hat, sigma^2 (X'X)^-1)) plus
    predictive noise fills the missing cells. A monotone pattern (dropout only) is imputed by
    sequential regressions, visit j on [1, group, nrs0, covariates, visits before j], in one pass
    (no cycles needed); otherwise (intermittent misses) by chained equations: each incomplete
    visit on [1, group, nrs0, covariates, the other visits (current completed values)],
    ``cycles`` rounds per chain, the chains started from random observed values. Randomness
    comes only from the ``rng`` passed to ``fit`` (deterministic given its state; an rng is
    required). Imputed NRS are kept continuous (not rounded or clipped): the analysis is linear
    and rounding/clipping biases means.
    Analysis per imputation: OLS ``nrs12 ~ group + nrs0 (+ covariates)``; pooled by Rubin's rules
    (total variance, Barnard-Rubin small-sample df, t-based CI and p) -> ``nrs_diff_w12``.

    Target and population: conditional on nrs0 (and covariates) (= marginal in this linear model;
    consistent for it under randomization). Missingness assumed MAR given group, nrs0, the other
    visits and covariates. Death: by default (``impute_dead=False``) patients dead before week 12
    are excluded from imputation and analysis, so the estimand is the difference among week-12
    survivors (not the truth's hypothetical estimand when survival differs by arm or death is
    related to pain). ``impute_dead=True`` imputes them too: the hypothetical "had they lived"
    estimand under MAR. Patients missing covariates are excluded (noted).

    Engines: ``fast`` (default) runs every imputation chain in one compiled call
    (:func:`estimators.fast.mi.impute_chains`: the same random numbers, drawn up front in the
    numpy order) and the m ANCOVAs in another (:func:`estimators.fast.mi.ancova_rows`), each
    handing back to the numpy code (batched Cholesky draws, one least-squares call on the shared
    design, QR when ill conditioned) whenever a check is not certainly passed; ``reference`` uses
    numpy's QR chain by chain and statsmodels OLS per imputation
    (:func:`estimators.engines.bayes_draws`, :func:`estimators.engines.ancova_batch`: the same
    random numbers). Same rows to ~1e-10.
    """

    m: int = 20
    cycles: int = 5
    impute_dead: bool = False
    covariates: list[str] = field(default_factory=list)
    estimands = W12
    engines = ("reference", "fast")

    def __post_init__(self):
        super().__post_init__()
        if int(self.m) != self.m or self.m < 2:
            raise ValueError(f"estimators.{self.name}.m must be an integer >= 2; got {self.m}")
        if int(self.cycles) != self.cycles or self.cycles < 1:
            raise ValueError(
                f"estimators.{self.name}.cycles must be an integer >= 1; got {self.cycles}"
            )
        self.m, self.cycles = int(self.m), int(self.cycles)
        self.covariates = check_covariates(self.name, self.covariates)

    def _fit(self, cohort, rng) -> list[Estimate]:
        if not isinstance(rng, np.random.Generator):
            raise TypeError("mi_ancova needs a numpy Generator as rng (imputation randomness)")
        wide = nrs_wide(cohort)
        Z, znames, usable = _covariate_rows(cohort, self.covariates, wide, self.engine == "fast")
        usable &= np.isfinite(wide.nrs0)
        note = _note_dropped(usable, wide)
        if not self.impute_dead:
            dead = dead_by_week12(cohort, wide) & usable
            usable &= ~dead
            if dead.any():
                note = "; ".join(
                    filter(
                        None, [note, f"{int(dead.sum())} patient(s) dead before week 12 excluded"]
                    )
                )
        g, b = wide.group[usable], wide.nrs0[usable]
        Y = wide.nrs[usable, 1:]
        Zu = Z[usable]
        empty = _arms_at(g, np.ones(g.size, bool))
        if empty:
            raise StatisticalTrouble(f"no patients in the {ARM_LABELS[empty[0]]} arm")
        labels = tuple(f"week-{w} NRS" for w in POST_WEEKS)
        for j, lab in enumerate(labels):
            o = np.isfinite(Y[:, j])
            if not o.any():
                raise StatisticalTrouble(f"no observed {lab} to impute from")
            empty = _arms_at(g, o)
            if empty:
                raise StatisticalTrouble(
                    f"no observed {lab} in the {ARM_LABELS[empty[0]]} arm: its imputation "
                    "model (with group) is not estimable"
                )
        y12 = Y[np.isfinite(Y[:, -1]), -1]
        if np.ptp(y12) == 0:
            raise StatisticalTrouble(f"observed week-12 NRS is constant ({y12[0]:g})")
        P = np.column_stack([np.ones(g.size), g, b, Zu])
        Yc = mice_impute(Y, P, rng, self.m, self.cycles, labels, self.engine)
        got = fast_mi.ancova_rows(Yc[:, :, -1], P) if self.engine == "fast" else None
        if got is not None:  # compiled; else ancova_batch decides (falls back or raises)
            q, se, df_com = got
        else:
            q, se, df_com = engines.ancova_batch(
                Yc[:, :, -1],
                g,
                b,
                Zu,
                znames,
                engine=self.engine,
                outcome="week-12 NRS",
                base_name="nrs0",
            )[:3]
        u = se**2
        est, se, df, lam = rubin(q, u, df_com)
        return [
            wald_row(
                self.name, "nrs_diff_w12", est, se, self.alpha, int(g.size), df=df, message=note
            )
        ]
