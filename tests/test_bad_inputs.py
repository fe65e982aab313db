"""Every bad input refused before compute: exit code 2, one message naming the key (or column),
and nothing written anywhere - the current directory included (each case runs in an empty
temporary cwd that is listed afterwards, and the input and output locations are compared with
a snapshot taken before). Cases run in-process through the console script's entry point
(``cli.main`` with ``sys.argv`` patched); a few go through the real ``palliasim`` script.

Classes: configs (our settings and Hydra's own composition errors), pre-flight (size limits,
unreachable missing fraction, nobody alive at week 12, dask address, solve bracket), data
directories for task=analyse (the cases of tests/test_inputs_cohort.py, at CLI level), results
files for task=score, run-directory faults (resume mismatches, a lock, permissions, paths).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from palliasim.experiments import cli
from palliasim.experiments.engine.storage import check_out_dir
from tests import test_inputs_cohort as cohort_cases
from tests import test_score_task as score_cases

# quick settings shared by the run-directory cases (a resume needs a small finished run)
TINY = ("reps=2", "estimators=[cox]", "task.plots=false", "quiet=true", "runner.n_jobs=1")

CONFIGS = [
    # (case id, overrides, words the message must contain)
    ("unknown_top", ["+foo=1"], ["'foo'"]),
    ("unknown_section", ["+covariats.age_mean=3"], ["'covariats'"]),
    ("unknown_task_key", ["+task.foo=1"], ["task.foo"]),
    ("unknown_scenario_key", ["+cohort.foo=1"], ["cohort.foo"]),
    ("unknown_runner_key", ["+runner.foo=1"], ["runner.foo"]),
    ("design_typo", ["+design.sbuset=[]"], ["design.sbuset"]),
    ("quiet_maybe", ["quiet=maybe"], ["'quiet'"]),
    ("plots_maybe", ["task.plots=maybe"], ["task.plots"]),
    ("max_rows_abc", ["task.max_rows=abc"], ["task.max_rows"]),
    ("max_rows_0", ["task.max_rows=0"], ["task.max_rows"]),
    ("target_mcse_neg", ["task.target_mcse.bias=-1"], ["task.target_mcse.bias"]),
    ("target_mcse_measure", ["+task.target_mcse.foo=0.1"], ["task.target_mcse"]),
    ("reps_0", ["reps=0"], ["'reps'"]),
    ("reps_text", ["reps=many"], ["'reps'"]),
    ("reps_fraction", ["reps=2.5"], ["'reps'"]),
    ("seed_neg", ["seed=-1"], ["'seed'"]),
    ("seed_text", ["seed=abc"], ["'seed'"]),
    ("alpha_0", ["alpha=0"], ["'alpha'"]),
    ("alpha_1", ["alpha=1.5"], ["'alpha'"]),
    ("failures_bad", ["failures=drop"], ["'failures'", "exclude"]),
    ("n_jobs_0", ["runner.n_jobs=0"], ["runner.n_jobs"]),
    ("n_jobs_text", ["runner.n_jobs=all"], ["runner.n_jobs"]),
    ("backend_bad", ["runner.backend=mpi"], ["runner.backend", "loky"]),
    ("chunk_size_0", ["runner.chunk_size=0"], ["runner.chunk_size"]),
    ("dask_addr_no_dask", ["runner.dask_address=tcp://x:1"], ["runner.dask_address"]),
    ("task_bad", ["task.name=fly"], ["task.name"]),
    ("cohort_n_5", ["cohort.n=5"], ["cohort.n"]),
    ("cohort_n_text", ["cohort.n=many"], ["cohort.n"]),
    ("mechanism_bad", ["missingness.mechanism=mar_strong"], ["missingness.mechanism"]),
    ("target_w12_bad", ["missingness.target_week12=0.99"], ["missingness.target_week12"]),
    ("estimators_unknown_kind", ["+estimators.foo={kind:nope}"], ["estimators.foo"]),
    ("estimator_option", ["+estimators.cox.foo=1"], ["estimators.cox"]),
    ("out_dir_blank", ["out_dir=' '"], ["'out_dir'"]),
    ("solve_not_list", ["solve=3"], ["'solve'"]),
    (
        "solve_measure",
        ["solve=[{key:survival.os.log_hr,measure:foo,target:1,bracket:[0,1]}]"],
        ["solve[0].measure"],
    ),
    (
        "solve_bracket_order",
        ["solve=[{key:survival.os.log_hr,measure:marginal_hr_os,target:1,bracket:[1,0]}]"],
        ["solve[0].bracket"],
    ),
    (
        "solve_missing_target",
        ["solve=[{key:survival.os.log_hr,measure:marginal_hr_os,bracket:[0,1]}]"],
        ["solve[0].target"],
    ),
    ("calibrate_n", ["task=calibrate", "task.n=10"], ["task.n"]),
    ("export_format", ["task=export", "task.format=xlsx"], ["task.format", "csv"]),
    ("report_kind", ["task=report", "task.kind=pdf"], ["task.kind"]),
    ("check_reps", ["task=check", "task.reps=1"], ["task.reps"]),
    ("check_seed", ["task=check", "task.seed=-3"], ["task.seed"]),
    ("power_grid", ["task=power", "task.n_grid=[5]"], ["task.n_grid"]),
    ("power_target", ["task=power", "task.target_power=[1.5]"], ["task.target_power"]),
    ("power_endpoint", ["task=power", "task.endpoints=[foo]"], ["task.endpoints"]),
    ("power_reps", ["task=power", "task.reps_start=900", "task.reps_max=10"], ["task.reps_start"]),
    ("power_halfwidth", ["task=power", "task.ci_halfwidth=0.7"], ["task.ci_halfwidth"]),
    ("power_growth", ["task=power", "task.reps_growth=0.5"], ["task.reps_growth", "[1, 10]"]),
    ("power_band", ["task=power", "task.precision_band=[0.9,0.2]"], ["task.precision_band"]),
    ("power_band_range", ["task=power", "task.precision_band=[0.5,1.5]"], ["task.precision_band"]),
    ("analyse_no_data", ["task=analyse"], ["data="]),
    ("score_no_input", ["task=score"], ["input"]),
    # Hydra's own errors (exit 1 in Hydra; ours: 2 with our prefix)
    ("hydra_group_typo", ["scenario=stduy"], ["scenario/stduy", "study"]),
    ("hydra_task_typo", ["task=simulat"], ["task/simulat"]),
    ("hydra_key_no_plus", ["cohort.nn=3"], ["cohort.nn"]),
    ("hydra_syntax", ["reps=["], ["["]),
    ("hydra_runner_typo", ["runner=fast"], ["runner/fast"]),
    ("hydra_estimator_typo", ["estimators=[coxx]"], ["coxx"]),
    # pre-flight: before any worker, in the parent
    ("reps_1e12", ["reps=1000000000000"], ["'reps'", "chunk tasks"]),
    ("reps_years", ["reps=100000000", "runner.chunk_size=1000000"], ["'reps'", "would take"]),
    ("cohort_n_2e9", ["cohort.n=2000000000"], ["cohort.n", "bytes per patient"]),
    (
        "strong_mar",
        ["missingness.target_week12=0.95", "missingness.mar_nrs=-10"],
        ["missingness.target_week12", "cannot be reached"],
    ),
    ("nobody_alive_w12", ["survival.os.scale=0.05"], ["week 12"]),
    (
        "dask_unreachable",
        ["runner.backend=dask", "runner.dask_address=tcp://127.0.0.1:9"],
        ["runner.dask_address", "no dask scheduler"],
    ),
    (
        "dask_bad_address",
        ["runner.backend=dask", "runner.dask_address=nowhere"],
        ["runner.dask_address"],
    ),
    (
        "solve_unbracketed",
        [
            "solve=[{key:survival.progression.log_hr,measure:marginal_hr_pfs,"
            "target:0.68,bracket:[0.3,0.5]}]",
            "task=export",
        ],
        ["solve[0].bracket", "not bracketed"],
    ),
]


def _tree(path: Path) -> list[str]:
    """Every path under ``path`` (relative), with its size: a snapshot to compare."""
    if not path.exists():
        return []
    return sorted(f"{p.relative_to(path)}:{p.stat().st_size}" for p in path.rglob("*"))


def _main(args, cwd: Path, capsys, monkeypatch) -> tuple[int, str]:
    """Run the console script in-process in ``cwd``; returns (exit code, stderr)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["palliasim", *args])
    code = 0
    try:
        cli.main()  # returns on success, SystemExit otherwise
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _refused(args, tmp_path, capsys, monkeypatch, words, watch=()):
    """Assert exit 2, our prefix, every word in the message, and nothing written."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = {w: _tree(w) for w in watch}
    code, err = _main(args, cwd, capsys, monkeypatch)
    assert code == 2, err
    assert cli.PREFIX in err, err
    assert "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert list(cwd.iterdir()) == [], "something was written into the current directory"
    for w, snap in before.items():
        assert _tree(w) == snap, f"{w} changed"


@pytest.mark.parametrize("case,args,words", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_bad_config_refused(tmp_path, capsys, monkeypatch, case, args, words):
    out = tmp_path / "out"
    given = any(a.startswith("out_dir=") for a in args)
    args = args if given else [*args, f"out_dir={out}"]
    _refused(args, tmp_path, capsys, monkeypatch, words, watch=[out])
    assert not out.exists()


def test_refused_without_out_dir_writes_no_outputs_dir(tmp_path, capsys, monkeypatch):
    _refused(["scenario=stduy"], tmp_path, capsys, monkeypatch, ["stduy"])


# --------------------------------------------------------------------------------------------
# task=analyse: the data schema at CLI level
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames():
    return cohort_cases.frames.__wrapped__()


DATA = [(c, m, w) for c, m, w in cohort_cases.BAD]


@pytest.mark.parametrize("case,mutate,words", DATA, ids=[d[0] for d in DATA])
def test_bad_data_refused(tmp_path, capsys, monkeypatch, frames, case, mutate, words):
    p, v = mutate(frames[0].copy(), frames[1].copy())
    data = cohort_cases._write(tmp_path / "data", p, v)
    out = tmp_path / "out"
    args = ["task=analyse", f"data={data}", f"out_dir={out}", "estimators=[cox,cox_adjusted]"]
    _refused(args, tmp_path, capsys, monkeypatch, words, watch=[data, out])


FILES = cohort_cases.FILE_FAULTS


@pytest.mark.parametrize("case,raw,words", FILES, ids=[f[0] for f in FILES])
def test_unreadable_data_refused(tmp_path, capsys, monkeypatch, frames, case, raw, words):
    data = cohort_cases._write(tmp_path / "data", *frames)
    (data / "patients.csv").write_bytes(raw)
    out = tmp_path / "out"
    args = ["task=analyse", f"data={data}", f"out_dir={out}"]
    _refused(args, tmp_path, capsys, monkeypatch, [words, "patients.csv"], watch=[data, out])


def test_data_not_a_directory(tmp_path, capsys, monkeypatch):
    _refused(
        ["task=analyse", f"data={tmp_path / 'nope'}"], tmp_path, capsys, monkeypatch, ["data="]
    )


# --------------------------------------------------------------------------------------------
# task=score: the results file
# --------------------------------------------------------------------------------------------
SCORE = [
    ("se", "'se'"),
    ("p_value", "'p_value'"),
    ("ci", "'ci_low'"),
    ("rep", "'rep'"),
    ("estimate", "'estimate'"),
    ("status", "'status'"),
]


@pytest.mark.parametrize("kind,words", SCORE, ids=[s[0] for s in SCORE])
def test_bad_results_refused(tmp_path, capsys, monkeypatch, kind, words):
    src = tmp_path / "in"
    src.mkdir()
    score_cases._mutate(kind, score_cases.own_table()).to_csv(src / "r.csv", index=False)
    out = tmp_path / "out"
    args = ["task=score", f"input={src / 'r.csv'}", f"out_dir={out}"]
    _refused(args, tmp_path, capsys, monkeypatch, [words], watch=[src, out])


SCORE_FILES = [
    ("empty", "", [], "empty"),
    ("header_only", None, [], "no rows"),
    ("missing_role_column", None, ["task.rep=dataset"], "'dataset'"),
    ("true_bool", None, ["task.true=true"], "task.true"),
    ("missing_file", "MISSING", [], "input"),
]


@pytest.mark.parametrize("case,text,extra,words", SCORE_FILES, ids=[s[0] for s in SCORE_FILES])
def test_bad_results_file_refused(tmp_path, capsys, monkeypatch, case, text, extra, words):
    src = tmp_path / "in"
    src.mkdir()
    path = src / "r.csv"
    if text is None:
        table = score_cases.own_table()
        (table.iloc[:0] if case == "header_only" else table).to_csv(path, index=False)
    elif text != "MISSING":
        path.write_text(text)
    out = tmp_path / "out"
    args = ["task=score", f"input={path}", f"out_dir={out}", *extra]
    _refused(args, tmp_path, capsys, monkeypatch, [words], watch=[src, out])


# --------------------------------------------------------------------------------------------
# run directories
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A small finished run (seed 5, chunk size 25)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code = subprocess.run(
        [sys.executable, "-m", "palliasim", *TINY, "seed=5", f"out_dir={out}"],
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert code.returncode == 0, code.stderr
    return out


def _copy(finished, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


def test_resume_with_another_seed(tmp_path, finished, capsys, monkeypatch):
    run = _copy(finished, tmp_path)
    _refused(
        [*TINY, "seed=6", f"out_dir={run}"],
        tmp_path,
        capsys,
        monkeypatch,
        ["'seed'", "seed=5"],
        watch=[run],
    )


def test_resume_with_another_chunk_size(tmp_path, finished, capsys, monkeypatch):
    run = _copy(finished, tmp_path)
    _refused(
        [*TINY, "seed=5", "reps=4", "runner.chunk_size=1", f"out_dir={run}"],
        tmp_path,
        capsys,
        monkeypatch,
        ["runner.chunk_size", "runner.chunk_size=25"],
        watch=[run],
    )


def test_resume_advice_works(tmp_path, finished, capsys, monkeypatch):
    """The advice of the seed refusal (``seed=5``) resumes the run: nothing recomputed."""
    run = _copy(finished, tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    code, err = _main([*TINY, "seed=5", f"out_dir={run}"], cwd, capsys, monkeypatch)
    assert code in (0, None), err
    assert json.loads((run / "manifest.json").read_text())["runs"][-1]["computed"] == []


def test_locked_by_another_run(tmp_path, finished, capsys, monkeypatch):
    run = _copy(finished, tmp_path)
    with open(run / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        _refused(
            [*TINY, "seed=5", f"out_dir={run}"],
            tmp_path,
            capsys,
            monkeypatch,
            ["'out_dir'", "another palliasim run"],
            watch=[run],
        )


def test_out_dir_is_a_file(tmp_path, capsys, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("x")
    _refused([*TINY, f"out_dir={f}"], tmp_path, capsys, monkeypatch, ["'out_dir'", "a file"])
    assert f.read_text() == "x"


def test_out_dir_under_a_file(tmp_path, capsys, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("x")
    _refused([*TINY, f"out_dir={f / 'run'}"], tmp_path, capsys, monkeypatch, ["'out_dir'"])


needs_permissions = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions"
)


@needs_permissions
def test_read_only_out_dir(tmp_path, finished, capsys, monkeypatch):
    run = _copy(finished, tmp_path)
    run.chmod(0o555)
    try:
        _refused(
            [*TINY, "seed=5", f"out_dir={run}"],
            tmp_path,
            capsys,
            monkeypatch,
            ["'out_dir'", "not writable", "task=score"],
            watch=[run],
        )
    finally:
        run.chmod(0o755)


@needs_permissions
def test_non_writable_parent(tmp_path, capsys, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        _refused(
            [*TINY, f"out_dir={parent / 'a' / 'run'}"],
            tmp_path,
            capsys,
            monkeypatch,
            ["'out_dir'", "not writable"],
            watch=[parent],
        )
    finally:
        parent.chmod(0o755)


@needs_permissions
def test_analyse_into_read_only_out_dir(tmp_path, frames, capsys, monkeypatch):
    data = cohort_cases._write(tmp_path / "data", *frames)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        _refused(
            ["task=analyse", f"data={data}", f"out_dir={out}"],
            tmp_path,
            capsys,
            monkeypatch,
            ["'out_dir'"],
            watch=[out],
        )
    finally:
        out.chmod(0o755)


@needs_permissions
def test_read_only_finished_run_can_be_rescored(tmp_path, finished, capsys, monkeypatch):
    run = _copy(finished, tmp_path)
    for p in [run, *run.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        before = _tree(run)
        args = ["task=score", f"input={run / 'results.parquet'}", f"out_dir={tmp_path / 's'}"]
        code, err = _main(args, cwd, capsys, monkeypatch)
        assert code in (0, None), err
        assert (tmp_path / "s" / "performance.csv").exists()
        assert _tree(run) == before
        with pytest.raises(Exception, match="not writable"):
            check_out_dir(run)
    finally:
        for p in [run, *run.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


# --------------------------------------------------------------------------------------------
# the real console script
# --------------------------------------------------------------------------------------------
SCRIPT = [
    (["scenario=stduy"], "scenario/stduy"),
    (["+foo=1"], "'foo'"),
    (["reps=1000000000000"], "'reps'"),
]


@pytest.mark.parametrize("args,words", SCRIPT, ids=["hydra", "settings", "preflight"])
def test_console_script(tmp_path, args, words):
    exe = shutil.which("palliasim") or pytest.skip("palliasim console script not on PATH")
    proc = subprocess.run([exe, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert cli.PREFIX in proc.stderr and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# plug-ins: a user's estimator class by import path, a user's scenario file (docs/extending.md)
# --------------------------------------------------------------------------------------------
PLUGIN_MODULE = """
from dataclasses import dataclass

