"""Estimators: continuous family (see estimators/base.py for the contract).

The ``ancova_w12`` estimator: ANCOVA of week-12 QoL domains and blood markers on group and the
outcome's baseline value. Its numerical operation (:func:`estimators.engines.ancova`, OLS by
either engine) and the shared design helpers (:mod:`estimators.design`) live elsewhere; this
module keeps the outcome definitions and the data preparation.

Engines: OLS runs on statsmodels (``reference``) or on the numpy kernel
:func:`estimators.fast.ols_fit` (``fast``, the default). The fast path also reads numeric
covariates from ``cohort.arrays`` and pre-tests the design rank with a Cholesky bound, falling
back to the exact SVD check whenever the bound is inconclusive, so both engines fail on the same
designs with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from palliasim.estimators import engines
from palliasim.estimators.base import (
    Estimate,
    Estimator,
    StatisticalTrouble,
    failed_rows,
    register,
    wald_row,
)
from palliasim.estimators.design import (  # noqa: F401  (ARM_LABELS .. check_full_rank*: re-exported)
    ARM_LABELS,
    LOG_MARKERS,
    NATURAL_MARKERS,
    QOL_DOMAINS,
    W12_OUTCOMES,
    check_covariates,
    check_full_rank,
    check_full_rank_fast,
    patient_covariates,
    patient_covariates_fast,
)
from palliasim.estimators.fast.ols import ols_batch

# --------------------------------------------------------------------------------------------
# numerical cores (numpy in, numpy out)


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

    draws_random = False  # fit never draws from rng: the runner passes rng=None

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
        prepared = [self._outcome(cohort, pa, o) for o in self.outcomes]
        batch = self._batch(prepared, group, Z) if self.engine == "fast" else {}
        rows: list[Estimate] = []
        for y, b, c0, c12, estimand, note in prepared:
            if estimand in batch:
                est, se, df, n = batch[estimand]
                rows.append(
                    wald_row(self.name, estimand, est, se, self.alpha, n, df=df, message=note)
                )
                continue
            try:
                r = engines.ancova(
                    y, group, b, Z, znames, engine=self.engine, outcome=c12, base_name=c0
                )
            except StatisticalTrouble as exc:
                rows += failed_rows(self.name, [estimand], f"StatisticalTrouble: {exc}")
                continue
            rows.append(
                wald_row(
                    self.name, estimand, r.estimate, r.se, self.alpha, r.n, df=r.df, message=note
                )
            )
        return rows

    @staticmethod
    def _outcome(cohort, pa, o: str):
        """(y, baseline, baseline column, week-12 column, estimand, note) of outcome ``o``, on
        the log scale for the inflammatory markers (non-positive values excluded, noted)."""
        c0, c12, log, estimand = w12_outcome(o)
        y, b = _patient_float(cohort, c12, pa), _patient_float(cohort, c0, pa)
        note = ""
        if log:
            bad = (y <= 0) | (b <= 0)
            if bad.any():
                note = f"{int(bad.sum())} non-positive {o} value(s) excluded from the log scale"
            y = np.log(np.where(y > 0, y, np.nan))
            b = np.log(np.where(b > 0, b, np.nan))
        return y, b, c0, c12, estimand, note

    @staticmethod
    def _batch(prepared, group, Z) -> dict:
        """The ANCOVAs of every outcome in one batched OLS (:func:`estimators.fast.ols_batch`,
        ols_fit's arithmetic): {estimand: (estimate, se, df, n)} for the fits that need none of
        ``engines.ancova``'s decisions (complete cases in both arms, a non-constant outcome, a
        rank certainly full, residual df, no perfect fit); the others go one by one."""
        n = group.shape[0]
        Y = np.stack([y for y, *_ in prepared])
        B = np.stack([b for _, b, *_ in prepared])
        common = np.column_stack([np.ones(n), group] + ([Z] if Z.shape[1] else []))
        X = np.concatenate(
            [np.broadcast_to(common[None, :, :2], (len(prepared), n, 2)), B[:, :, None]]
            + ([np.broadcast_to(Z[None], (len(prepared),) + Z.shape)] if Z.shape[1] else []),
            axis=2,
        )
        ok = np.isfinite(Y) & np.isfinite(X).all(axis=2)
        params, cov, df, scale, clean = ols_batch(Y, X, ok)
        nobs = ok.sum(axis=1)
        in1 = (ok & (group == 1)).any(axis=1)
        in0 = (ok & (group == 0)).any(axis=1)
        ymax = np.where(ok, Y, -np.inf).max(axis=1)
        ymin = np.where(ok, Y, np.inf).min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = np.where(ok, Y - (np.where(ok, Y, 0.0).sum(axis=1) / nobs)[:, None], 0.0)
            var = (dev * dev).sum(axis=1) / nobs
        clean &= in1 & in0 & (ymax > ymin) & (scale > 2e-12 * np.maximum(var, 1e-300))
        return {
            prepared[t][4]: (float(params[t, 1]), float(np.sqrt(cov[t, 1, 1])), df[t], int(nobs[t]))
            for t in np.flatnonzero(clean)
        }
