"""palliasim.experiments: wiring, parallel runs, storage, scoring, power, CI checks, the CLI.

Only this package (and the CLI) imports Hydra; ``sim`` and ``estimators`` stay plain Python.

    from experiments import summarise        # score any long results table (rsimsum-style)
"""

from experiments.performance import compare_methods, reps_needed, summarise

__all__ = ["compare_methods", "reps_needed", "summarise"]
