"""Blood markers and caloric intake at week 12, with treatment effects.

Inflammatory markers on the log scale, nutritional ones on their natural scale:
  v12(a) = mu + rho (v0 - mu) + tau a + kappa (Y12(a) - NRS0) + s e,  s = noise_sd_fraction * sd0
with kappa in log-units (inflammatory, sign +: relief lowers inflammation) or SD units
(nutritional, sign -: relief improves nutrition). Nutritional values are floored at their minimum.
The true difference is tau plus the pain-mediated part (Monte Carlo).
"""

from __future__ import annotations

import numpy as np

from palliasim.sim.covariates import INFLAMMATORY, NUTRITIONAL

MARKERS = INFLAMMATORY + NUTRITIONAL


def draw_marker_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal((len(MARKERS), n))


def markers_week12(p: dict, cov: dict, y12: np.ndarray, a: int, z: np.ndarray) -> dict:
    """Week-12 marker values under arm ``a``: ``log_{m}12`` (inflammatory), ``{m}12`` (nutrition)."""
    mk = p["markers"]
    spec_i = p["covariates"]["inflammatory"]
    spec_n = p["covariates"]["nutritional"]
    dpain = y12 - cov["nrs0"]
    out = {}
    for i, m in enumerate(INFLAMMATORY):
        mu = np.log(spec_i[m]["median"])
        sd = spec_i[m]["sdlog"]
        v = mu + mk["persistence"] * (cov[f"log_{m}0"] - mu) + mk["effect"][m] * a
        out[f"log_{m}12"] = v + mk["pain_coupling"] * dpain + mk["noise_sd_fraction"] * sd * z[i]
    for j, m in enumerate(NUTRITIONAL):
        s = spec_n[m]
        v = s["mean"] + mk["persistence"] * (cov[f"{m}0"] - s["mean"]) + mk["effect"][m] * a
        v = v - mk["pain_coupling"] * s["sd"] * dpain
        v = v + mk["noise_sd_fraction"] * s["sd"] * z[len(INFLAMMATORY) + j]
        out[f"{m}12"] = np.maximum(v, s["min"])
    return out
