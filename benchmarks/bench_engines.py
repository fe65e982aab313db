"""Benchmark: ``engine: reference`` vs ``engine: fast``, per estimator, per replication, end to end.

In one run, on ``study`` cohorts of n = 205 (about 950 visit rows), BLAS pinned to one thread:

1. per estimator (every conf/estimators/*.yaml whose kind has a fast engine, at its configured
   options): median ms per ``Estimator.fit`` for each engine over ``--reps`` repeats of
   ``--cohorts`` cohorts, and the ratio reference / fast. The cohorts' pandas tables are built
   beforehand (the reference engine reads them; in a replication that cost is paid once and
   shared, see 2). ``km_median`` includes its percentile bootstrap (``n_boot`` 200 resamples,
   numpy in both engines); its medians alone are line ``km_median (medians)``.
2. the core replication: the study's analyses ``lmm``, ``cox``, ``cox_adjusted``, ``logrank``,
   the Kaplan-Meier medians (``km_median`` without its bootstrap) and ``logistic_adjusted``, run
   in sequence on a fresh cohort object (so the reference engine pays for building the pandas
   tables, as in a real replication), median ms per replication per engine and the ratio; with
   both endpoints (PFS and OS, as configured) and with PFS only (one survival endpoint, as in the
   issue's R timing: one mixed model, two Cox models, one log-rank test, two KM medians, one
   logistic regression).
3. the default study job end to end: ``python -m experiments.cli quiet=true reps=100
   out_dir=<tmp> task.plots=false`` with the shipped configs (engine defaults: fast where it
   exists) and with every estimator overridden to ``engine=reference``; wall-clock seconds
   (the truth is cached on disk by a warm-up run first, so both runs only simulate and score).

    python benchmarks/bench_engines.py [--reps 3] [--cohorts 10] [--e2e-reps 100] [--no-e2e]
                                       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "estimators"
CORE = ("lmm", "cox", "cox_adjusted", "logrank", "km_median (medians)", "logistic_adjusted")
SEED = 20261129


# --------------------------------------------------------------------------- setup


def configs() -> dict[str, tuple[str, dict]]:
    """{config name: (kind, options without engine)} of the estimators that have a fast engine."""
    import palliasim.estimators  # noqa: F401  (registers the kinds)
    from palliasim.estimators.base import REGISTRY

    out = {}
    for path in sorted(CONF.glob("*.yaml")):
        opts = yaml.safe_load(path.read_text())
        kind = opts.pop("kind")
        opts.pop("engine", None)
        if "fast" in REGISTRY[kind].engines:
            out[path.stem] = (kind, opts)
    return out


def make_cohorts(k: int):
    from palliasim.sim import generate, load_scenario, rng_for

    sc = load_scenario("study", {"cohort.n": 205})
    return [generate(sc, rng_for(SEED, sc.key, "data", r)) for r in range(k)]


def fresh(c):
    """The same cohort as a new object (no cached pandas tables)."""
    from palliasim.sim.cohort import Cohort

    return Cohort(dict(c.arrays), dict(c.visit_arrays), dict(c._cats))


def build(name: str, kind: str, opts: dict, engine: str, **override):
    from palliasim.estimators import build_estimator

    return build_estimator(kind, name=name, engine=engine, **{**opts, **override})


class KMMedians:
    """The Kaplan-Meier medians and their CIs of ``km_median`` (both arms, each endpoint), without
    the bootstrap: the estimator's own data reading and median code for the given engine."""

    def __init__(self, endpoints, engine: str):
        from palliasim.estimators.survival import KMMedian

        self.est = KMMedian(endpoints=list(endpoints), engine=engine)

    def fit(self, cohort, rng=None):
        from palliasim.estimators.survival import _float_column

        est, out = self.est, []
        for ep in est.endpoints:
            if est.engine == "fast":
                t = _float_column(cohort, f"{ep}_months")
                e = _float_column(cohort, f"{ep}_event")
                g = _float_column(cohort, "group")
            else:
                df = cohort.patients
                t = df[f"{ep}_months"].to_numpy(dtype=float)
                e = df[f"{ep}_event"].to_numpy(dtype=float)
                g = df["group"].to_numpy(dtype=float)
            for a in (0, 1):
                out.append(est._median_ci(t[g == a], e[g == a]))
        return out


def _preload(cohort) -> None:
    """Import everything both engines use (one fit each), so every BLAS is loaded."""
    c = fresh(cohort)
    for name, (kind, opts) in configs().items():
        for engine in ("reference", "fast"):
            build(name, kind, opts, engine).fit(c, np.random.default_rng(0))
    for engine in ("reference", "fast"):
        KMMedians(("pfs",), engine).fit(c)


def _median_ms(fn, cohorts, reps: int, fresh_cohort: bool) -> float:
    times = []
    for _ in range(reps):
        for i, c in enumerate(cohorts):
            cc = fresh(c) if fresh_cohort else c
            rng = np.random.default_rng(i)
            t0 = time.perf_counter()
            fn(cc, rng)
            times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


# --------------------------------------------------------------------------- 1 and 2


