"""PFS and OS: Weibull proportional hazards, correlated through U, with staggered accrual.

Death:        h_D(t) = (k_D / s_D) (t / s_D)^(k_D - 1) exp(lp_D),
              lp_D = b_A A + b_U U + b_E (ECOG - 1.5) + b_V visceral + b_age (age - 62)
Progression:  h_P(t) likewise with lp_P = c_A A + c_U U + c_E (ECOG - 1.5) + c_b b_i / sd_b
T = s (E / exp(lp))^(1/k), E ~ Exp(1) shared by both arms (potential outcomes with common noise).
PFS = min(T_P, T_D) (progression or death), so OS >= PFS always. Censoring: entry ~ U(0, accrual),
administrative censoring at accrual + min_followup - entry, loss to follow-up ~ Exp(ltfu_rate);
loss to follow-up for survival starts after the 12-week PRO window (week 12 + Exp(ltfu_rate)),
so no visit is ever observed after censoring; C = min of both. Months throughout; conditional
HRs are exp(b_A), exp(c_A).
"""

from __future__ import annotations

import numpy as np

from palliasim.sim.covariates import ECOG_CENTRE

AGE_CENTRE = 62.0
PRO_WINDOW_MONTHS = 12 * 7.0 / 30.4375  # week 12


def draw_survival_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """E_death, E_progression (standard exponential), entry uniform, loss-to-follow-up Exp(1)."""
    return np.vstack(
        [
            rng.standard_exponential(n),
            rng.standard_exponential(n),
            rng.random(n),
            rng.standard_exponential(n),
        ]
    )


def _weibull(spec: dict, lp: np.ndarray, e: np.ndarray) -> np.ndarray:
    return spec["scale"] * (e * np.exp(-lp)) ** (1.0 / spec["shape"])


def event_times(p: dict, cov: dict, b_std: np.ndarray, draws: np.ndarray, a: int):
    """Potential death and progression-free times (months) under arm ``a``."""
    s = p["survival"]
    os_, pr = s["os"], s["progression"]
    lp_d = (
        os_["log_hr"] * a
        + os_["u_effect"] * cov["U"]
        + os_["ecog"] * (cov["ecog"] - ECOG_CENTRE)
        + os_["visceral"] * cov["visceral"]
        + os_["age"] * (cov["age"] - AGE_CENTRE)
    )
    lp_p = (
        pr["log_hr"] * a
        + pr["u_effect"] * cov["U"]
        + pr["ecog"] * (cov["ecog"] - ECOG_CENTRE)
        + pr["pain_loading"] * b_std
    )
    t_death = _weibull(os_, lp_d, draws[0])
    t_prog = _weibull(pr, lp_p, draws[1])
    return t_death, np.minimum(t_prog, t_death), (t_prog < t_death)


def censoring_times(p: dict, draws: np.ndarray) -> np.ndarray:
    """Censoring time C (months) from staggered accrual and loss to follow-up."""
    c = p["survival"]["censoring"]
    admin = c["accrual_months"] * (1.0 - draws[2]) + c["min_followup_months"]
    if c["ltfu_rate"] > 0:
        return np.minimum(admin, PRO_WINDOW_MONTHS + draws[3] / c["ltfu_rate"])
    return admin
