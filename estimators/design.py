"""Shared, public helpers of the estimator families: arm labels, covariate design columns, rank
checks, option checks, and the 2 x 2 table machinery (Wilson / Newcombe intervals, the Wald
risk-difference SE, the study's chi-square / Fisher rule, one risk-difference row).

Every family imports these from here (no family imports another family's private helpers).
The numerical operations themselves (OLS, logit, Cox, mixed model, ...) are in
:mod:`estimators.engines`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from palliasim.estimators.base import Estimate, StatisticalTrouble
from palliasim.estimators.fast._small import gram_rank_bound, rank_bound
from palliasim.estimators.lazy import lazy_module
from palliasim.sim.cohort import BASELINE_COLUMNS  # the Cohort schema: estimators know its columns

stats = lazy_module("scipy.stats")  # ~0.5 s of import, off the hot paths

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
# design matrices and rank checks


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


def patient_covariates_fast(cohort, covariates: list[str]) -> tuple[np.ndarray, list[str]]:
    """:func:`patient_covariates` read from ``cohort.arrays`` (no DataFrame) when every column is
    numeric (else the pandas path): the same matrix."""
    if not covariates:
        return np.empty((cohort.n, 0)), []
    cols = []
    for c in covariates:
        a = cohort.numeric_column(c)
        if a is None:
            return patient_covariates(cohort, covariates)
        cols.append(a)
    return np.column_stack(cols), list(covariates)


def certainly_full_rank(X: np.ndarray, equilibrated: bool = True) -> bool:
    """Cheap sufficient test that ``np.linalg.matrix_rank`` finds full column rank.

    ``equilibrated``: the test is for ``X / column norms`` (as :func:`check_full_rank` uses),
    else for ``X`` itself. From G = X'X with unit diagonal after scaling, 1 / trace(G^-1) is a
    lower bound on the smallest eigenvalue; when it exceeds 1e-6 (a million times the rounding
    error of G) the smallest singular value is far above matrix_rank's tolerance
    s_max * max(n, p) * eps. False means "unknown": run the exact (SVD) check.
    """
    n, p = X.shape
    if n < p or p == 0:
        return False
    lam, smin, smax = rank_bound(np.ascontiguousarray(X, dtype=float), equilibrated)
    return _bound_decides(lam, smin, smax, n, p)


def certainly_full_rank_gram(G: np.ndarray, n: int) -> bool:
    """:func:`certainly_full_rank` (equilibrated) of an n-row X from its cross-products
    G = X'X (computed by the caller, e.g. from within and between sums)."""
    p = G.shape[0]
    if n < p or p == 0:
        return False
    lam, smin, smax = gram_rank_bound(np.array(G, dtype=float), True)
    return _bound_decides(lam, smin, smax, n, p)


def _bound_decides(lam: float, smin: float, smax: float, n: int, p: int) -> bool:
    if not lam > 1e-6:
        return False
    return bool(smin > 1e3 * smax * max(n, p) * _EPS)


_EPS = float(np.finfo(float).eps)


def check_full_rank_fast(X: np.ndarray, names: list[str], what: str = "design matrix") -> None:
    """:func:`check_full_rank` with a cheap Cholesky pre-test (:func:`certainly_full_rank`) first:
    the same decision and messages, the SVD only when the bound is inconclusive."""
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


# --------------------------------------------------------------------------------------------
# 2 x 2 tables

TEST_RULES = ("study", "chi2", "fisher")
CI_METHODS = ("newcombe", "wald")
FISHER_RESAMPLES = 9999


def wilson(x: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion x / n (no continuity correction)."""
    p = x / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def newcombe_diff(x1: float, n1: float, x0: float, n0: float, alpha: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval (Newcombe 1998, method 10) for p1 - p0.

    L = d - sqrt((p1 - l1)^2 + (u0 - p0)^2), U = d + sqrt((u1 - p1)^2 + (p0 - l0)^2), with
    (l_a, u_a) the Wilson intervals of each arm. Same as statsmodels'
    ``confint_proportions_2indep(method="newcomb", compare="diff")``.
    """
    z = stats.norm.ppf(1 - alpha / 2)
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson(x1, n1, z)
    l0, u0 = wilson(x0, n0, z)
    d = p1 - p0
    return (
        float(d - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)),
        float(d + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)),
    )


def rd_wald(x1: float, n1: float, x0: float, n0: float) -> tuple[float, float]:
    """Risk difference p1 - p0 and its unpooled (Wald) standard error."""
    p1, p0 = x1 / n1, x0 / n0
    return float(p1 - p0), float(np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0))


