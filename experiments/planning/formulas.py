"""Closed-form sample size and power, to overlay on simulated power curves.

The setting is a two-arm trial in painful bone metastases; every function takes ``allocation``,
the fraction ``p`` of patients in arm 1 (the experimental arm: the hazard ratio, odds ratio,
mean difference ``delta`` and ``p1`` all describe arm 1 relative to arm 0). ``z_q`` is the
standard normal q-quantile; tests are two-sided at level ``alpha``.

Sample sizes (``*_n``) are *total* numbers of patients and event counts (``*_events``) are
total events, both returned unrounded (as floats) so that they can be plotted; round up with
``math.ceil`` for a protocol (per arm: ``ceil(p * n)`` and ``ceil((1 - p) * n)``).

Normal-approximation power functions (Schoenfeld, Freedman, two proportions) return by default
the textbook value that ignores the rejection probability in the wrong tail, so that they are
the exact inverses of the matching sample-size formulas; pass ``both_tails=True`` to add it
(it matters only near the null, where the curve then tends to ``alpha`` rather than ``alpha/2``).
The t-based functions are exact (noncentral t) and always include both tails.

Summary of formulas (references in each docstring):

* Schoenfeld (1981/1983): d = (z_{1-a/2} + z_{pow})^2 / (p (1-p) (log HR)^2)
* Freedman (1982): d = (z_{1-a/2} + z_{pow})^2 (1 + r HR)^2 / (r (1 - HR)^2), r = p / (1 - p)
* events -> patients: n = d / P(event), P(event) from uniform accrual, extra follow-up,
  exponential drop-out and Weibull / any baseline survival under proportional hazards
* two-sample t-test: exact noncentral t, df = n - 2, ncp = delta / (sd sqrt(1/n1 + 1/n0))
* ANCOVA (Borm, Fransen & Lemmens 2007): n = n_t-test (1 - rho^2)
* repeated measures, mean of k post-baseline visits, compound symmetry:
  design effect (1 + (k - 1) icc) / k on the variance
* two proportions (Fleiss, no continuity correction), pooled variance under H0
* logistic regression, one binary covariate (Hsieh, Bloch & Larsen 1998)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import integrate, optimize, stats

__all__ = [
    "schoenfeld_events",
    "schoenfeld_power",
    "freedman_events",
    "freedman_power",
    "events_to_patients",
    "prob_event",
    "prob_event_weibull",
    "power_logrank_n",
    "lifelines_power_cph",
    "ttest_power",
    "ttest_n",
    "ancova_n",
    "ancova_power",
    "repeated_measures_design_effect",
    "repeated_measures_power",
    "repeated_measures_n",
    "two_proportions_n",
    "two_proportions_power",
    "hsieh_logistic_n",
    "hsieh_logistic_probs",
]


# --------------------------------------------------------------------------------------------
# validation helpers (accept scalars or arrays; NaN always fails)
# --------------------------------------------------------------------------------------------
def _arr(name: str, value) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    return a


def _open01(name: str, value) -> np.ndarray:
    a = _arr(name, value)
    if not np.all((a > 0) & (a < 1)):
        raise ValueError(f"{name} must be in the open interval (0, 1), got {value!r}")
    return a


def _positive(name: str, value) -> np.ndarray:
    a = _arr(name, value)
    if not np.all((a > 0) & np.isfinite(a)):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return a


def _nonnegative(name: str, value) -> np.ndarray:
    a = _arr(name, value)
    if not np.all((a >= 0) & np.isfinite(a)):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return a


def _ratio(name: str, value) -> np.ndarray:
    """A hazard or odds ratio: > 0, finite and != 1."""
    a = _arr(name, value)
    if not np.all((a > 0) & np.isfinite(a) & (a != 1)):
        raise ValueError(
            f"{name} must be finite, > 0 and != 1 (range (0, 1) or (1, inf)), got {value!r}"
        )
    return a


def _out(x):
    """0-d results as Python floats, arrays as arrays."""
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def _z_alpha(alpha) -> np.ndarray:
    return stats.norm.ppf(1.0 - np.asarray(alpha) / 2.0)


# --------------------------------------------------------------------------------------------
# survival: events
# --------------------------------------------------------------------------------------------
def schoenfeld_events(hr, alpha=0.05, power=0.8, allocation=0.5):
    r"""Total number of events for a two-sided log-rank / Cox test (Schoenfeld).

    .. math:: d = \frac{(z_{1-\alpha/2} + z_{\mathrm{power}})^2}{p (1 - p) (\log \mathrm{HR})^2}

    with ``p`` the fraction allocated to arm 1. Unrounded; ``math.ceil`` it. Check: HR 0.7,
    alpha 0.05, 80% power, 1:1 gives 246.79, i.e. 247 events.

    References: Schoenfeld D. (1981) The asymptotic properties of nonparametric tests for
    comparing survival distributions. Biometrika 68:316-319; Schoenfeld D. (1983) Sample-size
    formula for the proportional-hazards regression model. Biometrics 39:499-503.
    """
    hr = _ratio("hr", hr)
    _open01("alpha", alpha)
    _open01("power", power)
    p = _open01("allocation", allocation)
    z = _z_alpha(alpha) + stats.norm.ppf(power)
    return _out(z**2 / (p * (1 - p) * np.log(hr) ** 2))


def schoenfeld_power(hr, events, alpha=0.05, allocation=0.5, both_tails=False):
    r"""Power of the two-sided log-rank test with ``events`` total events (Schoenfeld).

    .. math:: \mathrm{power} = \Phi\left(\sqrt{d\,p(1-p)}\,|\log \mathrm{HR}| - z_{1-\alpha/2}\right)

    (+ :math:`\Phi(-\sqrt{d p (1-p)} |\log HR| - z_{1-\alpha/2})` with ``both_tails=True``).
    Inverse of :func:`schoenfeld_events`. Vectorised over ``hr`` and ``events``.
    Reference: Schoenfeld (1983), Biometrics 39:499-503.
    """
    hr = _ratio("hr", hr)
    d = _positive("events", events)
    _open01("alpha", alpha)
    p = _open01("allocation", allocation)
    x = np.sqrt(d * p * (1 - p)) * np.abs(np.log(hr))
    za = _z_alpha(alpha)
    pw = stats.norm.cdf(x - za)
    if both_tails:
        pw = pw + stats.norm.cdf(-x - za)
    return _out(pw)


def freedman_events(hr, alpha=0.05, power=0.8, allocation=0.5):
    r"""Total number of events for a two-sided log-rank test (Freedman).

    .. math:: d = \frac{(z_{1-\alpha/2} + z_{\mathrm{power}})^2 (1 + r\,\mathrm{HR})^2}{r (1 - \mathrm{HR})^2},
              \quad r = n_1 / n_0 = p / (1 - p)

    (1:1: :math:`(z + z)^2 (1 + HR)^2 / (1 - HR)^2`; HR 0.7, 80%, alpha 0.05 gives 252.04, i.e.
    253 events). Unrounded. This is the formula behind lifelines'
    ``sample_size_necessary_under_cph`` / ``power_under_cph`` (with r = n_exp / n_con).

    Reference: Freedman L.S. (1982) Tables of the number of patients required in clinical
    trials using the logrank test. Statistics in Medicine 1:121-129.
    """
    hr = _ratio("hr", hr)
    _open01("alpha", alpha)
    _open01("power", power)
    p = _open01("allocation", allocation)
    r = p / (1 - p)
    z = _z_alpha(alpha) + stats.norm.ppf(power)
    return _out(z**2 * (1 + r * hr) ** 2 / (r * (1 - hr) ** 2))


def freedman_power(hr, events, alpha=0.05, allocation=0.5, both_tails=False):
    r"""Power of the two-sided log-rank test with ``events`` total events (Freedman).

    .. math:: \mathrm{power} = \Phi\left(\frac{\sqrt{r d}\,|1 - \mathrm{HR}|}{1 + r\,\mathrm{HR}}
              - z_{1-\alpha/2}\right), \quad r = p / (1 - p)

    Inverse of :func:`freedman_events`; equals ``lifelines.statistics.power_under_cph`` with
    ``d = n_exp p_exp + n_con p_con``. Reference: Freedman (1982), Stat Med 1:121-129.
    """
    hr = _ratio("hr", hr)
    d = _positive("events", events)
    _open01("alpha", alpha)
    p = _open01("allocation", allocation)
    r = p / (1 - p)
    x = np.sqrt(r * d) * np.abs(1 - hr) / (1 + r * hr)
    za = _z_alpha(alpha)
    pw = stats.norm.cdf(x - za)
    if both_tails:
        pw = pw + stats.norm.cdf(-x - za)
    return _out(pw)


def events_to_patients(events, p_event):
    """Patients to recruit so that ``events`` events are expected: n = d / P(event).

    ``p_event`` is the probability that a recruited patient is observed to have the event
    (see :func:`prob_event`). Unrounded. Reference: Collett D. (2015) Modelling Survival Data
    in Medical Research, 3rd ed., chapter on sample size requirements.
    """
    d = _positive("events", events)
    pe = _arr("p_event", p_event)
    if not np.all((pe > 0) & (pe <= 1)):
        raise ValueError(f"p_event must be in (0, 1], got {p_event!r}")
    return _out(d / pe)


def _prob_event_arm(surv: Callable[[float], float], accrual, followup, dropout_rate) -> float:
    """P(event observed) for one arm; see :func:`prob_event` for the derivation."""
    a, f, lam = float(accrual), float(followup), float(dropout_rate)
    total = a + f

    def g(t):  # P(not administratively censored and not dropped out by t)
        w = 1.0 if t <= f else (total - t) / a
        return w * math.exp(-lam * t)

    def g_prime(t):
        if t < f:
            return -lam * math.exp(-lam * t)
        return math.exp(-lam * t) * (-lam * (total - t) / a - 1.0 / a)

    def integrand(t):
        return float(surv(t)) * g_prime(t)

    opts = {"limit": 200, "epsabs": 1e-12, "epsrel": 1e-10}
    val = 0.0
    if f > 0:
        val += integrate.quad(integrand, 0.0, f, **opts)[0]
    if a > 0:
        val += integrate.quad(integrand, f, total, **opts)[0]
        g_end = 0.0
    else:
        g_end = g(f)
    return 1.0 + val - g_end * float(surv(total))


def prob_event(survival_fn_ctrl, hr, accrual, followup, dropout_rate=0.0, allocation=0.5):
    r"""Probability that a recruited patient is observed to have the event.

    Design: entry uniform over ``accrual`` months, analysis ``followup`` months after the last
    entry (so a patient's administrative censoring time is uniform on [followup,
    accrual + followup]), independent exponential loss to follow-up at ``dropout_rate`` per month,
    control survival ``S0 = survival_fn_ctrl`` and ``S1 = S0 ** hr`` (proportional hazards) in
    arm 1. Per arm, with :math:`g(t)` = P(still under observation at t) =
    :math:`w(t) e^{-\lambda t}`, :math:`w(t) = 1` for :math:`t \le f`, :math:`(a + f - t)/a` for
    :math:`f < t \le a + f`, 0 afterwards,

    .. math:: P = \int_0^{a+f} g(t)\, dF(t) = 1 + \int_0^{a+f} S(t)\, g'(t)\, dt - g(a+f) S(a+f)

    (integration by parts, so only S is needed), computed with ``scipy.integrate.quad`` split
    at ``followup``. Without drop-out this is the classical
    :math:`1 - \frac{1}{a}\int_f^{a+f} S(t)\,dt` (Schoenfeld 1983; Collett 2015),
    which Simpson's rule :math:`1 - (S(f) + 4 S(f + a/2) + S(a + f)) / 6` approximates.
    Returns the allocation-weighted average ``(1 - p) P0 + p P1``.

    Parameters: ``survival_fn_ctrl`` callable t (months) -> S0(t); ``accrual`` >= 0 and
    ``followup`` >= 0 (not both 0); ``dropout_rate`` >= 0 per month; ``allocation`` in (0, 1).
    """
    if not callable(survival_fn_ctrl):
        raise ValueError("survival_fn_ctrl must be a callable t -> S0(t)")
    hr = float(_positive("hr", hr))
    a = float(_nonnegative("accrual", accrual))
    f = float(_nonnegative("followup", followup))
    if a + f <= 0:
        raise ValueError(
            f"accrual + followup must be > 0, got accrual={accrual!r}, followup={followup!r}"
        )
    lam = float(_nonnegative("dropout_rate", dropout_rate))
    p = float(_open01("allocation", allocation))
    p0 = _prob_event_arm(survival_fn_ctrl, a, f, lam)
    p1 = _prob_event_arm(lambda t: float(survival_fn_ctrl(t)) ** hr, a, f, lam)
    return (1 - p) * p0 + p * p1


def prob_event_weibull(shape, scale, hr, accrual, followup, dropout_rate=0.0, allocation=0.5):
    r""":func:`prob_event` with Weibull control survival :math:`S_0(t) = \exp(-(t/\mathrm{scale})^{\mathrm{shape}})`.

    ``scale`` in months (the scipy ``weibull_min`` / numpy parametrisation; median
    ``scale * log(2) ** (1 / shape)``); arm 1 has :math:`S_0^{HR}`, itself Weibull with scale
    ``scale * hr ** (-1 / shape)``.
    """
    k = float(_positive("shape", shape))
    s = float(_positive("scale", scale))
    return prob_event(
        lambda t: math.exp(-((t / s) ** k)), hr, accrual, followup, dropout_rate, allocation
    )


def power_logrank_n(
    n, hr, alpha=0.05, allocation=0.5, p_event=1.0, method="schoenfeld", both_tails=False
):
    """Power of the log-rank test with ``n`` patients of whom a fraction ``p_event`` have events.

    Expected events ``d = n * p_event`` (``p_event`` from :func:`prob_event`; the default 1.0
    means no censoring), then :func:`schoenfeld_power` or :func:`freedman_power`.
    Vectorised over ``n`` and ``hr``.
    """
    if method not in ("schoenfeld", "freedman"):
        raise ValueError(f"method must be 'schoenfeld' or 'freedman', got {method!r}")
    n = _positive("n", n)
    pe = _arr("p_event", p_event)
    if not np.all((pe > 0) & (pe <= 1)):
        raise ValueError(f"p_event must be in (0, 1], got {p_event!r}")
    fn = schoenfeld_power if method == "schoenfeld" else freedman_power
    return fn(hr, n * pe, alpha=alpha, allocation=allocation, both_tails=both_tails)


def lifelines_power_cph(n_exp, n_con, p_exp, p_con, hr, alpha=0.05) -> float:
    """Thin wrapper on ``lifelines.statistics.power_under_cph`` (Freedman's formula).

    ``power_under_cph(n_exp, n_con, p_exp, p_con, postulated_hazard_ratio, alpha)``:
    ``p_exp`` / ``p_con`` are the probabilities of an event over the study in each arm, ``hr``
    the hazard ratio experimental vs control. Same value as
    ``freedman_power(hr, n_exp p_exp + n_con p_con, alpha, n_exp / (n_exp + n_con))``.
    """
    from lifelines.statistics import power_under_cph

    _positive("n_exp", n_exp)
    _positive("n_con", n_con)
    for name, v in (("p_exp", p_exp), ("p_con", p_con)):
        a = _arr(name, v)
        if not np.all((a > 0) & (a <= 1)):
            raise ValueError(f"{name} must be in (0, 1], got {v!r}")
    _ratio("hr", hr)
    _open01("alpha", alpha)
    return float(power_under_cph(n_exp, n_con, p_exp, p_con, hr, alpha=alpha))


# --------------------------------------------------------------------------------------------
# continuous outcomes
# --------------------------------------------------------------------------------------------
def _t_power(n_total, ncp_per_sqrt_n, df, alpha):
    """Two-sided t-test power with ncp = ncp_per_sqrt_n * sqrt(n_total)."""
    ncp = ncp_per_sqrt_n * np.sqrt(n_total)
    tc = stats.t.ppf(1 - np.asarray(alpha) / 2, df)
    return stats.nct.sf(tc, df, ncp) + stats.nct.cdf(-tc, df, ncp)


def ttest_power(n_total, delta, sd, alpha=0.05, allocation=0.5):
    r"""Exact power of the two-sided two-sample t-test (equal variances).

    With :math:`n_1 = p n`, :math:`n_0 = (1 - p) n`, df = n - 2 and noncentrality
    :math:`\lambda = \delta / (\sigma \sqrt{1/n_1 + 1/n_0}) = (\delta/\sigma)\sqrt{n p (1-p)}`:

    .. math:: \mathrm{power} = 1 - F_{t'}(t_{1-\alpha/2, df}; df, \lambda) + F_{t'}(-t_{1-\alpha/2, df}; df, \lambda)

    (noncentral t, ``scipy.stats.nct``). Same as statsmodels ``TTestIndPower().power(
    delta / sd, nobs1 = p n, alpha, ratio = (1 - p) / p)``. Vectorised over ``n_total`` and
    ``delta``. Reference: Julious S.A. (2010) Sample Sizes for Clinical Trials.
    """
    n = _arr("n_total", n_total)
    if not np.all(n > 2):
        raise ValueError(f"n_total must be > 2 (df = n_total - 2 > 0), got {n_total!r}")
    d = _arr("delta", delta)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"delta must be finite, got {delta!r}")
    s = _positive("sd", sd)
    _open01("alpha", alpha)
    p = _open01("allocation", allocation)
    return _out(_t_power(n, d / s * np.sqrt(p * (1 - p)), n - 2, alpha))


def _solve_n(
    power_fn: Callable[[float], float], target: float, n_min: float, guess: float
) -> float:
    """Smallest continuous n >= n_min with power_fn(n) = target (power increasing in n)."""
    if power_fn(n_min) >= target:
        return n_min
    hi = max(guess, n_min + 1.0)
    while power_fn(hi) < target:
        hi *= 2.0
        if hi > 1e12:
            raise ValueError("no sample size below 1e12 reaches the requested power")
    return float(optimize.brentq(lambda x: power_fn(x) - target, n_min, hi, xtol=1e-10, rtol=1e-14))


def ttest_n(delta, sd, alpha=0.05, power=0.8, allocation=0.5) -> float:
    r"""Total sample size for the two-sided two-sample t-test, solved exactly.

    Solves :func:`ttest_power` (noncentral t) = ``power`` for a continuous n with ``brentq``,
    starting from the normal approximation
    :math:`n \approx (z_{1-\alpha/2} + z_{\mathrm{power}})^2 \sigma^2 / (p (1 - p) \delta^2)`.
    Never below 3 (one residual df). Unrounded: per arm ``ceil(p n)``, ``ceil((1 - p) n)``.
    Reference: Julious (2010) Sample Sizes for Clinical Trials.
    """
    d = float(_arr("delta", delta))
    if d == 0 or not math.isfinite(d):
        raise ValueError(f"delta must be finite and != 0, got {delta!r}")
    s = float(_positive("sd", sd))
    a = float(_open01("alpha", alpha))
    pw = float(_open01("power", power))
    p = float(_open01("allocation", allocation))
    if pw <= a:
        raise ValueError(f"power must exceed alpha, got power={power!r}, alpha={alpha!r}")
    k = abs(d) / s * math.sqrt(p * (1 - p))
    guess = ((stats.norm.ppf(1 - a / 2) + stats.norm.ppf(pw)) / k) ** 2
    return _solve_n(lambda n: float(_t_power(n, k, n - 2, a)), pw, 3.0, guess)


def ancova_n(delta, sd, rho, alpha=0.05, power=0.8, allocation=0.5) -> float:
    r"""Total sample size for ANCOVA adjusting for a baseline with correlation ``rho``.

    .. math:: n_{\mathrm{ANCOVA}} = n_{t\text{-test}}\,(1 - \rho^2)

    with :math:`n_{t\text{-test}}` from :func:`ttest_n` (exact noncentral t). ``rho`` is the
    baseline-outcome correlation, in (-1, 1). Unrounded. :func:`ancova_power` (noncentral t,
    df n - 3, residual SD :math:`\sigma\sqrt{1 - \rho^2}`) is not its exact inverse: at the
    returned n it gives a power within about 0.01 of the target for usual designs.

    Reference: Borm G.F., Fransen J., Lemmens W.A. (2007) A simple sample size formula for
    analysis of covariance in randomized clinical trials. J Clin Epidemiol 60:1234-1238.
    """
    r = float(_arr("rho", rho))
    if not -1 < r < 1:
        raise ValueError(f"rho must be in the open interval (-1, 1), got {rho!r}")
    return ttest_n(delta, sd, alpha, power, allocation) * (1 - r**2)


def ancova_power(n_total, delta, sd, rho, alpha=0.05, allocation=0.5):
    r"""Power of the treatment test in ANCOVA with one baseline covariate.

    Conditional on the covariate (the usual "ANOVA formula with reduced df and
    correlation-adjusted variance"): noncentral t with df = n - 3 and

    .. math:: \lambda = \frac{\delta}{\sigma \sqrt{1 - \rho^2}} \sqrt{n p (1 - p)}

    Ignores the small extra variance from chance covariate imbalance (Shieh 2020, Psychometrika
    85:101-120, gives the exact unconditional power). Vectorised over ``n_total``.
    Reference: Borm, Fransen & Lemmens (2007) J Clin Epidemiol 60:1234-1238.
    """
    n = _arr("n_total", n_total)
    if not np.all(n > 3):
        raise ValueError(f"n_total must be > 3 (df = n_total - 3 > 0), got {n_total!r}")
    d = _arr("delta", delta)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"delta must be finite, got {delta!r}")
    s = _positive("sd", sd)
    r = _arr("rho", rho)
    if not np.all((r > -1) & (r < 1)):
        raise ValueError(f"rho must be in the open interval (-1, 1), got {rho!r}")
    _open01("alpha", alpha)
    p = _open01("allocation", allocation)
    k = d / (s * np.sqrt(1 - r**2)) * np.sqrt(p * (1 - p))
    return _out(_t_power(n, k, n - 3, alpha))


def repeated_measures_design_effect(n_visits, icc) -> float:
    r"""Variance factor for the mean of ``k`` post-baseline visits under compound symmetry.

    .. math:: \mathrm{Var}(\bar y) = \sigma^2 \frac{1 + (k - 1)\,\mathrm{icc}}{k}

    so the design effect relative to a single visit is :math:`(1 + (k-1)\,icc) / k`; ``icc``
    (the correlation between two visits of the same patient) in [0, 1], ``n_visits`` >= 1.
    Reference: Diggle P., Heagerty P., Liang K.-Y., Zeger S. (2002) Analysis of Longitudinal
    Data, 2nd ed.; Frison L., Pocock S.J. (1992) Stat Med 11:1685-1704.
    """
    k = _arr("n_visits", n_visits)
    if not np.all((k >= 1) & (k == np.floor(k))):
        raise ValueError(f"n_visits must be an integer >= 1, got {n_visits!r}")
    r = _arr("icc", icc)
    if not np.all((r >= 0) & (r <= 1)):
        raise ValueError(f"icc must be in [0, 1], got {icc!r}")
    return _out((1 + (k - 1) * r) / k)


def repeated_measures_power(n_total, delta, sd, n_visits, icc, alpha=0.05, allocation=0.5):
    """Power for the difference in mean-over-visits between arms (complete data).

    Two-sample t-test (:func:`ttest_power`) on each patient's mean of ``n_visits`` visits,
    whose SD is ``sd * sqrt(repeated_measures_design_effect(n_visits, icc))``; ``sd`` is the
    SD of a single visit. Reference: Frison & Pocock (1992) Stat Med 11:1685-1704.
    """
    de = repeated_measures_design_effect(n_visits, icc)
    s = _positive("sd", sd)
    return ttest_power(n_total, delta, s * np.sqrt(de), alpha, allocation)


def repeated_measures_n(delta, sd, n_visits, icc, alpha=0.05, power=0.8, allocation=0.5) -> float:
    """Total sample size for the mean-over-visits contrast; inverse of :func:`repeated_measures_power`."""
    de = repeated_measures_design_effect(n_visits, icc)
    s = float(_positive("sd", sd))
    return ttest_n(delta, s * math.sqrt(de), alpha, power, allocation)


# --------------------------------------------------------------------------------------------
# binary outcomes
# --------------------------------------------------------------------------------------------
def _two_prop_sds(p0, p1, p):
    """sqrt(n) x SD of p1_hat - p0_hat under H0 (pooled) and under H1."""
    pbar = p * p1 + (1 - p) * p0
    sd0 = np.sqrt(pbar * (1 - pbar) * (1 / p + 1 / (1 - p)))
    sd1 = np.sqrt(p1 * (1 - p1) / p + p0 * (1 - p0) / (1 - p))
    return sd0, sd1


def two_proportions_n(p0, p1, alpha=0.05, power=0.8, allocation=0.5):
    r"""Total sample size to compare two proportions (normal approximation, no continuity correction).

    With :math:`\bar p = p\,p_1 + (1 - p)\,p_0` (allocation-weighted pooled proportion):

    .. math:: n = \frac{\left(z_{1-\alpha/2}\sqrt{\bar p (1 - \bar p)\left(\frac1p + \frac1{1-p}\right)}
              + z_{\mathrm{power}}\sqrt{\frac{p_1 (1 - p_1)}{p} + \frac{p_0 (1 - p_0)}{1 - p}}\right)^2}{(p_1 - p_0)^2}

    For 1:1 this is twice Fleiss' per-arm :math:`(z_{1-\alpha/2}\sqrt{2\bar p\bar q} +
    z_{\mathrm{power}}\sqrt{p_0q_0 + p_1q_1})^2 / (p_1 - p_0)^2`. Unrounded total.
    Reference: Fleiss J.L., Levin B., Paik M.C. (2003) Statistical Methods for Rates and
    Proportions, 3rd ed., ch. 4 (formula without the continuity correction).
    """
    p0 = _open01("p0", p0)
    p1 = _open01("p1", p1)
    if np.any(p0 == p1):
        raise ValueError(f"p0 and p1 must differ, got p0={p0!r}, p1={p1!r}")
    _open01("alpha", alpha)
    _open01("power", power)
    p = _open01("allocation", allocation)
    sd0, sd1 = _two_prop_sds(p0, p1, p)
    num = _z_alpha(alpha) * sd0 + stats.norm.ppf(power) * sd1
    return _out(num**2 / (p1 - p0) ** 2)


def two_proportions_power(n_total, p0, p1, alpha=0.05, allocation=0.5, both_tails=False):
    r"""Power of the two-sided pooled z-test of two proportions (inverse of :func:`two_proportions_n`).

    .. math:: \mathrm{power} = \Phi\left(\frac{|p_1 - p_0|\sqrt{n} - z_{1-\alpha/2}\,s_0}{s_1}\right)

    with :math:`s_0, s_1` the square roots in :func:`two_proportions_n`. With
    ``both_tails=True`` equals statsmodels ``power_proportions_2indep``. Vectorised.
    Reference: Fleiss, Levin & Paik (2003), ch. 4.
    """
    n = _positive("n_total", n_total)
    p0 = _open01("p0", p0)
    p1 = _open01("p1", p1)
    _open01("alpha", alpha)
    p = _open01("allocation", allocation)
    sd0, sd1 = _two_prop_sds(p0, p1, p)
    za = _z_alpha(alpha)
    x = np.abs(p1 - p0) * np.sqrt(n)
    pw = stats.norm.cdf((x - za * sd0) / sd1)
    if both_tails:
        pw = pw + stats.norm.cdf((-x - za * sd0) / sd1)
    return _out(pw)


def hsieh_logistic_probs(p_bar, or_, allocation=0.5) -> tuple[float, float]:
    r"""Event probabilities (P0, P1) in the X = 0 and X = 1 groups with overall rate ``p_bar``.

    Solves :math:`(1 - B) P_0 + B P_1 = \bar P` with
    :math:`P_1 = \mathrm{OR}\,P_0 / (1 - P_0 + \mathrm{OR}\,P_0)` (odds(P1) = OR odds(P0)),
    B = ``allocation`` = P(X = 1); the left side increases with P0, so the root in (0, 1) is
    unique (found with ``brentq``).
    """
    pb = float(_open01("p_bar", p_bar))
    o = float(_ratio("or_", or_))
    b = float(_open01("allocation", allocation))

    def p1_of(p0: float) -> float:
        return o * p0 / (1 - p0 + o * p0)

    p0 = optimize.brentq(
        lambda x: (1 - b) * x + b * p1_of(x) - pb,
        0.0,
        1.0,
        xtol=1e-15,
        rtol=4 * np.finfo(float).eps,
    )
    return float(p0), float(p1_of(p0))


def hsieh_logistic_n(p_bar, or_, alpha=0.05, power=0.8, allocation=0.5) -> float:
    r"""Total sample size for logistic regression on one binary covariate (Hsieh et al. 1998).

    .. math:: n = \frac{\left(z_{1-\alpha/2}\sqrt{\bar P (1 - \bar P)/B}
              + z_{\mathrm{power}}\sqrt{P_0 (1 - P_0) + P_1 (1 - P_1)(1 - B)/B}\right)^2}
              {(P_0 - P_1)^2 (1 - B)}

    ``p_bar`` = overall event rate :math:`\bar P = (1 - B) P_0 + B P_1`, ``or_`` = odds ratio
    of X = 1 vs X = 0, B = ``allocation`` = proportion with X = 1 (e.g. the treated arm).
    :math:`P_0, P_1` are derived from (``p_bar``, ``or_``, B) by :func:`hsieh_logistic_probs`,
    i.e. holding the overall rate fixed (not the control rate). Algebraically identical to
    :func:`two_proportions_n` (P0, P1, allocation B). Unrounded.

    Reference: Hsieh F.Y., Bloch D.A., Larsen M.D. (1998) A simple method of sample size
    calculation for linear and logistic regression. Statistics in Medicine 17:1623-1634.
    """
    _open01("alpha", alpha)
    _open01("power", power)
    b = float(_open01("allocation", allocation))
    p0, p1 = hsieh_logistic_probs(p_bar, or_, b)
    pb = float(p_bar)
    za = float(_z_alpha(alpha))
    zb = float(stats.norm.ppf(power))
    num = za * math.sqrt(pb * (1 - pb) / b) + zb * math.sqrt(
        p0 * (1 - p0) + p1 * (1 - p1) * (1 - b) / b
    )
    return num**2 / ((p0 - p1) ** 2 * (1 - b))


# --------------------------------------------------------------------------------------------
# additions for the power task (experiments/power.py): per-arm event probabilities, the
# exponential closed form, and Hsieh's power
# --------------------------------------------------------------------------------------------
def prob_event_arm(survival_fn, accrual, followup, dropout_rate=0.0) -> float:
    r"""P(event observed) in one arm whose survival function is ``survival_fn`` (any S, not PH).

    Same design as :func:`prob_event` (uniform entry over ``accrual``, analysis ``followup``
    after the last entry, exponential loss to follow-up at ``dropout_rate`` per month from
    entry): :math:`P = \int_0^{a+f} g(t)\, dF(t)`. Use it for an arm whose survival is not
    ``S0 ** hr`` (non-proportional hazards), e.g. an empirical survival curve.
    """
    if not callable(survival_fn):
        raise ValueError("survival_fn must be a callable t -> S(t)")
    a = float(_nonnegative("accrual", accrual))
    f = float(_nonnegative("followup", followup))
    if a + f <= 0:
        raise ValueError(
            f"accrual + followup must be > 0, got accrual={accrual!r}, followup={followup!r}"
        )
    lam = float(_nonnegative("dropout_rate", dropout_rate))
    return float(_prob_event_arm(survival_fn, a, f, lam))


def prob_event_arms(survival_fn_ctrl, hr, accrual, followup, dropout_rate=0.0):
    """(P0, P1): :func:`prob_event` per arm (control S0, experimental S0 ** hr).

    What ``lifelines.statistics.power_under_cph`` calls ``p_con`` and ``p_exp``.
    """
    if not callable(survival_fn_ctrl):
        raise ValueError("survival_fn_ctrl must be a callable t -> S0(t)")
    h = float(_positive("hr", hr))
    p0 = prob_event_arm(survival_fn_ctrl, accrual, followup, dropout_rate)
    p1 = prob_event_arm(lambda t: float(survival_fn_ctrl(t)) ** h, accrual, followup, dropout_rate)
    return p0, p1


def prob_event_exponential(rate, hr, accrual, followup, dropout_rate=0.0, allocation=0.5):
    r"""Closed form of :func:`prob_event` for exponential survival (control hazard ``rate``).

    Per arm, with event hazard :math:`\lambda` (:math:`\lambda_1 = \mathrm{HR}\,\lambda_0`),
    drop-out hazard :math:`\mu` and :math:`\theta = \lambda + \mu`:

    .. math:: P = \frac{\lambda}{\theta}\left[1 - \frac{e^{-\theta f} - e^{-\theta (a + f)}}{\theta a}\right]

    (:math:`\frac{\lambda}{\theta}(1 - e^{-\theta f})` when a = 0); without drop-out the
    classical :math:`1 - (e^{-\lambda f} - e^{-\lambda(a+f)}) / (\lambda a)` (Lachin J.M.,
    Foulkes M.A. (1986) Biometrics 42:507-519; Collett 2015). Returns the allocation-weighted
    average ``(1 - p) P0 + p P1``. Vectorised over ``rate`` and ``hr``.
    """
    lam0 = _positive("rate", rate)
    h = _positive("hr", hr)
    a = float(_nonnegative("accrual", accrual))
    f = float(_nonnegative("followup", followup))
    if a + f <= 0:
        raise ValueError(
            f"accrual + followup must be > 0, got accrual={accrual!r}, followup={followup!r}"
        )
    mu = float(_nonnegative("dropout_rate", dropout_rate))
    p = _open01("allocation", allocation)

    def arm(lam):
        th = lam + mu
        if a == 0:
            return lam / th * (1 - np.exp(-th * f))
        return lam / th * (1 - (np.exp(-th * f) - np.exp(-th * (a + f))) / (th * a))

    return _out((1 - p) * arm(lam0) + p * arm(lam0 * h))


def hsieh_logistic_power(n_total, p_bar, or_, alpha=0.05, allocation=0.5):
    r"""Power of the test of one binary covariate in logistic regression (inverse of :func:`hsieh_logistic_n`).

    .. math:: \mathrm{power} = \Phi\left(\frac{\sqrt{n (1 - B)}\,|P_0 - P_1|
              - z_{1-\alpha/2}\sqrt{\bar P (1 - \bar P) / B}}
              {\sqrt{P_0 (1 - P_0) + P_1 (1 - P_1)(1 - B)/B}}\right)

    with (P0, P1) from :func:`hsieh_logistic_probs` (overall rate ``p_bar``, odds ratio ``or_``,
    B = ``allocation``). One tail, like the sample-size formula it inverts. Vectorised over
    ``n_total``. Reference: Hsieh, Bloch & Larsen (1998) Stat Med 17:1623-1634.
    """
    n = _positive("n_total", n_total)
    _open01("alpha", alpha)
    b = float(_open01("allocation", allocation))
    p0, p1 = hsieh_logistic_probs(p_bar, or_, b)
    pb = float(p_bar)
    za = float(_z_alpha(alpha))
    s1 = math.sqrt(p0 * (1 - p0) + p1 * (1 - p1) * (1 - b) / b)
    x = np.sqrt(n * (1 - b)) * abs(p0 - p1) - za * math.sqrt(pb * (1 - pb) / b)
    return _out(stats.norm.cdf(x / s1))


__all__ += [
    "prob_event_arm",
    "prob_event_arms",
    "prob_event_exponential",
    "hsieh_logistic_power",
]
