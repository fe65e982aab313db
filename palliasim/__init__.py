"""palliasim: evaluate statistical methods on synthetic cohorts mimicking a palliative
radiotherapy study of painful bone metastases.

    import palliasim as ps
    sc = ps.load_scenario("study", {"cohort.n": 500})
    cohort = ps.generate(sc, ps.rng_for(7, sc.key, "data", rep=0))
    ps.truth(sc).to_frame()                                  # the true value of every estimand
    rows = ps.build_estimator("cox", name="cox").fit(cohort, ps.rng_for(7, sc.key, "estimator"))
    ps.summarise(results)                                    # bias, coverage... with Monte Carlo SE
    res = ps.simulate(["reps=200", "estimators=[cox,logistic]"], out_dir="outputs/run1")
    res.performance                                          # a whole simulation study, as the CLI

The subpackages live at the top of the repository (``sim/``, ``estimators/``, ``experiments/``,
``conf/``) and install as ``palliasim.sim``, ``palliasim.estimators``, ``palliasim.experiments``
and ``palliasim.conf`` (``pyproject.toml``'s ``package-dir``), so a user's own ``conf/`` or
``experiments/`` folder never shadows them.
"""

from __future__ import annotations

import os as _os

# In a source checkout run from the repository root, this folder is found before the installed
# (editable) package, and the subpackages are its siblings: add the root to the search path of
# the package so ``palliasim.sim`` resolves to ``<root>/sim`` there too. In a wheel the
# subpackages sit inside this folder and nothing is added.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "sim")) and _os.path.isfile(
    _os.path.join(_root, "sim", "__init__.py")
):
    __path__.append(_root)  # noqa: F821 (the package's own search path)

from palliasim.estimators import Estimate, Estimator, build_estimator  # noqa: E402
from palliasim.estimators.base import StatisticalTrouble, wald_row  # noqa: E402
from palliasim.sim import generate, load_scenario, rng_for, truth  # noqa: E402

#: names imported on first use (PEP 562): the experiment API pulls in Hydra and joblib, which a
#: worker process (it imports this package to reach the estimators) never needs
_LAZY = {
    "SimulationResult": "palliasim.experiments.api",
    "simulate": "palliasim.experiments.api",
    "summarise": "palliasim.experiments.scoring.performance",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'palliasim' has no attribute {name!r}")


__all__ = [
    "Estimate",
    "Estimator",
    "SimulationResult",
    "StatisticalTrouble",
    "build_estimator",
    "generate",
    "load_scenario",
    "rng_for",
    "simulate",
    "summarise",
    "truth",
    "wald_row",
]
