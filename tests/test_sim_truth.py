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
from palliasim.sim.estimands import ESTIMANDS
from palliasim.sim.survstats import cox_loghr
from palliasim.sim.truth import compute_parts, compute_truth, part_keys, truth, truth_key

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
    assert values["os_loghr_cond"]["value"] == 0.0  # the conditional HR of death is 0 in null
    assert all(v["status"] == "ok" for v in values.values())


def test_conditional_parameters_equal_config(study_sc, study_values):
    p = study_sc.params
    assert study_values["os_loghr_cond"] == {
        "value": p["survival"]["os"]["log_hr"],
        "mcse": 0.0,
        "source": "config",
        "status": "ok",
        "message": "",
    }
    # PFS runs partly through the pain process: it has no conditional PH parameter
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
    ok = {"mcse": 0.0, "source": "config", "status": "ok", "message": ""}
    assert v["os_loghr_cond"] == {"value": -0.25, **ok}
    assert v["response_logor_cond"] == {"value": 0.7, **ok}


def test_ae_risk_differences_equal_config(study_sc, study_values):
    ae = study_sc.get("adverse_events")
    pairs = {**ae["types"], **{k: ae[k] for k in ("any", "grade34", "discontinuation")}}
    assert len(pairs) == 10
    for name, (p0, p1) in pairs.items():
        v = study_values[f"ae_{name}_rd"]
        assert v["source"] == "config" and v["mcse"] == 0.0
        assert v["value"] == pytest.approx(p1 - p0, abs=1e-15), name


def test_marginal_equals_conditional_hr_without_prognostic_factors():
    """With no prognostic factor in the death hazard, OS is exactly PH in the arm, so the
    marginal (and adjusted) log HRs equal the conditional one (no non-collapsibility) within
    Monte Carlo error."""
    b = -0.3
    over = {**SMALL, "survival.os.log_hr": b}
    for key in ("os.u_effect", "os.ecog", "os.visceral", "os.age"):
        over[f"survival.{key}"] = 0.0
    v = compute_truth(load_scenario("randomized", over))
    for name in ("os_loghr", "os_loghr_adj"):
        assert abs(v[name]["value"] - b) <= Z * v[name]["mcse"], (name, v[name])
        assert 0 < v[name]["mcse"] < 0.01
    assert v["os_loghr_cond"]["value"] == b


def test_truth_does_not_depend_on_excluded_sections():
    """The outcome part's key omits cohort, missingness, treatment and confounding: its values
    must not depend on them (else the cache would serve wrong truths); the dropout part (the NRI
    estimand) does depend on them, so the whole truth's key changes."""
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
    assert part_keys(other)["outcome"] == part_keys(base)["outcome"] and other.key != base.key
    assert part_keys(other)["dropout"] != part_keys(base)["dropout"]
    assert truth_key(other) != truth_key(base)
    a, b = compute_parts(other, ["outcome"]), compute_parts(base, ["outcome"])
    assert a == b
    renamed = base.with_overrides({"scenario_name": "x", "cohort.n": 60})
    assert truth_key(renamed) == truth_key(base)


# ------------------------------------------------------------------ cache
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PALLIASIM_CACHE", str(tmp_path))
    return tmp_path / "truth"


def _counting(monkeypatch, values):
    calls = []

    def fake(scenario, parts=("outcome", "dropout")):
        calls.append((scenario.key, tuple(parts)))
        return {p: v for p, v in copy.deepcopy(truth_module._split(values)).items() if p in parts}

    monkeypatch.setattr(truth_module, "compute_parts", fake)
    return calls


def _refuse(monkeypatch):
    def boom(scenario, parts=()):
        raise AssertionError("compute_parts called although the truth is cached")

    monkeypatch.setattr(truth_module, "compute_parts", boom)


def _files(cache):
    return sorted(str(f.relative_to(cache)) for f in cache.rglob("*") if f.is_file())


def test_cache_written_once_and_reused(cache, monkeypatch, study_sc, study_values):
    calls = _counting(monkeypatch, study_values)
    first = truth(study_sc)
    assert len(calls) == 1
    keys = part_keys(study_sc)
    files = _files(cache)
    assert files == sorted(
        [f"{truth_key(study_sc)}.json"] + [f"parts/{k}.json" for k in keys.values()]
    )
    assert json.loads((cache / f"{truth_key(study_sc)}.json").read_text()) == study_values
    _refuse(monkeypatch)
    second = truth(study_sc)
    assert second.values == first.values == study_values
    assert second.to_frame().equals(first.to_frame())
    assert second["os_loghr"] == study_values["os_loghr"]["value"]
    assert second.mcse("os_loghr") == study_values["os_loghr"]["mcse"]
    assert _files(cache) == files  # nothing else written (no temp files left)


def test_real_truth_round_trips_through_cache(cache, monkeypatch):
    sc = load_scenario("null", {"truth.n": 2_000})
    first = truth(sc)  # real computation
    assert len(list(cache.glob("*.json"))) == 1
    _refuse(monkeypatch)
    assert truth(sc).values == first.values


def test_cache_key_ignores_n_and_name(cache, monkeypatch, study_sc, study_values):
    _counting(monkeypatch, study_values)
    truth(study_sc)
    _refuse(monkeypatch)
    for over in ({"cohort.n": 1000}, {"scenario_name": "renamed"}):
        sc = study_sc.with_overrides(over)
        assert sc.key != study_sc.key
        assert truth_key(sc) == truth_key(study_sc), over
        assert truth(sc).values == study_values, over
    assert len(list(cache.glob("*.json"))) == 1


