"""A user's estimator class named by import path and a user's scenario file (docs/extending.md):
resolution, worker import, reproducibility whatever n_jobs, flags, seeding. The bad inputs
are in tests/test_bad_inputs.py (test_bad_plugin_refused); the documented example end to end
in tests/test_extending.py."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from palliasim import generate
from palliasim.estimators.base import REGISTRY, build_estimator, resolve_kind
from palliasim.experiments import config as C
from palliasim.experiments.engine.design import DesignPoint
from palliasim.experiments.engine.records import ChunkTask
from palliasim.experiments.engine.runner import run_experiment
from palliasim.experiments.engine.worker import run_chunk
from palliasim.experiments.settings import Settings
from palliasim.sim.scenario import load_scenario, read_scenario_file

MODULE = textwrap.dedent(
    '''
    from dataclasses import dataclass

    from palliasim import Estimator, wald_row


    @dataclass
    class Jitter(Estimator):
        """The week-12 mean difference among the observed, plus N(0, sd) from its stream."""

        estimands = ("nrs_diff_w12",)
        sd: float = 0.1

        def _fit(self, cohort, rng):
            p = cohort.patients
            y, g = p["nrs12"].to_numpy(float), p["group"].to_numpy()
            ok = y == y
            d = y[ok & (g == 1)].mean() - y[ok & (g == 0)].mean() + rng.normal(0.0, self.sd)
            return [wald_row(self.name, "nrs_diff_w12", d, 1.0, self.alpha, int(ok.sum()))]


    @dataclass
    class Stray(Jitter):
        """Declares a registered estimand but reports a row of an unregistered one."""

        def _fit(self, cohort, rng):
            return [wald_row(self.name, "nrs_diff_w99", 0.0, 1.0, self.alpha, 1)]
    '''
)
SCENARIO = "base: randomized\ncohort:\n  n: 40\ntruth:\n  n: 2000\n"


def _module(tmp_path: Path, name: str) -> Path:
    d = tmp_path / "plug"
    d.mkdir(exist_ok=True)
    (d / f"{name}.py").write_text(MODULE)
    return d


def _runner(**kw):
    from palliasim.experiments.api import runner_settings

    kw.setdefault("quiet", True)
    return runner_settings(**kw)


def test_import_path_builds_an_unregistered_class(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_module(tmp_path, "plug_build")))
    est = build_estimator("plug_build:Jitter", name="mine", sd=0.5)
    assert type(est).__name__ == "Jitter" and est.sd == 0.5 and est.engine == "reference"
    assert type(est).kind == "plug_build:Jitter" and "plug_build:Jitter" not in REGISTRY
    cohort = generate(load_scenario("randomized", {"cohort.n": 40}), np.random.default_rng(1))
    rows = est.fit(cohort, np.random.default_rng(2))
    assert [r.estimand for r in rows] == ["nrs_diff_w12"] and rows[0].status == "ok"


def test_module_in_the_current_directory_is_found(tmp_path, monkeypatch):
    """As ``python -m`` would: the console script's sys.path lacks the current directory."""
    d = _module(tmp_path, "plug_cwd")
    monkeypatch.chdir(d)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(d))])
    assert resolve_kind("plug_cwd:Jitter").__name__ == "Jitter"
    assert str(d) in sys.path
    assert not (d / "__pycache__").exists()


def test_worker_imports_the_plugin_from_the_shipped_path(tmp_path, monkeypatch):
    """A worker whose sys.path lacks the module's directory (a reused loky worker, a dask
    worker) imports it from the path the task carries."""
    d = _module(tmp_path, "plug_worker")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(d)])
    monkeypatch.chdir(tmp_path)  # not the module's directory
    sc = load_scenario("randomized", {"cohort.n": 40})
    task = ChunkTask(
        chunk_id="c",
        scenario=sc,
        specs={"mine": {"kind": "plug_worker:Jitter", "alpha": 0.05}},
        methods=("mine",),
        first=0,
        last=1,
        seed=3,
    )
    assert not run_chunk(task).ok  # without the path: the import fails (reported, not raised)
    reply = run_chunk(ChunkTask(**{**task.__dict__, "sys_path": (str(d),)}))
    assert reply.ok, reply.error
    assert reply.columns["method"] == ["mine", "mine"]
    assert set(reply.columns["status"]) == {"ok"}


