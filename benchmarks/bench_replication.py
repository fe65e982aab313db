"""Benchmark: one replication of the default job, estimator by estimator, against a previous
version of the code measured in the same run.

For each code version (this checkout, and optionally ``--baseline REV``, checked out into a
temporary git worktree), a child process with BLAS pinned to one thread:

1. draws ``--cohorts`` cohorts of the ``study`` scenario (n = ``--n``) and times generation;
2. times ``Estimator.fit`` of every estimator of the default job (the ``estimators`` defaults of
   conf/config.yaml, at their configured options and engines), median over ``--repeats``
   repeats of each cohort, on a fresh cohort object per repeat (so every estimator pays for the
   pandas tables it builds, as in a replication);
3. times one whole replication: generation + every estimator, in sequence, on a fresh cohort.

The parent prints, per estimator, ms per fit for each version and the ratio (baseline / this),
and the whole replication. Ratios from the same run are what to quote: the machine is shared.
With ``--rounds K`` the two versions are measured alternately K times (this, baseline, this,
...) and each figure is the smallest of the K medians: the least disturbed measurement, and
both versions see the same drift of the machine's load.

    python benchmarks/bench_replication.py [--baseline ae828a0] [--n 205] [--cohorts 3]
                                           [--repeats 5] [--json out.json]
                                           [--clock wall|cpu] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261129

CHILD = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
import palliasim.estimators  # registers the kinds
from palliasim.estimators.base import build_estimator
from palliasim.sim import generate, load_scenario, rng_for

n, n_cohorts, repeats, seed, only, clock = json.loads(sys.argv[1])
tick = time.process_time if clock == "cpu" else time.perf_counter
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
times = {name: [] for name in built}
gen, whole, status = [], [], {}
with threadpool_limits(1):
    # warm-up (scenario constants are solved and cached on first use; imports, caches)
    warm = generate(sc, rng_for(seed, sc.key, "data", 10**6))
    for est in built.values():
        est.fit(warm, rng_for(seed, sc.key, "estimator", 10**6, 1))
    for c in range(n_cohorts):
        for r in range(repeats):
            t0 = tick()
            generate(sc, rng_for(seed, sc.key, "data", c))
            gen.append(tick() - t0)
        for name, est in built.items():
            for r in range(repeats):
                cohort = generate(sc, rng_for(seed, sc.key, "data", c))
                rng = rng_for(seed, sc.key, "estimator", c, 1)
                t0 = tick()
                rows = est.fit(cohort, rng)
                times[name].append(tick() - t0)
                status[name] = sorted({row.status for row in rows})
        for r in range(repeats):
            t0 = tick()
            cohort = generate(sc, rng_for(seed, sc.key, "data", c))
            for name, est in built.items():  # as the runner's worker does
                uses = getattr(est, "uses_rng", lambda: True)()
                est.fit(cohort, rng_for(seed, sc.key, "estimator", c, 1) if uses else None)
            whole.append(tick() - t0)
out = {
    "fit_ms": {k: 1e3 * float(np.median(v)) for k, v in times.items()},
    "generate_ms": 1e3 * float(np.median(gen)),
    "replication_ms": 1e3 * float(np.median(whole)),
    "status": status,
}
print("RESULT" + json.dumps(out))
"""


def measure(code_root: Path, args) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(code_root),
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    payload = json.dumps([args.n, args.cohorts, args.repeats, SEED, args.only, args.clock])
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, payload],
        cwd=code_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed in {code_root}:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def _smallest(runs: list[dict]) -> dict:
    """Per figure, the smallest over the rounds (statuses from the first round)."""
    out = dict(runs[0])
    out["fit_ms"] = {k: min(r["fit_ms"][k] for r in runs) for k in runs[0]["fit_ms"]}
    for key in ("generate_ms", "replication_ms"):
        out[key] = min(r[key] for r in runs)
    out["rounds"] = len(runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="git revision to measure in the same run")
    ap.add_argument("--n", type=int, default=205)
    ap.add_argument("--cohorts", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=None, help="estimator names to time")
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: the child's process CPU time (robust on a loaded machine)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the versions alternately this many times; report the smallest median",
    )
    args = ap.parse_args()

    rounds = {"this": [], "baseline": []}
    tmp = None
    if args.baseline:
        tmp = Path(tempfile.mkdtemp(prefix="palliasim-baseline-"))
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp / "wt"), args.baseline],
            check=True,
            capture_output=True,
        )
    try:
        for _ in range(max(1, args.rounds)):
            rounds["this"].append(measure(ROOT, args))
            if tmp is not None:
                rounds["baseline"].append(measure(tmp / "wt", args))
    finally:
        if tmp is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "wt")],
                capture_output=True,
            )
            shutil.rmtree(tmp, ignore_errors=True)
    results = {k: _smallest(v) for k, v in rounds.items() if v}
    this = results["this"]
    base = results.get("baseline")
    names = sorted(set(this["fit_ms"]) | set(base["fit_ms"] if base else ()))
    head = f"{'estimator':28s} {'this ms':>9s}" + (
        f" {'baseline ms':>12s} {'ratio':>7s}" if base else ""
    )
    print(
        f"per replication, study n={args.n}, median of {args.repeats} repeats x "
        f"{args.cohorts} cohorts (smallest of {this['rounds']} round(s)), BLAS 1 thread, "
        f"{args.clock} clock "
        f"({time.strftime('%Y-%m-%d %H:%M')})"
    )
    print(head)
    rows = [(k, this["fit_ms"].get(k), base["fit_ms"].get(k) if base else None) for k in names]
    rows += [
        ("(generation)", this["generate_ms"], base["generate_ms"] if base else None),
        ("(whole replication)", this["replication_ms"], base["replication_ms"] if base else None),
    ]
    for k, a, b in rows:
        line = f"{k:28s} {a if a is not None else float('nan'):9.2f}"
        if base:
            ratio = (b / a) if (a and b) else float("nan")
            line += f" {b if b is not None else float('nan'):12.2f} {ratio:7.2f}x"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
