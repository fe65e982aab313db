"""Row order of survival data with tied times, compiled (shared by the Cox and KM kernels)."""

from __future__ import annotations

import numpy as np

from ._jit import njit

#: "no precomputed order" (an empty int64 array: one compiled signature either way)
_NONE = np.empty(0, dtype=np.int64)


@njit
def tie_order(time, isevent, events_first, by_time=_NONE):
    """Rows by time (stable); within a run of equal times the events first (``events_first``)
    or the censorings first, each kept in input order. ``events_first=False`` is
    ``np.lexsort((isevent, time))``. ``by_time``: the stable argsort of ``time`` if the caller
    has it (one sort shared by the fits of a replication: ``Cohort.stable_order``), else empty."""
    n = time.shape[0]
    o = by_time if by_time.shape[0] == n else np.argsort(time, kind="mergesort")
    order = np.empty(n, dtype=np.int64)
    i = 0
    while i < n:
        t = time[o[i]]
        j = i
        while j + 1 < n and time[o[j + 1]] == t:
            j += 1
        pos = i
        for first in (True, False):
            for k in range(i, j + 1):
                if (isevent[o[k]] == events_first) == first:
                    order[pos] = o[k]
                    pos += 1
        i = j + 1
    return order
