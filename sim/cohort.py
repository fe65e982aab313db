"""Cohort: what an analyst sees (two tidy tables), and the potential outcomes kept apart.

``Cohort.patients`` (one row per patient):
  id, group (0 control, 1 observation), age, male, primary (breast|lung|prostate|gi|other),
  ecog (0-4), lesions_gt3, site (axial|appendicular|mixed), spinal, fracture, visceral,
  charlson, nrs0 (4-10), strong_opioid, omed0 (mg/day), rt_dose_gy, rt_fractions,
  <marker>_w0 for marker in crp, tnf, il6, wbc, pct, nlr, albumin, hb, transferrin, calories,
  qol_<domain>_w0 for domain in global, physical, role, emotional, social,
  nrs12, omed12, qol_<domain>_w12, <marker>_w12 (week 12; NaN unless the week-12 visit is observed),
  response (1 responder, 0 non-responder or dead by week 12, NaN for an alive patient without a
  week-12 assessment; ``response.dead_as`` / ``response.missing_as`` can change both codings),
  response_category (complete|partial|indeterminate|progression|dead|missing|direct),
  relief_onset_weeks, relief_onset_event, relief_duration_weeks, relief_duration_event,
  ae_<type> for each Table 2 type, ae_any, ae_grade34, ae_discontinuation,
  pfs_months, pfs_event, os_months, os_event.
``Cohort.visits`` (one row per patient and scheduled visit, weeks 0, 1, 4, 8, 12):
  id, group, week, nrs (NaN unless observed), status (observed|missed|dropout|dead).
Binary columns are 0/1 integers; baseline covariates listed in ``missingness.covariates.columns``
may be NaN. Tables are built lazily from arrays (cheap generation, pandas only when used).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from palliasim.sim.sorting import stable_argsort

#: baseline covariate columns drawn by sim/covariates.py, in table order (markers and QoL follow)
BASELINE_COLUMNS = (
    "age",
    "male",
    "primary",
    "ecog",
    "lesions_gt3",
    "site",
    "spinal",
    "fracture",
    "visceral",
    "charlson",
    "nrs0",
    "strong_opioid",
    "omed0",
    "rt_dose_gy",
    "rt_fractions",
)
_MISSING = object()

PATIENT_REQUIRED = (
    "id",
    "group",
    "age",
    "male",
    "ecog",
    "nrs0",
    "strong_opioid",
    "lesions_gt3",
    "visceral",
    "pfs_months",
    "pfs_event",
    "os_months",
    "os_event",
)
VISIT_REQUIRED = ("id", "group", "week", "nrs")


class PartialColumns(dict):
    """The patient arrays of a cohort generated below level ``all``: a missing column is a
    KeyError that says so (the reading estimator's ``needs()`` must list it)."""

    level = "all"

    def __missing__(self, col):
        raise KeyError(_absent(col, self.level))


def _absent(what: str, level: str) -> str:
    return (
        f"{what!r} is not in this cohort: it was generated at level '{level}' (sim.generate "
        "LEVELS), because the estimators' needs() did not ask for it; an estimator that reads "
        "it must return it from needs() (or None: the whole cohort)"
    )


class Cohort:
    """An analysable cohort. Build with ``sim.generate`` or :meth:`from_frames`.

    ``level`` (``all`` unless ``sim.generate`` was asked for less): ``os`` / ``pfs`` cohorts have
    only the patient columns of ``sim.generate.level_columns(level)`` and no visits table."""

    def __init__(
        self,
        patient_arrays: dict | None = None,
        visit_arrays: dict | None = None,
        categories: dict | None = None,
        patients: pd.DataFrame | None = None,
        visits: pd.DataFrame | None = None,
        level: str = "all",
    ):
        if level != "all" and patient_arrays is not None:
            patient_arrays = PartialColumns(patient_arrays)
            patient_arrays.level = level
        self._pa = patient_arrays
        self._va = visit_arrays
        self._cats = categories or {}
        self._patients = patients
        self._visits = visits
        self.level = level
        self._floats: dict = {}  # numeric_column's memo

    @classmethod
    def from_frames(cls, patients: pd.DataFrame, visits: pd.DataFrame) -> Cohort:
        return cls(patients=patients.reset_index(drop=True), visits=visits.reset_index(drop=True))

    @property
    def n(self) -> int:
        return len(self._pa["id"]) if self._pa is not None else len(self._patients)

    @property
    def arrays(self) -> dict:
        """Patient-level columns as numpy arrays (categoricals as integer codes)."""
        if self._pa is None:
            return {c: self._patients[c].to_numpy() for c in self._patients.columns}
        return self._pa

    def numeric_column(self, col: str) -> np.ndarray | None:
        """Patient column ``col`` as a float array without building :attr:`patients`, or None
        when it is categorical (or non-numeric), as :attr:`patients` would show it, or absent.

        Array-backed cohorts convert each column once and share it, read-only, among the
        estimators of a replication (copy it to modify it)."""
        if self._pa is None:  # built from frames: the pandas dtypes decide
            df = self.patients
            if col not in df.columns:
                return None
            s = df[col]
            if isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s):
                return None
            return s.to_numpy(dtype=float, na_value=np.nan)
        memo = self._floats
        hit = memo.get(col, _MISSING)
        if hit is not _MISSING:
            return hit
        a = None
        if col in self._pa and col not in self._cats:
            a = np.asarray(self._pa[col])
            if a.dtype.kind in "biuf":
                # float64: a read-only view (the cohort's own array stays writable), else a
                # read-only float copy
                a = a.view() if a.dtype == np.float64 else a.astype(float)
                a.flags.writeable = False
            else:
                a = None
        memo[col] = a
        return a

    def stable_order(self, col: str) -> np.ndarray:
        """``np.argsort(column, kind="stable")`` (int64) of numeric patient column ``col``,
        computed once per cohort and shared by the survival fits of a replication (callers
        must not modify it)."""
        memo = self.__dict__.setdefault("_orders", {})
        o = memo.get(col)
        if o is None:
            a = self.numeric_column(col)
            if a is None:
                raise KeyError(f"no numeric patient column {col!r} to sort by")
            o = stable_argsort(a)
            memo[col] = o
        return o

    def label_mask(self, col: str, label: str) -> np.ndarray | None:
        """Boolean array: patient column ``col`` (categorical or text) equals ``label``; None
        when the column is absent."""
        if self._pa is not None:
            if col not in self._pa:
                return None
            labels = self._cats.get(col)
            if labels is not None:
                if label not in labels:
                    return np.zeros(self.n, dtype=bool)
                return np.asarray(self._pa[col]) == list(labels).index(label)
            return np.asarray(self._pa[col]).astype(str) == label
        if col not in self._patients.columns:
            return None
        return (self._patients[col].astype(str) == label).to_numpy()

    def _require_visits(self) -> None:
        if self._va is None and self._visits is None:
            raise KeyError(_absent("the visits table", self.level))

    @property
    def visit_arrays(self) -> dict:
        self._require_visits()
        if self._va is None:
            return {c: self._visits[c].to_numpy() for c in self._visits.columns}
        return self._va

    @property
    def patients(self) -> pd.DataFrame:
        if self._patients is None:
            df = pd.DataFrame(self._pa, copy=False)
            for col, labels in self._cats.items():
                if col in df:
                    df[col] = pd.Categorical.from_codes(
                        df[col].astype(int), categories=list(labels)
                    )
            self._patients = df
        return self._patients

    @property
    def visits(self) -> pd.DataFrame:
        self._require_visits()
        if self._visits is None:
            df = pd.DataFrame(self._va, copy=False)
            if "status" in self._cats:
                df["status"] = pd.Categorical.from_codes(
                    df["status"], categories=list(self._cats["status"])
                )
            self._visits = df
        return self._visits

    def __repr__(self) -> str:
        return (
            f"Cohort(n={self.n})"
            if self.level == "all"
            else f"Cohort(n={self.n}, level={self.level!r})"
        )


