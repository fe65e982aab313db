"""Tests for experiments.design: factorial expansion, subsets, validation before compute."""

from __future__ import annotations

import sys

import pytest

from palliasim import sim
from palliasim.experiments.api import runner_settings
from palliasim.experiments.config import compose
from palliasim.experiments.engine.design import (
    DesignPoint,
    design_frame,
    expand_design,
    factor_columns,
)
from palliasim.experiments.settings import RunnerSettings
from palliasim.sim import ConfigError

FACTORS = {"cohort.n": [40, 60, 80], "confounding.strength": [0.0, 1.0]}


@pytest.fixture
def no_compute(monkeypatch):
    """Fail loudly if anything tries to simulate data or compute a truth."""

    def boom(*a, **k):  # pragma: no cover - only runs on failure
        raise AssertionError("computation started before validation finished")

    # ``sim.generate`` / ``sim.truth`` are the functions; patch the modules behind them too
    monkeypatch.setattr(sys.modules["palliasim.sim.generate"], "generate", boom)
    monkeypatch.setattr(sys.modules["palliasim.sim.truth"], "compute_truth", boom)
    monkeypatch.setattr(sim, "generate", boom)


def test_full_factorial_order_and_count(no_compute):
    points = expand_design("study", {}, FACTORS)
    assert len(points) == 6
    assert all(isinstance(p, DesignPoint) for p in points)
    # first factor slowest, levels in the order written
    assert [tuple(p.factors.values()) for p in points] == [
        (40, 0.0),
        (40, 1.0),
        (60, 0.0),
        (60, 1.0),
        (80, 0.0),
        (80, 1.0),
    ]
    assert [list(p.factors) for p in points] == [list(FACTORS)] * 6
    for p in points:
        assert p.scenario.get("cohort.n") == p.factors["cohort.n"]
        assert p.scenario.get("confounding.strength") == p.factors["confounding.strength"]
        assert p.scenario.name == "study"
    assert len({p.key for p in points}) == 6
    assert len({p.label for p in points}) == 6
    assert points[0].label == "study: n=40, strength=0"
    # stable: same input, same points (keys are content hashes)
    assert [p.key for p in expand_design("study", {}, FACTORS)] == [p.key for p in points]
    assert factor_columns(points) == list(FACTORS)
    df = design_frame(points)
    assert list(df["cohort.n"]) == [40, 40, 60, 60, 80, 80]
    assert list(df["scenario_key"]) == [p.key for p in points]


def test_key_is_content_not_position():
    a = expand_design("study", {}, {"cohort.n": [40, 60]})
    b = expand_design("study", {}, {"cohort.n": [60, 40]})
    assert {p.key for p in a} == {p.key for p in b}
    assert a[0].key == b[1].key
    assert a[0].key == sim.load_scenario("study", {"cohort.n": 40}).key


def test_no_factors_and_base_overrides():
    (p,) = expand_design("null", {"cohort.n": 50}, {})
    assert p.label == "null" and p.factors == {}
    assert p.scenario.n == 50
    assert p.key == sim.load_scenario("null", {"cohort.n": 50}).key
    (q,) = expand_design("null", {"cohort.n": 50}, None)
    assert q == p
    # a built Scenario or a full params dict as the base
    base = sim.load_scenario("null", {"cohort.n": 50})
    assert expand_design(base, {}, {})[0].key == p.key
    assert expand_design(dict(base.params), None, {})[0].key == p.key
    (r,) = expand_design(base, {"cohort.n": 60}, {"confounding.strength": [0.5]})
    assert r.scenario.n == 60 and r.label == "null: strength=0.5"


def test_labels_use_shortest_unique_suffix():
    pts = expand_design(
        "study",
        {},
        {"cohort.n": [40], "survival.os.log_hr": [0.0], "survival.progression.log_hr": [0.1]},
    )
    assert pts[0].label == "study: n=40, os.log_hr=0, progression.log_hr=0.1"


def test_subset_keeps_matching_points_in_order():
    pts = expand_design(
        "study",
        {},
        FACTORS,
        subset=[{"cohort.n": 40}, {"cohort.n": 80, "confounding.strength": 1.0}],
    )
    assert [tuple(p.factors.values()) for p in pts] == [(40, 0.0), (40, 1.0), (80, 1.0)]
    # empty subset = no filter
    assert len(expand_design("study", {}, FACTORS, subset=[])) == 6


