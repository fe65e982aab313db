"""Tests for experiments.analytic_power: published / hand values and library cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lifelines.statistics import power_under_cph, sample_size_necessary_under_cph
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import power_proportions_2indep, proportion_effectsize

from palliasim.experiments.planning.formulas import (
    ancova_n,
    ancova_power,
    events_to_patients,
    freedman_events,
    freedman_power,
    hsieh_logistic_n,
    hsieh_logistic_probs,
    lifelines_power_cph,
    power_logrank_n,
    prob_event,
    prob_event_weibull,
    repeated_measures_design_effect,
    repeated_measures_n,
    repeated_measures_power,
    schoenfeld_events,
    schoenfeld_power,
    ttest_n,
    ttest_power,
    two_proportions_n,
    two_proportions_power,
)

# published normal quantiles
Z975 = 1.959963984540054
Z80 = 0.8416212335729143
Z90 = 1.2815515655446004


# ---- survival: events ------------------------------------------------------------------------
def test_schoenfeld_published_247():
    d = schoenfeld_events(0.7, alpha=0.05, power=0.8, allocation=0.5)
    hand = (Z975 + Z80) ** 2 / (0.5 * 0.5 * math.log(0.7) ** 2)  # 246.787...
    assert d == pytest.approx(hand, rel=1e-12)
    assert math.ceil(d) == 247
    # HR and 1/HR need the same number of events; 2:1 allocation needs more
    assert schoenfeld_events(1 / 0.7) == pytest.approx(d)
    assert schoenfeld_events(0.7, allocation=2 / 3) == pytest.approx(d * 0.25 / (2 / 9))


def test_freedman_hand_value():
    d = freedman_events(0.7, alpha=0.05, power=0.8, allocation=0.5)
    hand = (Z975 + Z80) ** 2 * (1 + 0.7) ** 2 / (1 - 0.7) ** 2  # 7.84888 * 2.89 / 0.09
    assert d == pytest.approx(hand, rel=1e-12)
    assert math.ceil(d) == 253
    # unequal allocation r = 2: (z+z)^2 (1 + 2 * 0.7)^2 / (2 * 0.3^2)
    d2 = freedman_events(0.7, allocation=2 / 3)
    assert d2 == pytest.approx((Z975 + Z80) ** 2 * 2.4**2 / (2 * 0.09), rel=1e-12)


@pytest.mark.parametrize("alloc", [0.5, 0.3, 2 / 3])
@pytest.mark.parametrize("hr", [0.6, 0.75, 1.4])
def test_power_is_inverse_of_events(hr, alloc):
    d = schoenfeld_events(hr, 0.05, 0.9, alloc)
    assert schoenfeld_power(hr, d, 0.05, alloc) == pytest.approx(0.9, abs=1e-12)
    d = freedman_events(hr, 0.05, 0.9, alloc)
    assert freedman_power(hr, d, 0.05, alloc) == pytest.approx(0.9, abs=1e-12)


def test_power_vectorised_and_both_tails():
    events = np.array([50.0, 100.0, 247.0, 400.0])
    pw = schoenfeld_power(0.7, events)
    assert isinstance(pw, np.ndarray) and pw.shape == (4,)
    assert np.all(np.diff(pw) > 0)
    assert pw[2] == pytest.approx(0.8, abs=2e-3)
    # near the null the two-tailed value tends to alpha, the one-tailed to alpha / 2
    assert schoenfeld_power(0.9999, 10, both_tails=True) == pytest.approx(0.05, abs=1e-4)
    assert schoenfeld_power(0.9999, 10) == pytest.approx(0.025, abs=1e-4)
    assert isinstance(schoenfeld_power(0.7, 100), float)


def test_freedman_matches_lifelines_exactly():
    for n_exp, n_con, p_exp, p_con, hr in [
        (200, 200, 0.55, 0.70, 0.7),
        (300, 150, 0.4, 0.5, 0.8),
        (120, 240, 0.9, 0.8, 1.3),
    ]:
        lif = power_under_cph(n_exp, n_con, p_exp, p_con, hr, alpha=0.05)
        mine = freedman_power(hr, n_exp * p_exp + n_con * p_con, 0.05, n_exp / (n_exp + n_con))
        assert mine == pytest.approx(lif, rel=1e-12)
        assert lifelines_power_cph(n_exp, n_con, p_exp, p_con, hr) == pytest.approx(lif)
    # sample size: lifelines' example (HR 0.7, p_exp 0.25, p_con 0.35, 1:1) -> (421, 421)
    n_exp, n_con = sample_size_necessary_under_cph(0.8, 1.0, 0.25, 0.35, 0.7)
    d = freedman_events(0.7, 0.05, 0.8, 0.5)
    assert (n_exp, n_con) == (421, 421)
    assert math.ceil(d / (0.25 + 0.35)) == n_exp


def test_events_to_patients_and_power_logrank_n():
    assert events_to_patients(247, 0.5) == pytest.approx(494)
    pe = 0.6
    n = events_to_patients(schoenfeld_events(0.7), pe)
    assert power_logrank_n(n, 0.7, p_event=pe) == pytest.approx(0.8, abs=1e-12)
    n = events_to_patients(freedman_events(0.7), pe)
    assert power_logrank_n(n, 0.7, p_event=pe, method="freedman") == pytest.approx(0.8, abs=1e-12)
    with pytest.raises(ValueError, match="method"):
        power_logrank_n(100, 0.7, method="lakatos")
    with pytest.raises(ValueError, match="p_event"):
        events_to_patients(100, 0.0)


# ---- probability of an event -----------------------------------------------------------------
def _exp_arm_closed_form(h, lam, a, f):
    """Exponential event hazard h, drop-out lam, entry U(0, a), follow-up f (by hand)."""
    k = h + lam
    if a == 0:
        return h / k * (1 - math.exp(-k * f))
    return h / k * (1 - math.exp(-k * f) * (1 - math.exp(-k * a)) / (k * a))


@pytest.mark.parametrize(
    "a, f, lam", [(24.0, 12.0, 0.0), (24.0, 12.0, 0.02), (0.0, 18.0, 0.01), (12.0, 0.0, 0.0)]
)
def test_prob_event_exponential_closed_form(a, f, lam):
    median = 10.0
    h0 = math.log(2) / median
    hr = 0.7
    expected = 0.5 * _exp_arm_closed_form(h0, lam, a, f) + 0.5 * _exp_arm_closed_form(
        h0 * hr, lam, a, f
    )
    got = prob_event_weibull(1.0, 1 / h0, hr, a, f, lam, allocation=0.5)
    assert got == pytest.approx(expected, rel=1e-9)
    got2 = prob_event(lambda t: math.exp(-h0 * t), hr, a, f, lam)
    assert got2 == pytest.approx(expected, rel=1e-9)
    # allocation weights the arms
    third = prob_event_weibull(1.0, 1 / h0, hr, a, f, lam, allocation=1 / 3)
    assert third == pytest.approx(
        2 / 3 * _exp_arm_closed_form(h0, lam, a, f) + _exp_arm_closed_form(h0 * hr, lam, a, f) / 3,
        rel=1e-9,
    )


def test_prob_event_weibull_no_accrual_and_simpson():
    shape, scale, hr, f = 1.5, 20.0, 0.6, 15.0

    def s(t):
        return math.exp(-((t / scale) ** shape))

    # everyone enrolled at once, no drop-out: 1 - S(f), averaged over arms
    got = prob_event_weibull(shape, scale, hr, 0.0, f)
    assert got == pytest.approx(1 - 0.5 * s(f) - 0.5 * s(f) ** hr, rel=1e-10)
    # uniform accrual, no drop-out: Simpson's rule approximation (Schoenfeld 1983)
    a = 24.0
    simpson = 0.5 * sum(
        1 - (sa(f) + 4 * sa(f + a / 2) + sa(a + f)) / 6
        for sa in (s, lambda t: s(t) ** hr)  # noqa: B023
    )
    assert prob_event_weibull(shape, scale, hr, a, f) == pytest.approx(simpson, abs=2e-3)
    # drop-out lowers the probability of observing an event
    assert prob_event_weibull(shape, scale, hr, a, f, 0.05) < prob_event_weibull(
        shape, scale, hr, a, f
    )


def test_prob_event_validation():
    with pytest.raises(ValueError, match="accrual"):
        prob_event_weibull(1, 10, 0.7, -1, 12)
    with pytest.raises(ValueError, match="accrual \\+ followup"):
        prob_event_weibull(1, 10, 0.7, 0, 0)
    with pytest.raises(ValueError, match="dropout_rate"):
        prob_event_weibull(1, 10, 0.7, 12, 12, dropout_rate=-0.1)
    with pytest.raises(ValueError, match="shape"):
        prob_event_weibull(0, 10, 0.7, 12, 12)
    with pytest.raises(ValueError, match="survival_fn_ctrl"):
        prob_event(0.5, 0.7, 12, 12)


# ---- continuous ------------------------------------------------------------------------------
@pytest.mark.parametrize("alloc", [0.5, 1 / 3, 0.6])
@pytest.mark.parametrize("delta, sd", [(0.5, 1.0), (1.2, 2.5), (-3.0, 4.0)])
def test_ttest_matches_statsmodels(delta, sd, alloc):
    es = abs(delta) / sd
    sm = TTestIndPower()
    ratio = (1 - alloc) / alloc
    n_sm = sm.solve_power(es, nobs1=None, alpha=0.05, power=0.8, ratio=ratio) / alloc
    n = ttest_n(delta, sd, 0.05, 0.8, alloc)
    assert n == pytest.approx(n_sm, rel=1e-6)
    for n_total in (20, 64.0, 150):
        p_sm = sm.power(es, nobs1=alloc * n_total, alpha=0.05, ratio=ratio)
        assert ttest_power(n_total, delta, sd, 0.05, alloc) == pytest.approx(p_sm, rel=1e-9)
    assert ttest_power(n, delta, sd, 0.05, alloc) == pytest.approx(0.8, abs=1e-9)


def test_ttest_hand_values():
    # normal approximation underestimates: n_z = 4 (z+z)^2 / 0.25 = 125.6; exact t needs 127.5
    n_z = 4 * (Z975 + Z80) ** 2 / 0.5**2
    n = ttest_n(0.5, 1.0)
    assert n_z < n < n_z + 3
    assert math.ceil(n / 2) == 64  # the classic 64 per arm for d = 0.5
    # delta = 0: power equals alpha
    assert ttest_power(50, 0.0, 1.0) == pytest.approx(0.05, rel=1e-9)
    pw = ttest_power(np.array([20, 40, 80]), 0.5, 1.0)
    assert pw.shape == (3,) and np.all(np.diff(pw) > 0)


def test_ancova():
    n_t = ttest_n(0.5, 1.0)
    assert ancova_n(0.5, 1.0, 0.5) == pytest.approx(n_t * 0.75)
    assert ancova_n(0.5, 1.0, -0.6) == pytest.approx(n_t * 0.64)
    n = ancova_n(0.5, 1.0, 0.5)
    assert ancova_power(n, 0.5, 1.0, 0.5) == pytest.approx(0.8, abs=0.01)
    # rho = 0: ANCOVA power equals t-test power with one df fewer
    assert ancova_power(100, 0.5, 1.0, 0.0) < ttest_power(100, 0.5, 1.0)
    assert ancova_power(100, 0.5, 1.0, 0.0) == pytest.approx(ttest_power(100, 0.5, 1.0), abs=2e-3)
    with pytest.raises(ValueError, match="rho"):
        ancova_n(0.5, 1.0, 1.0)


def test_repeated_measures():
    assert repeated_measures_design_effect(4, 0.5) == pytest.approx((1 + 3 * 0.5) / 4)
    assert repeated_measures_design_effect(1, 0.3) == 1.0
    assert repeated_measures_design_effect(6, 1.0) == 1.0
    assert repeated_measures_design_effect(5, 0.0) == pytest.approx(0.2)
    n = repeated_measures_n(0.5, 2.0, 4, 0.5)
    assert n == pytest.approx(ttest_n(0.5, 2.0 * math.sqrt(0.625)))
    assert repeated_measures_power(n, 0.5, 2.0, 4, 0.5) == pytest.approx(0.8, abs=1e-9)
    with pytest.raises(ValueError, match="n_visits"):
        repeated_measures_design_effect(2.5, 0.3)
    with pytest.raises(ValueError, match="icc"):
        repeated_measures_design_effect(3, 1.5)


# ---- binary ----------------------------------------------------------------------------------
def test_two_proportions_hand_value():
    p0, p1 = 0.54, 0.73
    pbar = (p0 + p1) / 2  # 0.635
    per_arm = (
        Z975 * math.sqrt(2 * pbar * (1 - pbar)) + Z80 * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
    ) ** 2 / (p1 - p0) ** 2  # 99.598
    n = two_proportions_n(p0, p1)
    assert n == pytest.approx(2 * per_arm, rel=1e-12)
    assert math.ceil(n / 2) == 100
    assert two_proportions_power(n, p0, p1) == pytest.approx(0.8, abs=1e-12)
    # symmetric in the labels at 1:1
    assert two_proportions_n(p1, p0) == pytest.approx(n)


def test_two_proportions_vs_statsmodels():
    p0, p1 = 0.54, 0.73
    # same formula: statsmodels' pooled-null z-test power (both tails)
    for alloc in (0.5, 1 / 3):
        n = 180.0
        sm = power_proportions_2indep(
            p1 - p0, p0, alloc * n, ratio=(1 - alloc) / alloc, alpha=0.05, return_results=False
        )
        mine = two_proportions_power(n, p0, p1, 0.05, alloc, both_tails=True)
        assert mine == pytest.approx(sm, rel=1e-10)
    # different formula (arcsine effect size): loose agreement only
    h = proportion_effectsize(p1, p0)
    n_arcsine = 2 * NormalIndPower().solve_power(h, alpha=0.05, power=0.8, ratio=1.0)
    assert two_proportions_n(p0, p1) == pytest.approx(n_arcsine, rel=0.03)


def test_hsieh_logistic():
    p0, p1, b = 0.54, 0.73, 0.5
    or_ = (p1 / (1 - p1)) / (p0 / (1 - p0))
    pbar = (1 - b) * p0 + b * p1
    q0, q1 = hsieh_logistic_probs(pbar, or_, b)
    assert (q0, q1) == pytest.approx((p0, p1), abs=1e-12)
    hand = (
        Z975 * math.sqrt(pbar * (1 - pbar) / b)
        + Z80 * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1) * (1 - b) / b)
    ) ** 2 / ((p0 - p1) ** 2 * (1 - b))
    assert hsieh_logistic_n(pbar, or_) == pytest.approx(hand, rel=1e-10)
    # with unequal B: the derived probabilities honour p_bar and OR, and n equals Fleiss
    b = 0.3
    q0, q1 = hsieh_logistic_probs(0.4, 2.0, b)
    assert (1 - b) * q0 + b * q1 == pytest.approx(0.4, abs=1e-12)
    assert (q1 / (1 - q1)) / (q0 / (1 - q0)) == pytest.approx(2.0, rel=1e-10)
    assert hsieh_logistic_n(0.4, 2.0, 0.05, 0.9, b) == pytest.approx(
        two_proportions_n(q0, q1, 0.05, 0.9, b), rel=1e-10
    )


# ---- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: schoenfeld_events(1.0), "hr"),
        (lambda: schoenfeld_events(-0.7), "hr"),
        (lambda: freedman_events(0.7, alpha=0.0), "alpha"),
        (lambda: freedman_events(0.7, power=1.2), "power"),
        (lambda: schoenfeld_events(0.7, allocation=1.0), "allocation"),
        (lambda: schoenfeld_power(0.7, -10), "events"),
        (lambda: ttest_power(2, 0.5, 1.0), "n_total"),
        (lambda: ttest_n(0.0, 1.0), "delta"),
        (lambda: ttest_n(0.5, 0.0), "sd"),
        (lambda: two_proportions_n(0.5, 0.5), "p0 and p1"),
        (lambda: two_proportions_n(0.0, 0.5), "p0"),
        (lambda: hsieh_logistic_n(0.3, 1.0), "or_"),
        (lambda: hsieh_logistic_n(1.3, 2.0), "p_bar"),
        (lambda: lifelines_power_cph(100, 100, 0.5, 1.5, 0.7), "p_con"),
        (lambda: schoenfeld_events(float("nan")), "hr"),
    ],
)
def test_validation_names_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_validation_message_gives_range():
    with pytest.raises(ValueError, match=r"allocation must be in the open interval \(0, 1\)"):
        ttest_n(0.5, 1.0, allocation=0.0)
