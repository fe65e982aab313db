"""Estimators: binary family (see estimators/base.py for the contract).

Week-12 pain response (``Cohort.patients.response``: 1 responder, 0 non-responder or dead by
week 12, NaN for an alive patient without a week-12 assessment; see conf/DATA.md). Option
``missing_as`` (every estimator here) says how an analysis treats those NaN:

- ``exclude`` (default): analyse the patients with an observed response (dead = 0 included):
  targets the study's estimand (death = non-response, missing assessment hypothetical), e.g.
  ``response_logor``; consistent when the week-12 assessment is missing completely at random
  (given the covariates, for the adjusted estimators);
- ``nonresponse``: non-responder imputation (alive unassessed = 0, identified by
  ``response_category == "missing"``): targets the NRI estimand (``response_logor_nri``...) by
  default (``target: auto``), or, with ``target: study``, is scored against the study's
  estimand, which shows the bias of NRI as an analysis of the study's question (the default
  job's ``logistic_nri``). The registry :mod:`palliasim.sim.estimands` defines both.
Then complete cases on the variables it uses (``n_used`` counts them). Estimates are on the
log-odds-ratio or risk-difference scale, group 1 (observation) versus group 0 (control).

Which truth each targets (estimand stems; ``_nri`` appended under NRI, see above):

=========================  ===================================  ==============================
kind                       estimand(s)                          conditional / marginal
=========================  ===================================  ==============================
logistic                   response_logor                       marginal (crude)
logistic_adjusted          response_logor_adj                   conditional on ``covariates``
logistic_study_pipeline    response_logor_adj                   conditional on a data-chosen set
gcomp                      response_rd, response_logor          marginal (standardized)
ipw_or                     response_logor, response_rd          marginal (weighted)
risk_difference            response_rd                          marginal (crude)
mi_response (response_mi)  response_logor, response_rd          marginal (crude, after MI)
=========================  ===================================  ==============================

The crude estimators are consistent for the marginal estimands only without confounding (a
randomized cohort); with ``missing_as: exclude`` they also need the week-12 assessment to be
missing completely at random (in ``study`` dropout is MAR on the last observed pain, so even the
adjusted ones, which condition on baseline covariates only, are slightly off; ``mi_response``
conditions on the earlier visits too). With ``missing_as: nonresponse`` scored against the
study's estimand they are biased toward no effect whenever there is dropout (about -0.1 on the
log OR in ``randomized`` with the default 8% dropout at n = 100,000). The adjusted ones remove
confounding by the measured covariates only: in the ``study`` scenario treatment also depends on
the unmeasured frailty U, which no estimator here can adjust for. Odds ratios are
non-collapsible: even in a randomized trial the adjusted logistic coefficient (conditional OR)
differs from the marginal OR, so ``response_logor_adj`` and ``response_logor`` are different
numbers, and the study's text, which reads its multivariable OR as "the" treatment effect,
conflates them.

Statistical failures (no variation in the response, an arm without analysable patients, perfect
or quasi-complete separation, singular design, non-convergence) become rows with status
``failed`` and a message naming the problem; they never raise.

Logistic fits go through :func:`estimators.engines.logit` (Newton-Raphson to 1e-10 in both
engines: statsmodels ``Logit`` or the numpy kernel :func:`estimators.fast.logistic_fit`, the same
design checks, separation rules and messages; separation is confirmed by the linear-programming
check of Konis (2007)). ``ipw_or`` fits its weighted MSM by statsmodels ``GLM`` with
``var_weights`` (reference) or in closed form (fast: weighted arm risks; HC0 sandwich =
statsmodels' ``GLM(var_weights=w).fit(
                cov_type="HC0", tol=1e-10
            )``).

Engines (``engine:`` option): ``fast`` (the default) also reads numeric columns from
``cohort.arrays`` (:func:`_data_fast`); ``reference`` = statsmodels (``risk_difference``:
scipy.stats; fast: the same 2 x 2 numbers from :mod:`estimators.fast.tables`). Newton converges quadratically in both, so the engines agree to
~1e-10.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import chdtrc, expit, ndtr

from palliasim.estimators import engines
from palliasim.estimators.base import Estimate, Estimator, StatisticalTrouble, register, wald_row
from palliasim.estimators.design import (
    CI_METHODS,
    TEST_RULES,
    binary_row,
    binary_rows,
    check_choice,
)
from palliasim.estimators.fast.logistic import (
    arm_outcomes,
    complete_cases,
    univariable_logistic_batch,
)
from palliasim.sim.estimands import response_estimand
from palliasim.sim.truth import ADJUSTMENT_SET

#: how a response analysis treats an alive patient without a week-12 assessment (NaN response)
MISSING_AS = ("exclude", "nonresponse")
#: which estimand a ``missing_as: nonresponse`` analysis is scored against (auto: its own)
RESPONSE_TARGETS = ("auto", "study", "nri")

#: the study's Table 3 variables available in a Cohort, as screening candidates.
STUDY_CANDIDATES = (
    "age",
    "male",
    "ecog",
    "charlson",
    "lesions_gt3",
    "spinal",
    "fracture",
    "visceral",
    "nrs0",
    "strong_opioid",
    "rt_dose_ge30",
    "rt_multiple_fractions",
)
#: derived binary variables: name -> (source column, predicate); NaN stays NaN.
DERIVED = {
    "rt_dose_ge30": ("rt_dose_gy", lambda v: v >= 30),  # Table 3: RT dose >= 30 Gy
    "rt_multiple_fractions": ("rt_fractions", lambda v: v > 1),  # Table 3: multiple fractions
}


# --------------------------------------------------------------------------- data
@dataclass
class _Data:
    y: np.ndarray  # response 0/1
    g: np.ndarray  # group 0/1
    X: np.ndarray  # covariate columns (n, k), no intercept, no group
    labels: list  # column labels of X
    n_missing_y: int  # patients dropped for a missing response
    n_missing_x: int  # further patients dropped for missing covariates
    design: np.ndarray | None = None  # [1, g, X] (n, 2 + k) if the reader built it (X a view)

    @property
    def n(self) -> int:
        return int(self.y.size)

    def note(self) -> str:
        return (
            f"{self.n_missing_x} patients dropped for missing covariates"
            if self.n_missing_x
            else ""
        )


def _column(p: pd.DataFrame, name: str) -> tuple[np.ndarray, list]:
    """Design block for one variable: numeric (as is), derived binary, or categorical dummies."""
    if name in DERIVED:
        src, pred = DERIVED[name]
        if src not in p:
            raise StatisticalTrouble(f"column '{src}' (needed for '{name}') is not in the cohort")
        v = p[src].to_numpy(dtype=float)
        return np.where(np.isnan(v), np.nan, pred(v).astype(float))[:, None], [name]
    if name not in p:
        raise StatisticalTrouble(f"column '{name}' is not in the cohort")
    col = p[name]
    if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
        # reference = the first level (category order, else sorted); unused levels dropped
        levels = [
            lv
            for lv in (
                col.cat.categories
                if isinstance(col.dtype, pd.CategoricalDtype)
                else sorted(col.dropna().unique())
            )
            if (col == lv).any()
        ]
        miss = col.isna().to_numpy()
        block = (
            np.column_stack([(col == lv).to_numpy(dtype=float) for lv in levels[1:]])
            if len(levels) > 1
            else np.zeros((len(col), 0))
        )
        block[miss] = np.nan
        return block, [f"{name}[{lv}]" for lv in levels[1:]]
    return col.to_numpy(dtype=float)[:, None], [name]


def response_values(cohort, missing_as: str = "exclude") -> np.ndarray | None:
    """The analysed response: the cohort's ``response`` (NaN = alive, not assessed at week 12),
    with those NaN set to 0 under ``missing_as: nonresponse`` (the patients whose
    ``response_category`` is ``missing``; every NaN when the cohort has no category column)."""
    y = cohort.numeric_column("response")
    if y is None or missing_as == "exclude":
        return y
    missing = cohort.label_mask("response_category", "missing")
    if missing is None:
        missing = np.isnan(y)
    return np.where(missing & np.isnan(y), 0.0, y)


def _data(cohort, names, missing_as: str = "exclude") -> _Data:
    """Response, group and covariates of the complete cases (response observed first)."""
    p = cohort.patients
    for c in ("response", "group"):
        if c not in p:
            raise StatisticalTrouble(f"cohort has no '{c}' column")
    y = response_values(cohort, missing_as)
    g = p["group"].to_numpy(dtype=float)
    blocks, labels = [], []
    for name in names:
        b, lab = _column(p, name)
        blocks.append(b)
        labels += lab
    X = np.column_stack(blocks) if blocks else np.zeros((len(y), 0))
    has_y = np.isfinite(y) & np.isfinite(g)
    ok = has_y & np.isfinite(X).all(axis=1)
    return _Data(y[ok], g[ok], X[ok], labels, int((~has_y).sum()), int((has_y & ~ok).sum()))


def _data_fast(cohort, names, missing_as: str = "exclude") -> _Data:
    """:func:`_data` from ``cohort.arrays`` when every variable is numeric or derived from a
    numeric column (else, or for a missing column, :func:`_data` itself)."""
    cols = []
    for name in names:
        src = DERIVED[name][0] if name in DERIVED else name
        v = cohort.numeric_column(src)
        if v is None:
            return _data(cohort, names, missing_as)
        if name in DERIVED:
            v = np.where(np.isnan(v), np.nan, DERIVED[name][1](v).astype(float))
        cols.append(v)
    y = response_values(cohort, missing_as)
    g = cohort.numeric_column("group")
    if y is None or g is None:
        return _data(cohort, names, missing_as)
    A = np.empty((len(cols) + 2, len(y)))  # the design's columns [1, g, X] as rows
    A[0] = 1.0
    A[1] = g
    if cols:
        A[2:] = cols
    D = A.T
    n_miss_y = n_miss_x = 0
    ok, n_has_y, n_ok = complete_cases(y, A)
    if n_ok < len(y):
        n_miss_y = len(y) - n_has_y
        n_miss_x = n_has_y - n_ok
        y, D = y[ok], D[ok]
    return _Data(y, D[:, 1], D[:, 2:], list(names), n_miss_y, n_miss_x, design=D)


def _check_response(d: _Data, per_arm: bool) -> None:
    """Fail clearly on an empty arm, no variation in response or (per_arm) an arm without one outcome."""
    if d.n == 0:
        raise StatisticalTrouble("no patient has an observed week-12 response")
    n0, n1, const0, const1, first0, first1 = arm_outcomes(d.y, d.g)
    for size, label in ((n0, "control (group 0)"), (n1, "observation (group 1)")):
        if not size:
            raise StatisticalTrouble(
                f"the {label} arm has no patient with an observed week-12 "
                "response (and complete covariates)"
            )
    s = d.y.sum()
    if s == d.n:
        raise StatisticalTrouble(
            f"all {d.n} analysed patients are responders: no variation in the response"
        )
    if s == 0:
        raise StatisticalTrouble(
            f"none of the {d.n} analysed patients is a responder: no variation in the response"
        )
    if per_arm:
        for const, first, label in ((const0, first0, "control"), (const1, first1, "observation")):
            if const:
                what = "responders" if first == 1 else "non-responders"
                raise StatisticalTrouble(
                    f"separation: all patients of the {label} arm are {what} "
                    "(the log odds ratio is infinite)"
                )


def _design(d: _Data, with_group: bool = True) -> tuple[np.ndarray, list]:
    """The logistic design [1, g, X] (or [1, X]) of the analysed patients and its labels."""
    labels = ["Intercept"] + (["group"] if with_group else []) + list(d.labels)
    if with_group and d.design is not None:
        return d.design, labels
    cols = [np.ones(d.n)] + ([d.g] if with_group else []) + [d.X]
    return np.column_stack(cols), labels


def _covariate_list(covariates) -> list:
    cov = list(ADJUSTMENT_SET) if covariates is None else list(covariates)
    return list(dict.fromkeys(cov))  # drop duplicates, keep order


# --------------------------------------------------------------------------- estimators
ENGINES = ("reference", "fast")


class _EngineMixin:
    """``self._data`` / ``self._logit``: the engine's data reader and logistic fit."""

    def _data(self, cohort, names) -> _Data:
        return (_data_fast if self.engine == "fast" else _data)(cohort, names, self.missing_as)

    def _logit(self, y, X, labels, what: str = "outcome model"):
        """(params, covariance, fitted probabilities) by :func:`estimators.engines.logit`."""
        return engines.logit(y, X, labels, what, engine=self.engine)


