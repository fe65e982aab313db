"""palliasim.experiments.planning: trial planning (analytic formulas, simulated power, sample size)."""
