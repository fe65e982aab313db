"""Benchmark: ``palliasim task=power`` with its default grid (conf/task/power.yaml) end to end,
this checkout against ``--baseline REV`` in the same run (alternating), median of ``--repeats``:
wall time, peak RSS of the process tree, ratio. The truths are cached first by one untimed
small power run (``--cold``: every run computes them). Machinery: benchmarks/end_to_end.py.

    python benchmarks/bench_power.py [--baseline main] [--repeats 3] [--cold] [OVERRIDE ...]
"""

from __future__ import annotations

from end_to_end import main

#: the timed command (default grid; quiet: the terminal summary only)
OVERRIDES = ["task=power", "quiet=true"]
#: the untimed warm-up: the same scenarios (same truths), tiny everything else
WARM = [
    "task=power",
    "quiet=true",
    "task.reps_start=2",
    "task.reps_step=2",
    "task.reps_max=2",
    "task.chunk_size=2",
    "task.analytic_n=2000",
    "task.projection_n=2000",
    "task.n_boot=10",
    "task.plots=false",
    "task.n_grid=[100]",
    "task.n_grid_by_endpoint.pfs=[100]",
    "task.n_grid_by_endpoint.os=[100]",
]

if __name__ == "__main__":
    main(__doc__, OVERRIDES, WARM)
