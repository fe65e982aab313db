"""Tests for experiments.runner / experiments.storage: determinism, resume, failures.

Tiny cohorts (n 40-60), 12 replications and toy estimators registered below, so the file runs
in well under a minute on two cores. Every comparison leaves out the ``seconds`` column (timing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from palliasim import sim
from palliasim.estimators.base import ESTIMATE_COLUMNS, Estimator, register, wald_row
from palliasim.experiments.api import runner_settings
from palliasim.experiments.engine import storage, worker
from palliasim.experiments.engine.collect import RESULT_TRUTH_COLUMNS
from palliasim.experiments.engine.design import expand_design
from palliasim.experiments.engine.runner import RunIncomplete, run_experiment
from palliasim.experiments.settings import RunnerSettings
from palliasim.sim import rng_for

ROOT = str(Path(__file__).resolve().parents[1])
REPS = 12
SEED = 2024
SPECS = {"mean": {"kind": "toy_mean_diff"}, "jitter": {"kind": "toy_jitter", "sd": 0.05}}


# ---------------------------------------------------------------------------------------------
# toy estimators (shipped to worker processes by reference to this module)
# ---------------------------------------------------------------------------------------------
def _nrs12_diff(cohort):
    p = cohort.patients
    y = p["nrs12"].to_numpy(float)
    g = p["group"].to_numpy()
    a, b = y[(g == 1) & ~np.isnan(y)], y[(g == 0) & ~np.isnan(y)]
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return a.mean() - b.mean(), se, len(a) + len(b)


@register("toy_mean_diff")
@dataclass
class ToyMeanDiff(Estimator):
    """Complete-case difference in mean week-12 NRS (observation - control), plus ``shift``."""

    estimands = ("nrs_diff_w12",)
    shift: float = 0.0

    def _fit(self, cohort, rng):
        delay = float(os.environ.get("PALLIASIM_TEST_DELAY", "0"))
        if delay:  # only the kill-and-resume subprocess sets it
            time.sleep(delay)
        d, se, n = _nrs12_diff(cohort)
        return [wald_row(self.name, "nrs_diff_w12", d + self.shift, se, self.alpha, n)]


@register("toy_jitter")
@dataclass
class ToyJitter(Estimator):
    """Uses its random stream (estimate + N(0, sd)); also reports an estimand without truth."""

    estimands = ("nrs_diff_w12", "toy_no_truth")
    sd: float = 0.05

    def _fit(self, cohort, rng):
        d, se, n = _nrs12_diff(cohort)
        e = d + rng.normal(0.0, self.sd)
        return [
            wald_row(self.name, "nrs_diff_w12", e, se, self.alpha, n),
            wald_row(self.name, "toy_no_truth", rng.normal(), 1.0, self.alpha, n),
        ]


@register("toy_broken")
@dataclass
class ToyBroken(Estimator):
    """A programming error in about 30% of the fits (decided by its own random stream)."""

    estimands = ("nrs_diff_w12",)

    def _fit(self, cohort, rng):
        if rng.random() < 0.3:
            raise RuntimeError("toy bug")
        d, se, n = _nrs12_diff(cohort)
        return [wald_row(self.name, "nrs_diff_w12", d, se, self.alpha, n)]


@register("toy_die")
@dataclass
class ToyDie(Estimator):
    """Kills its worker process while the file ``flag`` exists (never the test process)."""

    estimands = ("nrs_diff_w12",)
    flag: str = ""
    parent_pid: int = 0

    def _fit(self, cohort, rng):
        if self.flag and os.path.exists(self.flag) and os.getpid() != self.parent_pid:
            os._exit(3)
        d, se, n = _nrs12_diff(cohort)
        return [wald_row(self.name, "nrs_diff_w12", d, se, self.alpha, n)]


# ---------------------------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------------------------
def make_points():
    return expand_design("study", {}, {"cohort.n": [40, 60]})


def same(a: pd.DataFrame, b: pd.DataFrame, methods=None) -> None:
    """Frames equal bit for bit, timing excluded (optionally only some methods)."""
    if methods is not None:
        a = a[a["method"].isin(methods)].reset_index(drop=True)
        b = b[b["method"].isin(methods)].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True
    )


def settings(reps=REPS, seed=SEED, **kw) -> RunnerSettings:
    """Runner settings for the tests: in-process (n_jobs=1) and quiet unless told otherwise."""
    kw.setdefault("quiet", True)
    kw.setdefault("n_jobs", 1)
    return runner_settings(reps=reps, seed=seed, **kw)


def run(out, specs=SPECS, reps=REPS, **kw):
    return run_experiment(make_points(), specs, settings(reps, **kw), out)


def manifest(out) -> dict:
    return json.loads((Path(out) / "manifest.json").read_text())


def chunk_files(out) -> list[Path]:
    return sorted((Path(out) / "results").glob("*/chunk_*.parquet"))


def _fake_truth(scenario):
    return {"nrs_diff_w12": {"value": -1.0, "mcse": 0.002, "source": "fake"}}


@pytest.fixture(scope="module", autouse=True)
def private_truth_cache(tmp_path_factory):
    """Never touch the user's truth cache nor spend ~20 s on a real truth: a fake truth of the
    test scenarios is cached (by ``sim.truth`` itself) in a private directory, which the runner
    and the kill-test subprocess (environment inherited) then read."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PALLIASIM_CACHE", str(tmp_path_factory.mktemp("truth_cache")))
        with pytest.MonkeyPatch.context() as inner:
            inner.setattr(sys.modules["palliasim.sim.truth"], "compute_truth", _fake_truth)
            for p in make_points():
                sim.truth(p.scenario)
        yield


