"""Adverse events (sim/adverse.py): on large cohorts every Table 2 type, any AE, grade 3-4 and
discontinuation occur at their configured per-arm rates (within 4 Monte Carlo SEs), in the
observed groups and in both arms' potential outcomes, for several copula correlations.
"""

from __future__ import annotations

import numpy as np
import pytest

from palliasim.sim import generate_with_potential, load_scenario, rng_for

N = 40_000
SEED = 20261129
Z = 4.0


def _targets(sc) -> dict[str, tuple[float, float]]:
    ae = sc.get("adverse_events")
    out = {f"ae_{k}": tuple(v) for k, v in ae["types"].items()}
    out.update({f"ae_{k}": tuple(ae[k]) for k in ("any", "grade34", "discontinuation")})
    return out


def _check_rate(x: np.ndarray, p: float, what: str) -> None:
    se = np.sqrt(p * (1 - p) / x.size)
    assert abs(x.mean() - p) <= Z * se, (what, x.mean(), p, se)


@pytest.fixture(
    scope="module",
    params=[("study", 0.45), ("randomized", 0.2), ("study", 0.8)],
    ids=["study-r0.45", "randomized-r0.2", "study-r0.8"],
)
def draw(request):
    preset, r = request.param
    sc = load_scenario(preset, {"adverse_events.correlation": r, "missingness.mechanism": "none"})
    cohort, po = generate_with_potential(sc, rng_for(SEED, sc.key, "data", 0), N)
    return sc, cohort.patients, po


def test_observed_rates_per_group(draw):
    sc, P, _ = draw
    g = P["group"].to_numpy()
    targets = _targets(sc)
    assert len(targets) == 10
    for col, pair in targets.items():
        for a in (0, 1):
            _check_rate(P[col].to_numpy()[g == a], pair[a], f"{col} group {a}")


def test_potential_outcome_rates_per_arm(draw):
    sc, _, po = draw
    for col, pair in _targets(sc).items():
        for a in (0, 1):
            _check_rate(po["ae"][a][col], pair[a], f"{col} arm {a}")


def test_any_ae_covers_every_event(draw):
    sc, P, _ = draw
    types = [f"ae_{k}" for k in sc.get("adverse_events.types")]
    listed = P[types].to_numpy().any(axis=1)
    anyae = P["ae_any"].to_numpy().astype(bool)
    assert (anyae | ~listed).all()  # a listed event implies any AE
    assert (anyae & ~listed).any()  # the unlisted 'other' type exists (any > listed alone)
    for col in ("ae_grade34", "ae_discontinuation"):
        assert (P[col].to_numpy() <= P["ae_any"].to_numpy()).all()


def test_types_positively_correlated(draw):
    """Gaussian copula with r > 0: P(nausea and constipation) exceeds the product of the rates
    (checked in arm 0 of the potential outcomes, delta-method SE)."""
    _, _, po = draw
    a, b = po["ae"][0]["ae_nausea"].astype(bool), po["ae"][0]["ae_constipation"].astype(bool)
    joint = np.mean(a & b)
    excess = joint - a.mean() * b.mean()
    se = np.sqrt(joint * (1 - joint) / a.size)
    assert excess > Z * se, (joint, a.mean(), b.mean())


def test_common_latent_draws_across_arms(draw):
    """Both arms come from the same latent draws: where the control rate is higher, control
    events are a superset of the observation-arm events (monotone coupling)."""
    sc, _, po = draw
    for name, (p0, p1) in sc.get("adverse_events.types").items():
        e0, e1 = po["ae"][0][f"ae_{name}"], po["ae"][1][f"ae_{name}"]
        if p0 >= p1:
            assert (e0 >= e1).all(), name
        else:
            assert (e1 >= e0).all(), name
