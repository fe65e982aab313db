"""Packaging: one import name (``palliasim``), configs inside the wheel, and no shadowing by a
user's own ``conf/``, ``experiments/``, ``sim/`` folders or ``estimators.py`` module, from the
editable install and from a wheel installed in a fresh virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = {
    "sim": "sim",
    "estimators": "estimators",
    "experiments": "experiments",
    "conf": "conf",
}

API_SCRIPT = """
import palliasim, sim, experiments, conf, estimators
assert sim.USER and experiments.USER and conf.USER and estimators.USER   # the user's own
sc = palliasim.load_scenario("study", {"cohort.n": 60})
cohort = palliasim.generate(sc, palliasim.rng_for(3, sc.key, "data", 0))
rows = palliasim.build_estimator("logrank", name="logrank").fit(
    cohort, palliasim.rng_for(3, sc.key, "estimator", 0))
assert rows and rows[0].status in ("ok", "warning"), rows
import pathlib, tempfile
out = pathlib.Path(tempfile.mkdtemp()) / "api-run"   # the Python API: the CLI's code path
res = palliasim.simulate(["reps=4", "estimators=[cox,logistic]", "task.plots=false"], out_dir=out)
assert set(res.results["method"]) == {"cox", "logistic"} and res.results["rep"].nunique() == 4
assert (out / "results.parquet").is_file() and len(res.performance) and res.out_dir == out
import palliasim.sim, palliasim.experiments.cli
assert "site-packages" in palliasim.sim.__file__ or palliasim.sim.__file__.startswith(ROOT)
print("API-OK", palliasim.sim.__file__)
"""


def _shadow_dir(tmp_path: Path) -> Path:
    """A user's project with its own conf/, experiments/, sim/ packages and estimators.py."""
    d = tmp_path / "userproject"
    for name in ("conf", "experiments", "sim"):
        (d / name).mkdir(parents=True)
        (d / name / "__init__.py").write_text("USER = True\n")
    (d / "conf" / "config.yaml").write_text("user_config: true\n")
    (d / "estimators.py").write_text("USER = True\n")
    return d


def _run(cmd, cwd, env=None):
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{cmd}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def _check_from(python: Path, palliasim_cmd: list[str], cwd: Path, env=None) -> None:
    script = f"ROOT = {str(ROOT)!r}\n" + API_SCRIPT
    out = _run([str(python), "-c", script], cwd, env).stdout
    assert "API-OK" in out
    # the console script (Hydra's pkg://palliasim.conf, not the user's conf/)
    exported = cwd / "exported"
    _run([*palliasim_cmd, "task=export", "cohort.n=40", "seed=5", f"out_dir={exported}"], cwd, env)
    assert (exported / "patients.csv").is_file() and (exported / "DATA.md").is_file()


def test_every_package_folder_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    assert cfg["package-dir"] == {
        "palliasim": "palliasim",
        **{f"palliasim.{k}": f"./{v}" for k, v in SUBPACKAGES.items()},
    }
    found = {"palliasim"}
    for top, folder in SUBPACKAGES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join(("palliasim", top, *rel)))
    assert found == listed


def test_editable_install_is_not_shadowed(tmp_path):
    d = _shadow_dir(tmp_path)
    exe = Path(sys.executable)
    script = exe.parent / "palliasim"
    cmd = [str(script)] if script.exists() else [str(exe), "-m", "palliasim"]
    _check_from(exe, cmd, d)
    # python -m palliasim, from the user's directory (cwd first on sys.path)
    _run([str(exe), "-m", "palliasim", "task=export", "cohort.n=30", f"out_dir={d / 'm'}"], d)
    assert (d / "m" / "visits.csv").is_file()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build from a copy: a build writes egg-info next to the sources
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv",
        "build",
        "outputs",
        "multirun",
        "*.egg-info",
        "__pycache__",
        ".palliasim_cache",
    )
    shutil.copytree(ROOT, src, ignore=ignore)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp),
            str(src),
        ],
        tmp,
    )
    return next(tmp.glob("palliasim-*.whl"))


def test_wheel_has_one_top_level_name_and_ships_the_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"palliasim"}
    for required in (
        "palliasim/__init__.py",
        "palliasim/conf/config.yaml",
        "palliasim/conf/scenario/study.yaml",
        "palliasim/conf/scenario/null.yaml",
        "palliasim/conf/estimators/lmm.yaml",
        "palliasim/conf/task/simulate.yaml",
        "palliasim/conf/DATA.md",
        "palliasim/experiments/cli.py",
        "palliasim/sim/generate.py",
        "palliasim/estimators/base.py",
    ):
        assert required in names, required
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    assert "palliasim = palliasim.experiments.cli:main" in text


def test_wheel_in_a_fresh_venv_is_not_shadowed(tmp_path, wheel):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    # the dependencies come from this test environment (no network); palliasim itself only
    # from the wheel: the editable install's finder (a .pth hook) is not carried over
    site = Path(sysconfig.get_paths()["purelib"])
    vsite = Path(
        _run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
        ).stdout.strip()
    )
    (vsite / "_deps_from_test_env.pth").write_text(str(site) + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path)
    d = _shadow_dir(tmp_path)
    clean = {"PYTHONPATH": ""}  # a checkout on PYTHONPATH would hide the wheel
    out = _run([str(py), "-c", "import palliasim.sim as s; print(s.__file__)"], d, clean).stdout
    assert str(vsite) in out, out
    _check_from(py, [str(venv / "bin" / "palliasim")], d, env=clean)
