"""Running a suite: replications through the runner (one run directory per code fingerprint,
seed and scenario, so a resumed run never scores replications of older code), scored, judged
and reported (:func:`run_suite`, :class:`SuiteResult`)."""

from __future__ import annotations

import hashlib
import importlib
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from palliasim.estimators.base import REGISTRY, is_import_path, resolve_kind
from palliasim.experiments.api import default_settings
from palliasim.experiments.checks.judging import evaluate
from palliasim.experiments.checks.output import junit_xml, markdown_report
from palliasim.experiments.checks.schema import Suite, load_suite
from palliasim.experiments.engine import storage
from palliasim.experiments.engine.design import DesignPoint
from palliasim.experiments.engine.runner import run_experiment
from palliasim.experiments.scoring.performance import summarise
from palliasim.experiments.settings import CheckSettings, RunnerSettings
from palliasim.sim.errors import ConfigError
from palliasim.sim.files import atomic_write_text
from palliasim.sim.rules import int_at_least, reject_unknown, require


@dataclass
class SuiteResult:
    """The outcome of :func:`run_suite`.

    ``passed`` (bool), ``table`` (one row per check, suite order; ``CHECK_COLUMNS``),
    ``failures`` (the failing rows), ``markdown`` (the summary, failing checks first),
    ``junit`` (JUnit XML text), ``performance`` and ``results`` (the scored and raw tables),
    ``out_dir`` (where summary.md, checks.csv, junit.xml, performance.csv were written).
    """

    suite: Suite
    table: pd.DataFrame
    markdown: str
    junit: str
    performance: pd.DataFrame
    results: pd.DataFrame
    out_dir: Path
    seconds: float = 0.0
    files: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool((self.table["verdict"] == "PASS").all())

    @property
    def failures(self) -> pd.DataFrame:
        return self.table[self.table["verdict"] == "FAIL"]

    def assert_passed(self) -> None:
        """Raise AssertionError with the markdown summary if any check failed (for pytest)."""
        if not self.passed:
            raise AssertionError(
                f"{len(self.failures)} check(s) of suite '{self.suite.name}' failed:\n"
                + self.markdown
            )


def _module_files(mod_name: str) -> list[Path]:
    mod = sys.modules.get(mod_name) or importlib.import_module(mod_name)
    f = getattr(mod, "__file__", None)
    if not f:
        return []
    p = Path(f)
    if p.name == "__init__.py":
        return sorted(p.parent.rglob("*.py"))
    return [p]


def code_fingerprint(suite: Suite) -> str:
    """sha256 (12 hex) of the code behind the replications: the sources of ``sim``,
    ``estimators``, the runner, the modules defining the suite's estimator kinds (plug-ins),
    and the versions of the numerical libraries. A change to any of them gives a new run
    directory, so a resumed run never scores replications of older code."""
    h = hashlib.sha256()
    mods = {
        "palliasim.sim",
        "palliasim.estimators",
        "palliasim.experiments.engine.runner",
        "palliasim.experiments.engine.storage",
    }
    for spec in suite.estimators.values():
        cls = REGISTRY.get(spec["kind"])
        if cls is None and is_import_path(spec["kind"]):
            cls = resolve_kind(spec["kind"])  # a plug-in named by import path (imported)
        if cls is not None:
            mods.add(cls.__module__)
    files: set[Path] = set()
    for m in sorted(mods):
        try:
            files.update(_module_files(m))
        except Exception:  # pragma: no cover - e.g. a class defined in __main__
            h.update(m.encode())
    for f in sorted(files):
        h.update(f.name.encode())
        try:
            h.update(f.read_bytes())
        except OSError:  # pragma: no cover
            pass
    versions = storage.package_versions()
    h.update(repr(sorted((str(k), str(v)) for k, v in versions.items())).encode())
    return h.hexdigest()[:12]