@dataclass
class _ResponseCoding:
    """Options ``missing_as`` (exclude | nonresponse) and ``target`` (auto | study | nri): how
    the analysis treats an alive patient without a week-12 assessment and which estimand its
    rows name (sim.estimands.response_estimand; module docstring)."""

    missing_as: str = "exclude"
    target: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        check_choice(self.name, "missing_as", self.missing_as, MISSING_AS)
        check_choice(self.name, "target", self.target, RESPONSE_TARGETS)
        if self.missing_as == "exclude" and self.target == "nri":
            raise ValueError(
                f"estimators.{self.name}.target='nri' needs missing_as='nonresponse' (excluding "
                "unassessed patients targets the study's estimand); allowed: auto, study"
            )

    def _target_name(self, stem: str) -> str:
        if stem not in self.estimands:
            return stem
        return response_estimand(stem, self.missing_as, self.target)

    def targets(self) -> tuple[str, ...]:
        return tuple(self._target_name(e) for e in self.estimands)

    def fit(self, cohort, rng=None):
        rows = super().fit(cohort, rng)
        for r in rows:
            r.estimand = self._target_name(r.estimand)
        return rows


@register("logistic")
@dataclass
class Logistic(_ResponseCoding, _EngineMixin, Estimator):
    """Unadjusted logistic regression of response on group: the crude (marginal) log OR.

    Estimand ``response_logor`` = logit P(R(1) = 1) - logit P(R(0) = 1), marginal. The estimate
    equals log(a d / (b c)) of the 2 x 2 table and the SE is Woolf's sqrt(1/a + 1/b + 1/c + 1/d)
    (the inverse information of the saturated model); Wald CI and p. Consistent for its
    estimand (module docstring: ``missing_as``) without confounding, e.g. ``randomized``, and,
    with ``missing_as: exclude``, when the week-12 assessment is missing completely at random.
    """

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    estimands = ("response_logor",)
    engines = ENGINES

    def _fit(self, cohort, rng) -> list[Estimate]:
        return _group_logor_rows(self, cohort, [], "response_logor")


