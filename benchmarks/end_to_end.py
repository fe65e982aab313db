"""Shared machinery of the end-to-end benchmarks (bench_power.py, bench_job.py): one
``python -m palliasim ...`` command timed in a subprocess for this checkout and, with
``--baseline REV``, for a temporary git worktree of REV, the versions alternating run by run;
wall time, CPU time (user + system of the run and its workers: less sensitive to a loaded
machine than wall time) and peak RSS (the sum over the process tree, sampled every 0.1 s) per run, medians over ``--repeats`` and the ratio baseline / this.

Each version gets its own truth cache (``PALLIASIM_CACHE``), warmed by one untimed run of
``--warm`` overrides before the timed runs (truths are cached across runs by design; the
timings are those of a user's second run). ``--cold`` skips the warm-up and gives every timed
run an empty cache instead. Every timed run writes into a fresh ``out_dir``. BLAS is pinned
to one thread. The machine may be shared: quote ratios from one run, not absolute times from
different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and all its descendants (0 once it is gone)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is normally present
        return 0
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_once(code_root: Path, overrides: list[str], cache: Path, out_dir: Path) -> dict:
    """One timed ``python -m palliasim overrides out_dir=...`` in ``code_root``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(code_root),
        "PALLIASIM_CACHE": str(cache),
        "MPLBACKEND": "Agg",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "palliasim", *overrides, f"out_dir={out_dir}"]
    log = out_dir.with_suffix(".log")
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=code_root, env=env, stdout=fh, stderr=subprocess.STDOUT)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.1)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(
            f"benchmark run failed (exit {proc.returncode}) in {code_root}: {' '.join(cmd)}\n"
            + log.read_text()[-3000:]
        )
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak / 1e6}


def main(doc: str, overrides: list[str], warm: list[str]) -> None:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--baseline", help="git revision measured in the same run, alternating")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="empty truth cache for every run")
    ap.add_argument("--json", type=Path)
    ap.add_argument("extra", nargs="*", help="more overrides for the timed runs")
    args = ap.parse_args()
    overrides = [*overrides, *args.extra]
    tmp = Path(tempfile.mkdtemp(prefix="palliasim-bench-"))
    versions = {"this": ROOT}
    try:
        if args.baseline:
            wt = tmp / "baseline"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), args.baseline],
                check=True,
                capture_output=True,
            )
            versions["baseline"] = wt
        caches = {v: tmp / f"cache-{v}" for v in versions}
        if not args.cold:
            for v, root in versions.items():
                print(f"warm-up ({v}): truths into its cache ...", file=sys.stderr, flush=True)
                run_once(root, warm, caches[v], tmp / f"warm-{v}")
        runs: dict[str, list[dict]] = {v: [] for v in versions}
        for i in range(args.repeats):
            for v, root in versions.items():
                cache = tmp / f"cache-{v}-cold{i}" if args.cold else caches[v]
                r = run_once(root, overrides, cache, tmp / f"run-{v}-{i}")
                runs[v].append(r)
                print(
                    f"run {i + 1}/{args.repeats} {v:8s} {r['wall_s']:8.1f} s wall "
                    f"{r['cpu_s']:8.1f} s CPU  "
                    f"peak RSS {r['peak_rss_mb']:8.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if "baseline" in versions:
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(ROOT),
                    "worktree",
                    "remove",
                    "--force",
                    str(versions["baseline"]),
                ],
                capture_output=True,
            )
        shutil.rmtree(tmp, ignore_errors=True)
    med = {
        v: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s", "peak_rss_mb")}
        for v, rs in runs.items()
    }
    print(
        f"palliasim {' '.join(overrides)}: median of {args.repeats} run(s)"
        f"{' (cold truth cache)' if args.cold else ''} ({time.strftime('%Y-%m-%d %H:%M')})"
    )
    print(f"{'version':10s} {'wall s':>9s} {'CPU s':>9s} {'peak RSS MB':>12s}")
    for v, m in med.items():
        print(f"{v:10s} {m['wall_s']:9.1f} {m['cpu_s']:9.1f} {m['peak_rss_mb']:12.0f}")
    if "baseline" in med:
        b, t = med["baseline"], med["this"]
        print(
            f"ratio baseline / this: wall {b['wall_s'] / t['wall_s']:.2f}x, "
            f"CPU {b['cpu_s'] / t['cpu_s']:.2f}x, "
            f"peak RSS {b['peak_rss_mb'] / max(t['peak_rss_mb'], 1e-9):.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": med}, indent=1))
