"""Benchmark: memory of a big cohort and of a long run (issue 13: < 2 GiB; a flat working set).

Two measurements, each in a fresh child process (BLAS pinned to one thread), so the figures
are that process's own:

1. ``big``: generate one ``study`` cohort of ``--n`` patients (default 20,000) and run every
   estimator of the default job on it (conf/config.yaml's ``estimators``, their configured
   options and engines). Reports the peak RSS (``resource.getrusage``: the kernel's high-water
   mark of the whole process, numpy buffers and libraries included) after the imports, after
   generation and after each estimator, the peak of Python-tracked allocations of generation
   and of the worst estimator (``tracemalloc``, which numpy reports to; run separately, it slows
   the code), and each estimator's time. Passes when the peak RSS is below ``--limit-gib``.
2. ``long``: the runner in-process (``runner.backend=threading runner.n_jobs=1``) for
   ``--short`` and ``--long`` replications (default 100 and 1000) of the default job at n = 205,
   after a first run that computes the truths into a fresh on-disk cache (its peak is reported
   too); reports the peak and final RSS of each. The working set is flat when the long run's
   final RSS (resident memory at the end, ``/proc/self/statm``) is within ``--flat-mib`` of the
   short run's (chunks are streamed to disk; only the final results table grows with the
   replications). Final, not peak: a run's peak is set by one-off work at its start (scenario
   constants, truths read or solved), the same for 100 or 1,000 replications.

    python benchmarks/bench_memory.py [--n 20000] [--short 100] [--long 1000] [--trace-live]
                                      [--estimators cox,lmm ...] [--skip-long] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261129

BIG = r"""
import json, resource, sys, time, tracemalloc
import numpy as np
from threadpoolctl import threadpool_limits
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
import palliasim.estimators  # registers the kinds
from palliasim.estimators.base import build_estimator
from palliasim.sim import generate, load_scenario, rng_for

n, seed, only, traced = json.loads(sys.argv[1])
def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
with initialize_config_module(config_module="palliasim.conf", version_base="1.3"):
    cfg = OmegaConf.to_container(compose(config_name="config"), resolve=True)
specs = cfg["estimators"]
if only:
    specs = {k: v for k, v in specs.items() if k in only}
built = {}
for name, spec in specs.items():
    spec = dict(spec)
    kind = spec.pop("kind")
    spec["alpha"] = cfg.get("alpha", 0.05)
    built[name] = build_estimator(kind, name=name, **spec)