class PotentialOutcomes:
    """Both arms' outcomes for every patient (arrays keyed ``name`` -> (control, observation)).

    Kept out of :class:`Cohort` so no estimator can peek; used only for the truth.
    """

    def __init__(self, arms: dict, shared: dict):
        self.arms = arms
        self.shared = shared

    def __getitem__(self, key):
        return self.arms[key]


def check_frames(patients: pd.DataFrame, visits: pd.DataFrame) -> None:
    """Raise ValueError naming missing or malformed columns of an analysable cohort."""
    problems = []
    for name, df, req in (
        ("patients", patients, PATIENT_REQUIRED),
        ("visits", visits, VISIT_REQUIRED),
    ):
        missing = [c for c in req if c not in df.columns]
        if missing:
            problems.append(f"{name}.csv is missing columns: {', '.join(missing)}")
            continue
        for c in req:
            if not pd.api.types.is_numeric_dtype(df[c]):
                problems.append(f"{name}.csv column '{c}' must be numeric (got {df[c].dtype})")
    if not problems:
        if not set(np.unique(patients["group"].dropna())) <= {0, 1}:
            problems.append("patients.csv column 'group' must be 0 (control) or 1 (observation)")
        if patients["id"].duplicated().any():
            problems.append("patients.csv column 'id' has duplicates")
        if not set(visits["id"]).issubset(set(patients["id"])):
            problems.append("visits.csv has ids not in patients.csv")
    if problems:
        raise ValueError("; ".join(problems))
