"""True values of the estimands (sim/truth.py), their on-disk cache, and the marginal-target
solver (sim/calibrate.py:solve_parameter).

Small potential-outcome samples (``truth.n`` 2,000-20,000) keep this fast; tolerances are
4 Monte Carlo SEs as reported by the truth itself (batch means / paired differences).
"""

from __future__ import annotations

import copy
import importlib
import json

import numpy as np
import pytest

from palliasim.sim import generate_with_potential, load_scenario, rng_for
from palliasim.sim.calibrate import _po_sample, marginal_measures, solve_parameter
from palliasim.sim.survstats import cox_loghr
from palliasim.sim.truth import compute_truth, truth, truth_key

#: the module: ``sim.truth`` as an attribute is the function re-exported by sim/__init__.py
truth_module = importlib.import_module("palliasim.sim.truth")
Z = 4.0
SMALL = {"truth.n": 20_000}
#: estimands that are levels of one arm, not contrasts (equal across arms under the null)
LEVELS = ("pfs_median_", "os_median_", "response_risk_")


@pytest.fixture(scope="module")
def study_sc():
    return load_scenario("study", SMALL)


@pytest.fixture(scope="module")
def study_values(study_sc):
    return compute_truth(study_sc)


# ------------------------------------------------------------------ null and config values
def test_null_truth_is_exactly_zero():
    values = compute_truth(load_scenario("null", SMALL))
    contrasts = {k: v for k, v in values.items() if not k.startswith(LEVELS)}
    assert len(contrasts) >= 40
    for name, v in contrasts.items():
        # common random numbers and zero effects: both arms' potential outcomes coincide
        assert abs(v["value"]) <= 1e-12 + Z * v["mcse"], (name, v)
        assert abs(v["value"]) <= 1e-12, (name, v)
    for stem in LEVELS:
        assert values[stem + "0"]["value"] == values[stem + "1"]["value"], stem
    for ep in ("pfs", "os"):  # both conditional HRs are 0 in the null preset
        assert values[f"{ep}_loghr_cond"] == {"value": 0.0, "mcse": 0.0, "source": "config"}


def test_conditional_parameters_equal_config(study_sc, study_values):
    p = study_sc.params
    assert study_values["os_loghr_cond"] == {
        "value": p["survival"]["os"]["log_hr"],
        "mcse": 0.0,
        "source": "config",
    }
    # PFS = min(progression, death) is conditionally PH only when both log HRs are equal
    assert p["survival"]["os"]["log_hr"] != p["survival"]["progression"]["log_hr"]
    assert "pfs_loghr_cond" not in study_values
    assert "response_logor_cond" not in study_values  # derived response mode

    sc = load_scenario(
        "study",
        {
            "truth.n": 2_000,
            "survival.os.log_hr": -0.25,
            "survival.progression.log_hr": -0.25,
            "response.mode": "direct",
            "response.direct.log_or": 0.7,
        },
    )
    v = compute_truth(sc)
    assert v["pfs_loghr_cond"] == {"value": -0.25, "mcse": 0.0, "source": "config"}
    assert v["os_loghr_cond"] == {"value": -0.25, "mcse": 0.0, "source": "config"}
    assert v["response_logor_cond"] == {"value": 0.7, "mcse": 0.0, "source": "config"}


def test_ae_risk_differences_equal_config(study_sc, study_values):
    ae = study_sc.get("adverse_events")
    pairs = {**ae["types"], **{k: ae[k] for k in ("any", "grade34", "discontinuation")}}
    assert len(pairs) == 10
    for name, (p0, p1) in pairs.items():
        v = study_values[f"ae_{name}_rd"]
        assert v["source"] == "config" and v["mcse"] == 0.0
        assert v["value"] == pytest.approx(p1 - p0, abs=1e-15), name