sc = load_scenario("study", {"cohort.n": n})
out = {"imports_mib": rss_mib(), "estimators": {}}
with threadpool_limits(1):
    from palliasim.sim.generate import constants
    t0 = time.perf_counter()
    constants(sc)  # the scenario constants, solved once per scenario on a 100,000-patient sample
    out["constants_s"] = time.perf_counter() - t0
    out["constants_mib"] = rss_mib()
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    cohort = generate(sc, rng_for(seed, sc.key, "data", 0))
    cohort.patients, cohort.visits  # the pandas tables too, as the estimators may build them
    out["generate_s"] = time.perf_counter() - t0
    if traced:
        out["generate_traced_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    out["generated_mib"] = rss_mib()
    for name, est in built.items():
        if traced:
            tracemalloc.reset_peak()
        t0 = time.perf_counter()
        rows = est.fit(cohort, rng_for(seed, sc.key, "estimator", 0, 1))
        rec = {"s": time.perf_counter() - t0, "peak_rss_mib": rss_mib(),
               "status": sorted({r.status for r in rows})}
        if traced:
            rec["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        out["estimators"][name] = rec
out["peak_rss_mib"] = rss_mib()
print("RESULT" + json.dumps(out))
"""

LONG = r"""
import json, resource, sys, tempfile
import palliasim as ps

reps, only, trace = json.loads(sys.argv[1])
over = [f"reps={reps}", "runner.backend=threading", "runner.n_jobs=1", "task.plots=false"]
if trace:  # live Python-tracked memory (numpy buffers included) at the end, results dropped
    import gc, tracemalloc
    import palliasim.experiments.api  # noqa: F401  (imported before tracing starts)
    tracemalloc.start()
if only:
    over.append("estimators=[" + ",".join(only) + "]")
def rss_mib(which="peak"):
    if which == "peak":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
start = rss_mib()
with tempfile.TemporaryDirectory() as tmp:
    res = ps.simulate(over, out_dir=tmp + "/run")
    rows = len(res.results)
final = rss_mib("now")
# where the growth is: the results table itself (its arrays plus each distinct object once:
# memory_usage(deep=True) counts a shared string once per row, 4x the truth here), and what
# the allocator gives back once asked (glibc's malloc_trim; Linux only)
df = res.results
seen, objs = set(), 0
for c in df.columns:
    if df[c].dtype == object:
        for v in df[c].to_numpy():
            if id(v) not in seen:
                seen.add(id(v))
                objs += sys.getsizeof(v)
table = (sum(df[c].to_numpy().nbytes for c in df.columns) + objs) / 2**20
trimmed = None
try:
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    trimmed = rss_mib("now")
except OSError:
    pass
live = None
if trace:
    del res, df
    gc.collect()
    live = tracemalloc.get_traced_memory()[0] / 2**20
print("RESULT" + json.dumps({"reps": reps, "rows": rows, "start_mib": start,
                             "peak_rss_mib": rss_mib(), "final_rss_mib": final,
                             "results_table_mib": table, "trimmed_rss_mib": trimmed,
                             "live_mib": live}))
"""


def child(code: str, payload, timeout: float, cache: str | None = None) -> dict:
    env = {
        **os.environ,
        **({"PALLIASIM_CACHE": cache} if cache else {}),
        "PYTHONPATH": str(ROOT),
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(payload)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="patients of the big cohort")
    ap.add_argument("--short", type=int, default=100, help="replications of the short run")
    ap.add_argument("--long", type=int, default=1000, help="replications of the long run")
    ap.add_argument("--estimators", nargs="*", default=None, help="subset of the default job")
    ap.add_argument("--limit-gib", type=float, default=2.0)
    ap.add_argument("--flat-mib", type=float, default=64.0)
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    ap.add_argument(
        "--trace-live",
        action="store_true",
        help="also rerun the short and long runs under tracemalloc: live memory at their end",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    out: dict = {}
    big = child(BIG, [args.n, SEED, args.estimators, False], 7200)
    out["big"] = big
    print(f"cohort of {args.n} patients, default job's estimators, one process (BLAS 1 thread)")
    print(f"  after imports      {big['imports_mib']:8.0f} MiB peak RSS")
    print(
        f"  scenario constants {big['constants_mib']:8.0f} MiB peak RSS "
        f"({big['constants_s']:.2f} s, a 100,000-patient solve, once per scenario)"
    )
    print(
        f"  after generation   {big['generated_mib']:8.0f} MiB peak RSS "
        f"({big['generate_s']:.2f} s, tables included)"
    )
    if not args.no_trace:
        traced = child(BIG, [args.n, SEED, args.estimators, True], 7200)
        out["traced"] = traced
        print(f"  generation traced  {traced['generate_traced_mib']:8.0f} MiB (tracemalloc peak)")
    print(f"  {'estimator':26s} {'peak RSS MiB':>12s} {'traced MiB':>10s} {'s':>7s}")
    for name, rec in big["estimators"].items():
        tr = out["traced"]["estimators"][name]["traced_peak_mib"] if "traced" in out else None
        trs = f"{tr:10.0f}" if tr is not None else f"{'':10s}"
        print(f"  {name:26s} {rec['peak_rss_mib']:12.0f} {trs} {rec['s']:7.2f}")
    ok = big["peak_rss_mib"] < args.limit_gib * 1024
    print(
        f"  peak RSS {big['peak_rss_mib']:.0f} MiB: "
        f"{'below' if ok else 'ABOVE'} {args.limit_gib:g} GiB"
    )
    if not args.skip_long:
        with tempfile.TemporaryDirectory() as cache:
            # the first run computes the truths (cached on disk, as in a real study); the short
            # and long runs then measure the replications alone
            truth = child(LONG, [1, args.estimators, False], 7200, cache)
            short = child(LONG, [args.short, args.estimators, False], 7200, cache)
            long = child(LONG, [args.long, args.estimators, False], 14400, cache)
            if args.trace_live:  # again under tracemalloc (slower): what is still alive
                live = [
                    child(LONG, [r, args.estimators, True], 14400, cache)["live_mib"]
                    for r in (args.short, args.long)
                ]
        out["truth"], out["short"], out["long"] = truth, short, long
        print("runner in-process (threading, 1 job), default job at n = 205")
        print(f"  the truths (first run, uncached): peak RSS {truth['peak_rss_mib']:7.0f} MiB")
        for r in (short, long):
            print(
                f"  reps={r['reps']:<6d} rows={r['rows']:<8d} peak RSS {r['peak_rss_mib']:7.0f} "
                f"MiB, final {r['final_rss_mib']:7.0f} MiB (start {r['start_mib']:.0f})"
            )
        growth = long["final_rss_mib"] - short["final_rss_mib"]
        flat = growth <= args.flat_mib
        print(
            f"  final RSS growth {args.short} -> {args.long} reps: {growth:+.0f} MiB "
            f"({'flat' if flat else 'NOT flat'}: limit {args.flat_mib:g} MiB)"
        )
        table = long["results_table_mib"] - short["results_table_mib"]
        line = f"  of which the results table (arrays + distinct objects) {table:+.0f} MiB"
        if long.get("trimmed_rss_mib") is not None and short.get("trimmed_rss_mib") is not None:
            kept = long["trimmed_rss_mib"] - short["trimmed_rss_mib"]
            line += (
                f"; after malloc_trim the growth is {kept:+.0f} MiB (the rest was freed memory "
                "the allocator had kept)"
            )
        print(line)
        if args.trace_live:
            print(
                f"  live memory at the end (tracemalloc, results dropped): {live[0]:.1f} MiB "
                f"after {args.short} reps, {live[1]:.1f} MiB after {args.long}"
            )
        ok = ok and flat
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