def per_estimator(cohorts, reps: int) -> list[dict]:
    for c in cohorts:  # build the pandas tables once (shared by every estimator of a replication)
        c.patients, c.visits  # noqa: B018
    rows = []
    for name, (kind, opts) in configs().items():
        row = {"estimator": name}
        for engine in ("reference", "fast"):
            est = build(name, kind, opts, engine)
            est.fit(cohorts[0], np.random.default_rng(0))  # imports, caches
            row[engine] = _median_ms(est.fit, cohorts, reps, fresh_cohort=False)
        row["ratio"] = row["reference"] / row["fast"]
        rows.append(row)
    row = {"estimator": "km_median (medians)"}
    for engine in ("reference", "fast"):
        km = KMMedians(("pfs", "os"), engine)
        km.fit(cohorts[0])
        row[engine] = _median_ms(km.fit, cohorts, reps, fresh_cohort=False)
    row["ratio"] = row["reference"] / row["fast"]
    rows.append(row)
    return rows


def core_replication(cohorts, reps: int, endpoints) -> dict:
    cfg = configs()
    out = {"endpoints": list(endpoints)}
    for engine in ("reference", "fast"):
        ests = []
        for name in CORE:
            if name.startswith("km_median"):
                ests.append(KMMedians(endpoints, engine))
                continue
            kind, opts = cfg[name]
            extra = {"endpoints": list(endpoints)} if "endpoints" in opts else {}
            ests.append(build(name, kind, opts, engine, **extra))

        def replication(c, rng, ests=ests):
            for est in ests:
                est.fit(c, rng)

        replication(fresh(cohorts[0]), np.random.default_rng(0))
        out[engine] = _median_ms(replication, cohorts, reps, fresh_cohort=True)
    out["ratio"] = out["reference"] / out["fast"]
    return out


# --------------------------------------------------------------------------- 3


def _cli(out_dir: Path, reps: int, overrides: list[str], env) -> float:
    cmd = [
        sys.executable,
        "-m",
        "palliasim.experiments.cli",
        "quiet=true",
        f"reps={reps}",
        f"out_dir={out_dir}",
        "task.plots=false",
        f"hydra.run.dir={out_dir}_hydra",  # keep Hydra's log directory out of the repo
        *overrides,
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return dt


def end_to_end(reps: int) -> dict:
    import pandas as pd

    with open(ROOT / "conf" / "config.yaml") as fh:
        defaults = yaml.safe_load(fh)["defaults"]
    names = next(d["estimators"] for d in defaults if isinstance(d, dict) and "estimators" in d)
    fast_ones = configs()
    ref_overrides = [f"estimators.{n}.engine=reference" for n in names if n in fast_ones]
    env = dict(os.environ)
    tmp = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    try:
        _cli(tmp / "warmup", 2, [], env)  # truth cache, imports, page cache
        out = {
            "reps": reps,
            "command": f"python -m experiments.cli quiet=true reps={reps} out_dir=<tmp> "
            "task.plots=false",
        }
        for label, ov in (("fast", []), ("reference", ref_overrides)):
            d = tmp / label
            out[label] = _cli(d, reps, ov, env)
            res = pd.read_parquet(d / "results.parquet")
            out[f"{label}_engines"] = res.groupby("engine")["method"].nunique().to_dict()
        out["ratio"] = out["reference"] / out["fast"]
        out["reference_overrides"] = ref_overrides
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repeats of each cohort (default 3)")
    ap.add_argument("--cohorts", type=int, default=10, help="n = 205 study cohorts (default 10)")
    ap.add_argument("--e2e-reps", type=int, default=100, help="reps of the end-to-end job")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end job")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cohorts": args.cohorts,
        "reps": args.reps,
    }
    cohorts = make_cohorts(args.cohorts)
    _preload(cohorts[0])  # threadpoolctl only limits the BLAS libraries already loaded
    with threadpool_limits(limits=1):
        est_rows = per_estimator(cohorts, args.reps)
        core_both = core_replication(cohorts, args.reps, ("pfs", "os"))
        core_pfs = core_replication(cohorts, args.reps, ("pfs",))
    e2e = None if args.no_e2e else end_to_end(args.e2e_reps)

    print(
        f"\nreference vs fast engine, study cohorts n = 205, BLAS 1 thread; median ms per fit "
        f"over {args.reps} x {args.cohorts} fits"
    )
    print(f"{'estimator':<26}{'reference ms':>14}{'fast ms':>10}{'ratio':>9}")
    for r in est_rows:
        print(f"{r['estimator']:<26}{r['reference']:>14.2f}{r['fast']:>10.3f}{r['ratio']:>9.1f}")
    print(
        "\ncore replication (lmm, cox, cox_adjusted, logrank, KM medians, logistic_adjusted), "
        "fresh cohort object each time, ms per replication:"
    )
    for c in (core_both, core_pfs):
        eps = "+".join(c["endpoints"])
        print(
            f"  endpoints {eps:<8} reference {c['reference']:9.2f}   fast {c['fast']:7.3f}   "
            f"ratio {c['ratio']:6.1f}"
        )
    if e2e:
        print(f"\ndefault study job end to end ({e2e['command']}), wall-clock seconds:")
        print(f"  engine defaults (fast where it exists) {e2e['fast']:8.1f} s")
        print(f"  every estimator engine=reference       {e2e['reference']:8.1f} s")
        print(f"  ratio                                  {e2e['ratio']:8.1f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "info": info,
                    "estimators": est_rows,
                    "core": [core_both, core_pfs],
                    "end_to_end": e2e,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
