"""Quality of life: five domains 0-100 at baseline and week 12, correlated with pain.

Q0_id = mu_d + beta0 (NRS0_i - 7.4) + sd0 (0.6 g_i + 0.8 z_id), clipped to [0, 100];
Q12_id(a) = mu_d + rho (Q0_id - mu_d) + gamma (Y_i12(a) - NRS0_i) + tau_d a + sd_e e_id, clipped.
g_i is a shared patient factor, so domains are correlated; gamma < 0 ties QoL to pain relief.
The true difference is therefore tau_d plus the pain-mediated part, computed by Monte Carlo.
"""

from __future__ import annotations

import numpy as np

from palliasim.sim.covariates import NRS_CENTRE

DOMAINS = ("global", "physical", "role", "emotional", "social")


def draw_qol_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal((11, n))


def qol_baseline(p: dict, cov: dict, z: np.ndarray) -> np.ndarray:
    """(5, n) baseline scores."""
    q = p["qol"]
    mu = np.asarray(q["baseline_mean"])[:, None]
    val = (
        mu
        + q["baseline_nrs_slope"] * (cov["nrs0"] - NRS_CENTRE)
        + q["baseline_sd"] * (0.6 * z[0] + 0.8 * z[1:6])
    )
    return np.clip(np.round(val, 1), 0.0, 100.0)


def qol_week12(p: dict, cov: dict, q0: np.ndarray, y12: np.ndarray, a: int, z) -> np.ndarray:
    """(5, n) week-12 scores under arm ``a``."""
    q = p["qol"]
    mu = np.asarray(q["baseline_mean"])[:, None]
    val = (
        mu
        + q["persistence"] * (q0 - mu)
        + q["pain_coupling"] * (y12 - cov["nrs0"])
        + np.asarray(q["effect"])[:, None] * a
        + q["sd_residual"] * z[6:11]
    )
    return np.clip(np.round(val, 1), 0.0, 100.0)
