"""Implausible estimates are flagged (status warning with the reason), not scored as ok, and the
performance table counts them (n_warning)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from palliasim.estimators.base import Estimate, implausible
from palliasim.experiments.scoring.performance import summarise


@pytest.mark.parametrize(
    "estimand,estimate,se,flagged",
    [
        ("nrs_diff_w12", -0.8, 0.3, False),
        ("nrs_diff_w12", -4e7, 3e8, True),  # the mi_ancova failure at n = 10 in the issue
        ("nrs_diff_w12", 2.0, 11.0, True),  # an SE wider than the 0-10 scale
        ("qol_global_diff", 40.0, 12.0, False),
        ("qol_global_diff", 140.0, 12.0, True),
        ("response_rd", 0.2, 0.07, False),
        ("response_rd", 1.3, 0.07, True),
        ("pfs_loghr", -0.4, 0.15, False),
        ("pfs_loghr", -35.0, 1e4, True),  # a Cox fit that ran away (separation)
        ("pfs_median_diff", 2.4, 1.1, False),
        ("nrs_diff_w4", 0.5, math.inf, True),
        ("nrs_diff_w4", 0.5, -1.0, True),
        ("balance_age", 3.0, 99.0, False),  # descriptive: no scale
    ],
)
def test_implausible_rows(estimand, estimate, se, flagged):
    why = implausible(Estimate("m", estimand, estimate=estimate, se=se))
    assert bool(why) is flagged, why


def test_fit_flags_an_implausible_estimate_as_warning():
    from palliasim import build_estimator, generate, load_scenario, rng_for

    est = build_estimator("ancova_cc", name="ancova_cc")
    sc = load_scenario("study", {"cohort.n": 120})
    cohort = generate(sc, rng_for(3, sc.key, "data", 0))
    orig = est._fit

    def absurd(c, rng):
        rows = orig(c, rng)
        for r in rows:
            r.estimate, r.se = -4e7, 3e8
        return rows

    est._fit = absurd
    rows = est.fit(cohort, rng_for(3, sc.key, "estimator", 0))
    assert all(r.status == "warning" and "implausible estimate" in r.message for r in rows)


def test_performance_counts_warnings():
    res = pd.DataFrame(
        {
            "method": "m",
            "estimand": "e",
            "rep": range(4),
            "estimate": [0.1, 0.2, 50.0, 0.0],
            "se": 0.1,
            "ci_low": -1.0,
            "ci_high": 1.0,
            "p_value": 0.5,
            "true": 0.0,
            "status": ["ok", "ok", "warning", "failed"],
        }
    )
    r = summarise(res).iloc[0]
    assert (r.n_reps, r.n_failed, r.n_warning) == (4, 1, 1)
