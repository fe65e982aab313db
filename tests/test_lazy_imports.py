"""Start-up cost without losing behaviour: a worker imports the estimators without lifelines,
statsmodels, scipy.stats or Hydra; the package's lazy names still resolve; the libraries' own
exceptions are still turned into status rows once the library is loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from palliasim.estimators.base import FAILED, Estimator, statistical_exceptions

HEAVY = ("lifelines", "statsmodels", "scipy.stats", "hydra", "matplotlib")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_worker_import_leaves_the_heavy_libraries_out():
    mods = _modules_after("import palliasim.experiments.engine.worker")
    assert not [m for m in HEAVY if m in mods]


def test_lazy_package_names_resolve():
    mods = _modules_after(
        "import palliasim as ps\n"
        "assert callable(ps.simulate) and callable(ps.summarise)\n"
        "from palliasim import SimulationResult\n"
        "assert SimulationResult.__name__ == 'SimulationResult'"
    )
    assert "palliasim.experiments.api" in mods
    import palliasim

    try:
        palliasim.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown attribute must raise AttributeError")


@dataclass
class _Raises(Estimator):
    """Raises the exception it is given (a stand-in for a library failing inside a fit)."""

    estimands = ("nrs_diff_w12",)
    exc: type = RuntimeError

    def _fit(self, cohort, rng):
        raise self.exc("library trouble")


def test_library_exceptions_become_status_rows_once_loaded():
    from lifelines.exceptions import ConvergenceError
    from statsmodels.tools.sm_exceptions import PerfectSeparationError

    caught = statistical_exceptions()
    assert ConvergenceError in caught and PerfectSeparationError in caught
    assert np.linalg.LinAlgError in caught
    for exc in (ConvergenceError, PerfectSeparationError, np.linalg.LinAlgError):
        rows = _Raises(name="x", exc=exc).fit(None, None)
        assert [r.status for r in rows] == [FAILED]
        assert rows[0].message == f"{exc.__name__}: library trouble"
