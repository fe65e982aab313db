"""Missing data: death truncation, monotone dropout (MCAR / MAR / MNAR), intermittent misses,
and optional missing baseline covariates.

Visit status codes (visits table column ``status``): 0 observed, 1 missed (intermittent),
2 dropped out, 3 dead. At each post-baseline visit j (weeks 1, 4, 8, 12) a patient still in the
study and alive drops out (for good) with probability expit(alpha + m_ij):
  mcar: m_ij = 0;  mar: m_ij = b_N (last observed NRS - 5) + b_E (ECOG - 1.5);
  mnar: m_ij = b_N (current, unobserved NRS_ij - 5).
alpha is solved by bisection on a large fixed sample so that, among patients alive at week 12,
the fraction with a missing week-12 NRS equals ``missingness.target_week12``. Intermittent misses
(weeks 1-8 only, so the week-12 target stays exact) are MCAR with probability ``intermittent``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from palliasim.sim import schedule
from palliasim.sim.covariates import ECOG_CENTRE
from palliasim.sim.errors import ConfigError

VISIT_MONTHS = np.asarray(schedule.VISIT_MONTHS)
OBSERVED, MISSED, DROPOUT, DEAD = 0, 1, 2, 3


def draw_missing_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """(8, n): dropout uniforms for 4 visits, intermittent for 3, one for covariates."""
    return rng.random((8, n))


def visit_status(
    mis: dict,
    alpha: float,
    nrs_obs: np.ndarray,
    alive: np.ndarray,
    ecog: np.ndarray,
    nrs0: np.ndarray,
    u: np.ndarray,
) -> np.ndarray:
    """(n, 4) status codes for weeks 1, 4, 8, 12 (see module docstring)."""
    n = nrs0.shape[0]
    mech = mis["mechanism"]
    status = np.zeros((n, 4), dtype=np.int8)
    in_study = np.ones(n, dtype=bool)
    last = nrs0.copy()
    for j in range(4):
        if mech != "none":
            if mech == "mcar":
                lp = alpha
            elif mech == "mar":
                lp = alpha + mis["mar_nrs"] * (last - 5.0) + mis["mar_ecog"] * (ecog - ECOG_CENTRE)
            else:
                lp = alpha + mis["mnar_nrs"] * (nrs_obs[:, j] - 5.0)
            in_study &= ~(alive[:, j] & (u[j] < expit(lp)))
        missed = (u[4 + j] < mis["intermittent"]) if j < 3 else np.zeros(n, dtype=bool)
        st = np.where(
            ~alive[:, j], DEAD, np.where(~in_study, DROPOUT, np.where(missed, MISSED, OBSERVED))
        )
        status[:, j] = st
        obs = st == OBSERVED
        last = np.where(obs, nrs_obs[:, j], last)
    return status


def solve_dropout_intercept(mis: dict, nrs_obs, alive, ecog, nrs0, u) -> float:
    """alpha such that P(week-12 NRS missing | alive at week 12) = target (bisection)."""
    target = mis["target_week12"]
    if mis["mechanism"] == "none":
        return -np.inf
    if target <= 0:
        return -np.inf
    alive12 = alive[:, 3]
    if not alive12.any():
        raise ConfigError("missingness.target_week12 cannot be reached: nobody is alive at week 12")

    def frac(alpha):
        st = visit_status(mis, alpha, nrs_obs, alive, ecog, nrs0, u)
        return np.mean(st[alive12, 3] == DROPOUT)

    lo, hi = -25.0, 25.0
    if frac(hi) < target:
        raise ConfigError(
            f"missingness.target_week12 = {target} cannot be reached by any dropout intercept "
            f"(maximum {frac(hi):.3f}); allowed: a fraction below that"
        )
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if frac(mid) > target:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def covariate_missing(mis: dict, age: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Boolean mask of patients whose listed baseline covariates are missing."""
    c = mis["covariates"]
    if c["mechanism"] == "none" or c["fraction"] <= 0:
        return np.zeros(age.shape[0], dtype=bool)
    if c["mechanism"] == "mcar":
        return u < c["fraction"]
    # mar on (observed) age: older patients more often incomplete; fraction approximate
    return u < expit(logit(c["fraction"]) + 0.05 * (age - 62.0))
