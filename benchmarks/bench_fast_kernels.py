"""Benchmark: fast exact kernels (estimators.fast) vs statsmodels / lifelines.

Builds one synthetic trial data set (205 patients x 5 visits with some visits
missing, survival times rounded to days so there are ties, a binary response)
and times, per kernel, the reference call as a user would write it and the
fast kernel on prebuilt numpy arrays.  Reports the median over ``--reps``
repeats (ms per fit), the ratio, and the total per simulation replication
(LMM + Cox unadjusted + Cox adjusted + log-rank + 2 KM medians + adjusted
logistic).  BLAS is pinned to one thread while timing.

    python benchmarks/bench_fast_kernels.py --reps 50 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test as ll_logrank
from lifelines.utils import median_survival_times
from statsmodels.regression.mixed_linear_model import MixedLM
from threadpoolctl import threadpool_limits

from palliasim.estimators.fast.cox import cox_fit
from palliasim.estimators.fast.km import km_median
from palliasim.estimators.fast.lmm import lmm_random_intercept
from palliasim.estimators.fast.logistic import logistic_fit
from palliasim.estimators.fast.logrank import logrank_test

N_PATIENTS = 205
N_VISITS = 5


def make_data(seed: int = 20240601):
    rng = np.random.default_rng(seed)
    n = N_PATIENTS
    arm = rng.integers(0, 2, n)
    age = rng.normal(65, 11, n).round()
    sex = rng.integers(0, 2, n)
    ps = rng.integers(0, 3, n)  # performance status 0-2
    site_spine = rng.integers(0, 2, n)
    mult_mets = rng.integers(0, 2, n)
    bpain = rng.integers(3, 11, n).astype(float)  # baseline pain 3-10
    opioid = rng.integers(0, 2, n)
    base = pd.DataFrame(
        dict(
            id=np.arange(n),
            arm=arm,
            age=age,
            sex=sex,
            ps=ps,
            site_spine=site_spine,
            mult_mets=mult_mets,
            bpain=bpain,
            opioid=opioid,
        )
    )
    # survival (days, ties) with administrative + random censoring
    lp = -0.3 * arm + 0.02 * (age - 65) + 0.4 * ps + 0.3 * mult_mets
    t = np.ceil(rng.exponential(200.0 * np.exp(-lp)))
    c = np.ceil(np.minimum(rng.uniform(100, 730, n), 730))
    base["time"] = np.minimum(t, c)
    base["event"] = (t <= c).astype(int)
    # binary response at week 4
    eta = -0.5 + 0.6 * arm - 0.01 * (age - 65) - 0.3 * ps + 0.1 * (bpain - 6)
    base["resp"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    # long format pain scores, ~12% of visits missing (visit 0 always present)
    b = rng.normal(0, 1.2, n)
    rows = []
    for i in range(n):
        for v in range(N_VISITS):
            if v > 0 and rng.uniform() < 0.12 + 0.04 * v:
                continue
            y = (
                bpain[i]
                - 0.8 * v * (0.6 + 0.4 * arm[i])
                + 0.3 * ps[i]
                + 0.01 * (age[i] - 65)
                + b[i]
                + rng.normal(0, 1.0)
            )
            rows.append((i, v, y))
    long = pd.DataFrame(rows, columns=["id", "visit", "pain"]).merge(base, on="id")
    return base, long


def build_arrays(base: pd.DataFrame, long: pd.DataFrame):
    """Design matrices for the fast kernels (done once per simulated data set)."""
    v = long["visit"].to_numpy()
    Xl = np.column_stack(
        [
            np.ones(len(long)),
            long["arm"].to_numpy(float),
            *[(v == k).astype(float) for k in range(1, N_VISITS)],
            long["age"].to_numpy(float),
            long["sex"].to_numpy(float),
            long["ps"].to_numpy(float),
            long["bpain"].to_numpy(float),
        ]
    )
    covs = ["arm", "age", "sex", "ps", "site_spine", "mult_mets", "bpain", "opioid"]
    Xc = base[covs].to_numpy(float)
    Xlog = np.column_stack([np.ones(len(base)), Xc])
    return dict(
        y_long=long["pain"].to_numpy(float),
        X_long=Xl,
        g_long=long["id"].to_numpy(),
        time=base["time"].to_numpy(float),
        event=base["event"].to_numpy(),
        arm=base["arm"].to_numpy(),
        X_cox_adj=Xc,
        X_cox_unadj=Xc[:, :1],
        y_bin=base["resp"].to_numpy(float),
        X_logit=Xlog,
    )


LMM_FORMULA = "pain ~ arm + C(visit) + age + sex + ps + bpain"
COX_COVS = ["arm", "age", "sex", "ps", "site_spine", "mult_mets", "bpain", "opioid"]
LOGIT_FORMULA = "resp ~ arm + age + sex + ps + site_spine + mult_mets + bpain + opioid"


def reference_calls(base, long, a):
    arm = a["arm"]
    t, e = a["time"], a["event"]
    m0, m1 = arm == 0, arm == 1

    def lmm_formula():
        return MixedLM.from_formula(LMM_FORMULA, groups="id", data=long).fit(reml=True)

    def lmm_arrays():
        return MixedLM(a["y_long"], a["X_long"], groups=a["g_long"]).fit(reml=True)

    def cox_unadj():
        return CoxPHFitter().fit(base[["time", "event", "arm"]], "time", "event")

    def cox_adj():
        return CoxPHFitter().fit(base[["time", "event", *COX_COVS]], "time", "event")

    def logrank():
        return ll_logrank(t[m0], t[m1], e[m0], e[m1])

    def km2():
        out = []
        for m in (m0, m1):
            k = KaplanMeierFitter().fit(t[m], e[m])
            ci = median_survival_times(k.confidence_interval_)
            out.append((k.median_survival_time_, ci.iloc[0, 0], ci.iloc[0, 1]))
        return out

    def logit_formula():
        return smf.logit(LOGIT_FORMULA, data=base).fit(disp=0)

    def logit_arrays():
        return sm.Logit(a["y_bin"], a["X_logit"]).fit(disp=0)

    return dict(
        lmm=lmm_formula,
        lmm_arrays=lmm_arrays,
        cox_unadj=cox_unadj,
        cox_adj=cox_adj,
        logrank=logrank,
        km_medians_x2=km2,
        logistic=logit_formula,
        logistic_arrays=logit_arrays,
    )


def fast_calls(a):
    arm = a["arm"]
    t, e = a["time"], a["event"]
    m0, m1 = arm == 0, arm == 1

    def lmm():
        return lmm_random_intercept(a["y_long"], a["X_long"], a["g_long"], reml=True)

    def cox_unadj():
        return cox_fit(t, e, a["X_cox_unadj"])

    def cox_adj():
        return cox_fit(t, e, a["X_cox_adj"])

    def logrank():
        return logrank_test(t, e, arm)

    def km2():
        return km_median(t[m0], e[m0]), km_median(t[m1], e[m1])

    def logit():
        return logistic_fit(a["y_bin"], a["X_logit"])

    return dict(
        lmm=lmm,
        lmm_arrays=lmm,
        cox_unadj=cox_unadj,
        cox_adj=cox_adj,
        logrank=logrank,
        km_medians_x2=km2,
        logistic=logit,
        logistic_arrays=logit,
    )


def _timed(fn, reps: int, inner: int):
    """Median wall-clock and CPU (process) time per call, in ms.

    CPU time is reported too because on a shared machine the wall clock also
    counts time spent descheduled; on an idle core the two agree.
    """
    wall = np.empty(reps)
    cpu = np.empty(reps)
    for i in range(reps):
        c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        wall[i] = (time.perf_counter_ns() - t0) / inner
        cpu[i] = (time.process_time_ns() - c0) / inner
    return float(np.median(wall)) / 1e6, float(np.median(cpu)) / 1e6


def time_reference_ms(fn, reps: int, warmup: int = 3):
    for _ in range(warmup):
        fn()
    return _timed(fn, reps, 1)


def time_fast_ms(fn, reps: int, inner: int = 20):
    """Fast kernels take ~10-500 us: time batches of ``inner`` calls."""
    for _ in range(5):
        fn()
    return _timed(fn, reps, inner)


def check_agreement(ref, fast):
    """Quick sanity check that the timed calls agree (full checks: tests/)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {}
        r, f = ref["lmm_arrays"](), fast["lmm"]()
        out["lmm_fe_maxrel"] = float(np.max(np.abs(f.fe_params / r.fe_params - 1)))
        out["lmm_llf_diff(fast-ref)"] = float(f.llf - r.llf)
        r, f = ref["cox_adj"](), fast["cox_adj"]()
        out["cox_adj_maxrel_vs_lifelines_default"] = float(
            np.max(np.abs(f.params / r.params_.values - 1))
        )
        r, f = ref["logrank"](), fast["logrank"]()
        out["logrank_stat_rel"] = float(abs(f.test_statistic / r.test_statistic - 1))
        r, f = ref["km_medians_x2"](), fast["km_medians_x2"]()
        out["km_medians_equal"] = bool(
            all(np.array_equal(rr, (ff.median, ff.ci_lower, ff.ci_upper)) for rr, ff in zip(r, f))
        )
        r, f = ref["logistic_arrays"](), fast["logistic"]()
        out["logit_maxrel"] = float(np.max(np.abs(f.params / r.params - 1)))
    return out


