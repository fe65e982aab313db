"""Estimators: tables family (see estimators/base.py for the contract).

The study's contingency-table and two-sample analyses, reproduced as estimators so their
operating characteristics can be evaluated:

- ``ae_tests`` (:class:`AETests`): Table 2, one risk difference and test per adverse-event type.
- ``balance`` (:class:`Balance`): Table 1, the baseline "balance" tests.

The 2 x 2 helpers (Wilson and Newcombe intervals, the Wald risk-difference SE, the study's
chi-square / Fisher rule) are shared with ``estimators.binary`` from :mod:`estimators.design`.

The study's test rule ("chi-square / Fisher"): Pearson's chi-square without continuity
correction, replaced by Fisher's exact test when any expected count is below 5. For 2 x 2 tables
Fisher's test is exact (scipy); for larger tables (2 x K) the Fisher-Freeman-Halton p-value is a
Monte Carlo p-value from ``scipy.stats.fisher_exact(method=MonteCarloMethod(rng=...))`` drawn
from the estimator's own ``rng`` (never the global numpy RNG).

Engines: ``reference`` (scipy.stats per covariate / AE type, columns read from the pandas table)
and ``fast`` (the default: every 2 x 2 table of a fit in one numpy pass of
:mod:`estimators.fast.tables`, t-tests from the scipy.special distribution functions, columns
read from ``cohort.arrays``); the same rows to ~1e-12 (the Fisher p-values by the
hypergeometric pmf, within ~5e-13 relative of scipy's). The Monte Carlo Fisher-Freeman-Halton
test stays scipy's in both engines, drawing from the same ``rng`` in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri, stdtr, stdtrit

from palliasim.estimators.base import (
    FAILED,
    NAN,
    Estimate,
    Estimator,
    StatisticalTrouble,
    failed_rows,
    register,
)
from palliasim.estimators.design import (  # noqa: F401  (wilson, rd_wald, table_test: re-exported)
    CI_METHODS,
    FISHER_RESAMPLES,
    TEST_RULES,
    binary_row,
    binary_rows,
    category_codes,
    check_choice,
    newcombe_diff,
    rd_wald,
    table_test,
    wilson,
)
from palliasim.estimators.fast import tables as fast_tables
from palliasim.estimators.lazy import lazy_module

stats = lazy_module("scipy.stats")  # ~0.5 s of import, off the hot paths

ENGINES = ("reference", "fast")

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


# --------------------------------------------------------------------------- 2 x 2 helpers
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

    Options: ``types`` (list of suffixes; null = every ``ae_*`` column present), ``ci``, ``test``;
    ``engine`` (module docstring).
    """

    types: list | None = None
    ci: str = "newcombe"
    test: str = "study"
    engines = ENGINES

    def __post_init__(self):
        super().__post_init__()
        check_choice(self.name, "ci", self.ci, CI_METHODS)
        check_choice(self.name, "test", self.test, TEST_RULES)

    def targets(self) -> tuple[str, ...]:
        return tuple(f"ae_{t}_rd" for t in (self.types or AE_TYPES))

    def _fit(self, cohort, rng) -> list[Estimate]:
        if self.engine == "fast":
            rows = self._fit_fast(cohort)
            if rows is not None:
                return rows
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
                binary_row(self.name, est, x1, n1, x0, n0, self.alpha, self.ci, self.test, rng)
            )
        return rows

    def _fit_fast(self, cohort) -> list[Estimate] | None:
        """The reference's rows from ``cohort.arrays``, all types in one pass (None: a column is
        not numeric, left to the pandas path)."""
        g = cohort.numeric_column("group")
        if g is None:
            return None
        pa = cohort.arrays
        types = list(self.types) if self.types else [c[3:] for c in pa if c.startswith("ae_")]
        if not types:
            raise StatisticalTrouble("cohort has no ae_* columns")
        estimands = [f"ae_{t}_rd" for t in types]
        for arm, label in ((0, "control (group 0)"), (1, "observation (group 1)")):
            if not np.any(g == arm):
                return failed_rows(self.name, estimands, f"the {label} arm has no patients")
        cols, where = [], []
        rows: list[Estimate | None] = [None] * len(types)
        for j, t in enumerate(types):
            v = cohort.numeric_column(f"ae_{t}")
            if v is None:
                if f"ae_{t}" in pa:
                    return None
                rows[j] = Estimate(
                    self.name,
                    estimands[j],
                    status=FAILED,
                    message=f"column 'ae_{t}' is not in the cohort",
                )
                continue
            cols.append(v)
            where.append(j)
        if cols:
            V = np.column_stack(cols)
            ok = np.isfinite(V) & np.isfinite(g)[:, None]
            in1, in0 = ok & (g == 1)[:, None], ok & (g == 0)[:, None]
            n1, n0 = in1.sum(axis=0), in0.sum(axis=0)
            x1 = np.trunc(np.where(in1, V, 0.0).sum(axis=0))
            x0 = np.trunc(np.where(in0, V, 0.0).sum(axis=0))
            fit = [i for i in range(len(where)) if n1[i] and n0[i]]
            for i in range(len(where)):
                if not (n1[i] and n0[i]):
                    rows[where[i]] = Estimate(
                        self.name,
                        estimands[where[i]],
                        status=FAILED,
                        message=f"'ae_{types[where[i]]}' is missing for every patient of an arm",
                    )
            done = binary_rows(
                self.name,
                [estimands[where[i]] for i in fit],
                x1[fit],
                n1[fit],
                x0[fit],
                n0[fit],
                self.alpha,
                self.ci,
                self.test,
            )
            for i, r in zip(fit, done):
                rows[where[i]] = r
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
    covariate (n_used per row). ``engine``: module docstring (the fast engine computes every
    binary covariate's 2 x 2 test in one numpy pass).
    """

    covariates: list | None = None
    continuous_test: str = "t"
    ci: str = "newcombe"
    test: str = "study"
    ecog_bands: bool = True
    engines = ENGINES

    def __post_init__(self):
        super().__post_init__()
        check_choice(
            self.name, "continuous_test", self.continuous_test, ("t", "welch", "mannwhitney")
        )
        check_choice(self.name, "ci", self.ci, CI_METHODS)
        check_choice(self.name, "test", self.test, TEST_RULES)

    def _covariates(self) -> list[str]:
        return list(self.covariates) if self.covariates else list(BALANCE_COVARIATES)

    def targets(self) -> tuple[str, ...]:
        return tuple(f"balance_{c}" for c in self._covariates()) + ("balance_any",)

    def _fit(self, cohort, rng) -> list[Estimate]:
        g = cohort.numeric_column("group") if self.engine == "fast" else None
        if g is None:
            p = cohort.patients
            g = _group_array(p)
        for arm, label in ((0, "control (group 0)"), (1, "observation (group 1)")):
            if not np.any(g == arm):
                return failed_rows(self.name, self.targets(), f"the {label} arm has no patients")
        rows = (
            self._rows_fast(cohort, g, rng)
            if self.engine == "fast"
            else self._rows(cohort.patients, g, rng)
        )
        return rows + [self._any(rows, g)]

    def _rows(self, p: pd.DataFrame, g: np.ndarray, rng) -> list[Estimate]:
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
        return rows

    def _rows_fast(self, cohort, g: np.ndarray, rng) -> list[Estimate]:
        """:meth:`_rows` from ``cohort.arrays``: the numeric covariates as one matrix, binary ones'
        2 x 2 tests in one pass, t-tests and 2 x K tables without scipy.stats (a column that is
        neither numeric nor a categorical of the arrays goes through :meth:`_one`'s pandas path).
        Covariates are visited in order, so the Monte Carlo Fisher tests draw from ``rng`` in
        the reference's order (2 x 2 tests draw nothing)."""
        pa = cohort.arrays
        covs = self._covariates()
        rows: list[Estimate | None] = [None] * len(covs)
        numeric, cols = [], []
        for j, c in enumerate(covs):
            est = f"balance_{c}"
            if c not in pa:
                rows[j] = Estimate(
                    self.name, est, status=FAILED, message=f"column '{c}' is not in the cohort"
                )
                continue
            try:
                v = cohort.numeric_column(c)
                if v is None:
                    codes = category_codes(cohort, c)
                    rows[j] = (
                        self._one(est, c, cohort.patients[c], g, rng)
                        if codes is None
                        else self._categorical_codes(est, codes, g, rng)
                    )
                elif c == "ecog" and self.ecog_bands:
                    band = np.full(v.shape, np.nan)
                    for k, (lo, hi) in enumerate(ECOG_BANDS):
                        band[(v >= lo) & (v <= hi)] = k
                    rows[j] = self._categorical_codes(est, band, g, rng)
                else:
                    numeric.append(j)
                    cols.append(v)
            except StatisticalTrouble as exc:
                rows[j] = Estimate(self.name, est, status=FAILED, message=str(exc))
        if not numeric:
            return rows
        V = np.column_stack(cols)
        ok = np.isfinite(V) & np.isfinite(g)[:, None]
        is_binary = np.all((V == 0.0) | (V == 1.0) | ~ok, axis=0)
        in1, in0 = ok & (g == 1)[:, None], ok & (g == 0)[:, None]
        n1, n0 = in1.sum(axis=0), in0.sum(axis=0)
        x1 = np.where(in1, V, 0.0).sum(axis=0)
        x0 = np.where(in0, V, 0.0).sum(axis=0)
        tables = []
        for i, j in enumerate(numeric):
            est = f"balance_{covs[j]}"
            if not is_binary[i]:
                try:
                    rows[j] = self._continuous(est, V[in1[:, i], i], V[in0[:, i], i])
                except StatisticalTrouble as exc:
                    rows[j] = Estimate(self.name, est, status=FAILED, message=str(exc))
            elif n1[i] == 0 or n0[i] == 0:
                msg = f"'{covs[j]}' is missing for every patient of an arm"
                rows[j] = Estimate(self.name, est, status=FAILED, message=msg)
            else:
                tables.append(i)
        done = binary_rows(
            self.name,
            [f"balance_{covs[numeric[i]]}" for i in tables],
            x1[tables],
            n1[tables],
            x0[tables],
            n0[tables],
            self.alpha,
            self.ci,
            self.test,
        )
        for i, r in zip(tables, done):
            rows[numeric[i]] = r
        return rows

    def _any(self, rows: list[Estimate], g: np.ndarray) -> Estimate:
        pv = np.array([r.p_value for r in rows if r.status != FAILED], dtype=float)
        pv = pv[np.isfinite(pv)]
        if pv.size == 0:
            return Estimate(
                self.name, "balance_any", status=FAILED, message="no covariate could be tested"
            )
        return Estimate(
            self.name,
            "balance_any",
            float(np.sum(pv < self.alpha)),
            p_value=float(pv.min()),
            n_used=int(np.sum(np.isfinite(g))),
            message=f"{pv.size} covariates tested",
        )

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
            return binary_row(self.name, est, x1, n1, x0, n0, self.alpha, self.ci, self.test, rng)
        return self._continuous(est, v[ok & (g == 1)], v[ok & (g == 0)])

    def _continuous(self, est: str, v1: np.ndarray, v0: np.ndarray) -> Estimate:
        n1, n0 = v1.size, v0.size
        if n1 < 2 or n0 < 2:
            raise StatisticalTrouble(f"{est}: fewer than 2 non-missing values in an arm")
        d = float(v1.mean() - v0.mean())
        s1, s0 = v1.var(ddof=1), v0.var(ddof=1)
        if s1 + s0 == 0:
            raise StatisticalTrouble(f"{est}: the covariate is constant in both arms")
        fast = self.engine == "fast"  # t distribution by scipy.special (scipy.stats' own calls)
        if self.continuous_test == "t":
            df = n1 + n0 - 2
            sp = ((n1 - 1) * s1 + (n0 - 1) * s0) / df
            se = float(np.sqrt(sp * (1 / n1 + 1 / n0)))
            if fast:
                p = float(2 * stdtr(df, -abs(d / se)))
                q = stdtrit(df, 1 - self.alpha / 2)
            else:
                p = float(stats.ttest_ind(v1, v0, equal_var=True).pvalue)
                q = stats.t.ppf(1 - self.alpha / 2, df)
        else:
            se = float(np.sqrt(s1 / n1 + s0 / n0))
            if self.continuous_test == "welch":
                a, b = s1 / n1, s0 / n0
                df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n0 - 1))
                if fast:
                    p = float(2 * stdtr(df, -abs(d / se)))
                    q = stdtrit(df, 1 - self.alpha / 2)
                else:
                    p = float(stats.ttest_ind(v1, v0, equal_var=False).pvalue)
                    q = stats.t.ppf(1 - self.alpha / 2, df)
            else:
                p = float(stats.mannwhitneyu(v1, v0, alternative="two-sided").pvalue)
                q = ndtri(1 - self.alpha / 2) if fast else stats.norm.ppf(1 - self.alpha / 2)
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
        return self._table_row(est, table, rng)

    def _categorical_codes(self, est: str, codes: np.ndarray, g: np.ndarray, rng) -> Estimate:
        """:meth:`_categorical` of a column given as integer codes 0, 1, ... in float (NaN =
        missing): the 2 x K table of the observed levels in code order."""
        ok = np.isfinite(codes) & np.isfinite(g)
        gg = g[ok].astype(int)
        if not (np.any(gg == 0) and np.any(gg == 1)):
            raise StatisticalTrouble(f"{est}: the covariate is missing for every patient of an arm")
        cc = codes[ok].astype(np.int64)
        k = int(cc.max()) + 1
        table = np.bincount(gg * k + cc, minlength=2 * k).reshape(2, k)
        table = table[:, table.sum(axis=0) > 0]  # the observed levels, in code order
        return self._table_row(est, table, rng)

    def _table_row(self, est: str, table: np.ndarray, rng) -> Estimate:
        if self.engine == "fast":
            p, chi2, test = fast_tables.table_test(table, self.test, rng, FISHER_RESAMPLES)
        else:
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
