"""Pain: latent NRS trajectory, week-12 opioid dose, consensus pain response, relief times.

NRS model (both arms a = 0, 1 from the same draws: potential outcomes with common noise):
  Y_ij(a) = NRS0_i + m_j + a d_j + kappa (NRS0_i - 7.4) + beta_E (ECOG_i - 1.5)
            + beta_O strongopioid_i + lambda U_i + b_i + s_i w_j / 12 + e_ij,   j = 1, 4, 8, 12
  b_i ~ N(0, sd_intercept^2), s_i ~ N(0, sd_slope^2), e_ij ~ N(0, sd_residual^2);
  observed NRS_ij = clip(round(Y_ij), 0, 10); NRS at week 0 is the baseline NRS0 (4..10).
Week-12 OMED: unchanged with probability p_unchanged, else OMED0 * exp(N(mu_a, sd)) with
  mu_a = control_log_change + effect a + pain_coupling (Y_i12(a) - NRS0_i); non-users start an
  opioid with probability expit(logit(start_prob_control) + start_prob_effect a).
Consensus response (2012 update): complete = NRS 0 and no OMED increase; partial = NRS drop >= 2
  without OMED increase, or OMED drop >= 25% without NRS increase; progression = NRS rise >= 2
  with stable OMED, or OMED rise >= 25% with NRS at most 1 above baseline; else indeterminate.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from palliasim.sim import schedule
from palliasim.sim.covariates import ECOG_CENTRE, NRS_CENTRE

CATEGORIES = ("complete", "partial", "indeterminate", "progression")
WEEKS = np.asarray(schedule.WEEKS)


def draw_nrs_latent(p: dict, cov: dict, rng: np.random.Generator, n: int) -> dict:
    """Latent post-baseline NRS under both arms: arrays (n, 4) ``Y0`` and ``Y1``, and b_i."""
    q = p["nrs"]
    z = rng.standard_normal((n, 6))
    b = q["sd_intercept"] * z[:, 0]
    s = q["sd_slope"] * z[:, 1]
    w = WEEKS[1:] / 12.0
    base = (
        cov["nrs0"]
        + q["baseline_slope"] * (cov["nrs0"] - NRS_CENTRE)
        + q["ecog_effect"] * (cov["ecog"] - ECOG_CENTRE)
        + q["opioid_effect"] * cov["strong_opioid"]
        + q["u_effect"] * cov["U"]
        + b
    )
    y0 = base[:, None] + np.asarray(q["mean_change_control"]) + s[:, None] * w
    y0 = y0 + q["sd_residual"] * z[:, 2:]
    y1 = y0 + np.asarray(q["effect"])
    sd_b = q["sd_intercept"]
    return {"Y0": y0, "Y1": y1, "b_std": b / sd_b if sd_b > 0 else np.zeros(n)}


def observe_nrs(y: np.ndarray) -> np.ndarray:
    """Observed integer NRS 0-10 from a latent value."""
    return np.clip(np.rint(y), 0.0, 10.0) + 0.0  # + 0.0 turns -0.0 into 0.0


def draw_opioid_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.vstack([rng.random(n), rng.standard_normal(n), rng.random(n), rng.standard_normal(n)])


def omed_week12(p: dict, cov: dict, y12: np.ndarray, a: int, draws: np.ndarray) -> np.ndarray:
    """Week-12 OMED under arm ``a`` (mg/day)."""
    o = p["opioid"]
    omed0 = cov["omed0"]
    mu = o["control_log_change"] + o["effect"] * a + o["pain_coupling"] * (y12 - cov["nrs0"])
    changed = omed0 * np.exp(mu + o["sd"] * draws[1])
    users = np.where(draws[0] < o["p_unchanged"], omed0, changed)
    sp = o["start_prob_control"]
    pstart = expit(logit(np.clip(sp, 1e-12, 1 - 1e-12)) + o["start_prob_effect"] * a)
    start_dose = p["covariates"]["omed_weak_median"] * np.exp(0.3 * draws[3])
    starters = np.where(draws[2] < pstart, start_dose, 0.0)
    return np.round(np.where(omed0 > 0, users, starters), 1)


def consensus_category(nrs0, nrs12, omed0, omed12, increase_threshold: float = 0.0):
    """Consensus category code 0..3 (complete, partial, indeterminate, progression)."""
    dn = nrs12 - nrs0
    inc = omed12 > omed0 * (1.0 + increase_threshold) + 1e-9
    dec25 = (omed0 > 0) & (omed12 <= 0.75 * omed0 + 1e-9)
    inc25 = np.where(omed0 > 0, omed12 >= 1.25 * omed0 - 1e-9, omed12 > 0)
    stable = ~inc & ~dec25
    complete = (nrs12 == 0) & ~inc
    partial = ((dn <= -2) & ~inc) | (dec25 & (dn <= 0))
    progression = ((dn >= 2) & stable) | (inc25 & (dn <= 1))
    cat = np.full(np.shape(nrs0), 2, dtype=np.int8)
    cat[progression] = 3
    cat[partial] = 1
    cat[complete] = 0
    return cat


def direct_response_prob(p: dict, cov: dict, a: int) -> np.ndarray:
    """response.mode = direct: P(response) from the logistic model with conditional log OR."""
    d = p["response"]["direct"]
    lp = (
        d["intercept"]
        + d["log_or"] * a
        + d["nrs0"] * (cov["nrs0"] - NRS_CENTRE)
        + d["ecog"] * (cov["ecog"] - ECOG_CENTRE)
        + d["strong_opioid"] * cov["strong_opioid"]
        + d["lesions_gt3"] * cov["lesions_gt3"]
        + d["u_effect"] * cov["U"]
    )
    return expit(lp)


def relief_times(nrs0: np.ndarray, nrs_obs: np.ndarray, threshold: float):
    """Onset of meaningful relief (first visit with NRS drop >= threshold) and its duration.

    ``nrs_obs`` is (n, 4) for weeks 1, 4, 8, 12 with NaN where not observed. Returns onset week,
    onset event, duration in weeks (from onset to the first later observed visit without relief)
    and duration event; censored at the last observed visit; duration NaN without onset.
    """
    w = WEEKS[1:].astype(float)
    obs = ~np.isnan(nrs_obs)
    relief = obs & ((nrs0[:, None] - nrs_obs) >= threshold)
    any_obs = obs.any(axis=1)
    last = np.where(any_obs, w[3 - np.argmax(obs[:, ::-1], axis=1)], 0.0)
    has_onset = relief.any(axis=1)
    j_on = np.argmax(relief, axis=1)
    onset = np.where(has_onset, w[j_on], last)
    lost = obs & ~relief & (np.arange(4)[None, :] > j_on[:, None])
    has_loss = has_onset & lost.any(axis=1)
    j_loss = np.argmax(lost, axis=1)
    dur_end = np.where(has_loss, w[j_loss], last)
    duration = np.where(has_onset, dur_end - onset, np.nan)
    return onset, has_onset.astype(np.int8), duration, has_loss.astype(np.int8)
