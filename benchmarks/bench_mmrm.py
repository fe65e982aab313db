"""Benchmark: ``mmrm`` and ``clda`` per fit on a cohort of 205 (fast vs reference engine).

Draws ``--cohorts`` cohorts of the ``study`` scenario (n = 205), fits each estimator with each
df option and engine, and reports the median ms per fit over ``--reps`` repeats (whole
``Estimator.fit``: data reading, design, fit, rows), the kernel alone on prebuilt arrays, and
the random-intercept ``lmm`` (fast engine) as a yardstick from the same run. BLAS is pinned to
one thread while timing.

    python benchmarks/bench_mmrm.py [--reps 20] [--cohorts 5] [--ref-reps 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from threadpoolctl import threadpool_limits

from palliasim.estimators import build_estimator
from palliasim.estimators.fast.mmrm import fit_unstructured, pattern_data
from palliasim.estimators.mmrm import mmrm_design, usable_patients
from palliasim.sim import generate, load_scenario, rng_for

SEED = 20261201


def _median_ms(fn, items, reps: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(reps):
        for x in items:
            t0 = clock()
            fn(x)
            times.append(clock() - t0)
    return 1000.0 * float(np.median(times))


def _cpu_ms(fn, items, reps: int) -> float:
    """Mean CPU ms per call (process time: less sensitive to a busy shared machine)."""
    t0 = time.process_time()
    for _ in range(reps):
        for x in items:
            fn(x)
    return 1000.0 * (time.process_time() - t0) / (reps * len(items))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20, help="repeats of the fast engine")
    ap.add_argument("--ref-reps", type=int, default=2, help="repeats of the reference engine")
    ap.add_argument("--cohorts", type=int, default=5)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    sc = load_scenario("study", {"cohort.n": 205})
    cohorts = [generate(sc, rng_for(SEED, sc.key, "data", r)) for r in range(a.cohorts)]
    out: dict = {"python": platform.python_version(), "n": 205, "cohorts": a.cohorts}
    with threadpool_limits(1):
        for kind in ("mmrm", "clda"):
            for df in ("satterthwaite", "kenward-roger"):
                for engine, reps in (("fast", a.reps), ("reference", a.ref_reps)):
                    est = build_estimator(kind, engine=engine, df=df)
                    est.fit(cohorts[0])  # warm-up (imports, BLAS)
                    ms = _median_ms(est.fit, cohorts, reps)
                    cpu = _cpu_ms(est.fit, cohorts, reps)
                    out[f"{kind} {df} {engine}"] = ms
                    out[f"{kind} {df} {engine} cpu"] = cpu
                    print(
                        f"{kind:5s} {df:14s} {engine:9s} {ms:9.2f} ms per fit (wall median), "
                        f"{cpu:9.2f} ms CPU",
                        flush=True,
                    )
                r = out[f"{kind} {df} reference"] / out[f"{kind} {df} fast"]
                print(f"{'':5s} {df:14s} reference / fast = {r:.0f}x")
        designs = []
        for c in cohorts:
            wide, Z, zn, usable, _ = usable_patients(c, [], True, need_nrs0=True)
            model, _ = mmrm_design(wide, Z, zn, usable)
            designs.append((model.Y, model.X))

        def kernel(yx):
            return fit_unstructured(pattern_data(*yx))

        ms, cpu = _median_ms(kernel, designs, a.reps), _cpu_ms(kernel, designs, a.reps)
        out["mmrm kernel only (pattern_data + fit_unstructured, REML)"] = ms
        print(f"mmrm kernel only (prebuilt arrays)      {ms:9.2f} ms per fit, {cpu:9.2f} ms CPU")
        lmm = build_estimator("lmm")
        lmm.fit(cohorts[0])
        ms, cpu = _median_ms(lmm.fit, cohorts, a.reps), _cpu_ms(lmm.fit, cohorts, a.reps)
        out["lmm fast (random intercept, yardstick)"] = ms
        print(f"lmm fast (random intercept, yardstick)  {ms:9.2f} ms per fit, {cpu:9.2f} ms CPU")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