def run_suite(
    suite: str | Path | Mapping | Suite,
    *,
    out_dir: str | Path | None = None,
    runner: RunnerSettings | None = None,
    options: CheckSettings | None = None,
    **changes: Any,
) -> SuiteResult:
    """Run a check suite and judge it; writes summary.md, checks.csv, junit.xml,
    performance.csv into ``out_dir`` (a new temporary directory when None).

    ``suite``: a name in ``conf/checks/`` (e.g. ``"smoke"``), a YAML path, a mapping or a
    :class:`Suite`. ``runner`` (n_jobs, backend, chunk_size...) and ``options`` (the suite's run
    options: ``seed`` / ``reps`` overriding the suite's, the ``junit`` file) default to the
    packaged config (conf/runner, conf/task/check.yaml); keyword ``changes`` replace single
    fields of either (``run_suite("smoke", n_jobs=2, reps=50)``). The verdicts depend only on
    the suite, the seed and the code: never on ``n_jobs``, ``backend`` or ``chunk_size``.

    Raises ConfigError for an invalid suite or setting (before any compute),
    :class:`engine.runner.RunIncomplete` when replications could not be completed.
    """
    t0 = time.perf_counter()
    suite = load_suite(suite)
    runner, options = _run_settings(runner, options, changes)
    seed = suite.seed if options.seed is None else options.seed
    reps = suite.reps if options.reps is None else options.reps
    require(reps, "reps", int_at_least(2))
    runner = replace(runner, seed=seed, reps=reps)
    junit = options.junit
    out = (
        Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="palliasim-check-"))
    )
    out = out.expanduser().resolve()
    base = out / "runs" / code_fingerprint(suite) / f"seed{runner.seed}"
    frames = []
    for name in suite.used_scenarios():
        methods = suite.methods_for(name)
        point = DesignPoint(factors={}, scenario=suite.scenarios[name], label=name)
        try:
            res = run_experiment(
                [point],
                {m: suite.estimators[m] for m in methods},
                runner,
                base / name,
                config={"suite": suite.source or suite.name, "scenario": name},
            )
        except ValueError as exc:  # e.g. a run directory of another grid
            raise ConfigError(f"scenario '{name}': {exc}") from None
        frames.append(res)
    results = pd.concat(frames, ignore_index=True)
    perf = summarise(results, by=["scenario"], alpha=suite.alpha, failures=suite.failures)
    table = evaluate(suite, perf, results)
    seconds = time.perf_counter() - t0
    md = markdown_report(suite, table, runner.reps, runner.seed)
    xml = junit_xml(suite, table, seconds, runner.reps, runner.seed)
    files = {
        "summary": atomic_write_text(out / "summary.md", md),
        "checks": atomic_write_text(out / "checks.csv", table.to_csv(index=False)),
        "performance": atomic_write_text(out / "performance.csv", perf.to_csv(index=False)),
    }
    if junit:
        jp = Path(junit)
        files["junit"] = atomic_write_text(jp if jp.is_absolute() else out / jp, xml)
    return SuiteResult(
        suite=suite,
        table=table,
        markdown=md,
        junit=xml,
        performance=perf,
        results=results,
        out_dir=out,
        seconds=seconds,
        files=files,
    )


def _run_settings(runner, options, changes: Mapping[str, Any]):
    """(runner, options): the given ones, or the packaged defaults, with ``changes`` applied
    (each a field of RunnerSettings or CheckSettings; ConfigError for any other name)."""
    run_keys = {f.name for f in fields(RunnerSettings)} - {"seed", "reps"}
    opt_keys = {f.name for f in fields(CheckSettings)}
    reject_unknown(changes, run_keys | opt_keys, "run_suite")
    if runner is None or options is None:
        defaults = default_settings("check")
        runner = defaults.runner if runner is None else runner
        options = defaults.task if options is None else options
    runner = replace(runner, **{k: v for k, v in changes.items() if k in run_keys})
    options = replace(options, **{k: v for k, v in changes.items() if k in opt_keys})
    return runner, options
