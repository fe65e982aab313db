"""Baseline covariates with realistic joint dependence (Gaussian copula on latent factors).

Model. A measured disease-burden factor F ~ N(0, 1) and an inflammation factor
I = l_I F + sqrt(1 - l_I^2) Z drive the latent normal of each covariate:
x*_k = l_k F + sqrt(1 - l_k^2) Z_k, thresholded at normal quantiles so that every marginal equals
its configured probability exactly (ECOG and baseline NRS are ordinal cuts, binary covariates a
single cut). Markers are log-normal (inflammatory) or normal (nutritional) loading on I.
The unmeasured prognostic factor U ~ N(0, u_sd^2) is independent of every measured covariate, so
confounding through U leaves Table 1 balanced.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from palliasim.sim.covariates_kernel import covariate_columns

PRIMARIES = ("breast", "lung", "prostate", "gi", "other")
SITES = ("axial", "appendicular", "mixed")
RT_SCHEMES = ("single_8gy", "short_20gy", "long_30gy")
RT_DOSE = np.array([8.0, 20.0, 30.0])
RT_FRACTIONS = np.array([1, 5, 10])
INFLAMMATORY = ("crp", "tnf", "il6", "wbc", "pct", "nlr")
NUTRITIONAL = ("albumin", "hb", "transferrin", "calories")
NRS_CENTRE = 7.4
ECOG_CENTRE = 1.5


def _cuts(probs) -> np.ndarray:
    c = np.cumsum(np.asarray(probs, dtype=float))[:-1]
    return ndtri(np.clip(c, 1e-12, 1 - 1e-12))


def _spinal_probs(p: float, p_axial: float, odds_ratio: float) -> tuple[float, float]:
    """P(spinal | axial), P(spinal | not axial) with the given OR and marginal p (bisection)."""
    lo, hi = 1e-9, 1 - 1e-9
    for _ in range(80):
        q0 = 0.5 * (lo + hi)
        o1 = odds_ratio * q0 / (1 - q0)
        q1 = o1 / (1 + o1)
        if p_axial * q1 + (1 - p_axial) * q0 > p:
            hi = q0
        else:
            lo = q0
    q0 = 0.5 * (lo + hi)
    o1 = odds_ratio * q0 / (1 - q0)
    return o1 / (1 + o1), q0


def covariate_constants(cov: dict) -> dict:
    """Thresholds derived once per scenario from the configured marginals."""
    site_p = [cov["site_probs"][k] for k in SITES]
    sp_ax, sp_non = _spinal_probs(cov["spinal_prob"], site_p[0], cov["spinal_axial_or"])
    return {
        "primary_cum": np.cumsum([cov["primary_probs"][k] for k in PRIMARIES])[:-1],
        "site_cum": np.cumsum(site_p)[:-1],
        "rt_cum": np.cumsum([cov["rt_probs"][k] for k in RT_SCHEMES])[:-1],
        "ecog_cuts": _cuts(cov["ecog_probs"]),
        "nrs0_cuts": _cuts(cov["nrs0_probs"]),
        "spinal_axial": sp_ax,
        "spinal_other": sp_non,
        "cut_lesions": ndtri(1 - cov["lesions_gt3_prob"]),
        "cut_fracture": ndtri(1 - cov["fracture_prob"]),
        "cut_visceral": ndtri(1 - cov["visceral_prob"]),
        "cut_strong": ndtri(1 - cov["strong_opioid_prob"]),
    }


def _latent(F, z, loading):
    return loading * F + np.sqrt(1.0 - loading**2) * z


def _scalars(p: dict, k: dict) -> np.ndarray:
    """The scalars of :func:`sim.covariates_kernel.covariate_columns`, in its order."""
    cov = p["covariates"]
    load = cov["burden_loading"]

    def pair(loading):  # (l, sqrt(1 - l^2)) of a latent normal, as _latent computes them
        return [loading, np.sqrt(1.0 - loading**2)]

    strong_med, weak_med = np.log(np.array([cov["omed_strong_median"], cov["omed_weak_median"]]))
    return np.array(
        [
            p["frailty"]["u_sd"],
            cov["age_mean"],
            cov["age_sd"],
            cov["age_min"],
            cov["age_max"],
            cov["male_prob_breast"],
            cov["male_prob_nonsex"],
            *pair(load["ecog"]),
            *pair(load["lesions_gt3"]),
            k["cut_lesions"],
            k["spinal_axial"],
            k["spinal_other"],
            *pair(load["fracture"]),
            k["cut_fracture"],
            *pair(load["visceral"]),
            k["cut_visceral"],
            cov["charlson_mean"],
            cov["charlson_age_slope"],
            cov["charlson_sd"],
            *pair(load["nrs0"]),
            *pair(cov["strong_opioid_nrs_loading"]),
            k["cut_strong"],
            cov["weak_opioid_prob"],
            weak_med,
            strong_med,
            cov["omed_sdlog"],
        ],
        dtype=float,
    )


def draw_covariates(p: dict, k: dict, rng: np.random.Generator, n: int) -> dict:
    """Baseline covariates of ``n`` patients as a dict of arrays (see sim/cohort.py for columns).

    Draws Z (12, n) standard normals and Uni (6, n) uniforms; then, per patient
    (sim/covariates_kernel.py, one compiled pass): F = Z_0, U = u_sd Z_1, age = clip(rint(mean +
    sd Z_2)), primary and site by their cumulative probabilities, sex given primary, ECOG /
    lesions > 3 / fracture / visceral / NRS0 / Charlson (age-dependent) from latent normals on
    F, strong opioid from a latent normal on the NRS0 latent, OMED0 log-normal by opioid class
    (0 for non-users), the radiotherapy scheme."""
    Z = rng.standard_normal((12, n))
    Uni = rng.random((6, n))
    (U, age, primary, male, ecog, lesions, site, spinal, fracture, visceral, charlson, nrs0,
     strong, log_omed, use_omed, dose, fractions) = covariate_columns(
        Z, Uni, k["primary_cum"], k["ecog_cuts"], k["site_cum"], k["nrs0_cuts"], k["rt_cum"],
        RT_DOSE, RT_FRACTIONS, _scalars(p, k),
    )  # fmt: skip
    return {
        "U": U,
        "age": age,
        "primary": primary,
        "male": male,
        "ecog": ecog,
        "lesions_gt3": lesions,
        "site": site,
        "spinal": spinal,
        "fracture": fracture,
        "visceral": visceral,
        "charlson": charlson,
        "nrs0": nrs0,
        "strong_opioid": strong,
        "omed0": np.round(np.where(use_omed, np.exp(log_omed), 0.0), 1),
        "rt_dose_gy": dose,
        "rt_fractions": fractions,
        "F": Z[0],
        "z_inflammation": Z[11],
    }


def draw_covariates_numpy(p: dict, k: dict, rng: np.random.Generator, n: int) -> dict:
    """The numpy formulation of :func:`draw_covariates` (the same columns, bit for bit; kept as
    the readable model statement and as the reference the kernel is tested against)."""
    cov = p["covariates"]
    load = cov["burden_loading"]
    Z = rng.standard_normal((12, n))
    Uni = rng.random((6, n))
    F = Z[0]
    out: dict = {}
    out["U"] = p["frailty"]["u_sd"] * Z[1]
    age = np.rint(cov["age_mean"] + cov["age_sd"] * Z[2])
    out["age"] = np.clip(age, cov["age_min"], cov["age_max"])
    primary = np.searchsorted(k["primary_cum"], Uni[0], side="right")
    out["primary"] = primary
    p_male = np.where(
        primary == 0, cov["male_prob_breast"], np.where(primary == 2, 1.0, cov["male_prob_nonsex"])
    )
    out["male"] = (Uni[1] < p_male).astype(np.int8)
    out["ecog"] = np.searchsorted(k["ecog_cuts"], _latent(F, Z[3], load["ecog"])).astype(np.int8)
    out["lesions_gt3"] = (_latent(F, Z[4], load["lesions_gt3"]) > k["cut_lesions"]).astype(np.int8)
    site = np.searchsorted(k["site_cum"], Uni[2], side="right")
    out["site"] = site
    out["spinal"] = (Uni[3] < np.where(site == 0, k["spinal_axial"], k["spinal_other"])).astype(
        np.int8
    )
    out["fracture"] = (_latent(F, Z[5], load["fracture"]) > k["cut_fracture"]).astype(np.int8)
    out["visceral"] = (_latent(F, Z[6], load["visceral"]) > k["cut_visceral"]).astype(np.int8)
    charl = cov["charlson_mean"] + cov["charlson_age_slope"] * (out["age"] - cov["age_mean"])
    out["charlson"] = np.clip(np.rint(charl + cov["charlson_sd"] * Z[7]), 0, 20)
    nrs_lat = _latent(F, Z[8], load["nrs0"])
    out["nrs0"] = (4 + np.searchsorted(k["nrs0_cuts"], nrs_lat)).astype(float)
    a = cov["strong_opioid_nrs_loading"]
    out["strong_opioid"] = (_latent(nrs_lat, Z[9], a) > k["cut_strong"]).astype(np.int8)
    weak = Uni[4] < cov["weak_opioid_prob"]
    med = np.where(out["strong_opioid"] == 1, cov["omed_strong_median"], cov["omed_weak_median"])
    omed = np.exp(np.log(med) + cov["omed_sdlog"] * Z[10])
    out["omed0"] = np.round(np.where((out["strong_opioid"] == 1) | weak, omed, 0.0), 1)
    rt = np.searchsorted(k["rt_cum"], Uni[5], side="right")
    out["rt_dose_gy"] = RT_DOSE[rt]
    out["rt_fractions"] = RT_FRACTIONS[rt]
    out["F"] = F
    out["z_inflammation"] = Z[11]
    return out


def draw_baseline_markers(p: dict, cov_draws: dict, rng: np.random.Generator, n: int) -> None:
    """The baseline markers (log_<inflammatory>0, <nutritional>0) into ``cov_draws``: the
    inflammation factor I = latent(F, z) loads on the burden factor F; drawn after the survival
    and pain draws (sim/generate.py), so survival-only cohorts skip them."""
    cov = p["covariates"]
    out = cov_draws
    infl = _latent(out["F"], out["z_inflammation"], cov["burden_loading"]["inflammation"])
    li = cov["inflammation_loading"]
    zm = rng.standard_normal((len(INFLAMMATORY) + len(NUTRITIONAL), n))
    # every marker of a kind at once (rows; the same elementwise arithmetic as one at a time)
    ki = len(INFLAMMATORY)
    spec = [cov["inflammatory"][m] for m in INFLAMMATORY]
    log_median = np.array([np.log(s["median"]) for s in spec])[:, None]
    sdlog = np.array([s["sdlog"] for s in spec], dtype=float)[:, None]
    v = log_median + sdlog * _latent(infl, zm[:ki], li)
    for i, m in enumerate(INFLAMMATORY):
        out[f"log_{m}0"] = v[i]
    c = cov["nutrition_inflammation_corr"]
    spec = [cov["nutritional"][m] for m in NUTRITIONAL]
    mean, sd, low = (
        np.array([s[k] for s in spec], dtype=float)[:, None] for k in ("mean", "sd", "min")
    )
    v = np.maximum(mean + sd * _latent(infl, zm[ki:], c), low)
    for j, m in enumerate(NUTRITIONAL):
        out[f"{m}0"] = v[j]
