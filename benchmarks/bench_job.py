"""Benchmark: the default job (``palliasim``: task=simulate, the ``study`` scenario, every
default estimator) with reps=1000 and runner.n_jobs=2 end to end, this checkout against
``--baseline REV`` in the same run (alternating), median of ``--repeats``: wall time, peak RSS
of the process tree, ratio. The truth is cached first by one untimed run of 2 reps (``--cold``:
every run computes it). Machinery: benchmarks/end_to_end.py.

    python benchmarks/bench_job.py [--baseline main] [--repeats 3] [--cold] [OVERRIDE ...]
"""

from __future__ import annotations

from end_to_end import main

OVERRIDES = ["reps=1000", "runner.n_jobs=2", "quiet=true"]
WARM = ["reps=2", "runner.n_jobs=1", "quiet=true"]

if __name__ == "__main__":
    main(__doc__, OVERRIDES, WARM)
