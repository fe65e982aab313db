"""palliasim.experiments.scoring: performance measures with Monte Carlo SE, reports, plots."""
