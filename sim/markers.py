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
    """Week-12 marker values under arm ``a``: ``log_{m}12`` (inflammatory), ``{m}12`` (nutrition).

    All markers of a kind at once, as rows of one array (the same elementwise arithmetic as one
    marker at a time, so the same numbers)."""
    mk = p["markers"]
    spec_i = p["covariates"]["inflammatory"]
    spec_n = p["covariates"]["nutritional"]
    dpain = y12 - cov["nrs0"]
    ki = len(INFLAMMATORY)

    def col(values):
        return np.array(values, dtype=float)[:, None]

    mu = col([np.log(spec_i[m]["median"]) for m in INFLAMMATORY])
    x0 = np.array([cov[f"log_{m}0"] for m in INFLAMMATORY])
    v = mu + mk["persistence"] * (x0 - mu) + col([mk["effect"][m] for m in INFLAMMATORY]) * a
    frac_sd = col([mk["noise_sd_fraction"] * spec_i[m]["sdlog"] for m in INFLAMMATORY])
    v = v + mk["pain_coupling"] * dpain + frac_sd * z[:ki]
    out = {f"log_{m}12": v[i] for i, m in enumerate(INFLAMMATORY)}
    mean = col([spec_n[m]["mean"] for m in NUTRITIONAL])
    x0 = np.array([cov[f"{m}0"] for m in NUTRITIONAL])
    v = mean + mk["persistence"] * (x0 - mean) + col([mk["effect"][m] for m in NUTRITIONAL]) * a
    v = v - col([mk["pain_coupling"] * spec_n[m]["sd"] for m in NUTRITIONAL]) * dpain
    v = v + col([mk["noise_sd_fraction"] * spec_n[m]["sd"] for m in NUTRITIONAL]) * z[ki:]
    v = np.maximum(v, col([spec_n[m]["min"] for m in NUTRITIONAL]))
    out.update({f"{m}12": v[j] for j, m in enumerate(NUTRITIONAL)})
    return out
