"""Benchmark: the study's six core analyses in R vs palliasim's fast engine, same cohorts, one run.

The core replication (PFS, as in issue 13): a random-intercept LMM of NRS by group x visit
(lme4::lmer, REML, default control | palliasim ``lmm``), an unadjusted and an adjusted Cox model
(survival::coxph, Efron | ``cox``, ``cox_adjusted`` with endpoints [pfs]), the log-rank test
(survdiff | ``logrank``), the Kaplan-Meier medians per arm (survfit + quantile | the fast
``km_median`` kernel, no bootstrap) and the logistic regression of response on group + the 8
adjustment covariates (glm | ``logistic_adjusted``). Cohorts: the committed fixtures
tests/fixtures/cohorts/ (two of n = 205, one of n = 1,000 with ties), read once (reading is not
timed on either side); palliasim gets them as array-backed Cohorts, as a simulated replication
does (a ``Cohort.from_frames`` cohort rebuilds its arrays from pandas on every access). Per
cohort: median ms per replication over ``--reps`` repeats, R (timed by ``Sys.time``, microsecond
resolution) and palliasim, and the ratio. BLAS is one thread on both sides (threadpoolctl;
Debian's R uses the reference BLAS). Without ``Rscript`` on PATH the R side is skipped (exit 0,
a message says so).

    python benchmarks/bench_r.py [--reps 50] [--rounds 3] [--breakdown] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from palliasim.estimators.base import build_estimator
from palliasim.estimators.fast import km_median
from palliasim.experiments.tasks.analyse import read_cohort
from palliasim.sim.cohort import Cohort

ROOT = Path(__file__).resolve().parents[1]
COHORTS = ROOT / "tests" / "fixtures" / "cohorts"
NAMES = ("study_n205", "randomized_n205", "study_n1000_ties")
ADJ = ("age", "male", "ecog", "visceral", "lesions_gt3", "charlson", "nrs0", "strong_opioid")

R_LOOP = r"""
suppressPackageStartupMessages({library(lme4); library(survival)})
args <- commandArgs(trailingOnly = TRUE)
reps <- as.integer(args[1])
adj <- "age + male + ecog + visceral + lesions_gt3 + charlson + nrs0 + strong_opioid"
f_cox <- as.formula(paste("Surv(pfs_months, pfs_event) ~ group +", adj))
f_glm <- as.formula(paste("response ~ group +", adj))
for (dir in args[-1]) {
  p <- read.csv(file.path(dir, "patients.csv"))
  v <- read.csv(file.path(dir, "visits.csv"))
  v <- v[!is.na(v$nrs), ]
  v$fweek <- factor(v$week)
  one <- function() {
    m <- lmer(nrs ~ group * fweek + (1 | id), data = v, REML = TRUE)
    c1 <- coxph(Surv(pfs_months, pfs_event) ~ group, data = p, ties = "efron")
    c2 <- coxph(f_cox, data = p, ties = "efron")
    lr <- survdiff(Surv(pfs_months, pfs_event) ~ group, data = p)
    km <- quantile(survfit(Surv(pfs_months, pfs_event) ~ group, data = p,
                           conf.type = "log-log"), probs = 0.5)
    g <- glm(f_glm, data = p, family = binomial)
    c(fixef(m)[2], coef(c1)[1], coef(c2)[1], lr$chisq, km$quantile[1], coef(g)[2])
  }
  one()  # warm-up
  ms <- numeric(reps)
  for (r in seq_len(reps)) {  # Sys.time: microseconds (proc.time's elapsed counts whole ms)
    t0 <- Sys.time()
    one()
    ms[r] <- 1000 * as.numeric(difftime(Sys.time(), t0, units = "secs"))
  }
  cat(sprintf("%s %.6f\n", basename(dir), median(ms)))
}
"""


def array_cohort(frames: Cohort) -> Cohort:
    """The same cohort backed by arrays (text columns as category codes), as sim.generate builds."""
    arrays, cats = {}, {}
    for name, df in (("patients", frames.patients), ("visits", frames.visits)):
        out = {}
        for c in df.columns:
            col = df[c]
            if col.dtype == object:
                codes, labels = pd.factorize(col, sort=True)
                out[c], cats[c] = codes, list(labels)
            else:
                out[c] = col.to_numpy()
        arrays[name] = out
    return Cohort(arrays["patients"], arrays["visits"], cats)


def core_estimators() -> list:
    """The five estimator objects of the core analyses, built once (as a chunk's worker does:
    construction validates the options and is not per replication)."""
    return [
        build_estimator("lmm"),
        build_estimator("cox", endpoints=["pfs"]),
        build_estimator("cox", endpoints=["pfs"], covariates=list(ADJ)),
        build_estimator("logrank", endpoints=["pfs"]),
        build_estimator("logistic_adjusted", covariates=list(ADJ)),
    ]


def palliasim_core(cohort, ests) -> list:
    """The six core analyses (PFS) by palliasim's default (fast) engine."""
    lmm, cox, cox_adj, logrank, logistic = ests
    rows = lmm.fit(cohort) + cox.fit(cohort) + cox_adj.fit(cohort) + logrank.fit(cohort)
    t = cohort.numeric_column("pfs_months")
    e = cohort.numeric_column("pfs_event")
    g = cohort.numeric_column("group")
    meds = [km_median(t[g == a], e[g == a]).median for a in (0, 1)]
    rows += logistic.fit(cohort)
    return rows + meds


