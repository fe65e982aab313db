"""``Estimator.uses_rng()``: an estimator that says it draws no random numbers gives the same
rows with ``rng=None`` as with a Generator (the runner passes None to such fits). Every config in conf/estimators/ and the option
variants that switch randomness on (gcomp's bootstrap SE) are covered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from palliasim.estimators import build_estimator
from palliasim.sim import generate, load_scenario, rng_for

CONF = Path(__file__).resolve().parents[1] / "conf" / "estimators"
CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
VARIANTS = {"gcomp_bootstrap": ("gcomp", {"se": "bootstrap", "n_boot": 25})}


def _build(name: str):
    if name in VARIANTS:
        kind, over = VARIANTS[name]
        opts = yaml.safe_load((CONF / f"{kind}.yaml").read_text())
        opts.update(over)
    else:
        opts = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    kind = opts.pop("kind")
    return build_estimator(kind, name=name, **opts)


@pytest.fixture(scope="module")
def cohorts():
    out = []
    for preset, over, rep in (
        ("study", {}, 0),
        ("study", {"missingness.mechanism": "mnar", "cohort.n": 120}, 1),
        ("randomized", {}, 2),
    ):
        sc = load_scenario(preset, over)
        out.append(generate(sc, rng_for(11, sc.key, "data", rep)))
    return out


def _rows(est, cohort, rng):
    rows = est.fit(cohort, rng)
    return [
        (r.estimand, r.status, r.message, r.estimate, r.se, r.ci_low, r.ci_high, r.p_value)
        for r in rows
    ]


def _same(a, b) -> bool:
    def eq(x, y):
        if isinstance(x, float) and isinstance(y, float):
            return (x == y) or (np.isnan(x) and np.isnan(y))
        return x == y

    return len(a) == len(b) and all(all(eq(x, y) for x, y in zip(r, s)) for r, s in zip(a, b))


#: the configs that say they draw nothing (the others get their Generator, as before)
DETERMINISTIC = [n for n in CONFIGS + sorted(VARIANTS) if not _build(n).uses_rng()]


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_uses_rng_is_truthful(name, cohorts):
    est = _build(name)
    for cohort in cohorts:
        with_rng = _rows(est, cohort, np.random.default_rng(1))
        assert _same(with_rng, _rows(est, cohort, None)), name


def test_deterministic_builtins_are_marked():
    """The runner saves a Generator (SeedSequence + PCG64) per fit for these configs."""
    marked = {n for n in CONFIGS if not _build(n).uses_rng()}
    assert {"cox", "logistic", "lmm", "ancova_cc", "gcomp", "logrank"} <= marked
    assert _build("gcomp_bootstrap").uses_rng()
    assert _build("km_median").uses_rng() and _build("mi_ancova").uses_rng()