def test_marginal_equals_conditional_hr_without_prognostic_factors():
    """With no prognostic factor in either hazard and equal log HRs, PFS and OS are exactly PH in
    the arm, so the marginal (and adjusted) log HRs equal the conditional one (no
    non-collapsibility) within Monte Carlo error."""
    b = -0.3
    over = {**SMALL, "survival.os.log_hr": b, "survival.progression.log_hr": b}
    for key in (
        "os.u_effect",
        "os.ecog",
        "os.visceral",
        "os.age",
        "progression.u_effect",
        "progression.ecog",
        "progression.pain_loading",
    ):
        over[f"survival.{key}"] = 0.0
    v = compute_truth(load_scenario("randomized", over))
    for name in ("pfs_loghr", "os_loghr", "pfs_loghr_adj", "os_loghr_adj"):
        assert abs(v[name]["value"] - b) <= Z * v[name]["mcse"], (name, v[name])
        assert 0 < v[name]["mcse"] < 0.01
    assert v["pfs_loghr_cond"]["value"] == v["os_loghr_cond"]["value"] == b


def test_truth_does_not_depend_on_excluded_sections():
    """The cache key omits cohort, missingness, treatment and confounding: the values must not
    depend on them (else the cache would serve wrong truths)."""
    base = load_scenario("study", {"truth.n": 2_000})
    other = base.with_overrides(
        {
            "scenario_name": "other",
            "cohort.n": 50,
            "missingness.mechanism": "mnar",
            "missingness.covariates.mechanism": "mcar",
            "treatment.allocation": 0.3,
            "treatment.scheme": "complete",
            "confounding.strength": 0.0,
        }
    )
    assert truth_key(other) == truth_key(base) and other.key != base.key
    assert compute_truth(other) == compute_truth(base)


# ------------------------------------------------------------------ cache
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PALLIASIM_CACHE", str(tmp_path))
    return tmp_path / "truth"


def _counting(monkeypatch, values):
    calls = []

    def fake(scenario):
        calls.append(scenario.key)
        return copy.deepcopy(values)

    monkeypatch.setattr(truth_module, "compute_truth", fake)
    return calls


def _refuse(monkeypatch):
    def boom(scenario):
        raise AssertionError("compute_truth called although the truth is cached")

    monkeypatch.setattr(truth_module, "compute_truth", boom)


def test_cache_written_once_and_reused(cache, monkeypatch, study_sc, study_values):
    calls = _counting(monkeypatch, study_values)
    first = truth(study_sc)
    assert len(calls) == 1
    files = list(cache.glob("*"))
    assert [f.name for f in files] == [f"{truth_key(study_sc)}.json"]
    assert json.loads(files[0].read_text()) == study_values
    _refuse(monkeypatch)
    second = truth(study_sc)
    assert second.values == first.values == study_values
    assert second.to_frame().equals(first.to_frame())
    assert second["os_loghr"] == study_values["os_loghr"]["value"]
    assert second.mcse("os_loghr") == study_values["os_loghr"]["mcse"]
    assert list(cache.glob("*")) == files  # nothing else written (no temp files left)


def test_real_truth_round_trips_through_cache(cache, monkeypatch):
    sc = load_scenario("null", {"truth.n": 2_000})
    first = truth(sc)  # real computation
    assert len(list(cache.glob("*.json"))) == 1
    _refuse(monkeypatch)
    assert truth(sc).values == first.values


def test_cache_key_ignores_n_and_missingness(cache, monkeypatch, study_sc, study_values):
    _counting(monkeypatch, study_values)
    truth(study_sc)
    _refuse(monkeypatch)
    for over in (
        {"cohort.n": 1000},
        {"missingness.mechanism": "mnar", "missingness.target_week12": 0.2},
        {"missingness.covariates.mechanism": "mcar"},
        {"scenario_name": "renamed"},
    ):
        sc = study_sc.with_overrides(over)
        assert sc.key != study_sc.key
        assert truth_key(sc) == truth_key(study_sc), over
        assert truth(sc).values == study_values, over
    assert len(list(cache.glob("*.json"))) == 1


@pytest.mark.parametrize(
    "over",
    [
        {"survival.os.log_hr": -0.2},
        {"survival.progression.shape": 1.0},
        {"nrs.effect": [-0.6, -1.0, -1.1, -1.2]},
        {"adverse_events.any": [0.8, 0.79]},
        {"truth.n": 20_001},
        {"truth.seed": 1},
        {"truth.rmst_horizon": 6.0},
    ],
)
def test_cache_key_changes_with_outcome_model(study_sc, over):
    assert truth_key(study_sc.with_overrides(over)) != truth_key(study_sc)