def test_dropout_changes_recompute_only_the_dropout_part(
    cache, monkeypatch, study_sc, study_values
):
    calls = _counting(monkeypatch, study_values)
    truth(study_sc)
    for over in (
        {"missingness.mechanism": "mnar", "missingness.target_week12": 0.2},
        {"confounding.strength": 0.0},
    ):
        sc = study_sc.with_overrides(over)
        assert truth_key(sc) != truth_key(study_sc), over
        assert part_keys(sc)["outcome"] == part_keys(study_sc)["outcome"]
        truth(sc)
        assert calls[-1] == (sc.key, ("dropout",)), over
    # missing baseline covariates do not change who is assessed: nothing recomputed
    sc = study_sc.with_overrides({"missingness.covariates.mechanism": "mcar"})
    assert truth_key(sc) == truth_key(study_sc)


def test_truth_recomputed_when_the_dgm_code_changes(cache, monkeypatch, study_sc, study_values):
    """The key includes a fingerprint of the sim/ code: a change of its bytes changes every key,
    so a stale truth is never reused."""
    calls = _counting(monkeypatch, study_values)
    truth(study_sc)
    before = truth_key(study_sc)
    real = truth_module.dgm_fingerprint()
    assert len(real) == 64
    monkeypatch.setattr(truth_module, "dgm_fingerprint", lambda: "0" * 64)
    assert truth_key(study_sc) != before
    truth(study_sc)
    assert len(calls) == 2 and calls[-1][1] == ("outcome", "dropout")


def test_truth_values_do_not_depend_on_the_fingerprint(monkeypatch):
    """The random stream is keyed on the outcome parameters only: a code edit that changes no
    numerics (a comment) changes the cache key, never the values."""
    sc = load_scenario("null", {"truth.n": 2_000})
    a = compute_truth(sc)
    monkeypatch.setattr(truth_module, "dgm_fingerprint", lambda: "f" * 64)
    assert compute_truth(sc) == a


def test_fingerprint_covers_the_generating_files(tmp_path, monkeypatch):
    """The fingerprint hashes the bytes of sim/*.py (not calibrate.py): editing one changes it."""
    import shutil

    src = truth_module.Path(truth_module.__file__).parent
    fake = tmp_path / "sim"
    fake.mkdir()
    for f in src.glob("*.py"):
        shutil.copy(f, fake / f.name)
    monkeypatch.setattr(truth_module, "__file__", str(fake / "truth.py"))
    truth_module.dgm_fingerprint.cache_clear()
    try:
        a = truth_module.dgm_fingerprint()
        (fake / "calibrate.py").write_text("# edited\n")
        assert truth_module.dgm_fingerprint.__wrapped__() == a
        (fake / "pain.py").write_bytes((fake / "pain.py").read_bytes() + b"\n# edited\n")
        assert truth_module.dgm_fingerprint.__wrapped__() != a
    finally:
        monkeypatch.undo()
        truth_module.dgm_fingerprint.cache_clear()


@pytest.mark.parametrize(
    "over",
    [
        {"survival.os.log_hr": -0.2},
        {"survival.progression.shape": 1.0},
        {"nrs.effect": [-0.6, -1.0, -1.1, -1.2]},
        {"adverse_events.any": [0.8, 0.79]},
        {"response.progression_omed_increase": 0.3},
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
    for part in (cache / "parts").glob("*.json"):
        part.write_text("[]")
    assert truth(study_sc).values == study_values
    assert len(calls) == 2


def test_use_cache_false_never_touches_disk(cache, monkeypatch, study_sc, study_values):
    calls = _counting(monkeypatch, study_values)
    truth(study_sc, use_cache=False)
    truth(study_sc, use_cache=False)
    assert len(calls) == 2
    assert not cache.exists()


def test_truth_without_events_is_nan_with_status():
    """No death within follow-up (huge OS scale): the Cox truths cannot be computed; they come
    back NaN with status failed and the reason, every other truth is computed, nothing raises."""
    sc = load_scenario("study", {"truth.n": 3_000, "survival.os.scale": 1e9})
    v = compute_truth(sc)
    bad = {k for k, e in v.items() if e["status"] != "ok"}
    assert bad == {"os_loghr", "os_loghr_adj"}
    for k in bad:
        assert np.isnan(v[k]["value"]) and "no events" in v[k]["message"]
    assert np.isfinite(v["pfs_loghr"]["value"]) and np.isfinite(v["response_logor"]["value"])
    t = truth_module.Truth(v)
    assert sorted(t.failed()) == sorted(bad)
    frame = t.to_frame().set_index("estimand")
    assert frame.loc["os_loghr", "true_status"] == "failed"


def test_nri_truth_differs_from_the_study_estimand_with_dropout():
    """NRI counts alive unassessed patients as non-responders: its risks are lower than the
    study's estimand's by about the dropout fraction; without dropout they coincide exactly."""
    sc = load_scenario("randomized", {"truth.n": 20_000, "missingness.mechanism": "mcar"})
    v = compute_truth(sc)
    for a in (0, 1):
        r, nri = v[f"response_risk_{a}"]["value"], v[f"response_risk_{a}_nri"]["value"]
        assert nri < r
        # MCAR among the alive at week 12: risk_nri = risk (1 - target); MC error ~ 0.004
        assert abs(nri - r * (1 - 0.08)) < 0.01, (a, r, nri)
    v0 = compute_truth(sc.with_overrides({"missingness.mechanism": "none"}))
    for stem in ("response_rd", "response_logor", "response_logor_adj"):
        assert v0[stem + "_nri"]["value"] == v0[stem]["value"]


def test_every_truth_is_registered():
    v = compute_truth(load_scenario("study", {"truth.n": 2_000, "response.mode": "direct"}))
    assert set(v) <= set(ESTIMANDS) | {k for k in v if k.startswith("ae_")}
    assert {k for k, e in ESTIMANDS.items() if e.has_truth} - set(v) == set()


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
