"""Estimators: tables family (see estimators/base.py for the contract).

The study's contingency-table and two-sample analyses, reproduced as estimators so their
operating characteristics can be evaluated:

- ``ae_tests`` (:class:`AETests`): Table 2, one risk difference and test per adverse-event type.
- ``balance`` (:class:`Balance`): Table 1, the baseline "balance" tests.

Also the shared 2 x 2 helpers used by ``estimators.binary`` (Wilson and Newcombe intervals, the
Wald risk-difference SE, and the study's chi-square / Fisher rule).

The study's test rule ("chi-square / Fisher"): Pearson's chi-square without continuity
correction, replaced by Fisher's exact test when any expected count is below 5. For 2 x 2 tables
Fisher's test is exact (scipy); for larger tables (2 x K) the Fisher-Freeman-Halton p-value is a
Monte Carlo p-value from ``scipy.stats.fisher_exact(method=MonteCarloMethod(rng=...))`` drawn
from the estimator's own ``rng`` (never the global numpy RNG).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from palliasim.estimators.base import (
    FAILED,
    NAN,
    Estimate,
    Estimator,
    StatisticalTrouble,
    failed_rows,
    register,
)

#: the adverse-event types of the study's Table 2 (columns ``ae_<type>`` of Cohort.patients).
AE_TYPES = (
    "nausea",
    "constipation",
    "somnolence",
    "cognitive",
    "flare",
    "skin",
    "haematologic",
    "any",
    "grade34",
    "discontinuation",
)
#: Table 1 covariates (plus Charlson, baseline NRS and strong-opioid use, reported in Table 3).
BALANCE_COVARIATES = (
    "age",
    "male",
    "ecog",
    "primary",
    "lesions_gt3",
    "site",
    "spinal",
    "fracture",
    "visceral",
    "charlson",
    "nrs0",
    "strong_opioid",
)
#: the study's ECOG bands (Table 1): 0-1, 2, 3-4.
ECOG_BANDS = ((0, 1), (2, 2), (3, 4))
TEST_RULES = ("study", "chi2", "fisher")
CI_METHODS = ("newcombe", "wald")
FISHER_RESAMPLES = 9999


# --------------------------------------------------------------------------- 2 x 2 helpers
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


def _check_choice(name: str, option: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(
            f"estimators.{name}.{option}='{value}' is not available; "
            f"allowed values: {', '.join(allowed)}"
        )


def _binary_row(
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


def _group_array(patients: pd.DataFrame) -> np.ndarray:
    if "group" not in patients:
        raise StatisticalTrouble("cohort has no 'group' column")
    return patients["group"].to_numpy(dtype=float)


# --------------------------------------------------------------------------- ae_tests
@register("ae_tests")
@dataclass
class AETests(Estimator):
    """Table 2: per adverse-event type, risk difference (observation - control) and the study's test.

    Estimands ``ae_{type}_rd`` (``type`` = the suffix of each ``ae_*`` column: nausea,
    constipation, somnolence, cognitive, flare, skin, haematologic, any, grade34,
    discontinuation): the marginal risk difference P(AE | observation) - P(AE | control), i.e. a
    randomized comparison's estimand. In a confounded cohort the crude difference is a biased
    estimate of it whenever AEs depend on the confounders.

    Estimate = p1 - p0; ``se`` = unpooled Wald SE sqrt(p1 q1 / n1 + p0 q0 / n0); CI by Newcombe's
    hybrid score (``ci: newcombe``, default) or Wald (``ci: wald``); p-value from the study's
    rule (``test: study``: Pearson chi-square without continuity correction, Fisher's exact when
    any expected count < 5), or always ``chi2`` / always ``fisher``. A type with no events in
    either arm has estimate 0 and p = 1 (Fisher); under ``test: chi2`` its p-value is also 1
    (degenerate table). Patients with a missing AE value are dropped for that type only.

    Options: ``types`` (list of suffixes; null = every ``ae_*`` column present), ``ci``, ``test``.
    """

    types: list | None = None
    ci: str = "newcombe"
    test: str = "study"

    def __post_init__(self):
        super().__post_init__()
        _check_choice(self.name, "ci", self.ci, CI_METHODS)
        _check_choice(self.name, "test", self.test, TEST_RULES)

    def targets(self) -> tuple[str, ...]:
        return tuple(f"ae_{t}_rd" for t in (self.types or AE_TYPES))

    def _fit(self, cohort, rng) -> list[Estimate]:
        p = cohort.patients
        g = _group_array(p)
        types = (
            list(self.types) if self.types else [c[3:] for c in p.columns if c.startswith("ae_")]
        )
        if not types:
            raise StatisticalTrouble("cohort has no ae_* columns")
        estimands = [f"ae_{t}_rd" for t in types]
        for arm, label in ((0, "control (group 0)"), (1, "observation (group 1)")):
            if not np.any(g == arm):
                return failed_rows(self.name, estimands, f"the {label} arm has no patients")
        rows = []
        for t, est in zip(types, estimands):
            col = f"ae_{t}"
            if col not in p:
                rows.append(
                    Estimate(
                        self.name,
                        est,
                        status=FAILED,
                        message=f"column '{col}' is not in the cohort",
                    )
                )
                continue
            v = p[col].to_numpy(dtype=float)
            ok = np.isfinite(v) & np.isfinite(g)
            n1, n0 = int(np.sum(ok & (g == 1))), int(np.sum(ok & (g == 0)))
            if n1 == 0 or n0 == 0:
                rows.append(
                    Estimate(
                        self.name,
                        est,
                        status=FAILED,
                        message=f"'{col}' is missing for every patient of an arm",
                    )
                )
                continue
            x1, x0 = int(np.sum(v[ok & (g == 1)])), int(np.sum(v[ok & (g == 0)]))
            rows.append(
                _binary_row(self.name, est, x1, n1, x0, n0, self.alpha, self.ci, self.test, rng)
            )
        return rows


# --------------------------------------------------------------------------- balance
@register("balance")
@dataclass
class Balance(Estimator):
    """Table 1 as an "estimator of apparent balance": the study's baseline tests, per covariate.

    Estimands ``balance_{covariate}`` have NO truth: what is worth evaluating is the rejection
    rate (how often a cohort "looks imbalanced" at level ``alpha``), e.g. how often the study's
    Table 1 would have exposed confounding by indication. By covariate type:

    - continuous (age, charlson, nrs0, or any non-binary numeric column): estimate = difference
      in means (observation - control); p from Student's t-test (``continuous_test: t``,
      default, with the pooled SE and a t CI on n - 2 df), Welch's test (``welch``: Welch SE and
      df) or Mann-Whitney U (``mannwhitney``: p only; estimate, Welch SE and a normal CI as
      before);
    - binary (0/1 columns): estimate = difference in proportions with unpooled Wald SE,
      Newcombe (``ci: newcombe``) or Wald CI, p from the study's chi-square / Fisher rule
      (``test``);
    - multi-category (ecog in the study's bands 0-1 / 2 / 3-4 when ``ecog_bands``, primary, site,
      any categorical column): estimate = Cramer's V = sqrt(X^2 / n) (from the uncorrected
      Pearson statistic of the 2 x K table; in [0, 1], unsigned, no SE or CI), p from the same
      rule (Fisher-Freeman-Halton by Monte Carlo from ``rng`` when an expected count is < 5).

    ``balance_any``: p_value = the minimum p over the covariates (NOT a valid p-value: its
    rejection rate is P(at least one covariate has p < alpha), i.e. how often Table 1 does not
    "look balanced"); estimate = the number of covariates with p < alpha. The article's "all
    P > 0.8" is the event min p > 0.8, whose probability even under perfect randomization is
    about 0.2^k for k roughly independent tests. Missing covariate values are dropped per
    covariate (n_used per row).
    """

    covariates: list | None = None
    continuous_test: str = "t"
    ci: str = "newcombe"
    test: str = "study"
    ecog_bands: bool = True

    def __post_init__(self):
        super().__post_init__()
        _check_choice(
            self.name, "continuous_test", self.continuous_test, ("t", "welch", "mannwhitney")
        )
        _check_choice(self.name, "ci", self.ci, CI_METHODS)
        _check_choice(self.name, "test", self.test, TEST_RULES)

    def _covariates(self) -> list[str]:
        return list(self.covariates) if self.covariates else list(BALANCE_COVARIATES)

    def targets(self) -> tuple[str, ...]:
        return tuple(f"balance_{c}" for c in self._covariates()) + ("balance_any",)

    def _fit(self, cohort, rng) -> list[Estimate]:
        p = cohort.patients
        g = _group_array(p)
        for arm, label in ((0, "control (group 0)"), (1, "observation (group 1)")):
            if not np.any(g == arm):
                return failed_rows(self.name, self.targets(), f"the {label} arm has no patients")
        rows = []
        for c in self._covariates():
            est = f"balance_{c}"
            if c not in p:
                rows.append(
                    Estimate(
                        self.name, est, status=FAILED, message=f"column '{c}' is not in the cohort"
                    )
                )
                continue
            try:
                rows.append(self._one(est, c, p[c], g, rng))
            except StatisticalTrouble as exc:
                rows.append(Estimate(self.name, est, status=FAILED, message=str(exc)))
        pv = np.array([r.p_value for r in rows if r.status != FAILED], dtype=float)
        pv = pv[np.isfinite(pv)]
        if pv.size == 0:
            rows.append(
                Estimate(
                    self.name, "balance_any", status=FAILED, message="no covariate could be tested"
                )
            )
        else:
            rows.append(
                Estimate(
                    self.name,
                    "balance_any",
                    float(np.sum(pv < self.alpha)),
                    p_value=float(pv.min()),
                    n_used=int(np.sum(np.isfinite(g))),
                    message=f"{pv.size} covariates tested",
                )
            )
        return rows

    def _one(self, est: str, c: str, col: pd.Series, g: np.ndarray, rng) -> Estimate:
        if c == "ecog" and self.ecog_bands:
            v = col.to_numpy(dtype=float)
            band = np.full(v.shape, np.nan)
            for k, (lo, hi) in enumerate(ECOG_BANDS):
                band[(v >= lo) & (v <= hi)] = k
            return self._categorical(est, pd.Series(band), g, rng)
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
            return self._categorical(est, col, g, rng)
        v = col.to_numpy(dtype=float)
        ok = np.isfinite(v) & np.isfinite(g)
        if set(np.unique(v[ok])) <= {0.0, 1.0}:
            n1, n0 = int(np.sum(ok & (g == 1))), int(np.sum(ok & (g == 0)))
            if n1 == 0 or n0 == 0:
                raise StatisticalTrouble(f"'{c}' is missing for every patient of an arm")
            x1, x0 = int(v[ok & (g == 1)].sum()), int(v[ok & (g == 0)].sum())
            return _binary_row(self.name, est, x1, n1, x0, n0, self.alpha, self.ci, self.test, rng)
        return self._continuous(est, v[ok & (g == 1)], v[ok & (g == 0)])

    def _continuous(self, est: str, v1: np.ndarray, v0: np.ndarray) -> Estimate:
        n1, n0 = v1.size, v0.size
        if n1 < 2 or n0 < 2:
            raise StatisticalTrouble(f"{est}: fewer than 2 non-missing values in an arm")
        d = float(v1.mean() - v0.mean())
        s1, s0 = v1.var(ddof=1), v0.var(ddof=1)
        if s1 + s0 == 0:
            raise StatisticalTrouble(f"{est}: the covariate is constant in both arms")
        if self.continuous_test == "t":
            df = n1 + n0 - 2
            sp = ((n1 - 1) * s1 + (n0 - 1) * s0) / df
            se = float(np.sqrt(sp * (1 / n1 + 1 / n0)))
            p = float(stats.ttest_ind(v1, v0, equal_var=True).pvalue)
            q = stats.t.ppf(1 - self.alpha / 2, df)
        else:
            se = float(np.sqrt(s1 / n1 + s0 / n0))
            if self.continuous_test == "welch":
                a, b = s1 / n1, s0 / n0
                df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n0 - 1))
                p = float(stats.ttest_ind(v1, v0, equal_var=False).pvalue)
                q = stats.t.ppf(1 - self.alpha / 2, df)
            else:
                p = float(stats.mannwhitneyu(v1, v0, alternative="two-sided").pvalue)
                q = stats.norm.ppf(1 - self.alpha / 2)
        return Estimate(self.name, est, d, se, d - q * se, d + q * se, p, n1 + n0)

    def _categorical(self, est: str, col: pd.Series, g: np.ndarray, rng) -> Estimate:
        ok = col.notna().to_numpy() & np.isfinite(g)
        codes, _ = pd.factorize(col[ok], sort=True)
        gg = g[ok].astype(int)
        if not (np.any(gg == 0) and np.any(gg == 1)):
            raise StatisticalTrouble(f"{est}: the covariate is missing for every patient of an arm")
        k = codes.max() + 1
        table = np.zeros((2, k), dtype=np.int64)
        np.add.at(table, (gg, codes), 1)
        p, chi2, test = table_test(table, self.test, rng)
        v = float(np.sqrt(chi2 / table.sum()))  # Cramer's V for a 2 x K table (min(r, c) - 1 = 1)
        return Estimate(
            self.name,
            est,
            v,
            NAN,
            NAN,
            NAN,
            p,
            int(table.sum()),
            message=f"estimate = Cramer's V ({test})",
        )


__all__ = [
    "AETests",
    "Balance",
    "AE_TYPES",
    "BALANCE_COVARIATES",
    "newcombe_diff",
    "rd_wald",
    "table_test",
    "wilson",
]