@pytest.mark.parametrize(
    "subset, match",
    [
        ([{"cohort.nn": 40}], r"design\.subset\[0\] names 'cohort\.nn'"),
        ([{"cohort.n": 41}], r"design\.subset\[0\]\.cohort\.n=41 is not a level"),
        ([{}], r"design\.subset\[0\] must be a non-empty mapping"),
    ],
)
def test_subset_errors(subset, match, no_compute):
    with pytest.raises(ConfigError, match=match):
        expand_design("study", {}, FACTORS, subset=subset)


@pytest.mark.parametrize(
    "factors, match",
    [
        ({"cohort.n": [40, 60, 5]}, r"^design\.factors\.cohort\.n=5: .*cohort\.n.*integer >= 10"),
        ({"cohort.n": [40, "abc"]}, r"^design\.factors\.cohort\.n='abc'"),
        ({"confounding.strength": [0.0, -1.0]}, r"^design\.factors\.confounding\.strength=-1\.0"),
        ({"cohort.nn": [40]}, r"^design\.factors\.cohort\.nn=40: unknown config key"),
        ({"cohort.n": []}, r"^design\.factors\.cohort\.n has no levels"),
        ({"cohort.n": 40}, r"^design\.factors\.cohort\.n must be a list"),
        ({"cohort.n": [40, 40]}, r"lists the level 40 twice"),
    ],
)
def test_invalid_factor_raises_before_compute(factors, match, no_compute):
    # an invalid level anywhere (here often the last one) fails up front, naming the key
    with pytest.raises(ConfigError, match=match):
        expand_design("study", {}, {"confounding.strength": [0.0, 1.0], **factors})


def test_invalid_base_override():
    with pytest.raises(ConfigError, match="cohort.n"):
        expand_design("study", {"cohort.n": 3}, {"confounding.strength": [0.0]})
    with pytest.raises(ConfigError, match="not a preset"):
        expand_design("nope", {}, {})


# ---------------------------------------------------------------------------------------------
# runner keys
# ---------------------------------------------------------------------------------------------
def test_runner_settings_defaults_and_normalisation():
    out = runner_settings(n_jobs=2, backend="threading", chunk_size=10, reps=50)
    assert out.n_jobs == 2 and out.backend == "threading"
    assert out.chunk_size == 10 and out.reps == 50
    # the defaults are the YAML's (conf/runner/default.yaml, conf/config.yaml), nowhere else
    plain = compose()
    assert RunnerSettings.from_config(plain) == runner_settings()
    assert runner_settings().seed == plain["seed"] and runner_settings().reps == plain["reps"]
    assert runner_settings().n_jobs == plain["runner"]["n_jobs"]
    assert runner_settings(n_jobs=-1).n_jobs == -1
    assert runner_settings(reps=100.0).reps == 100
    assert runner_settings(backend="dask", dask_address="tcp://h:8786").dask_address


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"n_jobs": 0}, r"'runner\.n_jobs'; allowed: an integer >= 1, or -1"),
        ({"n_jobs": -2}, r"'runner\.n_jobs'; allowed: an integer >= 1, or -1"),
        ({"n_jobs": 1.5}, r"'runner\.n_jobs'; allowed: an integer"),
        ({"n_jobs": "2"}, r"'runner\.n_jobs'; allowed: an integer"),
        ({"n_jobs": True}, r"'runner\.n_jobs'; allowed: an integer"),
        (
            {"backend": "mpi"},
            r"'mpi' for config key 'runner\.backend'; allowed: loky, threading, dask",
        ),
        ({"chunk_size": 0}, r"'runner\.chunk_size'; allowed: an integer >= 1"),
        ({"reps": 0}, r"'reps'; allowed: an integer >= 1"),
        ({"reps": -5}, r"'reps'; allowed: an integer >= 1"),
        ({"seed": -1}, r"'seed'; allowed: an integer >= 0"),
        (
            {"dask_address": "tcp://h:1"},
            r"'runner\.dask_address': an address needs runner\.backend=dask \(runner\.backend='loky'\)",
        ),
        ({"quiet": "yes"}, r"'quiet'; allowed: true or false"),
    ],
)
def test_runner_settings_errors(cfg, match):
    with pytest.raises(ConfigError, match=match):
        runner_settings(**cfg)


def test_unknown_runner_key_is_refused():
    plain = compose()
    plain["runner"]["njobs"] = 2
    with pytest.raises(
        ConfigError, match=r"unknown config key 'runner\.njobs'; allowed keys of runner: .*n_jobs"
    ):
        RunnerSettings.from_config(plain)
