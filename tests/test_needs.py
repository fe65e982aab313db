"""Generation levels (``sim.generate.LEVELS``) and ``Estimator.needs()``.

A cohort generated at level ``os`` / ``pfs`` has exactly the columns of ``level_columns`` and
they equal the whole cohort's from the same generator state (the draws come in level order);
an estimator that declares ``needs()`` gives the same rows on the cohort of its level as on the
whole cohort; the runner generates the smallest level its chunk needs (same result rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from palliasim.estimators import build_estimator
from palliasim.estimators.base import Estimator
from palliasim.experiments.engine.worker import chunk_level
from palliasim.sim import generate, load_scenario, rng_for
from palliasim.sim.generate import LEVELS, level_columns, level_for

CONF = Path(__file__).resolve().parents[1] / "conf" / "estimators"
CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
SCENARIOS = (
    ("study", {}),
    (
        "study",
        {
            "missingness.covariates.mechanism": "mar",
            "missingness.covariates.columns": ["ecog", "crp_w0", "visceral"],
            "cohort.n": 150,
        },
    ),
    ("randomized", {"cohort.n": 400}),
    ("null", {}),
)


def _build(name: str, **over):
    opts = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    opts.update(over)
    return build_estimator(opts.pop("kind"), name=name, **opts)


def _same_arrays(a, b) -> bool:
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@pytest.mark.parametrize("preset,over", SCENARIOS)
@pytest.mark.parametrize("level", LEVELS[:-1])
def test_level_columns_equal_the_whole_cohort(preset, over, level):
    sc = load_scenario(preset, over)
    whole = generate(sc, rng_for(3, sc.key, "data", 1))
    part = generate(sc, rng_for(3, sc.key, "data", 1), level=level)
    assert part.level == level and part.n == whole.n
    assert set(part.arrays) == level_columns(level)
    for col, v in part.arrays.items():
        assert _same_arrays(np.asarray(v), np.asarray(whole.arrays[col])), col
    # the pandas view agrees too (categoricals included)
    assert part.patients.equals(whole.patients[list(part.patients.columns)])


def test_partial_cohort_says_what_is_missing():
    sc = load_scenario("study")
    part = generate(sc, rng_for(3, sc.key, "data", 0), level="os")
    with pytest.raises(KeyError, match=r"'pfs_months' is not in this cohort.*level 'os'"):
        part.arrays["pfs_months"]
    with pytest.raises(KeyError, match="visits table"):
        _ = part.visits
    with pytest.raises(ValueError, match="level must be one of os, pfs, all"):
        generate(sc, rng_for(3, sc.key, "data", 0), level="pain")


def test_level_for():
    assert level_for(None) == "all"
    assert level_for({"group", "os_months", "os_event", "age", "ecog"}) == "os"
    assert level_for({"group", "os_months", "crp_w0"}) == "all"  # baseline markers: level all
    assert level_for({"group", "pfs_months", "pfs_event"}) == "pfs"
    assert level_for({"group", "os_months", "nrs12"}) == "all"
    assert level_for({"no_such_column"}) == "all"  # the fit then says it is unknown, as before
    assert level_columns("all") is None


#: every config that declares its columns, and option variants that change them
DECLARING = [n for n in CONFIGS if _build(n).needs() is not None]
VARIANTS = [
    ("cox", {"endpoints": ["os"]}),
    ("cox", {"endpoints": ["pfs"], "covariates": ["age", "primary", "ecog"]}),
    ("cox", {"covariates": ["qol_global_w0"]}),  # a column only the whole cohort has
    ("logrank", {"endpoints": ["os"]}),
    ("km_median", {"endpoints": ["os"], "n_boot": 20}),
    ("iptw_cox", {"endpoints": ["os"]}),
    ("rmst", {"endpoints": ["os"]}),
]


def _rows(est, cohort, seed):
    rng = np.random.default_rng(seed) if est.uses_rng() else None
    return [
        (r.estimand, r.status, r.message, r.estimate, r.se, r.ci_low, r.ci_high, r.p_value)
        for r in est.fit(cohort, rng)
    ]


def _same_rows(a, b) -> bool:
    def eq(x, y):
        if isinstance(x, float) and isinstance(y, float):
            return x == y or (np.isnan(x) and np.isnan(y))
        return x == y

    return len(a) == len(b) and all(all(map(eq, r, s)) for r, s in zip(a, b))


def test_survival_configs_declare_their_columns():
    assert {"cox", "cox_adjusted", "logrank", "km_median", "iptw_cox", "rmst"} <= set(DECLARING)
    assert _build("cox", endpoints=["os"]).needs() == {"group", "os_months", "os_event"}
    assert level_for(_build("logrank", endpoints=["os"]).needs()) == "os"
    assert level_for(_build("logrank").needs()) == "pfs"
    assert _build("lmm").needs() is None  # visits: the whole cohort


@pytest.mark.parametrize("name,over", [(n, {}) for n in DECLARING] + VARIANTS, ids=lambda x: str(x))
def test_needs_is_truthful(name, over):
    est = _build(name, **over)
    level = level_for(est.needs())
    for k, (preset, sc_over) in enumerate(SCENARIOS):
        sc = load_scenario(preset, sc_over)
        whole = generate(sc, rng_for(5, sc.key, "data", k))
        part = generate(sc, rng_for(5, sc.key, "data", k), level=level)
        assert _same_rows(_rows(est, whole, k), _rows(est, part, k)), (name, preset)


class _Whole(Estimator):
    kind = "whole_probe"
    estimands = ("nrs_w12_diff",)


def test_chunk_level():
    os_only = [
        ("cox", _build("cox", endpoints=["os"])),
        ("lr", _build("logrank", endpoints=["os"])),
    ]
    assert chunk_level(os_only) == "os"
    assert chunk_level(os_only + [("km", _build("km_median"))]) == "pfs"
    assert chunk_level(os_only + [("w", _Whole())]) == "all"  # needs() None: everything
