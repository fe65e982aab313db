"""docs/extending.md runs as written: its files (code blocks marked ``file=NAME``) are written into
an empty directory, its commands (the ``sh run`` block) run there through the real ``palliasim``
console script (whose own sys.path lacks the current directory: the plug-in must be found
there anyway, also by the loky workers of runner.n_jobs=2), and the user's estimator and
scenario must appear in the outputs of simulate, power and check."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
FILE_BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```", re.S | re.M)
RUN_BLOCK = re.compile(r"^```sh run\n(.*?)^```", re.S | re.M)


def doc_files() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in FILE_BLOCK.finditer(DOC.read_text())}


def doc_commands() -> list[list[str]]:
    blocks = RUN_BLOCK.findall(DOC.read_text())
    assert len(blocks) == 1, "docs/extending.md must have one ```sh run block"
    text = blocks[0].replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip()]


def _script() -> str:
    here = Path(sys.executable).parent / "palliasim"
    found = str(here) if here.exists() else shutil.which("palliasim")
    if not found:
        pytest.skip("the palliasim console script is not installed")
    return found


def test_doc_has_the_three_files_and_commands():
    assert set(doc_files()) == {"diff_means.py", "trial_mcar.yaml", "my_suite.yaml"}
    cmds = doc_commands()
    assert [c[0] for c in cmds] == ["palliasim"] * 3
    tasks = [next((a for a in c if a.startswith("task=")), "task=simulate") for c in cmds]
    assert tasks == ["task=simulate", "task=power", "task=check"]
    est = [ln for ln in doc_files()["diff_means.py"].splitlines() if ln.strip()]
    assert len(est) <= 30, "the example estimator should stay short"


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The documented files and commands, run once in an empty directory."""
    work = tmp_path_factory.mktemp("extending")
    for name, text in doc_files().items():
        (work / name).write_text(text)
    env = {**os.environ, "MPLBACKEND": "Agg", "PALLIASIM_CACHE": str(work / ".cache")}
    procs = []
    for cmd in doc_commands():
        procs.append(
            subprocess.run(
                [_script(), *cmd[1:]],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
        )
    return work, procs


def test_simulate_runs_the_users_estimator_on_the_users_scenario(ran):
    work, procs = ran
    assert procs[0].returncode == 0, procs[0].stderr[-3000:]
    res = pd.read_parquet(work / "out" / "simulate" / "results.parquet")
    mine = res[res["method"] == "diff_means"]
    assert len(mine) == 40 and (mine["status"] == "ok").all()
    assert set(res["scenario"]) == {"trial_mcar"}
    assert mine["true"].notna().all() and set(mine["true_status"]) == {"ok"}
    perf = pd.read_csv(work / "out" / "simulate" / "performance.csv")
    assert {"diff_means", "ancova_cc"} <= set(perf["method"])
    config = json.loads((work / "out" / "simulate" / "manifest.json").read_text())
    assert config["config"]["scenario_file"] == str(work / "trial_mcar.yaml")
    assert config["config"]["cohort"]["n"] == 120  # the file's value over `randomized`'s 300
    assert "diff_means" in (work / "out" / "simulate" / "report.md").read_text()
    assert not (work / "__pycache__").exists()  # nothing written next to the user's module


def test_power_runs_the_users_method(ran):
    work, procs = ran
    assert procs[1].returncode == 0, procs[1].stderr[-3000:]
    power = pd.read_csv(work / "out" / "power" / "power.csv")
    mine = power[power["method"] == "diff_means"]
    assert sorted(mine["n"]) == [60, 120] and (mine["reps"] == 40).all()
    assert set(power["scenario"]) == {"trial_mcar"}


def test_check_judges_the_users_estimator(ran):
    work, procs = ran
    assert procs[2].returncode == 0, procs[2].stdout[-3000:] + procs[2].stderr[-3000:]
    checks = pd.read_csv(work / "out" / "check" / "checks.csv")
    mine = checks[checks["method"] == "diff_means"]
    assert len(mine) == 3 and (mine["verdict"] == "PASS").all()
    assert set(checks["scenario"]) == {"trial"}
