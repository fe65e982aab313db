"""task=check: run a CI check suite and exit with its verdict.

    palliasim task=check suite=smoke                  # conf/checks/smoke.yaml
    palliasim task=check suite=ci/my_suite.yaml runner.n_jobs=4 out_dir=outputs/ci-check

Exit codes: 0 every check passed, 1 some check failed (or the replications could not be
completed), 2 invalid suite or settings (the message names the key; nothing is computed).
The markdown summary (failing checks first) goes to stdout; summary.md, checks.csv, junit.xml
and performance.csv to the output directory. The suite's own ``seed`` and ``reps`` are used
unless ``task.seed`` / ``task.reps`` are given (the top-level ``seed`` / ``reps`` are the
simulate task's). See experiments/checks/ and docs/ci.md.
"""

from __future__ import annotations

import sys

from palliasim.experiments import config as C
from palliasim.experiments.checks.running import run_suite
from palliasim.experiments.checks.schema import load_suite
from palliasim.experiments.engine.runner import RunIncomplete
from palliasim.experiments.scoring.document import write_report
from palliasim.experiments.settings import Settings
from palliasim.sim.errors import ConfigError


def run(settings: Settings) -> int:
    opts, runner = settings.task, settings.runner
    source = settings.suite
    if source is None:
        raise ConfigError(
            "task=check needs suite=NAME (a file in conf/checks/) or suite=PATH (a YAML file)"
        )
    suite = load_suite(str(source))  # validates every key before any compute (exit 2)
    out = C.output_dir(settings)
    quiet = runner.quiet
    reps = opts.reps or suite.reps
    if not quiet:
        print(
            f"palliasim: check suite '{suite.name}': {len(suite.checks)} checks on "
            f"{len(suite.used_scenarios())} scenario(s) x {reps} replications, "
            f"n_jobs={runner.n_jobs} -> {out}",
            file=sys.stderr,
        )
    try:
        result = run_suite(suite, out_dir=out, runner=runner, options=opts)
    except RunIncomplete as exc:
        print(f"palliasim: check suite '{suite.name}' could not run: {exc}", file=sys.stderr)
        return 1
    files = {
        **result.files,
        **write_report(
            result.out_dir, kind="check", perf=result.performance, results=result.results
        ),
    }
    print(result.markdown)
    written = "  ".join(p.name for p in files.values())
    print(f"Outputs in {out}: {written}")
    if not quiet:
        print(
            f"palliasim: suite '{suite.name}' {'passed' if result.passed else 'FAILED'} in "
            f"{result.seconds:.1f} s",
            file=sys.stderr,
        )
    return 0 if result.passed else 1
