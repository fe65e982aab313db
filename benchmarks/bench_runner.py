"""Benchmark of the runner: a small design end-to-end, n_jobs 1 vs 2 (median of 3 runs).

    python benchmarks/bench_runner.py                      # defaults below
    python benchmarks/bench_runner.py --reps 48 --jobs 1 2 4 --backend loky

Each timed run starts from an empty output directory (generation, every estimator, chunk
files, truth join, results.parquet and manifest included). The first run of a worker count also
pays the process-pool start-up (loky reuses its workers afterwards); the median of the repeats
is reported, with the slowest and fastest. Estimators: the cheap real ones when they are
registered, otherwise a toy difference in means defined here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KINDS = ("ancova_cc", "cox", "logistic", "logrank")


def _toy_kind() -> str:
    import numpy as np

    from palliasim.estimators.base import REGISTRY, Estimator, register, wald_row

    if "bench_mean_diff" in REGISTRY:
        return "bench_mean_diff"

    @register("bench_mean_diff")
    @dataclass
    class BenchMeanDiff(Estimator):
        estimands = ("nrs_diff_w12",)

        def _fit(self, cohort, rng):
            p = cohort.patients
            y, g = p["nrs12"].to_numpy(float), p["group"].to_numpy()
            a, b = y[(g == 1) & ~np.isnan(y)], y[(g == 0) & ~np.isnan(y)]
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            return [
                wald_row(
                    self.name, "nrs_diff_w12", a.mean() - b.mean(), se, self.alpha, len(a) + len(b)
                )
            ]

    return "bench_mean_diff"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="study")
    ap.add_argument("--n", type=int, nargs="+", default=[100, 205], help="cohort.n levels")
    ap.add_argument("--reps", type=int, default=32)
    ap.add_argument("--chunk-size", type=int, default=4)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--backend", default="loky", choices=["loky", "threading", "dask"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", nargs="+", default=list(DEFAULT_KINDS))
    args = ap.parse_args(argv)

    import palliasim.estimators  # noqa: F401  (registers the families)
    from palliasim.estimators.base import REGISTRY
    from palliasim.experiments.api import runner_settings
    from palliasim.experiments.engine.design import expand_design
    from palliasim.experiments.engine.runner import run_experiment

    kinds = [k for k in args.kinds if k in REGISTRY]
    if not kinds:
        kinds = [_toy_kind()]
    specs = {k: {"kind": k} for k in kinds}
    points = expand_design(args.scenario, {}, {"cohort.n": args.n})
    total = len(points) * args.reps
    print(
        f"design: {len(points)} point(s) ({args.scenario}, cohort.n={args.n}) x {args.reps} "
        f"reps = {total} replications; estimators: {', '.join(kinds)}; "
        f"chunk_size={args.chunk_size}; backend={args.backend}"
    )
    # warm the truth cache and imports so the first timed run is not penalised for them
    with tempfile.TemporaryDirectory() as tmp:
        run_experiment(
            points, specs, runner_settings(reps=1, seed=0, n_jobs=1, quiet=True), Path(tmp) / "w"
        )

    medians = {}
    for n_jobs in args.jobs:
        times = []
        for i in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                runner = runner_settings(
                    reps=args.reps,
                    seed=12345,
                    n_jobs=n_jobs,
                    backend=args.backend,
                    chunk_size=args.chunk_size,
                    quiet=True,
                )
                df = run_experiment(points, specs, runner, Path(tmp) / "run")
                times.append(time.perf_counter() - t0)
            if i == 0:
                fit_s = df.groupby("method")["seconds"].sum() / total
                per = ", ".join(f"{m} {1000 * s:.1f} ms" for m, s in fit_s.items())
                print(f"  fit time per replication: {per}")
        med = statistics.median(times)
        medians[n_jobs] = med
        print(
            f"n_jobs={n_jobs}: median {med:.2f} s ({total / med:.1f} reps/s); "
            f"min {min(times):.2f} s, max {max(times):.2f} s over {args.repeats} runs"
        )
    if 1 in medians and len(medians) > 1:
        for n_jobs, med in medians.items():
            if n_jobs != 1:
                print(f"speed-up n_jobs={n_jobs} vs 1: {medians[1] / med:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
