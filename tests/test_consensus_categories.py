"""The international consensus pain-response categories (Chow et al. 2012) exactly as the study
states them (sim/pain.py consensus_category): a table of edge cases, and a property test against
a second, independent formulation written here patient by patient with exact rational
arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palliasim.sim.pain import CATEGORIES, consensus_category

C, P, I, G = "complete", "partial", "indeterminate", "progression"  # noqa: E741

# (nrs0, nrs12, omed0, omed12, expected, why)
TABLE = [
    (8, 0, 60.0, 60.0, C, "NRS 0, dose unchanged"),
    (8, 0, 60.0, 45.0, C, "NRS 0, dose reduced"),
    (8, 0, 60.0, 60.1, I, "NRS 0 with an OMED rise is not complete (nor partial)"),
    (8, 0, 0.0, 15.0, I, "NRS 0, a new opioid: not complete"),
    (8, 6, 60.0, 60.0, P, "NRS down 2, dose unchanged"),
    (8, 7, 60.0, 60.0, I, "NRS down 1 only"),
    (8, 6, 60.0, 60.1, I, "NRS down 2 with a (small) OMED rise"),
    (8, 6, 60.0, 75.0, I, "a 2-point drop with a 25% OMED rise is indeterminate"),
    (8, 7, 60.0, 75.0, I, "a 1-point drop with a 25% OMED rise: pain not stable, not higher"),
    (8, 8, 60.0, 75.0, G, "OMED +25% exactly (tie counts), NRS unchanged"),
    (8, 9, 60.0, 75.0, G, "OMED +25%, NRS 1 above baseline"),
    (8, 10, 60.0, 75.0, I, "OMED +25% with NRS 2 above: neither route (OMED not stable)"),
    (8, 8, 60.0, 74.9, I, "OMED +24.8%: not >= 25%"),
    (8, 8, 60.0, 45.0, P, "OMED -25% exactly (tie counts), NRS unchanged"),
    (8, 7, 60.0, 45.0, P, "OMED -25%, NRS down 1"),
    (8, 9, 60.0, 45.0, I, "OMED -25% with an NRS increase"),
    (8, 8, 60.0, 45.1, I, "OMED -24.8%: not a 25% reduction"),
    (6, 8, 60.0, 60.0, G, "NRS up 2 with an unchanged dose"),
    (6, 8, 60.0, 50.0, G, "NRS up 2, dose down 16.7% (stable: not reduced by 25%)"),
    (6, 8, 60.0, 45.0, I, "NRS up 2, dose down 25%: not stable"),
    (6, 8, 60.0, 61.0, I, "NRS up 2, dose up 1.7%: not stable (increased)"),
    (6, 7, 60.0, 60.0, I, "NRS up 1, dose unchanged"),
    (6, 6, 60.0, 60.0, I, "nothing changed"),
    (6, 6, 0.0, 0.0, I, "no baseline opioid, none at week 12, NRS unchanged"),
    (6, 4, 0.0, 0.0, P, "no baseline opioid, NRS down 2"),
    (6, 6, 0.0, 15.0, G, "no baseline opioid: any opioid start is a >= 25% increase"),
    (6, 7, 0.0, 15.0, G, "no baseline opioid, start, NRS 1 above"),
    (6, 5, 0.0, 15.0, I, "no baseline opioid, start, NRS down 1"),
    (6, 8, 0.0, 0.0, G, "no baseline opioid, NRS up 2, still none (stable)"),
    (4, 0, 0.0, 0.0, C, "no opioid at all, NRS 0"),
]


@pytest.mark.parametrize("nrs0, nrs12, omed0, omed12, expected, why", TABLE)
def test_category_table(nrs0, nrs12, omed0, omed12, expected, why):
    code = consensus_category(
        np.array([nrs0]), np.array([nrs12]), np.array([omed0]), np.array([omed12])
    )
    assert CATEGORIES[int(code[0])] == expected, why


def test_thresholds_are_parameters():
    args = (np.array([8]), np.array([8]), np.array([60.0]), np.array([72.0]))  # +20%
    assert CATEGORIES[consensus_category(*args)[0]] == I
    assert CATEGORIES[consensus_category(*args, progression_increase=0.2)[0]] == G
    args = (np.array([8]), np.array([8]), np.array([60.0]), np.array([48.0]))  # -20%
    assert CATEGORIES[consensus_category(*args)[0]] == I
    assert CATEGORIES[consensus_category(*args, partial_decrease=0.2)[0]] == P
    # a 5% tolerance before a rise counts as an increase
    args = (np.array([8]), np.array([0]), np.array([60.0]), np.array([62.0]))
    assert CATEGORIES[consensus_category(*args)[0]] == I
    assert CATEGORIES[consensus_category(*args, increase_threshold=0.05)[0]] == C


def independent(nrs0, nrs12, omed0, omed12, inc=Fraction(0), dec=Fraction(1, 4), up=Fraction(1, 4)):
    """Chow et al. (2012) as the study states them, one patient, exact rational arithmetic:
    OMED values are multiples of 0.1 mg, so ten times them are integers."""
    o0, o12 = Fraction(round(omed0 * 10)), Fraction(round(omed12 * 10))
    d = nrs12 - nrs0
    if o0 == 0:
        increase, reduced25, increase25 = o12 > 0, False, o12 > 0
    else:
        increase = o12 > o0 * (1 + inc)
        reduced25 = o12 <= o0 * (1 - dec)
        increase25 = o12 >= o0 * (1 + up)
    stable_dose = not increase and not reduced25
    if nrs12 == 0 and not increase:
        return C
    if (d <= -2 and not increase) or (reduced25 and d <= 0):
        return P
    if (d >= 2 and stable_dose) or (increase25 and d in (0, 1)):
        return G
    return I


doses = st.integers(0, 2000).map(lambda k: k / 10)  # 0.0 .. 200.0 mg in 0.1 mg steps


@settings(max_examples=400, deadline=None)
@given(
    nrs0=st.integers(4, 10),
    nrs12=st.integers(0, 10),
    omed0=st.one_of(st.just(0.0), doses),
    ratio=st.sampled_from([0.0, 0.5, 0.75, 0.76, 0.9, 1.0, 1.01, 1.2, 1.25, 1.3, 2.0]),
    noise=st.integers(-2, 2),
    thresholds=st.sampled_from([(0, 25, 25), (5, 25, 25), (0, 30, 50), (10, 20, 20)]),
)
def test_matches_independent_formulation(nrs0, nrs12, omed0, ratio, noise, thresholds):
    # doses near the thresholds (ratio) plus a few 0.1 mg steps either side: ties and near-ties
    omed12 = max(0.0, round(omed0 * ratio, 1) + noise / 10)
    inc, dec, up = (Fraction(t, 100) for t in thresholds)
    got = consensus_category(
        np.array([nrs0]),
        np.array([nrs12]),
        np.array([omed0]),
        np.array([omed12]),
        increase_threshold=float(inc),
        partial_decrease=float(dec),
        progression_increase=float(up),
    )
    assert CATEGORIES[int(got[0])] == independent(nrs0, nrs12, omed0, omed12, inc, dec, up)


def test_vectorised_over_a_generated_cohort():
    """The cohort's week-12 categories agree patient by patient with the independent version."""
    from palliasim.sim import generate, load_scenario, rng_for

    sc = load_scenario("study")
    P_ = generate(sc, rng_for(5, sc.key, "data", 0), 5_000).patients
    seen = P_["nrs12"].notna().to_numpy()
    rows = P_.loc[seen, ["nrs0", "nrs12", "omed0", "omed12", "response_category"]]
    got = [
        independent(int(a), int(b), c, d) for a, b, c, d in rows.iloc[:, :4].itertuples(index=False)
    ]
    assert (rows["response_category"].astype(str).to_numpy() == np.array(got)).all()
