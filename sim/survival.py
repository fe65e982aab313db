"""PFS and OS: Weibull proportional hazards for death; pain progression from the pain process;
staggered accrual and loss to follow-up.

Death:  h_D(t) = (k_D / s_D) (t / s_D)^(k_D - 1) exp(lp_D),
        lp_D = b_A A + b_U U + b_E (ECOG - 1.5) + b_V visceral + b_age (age - 62).
Pain progression (the study's PFS event besides death) is the first time the patient's latent
pain and opioid process meets the consensus progression criteria (sim/pain.py):
- during the 12-week PRO window, at the first visit (weeks 1, 4, 8, 12) where the latent NRS and
  OMED under arm a, the patient alive, meet them (the event time is that visit: a patient who
  meets them at an observed visit has progressed by that visit);
- after week 12 the process is continued by its first-passage time: week 12 + W, W Weibull PH
  with lp_P = c_A A + c_U U + c_E (ECOG - 1.5) + c_pain (Y_12(a) - NRS0 + 4) (less relief at
  week 12, earlier progression).
PFS = min(visit progression, continued progression, death), so OS >= PFS always; Weibull draws
T = s (E / exp(lp))^(1/k), E ~ Exp(1) shared by both arms (potential outcomes with common noise).
Censoring: entry ~ U(0, accrual), administrative censoring at accrual + min_followup - entry, loss
to follow-up ~ Exp(ltfu_rate) starting after the 12-week PRO window (week 12 + Exp(ltfu_rate)),
so no visit is ever observed after censoring; C = min of both. Months throughout; the
conditional HR of death is exp(b_A); PFS is not PH in the arm (its effect runs partly through the
pain process).
"""

from __future__ import annotations

import numpy as np

from palliasim.sim import schedule
from palliasim.sim.covariates import ECOG_CENTRE

AGE_CENTRE = 62.0
#: centre of the latent week-12 pain change Y_12(a) - NRS0 in the progression hazard
PAIN_CHANGE_CENTRE = -4.0
PRO_WINDOW_MONTHS = schedule.W12_MONTHS  # week 12


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


def death_times(p: dict, cov: dict, draws: np.ndarray, a) -> np.ndarray:
    """Potential death times T_D(a) (months)."""
    os_ = p["survival"]["os"]
    lp_d = (
        os_["log_hr"] * a
        + os_["u_effect"] * cov["U"]
        + os_["ecog"] * (cov["ecog"] - ECOG_CENTRE)
        + os_["visceral"] * cov["visceral"]
        + os_["age"] * (cov["age"] - AGE_CENTRE)
    )
    return _weibull(os_, lp_d, draws[0])


def pfs_times(p: dict, cov: dict, draws: np.ndarray, a, pain_change12, t_visit, t_death):
    """Potential PFS times (months): min(first visit meeting the progression criteria,
    week 12 + time for the continued process to meet them, death)."""
    pr = p["survival"]["progression"]
    lp_p = (
        pr["log_hr"] * a
        + pr["u_effect"] * cov["U"]
        + pr["ecog"] * (cov["ecog"] - ECOG_CENTRE)
        + pr["pain_effect"] * (pain_change12 - PAIN_CHANGE_CENTRE)
    )
    t_cont = PRO_WINDOW_MONTHS + _weibull(pr, lp_p, draws[1])
    return np.minimum(np.minimum(t_visit, t_cont), t_death)


def censoring_times(p: dict, draws: np.ndarray) -> np.ndarray:
    """Censoring time C (months) from staggered accrual and loss to follow-up."""
    c = p["survival"]["censoring"]
    admin = c["accrual_months"] * (1.0 - draws[2]) + c["min_followup_months"]
    if c["ltfu_rate"] > 0:
        return np.minimum(admin, PRO_WINDOW_MONTHS + draws[3] / c["ltfu_rate"])
    return admin
