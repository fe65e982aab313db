"""Pain: latent NRS trajectory, week-12 opioid dose, consensus pain response, relief times.

NRS model (both arms a = 0, 1 from the same draws: potential outcomes with common noise):
  Y_ij(a) = NRS0_i + m_j + a d_j + kappa (NRS0_i - 7.4) + beta_E (ECOG_i - 1.5)
            + beta_O strongopioid_i + lambda U_i + b_i + s_i w_j / 12 + e_ij,   j = 1, 4, 8, 12
  b_i ~ N(0, sd_intercept^2), s_i ~ N(0, sd_slope^2), e_ij ~ N(0, sd_residual^2);
  observed NRS_ij = clip(round(Y_ij), 0, 10); NRS at week 0 is the baseline NRS0 (4..10).
OMED at weeks 1-12 (:func:`omed_path`): unchanged with probability p_unchanged, else
  OMED0 * exp(f_j (mu_ij + sd z_i)), f_j = week_j / 12, mu_ij = control_log_change + effect a
  + pain_coupling (Y_ij(a) - NRS0_i); non-users start an opioid by week 12 with probability
  expit(logit(start_prob_control) + start_prob_effect a), at a uniform time in the window.
Consensus categories (Chow et al. 2012, see :func:`consensus_category`): complete = NRS 0 without
  an OMED increase; partial = NRS drop >= 2 without an OMED increase, or OMED reduced by >= 25%
  without an NRS increase; progression = NRS rise >= 2 with stable OMED, or OMED increased by
  >= 25% with NRS unchanged or 1 point above baseline; indeterminate = anything else.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from palliasim.sim import pain_kernel as _k
from palliasim.sim import schedule
from palliasim.sim.covariates import ECOG_CENTRE, NRS_CENTRE

CATEGORIES = ("complete", "partial", "indeterminate", "progression")
WEEKS = np.asarray(schedule.WEEKS)


def draw_nrs_latent(p: dict, cov: dict, rng: np.random.Generator, n: int) -> dict:
    """Latent post-baseline NRS under both arms: arrays (n, 4) ``Y0`` and ``Y1``."""
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
    return {"Y0": y0, "Y1": y1}


def observe_nrs(y: np.ndarray) -> np.ndarray:
    """Observed integer NRS 0-10 from a latent value."""
    return np.clip(np.rint(y), 0.0, 10.0) + 0.0  # + 0.0 turns -0.0 into 0.0


def draw_opioid_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.vstack([rng.random(n), rng.standard_normal(n), rng.random(n), rng.standard_normal(n)])


def omed_path(p: dict, cov: dict, y: np.ndarray, a, draws: np.ndarray) -> np.ndarray:
    """OMED (mg/day) at weeks 1, 4, 8, 12 under arm ``a``: array (n, 4), rounded to 0.1 mg.

    A user whose dose changes (probability 1 - p_unchanged) moves along
    log OMED_j = log OMED0 + f_j (mu_j + sd z), f_j = week_j / 12, with
    mu_j = control_log_change + effect a + pain_coupling (Y_ij(a) - NRS0); at week 12 this is the
    week-12 model of the module docstring. A non-user who starts an opioid by week 12 (uniform
    u < pstart) starts at week 12 u / pstart (uniform over the window) at a weak-opioid dose.
    Two compiled passes (sim/pain_kernel.py) around numpy's exp; :func:`omed_path_numpy` is the
    same model in numpy, bit for bit.
    """
    o = p["opioid"]
    omed0 = np.asarray(cov["omed0"], float)
    a_col = np.asarray(a, float)
    f = WEEKS[1:] / 12.0
    arg = _k.omed_exponent(
        a_col.reshape(-1), np.asarray(y, float), np.asarray(cov["nrs0"], float),
        draws[1], f, float(o["control_log_change"]), float(o["effect"]),
        float(o["pain_coupling"]), float(o["sd"]),
    )  # fmt: skip
    growth = np.exp(arg)  # numpy's exp: the kernels leave the transcendental steps to numpy
    pstart = np.asarray(_start_prob(o, a_col), float).reshape(-1)
    return _k.omed_doses(
        omed0, growth, draws[0], float(o["p_unchanged"]), draws[2], pstart, f,
        _start_dose(p, draws),
    )  # fmt: skip


def _start_prob(o: dict, a_col):
    """P(a non-user starts an opioid by week 12) under arm ``a_col`` (elementwise)."""
    sp = o["start_prob_control"]
    return expit(logit(np.clip(sp, 1e-12, 1 - 1e-12)) + o["start_prob_effect"] * a_col)


def _start_dose(p: dict, draws: np.ndarray) -> np.ndarray:
    """The weak-opioid dose a non-user starts on (mg/day)."""
    return p["covariates"]["omed_weak_median"] * np.exp(0.3 * draws[3])


def omed_path_numpy(p: dict, cov: dict, y: np.ndarray, a, draws: np.ndarray) -> np.ndarray:
    """The numpy formulation of :func:`omed_path` (bit-identical; the reference its compiled
    passes are tested against)."""
    o = p["opioid"]
    omed0 = cov["omed0"][:, None]
    a_col = np.asarray(a, float)
    a_col = a_col[:, None] if a_col.ndim == 1 else a_col
    f = WEEKS[1:][None, :] / 12.0
    mu = (
        o["control_log_change"]
        + o["effect"] * a_col
        + o["pain_coupling"] * (y - cov["nrs0"][:, None])
    )
    changed = omed0 * np.exp(f * (mu + o["sd"] * draws[1][:, None]))
    users = np.where(draws[0][:, None] < o["p_unchanged"], omed0, changed)
    pstart = _start_prob(o, a_col)
    starters = np.where(draws[2][:, None] < pstart * f, _start_dose(p, draws)[:, None], 0.0)
    return np.round(np.where(omed0 > 0, users, starters), 1)


def omed_week12(p: dict, cov: dict, y12: np.ndarray, a, draws: np.ndarray) -> np.ndarray:
    """Week-12 OMED under arm ``a`` (mg/day): the last column of :func:`omed_path`."""
    y = np.repeat(np.asarray(y12, float)[:, None], 4, axis=1)
    return omed_path(p, cov, y, a, draws)[:, 3]


COMPLETE, PARTIAL, INDETERMINATE, PROGRESSION = 0, 1, 2, 3
_TIE = 1e-9  # mg/day: OMED values are rounded to 0.1 mg, so ties at a threshold are exact


def consensus_category(
    nrs0,
    nrs,
    omed0,
    omed,
    increase_threshold: float = 0.0,
    partial_decrease: float = 0.25,
    progression_increase: float = 0.25,
):
    """International consensus category (Chow et al. 2012) of NRS ``nrs`` and OMED ``omed``
    against baseline (``nrs0``, ``omed0``), elementwise: codes 0..3 = complete, partial,
    indeterminate, progression.

    With dN = NRS - NRS0 (integers), OMED "increased" = OMED > OMED0 (1 + increase_threshold),
    "reduced by >= 25%" = OMED <= OMED0 (1 - partial_decrease), "increased by >= 25%" =
    OMED >= OMED0 (1 + progression_increase) (ties count; no baseline opioid: any dose > 0 is an
    increase of >= 25% and no reduction is possible), "stable" = neither increased nor reduced:
      complete     NRS = 0 and OMED not increased;
      partial      dN <= -2 and OMED not increased, or OMED reduced by >= 25% and dN <= 0;
      progression  dN >= 2 and OMED stable, or OMED increased by >= 25% and 0 <= dN <= 1
                   (pain "stable or 1 point above baseline": a drop does not qualify);
      indeterminate everything else. The four are mutually exclusive.
    """
    nrs0, nrs = np.asarray(nrs0, float), np.asarray(nrs, float)
    omed0, omed = np.asarray(omed0, float), np.asarray(omed, float)
    dn = nrs - nrs0
    user = omed0 > 0
    increased = omed > omed0 * (1.0 + increase_threshold) + _TIE
    reduced = user & (omed <= omed0 * (1.0 - partial_decrease) + _TIE)
    up25 = np.where(user, omed >= omed0 * (1.0 + progression_increase) - _TIE, omed > _TIE)
    stable = ~increased & ~reduced
    complete = (nrs == 0) & ~increased
    partial = ((dn <= -2) & ~increased) | (reduced & (dn <= 0))
    progression = ((dn >= 2) & stable) | (up25 & (dn >= 0) & (dn <= 1))
    cat = np.full(np.shape(dn), INDETERMINATE, dtype=np.int8)
    cat[progression] = PROGRESSION
    cat[partial] = PARTIAL
    cat[complete] = COMPLETE
    return cat


def first_progression_visit(nrs0, nrs, omed0, omed, alive, thresholds: dict) -> np.ndarray:
    """Index (0..3, weeks 1, 4, 8, 12) of the first visit at which the patient, alive, meets the
    progression criteria on the latent (potential) NRS and OMED, or -1 if none; ``nrs``, ``omed``
    and ``alive`` are (n, 4). One compiled pass (sim/pain_kernel.py) with the categories of
    :func:`consensus_category`."""
    return _k.first_progression(
        np.asarray(nrs0, float), np.asarray(nrs, float), np.asarray(omed0, float),
        np.asarray(omed, float), np.asarray(alive, bool), float(thresholds["increase_threshold"]),
        float(thresholds["partial_decrease"]), float(thresholds["progression_increase"]),
    )  # fmt: skip


def first_progression_visit_numpy(nrs0, nrs, omed0, omed, alive, thresholds: dict) -> np.ndarray:
    """The numpy formulation of :func:`first_progression_visit` (its tested reference)."""
    nrs0, omed0 = np.asarray(nrs0, float)[:, None], np.asarray(omed0, float)[:, None]
    cat = consensus_category(nrs0, nrs, omed0, omed, **thresholds)  # all visits at once
    prog = (cat == PROGRESSION) & alive
    return np.where(prog.any(axis=1), np.argmax(prog, axis=1), -1)


def category_thresholds(response: dict) -> dict:
    """The consensus thresholds of a scenario's ``response`` section (keyword arguments)."""
    return {
        "increase_threshold": response["increase_threshold"],
        "partial_decrease": response["partial_omed_decrease"],
        "progression_increase": response["progression_omed_increase"],
    }


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
    return _k.relief_times(
        np.asarray(nrs0, float), np.asarray(nrs_obs, float), float(threshold),
        WEEKS[1:].astype(float),
    )  # fmt: skip


def relief_times_numpy(nrs0: np.ndarray, nrs_obs: np.ndarray, threshold: float):
    """The numpy formulation of :func:`relief_times` (one compiled pass, sim/pain_kernel.py;
    this is its tested reference)."""
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