def fresh(cohort: Cohort) -> Cohort:
    """A new Cohort object over the same arrays: per-cohort caches (the wide NRS table, shared
    designs) start cold, as in a new replication."""
    return Cohort(cohort.arrays, cohort.visit_arrays, cohort._cats)


def time_palliasim(cohort, reps: int) -> tuple[float, float]:
    """(median ms per replication, ms to build the estimators once)."""
    t0 = time.perf_counter()
    ests = core_estimators()
    build_ms = 1000 * (time.perf_counter() - t0)
    palliasim_core(fresh(cohort), ests)  # warm-up
    ms = []
    for _ in range(reps):
        c = fresh(cohort)
        t0 = time.perf_counter()
        palliasim_core(c, ests)
        ms.append(1000 * (time.perf_counter() - t0))
    return float(np.median(ms)), build_ms


PARTS = ("lmm", "cox", "cox_adjusted", "logrank", "km_medians", "logistic_adjusted")


def breakdown(cohort, reps: int) -> dict[str, float]:
    """Median ms of each core analysis, timed inside the replication sequence (each estimator
    runs between the others, as in a replication, not in a hot loop of its own)."""
    ests = core_estimators()
    lmm, cox, cox_adj, logrank, logistic = ests

    def km(c):
        t, e, g = (c.numeric_column(k) for k in ("pfs_months", "pfs_event", "group"))
        return [km_median(t[g == a], e[g == a]).median for a in (0, 1)]

    steps = dict(zip(PARTS, (lmm.fit, cox.fit, cox_adj.fit, logrank.fit, km, logistic.fit)))
    acc: dict[str, list] = {k: [] for k in PARTS}
    for r in range(reps + 1):
        c = fresh(cohort)
        for k, f in steps.items():
            t0 = time.perf_counter()
            f(c)
            if r:  # the first round warms up
                acc[k].append(1000 * (time.perf_counter() - t0))
    return {k: float(np.median(v)) for k, v in acc.items()}


def time_r(reps: int) -> dict[str, float] | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "core.R"
        script.write_text(R_LOOP)
        out = subprocess.run(
            [rscript, str(script), str(reps), *(str(COHORTS / n) for n in NAMES)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return {name: float(ms) for name, ms in (line.split() for line in out.splitlines())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50, help="repeats per cohort (median)")
    ap.add_argument(
        "--breakdown", action="store_true", help="also time each analysis (palliasim side)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate palliasim and R this many times (a shared machine's load drifts): the "
        "medians over rounds, and the median of the rounds' ratios",
    )
    args = ap.parse_args()
    mine, yours = [], []
    for _ in range(max(1, args.rounds)):
        with threadpool_limits(1):
            mine.append(
                {
                    n: time_palliasim(array_cohort(read_cohort(COHORTS / n)), args.reps)
                    for n in NAMES
                }
            )
        yours.append(time_r(args.reps))
    ours = {n: float(np.median([m[n][0] for m in mine])) for n in NAMES}
    theirs = (
        None if yours[0] is None else {n: float(np.median([y[n] for y in yours])) for n in NAMES}
    )
    if theirs is None:
        print("Rscript not found on PATH: the R comparator is skipped (palliasim side only).")
    ratios = {
        n: float(np.median([y[n] / m[n][0] for m, y in zip(mine, yours)])) if theirs else math.nan
        for n in NAMES
    }
    print(f"({len(mine)} round(s), R and palliasim alternating; medians over rounds)")
    print(f"{'cohort':<18} {'R ms':>9} {'palliasim ms':>13} {'R / palliasim':>14}")
    for n in NAMES:
        r = theirs[n] if theirs else float("nan")
        print(f"{n:<18} {r:9.2f} {ours[n]:13.2f} {ratios[n]:14.1f}")
    if theirs and len(mine) > 1:
        for n in NAMES:
            each = ", ".join(f"{y[n] / m[n][0]:.1f}" for m, y in zip(mine, yours))
            print(f"  {n}: R / palliasim per round {each}")
    if args.breakdown:
        print("\npalliasim, ms per analysis (median, timed within the replication sequence):")
        print(f"{'cohort':<18} " + " ".join(f"{k:>17}" for k in PARTS))
        with threadpool_limits(1):
            for n in NAMES:
                b = breakdown(array_cohort(read_cohort(COHORTS / n)), args.reps)
                print(f"{n:<18} " + " ".join(f"{b[k]:17.3f}" for k in PARTS))
    build = float(np.median([b for m in mine for _, b in m.values()]))
    print(
        f"(building the five estimator objects, once per chunk, not per replication: {build:.2f} ms)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "reps": args.reps,
                    "rounds": len(mine),
                    "r_ms": theirs,
                    "palliasim_ms": ours,
                    "r_over_palliasim": ratios,
                    "build_ms": build,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
