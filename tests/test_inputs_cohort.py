"""task=analyse's input schema: every bad data file is refused with the column, the rule, the
number of rows and the first offending ids; a valid export passes untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from palliasim.experiments.inputs.cohort_schema import read_cohort
from palliasim.sim import ConfigError, generate, load_scenario, rng_for


@pytest.fixture(scope="module")
def frames():
    sc = load_scenario("study", {"cohort.n": 60})
    c = generate(sc, rng_for(11, sc.key, "data", 0))
    return c.patients, c.visits


def _write(d, patients, visits):
    d.mkdir(parents=True, exist_ok=True)
    patients.to_csv(d / "patients.csv", index=False, float_format="%.10g")
    visits.to_csv(d / "visits.csv", index=False, float_format="%.10g")
    return d


def _set(table, col, value, rows=(0,)):
    def mutate(p, v):
        df = p if table == "patients" else v
        df[col] = df[col].astype(object)
        for r in rows:
            df.loc[df.index[r], col] = value
        return p, v

    return mutate


def _drop(table, col):
    def mutate(p, v):
        (p if table == "patients" else v).drop(columns=[col], inplace=True)
        return p, v

    return mutate


def _visit_group_flip(p, v):
    v.loc[v.index[0], "group"] = 1 - v.loc[v.index[0], "group"]
    return p, v


def _dup_visit(p, v):
    return p, pd.concat([v, v.iloc[[3]]], ignore_index=True)


def _unknown_id(p, v):
    v = v.copy()
    v.loc[v.index[0], "id"] = 99999
    return p, v


def _pfs_after_os(p, v):
    p.loc[p.index[0], "pfs_months"] = p.loc[p.index[0], "os_months"] + 5
    return p, v


def _nrs_at_dead_visit(p, v):
    i = v.index[(v["status"] != "observed").to_numpy()][0]
    v.loc[i, "nrs"] = 5
    return p, v


BAD = [
    # (case id, mutation, words the message must contain)
    ("group_nan", _set("patients", "group", np.nan), ["patients column 'group'", "NA"]),
    ("group_2", _set("patients", "group", 2), ["'group'", "0 or 1"]),
    ("group_text", _set("patients", "group", "obs"), ["'group'", "non-numeric"]),
    ("negative_time", _set("patients", "pfs_months", -1.0), ["'pfs_months'", "out of range"]),
    ("infinite_time", _set("patients", "os_months", np.inf), ["'os_months'", "infinite"]),
    ("missing_time", _set("patients", "os_months", np.nan), ["'os_months'", "NA"]),
    ("event_2", _set("patients", "pfs_event", 2), ["'pfs_event'", "0 or 1"]),
    ("event_half", _set("patients", "os_event", 0.5), ["'os_event'", "non-integer"]),
    ("nrs0_15", _set("patients", "nrs0", 15), ["'nrs0'", "[0, 10]"]),
    ("nrs0_neg", _set("patients", "nrs0", -4), ["'nrs0'", "[0, 10]"]),
    ("nrs12_11", _set("patients", "nrs12", 11), ["'nrs12'", "[0, 10]"]),
    ("ecog_7", _set("patients", "ecog", 7), ["'ecog'", "[0, 4]"]),
    ("age_500", _set("patients", "age", 500), ["'age'", "[0, 120]"]),
    ("male_3", _set("patients", "male", 3), ["'male'", "0 or 1"]),
    ("omed_neg", _set("patients", "omed0", -10), ["'omed0'", ">= 0"]),
    ("qol_101", _set("patients", "qol_global_w0", 130), ["'qol_global_w0'", "[0, 100]"]),
    ("crp_neg", _set("patients", "crp_w0", -1), ["'crp_w0'", ">= 0"]),
    ("primary_bad", _set("patients", "primary", "liver"), ["'primary'", "breast"]),
    ("site_bad", _set("patients", "site", "skull"), ["'site'", "axial"]),
    ("dup_id", _set("patients", "id", 2, rows=(0,)), ["'id'", "duplicated"]),
    ("id_nan", _set("patients", "id", np.nan), ["'id'", "NA"]),
    ("no_group", _drop("patients", "group"), ["'group'", "required column is missing"]),
    ("no_pfs", _drop("patients", "pfs_months"), ["'pfs_months'", "missing"]),
    ("no_age", _drop("patients", "age"), ["'age'", "missing"]),
    ("visit_week_3", _set("visits", "week", 3), ["visits column 'week'", "0, 1, 4, 8, 12"]),
    ("visit_nrs_15", _set("visits", "nrs", 15), ["visits column 'nrs'", "[0, 10]"]),
    ("visit_nrs_neg", _set("visits", "nrs", -1), ["visits column 'nrs'", "[0, 10]"]),
    ("visit_status_bad", _set("visits", "status", "lost"), ["'status'", "observed"]),
    ("visit_group_clash", _visit_group_flip, ["visits column 'group'", "differs"]),
    ("visit_dup", _dup_visit, ["(id, week)"]),
    ("visit_unknown_id", _unknown_id, ["ids not in patients", "99999"]),
    ("visit_no_week", _drop("visits", "week"), ["'week'", "missing"]),
    ("pfs_after_os", _pfs_after_os, ["'pfs_months'", "later than os_months"]),
    ("nrs_unobserved", _nrs_at_dead_visit, ["visits column 'nrs'", "not 'observed'"]),
]


@pytest.mark.parametrize("case,mutate,words", BAD, ids=[b[0] for b in BAD])
def test_bad_cohort_is_refused_naming_column_and_rows(tmp_path, frames, case, mutate, words):
    p, v = mutate(frames[0].copy(), frames[1].copy())
    d = _write(tmp_path / "data", p, v)
    with pytest.raises(ConfigError) as exc:
        read_cohort(d, {"cox_adjusted": {"covariates": ["age", "ecog"]}})
    msg = str(exc.value)
    for w in words:
        assert w in msg, msg
    assert "data=" in msg


def test_every_violation_is_listed_at_once(tmp_path, frames):
    p, v = frames[0].copy(), frames[1].copy()
    p.loc[p.index[:3], "nrs0"] = 15
    p.loc[p.index[4], "pfs_event"] = 2
    v.loc[v.index[0], "week"] = 3
    msg = str(pytest.raises(ConfigError, read_cohort, _write(tmp_path / "d", p, v)).value)
    assert "3 problems" in msg and "(3 rows; first: id=" in msg
    assert "'pfs_event'" in msg and "'week'" in msg


def test_missing_covariate_needed_by_an_estimator_is_named(tmp_path, frames):
    p = frames[0].drop(columns=["charlson"])
    d = _write(tmp_path / "d", p, frames[1])
    specs = {"cox_adjusted": {"covariates": ["age", "charlson"]}}
    msg = str(pytest.raises(ConfigError, read_cohort, d, specs).value)
    assert "'charlson'" in msg and "estimators.cox_adjusted.covariates" in msg
    read_cohort(d, {"cox": {"covariates": []}})  # not needed: accepted


FILE_FAULTS = [
    ("empty", b"", "is empty"),
    ("whitespace", b"\n\n", "is empty"),
    ("header_only", b"id,group,age\n", "header but no rows"),
    ("semicolons", b"id;group;age\n1;0;60\n", "semicolons"),
    ("tabs", b"id\tgroup\tage\n1\t0\t60\n", "tabs"),
    ("latin1", "id,group,primary\n1,0,br\xe9ast\n".encode("latin-1"), "not UTF-8"),
    ("unnamed", b"id,group,\n1,0,5\n", "without a name"),
]


@pytest.mark.parametrize("case,raw,words", FILE_FAULTS, ids=[f[0] for f in FILE_FAULTS])
def test_unreadable_files_are_refused_with_the_cause(tmp_path, frames, case, raw, words):
    d = _write(tmp_path / "d", *frames)
    (d / "patients.csv").write_bytes(raw)
    msg = str(pytest.raises(ConfigError, read_cohort, d).value)
    assert words in msg and "patients.csv" in msg


def test_valid_export_with_bom_passes_and_matches(tmp_path, frames):
    d = _write(tmp_path / "d", *frames)
    raw = (d / "patients.csv").read_bytes()
    (d / "patients.csv").write_bytes(b"\xef\xbb\xbf" + raw)
    cohort = read_cohort(d, {"cox_adjusted": {"covariates": ["age", "ecog"]}})
    assert cohort.n == len(frames[0])
    assert list(cohort.patients.columns) == list(frames[0].columns)


def test_missing_file_is_named(tmp_path, frames):
    d = _write(tmp_path / "d", *frames)
    (d / "visits.csv").unlink()
    assert "visits.csv" in str(pytest.raises(ConfigError, read_cohort, d).value)
