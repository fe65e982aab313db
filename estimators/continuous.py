"""Estimators: continuous family (see estimators/base.py for the contract).

Besides the ``ancova_w12`` estimator this module holds the small numerical cores shared with the
longitudinal family (:mod:`estimators.longitudinal`): OLS on numpy arrays, the ANCOVA of a
week-12 outcome on group + baseline value, baseline-covariate design columns and a rank check
that names collinear columns. Every core takes and returns numpy arrays (no DataFrames, no
library Results objects) so a fast engine can replace the statsmodels call without touching the
estimators.

Engines: OLS runs on statsmodels (``reference``) or on the numpy kernel
:func:`estimators.fast.ols_fit` (``fast``, the default); :func:`ols` dispatches. The fast path
also reads numeric covariates from ``cohort.arrays`` (:func:`patient_covariates_fast`) and
pre-tests the design rank with a Cholesky bound (:func:`check_full_rank_fast`), falling back to
the exact SVD check whenever the bound is inconclusive, so both engines fail on the same designs
with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from palliasim.estimators.base import (
    Estimate,
    Estimator,
    StatisticalTrouble,
    failed_rows,
    register,
    wald_row,
)
from palliasim.sim.cohort import BASELINE_COLUMNS  # the Cohort schema: estimators know its columns

ARM_LABELS = {0: "control (group 0)", 1: "observation (group 1)"}

QOL_DOMAINS = ("global", "physical", "role", "emotional", "social")
LOG_MARKERS = ("crp", "tnf", "il6", "wbc", "pct", "nlr")  # inflammatory: analysed on the log scale
NATURAL_MARKERS = ("albumin", "hb", "transferrin", "calories")  # nutritional: natural scale
W12_OUTCOMES = QOL_DOMAINS + LOG_MARKERS + NATURAL_MARKERS

#: Baseline patient columns allowed as adjustment covariates (documented in sim/cohort.py).
#: ``primary`` and ``site`` are categorical (dummy-coded, first observed level = reference);
#: every other column enters linearly (ecog 0-4 as a number).
BASELINE_COVARIATES = (
    BASELINE_COLUMNS
    + tuple(f"{m}_w0" for m in LOG_MARKERS + NATURAL_MARKERS)
    + tuple(f"qol_{d}_w0" for d in QOL_DOMAINS)
)


# --------------------------------------------------------------------------------------------
# option validation


def check_covariates(name: str, covariates) -> list[str]:
    """Validate a ``covariates`` option: a list of baseline patient columns (ValueError if not)."""
    if covariates is None:
        return []
    if isinstance(covariates, str):
        raise ValueError(
            f"estimators.{name}.covariates must be a list of column names, "
            f"got the string '{covariates}'"
        )
    covs = [str(c) for c in covariates]
    bad = [c for c in covs if c not in BASELINE_COVARIATES]
    if bad:
        raise ValueError(
            f"estimators.{name}.covariates: unknown baseline covariate '{bad[0]}'; "
            f"allowed values: {', '.join(BASELINE_COVARIATES)}"
        )
    if len(set(covs)) != len(covs):
        raise ValueError(f"estimators.{name}.covariates has duplicates: {covs}")
    return covs


# --------------------------------------------------------------------------------------------
# numerical cores (numpy in, numpy out)


class OLSFit(NamedTuple):
    params: np.ndarray
    cov: np.ndarray
    df_resid: float
    scale: float


def ols_reference(y: np.ndarray, X: np.ndarray) -> OLSFit:
    """OLS with classical (homoscedastic) covariance, by statsmodels."""
    import statsmodels.api as sm

    res = sm.OLS(y, X).fit()
    return OLSFit(
        np.asarray(res.params, float),
        np.asarray(res.cov_params(), float),
        float(res.df_resid),
        float(res.scale),
    )


def ols_fast(y: np.ndarray, X: np.ndarray) -> OLSFit:
    """OLS with classical covariance by the fast exact engine (:func:`estimators.fast.ols_fit`).

    Same numbers as :func:`ols_reference` (statsmodels) to ~1e-12 on a full-rank design (callers
    check the rank first); a design it cannot fit raises StatisticalTrouble.
    """
    from palliasim.estimators.fast import ols_fit

    r = ols_fit(y, X)
    if r.status != "ok":
        raise StatisticalTrouble(f"OLS: {r.message}")
    return OLSFit(r.params, r.cov_params, r.df_resid, r.scale)


def ols(y: np.ndarray, X: np.ndarray, engine: str = "reference") -> OLSFit:
    """Engine dispatch for OLS: ``reference`` (statsmodels) or ``fast`` (numpy kernel)."""
    if engine == "fast":
        return ols_fast(y, X)
    if engine != "reference":  # pragma: no cover - guarded by Estimator.engines
        raise ValueError(f"unknown engine '{engine}'")
    return ols_reference(y, X)


def certainly_full_rank(X: np.ndarray, equilibrated: bool = True) -> bool:
    """Cheap sufficient test that ``np.linalg.matrix_rank`` finds full column rank.

    ``equilibrated``: the test is for ``X / column norms`` (as :func:`check_full_rank` uses),
    else for ``X`` itself. From G = X'X with unit diagonal after scaling, 1 / trace(G^-1) is a
    lower bound on the smallest eigenvalue; when it exceeds 1e-6 (a million times the rounding
    error of G) the smallest singular value is far above matrix_rank's tolerance
    s_max * max(n, p) * eps. False means "unknown": run the exact (SVD) check.
    """
    from palliasim.estimators.fast._common import chol, chol_inv

    n, p = X.shape
    if n < p or p == 0:
        return False
    G = X.T @ X
    d2 = np.diagonal(G)
    if not (np.all(d2 > 0) and np.isfinite(d2).all()):
        return False
    d = np.sqrt(d2)
    c, info = chol(G / np.outer(d, d))
    if info != 0:
        return False
    lam = 1.0 / float(np.trace(chol_inv(c)))
    if not lam > 1e-6:
        return False
    smin = np.sqrt(lam)  # lower bound for the equilibrated design
    smax = np.sqrt(p)  # ||X_eq||_F
    if not equilibrated:
        smin, smax = smin * d.min(), np.sqrt(d2.sum())
    return bool(smin > 1e3 * smax * max(n, p) * np.finfo(float).eps)


def check_full_rank_fast(X: np.ndarray, names: list[str], what: str = "design matrix") -> None:
    """:func:`check_full_rank` with a cheap Cholesky pre-test; the same decision and messages."""
    if X.shape[0] and certainly_full_rank(X):
        return
    check_full_rank(X, names, what)


def check_full_rank(X: np.ndarray, names: list[str], what: str = "design matrix") -> None:
    """Raise StatisticalTrouble naming the columns that are linear combinations of earlier ones."""
    p = X.shape[1]
    if X.shape[0] == 0:
        raise StatisticalTrouble(f"{what} has no rows")
    # equilibrate columns so that scale differences (calories vs dummies) do not fool the tolerance
    norms = np.sqrt((X * X).sum(axis=0))
    zero = [names[j] for j in range(p) if norms[j] == 0]
    if zero:
        raise StatisticalTrouble(f"{what} is singular: all-zero column(s) {', '.join(zero)}")
    Xs = X / norms
    r = np.linalg.matrix_rank(Xs)
    if r == p:
        return
    keep: list[int] = []
    bad: list[str] = []
    for j in range(p):
        if np.linalg.matrix_rank(Xs[:, keep + [j]]) == len(keep) + 1:
            keep.append(j)
        else:
            bad.append(names[j])
    raise StatisticalTrouble(
        f"{what} is rank deficient (rank {r} < {p} columns); "
        f"collinear with earlier columns: {', '.join(bad)}"
    )


class AncovaResult(NamedTuple):
    estimate: float
    se: float
    df: float
    n: int


def ancova(
    y: np.ndarray,
    group: np.ndarray,
    base: np.ndarray | None,
    Z: np.ndarray,
    znames: list[str],
    engine: str = "reference",
    outcome: str = "outcome",
    base_name: str = "baseline",
) -> AncovaResult:
    """OLS of ``y`` on [1, group, base, Z] among complete cases; returns the group coefficient.

    ``base`` may be None (no baseline term). Raises StatisticalTrouble for an arm without complete
    cases, a constant outcome, a rank-deficient design, no residual df or a perfect fit.
    """
    cols = [np.ones_like(y), group] + ([] if base is None else [base])
    names = ["intercept", "group"] + ([] if base is None else [base_name]) + list(znames)
    X = np.column_stack(cols + ([Z] if Z.shape[1] else []))
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    y, X = y[ok], X[ok]
    n = int(ok.sum())
    if n == 0:
        raise StatisticalTrouble(f"no complete cases for {outcome} in either arm")
    for arm in (0, 1):
        if not np.any(X[:, 1] == arm):
            raise StatisticalTrouble(
                f"no complete cases for {outcome} in the {ARM_LABELS[arm]} arm"
            )
    if np.ptp(y) == 0:
        raise StatisticalTrouble(f"{outcome} is constant (all {n} complete cases equal {y[0]:g})")
    if engine == "fast":
        check_full_rank_fast(X, names, f"ANCOVA design for {outcome}")
    else:
        check_full_rank(X, names, f"ANCOVA design for {outcome}")
    if n - X.shape[1] < 1:
        raise StatisticalTrouble(
            f"no residual degrees of freedom for {outcome} (n={n}, {X.shape[1]} parameters)"
        )
    fit = ols(y, X, engine)
    if not (np.isfinite(fit.scale) and fit.scale > 1e-12 * max(np.var(y), 1e-300)):
        raise StatisticalTrouble(f"perfect fit for {outcome}: residual variance is zero")
    se = float(np.sqrt(fit.cov[1, 1]))
    return AncovaResult(float(fit.params[1]), se, fit.df_resid, n)


# --------------------------------------------------------------------------------------------
# data helpers


def patient_covariates(cohort, covariates: list[str]) -> tuple[np.ndarray, list[str]]:
    """Design columns (n_patients, k) for baseline covariates; NaN rows where a value is missing.

    Numeric columns enter as they are; categorical ones (pandas Categorical / object) as dummies
    of their observed levels, the first observed level (in category order) as reference.
    """
    n = cohort.n
    if not covariates:
        return np.empty((n, 0)), []
    df = cohort.patients
    missing = [c for c in covariates if c not in df.columns]
    if missing:
        raise ValueError(f"covariate column(s) not in cohort.patients: {', '.join(missing)}")
    cols: list[np.ndarray] = []
    names: list[str] = []
    for c in covariates:
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object:
            cat = pd.Categorical(s)
            codes = cat.codes
            present = [k for k in range(len(cat.categories)) if np.any(codes == k)]
            miss = codes < 0
            for k in present[1:]:
                d = (codes == k).astype(float)
                d[miss] = np.nan
                cols.append(d)
                names.append(f"{c}[{cat.categories[k]}]")
        else:
            cols.append(s.to_numpy(dtype=float, na_value=np.nan))
            names.append(c)
    if not cols:
        return np.empty((n, 0)), []
    return np.column_stack(cols), names


def numeric_column(cohort, col: str) -> np.ndarray | None:
    """A patient column as a float array, or None when it is categorical, non-numeric or absent
    (callers then take the pandas path, which handles and reports those cases); see
    :meth:`palliasim.sim.cohort.Cohort.numeric_column`."""
    return cohort.numeric_column(col)


def patient_covariates_fast(cohort, covariates: list[str]) -> tuple[np.ndarray, list[str]]:
    """:func:`patient_covariates` from the cohort's arrays when every column is numeric."""
    if not covariates:
        return np.empty((cohort.n, 0)), []
    cols = []
    for c in covariates:
        a = numeric_column(cohort, c)
        if a is None:
            return patient_covariates(cohort, covariates)
        cols.append(a)
    return np.column_stack(cols), list(covariates)


