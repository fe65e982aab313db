"""palliasim.experiments.engine: the design grid, the parallel resumable runner, run storage."""