def _group_logor_rows(est, cohort, covariates: list, estimand: str) -> list[Estimate]:
    """The group coefficient of logistic(response ~ group + covariates) as one Wald row."""
    d = est._data(cohort, covariates)
    _check_response(d, per_arm=True)
    X, labels = _design(d)
    b, V, _ = est._logit(d.y, X, labels)
    return [wald_row(est.name, estimand, b[1], np.sqrt(V[1, 1]), est.alpha, d.n, message=d.note())]


@register("logistic_adjusted")
@dataclass
class LogisticAdjusted(_ResponseCoding, _EngineMixin, Estimator):
    """Logistic regression of response on group + ``covariates``: a CONDITIONAL log OR.

    Estimand ``response_logor_adj``: the group coefficient of the logistic model with
    ``covariates`` (default ``sim.truth.ADJUSTMENT_SET``: age, male, ecog, visceral, lesions_gt3,
    charlson, nrs0, strong_opioid, entered linearly) fitted to the population's potential
    outcomes. This is a conditional OR; it is NOT the marginal OR (``response_logor``) that the
    study's text implies, even in a randomized trial (non-collapsibility). With other covariates
    the target is a different conditional OR, for which ``response_logor_adj`` is the truth only
    approximately. Model-based SE (inverse observed information), Wald CI and p.
    Categorical covariates (e.g. ``primary``, ``site``) enter as dummies of their levels.
    """

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    covariates: list | None = None
    estimands = ("response_logor_adj",)
    engines = ENGINES

    def _fit(self, cohort, rng) -> list[Estimate]:
        return _group_logor_rows(
            self, cohort, _covariate_list(self.covariates), "response_logor_adj"
        )


