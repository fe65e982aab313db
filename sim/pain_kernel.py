"""Compiled passes of the pain process (sim/pain.py) over (n, 4) visit arrays: the OMED path
after its exponentials, and the first visit meeting the consensus progression criteria.

Same operations in the same order as the numpy formulations in sim/pain.py (IEEE, no
contraction: sim/jit.py), so the results are bit-identical; the exponentials stay in numpy
(its SIMD exp differs from libm's in the last bit). ``np.round(x, 1)`` is numpy's
``rint(x * 10) / 10``.
"""

from __future__ import annotations

import numpy as np

from palliasim.sim.jit import njit

COMPLETE, PARTIAL, INDETERMINATE, PROGRESSION = 0, 1, 2, 3
_TIE = 1e-9  # as sim/pain.py


@njit
def omed_exponent(a_col, y, nrs0, z_sd, f, c_log, effect, coupling, sd):
    """f_j (mu_ij + sd z_i), mu_ij = c_log + effect a_i + coupling (Y_ij - NRS0_i): the
    exponent of the changed dose (n, 4); ``a_col`` (n,) or (1,) (one arm for everyone)."""
    n, m = y.shape
    out = np.empty((n, m))
    one = a_col.size == 1
    for i in range(n):
        t1 = c_log + effect * (a_col[0] if one else a_col[i])
        t3 = sd * z_sd[i]
        for j in range(m):
            mu = t1 + coupling * (y[i, j] - nrs0[i])
            out[i, j] = f[j] * (mu + t3)
    return out


@njit
def omed_doses(omed0, growth, u_unchanged, p_unchanged, u_start, pstart, f, start_dose):
    """OMED (n, 4) rounded to 0.1 mg: users keep OMED0 (u < p_unchanged) or move to OMED0
    * growth; non-users get the start dose from the first visit with u_start < pstart f_j;
    ``pstart`` (n,) or (1,)."""
    n, m = growth.shape
    out = np.empty((n, m))
    one = pstart.size == 1
    for i in range(n):
        o0 = omed0[i]
        ps = pstart[0] if one else pstart[i]
        for j in range(m):
            if o0 > 0:
                v = o0 if u_unchanged[i] < p_unchanged else o0 * growth[i, j]
            else:
                v = start_dose[i] if u_start[i] < ps * f[j] else 0.0
            out[i, j] = np.rint(v * 10.0) / 10.0
    return out


@njit
def first_progression(nrs0, nrs, omed0, omed, alive, increase, partial_decrease, prog_increase):
    """Index of the first visit (0..3) with the consensus category PROGRESSION while alive,
    else -1; the category as :func:`sim.pain.consensus_category` assigns it (progression,
    then partial, then complete, each overriding the one before)."""
    n, m = nrs.shape
    out = np.full(n, -1, np.int64)
    for i in range(n):
        o0 = omed0[i]
        user = o0 > 0
        inc_cut = o0 * (1.0 + increase) + _TIE
        red_cut = o0 * (1.0 - partial_decrease) + _TIE
        up_cut = o0 * (1.0 + prog_increase) - _TIE
        for j in range(m):
            o = omed[i, j]
            dn = nrs[i, j] - nrs0[i]
            increased = o > inc_cut
            reduced = user and o <= red_cut
            up25 = o >= up_cut if user else o > _TIE
            stable = not increased and not reduced
            complete = nrs[i, j] == 0 and not increased
            partial = (dn <= -2 and not increased) or (reduced and dn <= 0)
            progression = (dn >= 2 and stable) or (up25 and dn >= 0 and dn <= 1)
            cat = INDETERMINATE
            if progression:
                cat = PROGRESSION
            if partial:
                cat = PARTIAL
            if complete:
                cat = COMPLETE
            if cat == PROGRESSION and alive[i, j]:
                out[i] = j
                break
    return out


@njit
def relief_times(nrs0, nrs_obs, threshold, w):
    """:func:`sim.pain.relief_times_numpy` per patient: onset week of the first observed visit
    with NRS0 - NRS >= threshold (else the last observed visit, 0 without any), its event, the
    duration to the first later observed visit without relief (else to the last observed visit;
    NaN without onset) and its event."""
    n, m = nrs_obs.shape
    onset = np.empty(n)
    onset_ev = np.zeros(n, np.int8)
    duration = np.empty(n)
    dur_ev = np.zeros(n, np.int8)
    for i in range(n):
        last = 0.0
        j_on = -1
        for j in range(m):
            v = nrs_obs[i, j]
            if v == v:  # observed
                last = w[j]
                if j_on < 0 and nrs0[i] - v >= threshold:
                    j_on = j
        if j_on < 0:
            onset[i] = last
            duration[i] = np.nan
            continue
        onset[i] = w[j_on]
        onset_ev[i] = 1
        end = last
        for j in range(j_on + 1, m):
            v = nrs_obs[i, j]
            if v == v and not (nrs0[i] - v >= threshold):
                end = w[j]
                dur_ev[i] = 1
                break
        duration[i] = end - w[j_on]
    return onset, onset_ev, duration, dur_ev
