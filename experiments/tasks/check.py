"""task=check: run a CI check suite and exit with its verdict.

    palliasim task=check suite=smoke                  # conf/checks/smoke.yaml
    palliasim task=check suite=ci/my_suite.yaml runner.n_jobs=4 out_dir=outputs/ci-check

Exit codes: 0 every check passed, 1 some check failed (or the replications could not be
completed), 2 invalid suite or settings (the message names the key; nothing is computed).
The markdown summary (failing checks first) goes to stdout; summary.md, checks.csv, junit.xml
and performance.csv to the output directory. The suite's own ``seed`` and ``reps`` are used
unless ``task.seed`` / ``task.reps`` are given (the top-level ``seed`` / ``reps`` are the
simulate task's). See experiments/checks.py and docs/ci.md.
"""

from __future__ import annotations

import sys

from palliasim.experiments import config as C
from palliasim.sim.errors import ConfigError

TASK_KEYS = ("name", "junit", "seed", "reps")


def _task_options(plain: dict) -> dict:
    task = dict(plain.get("task") or {})
    for k in task:
        if k not in TASK_KEYS:
            raise ConfigError(
                f"unknown config key 'task.{k}' for task=check; allowed keys: "
                f"{', '.join(TASK_KEYS[1:])}"
            )
    junit = task.get("junit", "junit.xml")
    if junit is not None and (not isinstance(junit, str) or not junit.strip()):
        raise ConfigError(
            f"invalid value {junit!r} for config key 'task.junit'; allowed: a file name "
            "(relative to the output directory) or null"
        )
    for k, lo in (("seed", 0), ("reps", 2)):
        v = task.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
            raise ConfigError(
                f"invalid value {v!r} for config key 'task.{k}'; allowed: null (the suite's) "
                f"or an integer >= {lo}"
            )
    return {"junit": junit, "seed": task.get("seed"), "reps": task.get("reps")}


def run(plain: dict) -> int:
    from palliasim.experiments.checks.suite import load_suite, run_suite
    from palliasim.experiments.engine.design import validate_runner
    from palliasim.experiments.engine.runner import RunIncomplete

    opts = _task_options(plain)
    source = plain.get("suite")
    if source is None or (isinstance(source, str) and not source.strip()):
        raise ConfigError(
            "task=check needs suite=NAME (a file in conf/checks/) or suite=PATH (a YAML file)"
        )
    suite = load_suite(str(source))  # validates every key before any compute (exit 2)
    runner = dict(plain.get("runner") or {})
    try:
        rcfg = validate_runner(runner)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    out = C.output_dir(plain)
    quiet = bool(plain.get("quiet"))
    reps = opts["reps"] or suite.reps
    if not quiet:
        print(
            f"palliasim: check suite '{suite.name}': {len(suite.checks)} checks on "
            f"{len(suite.used_scenarios())} scenario(s) x {reps} replications, "
            f"n_jobs={rcfg['n_jobs']} -> {out}",
            file=sys.stderr,
        )
    try:
        result = run_suite(
            suite,
            out_dir=out,
            n_jobs=rcfg["n_jobs"],
            backend=rcfg["backend"],
            chunk_size=rcfg["chunk_size"],
            dask_address=rcfg["dask_address"],
            seed=opts["seed"],
            reps=opts["reps"],
            junit=opts["junit"],
            quiet=quiet,
        )
    except RunIncomplete as exc:
        print(f"palliasim: check suite '{suite.name}' could not run: {exc}", file=sys.stderr)
        return 1
    print(result.markdown)
    written = "  ".join(p.name for p in result.files.values())
    print(f"Outputs in {out}: {written}")
    if not quiet:
        print(
            f"palliasim: suite '{suite.name}' {'passed' if result.passed else 'FAILED'} in "
            f"{result.seconds:.1f} s",
            file=sys.stderr,
        )
    return 0 if result.passed else 1
