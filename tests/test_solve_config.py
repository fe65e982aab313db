"""`solve:` entries of a config: validated first, solved by bisection, cached on disk."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from palliasim.sim import ConfigError, load_scenario
from palliasim.sim.calibrate import apply_solves, marginal_measures

calibrate = importlib.import_module("palliasim.sim.calibrate")


@pytest.fixture
def sc(tmp_path, monkeypatch):
    monkeypatch.setenv("PALLIASIM_CACHE", str(tmp_path / "cache"))
    return load_scenario("randomized", {"missingness.mechanism": "none"})


@pytest.mark.parametrize(
    "entry, key",
    [
        (
            {"key": "survival.os.log_hr", "measure": "hr", "target": 0.7, "bracket": [-1, 0]},
            "solve[0].measure",
        ),
        (
            {
                "key": "survival.os.log_hr",
                "measure": "marginal_hr_os",
                "target": 0.7,
                "bracket": [0, -1],
            },
            "solve[0].bracket",
        ),
        (
            {
                "key": "survival.os.loghr",
                "measure": "marginal_hr_os",
                "target": 0.7,
                "bracket": [-1, 0],
            },
            "survival.os.loghr",
        ),
        (
            {"key": "survival.os.log_hr", "measure": "marginal_hr_os", "bracket": [-1, 0]},
            "solve[0].target",
        ),
        (
            {
                "key": "survival.os.log_hr",
                "measure": "marginal_hr_os",
                "target": 0.7,
                "bracket": [-1, 0],
                "tol": 1,
            },
            "solve[0].tol",
        ),
    ],
)
def test_invalid_entries_name_the_key(sc, monkeypatch, entry, key):
    monkeypatch.setattr(calibrate, "solve_parameter", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        apply_solves(sc, [entry])


def test_solved_value_hits_target_and_is_cached(sc, monkeypatch):
    entry = {
        "key": "survival.os.log_hr",
        "measure": "marginal_hr_os",
        "target": 0.8,
        "bracket": [-1.0, 0.0],
        "n": 20000,
    }
    solved = apply_solves(sc, [entry])
    beta = solved.get("survival.os.log_hr")
    assert -1.0 < beta < 0.0
    # the marginal HR on the solver's own sample is on target (common random numbers)
    po = calibrate._po_sample(solved, 20000, 1, key=sc.key)[1]
    assert marginal_measures()["marginal_hr_os"](po) == pytest.approx(0.8, abs=2e-3)
    # conditional HR is further from 1 than the marginal one (non-collapsibility, U and covariates)
    assert np.exp(beta) < 0.8
    monkeypatch.setattr(calibrate, "solve_parameter", lambda *a, **k: pytest.fail("not cached"))
    assert apply_solves(sc, [entry]).key == solved.key