@register("logistic_study_pipeline")
@dataclass
class LogisticStudyPipeline(_ResponseCoding, _EngineMixin, Estimator):
    """The study's response analysis: univariable screening, then a multivariable logistic model.

    1. For each of ``candidates`` (default: Table 3's variables available in a Cohort: age, male,
       ecog, charlson, lesions_gt3, spinal, fracture, visceral, nrs0, strong_opioid,
       rt_dose_ge30 = RT dose >= 30 Gy, rt_multiple_fractions = more than one fraction), a
       univariable logistic regression of response on that variable (patients with the variable
       observed); it is selected when its Wald p (likelihood-ratio p for a categorical variable)
       is below ``screen_p`` (0.10). Candidates whose univariable model fails are not selected
       (listed in the message).
    2. A multivariable logistic regression of response on group + selected + ``forced`` (the
       study's "clinically relevant" variables; none by default), complete cases. The estimate
       is the group coefficient.

    Target: ``response_logor_adj`` (conditional on ADJUSTMENT_SET). The selected set varies from
    cohort to cohort, so the pipeline targets a different conditional OR each time; the
    selection is part of the estimator. The reported SE, CI and p are the final model's nominal
    ones and ignore the selection (post-selection inference), so their coverage is not
    guaranteed. The selected variables are listed in ``message``.

    ``model_nonresponse: true`` reproduces the study's apparent error (Table 4): the outcome is
    non-response (1 - response), so every coefficient changes sign (OR -> 1 / OR).
    """

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    candidates: list = field(default_factory=lambda: list(STUDY_CANDIDATES))
    screen_p: float = 0.10
    forced: list = field(default_factory=list)
    model_nonresponse: bool = False
    estimands = ("response_logor_adj",)
    engines = ENGINES

    def __post_init__(self):
        super().__post_init__()
        if not (0 < self.screen_p <= 1):
            raise ValueError(
                f"estimators.{self.name}.screen_p must be in (0, 1]; got {self.screen_p}"
            )

    def _screen_batch(self, cohort, candidates: list) -> dict:
        """Screening p-values of the numeric (or derived) candidates, all univariable models in
        one batched Newton-Raphson (:func:`estimators.fast.logistic.univariable_logistic_batch`,
        the same iterations as one fit each); {candidate: p} for the models it fitted cleanly,
        the others are left to the one-by-one path of :meth:`_screen`."""
        y = response_values(cohort, self.missing_as)
        g = cohort.numeric_column("group")
        if y is None or g is None:
            return {}
        cols, names = [], []
        for c in candidates:
            v = cohort.numeric_column(DERIVED[c][0] if c in DERIVED else c)
            if v is None:
                continue
            if c in DERIVED:
                v = np.where(np.isnan(v), np.nan, DERIVED[c][1](v).astype(float))
            cols.append(v)
            names.append(c)
        if not cols:
            return {}
        X = np.column_stack(cols)
        ok = (np.isfinite(y) & np.isfinite(g))[:, None] & np.isfinite(X)
        b, V, clean = univariable_logistic_batch(
            y, X, ok, maxiter=engines.LOGIT_MAXITER, tol=1e-10, p_extreme=engines.P_EXTREME
        )
        p = 2 * ndtr(-np.abs(b[:, 1]) / np.sqrt(V[:, 1, 1]))  # = 2 norm.sf(|z|)
        return {c: float(p[j]) for j, c in enumerate(names) if clean[j]}

    def _screen(self, cohort) -> tuple[list, list]:
        selected, failed = [], []
        candidates = list(dict.fromkeys(self.candidates))
        batch = self._screen_batch(cohort, candidates) if self.engine == "fast" else {}
        for c in candidates:
            if c in batch:
                if batch[c] < self.screen_p:
                    selected.append(c)
                continue
            try:
                d = self._data(cohort, [c])
                X, labels = _design(d, with_group=False)
                if d.n == 0 or d.y.min() == d.y.max():
                    raise StatisticalTrouble("no variation in the response")
                b, V, mu = self._logit(d.y, X, labels, what=f"screening model for '{c}'")
            except StatisticalTrouble:
                failed.append(c)
                continue
            if X.shape[1] == 2:
                p = 2 * ndtr(-abs(b[1]) / np.sqrt(V[1, 1]))  # = 2 norm.sf(|z|)
            else:  # likelihood-ratio test of all dummies of a categorical candidate
                ybar = d.y.mean()
                ll0 = d.n * (ybar * np.log(ybar) + (1 - ybar) * np.log1p(-ybar))
                ll1 = float(np.sum(d.y * np.log(mu) + (1 - d.y) * np.log1p(-mu)))
                p = chdtrc(X.shape[1] - 1, 2 * (ll1 - ll0))  # = chi2.sf
            if p < self.screen_p:
                selected.append(c)
        return selected, failed

    def _fit(self, cohort, rng) -> list[Estimate]:
        selected, failed = self._screen(cohort)
        names = list(dict.fromkeys(selected + list(self.forced)))
        d = self._data(cohort, names)
        _check_response(d, per_arm=True)
        y = 1.0 - d.y if self.model_nonresponse else d.y
        X, labels = _design(d)
        b, V, _ = self._logit(y, X, labels)
        msg = "selected: " + (", ".join(selected) if selected else "none")
        if self.forced:
            msg += "; forced: " + ", ".join(self.forced)
        if failed:
            msg += "; screening model failed for: " + ", ".join(failed)
        if self.model_nonresponse:
            msg += "; outcome = NON-response (the study's apparent error)"
        msg = "; ".join(filter(None, [msg, d.note()]))
        return [
            wald_row(
                self.name,
                "response_logor_adj",
                b[1],
                np.sqrt(V[1, 1]),
                self.alpha,
                d.n,
                message=msg,
            )
        ]