@pytest.fixture(scope="module")
def reference(private_truth_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return run(out, n_jobs=1, chunk_size=5), out


# ---------------------------------------------------------------------------------------------
# the results table and the manifest
# ---------------------------------------------------------------------------------------------
def test_results_layout_truth_and_manifest(reference):
    df, out = reference
    points = make_points()
    cols = [
        "cohort.n", "scenario", "scenario_key", "rep", *ESTIMATE_COLUMNS,
        *RESULT_TRUTH_COLUMNS,
    ]  # fmt: skip
    assert list(df.columns) == cols
    assert len(df) == len(points) * REPS * 3  # mean: 1 row, jitter: 2 rows
    key = df[["scenario_key", "rep", "method", "estimand"]]
    assert key.equals(key.sort_values(list(key.columns)).reset_index(drop=True))
    assert set(df["scenario"]) == {p.label for p in points}
    assert sorted(df["rep"].unique()) == list(range(REPS))
    assert (df["status"] == "ok").all()
    # truth attached per design point; NaN for an estimand without truth
    t = df[df["estimand"] == "nrs_diff_w12"]
    assert t["true"].notna().all() and t["true_mcse"].notna().all()
    assert df.loc[df["estimand"] == "toy_no_truth", "true"].isna().all()
    assert set(df.loc[df["estimand"] == "nrs_diff_w12", "true_status"]) == {"ok"}
    # written to disk, identical
    same(pd.read_parquet(out / "results.parquet"), df)
    assert (out / "truth.csv").exists()
    m = manifest(out)
    assert m["status"] == "complete" and m["seed"] == SEED and m["n_errors"] == 0
    assert m["chunk_size"] == 5 and m["reps"] == REPS
    assert {
        "numpy",
        "scipy",
        "pandas",
        "statsmodels",
        "lifelines",
        "joblib",
        "palliasim",
        "python",
    } <= set(m["versions"])
    assert m["estimators"] == SPECS
    assert len(m["chunks"]) == 6  # two points x chunks 0-4, 5-9, 10-11
    assert all(c["seconds"] > 0 for c in m["chunks"].values())
    assert m["runs"][0]["started_at"] < m["runs"][0]["finished_at"]
    assert len(chunk_files(out)) == 6
    loaded = storage.load_results(out)
    same(loaded, df.drop(columns=RESULT_TRUTH_COLUMNS))


def test_rows_independent_of_estimator_rng_sharing(reference):
    """Common random numbers: the data stream is shared, the estimator streams are not."""
    df, _ = reference
    mean = df[(df["method"] == "mean")].set_index(["scenario_key", "rep"])["estimate"]
    jit = df[(df["method"] == "jitter") & (df["estimand"] == "nrs_diff_w12")]
    jit = jit.set_index(["scenario_key", "rep"])["estimate"]
    diff = (jit - mean).to_numpy()
    assert np.all(np.abs(diff) < 0.3) and np.std(diff) > 0  # same data, own noise


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n_jobs, backend, chunk_size",
    [(2, "loky", 3), (2, "threading", 5), (1, "loky", 12), (2, "loky", 7)],
)
def test_identical_across_jobs_chunks_backends(reference, tmp_path, n_jobs, backend, chunk_size):
    df = run(tmp_path, n_jobs=n_jobs, backend=backend, chunk_size=chunk_size)
    same(df, reference[0])


