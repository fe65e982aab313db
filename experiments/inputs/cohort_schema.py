"""The schema of ``task=analyse``'s input (conf/DATA.md): ``patients`` and ``visits`` tables.

Per column: kind, range or codes, whether NA is allowed; across tables: unique ids, every visit's
id among the patients, ``visits.group`` equal to the patient's ``group``, weeks on the visit
schedule, one row per (id, week), an NRS only at an observed visit, PFS no later than OS.
Columns an analysis needs (its ``covariates`` option) are required. Every violation is listed
at once; nothing is computed or written before the data pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from palliasim.experiments.inputs.schema import (
    Column,
    Violation,
    check_table,
    raise_violations,
)
from palliasim.experiments.inputs.tables import read_table
from palliasim.sim.cohort import PATIENT_REQUIRED, Cohort
from palliasim.sim.covariates import INFLAMMATORY, NUTRITIONAL, PRIMARIES, SITES
from palliasim.sim.qol import DOMAINS
from palliasim.sim.schedule import STATUS_LABELS, WEEKS
from palliasim.sim.truth import ADJUSTMENT_SET

RESPONSE_CATEGORIES = (
    "complete",
    "partial",
    "indeterminate",
    "progression",
    "dead",
    "missing",
    "direct",
)
_BINARY = (
    "male",
    "lesions_gt3",
    "spinal",
    "fracture",
    "visceral",
    "strong_opioid",
    "pfs_event",
    "os_event",
    "response",
    "relief_onset_event",
    "relief_duration_event",
    "ae_any",
    "ae_grade34",
    "ae_discontinuation",
)


def patient_columns() -> list[Column]:
    """The rules of ``patients`` (required columns: sim.cohort.PATIENT_REQUIRED)."""
    req = set(PATIENT_REQUIRED)
    cols = [
        Column("id", "integer", required=True, nullable=False, unique=True),
        Column("group", "binary", required=True, nullable=False),
        Column("age", "number", lo=0, hi=120),
        Column("ecog", "integer", lo=0, hi=4),
        Column("charlson", "integer", lo=0, hi=40),
        Column("nrs0", "integer", lo=0, hi=10),
        Column("nrs12", "integer", lo=0, hi=10),
        Column("omed0", "number", lo=0),
        Column("omed12", "number", lo=0),
        Column("rt_dose_gy", "number", lo=0, hi=100),
        Column("rt_fractions", "integer", lo=0, hi=50),
        Column("primary", "text", choices=PRIMARIES),
        Column("site", "text", choices=SITES),
        Column("response_category", "text", choices=RESPONSE_CATEGORIES),
        Column("pfs_months", "number", lo=0),
        Column("os_months", "number", lo=0),
        Column("relief_onset_weeks", "number", lo=0),
        Column("relief_duration_weeks", "number", lo=0),
    ]
    cols += [Column(c, "binary") for c in _BINARY]
    cols += [
        Column(f"{m}_w{w}", "number", lo=0) for m in INFLAMMATORY + NUTRITIONAL for w in (0, 12)
    ]
    cols += [Column(f"qol_{d}_w{w}", "number", lo=0, hi=100) for d in DOMAINS for w in (0, 12)]
    named = {c.name for c in cols}
    cols += [Column(c, "number") for c in req - named]  # pragma: no cover - schema drift guard
    # survival times and events may not be missing: an analysis would drop patients silently
    nonnull = {"pfs_months", "pfs_event", "os_months", "os_event"}
    return [
        Column(
            c.name,
            c.kind,
            c.name in req,
            c.nullable and c.name not in nonnull,
            c.lo,
            c.hi,
            c.choices,
            c.unique,
        )
        for c in cols
    ]


def visit_columns() -> list[Column]:
    """The rules of ``visits``."""
    return [
        Column("id", "integer", required=True, nullable=False),
        Column("group", "binary", required=True, nullable=False),
        Column("week", "integer", required=True, nullable=False, choices=WEEKS),
        Column("nrs", "integer", required=True, lo=0, hi=10),
        Column("status", "text", choices=STATUS_LABELS),
    ]


def needed_columns(specs: Mapping[str, Mapping]) -> dict[str, str]:
    """Patient columns the configured analyses read through their ``covariates`` option
    (a ``null`` covariates option means the adjustment set): column -> first estimator."""
    out: dict[str, str] = {}
    for name, spec in specs.items():
        covs = spec.get("covariates", ())
        if covs is None and "covariates" in spec:
            covs = ADJUSTMENT_SET
        for c in covs or ():
            out.setdefault(str(c), name)
    return out


def _violation(table: str, col: str, rule: str, ids: pd.Series, mask, label: bool = True):
    """A Violation of the rows in ``mask``, listing their first distinct ids (or None)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return None
    first = ids[mask].drop_duplicates().head(5).astype(int).tolist()
    return Violation(
        table, col, rule, int(mask.sum()), tuple(f"id={i}" if label else i for i in first)
    )


