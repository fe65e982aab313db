"""The arithmetic of :func:`sim.covariates.draw_covariates` after its random draws, in one
compiled pass over the patients (the numpy version made ~40 array passes: at n = 5,000 they
cost more than the draws).

Same operations in the same order as the numpy expressions (IEEE, no contraction: sim/jit.py),
so every column is bit-identical: the latent normals ``l F + sqrt(1 - l^2) z`` (the square
roots computed by the caller, as numpy did), ordinal cuts as ``searchsorted`` (side left: the
number of cuts below x; side right: at or below), ``rint`` and ``clip`` as numpy's
(``x < lo ? lo : x``: a -0.0 from rint stays -0.0). The
transcendental step (the OMED log-normal, exp/log) stays in numpy: its SIMD exp differs from
libm's in the last bit.
"""

from __future__ import annotations

import numpy as np

from palliasim.sim.jit import njit


@njit
def _count_below(cuts, x):
    """``np.searchsorted(cuts, x)`` (side left) for one value: cuts strictly below x."""
    c = 0
    for j in range(cuts.size):
        if cuts[j] < x:
            c += 1
    return c


@njit
def _count_at_or_below(cuts, x):
    """``np.searchsorted(cuts, x, side="right")`` for one value."""
    c = 0
    for j in range(cuts.size):
        if cuts[j] <= x:
            c += 1
    return c


@njit
def covariate_columns(
    Z, Uni, primary_cum, ecog_cuts, site_cum, nrs0_cuts, rt_cum, rt_dose, rt_fractions, s
):
    """Columns from the draws Z (12, n) and Uni (6, n); ``s`` the scalars in the order of
    :data:`SCALARS`. Returns (U, age, primary, male, ecog, lesions, site, spinal, fracture,
    visceral, charlson, nrs0, strong, log_omed, use_omed, rt_dose_gy, rt_fractions)."""
    n = Z.shape[1]
    (
        u_sd,
        age_mean,
        age_sd,
        age_min,
        age_max,
        male_breast,
        male_nonsex,
        l_ecog,
        r_ecog,
        l_les,
        r_les,
        cut_les,
        sp_axial,
        sp_other,
        l_frac,
        r_frac,
        cut_frac,
        l_visc,
        r_visc,
        cut_visc,
        ch_mean,
        ch_slope,
        ch_sd,
        l_nrs,
        r_nrs,
        l_strong,
        r_strong,
        cut_strong,
        weak_prob,
        log_weak,
        log_strong,
        sdlog,
    ) = (
        s[0],
        s[1],
        s[2],
        s[3],
        s[4],
        s[5],
        s[6],
        s[7],
        s[8],
        s[9],
        s[10],
        s[11],
        s[12],
        s[13],
        s[14],
        s[15],
        s[16],
        s[17],
        s[18],
        s[19],
        s[20],
        s[21],
        s[22],
        s[23],
        s[24],
        s[25],
        s[26],
        s[27],
        s[28],
        s[29],
        s[30],
        s[31],
    )
    U = np.empty(n)
    age = np.empty(n)
    primary = np.empty(n, np.int64)
    male = np.empty(n, np.int8)
    ecog = np.empty(n, np.int8)
    lesions = np.empty(n, np.int8)
    site = np.empty(n, np.int64)
    spinal = np.empty(n, np.int8)
    fracture = np.empty(n, np.int8)
    visceral = np.empty(n, np.int8)
    charlson = np.empty(n)
    nrs0 = np.empty(n)
    strong = np.empty(n, np.int8)
    log_omed = np.empty(n)
    use_omed = np.empty(n, np.bool_)
    dose = np.empty(n)
    fractions = np.empty(n, rt_fractions.dtype)
    for i in range(n):
        F = Z[0, i]
        U[i] = u_sd * Z[1, i]
        a = np.rint(age_mean + age_sd * Z[2, i])
        a = age_min if a < age_min else a  # numpy's clip keeps x when x == lo (a -0.0
        a = age_max if a > age_max else a  # from rint stays -0.0)
        age[i] = a
        pr = _count_at_or_below(primary_cum, Uni[0, i])
        primary[i] = pr
        pm = male_breast if pr == 0 else (1.0 if pr == 2 else male_nonsex)
        male[i] = 1 if Uni[1, i] < pm else 0
        ecog[i] = _count_below(ecog_cuts, l_ecog * F + r_ecog * Z[3, i])
        lesions[i] = 1 if l_les * F + r_les * Z[4, i] > cut_les else 0
        st = _count_at_or_below(site_cum, Uni[2, i])
        site[i] = st
        spinal[i] = 1 if Uni[3, i] < (sp_axial if st == 0 else sp_other) else 0
        fracture[i] = 1 if l_frac * F + r_frac * Z[5, i] > cut_frac else 0
        visceral[i] = 1 if l_visc * F + r_visc * Z[6, i] > cut_visc else 0
        ch = ch_mean + ch_slope * (a - age_mean)
        c = np.rint(ch + ch_sd * Z[7, i])
        c = 0.0 if c < 0.0 else c
        c = 20.0 if c > 20.0 else c
        charlson[i] = c
        nl = l_nrs * F + r_nrs * Z[8, i]
        nrs0[i] = float(4 + _count_below(nrs0_cuts, nl))
        so = 1 if l_strong * nl + r_strong * Z[9, i] > cut_strong else 0
        strong[i] = so
        log_omed[i] = (log_strong if so == 1 else log_weak) + sdlog * Z[10, i]
        use_omed[i] = so == 1 or Uni[4, i] < weak_prob
        rt = _count_at_or_below(rt_cum, Uni[5, i])
        dose[i] = rt_dose[rt]
        fractions[i] = rt_fractions[rt]
    return (
        U,
        age,
        primary,
        male,
        ecog,
        lesions,
        site,
        spinal,
        fracture,
        visceral,
        charlson,
        nrs0,
        strong,
        log_omed,
        use_omed,
        dose,
        fractions,
    )