def test_identical_with_dask_local_cluster(reference, tmp_path):
    pytest.importorskip("dask.distributed")
    df = run(tmp_path, n_jobs=2, backend="dask", chunk_size=4)
    same(df, reference[0])
    assert manifest(tmp_path)["runs"][0]["backend"] == "dask"


def test_point_order_does_not_matter(reference, tmp_path):
    pts = make_points()[::-1]
    df = run_experiment(pts, SPECS, settings(chunk_size=5), tmp_path)
    same(df, reference[0])


# ---------------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------------
def test_resume_recomputes_only_missing_chunk(reference, tmp_path):
    run(tmp_path, chunk_size=5)
    first = manifest(tmp_path)
    victim = chunk_files(tmp_path)[2]
    vid = f"{victim.parent.name}/{victim.stem}"
    victim.unlink()
    df = run(tmp_path, chunk_size=5)
    m = manifest(tmp_path)
    assert m["runs"][-1]["computed"] == [vid]
    assert df.attrs["n_computed"] == 1
    for cid, info in m["chunks"].items():
        if cid == vid:
            assert [h["run"] for h in info["history"]] == [1]
        else:  # untouched: still the timing of the first run
            assert info["history"] == first["chunks"][cid]["history"]
    same(df, reference[0])
    # a finished run re-run recomputes nothing
    df2 = run(tmp_path, chunk_size=5)
    assert manifest(tmp_path)["runs"][-1]["computed"] == [] and df2.attrs["n_computed"] == 0
    same(df2, reference[0])


def test_more_reps_extends_the_run(reference, tmp_path):
    run(tmp_path, reps=7, chunk_size=5)  # chunks 0-4 and a partial 5-6
    df = run(tmp_path, reps=REPS, chunk_size=5)
    computed = manifest(tmp_path)["runs"][-1]["computed"]
    assert sorted(c.split("/")[1] for c in computed) == ["chunk_10-11"] * 2 + ["chunk_5-9"] * 2
    same(df, reference[0])
    loaded = storage.load_results(tmp_path)  # the superseded chunk_5-6 is not double-counted
    assert not loaded.duplicated(["scenario_key", "rep", "method", "estimand"]).any()
    assert len(loaded) == len(df)
    # fewer reps than on disk: served from the existing files, nothing computed
    df7 = run(tmp_path, reps=7, chunk_size=5)
    assert manifest(tmp_path)["runs"][-1]["computed"] == []
    same(df7, reference[0][reference[0]["rep"] < 7].reset_index(drop=True))


def test_other_chunk_size_or_seed_is_refused(tmp_path):
    run(tmp_path, reps=6, chunk_size=5)
    with pytest.raises(ValueError, match=r"chunk_size=3.*runner\.chunk_size=5"):
        run(tmp_path, reps=6, chunk_size=3)
    with pytest.raises(ValueError, match=r"seed=2024.*seed=7"):
        run_experiment(make_points(), SPECS, settings(6, 7, chunk_size=5), tmp_path)


