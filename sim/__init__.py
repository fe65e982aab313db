"""palliasim.sim: the data-generating model (no Hydra, no estimators).

from palliasim.sim import load_scenario, generate, truth, rng_for
sc = load_scenario("study", {"cohort.n": 500})
cohort = generate(sc, rng_for(7, sc.key, "data", rep=0))
cohort.patients, cohort.visits           # tidy DataFrames (see sim/cohort.py)
truth(sc).to_frame()                      # true value of every estimand (sim/truth.py)
ESTIMANDS["response_logor"]               # what it is the truth of (sim/estimands.py)
"""

from palliasim.sim.cohort import Cohort, PotentialOutcomes
from palliasim.sim.errors import ConfigError
from palliasim.sim.estimands import ESTIMANDS, Estimand
from palliasim.sim.generate import generate, generate_with_potential
from palliasim.sim.scenario import PRESETS, Scenario, load_scenario
from palliasim.sim.seeding import rng_for, seed_sequence
from palliasim.sim.truth import ADJUSTMENT_SET, Truth, truth

__all__ = [
    "ADJUSTMENT_SET",
    "Cohort",
    "ConfigError",
    "ESTIMANDS",
    "Estimand",
    "PRESETS",
    "PotentialOutcomes",
    "Scenario",
    "Truth",
    "generate",
    "generate_with_potential",
    "load_scenario",
    "rng_for",
    "seed_sequence",
    "truth",
]
