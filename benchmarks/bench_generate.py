"""Benchmark: cost of drawing one cohort (issue target: <= 2 ms for 205 patients).

    python benchmarks/bench_generate.py [--n 205] [--reps 200] [--repeats 7]

Reports the median over ``repeats`` runs of the mean time per cohort for
(1) ``generate`` (arrays: covariates, both arms' outcomes, missingness, the tidy columns),
(2) the same plus building the two pandas DataFrames, and, as the in-run reference,
(3) one unadjusted lifelines Cox fit on the same cohort (the cheapest analysis), so the ratio
says how cheap generation is next to analysis on this (shared, noisy) machine.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from palliasim.sim import generate, load_scenario, rng_for
from palliasim.sim.generate import constants


def _time(fn, reps, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for r in range(reps):
            fn(r)
        out.append((time.perf_counter() - t) / reps * 1e3)
    return float(np.median(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=205)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--scenario", default="study")
    a = ap.parse_args()
    sc = load_scenario(a.scenario, {"cohort.n": a.n})
    constants(sc)  # solve scenario constants once, outside the timing
    from lifelines import CoxPHFitter

    cohort = generate(sc, rng_for(1, sc.key, "data", 0))
    df = cohort.patients[["pfs_months", "pfs_event", "group"]]

    def cox(_):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CoxPHFitter().fit(df, "pfs_months", "pfs_event")

    with threadpool_limits(1):
        t_gen = _time(lambda r: generate(sc, rng_for(1, sc.key, "data", r)), a.reps, a.repeats)
        t_frames = _time(
            lambda r: (lambda c: (c.patients, c.visits))(
                generate(sc, rng_for(1, sc.key, "data", r))
            ),
            a.reps,
            a.repeats,
        )
        t_cox = _time(cox, max(a.reps // 4, 10), a.repeats)
    print(f"scenario={a.scenario} n={a.n}: median of {a.repeats} runs x {a.reps} cohorts")
    print(f"  generate (arrays)          {t_gen:8.3f} ms/cohort")
    print(f"  generate + DataFrames      {t_frames:8.3f} ms/cohort")
    print(
        f"  reference: 1 lifelines Cox {t_cox:8.3f} ms/fit   ratio generate/Cox = {t_gen / t_cox:.3f}"
    )


if __name__ == "__main__":
    main()