def _standardize(b: np.ndarray, X: np.ndarray):
    """Standardized risks (R0, R1), their gradients wrt b, and per-patient predictions."""
    X0, X1 = X.copy(), X.copy()
    X0[:, 1], X1[:, 1] = 0.0, 1.0
    p0, p1 = expit(X0 @ b), expit(X1 @ b)
    n = X.shape[0]
    G = np.vstack([(p0 * (1 - p0)) @ X0 / n, (p1 * (1 - p1)) @ X1 / n])
    return np.array([p0.mean(), p1.mean()]), G, np.column_stack([p0, p1])


def _rd_logor(R: np.ndarray, S: np.ndarray):
    """(rd, se_rd, logor, se_logor) from risks R = (R0, R1) with covariance S (delta method)."""
    r0, r1 = R
    rd = r1 - r0
    lor = np.log(r1 / (1 - r1)) - np.log(r0 / (1 - r0))
    a = np.array([-1.0, 1.0])
    c = np.array([-1.0 / (r0 * (1 - r0)), 1.0 / (r1 * (1 - r1))])
    return rd, float(np.sqrt(a @ S @ a)), lor, float(np.sqrt(c @ S @ c))


@register("gcomp")
@dataclass
class GComputation(_ResponseCoding, _EngineMixin, Estimator):
    """G-computation (standardization) from the adjusted logistic model: MARGINAL contrasts.

    Fit logit P(R = 1 | A, X) = b0 + bA A + X'bX on the complete cases, predict every analysed
    patient's risk under A = 1 and A = 0 and average over the sample:
    R_a = (1/n) sum_i expit(b0 + bA a + X_i'bX). Estimands ``response_rd`` = R1 - R0 and
    ``response_logor`` = logit R1 - logit R0 (marginal; consistent when the outcome model is
    correct and X includes all confounders).

    ``se: delta`` (default): Var(R0, R1) = G V G' + Cov_i(p0_i, p1_i) / n, where V is the
    model-based covariance of b, G the gradient of the standardized risks (exact, analytic) and
    the second term the sampling variability of the empirical covariate distribution (the
    influence-function variance of a standardized mean; the cross term vanishes under a correct
    model). Without it the SE would be for the sample-average effect given X. Then the delta
    method to the RD and log OR. ``se: bootstrap``: nonparametric bootstrap of patients with
    ``n_boot`` resamples drawn from the estimator's ``rng``; resamples whose model fails are
    skipped (count in message) and more than 10% failing fails the row. Wald CI, p from z.
    """

    covariates: list | None = None
    se: str = "delta"
    n_boot: int = 200
    estimands = ("response_rd", "response_logor")
    engines = ENGINES

    def __post_init__(self):
        super().__post_init__()
        check_choice(self.name, "se", self.se, ("delta", "bootstrap"))
        if self.se == "bootstrap" and self.n_boot < 20:
            raise ValueError(f"estimators.{self.name}.n_boot must be >= 20; got {self.n_boot}")

    def _point(self, y, X, labels):
        b, V, _ = self._logit(y, X, labels)
        R, G, P = _standardize(b, X)
        return b, V, R, G, P

    def uses_rng(self) -> bool:
        return self.se == "bootstrap"

    def _fit(self, cohort, rng) -> list[Estimate]:
        d = self._data(cohort, _covariate_list(self.covariates))
        _check_response(d, per_arm=True)
        X, labels = _design(d)
        b, V, R, G, P = self._point(d.y, X, labels)
        n = d.n
        S = G @ V @ G.T + np.cov(P.T, ddof=0) / n
        rd, se_rd, lor, se_lor = _rd_logor(R, S)
        msg = d.note()
        if self.se == "bootstrap":
            if rng is None:
                raise ValueError("gcomp with se='bootstrap' needs an rng")
            reps, fails = [], 0
            for _ in range(self.n_boot):
                i = rng.integers(0, n, n)
                try:
                    yb, gb = d.y[i], d.g[i]
                    if yb.min() == yb.max() or gb.min() == gb.max():
                        raise StatisticalTrouble("degenerate resample")
                    _, _, Rb, _, _ = self._point(yb, X[i], labels)
                    reps.append(_rd_logor(Rb, np.zeros((2, 2)))[::2])
                except StatisticalTrouble:
                    fails += 1
            if fails > 0.1 * self.n_boot:
                raise StatisticalTrouble(
                    f"bootstrap: the model failed in {fails} of {self.n_boot} resamples"
                )
            se_rd, se_lor = np.std(np.array(reps), axis=0, ddof=1)
            msg = "; ".join(
                filter(
                    None,
                    [
                        msg,
                        f"bootstrap SE ({len(reps)} resamples"
                        + (f", {fails} failed)" if fails else ")"),
                    ],
                )
            )
        return [
            wald_row(self.name, "response_rd", rd, se_rd, self.alpha, n, message=msg),
            wald_row(self.name, "response_logor", lor, se_lor, self.alpha, n, message=msg),
        ]


