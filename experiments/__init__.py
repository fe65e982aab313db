"""palliasim.experiments: wiring, parallel runs, storage, scoring, trial planning, CI checks, the CLI.

Only this package imports Hydra; ``palliasim.sim`` and ``palliasim.estimators`` stay plain Python.

    from palliasim.experiments.scoring.performance import summarise   # any long results table
"""