from palliasim import Estimator, wald_row


@dataclass
class Good(Estimator):
    estimands = ("nrs_diff_w12",)
    min_per_arm: int = 5

    def _fit(self, cohort, rng):
        return [wald_row(self.name, "nrs_diff_w12", 0.0, 1.0, self.alpha, 1)]


@dataclass
class Typo(Good):
    estimands = ("nrs_diff_w21",)


class NotAnEstimator:
    pass


class NoDataclass(Estimator):
    shift: float = 0.0
"""

PLUGIN_FILES = {
    "plug_est.py": PLUGIN_MODULE,
    "plug_raises.py": "raise RuntimeError('boom at import')\n",
    "good.yaml": "base: randomized\ncohort:\n  n: 100\n",
    "bad_yaml.yaml": "cohort: [1\n",
    "not_mapping.yaml": "- 1\n",
    "unknown_key.yaml": "cohrt:\n  n: 100\n",
    "unknown_nested.yaml": "cohort:\n  nn: 100\n",
    "out_of_range.yaml": "cohort:\n  n: 3\n",
    "bad_base.yaml": "base: randomised\n",
    "study.yaml": "cohort:\n  n: 100\n",
    "bad_kind_suite.yaml": "scenarios: {r: {preset: randomized}}\n"
    "estimators: {mine: {kind: 'plug_est:Nope'}}\n"
    "checks: [{scenario: r, method: mine, estimand: nrs_diff_w12, expect: {unbiased: true}}]\n",
    "bad_scenario_suite.yaml": "scenarios: {trial: {preset: missing.yaml}}\n"
    "estimators: {mine: {kind: 'plug_est:Good'}}\n"
    "checks: [{scenario: trial, method: mine, estimand: nrs_diff_w12, expect: {unbiased: true}}]\n",
}

PLUGINS = [
    (
        "kind_not_importable",
        ["+estimators.mine.kind=no_such_mod_xyz:Est"],
        ["estimators.mine.kind", "no_such_mod_xyz", "ModuleNotFoundError"],
    ),
    (
        "kind_import_raises",
        ["+estimators.mine.kind=plug_raises:Est"],
        ["estimators.mine.kind", "RuntimeError", "boom at import"],
    ),
    ("kind_no_attribute", ["+estimators.mine.kind=plug_est:Nope"], ["'Nope'", "Good"]),
    (
        "kind_not_subclass",
        ["+estimators.mine.kind=plug_est:NotAnEstimator"],
        ["estimators.mine.kind", "not a subclass of palliasim.Estimator"],
    ),
    ("kind_not_dataclass", ["+estimators.mine.kind=plug_est:NoDataclass"], ["@dataclass"]),
    ("kind_malformed", ["+estimators.mine.kind=plug_est:"], ["package.module:Class"]),
    (
        "kind_unknown_option",
        ["+estimators.mine.kind=plug_est:Good", "+estimators.mine.foo=1"],
        ["estimators.mine", "'foo'", "min_per_arm"],
    ),
    (
        "kind_unregistered_estimand",
        ["+estimators.mine.kind=plug_est:Typo"],
        ["estimators.mine.kind", "'nrs_diff_w21'", "estimand registry", "nrs_diff_w12"],
    ),
    (
        "power_kind",
        ["task=power", "+task.methods.mine.kind=plug_est:Nope"],
        ["task.methods.mine.kind", "'Nope'"],
    ),
    ("check_kind", ["task=check", "suite={plug}/bad_kind_suite.yaml"], ["estimators.mine.kind"]),
    ("scenario_missing", ["scenario={plug}/nope.yaml"], ["'scenario'", "nope.yaml"]),
    ("scenario_missing_relative", ["scenario=nope.yaml"], ["'scenario'", "no such file"]),
    ("scenario_bad_yaml", ["scenario={plug}/bad_yaml.yaml"], ["bad_yaml.yaml", "YAML"]),
    ("scenario_not_mapping", ["scenario={plug}/not_mapping.yaml"], ["must be a mapping"]),
    ("scenario_unknown_key", ["scenario={plug}/unknown_key.yaml"], ["'cohrt'", "cohort"]),
    ("scenario_unknown_nested", ["scenario={plug}/unknown_nested.yaml"], ["cohort.nn"]),
    ("scenario_out_of_range", ["scenario={plug}/out_of_range.yaml"], ["cohort.n", ">= 10"]),
    ("scenario_bad_base", ["scenario={plug}/bad_base.yaml"], ["'base'", "randomized"]),
    ("scenario_preset_name", ["scenario={plug}/study.yaml"], ["scenario_name", "study"]),
    ("scenario_then_bad_key", ["scenario={plug}/good.yaml", "cohort.n=5"], ["cohort.n"]),
    ("scenario_file_by_hand", ["+scenario_file={plug}/good.yaml"], ["scenario_file"]),
    ("power_scenario", ["task=power", "scenario={plug}/unknown_key.yaml"], ["'cohrt'"]),
    (
        "check_scenario",
        ["task=check", "suite={plug}/bad_scenario_suite.yaml"],
        ["scenarios.trial.preset", "missing.yaml"],
    ),
]


@pytest.mark.parametrize("case,args,words", PLUGINS, ids=[c[0] for c in PLUGINS])
def test_bad_plugin_refused(tmp_path, capsys, monkeypatch, case, args, words):
    """Exit 2 naming the key, before any compute; nothing written, not even bytecode next to
    the user's module."""
    plug = tmp_path / "plug"
    plug.mkdir()
    for name, text in PLUGIN_FILES.items():
        (plug / name).write_text(text)
    monkeypatch.syspath_prepend(str(plug))
    out = tmp_path / "out"
    args = [a.replace("{plug}", str(plug)) for a in args] + [f"out_dir={out}"]
    _refused(args, tmp_path, capsys, monkeypatch, words, watch=[out, plug])
    assert not out.exists()