def test_kill_and_resume(reference, tmp_path):
    out = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        import tests.test_runner as t
        from palliasim.experiments.engine.runner import run_experiment
        run_experiment(t.make_points(), t.SPECS, t.settings(chunk_size=2), {str(out)!r})
    """)
    env = {**os.environ, "PALLIASIM_TEST_DELAY": "0.1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not chunk_files(out):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no chunk written in 90 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    files = [p for p in (out / "results").rglob("*") if p.is_file()]
    parquet = [p for p in files if p.suffix == ".parquet"]
    assert 1 <= len(parquet) < 12, "the run should have been killed half-way"
    for p in parquet:  # no corrupt or partial chunk
        storage.read_chunk(p)
        pq.read_table(p)
    assert all(p.name.endswith(".tmp") for p in files if p not in parquet)
    assert manifest(out)["status"] == "running"

    df = run_experiment(make_points(), SPECS, settings(chunk_size=2), out)
    same(df, reference[0])
    m = manifest(out)
    assert m["status"] == "complete"
    assert len(m["runs"][-1]["computed"]) == 12 - len(parquet)
    assert not list(out.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------
# estimators added, broken, crashing
# ---------------------------------------------------------------------------------------------
def test_adding_an_estimator_leaves_other_rows_unchanged(reference, tmp_path):
    ref = reference[0]
    # fresh directory with one more estimator
    more = {**SPECS, "shifted": {"kind": "toy_mean_diff", "shift": 0.5}}
    df = run(tmp_path / "fresh", specs=more, chunk_size=5)
    same(df, ref, methods=["mean", "jitter"])
    s = df[df["method"] == "shifted"]["estimate"].to_numpy()
    m = df[df["method"] == "mean"]["estimate"].to_numpy()
    np.testing.assert_allclose(s - m, 0.5)
    # same directory: only the new estimator is computed, merged into the chunk files
    out = tmp_path / "incremental"
    run(out, specs={"mean": SPECS["mean"]}, chunk_size=5)
    df2 = run(out, specs=SPECS, chunk_size=5)
    same(df2, ref)
    m2 = manifest(out)
    assert len(m2["runs"][-1]["computed"]) == 6
    assert all(c["history"][-1]["methods"] == ["jitter"] for c in m2["chunks"].values())
    # changed options of one estimator: only that estimator is recomputed
    changed = {**SPECS, "jitter": {"kind": "toy_jitter", "sd": 0.5}}
    df3 = run(out, specs=changed, chunk_size=5)
    same(df3, ref, methods=["mean"])
    assert not df3[df3["method"] == "jitter"]["estimate"].equals(
        ref[ref["method"] == "jitter"]["estimate"].reset_index(drop=True)
    )


def test_programming_error_is_recorded_and_counted(reference, tmp_path):
    specs = {"mean": SPECS["mean"], "broken": {"kind": "toy_broken"}}
    df = run(tmp_path, specs=specs, chunk_size=5)  # does not raise
    b = df[df["method"] == "broken"]
    err = b["message"].str.startswith("error: RuntimeError('toy bug')")
    assert err.any() and (~err).any()
    assert (b.loc[err, "status"] == "failed").all() and b.loc[err, "estimate"].isna().all()
    assert (b.loc[~err, "status"] == "ok").all()
    m = manifest(tmp_path)
    assert m["n_errors"] == int(err.sum()) == df.attrs["n_errors"]
    assert "RuntimeError: toy bug" in m["errors"][0]["traceback"]
    assert sum(c["n_errors"] for c in m["chunks"].values()) == m["n_errors"]
    same(df, reference[0], methods=["mean"])


def test_crashing_task_is_reported_by_chunk_and_resumable(reference, tmp_path, monkeypatch):
    points = make_points()
    p60 = next(p for p in points if p.factors["cohort.n"] == 60)
    bad_state = rng_for(SEED, p60.key, "data", 6).bit_generator.state
    real = worker._generate

    def crashing(scenario, rng):
        if rng.bit_generator.state == bad_state:
            raise ValueError("simulated crash in data generation")
        return real(scenario, rng)

    monkeypatch.setattr(worker, "_generate", crashing)
    with pytest.raises(RunIncomplete) as info:
        run(tmp_path, chunk_size=5)  # n_jobs=1: runs in this process, sees the patch
    bad = storage.chunk_id(p60.key, 5, 9)
    assert list(info.value.failed) == [bad] and info.value.aborted == []
    assert bad in str(info.value) and "resume" in str(info.value)
    assert len(chunk_files(tmp_path)) == 5  # the other chunks are kept
    m = manifest(tmp_path)
    assert m["status"] == "incomplete"
    assert "simulated crash" in m["failed_chunks"][bad]

    monkeypatch.setattr(worker, "_generate", real)
    df = run(tmp_path, chunk_size=5)
    assert manifest(tmp_path)["runs"][-1]["computed"] == [bad]
    same(df, reference[0])


def test_dead_worker_is_reported_and_resumable(reference, tmp_path):
    flag = tmp_path / "die"
    flag.write_text("1")
    specs = {**SPECS, "die": {"kind": "toy_die", "flag": str(flag), "parent_pid": os.getpid()}}
    out = tmp_path / "run"
    with pytest.raises(RunIncomplete) as info:
        run(out, specs=specs, n_jobs=2, chunk_size=6)
    assert info.value.aborted  # reported by chunk id
    assert all("/chunk_" in c for c in info.value.aborted)
    for p in chunk_files(out):
        pq.read_table(p)
    flag.unlink()
    df = run(out, specs=specs, n_jobs=2, chunk_size=6)
    same(df, reference[0], methods=["mean", "jitter"])


def test_uncached_truth_is_computed_in_the_pool(tmp_path, monkeypatch):
    """A truth missing from the cache runs as a task of the same pool (faked here: fast)."""
    calls = []

    def fake_truth(scenario):
        calls.append(scenario.key)
        return {"nrs_diff_w12": {"value": 1.5, "mcse": 0.01, "source": "fake"}}

    monkeypatch.setenv("PALLIASIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys.modules["palliasim.sim.truth"], "compute_truth", fake_truth)
    df = run(tmp_path / "run", reps=3, chunk_size=3)
    assert len(calls) == 1  # both points share the outcome model, hence one truth
    t = df[df["estimand"] == "nrs_diff_w12"]
    assert (t["true"] == 1.5).all() and (t["true_mcse"] == 0.01).all()
    truth_csv = pd.read_csv(tmp_path / "run" / "truth.csv")
    assert set(truth_csv["source"]) == {"fake"} and len(truth_csv) == 2
    run(tmp_path / "run2", reps=3, chunk_size=3)  # now cached
    assert len(calls) == 1


def test_invalid_estimators_raise_before_compute(tmp_path):
    with pytest.raises(ValueError, match="unknown estimator kind 'nope'"):
        run(tmp_path / "a", specs={"x": {"kind": "nope"}})
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        run(tmp_path / "b", specs={"x": {"kind": "toy_mean_diff", "bogus": 1}})
    with pytest.raises(ValueError, match=r"estimators\.x: missing 'kind'"):
        run(tmp_path / "c", specs={"x": {"shift": 1}})
    with pytest.raises(ValueError, match="runner.backend"):
        run(tmp_path / "d", backend="mpi")
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_scenario_constants_are_solved_once_and_shipped_to_the_workers(tmp_path):
    """run_experiment solves each point's constants in the parent's pool and ships them with
    the chunk tasks: a worker given constants uses them (here deliberately altered ones change
    the cohorts) instead of solving its own."""
    import importlib
    from dataclasses import replace as dc_replace

    from palliasim.experiments.engine import constants
    from palliasim.experiments.engine.records import ChunkTask

    gen = importlib.import_module("palliasim.sim.generate")
    pts = expand_design("study", {"truth.seed": 424242, "truth.n": 4000}, {"cohort.n": [61, 62]})
    for p in pts:
        gen._CONSTANTS.pop(p.scenario.constants_key, None)
    specs = {"ancova": {"kind": "ancova_w12"}}
    runner = runner_settings(reps=4, seed=2, n_jobs=2, quiet=True)
    res = run_experiment(pts, specs, runner, tmp_path / "run")
    solved = {p.key: constants.known(p.scenario) for p in pts}
    assert all(v is not None for v in solved.values())
    p0 = pts[0]
    task = ChunkTask("c", p0.scenario, specs, ("ancova",), 0, 3, 2, constants=solved[p0.key])

    def estimates(reply):
        df = pd.DataFrame({c: reply.columns[c] for c in ("rep", "estimand", "estimate")})
        return df.sort_values(["rep", "estimand"])["estimate"].to_numpy()

    same = estimates(worker.run_chunk(task))
    mine = res[res["scenario_key"] == p0.key]
    want = mine.sort_values(["rep", "estimand"])["estimate"].to_numpy()
    assert np.array_equal(same, want, equal_nan=True)
    gen._CONSTANTS.pop(
        p0.scenario.constants_key
    )  # a worker that never saw it, given altered constants
    altered = {**solved[p0.key], "alpha": solved[p0.key]["alpha"] + 3.0}
    other = estimates(worker.run_chunk(dc_replace(task, constants=altered)))
    assert not np.array_equal(other, want, equal_nan=True)
    gen._CONSTANTS.pop(p0.scenario.constants_key)
    constants.prime({p0.scenario.constants_key: solved[p0.key]})


def test_prepare_solves_truths_and_constants_up_front():
    """runner.prepare (task=power, before its adaptive loop): the uncached truths go to the
    cache and every point's constants into this process's cache, in one pool."""
    import importlib

    from palliasim.experiments.engine import constants
    from palliasim.experiments.engine.runner import prepare
    from palliasim.sim.truth import cache_dir, truth_key

    gen = importlib.import_module("palliasim.sim.generate")
    pts = expand_design("study", {"truth.seed": 515152, "truth.n": 4000}, {"cohort.n": [41, 42]})
    for p in pts:
        gen._CONSTANTS.pop(p.scenario.constants_key, None)
    assert not (cache_dir() / f"{truth_key(pts[0].scenario)}.json").exists()
    prepare(pts, runner_settings(seed=2, n_jobs=2, quiet=True))
    assert all(constants.known(p.scenario) is not None for p in pts)
    assert (cache_dir() / f"{truth_key(pts[0].scenario)}.json").exists()


def test_chunk_tasks_are_dispatched_largest_first(tmp_path):
    """RunPlan.tasks orders chunks by patients x reps x methods, descending, ties in plan order
    (so the pool's last tasks are its shortest); truth tasks stay first."""
    from palliasim.experiments.engine import storage
    from palliasim.experiments.engine.plan import plan_run
    from palliasim.experiments.engine.records import ChunkTask

    pts = expand_design("study", {"truth.n": 4000}, {"cohort.n": [40, 400, 120]})
    specs = {"ancova": {"kind": "ancova_w12"}}
    runner = runner_settings(reps=6, seed=2, n_jobs=1, chunk_size=4, quiet=True)
    hashes = {m: storage.spec_hash(s) for m, s in specs.items()}
    plan = plan_run(tmp_path, pts, hashes, runner)
    tasks = plan.tasks(pts, specs, runner, {})
    chunks = [t for t in tasks if isinstance(t, ChunkTask)]
    assert all(not isinstance(t, ChunkTask) for t in tasks[: len(tasks) - len(chunks)])
    cost = [t.scenario.n * (t.last - t.first + 1) for t in chunks]
    assert cost == sorted(cost, reverse=True)
    assert [t.scenario.n for t in chunks] == [400, 400, 120, 120, 40, 40]


def test_per_point_specs_and_reps_equal_separate_runs(tmp_path):
    """One call with each point's own estimators (same name, another spec) and replications
    gives the rows of one call per point (task=power runs a step's groups this way)."""
    a, b = make_points()
    spec_a = {"mean": {"kind": "toy_mean_diff"}, "jitter": {"kind": "toy_jitter", "sd": 0.05}}
    spec_b = {"mean": {"kind": "toy_mean_diff", "shift": 1.0}}
    sep = tmp_path / "separate"
    ra = run_experiment([a], spec_a, settings(7, chunk_size=3, n_jobs=2), sep)
    rb = run_experiment([b], spec_b, settings(10, chunk_size=3, n_jobs=2), sep)

    def one_call():
        return run_experiment(
            [a, b],
            spec_a,
            settings(10, chunk_size=3, n_jobs=2),
            tmp_path / "one",
            point_specs={a.key: spec_a, b.key: spec_b},
            point_reps={a.key: 7, b.key: 10},
        )

    both = one_call()
    expect = storage.sort_canonical(pd.concat([ra, rb], ignore_index=True))
    got = storage.sort_canonical(both)
    assert set(got["method"][got["scenario_key"] == b.key]) == {"mean"}
    assert got.groupby("scenario_key")["rep"].max().to_dict() == {a.key: 6, b.key: 9}
    same(got[list(expect.columns)], expect)
    # b's shifted spec is what its chunk files record, and resuming finds nothing to do
    again = one_call()
    assert again.attrs["n_computed"] == 0


def test_adaptive_waves_keep_a_point_out_of_two_groups_of_one_call():
    from palliasim.experiments.planning.adaptive import _waves

    g1 = ((200, frozenset({("a", "1")})), ["p", "q"])
    g2 = ((400, frozenset({("b", "1")})), ["p"])  # p again, other reps: next wave
    g3 = ((200, frozenset({("c", "1")})), ["r"])
    assert _waves([g1, g2, g3]) == [[g1, g3], [g2]]


def test_chunk_frames_are_cached_only_inside_caching_reads(reference):
    _df, out = reference
    path = chunk_files(out)[0]
    storage._READ_CACHE.clear()
    first, _ = storage.read_chunk(path)
    assert not storage._READ_CACHE  # a plain run reads each file once: nothing kept
    with storage.caching_reads():
        with storage.caching_reads():  # nested: kept until the outermost exits
            a, _ = storage.read_chunk(path)
        assert len(storage._READ_CACHE) == 1
        b, _ = storage.read_chunk(path)
        b.loc[0, "estimate"] = -999.0  # callers get copies: the cached frame is untouched
        c, _ = storage.read_chunk(path)
    assert not storage._READ_CACHE
    same(a, first)
    same(c, first)
