"""Compiled passes over the visits table in wide (patient x visit) form.

* :func:`patient_major` -- is the visits table the generator's layout (patient-major, every
  scheduled visit, in week order)? Then the wide table is a reshape.
* :func:`patient_major_tables` -- the wide NRS and status tables of such a layout in one pass.
* :func:`arm_visit_counts` -- observed values per arm and visit among the usable patients
  (which visits an analysis can estimate).
"""

from __future__ import annotations

import numpy as np

from ._jit import njit


@njit
def patient_major(vid, week, ids, weeks):
    """True when row r of the visits table is patient ids[r // v] at week weeks[r % v]
    (v = len(weeks)) for every row and there are len(ids) * v rows."""
    n = ids.shape[0]
    v = weeks.shape[0]
    if vid.shape[0] != n * v or week.shape[0] != n * v:
        return False
    r = 0
    for i in range(n):
        for j in range(v):
            if vid[r] != ids[i] or week[r] != weeks[j]:
                return False
            r += 1
    return True


@njit
def patient_major_tables(nrs, status, nrs0, v):
    """(W, S): W = nrs.reshape(n, v) with W[:, 0] replaced by nrs0 where it is not finite,
    S = status.reshape(n, v) (status empty: all -1)."""
    n = nrs0.shape[0]
    W = np.empty((n, v))
    S = np.empty((n, v))
    has = status.shape[0] > 0
    r = 0
    for i in range(n):
        for j in range(v):
            W[i, j] = nrs[r]
            S[i, j] = status[r] if has else -1.0
            r += 1
        if not np.isfinite(W[i, 0]):
            W[i, 0] = nrs0[i]
    return W, S


@njit
def arm_visit_counts(W, cols, usable, group):
    """(2, len(cols)) counts of finite W[i, cols[k]] over usable patients i of arm 0 and 1
    (patients of neither arm, e.g. a NaN group, are not counted)."""
    k = cols.shape[0]
    out = np.zeros((2, k), dtype=np.int64)
    for i in range(W.shape[0]):
        if not usable[i]:
            continue
        g = group[i]
        a = 0 if g == 0.0 else (1 if g == 1.0 else -1)
        if a < 0:
            continue
        for j in range(k):
            if np.isfinite(W[i, cols[j]]):
                out[a, j] += 1
    return out