def test_corrupt_cache_is_recomputed(cache, monkeypatch, study_sc, study_values):
    cache.mkdir(parents=True)
    path = cache / f"{truth_key(study_sc)}.json"
    path.write_text('{"os_loghr": {"value": ')  # truncated JSON
    calls = _counting(monkeypatch, study_values)
    assert truth(study_sc).values == study_values
    assert len(calls) == 1
    assert json.loads(path.read_text()) == study_values  # repaired on disk
    path.write_bytes(b"\xff\xfe\x00garbage")  # not even text
    assert truth(study_sc).values == study_values
    assert len(calls) == 2


def test_use_cache_false_never_touches_disk(cache, monkeypatch, study_sc, study_values):
    calls = _counting(monkeypatch, study_values)
    truth(study_sc, use_cache=False)
    truth(study_sc, use_cache=False)
    assert len(calls) == 2
    assert not cache.exists()


# ------------------------------------------------------------------ marginal-target solver
def _marginal_loghr_pfs(sc, n: int, seed: int):
    """Marginal PFS log HR on an independent potential-outcome sample, with its batch-means
    MCSE (20 batches, as in sim/truth.py)."""
    _, po = generate_with_potential(sc, rng_for(seed, sc.key, "truth", 0), n)
    t0, t1 = po["t_pfs"]
    c = po.shared["C"]
    tt = np.concatenate([np.minimum(t0, c), np.minimum(t1, c)])
    ev = np.concatenate([t0 <= c, t1 <= c])
    arm = np.repeat([0.0, 1.0], n)

    def fit(i):
        ii = np.concatenate([i, i + n])
        return cox_loghr(tt[ii], ev[ii], arm[ii])[0][0]

    reps = np.array([fit(i) for i in np.array_split(np.arange(n), 20)])
    return fit(np.arange(n)), reps.std(ddof=1) / np.sqrt(20)


@pytest.mark.slow
def test_solve_parameter_hits_marginal_hr():
    # dropout does not touch potential outcomes; 'none' avoids re-solving the dropout intercept
    # at every bisection step
    sc = load_scenario("study", {"missingness.mechanism": "none"})
    target, n_solve, n_check = 0.75, 20_000, 100_000
    x = solve_parameter(
        sc, "survival.progression.log_hr", "marginal_hr_pfs", target, (-1.0, 0.5), n=n_solve
    )
    assert -1.0 < x < 0.5
    assert x == solve_parameter(
        sc, "survival.progression.log_hr", "marginal_hr_pfs", target, (-1.0, 0.5), n=n_solve
    )
    solved = sc.with_overrides({"survival.progression.log_hr": x})
    loghr, mcse = _marginal_loghr_pfs(solved, n_check, seed=99)
    # the solve sample (n_solve) and the check sample (n_check) both carry Monte Carlo error
    tol = Z * mcse * np.sqrt(1 + n_check / n_solve)
    assert abs(loghr - np.log(target)) <= tol, (np.exp(loghr), x, tol)
    assert abs(np.exp(loghr) - target) <= 0.02


def test_solve_parameter_rejects_unbracketed_target():
    sc = load_scenario("study", {"missingness.mechanism": "none"})
    with pytest.raises(ValueError, match="not bracketed"):
        solve_parameter(sc, "survival.os.log_hr", "marginal_hr_os", 0.2, (-0.1, 0.1), n=2_000)
    with pytest.raises(ValueError, match="unknown measure"):
        solve_parameter(sc, "survival.os.log_hr", "hr", 0.7, (-1.0, 0.0), n=2_000)


def test_solver_uses_common_random_numbers():
    sc = load_scenario("study", {"missingness.mechanism": "none"})
    f = marginal_measures()["marginal_hr_pfs"]
    x = -0.3

    def at(v):
        s = sc.with_overrides({"survival.progression.log_hr": v})
        return f(_po_sample(s, 20_000, 1, key=sc.key)[1])

    # with common random numbers, d HR / d log_hr is about HR: a 1e-6 step moves HR ~1e-6
    assert abs(at(x + 1e-6) - at(x)) < 1e-4