@register("ipw_or")
@dataclass
class IPWOddsRatio(_ResponseCoding, _EngineMixin, Estimator):
    """Inverse probability weighting: MARGINAL log OR and risk difference.

    Propensity e(X) = P(A = 1 | X) from a logistic model on ``covariates`` (default
    ADJUSTMENT_SET), fitted to the complete cases; stabilized weights w = P(A=1) / e(X) for the
    observation arm and P(A=0) / (1 - e(X)) for controls. The marginal structural model
    logit P(R(a) = 1) = b0 + b1 a is fitted by weighted logistic regression (statsmodels GLM,
    Binomial, ``var_weights = w``): b1 estimates ``response_logor`` (marginal); the weighted
    (Hajek) risks R_a = expit(b0 + b1 a) give ``response_rd`` = R1 - R0 (delta method from the
    covariance of b). Because the MSM is saturated, stabilization does not change the estimates
    or the SEs; it only tames the weights' scale.

    ``se: robust`` (default): the sandwich A^-1 B A^-1 with bread A = sum w mu (1 - mu) z z' and
    meat B = sum w^2 (y - mu)^2 z z', which is what GLM(..., var_weights=w).fit(cov_type="HC0")
    computes. (With ``freq_weights`` statsmodels treats w as replicate counts and the meat
    becomes sum w (y - mu)^2 z z', which is wrong for IPW; the model-based GLM SE is wrong with
    either.) It treats the weights as known and is conservative for the ATE when the propensity
    is estimated (Lunceford & Davidian 2004). ``se: stacked``: M-estimation sandwich stacking
    the propensity score equations with the weighted outcome equations, which accounts for the
    estimated propensity (usually smaller; in checks at n = 1000 with moderate measured
    confounding its coverage was nominal where ``robust`` over-covered, but at n = 400 with
    strong confounding and extreme weights it under-covered, 0.905 for a 95% CI, as sandwich
    estimators do in small samples). Wald CI, p from z. The message reports the largest
    stabilized weight and Kish's effective sample size (sum w)^2 / sum w^2. A propensity model with
    separation (a positivity violation) fails the rows.
    """

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    covariates: list | None = None
    se: str = "robust"
    estimands = ("response_logor", "response_rd")
    engines = ENGINES

    def __post_init__(self):
        super().__post_init__()
        check_choice(self.name, "se", self.se, ("robust", "stacked"))

    def _fit(self, cohort, rng) -> list[Estimate]:
        d = self._data(cohort, _covariate_list(self.covariates))
        _check_response(d, per_arm=True)
        Xp = np.column_stack([np.ones(d.n), d.X])
        a, _, e = self._logit(d.g, Xp, ["Intercept"] + d.labels, what="propensity model")
        pbar = d.g.mean()
        w = np.where(d.g == 1, pbar / e, (1 - pbar) / (1 - e))
        Z = np.column_stack([np.ones(d.n), d.g])
        if self.engine == "fast":
            b, V_hc0 = _msm_saturated(d.y, d.g, w)
        else:
            import statsmodels.api as sm

            res = sm.GLM(d.y, Z, family=sm.families.Binomial(), var_weights=w).fit(cov_type="HC0")
            b = np.asarray(res.params, dtype=float)
            V_hc0 = np.asarray(res.cov_params(), dtype=float)
        if self.se == "robust":
            V = V_hc0
        else:
            V = _stacked_cov(d.y, d.g, Xp, Z, e, w, b)
        R = expit(np.array([b[0], b[0] + b[1]]))
        J = np.array([[R[0] * (1 - R[0]), 0.0], [R[1] * (1 - R[1])] * 2])  # d(R0, R1) / d b
        rd, se_rd, _, _ = _rd_logor(R, J @ V @ J.T)
        ess = w.sum() ** 2 / (w * w).sum()
        msg = "; ".join(filter(None, [d.note(), f"max weight {w.max():.2f}, ESS {ess:.0f}"]))
        return [
            wald_row(
                self.name, "response_logor", b[1], np.sqrt(V[1, 1]), self.alpha, d.n, message=msg
            ),
            wald_row(self.name, "response_rd", rd, se_rd, self.alpha, d.n, message=msg),
        ]