REPLICATION = ["lmm", "cox_unadj", "cox_adj", "logrank", "km_medians_x2", "logistic"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--inner", type=int, default=20, help="fast calls per timed batch")
    ap.add_argument("--ref-reps", type=int, default=None, help="repeats for reference calls")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--json", type=str, default=None, help="write results as JSON here")
    args = ap.parse_args(argv)
    ref_reps = args.ref_reps or args.reps

    base, long = make_data(args.seed)
    t0 = time.perf_counter_ns()
    a = build_arrays(base, long)
    build_ms = (time.perf_counter_ns() - t0) / 1e6
    ref = reference_calls(base, long, a)
    fast = fast_calls(a)

    rows = {}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agree = check_agreement(ref, fast)
        for name in ref:
            r_wall, r_cpu = time_reference_ms(ref[name], ref_reps)
            f_wall, f_cpu = time_fast_ms(fast[name], args.reps, args.inner)
            rows[name] = dict(
                reference_ms=r_wall,
                fast_ms=f_wall,
                ratio=r_wall / f_wall,
                reference_cpu_ms=r_cpu,
                fast_cpu_ms=f_cpu,
            )

        def replication():
            for k in REPLICATION:
                fast[k]()

        rep_wall, rep_cpu = time_fast_ms(replication, args.reps, max(1, args.inner // 4))

    tot = {
        key: sum(rows[k][key] for k in REPLICATION)
        for key in ("reference_ms", "fast_ms", "reference_cpu_ms", "fast_cpu_ms")
    }
    print(
        f"data: {N_PATIENTS} patients, {len(long)} visit rows, "
        f"{int(a['event'].sum())} events, {len(np.unique(a['time']))} distinct times; "
        f"BLAS pinned to 1 thread; median of {args.reps} repeats "
        f"(fast: batches of {args.inner} calls)"
    )
    hdr = f"{'kernel':<18}{'reference ms':>13}{'fast ms':>10}{'ratio':>8}{'| cpu: ref ms':>15}{'fast ms':>10}"
    print(hdr)
    print("-" * len(hdr))
    for k, v in rows.items():
        print(
            f"{k:<18}{v['reference_ms']:>13.3f}{v['fast_ms']:>10.4f}{v['ratio']:>8.0f}"
            f"{v['reference_cpu_ms']:>15.3f}{v['fast_cpu_ms']:>10.4f}"
        )
    print("-" * len(hdr))
    print(
        f"{'TOTAL/replication':<18}{tot['reference_ms']:>13.3f}{tot['fast_ms']:>10.4f}"
        f"{tot['reference_ms'] / tot['fast_ms']:>8.0f}"
        f"{tot['reference_cpu_ms']:>15.3f}{tot['fast_cpu_ms']:>10.4f}"
    )
    print(f"{'  back-to-back':<18}{'':>13}{rep_wall:>10.4f}{'':>8}{'':>15}{rep_cpu:>10.4f}")
    print(
        "  replication = " + " + ".join(REPLICATION) + " (reference LMM and logistic via formulas)"
    )
    print(f"  building the numpy design arrays from the DataFrames once: {build_ms:.3f} ms")
    print(
        "agreement: "
        + ", ".join(
            f"{k}={v:.2e}" if isinstance(v, float) else f"{k}={v}" for k, v in agree.items()
        )
    )
    if args.json:
        out = dict(
            rows=rows,
            totals=tot,
            replication_back_to_back_ms=dict(wall=rep_wall, cpu=rep_cpu),
            build_arrays_ms=build_ms,
            agreement=agree,
            n_rows_long=len(long),
            reps=args.reps,
            python=platform.python_version(),
            numpy=np.__version__,
        )
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
