"""Scenario validation (sim/validation.py, sim/scenario.py): every class of invalid configuration
is rejected with a ConfigError that names the offending key, and the scenario's content hash is
the sha256 of its canonical JSON (stable across processes, order-free, sensitive to every value).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from palliasim.sim import ConfigError, Scenario, generate, load_scenario, rng_for
from palliasim.sim.scenario import PRESETS, preset_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    return load_scenario("study")


# (dotted key, invalid value, what the class of error is)
INVALID = [
    ("covariates.fracture_prob", 1.5, "probability > 1"),
    ("covariates.visceral_prob", -0.1, "probability < 0"),
    ("covariates.male_prob_breast", 2.0, "probability > 1"),
    ("treatment.allocation", 0, "open probability at 0"),
    ("treatment.allocation", 1.0, "open probability at 1"),
    ("opioid.p_unchanged", 1.01, "probability > 1"),
    ("cohort.n", 9, "n < 10"),
    ("cohort.n", 0, "n < 10"),
    ("cohort.n", 205.0, "n not an integer"),
    ("cohort.n", "205", "string for number"),
    ("cohort.n", True, "bool for number"),
    ("survival.os.log_hr", "abc", "string for number"),
    ("survival.os.log_hr", None, "None for number"),
    ("nrs.u_effect", float("inf"), "non-finite number"),
    ("frailty.u_sd", float("nan"), "non-finite number"),
    ("survival.censoring.accrual_months", -1, "negative time"),
    ("survival.censoring.min_followup_months", -0.5, "negative time"),
    ("survival.censoring.ltfu_rate", -0.01, "negative rate"),
    ("survival.os.shape", 0, "non-positive Weibull shape"),
    ("survival.progression.scale", -3.0, "non-positive Weibull scale"),
    ("missingness.mechanism", "foo", "bad enum"),
    ("missingness.covariates.mechanism", "mnar", "bad enum"),
    ("response.mode", "x", "bad enum"),
    ("response.dead_as", "zero", "bad enum"),
    ("treatment.scheme", "block", "bad enum"),
    ("covariates.ecog_probs", [0.2, 0.2, 0.2, 0.2, 0.1], "probs not summing to 1"),
    ("covariates.nrs0_probs", [0.5, 0.5, 0.5, -0.5, 0.0, 0.0, 0.0], "negative prob"),
    (
        "covariates.primary_probs",
        {"breast": 0.5, "lung": 0.5, "prostate": 0.1, "gi": 0.0, "other": 0.0},
        "probs not summing to 1",
    ),
    ("covariates.site_probs", {"axial": 0.5, "appendicular": 0.5}, "missing category"),
    ("missingness.target_week12", 0.99, "target out of range"),
    ("missingness.target_week12", -0.01, "target out of range"),
    ("missingness.intermittent", 1.0, "probability not < 1"),
    ("missingness.covariates.columns", ["age"], "column not allowed to be missing"),
    ("adverse_events.any", [0.1, 1.2], "pair outside [0, 1]"),
    ("adverse_events.grade34", [0.2], "not a pair"),
    ("adverse_events.types.nausea", [0.2, 1.5], "AE rate > 1"),
    ("adverse_events.correlation", 1.0, "correlation not < 1"),
    ("covariates.burden_loading.ecog", 0.99, "loading > 0.95"),
    ("nrs.visits", [0, 1, 4, 8], "visit schedule changed"),
    ("nrs.effect", [0.0, 0.0, 0.0], "wrong list length"),
    ("qol.baseline_mean", [1, 2, 3, 4, 200], "QoL mean > 100"),
    ("relief.threshold", 0.5, "threshold < 1"),
    ("truth.n", 999, "truth.n too small"),
    ("truth.seed", -1, "negative seed"),
    ("covariates.age_min", 95, "age_min >= age_max"),
    ("cohort", 5, "section not a mapping"),
]


@pytest.mark.parametrize(
    ("key", "value", "why"), INVALID, ids=[f"{k}={v!r}" for k, v, _ in INVALID]
)
def test_invalid_override_rejected_naming_key(study, key, value, why):
    with pytest.raises(ConfigError) as exc:
        study.with_overrides({key: value})
    assert f"'{key}'" in str(exc.value), (why, str(exc.value))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_scenario("study", {key: value})


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_are_valid(preset):
    sc = load_scenario(preset)
    assert sc.name == ("null" if preset == "no_effect" else preset)  # no_effect: CLI alias of null
    assert sc.with_overrides({}).key == sc.key


def test_unknown_preset():
    with pytest.raises(ConfigError, match="scenario='nope'"):
        load_scenario("nope")


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("cohort.m", "cohort.m"),
        ("survival.os.hr", "survival.os.hr"),
        ("survival.overall.log_hr", "survival.overall"),
        ("foo", "foo"),
    ],
)
def test_unknown_key_via_overrides(study, key, named):
    with pytest.raises(ConfigError, match=rf"unknown config key '{named}'"):
        study.with_overrides({key: 1})
    with pytest.raises(ConfigError, match=rf"unknown config key '{named}'"):
        load_scenario("study", {key: 1})


@pytest.mark.parametrize(
    ("section", "extra"),
    [
        ("cohort", "m"),
        ("survival", "pfs"),
        ("survival.os", "slope"),
        ("missingness.covariates", "x"),
    ],
)
def test_unknown_key_via_from_dict(study, section, extra):
    params = copy.deepcopy(study.params)
    node = params
    for part in section.split("."):
        node = node[part]
    node[extra] = 1.0
    with pytest.raises(ConfigError, match=rf"unknown config key '{section}\.{extra}'"):
        Scenario.from_dict(params)


@pytest.mark.parametrize(
    "dotted",
    ["truth", "cohort.n", "survival.os.age", "missingness.covariates.columns", "qol.effect"],
)
def test_missing_key_via_from_dict(study, dotted):
    params = copy.deepcopy(study.params)
    node = params
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[part]
    del node[parts[-1]]
    with pytest.raises(ConfigError, match=rf"missing config key '{dotted}'"):
        Scenario.from_dict(params)


def test_from_dict_ignores_runner_keys_and_accepts_raw_presets(study):
    """Top-level keys outside the DGM sections belong to the runner (seed, reps, ...)."""
    raw = preset_params("study")
    sc = Scenario.from_dict({**raw, "seed": 7, "reps": 10, "estimators": {"cox": {}}})
    assert sc.key == study.key


def test_ae_any_unreachable_rejected_before_simulation(study):
    """P(any AE) below what the listed types alone give is rejected when the scenario is built,
    naming the key."""
    with pytest.raises(ConfigError, match=r"adverse_events\.any"):
        study.with_overrides({"adverse_events.any": [0.1, 0.1]})
    # too little correlation: the listed types at their rates give P(any) = 0.865 > 0.796
    with pytest.raises(ConfigError, match=r"adverse_events\.any\[0\]"):
        study.with_overrides({"adverse_events.correlation": 0.0})
    with pytest.raises(ConfigError, match=r"adverse_events\.grade34"):
        study.with_overrides({"adverse_events.grade34": [0.9, 0.1]})


# ------------------------------------------------------------------ gaps in the validation
@pytest.mark.parametrize(
    "override",
    [{"adverse_events.any": [0.1, 0.1]}, {"adverse_events.grade34": [0.9, 0.1]}],
    ids=["any_unreachable", "grade34_gt_any"],
)
def test_ae_inconsistency_rejected_at_construction(study, override):
    with pytest.raises(ConfigError, match="adverse_events"):
        study.with_overrides(override)


@pytest.mark.parametrize(
    ("key", "value", "column", "upper"),
    [
        ("covariates.nrs0_probs", [0.1] * 10, "nrs0", 10),
        ("covariates.ecog_probs", [0.1, 0.1, 0.1, 0.1, 0.1, 0.5], "ecog", 4),
    ],
    ids=["nrs0_probs_len10", "ecog_probs_len6"],
)
def test_category_vector_length_checked(study, key, value, column, upper):
    try:
        sc = study.with_overrides({key: value})
    except ConfigError as exc:
        assert key in str(exc)
        return
    P = generate(sc, rng_for(1, sc.key, "data", 0), 2_000).patients
    assert P[column].max() <= upper, (
        f"{key} of length {len(value)} gives {column} up to {P[column].max()}"
    )


def test_strong_opioid_loading_range_checked(study):
    with pytest.raises(ConfigError, match="covariates.strong_opioid_nrs_loading"):
        study.with_overrides({"covariates.strong_opioid_nrs_loading": 1.5})


def test_spinal_odds_ratio_positive(study):
    with pytest.raises(ConfigError, match="covariates.spinal_axial_or"):
        study.with_overrides({"covariates.spinal_axial_or": -2.0})


# ------------------------------------------------------------------ content hash
def _integral_as_int(obj):
    if isinstance(obj, dict):
        return {k: _integral_as_int(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_integral_as_int(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    return obj


def _canonical_json(params: dict) -> str:
    return json.dumps(_integral_as_int(params), sort_keys=True, separators=(",", ":"))


def test_integral_float_and_int_hash_alike(study):
    a = study.with_overrides({"survival.os.log_hr": 0})
    b = study.with_overrides({"survival.os.log_hr": 0.0})
    assert a.key == b.key


@pytest.mark.parametrize("preset", PRESETS)
def test_key_is_sha256_of_canonical_json(preset):
    sc = load_scenario(preset)
    assert len(sc.key) == 64 and int(sc.key, 16) >= 0
    assert sc.key == hashlib.sha256(_canonical_json(sc.params).encode()).hexdigest()
    assert sc.key_ints() == (int(sc.key[:8], 16), int(sc.key[8:16], 16))


def _reverse_order(obj):
    if isinstance(obj, dict):
        return {k: _reverse_order(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [_reverse_order(v) for v in obj]
    return obj


def test_key_independent_of_dict_order(study):
    raw = preset_params("study")
    rev = _reverse_order(raw)
    assert list(rev) != list(raw)
    assert Scenario.from_dict(rev).key == Scenario.from_dict(raw).key == study.key
    # numpy scalars hash like the Python numbers they hold
    sc = study.with_overrides({"survival.os.log_hr": np.float64(-0.2), "cohort.n": np.int64(300)})
    assert sc.key == study.with_overrides({"survival.os.log_hr": -0.2, "cohort.n": 300}).key


def test_constants_key_ignores_only_the_cohort_size(study):
    """Scenario constants (propensity / dropout intercepts) do not depend on cohort.n: every
    size of a power grid shares one solve and the same values; any other key changes them."""
    import importlib

    gen = importlib.import_module("palliasim.sim.generate")
    s100, s300 = study.with_overrides({"cohort.n": 100}), study.with_overrides({"cohort.n": 300})
    assert s100.key != s300.key and s100.constants_key == s300.constants_key
    assert gen.constants(s100) is gen.constants(s300)
    for key, value in (("treatment.allocation", 0.3), ("missingness.target_week12", 0.2)):
        assert study.with_overrides({key: value}).constants_key != study.constants_key, key


def _numeric_leaves(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _numeric_leaves(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix, node


def test_key_changes_with_any_override(study):
    keys = {study.key}
    tried = 0
    # every numeric leaf except the entries of category-probability maps (which must sum to 1
    # and are perturbed as a whole below)
    leaves = [(k, v) for k, v in _numeric_leaves(study.params) if "_probs." not in k]
    for dotted, value in leaves:
        if isinstance(value, int):
            candidates = [value + 1, value - 1]
        else:
            candidates = [value * 0.99 if value else 0.01, value * 1.01 if value else -0.01]
        for new in candidates:
            try:
                sc = study.with_overrides({dotted: new})
            except ConfigError:
                continue
            assert sc.key not in keys, dotted
            keys.add(sc.key)
            tried += 1
            break
    assert tried == len(leaves)  # every numeric key of the schema was perturbed
    for dotted, new in (
        ("missingness.mechanism", "mnar"),
        ("response.dead_as", "missing"),
        ("scenario_name", "other"),
        ("adverse_events.types.nausea", [0.3, 0.2]),
        (
            "covariates.primary_probs",
            {"breast": 0.3, "lung": 0.3, "prostate": 0.2, "gi": 0.1, "other": 0.1},
        ),
    ):
        sc = study.with_overrides({dotted: new})
        assert sc.key not in keys, dotted
        keys.add(sc.key)


def test_key_stable_across_processes(study):
    """No salted hash(): the key is the same in fresh interpreters with different hash seeds."""
    code = "from sim import load_scenario; print(load_scenario('study').key)"
    out = set()
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        res = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        out.add(res.stdout.strip())
    assert out == {study.key}