def test_plugin_results_identical_whatever_n_jobs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_module(tmp_path, "plug_jobs")))
    scen = tmp_path / "small_trial.yaml"
    scen.write_text(SCENARIO)
    sc = load_scenario(str(scen))
    specs = {"mine": {"kind": "plug_jobs:Jitter", "sd": 0.2}}
    point = [DesignPoint(factors={}, scenario=sc, label=sc.name)]
    a = run_experiment(
        point, specs, _runner(n_jobs=1, reps=6, chunk_size=6, seed=5), tmp_path / "a"
    )
    b = run_experiment(
        point, specs, _runner(n_jobs=2, reps=6, chunk_size=2, seed=5), tmp_path / "b"
    )
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    assert set(a["scenario"]) == {"small_trial"} and a["true"].notna().all()


def test_unregistered_estimand_of_a_row_is_flagged(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_module(tmp_path, "plug_stray")))
    sc = load_scenario("randomized", {"cohort.n": 40, "truth.n": 2000})
    df = run_experiment(
        [DesignPoint(factors={}, scenario=sc, label="r")],
        {"mine": {"kind": "plug_stray:Stray"}},
        _runner(n_jobs=1, reps=2, chunk_size=2, seed=1),
        tmp_path / "run",
    )
    assert set(df["estimand"]) == {"nrs_diff_w99"}
    assert set(df["true_status"]) == {"unregistered"}
    assert df["true_message"].str.contains("not in the estimand registry").all()


def test_scenario_file_name_seeding_and_precedence(tmp_path, monkeypatch):
    """The same content gives the same scenario key from any path or directory; the file's keys
    override its base; command-line keys override the file; the run records the file."""
    f = tmp_path / "a" / "small_trial.yaml"
    f.parent.mkdir()
    f.write_text(SCENARIO)
    g = tmp_path / "b" / "small_trial.yaml"
    g.parent.mkdir()
    g.write_text(SCENARIO)
    monkeypatch.chdir(tmp_path / "a")
    sc = load_scenario("small_trial.yaml")
    assert sc.name == "small_trial" and sc.n == 40
    assert sc.key == load_scenario(str(g)).key  # the content, not the path
    assert sc.get("confounding.strength") == 0.0  # from base: randomized
    assert sc.key != load_scenario("randomized", {"cohort.n": 40, "truth.n": 2000}).key
    assert read_scenario_file(f).bases == ("randomized",)
    plain = C.compose(["scenario=small_trial.yaml", "cohort.n=60"])
    assert plain["cohort"]["n"] == 60 and plain["scenario_name"] == "small_trial"
    assert plain["scenario_file"] == str(f.resolve())
    assert plain["treatment"]["scheme"] == "complete"  # randomized's, not study's
    settings = Settings.from_config(plain)
    assert C.scenario_from(settings.plain).key == load_scenario(str(f), {"cohort.n": 60}).key
    named = tmp_path / "a" / "other.yaml"
    named.write_text("scenario_name: my_trial\n" + SCENARIO)
    assert load_scenario(str(named)).name == "my_trial"


def test_scenario_file_with_a_defaults_list_like_a_preset(tmp_path):
    f = tmp_path / "copied.yaml"
    f.write_text(
        "# @package _global_\ndefaults:\n  - randomized\n  - _self_\nconfounding:\n  strength: 0.5\n"
    )
    sc = load_scenario(str(f))
    assert sc.get("confounding.strength") == 0.5 and sc.get("treatment.allocation") == 0.5
    assert C.compose([f"scenario={f}"])["confounding"]["strength"] == 0.5


@pytest.mark.parametrize("kind", ["cox", "logistic"])
def test_registered_kinds_unchanged(kind):
    assert type(build_estimator(kind, name="x")).kind == kind
