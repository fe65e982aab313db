"""Power at a grid point: the rejection rate at ``alpha`` of the method's own p-value (failed
fits count as non-rejections, reported in ``n_failed``), its Monte Carlo SE
``sqrt(p (1 - p) / reps)`` and the exact binomial (Clopper-Pearson) interval."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from palliasim.estimators.base import FAILED


def clopper_pearson(k, n, alpha: float = 0.05):
    """Exact (Clopper-Pearson) two-sided 1 - alpha interval for a binomial proportion k / n.

    Vectorised; returns (low, high) as arrays (floats for scalar input); NaN where n == 0.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    lo = np.where(n > 0, lo, np.nan)
    hi = np.where(n > 0, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def rejection_table(
    results: pd.DataFrame, alpha: float, by: Sequence[str] = ("scenario_key", "method", "estimand")
) -> pd.DataFrame:
    """Rejection rate of each group of replication rows (one row per replication).

    A replication rejects when its status is not ``failed``, its p-value is finite and
    ``p < alpha``; failed fits and missing p-values count as non-rejections (``n_failed``).
    Columns: ``by``, reps, rejections, n_failed, power, power_mcse (``sqrt(p (1 - p) / reps)``),
    ci_low, ci_high (exact 95% Clopper-Pearson interval), ci_halfwidth.
    """
    by = list(by)
    p = pd.to_numeric(results["p_value"], errors="coerce").to_numpy(dtype=float)
    ok = (results["status"].to_numpy() != FAILED) & np.isfinite(p)
    df = results[by].copy()
    df["_rej"] = (ok & (p < alpha)).astype(np.int64)
    df["_fail"] = (~ok).astype(np.int64)
    g = df.groupby(by, sort=False, dropna=False)
    out = g.agg(reps=("_rej", "size"), rejections=("_rej", "sum"), n_failed=("_fail", "sum"))
    out = out.reset_index()
    r = out["reps"].to_numpy(float)
    k = out["rejections"].to_numpy(float)
    pw = k / r
    out["power"] = pw
    out["power_mcse"] = np.sqrt(pw * (1 - pw) / r)
    lo, hi = clopper_pearson(k, r, 0.05)
    out["ci_low"] = lo
    out["ci_high"] = hi
    out["ci_halfwidth"] = (out["ci_high"] - out["ci_low"]) / 2
    return out
