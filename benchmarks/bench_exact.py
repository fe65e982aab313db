"""Benchmark: the exact estimators (issue 12 item 1) against their previous version, in one run.

The previous version is a git revision (``--baseline``, default ``main``) exported with
``git archive`` to a temporary folder; each version runs in its own subprocess (PYTHONPATH = its
root, BLAS pinned to one thread) on the same ``study`` cohorts (n = 205, the same seed: the
data-generating model is the same in both), timing ``Estimator.fit`` per engine for the changed
estimators at their shipped configs: ``cox``, ``cox_adjusted``, ``iptw_cox`` (Newton to the
optimum, R's sandwich), ``lmm`` REML and ML (exact profiled optimum vs BFGS replay / statsmodels
BFGS), ``km_median`` (R's median rule; ``n_boot`` 200), ``logistic_adjusted`` (Newton to 1e-10).
The machine is shared, so the versions alternate (``--rounds`` each) and the figure is the
minimum ms per fit over all repeats (the least-disturbed timing); prints new / old per engine.

    python benchmarks/bench_exact.py [--baseline main] [--cohorts 8] [--reps 3] [--rounds 2]
                                     [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261129
CASES = {  # label: (config file, option overrides)
    "cox": ("cox", {}),
    "cox_adjusted": ("cox_adjusted", {}),
    "iptw_cox": ("iptw_cox", {}),
    "lmm (REML)": ("lmm", {}),
    "lmm (ML)": ("lmm", {"reml": False}),
    "km_median": ("km_median", {}),
    "logistic_adjusted": ("logistic_adjusted", {}),
}

WORKER = r"""
import json, sys, time
import numpy as np, yaml
from threadpoolctl import threadpool_limits
from palliasim.estimators import build_estimator
from palliasim.sim import generate, load_scenario, rng_for
from palliasim.sim.cohort import Cohort

cases, n_cohorts, reps, seed, conf = json.loads(sys.argv[1])
sc = load_scenario("study", {"cohort.n": 205})
cohorts = [generate(sc, rng_for(seed, sc.key, "data", r)) for r in range(n_cohorts)]
out = {}
with threadpool_limits(1):
    for label, (name, over) in cases.items():
        opts = yaml.safe_load(open(f"{conf}/{name}.yaml"))
        kind = opts.pop("kind")
        opts.pop("engine", None)
        for engine in ("fast", "reference"):
            est = build_estimator(kind, name=name, engine=engine, **{**opts, **over})
            est.fit(cohorts[0], np.random.default_rng(0))  # warm-up (imports, BLAS)
            times = []
            for _ in range(reps):
                for c in cohorts:
                    c2 = Cohort(dict(c.arrays), dict(c.visit_arrays), dict(c._cats))
                    c2.patients, c2.visits  # the pandas tables are shared work of a replication
                    t0 = time.perf_counter()
                    est.fit(c2, np.random.default_rng(1))
                    times.append(time.perf_counter() - t0)
            out[f"{label}|{engine}"] = 1e3 * float(np.min(times))
print(json.dumps(out))
"""


def run_version(root: Path, args) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PALLIASIM_CACHE": str(Path(tempfile.gettempdir()) / "bench-exact-cache"),
    }
    payload = json.dumps([CASES, args.cohorts, args.reps, SEED, str(root / "conf" / "estimators")])
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, payload],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker failed for {root}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def export(rev: str, dest: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "sim", "estimators", "conf", "palliasim"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="main", help="git revision of the previous version")
    ap.add_argument("--cohorts", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    old, new = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        base = export(args.baseline, Path(tmp))
        for _ in range(args.rounds):  # alternate, keep the minimum of each
            for root, acc in ((base, old), (ROOT, new)):
                for k, v in run_version(root, args).items():
                    acc[k] = min(v, acc.get(k, np.inf))
    rows = []
    print(
        f"min ms per fit, study cohorts n = 205 ({args.cohorts} cohorts x {args.reps} x "
        f"{args.rounds} rounds)"
    )
    print(f"{'estimator':20s} {'engine':10s} {'old':>9s} {'new':>9s} {'new/old':>8s}")
    for label in CASES:
        for engine in ("fast", "reference"):
            o, n = old[f"{label}|{engine}"], new[f"{label}|{engine}"]
            rows.append({"estimator": label, "engine": engine, "old_ms": o, "new_ms": n})
            print(f"{label:20s} {engine:10s} {o:9.2f} {n:9.2f} {n / o:8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline": args.baseline, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