def _msm_saturated(y, g, w) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logistic MSM logit P(Y = 1) = b0 + b1 g in closed form, with the HC0 sandwich.

    The model is saturated, so the weighted MLE reproduces the weighted (Hajek) arm risks
    R_a = sum_{g=a} w y / sum_{g=a} w: b0 = logit R0, b1 = logit R1 - logit R0. Bread
    A = sum w mu (1 - mu) z z', meat B = sum w^2 (y - mu)^2 z z' (z = (1, g)), V = A^-1 B A^-1:
    what ``GLM(y, Z, Binomial(), var_weights=w).fit(cov_type="HC0")`` returns (its IRLS
    converges to the same point; both arms have both outcomes, checked by the caller).
    """
    one = g == 1
    w1, w0 = w[one], w[~one]
    R1 = float(w1 @ y[one]) / float(w1.sum())
    R0 = float(w0 @ y[~one]) / float(w0.sum())
    b = np.array([np.log(R0 / (1 - R0)), np.log(R1 / (1 - R1)) - np.log(R0 / (1 - R0))])
    mu = np.where(one, R1, R0)
    a = w * mu * (1 - mu)
    m = w * w * (y - mu) ** 2
    a1, m1 = float(a[one].sum()), float(m[one].sum())
    A = np.array([[float(a.sum()), a1], [a1, a1]])
    B = np.array([[float(m.sum()), m1], [m1, m1]])
    Ai = np.linalg.inv(A)
    return b, Ai @ B @ Ai


def _stacked_cov(y, g, Xp, Z, e, w, b) -> np.ndarray:
    """Covariance of the MSM coefficients b from the stacked (propensity + outcome) sandwich.

    psi_i = (Xp_i (g_i - e_i), w_i Z_i (y_i - mu_i)); dw_i/dalpha = w_i (e_i - g_i) Xp_i (the
    stabilizing constants drop out of a saturated MSM at the solution).
    """
    n, k = Xp.shape
    mu = expit(Z @ b)
    r = y - mu
    psi = np.hstack([Xp * (g - e)[:, None], Z * (w * r)[:, None]])
    A = np.zeros((k + 2, k + 2))
    A[:k, :k] = (Xp * (e * (1 - e))[:, None]).T @ Xp / n
    A[k:, k:] = (Z * (w * mu * (1 - mu))[:, None]).T @ Z / n
    A[k:, :k] = -(Z * (w * r * (e - g))[:, None]).T @ Xp / n
    B = psi.T @ psi / n
    Ainv = np.linalg.inv(A)
    return (Ainv @ B @ Ainv.T / n)[k:, k:]


@register("risk_difference")
@dataclass
class RiskDifference(_ResponseCoding, Estimator):
    """Crude risk difference of response, observation - control: MARGINAL ``response_rd``.

    Estimate p1 - p0 with the unpooled Wald SE; CI by Newcombe's hybrid score (method 10,
    ``ci: newcombe``, default) or Wald; p-value from Pearson's chi-square without continuity
    correction (``test: chi2``, the study's Table 3 test; ``study`` switches to Fisher when an
    expected count is < 5; ``fisher`` always Fisher). Consistent only without confounding (and,
    with ``missing_as: exclude``, under MCAR week-12 assessment).
    """

    ci: str = "newcombe"
    test: str = "chi2"
    estimands = ("response_rd",)
    engines = ENGINES

    def __post_init__(self):
        super().__post_init__()
        check_choice(self.name, "ci", self.ci, CI_METHODS)
        check_choice(self.name, "test", self.test, TEST_RULES)

    def _fit(self, cohort, rng) -> list[Estimate]:
        fast = self.engine == "fast"
        d = (_data_fast if fast else _data)(cohort, [], self.missing_as)
        _check_response(d, per_arm=False)
        one, zero = d.g == 1, d.g == 0
        x1, n1 = int(d.y[one].sum()), int(np.count_nonzero(one))
        x0, n0 = int(d.y[zero].sum()), int(np.count_nonzero(zero))
        if fast:
            (row,) = binary_rows(
                self.name, ["response_rd"], [x1], [n1], [x0], [n0], self.alpha, self.ci, self.test
            )
        else:
            row = binary_row(
                self.name, "response_rd", x1, n1, x0, n0, self.alpha, self.ci, self.test, rng
            )
        row.message = "; ".join(filter(None, [row.message, d.note()]))
        return [row]