def _cross_checks(p: pd.DataFrame, v: pd.DataFrame) -> list[Violation]:
    pid = pd.to_numeric(p["id"], errors="coerce")
    vid = pd.to_numeric(v["id"], errors="coerce")
    unknown = ~vid.isin(pid).to_numpy() & vid.notna().to_numpy()
    group_of = pd.Series(pd.to_numeric(p["group"], errors="coerce").to_numpy(), index=pid)
    group_of = group_of[~group_of.index.duplicated()]
    vg = pd.to_numeric(v["group"], errors="coerce").to_numpy()
    expected = group_of.reindex(vid).to_numpy()
    clash = ~unknown & ~np.isnan(expected) & ~np.isnan(vg) & (vg != expected)
    found = [
        _violation("visits", "id", "ids not in patients", vid, unknown, label=False),
        _violation("visits", "group", "differs from patients.group for the same id", vid, clash),
        _violation(
            "visits",
            "week",
            "more than one row for the same (id, week)",
            vid,
            v.duplicated(["id", "week"], keep=False),
        ),
    ]
    if "status" in v.columns:
        nrs = pd.to_numeric(v["nrs"], errors="coerce")
        odd = nrs.notna().to_numpy() & (v["status"].astype(str) != "observed").to_numpy()
        rule = "an NRS value at a visit whose status is not 'observed'"
        found.append(_violation("visits", "nrs", rule, vid, odd))
    if {"pfs_months", "os_months"} <= set(p.columns):
        pfs = pd.to_numeric(p["pfs_months"], errors="coerce").to_numpy()
        os_ = pd.to_numeric(p["os_months"], errors="coerce").to_numpy()
        late = (pfs > os_ + 1e-9) & np.isfinite(pfs) & np.isfinite(os_)
        rule = "later than os_months (death ends progression-free survival)"
        found.append(_violation("patients", "pfs_months", rule, pid, late))
    return [x for x in found if x is not None]


def validate_cohort(
    patients: pd.DataFrame, visits: pd.DataFrame, needed: Mapping[str, str] | None = None
) -> list[Violation]:
    """Every violation of the cohort schema (column rules, then cross-table rules)."""
    out = check_table(patients, "patients", patient_columns())
    for col, who in (needed or {}).items():
        if col not in patients.columns:
            out.append(
                Violation("patients", col, f"required by estimators.{who}.covariates but missing")
            )
    out += check_table(visits, "visits", visit_columns())
    # cross-table rules need the key columns of both tables
    if {"id", "group"} <= set(patients.columns) and {"id", "group", "week", "nrs"} <= set(
        visits.columns
    ):
        out += _cross_checks(patients, visits)
    return out


def read_cohort(data: Path, specs: Mapping[str, Mapping] | None = None) -> Cohort:
    """Read ``patients`` and ``visits`` from directory ``data`` and validate them (one
    ConfigError listing every problem), then build the Cohort."""
    patients = read_table(data, "patients")
    visits = read_table(data, "visits")
    raise_violations(validate_cohort(patients, visits, needed_columns(specs or {})), f"data={data}")
    return Cohort.from_frames(patients, visits)