def _patient_float(cohort, col: str, a: dict | None = None) -> np.ndarray:
    a = cohort.arrays if a is None else a
    if col not in a:
        raise ValueError(f"column '{col}' not in cohort.patients")
    return np.asarray(a[col], dtype=float)


def w12_outcome(name: str) -> tuple[str, str, bool, str]:
    """(baseline column, week-12 column, log scale?, estimand) of an ``ancova_w12`` outcome."""
    if name in QOL_DOMAINS:
        return f"qol_{name}_w0", f"qol_{name}_w12", False, f"qol_{name}_diff"
    if name in LOG_MARKERS:
        return f"{name}_w0", f"{name}_w12", True, f"marker_log_{name}_diff"
    if name in NATURAL_MARKERS:
        return f"{name}_w0", f"{name}_w12", False, f"marker_{name}_diff"
    raise ValueError(f"unknown outcome '{name}'; allowed values: {', '.join(W12_OUTCOMES)}")


# --------------------------------------------------------------------------------------------
# estimators


@register("ancova_w12")
@dataclass
class AncovaW12(Estimator):
    """ANCOVA of week-12 QoL domains and blood markers on group + the outcome's baseline value.

    Model (one OLS per outcome, complete cases): ``Y12 = b0 + b1 group + b2 Y0 [+ covariates] + e``;
    QoL domain d: ``qol_{d}_w12 ~ group + qol_{d}_w0`` -> ``qol_{d}_diff``; inflammatory markers
    (crp, tnf, il6, wbc, pct, nlr) on the log scale: ``log(m_w12) ~ group + log(m_w0)`` ->
    ``marker_log_{m}_diff``; nutritional markers (albumin, hb, transferrin, calories) on the
    natural scale -> ``marker_{m}_diff``. Estimate = b1 with its classical OLS SE, t-based CI
    (``alpha``) and p-value on the residual df.

    Target: the week-12 mean difference (observation - control), hypothetical strategy for death
    and dropout (sim/truth.py). b1 is conditional on the baseline value (and covariates); in a
    linear model without group-by-covariate interaction it equals the marginal difference, and
    under randomization OLS ANCOVA is consistent for the marginal difference even when the
    linear model is misspecified. In the non-randomized `study` scenario it stays confounded
    by anything not adjusted for.

    Missing data and death: complete cases only (patients with the week-12 visit observed, i.e.
    alive and in follow-up). Unbiased for the hypothetical estimand only if missingness/death
    depend on nothing but group and the variables in the model (a survivor analysis otherwise).
    Each outcome is fitted on its own: trouble with one outcome fails that row only.

    Engines: ``fast`` (default; numpy OLS, :func:`ols_fast`) or ``reference`` (statsmodels OLS):
    the same rows to ~1e-12.
    """

    outcomes: list[str] = field(default_factory=lambda: list(W12_OUTCOMES))
    covariates: list[str] = field(default_factory=list)
    engines = ("reference", "fast")

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.outcomes, str) or not len(self.outcomes):
            raise ValueError(
                f"estimators.{self.name}.outcomes must be a non-empty list; allowed "
                f"values: {', '.join(W12_OUTCOMES)}"
            )
        self.outcomes = [str(o) for o in self.outcomes]
        bad = [o for o in self.outcomes if o not in W12_OUTCOMES]
        if bad:
            raise ValueError(
                f"estimators.{self.name}.outcomes: unknown outcome '{bad[0]}'; "
                f"allowed values: {', '.join(W12_OUTCOMES)}"
            )
        if len(set(self.outcomes)) != len(self.outcomes):
            raise ValueError(f"estimators.{self.name}.outcomes has duplicates: {self.outcomes}")
        self.covariates = check_covariates(self.name, self.covariates)

    def targets(self) -> tuple[str, ...]:
        return tuple(w12_outcome(o)[3] for o in self.outcomes)

    def _fit(self, cohort, rng) -> list[Estimate]:
        pa = cohort.arrays  # built once (a from_frames cohort rebuilds it on every access)
        group = _patient_float(cohort, "group", pa)
        if self.engine == "fast":
            Z, znames = patient_covariates_fast(cohort, self.covariates)
        else:
            Z, znames = patient_covariates(cohort, self.covariates)
        rows: list[Estimate] = []
        for o in self.outcomes:
            c0, c12, log, estimand = w12_outcome(o)
            y, b = _patient_float(cohort, c12, pa), _patient_float(cohort, c0, pa)
            note = ""
            if log:
                bad = (y <= 0) | (b <= 0)
                if bad.any():
                    note = f"{int(bad.sum())} non-positive {o} value(s) excluded from the log scale"
                y = np.log(np.where(y > 0, y, np.nan))
                b = np.log(np.where(b > 0, b, np.nan))
            try:
                r = ancova(y, group, b, Z, znames, self.engine, outcome=c12, base_name=c0)
            except StatisticalTrouble as exc:
                rows += failed_rows(self.name, [estimand], f"StatisticalTrouble: {exc}")
                continue
            rows.append(
                wald_row(
                    self.name, estimand, r.estimate, r.se, self.alpha, r.n, df=r.df, message=note
                )
            )
        return rows