def table_test(
    table,
    rule: str = "study",
    rng: np.random.Generator | None = None,
    n_resamples: int = FISHER_RESAMPLES,
) -> tuple[float, float, str]:
    """(p-value, Pearson chi-square statistic, test name) of independence in a 2 x K table.

    ``rule``: ``"chi2"`` Pearson without continuity correction; ``"fisher"`` Fisher's exact
    (Monte Carlo Fisher-Freeman-Halton beyond 2 x 2, drawing from ``rng``); ``"study"`` Fisher
    when any expected count is below 5, else chi-square. Empty rows/columns are dropped first; a
    table left with one row or column carries no evidence (p = 1, statistic 0, as Fisher).
    """
    t = np.asarray(table, dtype=np.int64)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.ndim != 2 or min(t.shape) < 2:
        return 1.0, 0.0, "degenerate table"
    n = t.sum()
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    use_fisher = rule == "fisher" or (rule == "study" and expected.min() < 5)
    if not use_fisher:
        return float(stats.chi2.sf(chi2, (t.shape[0] - 1) * (t.shape[1] - 1))), chi2, "chi-square"
    if t.shape == (2, 2):
        return float(stats.fisher_exact(t).pvalue), chi2, "Fisher exact"
    if rng is None:
        # deterministic given the data when the caller passes no generator (never global RNG)
        rng = np.random.default_rng(0)
    method = stats.MonteCarloMethod(n_resamples=n_resamples, rng=rng)
    return float(stats.fisher_exact(t, method=method).pvalue), chi2, "Fisher exact (Monte Carlo)"


def check_choice(name: str, option: str, value, allowed) -> None:
    """ValueError naming ``estimators.<name>.<option>`` and the allowed values."""
    if value not in allowed:
        raise ValueError(
            f"estimators.{name}.{option}='{value}' is not available; "
            f"allowed values: {', '.join(allowed)}"
        )


def binary_row(
    method: str,
    estimand: str,
    x1: int,
    n1: int,
    x0: int,
    n0: int,
    alpha: float,
    ci: str,
    rule: str,
    rng,
) -> Estimate:
    """Risk difference (group 1 - group 0) with Wald SE, Newcombe/Wald CI and table test p."""
    rd, se = rd_wald(x1, n1, x0, n0)
    if ci == "newcombe":
        lo, hi = newcombe_diff(x1, n1, x0, n0, alpha)
    else:
        q = stats.norm.ppf(1 - alpha / 2)
        lo, hi = rd - q * se, rd + q * se
    p, _, test = table_test([[n0 - x0, x0], [n1 - x1, x1]], rule, rng)
    msg = "no events in either arm" if x1 + x0 == 0 else ""
    return Estimate(method, estimand, rd, se, lo, hi, p, int(n1 + n0), message=msg)


def binary_rows(method: str, estimands, x1, n1, x0, n0, alpha: float, ci: str, rule: str):
    """:func:`binary_row` for many 2 x 2 tables at once (the fast engine: one numpy pass of
    :func:`estimators.fast.tables.two_by_two`, no scipy.stats call; 2 x 2 tables draw no
    random numbers, so no rng). Counts as sequences aligned with ``estimands``."""
    from palliasim.estimators.fast.tables import two_by_two

    if not len(estimands):
        return []
    x1, n1, x0, n0 = (np.asarray(a, dtype=np.int64) for a in (x1, n1, x0, n0))
    rd, se, lo, hi, p = two_by_two(x1, n1, x0, n0, alpha, ci, rule)
    none = (x1 + x0) == 0
    return [
        Estimate(
            method,
            e,
            float(rd[j]),
            float(se[j]),
            float(lo[j]),
            float(hi[j]),
            float(p[j]),
            int(n1[j] + n0[j]),
            message="no events in either arm" if none[j] else "",
        )
        for j, e in enumerate(estimands)
    ]


def category_codes(cohort, col: str) -> np.ndarray | None:
    """Integer codes (as floats, NaN = missing) of a categorical patient column of a generated
    cohort, read from its arrays without building the DataFrame; None when the column is not a
    categorical of the array representation (a cohort built from frames: use the pandas path).
    Code order = category order, which is what ``pd.factorize(sort=True)`` of the column uses."""
    cats = getattr(cohort, "_cats", None)
    if getattr(cohort, "_pa", None) is None or not cats or col not in cats:
        return None
    codes = np.asarray(cohort.arrays[col]).astype(float)
    codes[codes < 0] = np.nan
    return codes
